//! Which decoder a source uses: NVIDIA's GPU decoder or GStreamer's CPU ones.
//!
//! GPU decode needs two elements from DeepStream (a full install, or the
//! decoder wheel `nvidia-deepstream-videodecode-cu13` as packed by
//! `scripts/bundle-gpu.sh`): `nvv4l2decoder` (NVDEC) and `nvvideoconvert`,
//! which scales the decoded frame on the GPU to the small luma image the
//! object stage analyses and copies only that to system memory. They are
//! usable when they are in the GStreamer registry and both start (which
//! needs an NVIDIA GPU, its driver and the CUDA runtime). The check runs once
//! per process; [`gpu_decode_report`] gives its result for `dshost probe`.
//!
//! The registry lookups go through [`ElementRegistry`] so the selection and
//! fallback rules are tested without a GPU.

use std::sync::OnceLock;

use gstreamer as gst;
use gstreamer::prelude::*;
use serde::Serialize;

use super::uri::SourceUri;
use crate::config::DecoderKind;

/// NVIDIA's NVDEC decoder element.
pub const GPU_DECODER: &str = "nvv4l2decoder";
/// NVIDIA's GPU scaler / colour converter (NVMM -> system memory).
pub const GPU_CONVERTER: &str = "nvvideoconvert";
const GPU_ELEMENTS: [&str; 2] = [GPU_DECODER, GPU_CONVERTER];

/// How a source's compressed video becomes frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DecodePath {
    /// GStreamer's CPU decoders (autoplugged, `nvv4l2decoder` excluded).
    Cpu,
    /// `nvv4l2decoder` + `nvvideoconvert` down to the analysis size.
    Gpu,
    /// Raw video (test patterns, the synthetic scene): nothing to decode.
    None,
}

impl DecodePath {
    pub fn as_str(self) -> &'static str {
        match self {
            DecodePath::Cpu => "cpu",
            DecodePath::Gpu => "gpu",
            DecodePath::None => "none",
        }
    }
}

/// One element of the GPU decode path, as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElementStatus {
    pub name: String,
    /// In the GStreamer registry.
    pub found: bool,
    /// The plugin providing it, its version and file, when found.
    pub plugin: Option<String>,
    pub version: Option<String>,
    pub filename: Option<String>,
    /// Why it could not be created or started, when it could not.
    pub error: Option<String>,
}

/// Whether GPU decode can be used here, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuDecodeReport {
    pub usable: bool,
    /// One sentence: what was found, or what is missing and how to fix it.
    pub reason: String,
    pub elements: Vec<ElementStatus>,
}

/// Registry information about an element factory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactoryInfo {
    pub plugin: String,
    pub version: String,
    pub filename: Option<String>,
}

/// Why an element of the GPU path could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElementError {
    #[error("cannot be created: {0}")]
    Create(String),
    #[error(
        "it failed to start (no NVIDIA GPU or driver visible, or the CUDA runtime libcudart.so.13 / NPP missing \
         from the library path)"
    )]
    Start,
}

/// The GStreamer registry as the GPU check sees it (injected in tests).
pub trait ElementRegistry {
    /// The factory of `element`, if registered.
    fn find(&self, element: &str) -> Option<FactoryInfo>;
    /// Creates `element` and starts it (PAUSED, then back to NULL): this
    /// loads its libraries and opens the GPU.
    fn start(&self, element: &str) -> Result<(), ElementError>;
}

/// The process's real GStreamer registry.
pub struct GstRegistry;

impl ElementRegistry for GstRegistry {
    fn find(&self, element: &str) -> Option<FactoryInfo> {
        let factory = gst::ElementFactory::find(element)?;
        let plugin = factory.plugin();
        Some(FactoryInfo {
            plugin: plugin.as_ref().map(|p| p.plugin_name().to_string()).unwrap_or_default(),
            version: plugin.as_ref().map(|p| p.version().to_string()).unwrap_or_default(),
            filename: plugin.as_ref().and_then(|p| p.filename()).map(|f| f.display().to_string()),
        })
    }

    fn start(&self, element: &str) -> Result<(), ElementError> {
        let element = gst::ElementFactory::make(element).build().map_err(|e| ElementError::Create(e.to_string()))?;
        let result = element.set_state(gst::State::Paused);
        let _ = element.set_state(gst::State::Null);
        result.map(|_| ()).map_err(|_| ElementError::Start)
    }
}

/// Checks the GPU decode elements in `registry`.
pub fn check(registry: &dyn ElementRegistry) -> GpuDecodeReport {
    let mut elements: Vec<ElementStatus> = GPU_ELEMENTS
        .iter()
        .map(|name| {
            let info = registry.find(name);
            ElementStatus {
                name: name.to_string(),
                found: info.is_some(),
                plugin: info.as_ref().map(|i| i.plugin.clone()),
                version: info.as_ref().map(|i| i.version.clone()),
                filename: info.and_then(|i| i.filename),
                error: None,
            }
        })
        .collect();
    let missing: Vec<&str> = elements.iter().filter(|e| !e.found).map(|e| e.name.as_str()).collect();
    if !missing.is_empty() {
        let reason = format!(
            "{} not in the GStreamer registry; install DeepStream, or run dshost from the bundle made by \
             scripts/bundle-gpu.sh (it sets GST_PLUGIN_PATH to NVIDIA's decoder plugins)",
            missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(" and ")
        );
        return GpuDecodeReport { usable: false, reason, elements };
    }
    for element in &mut elements {
        if let Err(error) = registry.start(&element.name) {
            element.error = Some(error.to_string());
        }
    }
    match elements.iter().find(|e| e.error.is_some()) {
        Some(failed) => GpuDecodeReport {
            usable: false,
            reason: format!(
                "`{}` is registered but unusable: {}",
                failed.name,
                failed.error.as_deref().unwrap_or_default()
            ),
            elements,
        },
        None => GpuDecodeReport {
            usable: true,
            reason: format!("{GPU_DECODER} and {GPU_CONVERTER} are registered and start"),
            elements,
        },
    }
}

/// The GPU decode check for this process, run once (GStreamer must be
/// initialised).
pub fn gpu_decode_report() -> &'static GpuDecodeReport {
    static REPORT: OnceLock<GpuDecodeReport> = OnceLock::new();
    REPORT.get_or_init(|| check(&GstRegistry))
}

/// Why a source cannot start with the decoder it asks for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "source `{source_id}` asks for `decoder: gpu` but GPU decode is unavailable: {reason}; \
         or set `decoder: auto` to fall back to the CPU"
    )]
    GpuUnavailable { source_id: String, reason: String },
}

/// The decoder chosen for one source, and why, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub path: DecodePath,
    /// Set when `auto` fell back to the CPU: the reason.
    pub fallback: Option<String>,
}

/// Whether `uri` carries compressed video that a decoder turns into frames.
pub fn decodes(uri: &SourceUri) -> bool {
    matches!(uri, SourceUri::File { .. } | SourceUri::Rtsp { .. } | SourceUri::Http { .. })
}

/// Chooses the decoder of one source. `report` is only called when the
/// choice depends on it, so CPU-only configs never touch the GPU.
pub fn select(
    source_id: &str,
    choice: DecoderKind,
    uri: &SourceUri,
    report: impl FnOnce() -> GpuDecodeReport,
) -> Result<Selection, DecodeError> {
    // v4l2 cameras give raw or MJPEG frames; test and scene sources are raw.
    if !decodes(uri) {
        let path = if matches!(uri, SourceUri::V4l2 { .. }) { DecodePath::Cpu } else { DecodePath::None };
        return Ok(Selection { path, fallback: None });
    }
    match choice {
        DecoderKind::Cpu => Ok(Selection { path: DecodePath::Cpu, fallback: None }),
        DecoderKind::Auto => {
            let report = report();
            if report.usable {
                Ok(Selection { path: DecodePath::Gpu, fallback: None })
            } else {
                Ok(Selection { path: DecodePath::Cpu, fallback: Some(report.reason) })
            }
        }
        DecoderKind::Gpu => {
            let report = report();
            if report.usable {
                Ok(Selection { path: DecodePath::Gpu, fallback: None })
            } else {
                Err(DecodeError::GpuUnavailable { source_id: source_id.to_string(), reason: report.reason })
            }
        }
    }
}

/// What `autoplug-select` answers for `factory` on a source decoding with
/// `path`: the GPU path takes `nvv4l2decoder` and skips CPU video decoders
/// for caps it accepts; the CPU path never takes `nvv4l2decoder` (its NVMM
/// output cannot reach the CPU object stage without `nvvideoconvert`).
pub fn autoplug_choice(path: DecodePath, factory: &str, is_video_decoder: bool, gpu_accepts_caps: bool) -> Autoplug {
    match path {
        DecodePath::Gpu if factory == GPU_DECODER => Autoplug::Try,
        DecodePath::Gpu if is_video_decoder && gpu_accepts_caps => Autoplug::Skip,
        DecodePath::Cpu | DecodePath::None if factory == GPU_DECODER => Autoplug::Skip,
        _ => Autoplug::Try,
    }
}

/// `GstAutoplugSelectResult` values used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autoplug {
    Try = 0,
    Skip = 2,
}

/// The luma image the GPU converter delivers for a `width` x `height`
/// source: twice the motion detector's analysis width (its own area
/// average then halves it, as on the CPU path), same aspect ratio, even
/// sizes, never larger than the source.
pub fn analysis_size(width: u32, height: u32, analysis_width: u32) -> (u32, u32) {
    if width == 0 || height == 0 {
        return (width.max(2), height.max(2));
    }
    let target = (analysis_width.saturating_mul(2)).clamp(16, width.max(16));
    let w = (target.min(width) & !1).max(2);
    let h = ((u64::from(height) * u64::from(w) / u64::from(width)) as u32 & !1).max(2);
    (w, h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// A registry with the given elements; `broken` ones fail to start.
    struct FakeRegistry {
        present: Vec<&'static str>,
        broken: Vec<&'static str>,
        started: RefCell<Vec<String>>,
    }

    impl ElementRegistry for FakeRegistry {
        fn find(&self, element: &str) -> Option<FactoryInfo> {
            self.present.contains(&element).then(|| FactoryInfo {
                plugin: format!("plugin-of-{element}"),
                version: "1.14.0".into(),
                filename: None,
            })
        }
        fn start(&self, element: &str) -> Result<(), ElementError> {
            self.started.borrow_mut().push(element.to_string());
            if self.broken.contains(&element) {
                Err(ElementError::Create("cudaSetDevice failed".into()))
            } else {
                Ok(())
            }
        }
    }

    fn registry(present: &[&'static str], broken: &[&'static str]) -> FakeRegistry {
        FakeRegistry { present: present.to_vec(), broken: broken.to_vec(), started: RefCell::default() }
    }

    fn file() -> SourceUri {
        SourceUri::parse(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap()
    }

    #[test]
    fn usable_only_when_both_elements_are_registered_and_start() {
        let all = registry(&[GPU_DECODER, GPU_CONVERTER], &[]);
        let report = check(&all);
        assert!(report.usable, "{report:?}");
        assert_eq!(*all.started.borrow(), vec![GPU_DECODER.to_string(), GPU_CONVERTER.to_string()]);
        assert_eq!(report.elements.iter().map(|e| e.found).collect::<Vec<_>>(), vec![true, true]);

        let only_decoder = registry(&[GPU_DECODER], &[]);
        let report = check(&only_decoder);
        assert!(!report.usable);
        assert!(report.reason.contains("`nvvideoconvert` not in the GStreamer registry"), "{}", report.reason);
        assert!(!report.reason.contains("`nvv4l2decoder`"), "{}", report.reason);
        assert!(only_decoder.started.borrow().is_empty(), "nothing starts while an element is missing");

        let none = check(&registry(&[], &[]));
        assert!(none.reason.contains("`nvv4l2decoder` and `nvvideoconvert` not in the GStreamer registry"));
        assert!(none.reason.contains("scripts/bundle-gpu.sh"));

        let broken = check(&registry(&[GPU_DECODER, GPU_CONVERTER], &[GPU_CONVERTER]));
        assert!(!broken.usable);
        assert_eq!(
            broken.reason,
            "`nvvideoconvert` is registered but unusable: cannot be created: cudaSetDevice failed"
        );
        assert_eq!(broken.elements[1].error.as_deref(), Some("cannot be created: cudaSetDevice failed"));
        assert_eq!(broken.elements[0].error, None);
    }

    #[test]
    fn selection_and_fallback() {
        let usable = || check(&registry(&[GPU_DECODER, GPU_CONVERTER], &[]));
        let missing = || check(&registry(&[GPU_CONVERTER], &[]));
        let file = file();

        let auto_gpu = select("a", DecoderKind::Auto, &file, usable).unwrap();
        assert_eq!(auto_gpu, Selection { path: DecodePath::Gpu, fallback: None });

        let auto_cpu = select("a", DecoderKind::Auto, &file, missing).unwrap();
        assert_eq!(auto_cpu.path, DecodePath::Cpu);
        assert!(auto_cpu.fallback.unwrap().contains("`nvv4l2decoder` not in the GStreamer registry"));

        let error = select("cam-1", DecoderKind::Gpu, &file, missing).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("source `cam-1` asks for `decoder: gpu`"), "{text}");
        assert!(text.contains("`nvv4l2decoder` not in the GStreamer registry"), "{text}");
        assert_eq!(select("a", DecoderKind::Gpu, &file, usable).unwrap().path, DecodePath::Gpu);

        // `cpu` never probes the GPU.
        let cpu = select("a", DecoderKind::Cpu, &file, || panic!("probed")).unwrap();
        assert_eq!(cpu, Selection { path: DecodePath::Cpu, fallback: None });

        let rtsp = SourceUri::parse("rtsp://cam/stream").unwrap();
        assert_eq!(select("a", DecoderKind::Auto, &rtsp, usable).unwrap().path, DecodePath::Gpu);
        // Raw sources decode nothing, whatever is asked, and never probe.
        for raw in ["test://ball", "scene://?seed=1"] {
            let uri = SourceUri::parse(raw).unwrap();
            let chosen = select("a", DecoderKind::Gpu, &uri, || panic!("probed")).unwrap();
            assert_eq!(chosen.path, DecodePath::None, "{raw}");
        }
        let camera = SourceUri::parse("v4l2:///dev/video0").unwrap();
        assert_eq!(select("a", DecoderKind::Auto, &camera, || panic!("probed")).unwrap().path, DecodePath::Cpu);
    }

    #[test]
    fn autoplug_steers_the_video_decoder() {
        use Autoplug::{Skip, Try};
        let cases: BTreeMap<(&str, &str, bool, bool), Autoplug> = [
            (("gpu", GPU_DECODER, true, true), Try),
            (("gpu", "avdec_h264", true, true), Skip),
            (("gpu", "avdec_mjpeg", true, false), Try), // nvv4l2decoder cannot take it
            (("gpu", "qtdemux", false, false), Try),
            (("gpu", "h264parse", false, true), Try),
            (("cpu", GPU_DECODER, true, true), Skip),
            (("cpu", "avdec_h264", true, true), Try),
            (("cpu", "h264parse", false, true), Try),
        ]
        .into_iter()
        .collect();
        for ((path, factory, decoder, accepts), expected) in cases {
            let path = if path == "gpu" { DecodePath::Gpu } else { DecodePath::Cpu };
            assert_eq!(autoplug_choice(path, factory, decoder, accepts), expected, "{path:?} {factory}");
        }
    }

    #[test]
    fn analysis_sizes() {
        assert_eq!(analysis_size(1920, 1080, 160), (320, 180));
        assert_eq!(analysis_size(1280, 720, 160), (320, 180));
        assert_eq!(analysis_size(640, 480, 160), (320, 240));
        // Never upscaled; odd results rounded down to even.
        assert_eq!(analysis_size(200, 150, 160), (200, 150));
        assert_eq!(analysis_size(1920, 1080, 333), (666, 374));
        assert_eq!(analysis_size(0, 0, 160), (2, 2));
    }
}
