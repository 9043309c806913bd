//! What this machine has (DeepStream version, layout, elements, metadata
//! library, GPU) and which backend `pipeline.backend` therefore runs.
//! [`Survey::gather`] looks; [`decide`] is a pure function of the survey, so
//! every branch is unit-tested without DeepStream.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::builder::{BuildError, DsSource};
use super::library::MetaLibrary;
use super::profile::{Profile, SourceElement};
use super::version::{Detection, DetectionInputs, MetaLayout};
use crate::config::{Backend, DeepStreamConfig};
use crate::pipeline::source::SourceSpec;

/// DeepStream elements the probe reports (present or not).
pub const ELEMENTS: [&str; 9] = [
    "nvstreammux",
    "nvinfer",
    "nvtracker",
    "nvvideoconvert",
    "nvurisrcbin",
    "nvv4l2decoder",
    "nvdsosd",
    "nvmsgconv",
    "nvmultiurisrcbin",
];

/// An element and its plugin's version, when the registry has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ElementInfo {
    pub name: &'static str,
    pub plugin_version: Option<String>,
}

/// NVIDIA GPU presence (a GPU is not needed to read metadata, only to run
/// DeepStream's decoders and inference).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct GpuInfo {
    pub present: bool,
    pub device_nodes: Vec<String>,
    pub driver_version: Option<String>,
    pub libcuda_loadable: bool,
}

impl GpuInfo {
    /// Looks under `root` (`/` normally) for device nodes and the driver.
    pub fn gather(root: &Path) -> Self {
        let device_nodes: Vec<String> = (0..16)
            .map(|i| root.join(format!("dev/nvidia{i}")))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        let driver_version = std::fs::read_to_string(root.join("proc/driver/nvidia/version"))
            .ok()
            .and_then(|text| text.lines().next().map(|l| l.trim().to_string()));
        // SAFETY: libcuda's initialisers only register the driver API.
        let libcuda_loadable = root == Path::new("/") && unsafe { libloading::Library::new("libcuda.so.1") }.is_ok();
        GpuInfo {
            present: !device_nodes.is_empty() || driver_version.is_some(),
            device_nodes,
            driver_version,
            libcuda_loadable,
        }
    }
}

/// Everything the choice depends on.
pub struct Survey {
    pub root: PathBuf,
    pub detection: Detection,
    pub profile: Option<&'static Profile>,
    pub library: Result<Arc<MetaLibrary>, String>,
    pub elements: Vec<ElementInfo>,
    pub gpu: GpuInfo,
}

impl Survey {
    /// Looks at this machine (GStreamer must be initialised).
    pub fn gather(config: &DeepStreamConfig) -> Survey {
        let library = MetaLibrary::load(&[config.root.join("lib")]).map(Arc::new).map_err(|e| e.to_string());
        let fingerprint = library.as_ref().ok().and_then(|l| l.fingerprint());
        let detection = DetectionInputs::gather(&config.root, config.version.clone(), fingerprint).detect();
        let elements = ELEMENTS
            .iter()
            .map(|name| ElementInfo {
                name,
                plugin_version: gstreamer::ElementFactory::find(name).map(|factory| {
                    use gstreamer::prelude::*;
                    factory.plugin().map(|p| p.version().to_string()).unwrap_or_default()
                }),
            })
            .collect();
        Survey {
            root: config.root.clone(),
            profile: profile_of(&detection),
            detection,
            library,
            elements,
            gpu: GpuInfo::gather(Path::new("/")),
        }
    }

    pub fn has_element(&self, name: &str) -> bool {
        self.elements.iter().any(|e| e.name == name && e.plugin_version.is_some())
    }

    /// Why DeepStream cannot run here with `config` and `sources`; empty
    /// when it can.
    pub fn missing(&self, config: &DeepStreamConfig, sources: &[SourceSpec]) -> Vec<String> {
        let mut missing = Vec::new();
        if self.library.is_err() && !self.detection.found() && self.elements.iter().all(|e| e.plugin_version.is_none())
        {
            return vec![format!(
                "DeepStream itself: no metadata library ({}) and no DeepStream GStreamer element was found",
                super::library::META_LIBRARY
            )];
        }
        if let Err(error) = &self.library {
            missing.push(format!("the metadata libraries: {error}"));
        }
        if self.library.is_ok() && self.detection.layout.is_none() {
            let why = self.detection.problems.join("; ");
            missing.push(format!("a confirmed metadata layout ({why})"));
        }
        if self.detection.layout.is_some() && self.profile.is_none() {
            missing.push(
                "a known DeepStream version for the pipeline profile (the 6.0-7.1 layout spans two profiles): set \
                 `pipeline.deepstream.version`"
                    .to_string(),
            );
        }
        let mut elements = vec!["nvstreammux", "nvinfer"];
        if config.tracker.enabled {
            elements.push("nvtracker");
        }
        match self.profile.map(|p| p.source) {
            Some(SourceElement::Nvurisrcbin) => elements.push("nvurisrcbin"),
            _ => elements.push("nvvideoconvert"),
        }
        for element in elements {
            if !self.has_element(element) {
                missing.push(format!("the GStreamer element `{element}`"));
            }
        }
        if config.infer_config.is_none() {
            missing.push(BuildError::NoInferConfig.to_string());
        }
        for spec in sources {
            if let Err(error) = DsSource::from_spec(spec) {
                missing.push(error.to_string());
            }
        }
        missing
    }
}

/// The profile for the detected version, or for an unambiguous layout.
pub fn profile_of(detection: &Detection) -> Option<&'static Profile> {
    match detection.version {
        Some(version) => Profile::for_version(version),
        None => detection.layout.and_then(Profile::for_layout),
    }
}

/// The backend that runs, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum Choice {
    Cpu { reason: String },
    Deepstream { profile: &'static str, layout: MetaLayout },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`pipeline.backend: deepstream` was requested, but DeepStream is not usable here; missing:\n  - {}\n\
     Run `dshost probe` for details, or set `pipeline.backend: auto` to fall back to the CPU backend",
    missing.join("\n  - ")
)]
pub struct NotUsable {
    pub missing: Vec<String>,
}

/// Applies `pipeline.backend` to what the survey found (`missing` from
/// [`Survey::missing`]).
pub fn decide(
    requested: Backend,
    missing: &[String],
    profile: Option<&'static Profile>,
    layout: Option<MetaLayout>,
) -> Result<Choice, NotUsable> {
    let usable = match (missing.is_empty(), profile, layout) {
        (true, Some(profile), Some(layout)) => Some(Choice::Deepstream { profile: profile.id, layout }),
        _ => None,
    };
    let why_not = || {
        if missing.is_empty() {
            vec!["a DeepStream profile and a confirmed metadata layout".to_string()]
        } else {
            missing.to_vec()
        }
    };
    match requested {
        Backend::Cpu => Ok(Choice::Cpu { reason: "`pipeline.backend: cpu` is configured".to_string() }),
        Backend::Deepstream => usable.ok_or_else(|| NotUsable { missing: why_not() }),
        Backend::Auto => Ok(usable.unwrap_or_else(|| Choice::Cpu {
            reason: format!("DeepStream is not usable: missing {}", why_not().join("; ")),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_deepstream_only_when_nothing_is_missing() {
        let profile = Profile::by_id("9.x");
        let choice = decide(Backend::Auto, &[], profile, Some(MetaLayout::Ds9)).unwrap();
        assert_eq!(choice, Choice::Deepstream { profile: "9.x", layout: MetaLayout::Ds9 });
        let missing = vec!["the GStreamer element `nvinfer`".to_string()];
        let Choice::Cpu { reason } = decide(Backend::Auto, &missing, profile, Some(MetaLayout::Ds9)).unwrap() else {
            panic!("auto must fall back to CPU");
        };
        assert!(reason.contains("`nvinfer`"), "{reason}");
        let Choice::Cpu { reason } = decide(Backend::Auto, &[], None, None).unwrap() else { panic!() };
        assert!(reason.contains("profile"), "{reason}");
    }

    #[test]
    fn deepstream_where_missing_names_everything_missing() {
        let missing = vec!["the GStreamer element `nvstreammux`".to_string(), "the metadata libraries: x".to_string()];
        let error = decide(Backend::Deepstream, &missing, None, None).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("`nvstreammux`") && text.contains("metadata libraries") && text.contains("dshost probe"));
    }

    #[test]
    fn cpu_is_always_cpu() {
        let choice = decide(Backend::Cpu, &[], Profile::by_id("8.0"), Some(MetaLayout::Ds8)).unwrap();
        assert!(matches!(choice, Choice::Cpu { .. }));
    }

    #[test]
    fn missing_lists_elements_library_config_and_sources() {
        let survey = Survey {
            root: PathBuf::from("/nowhere"),
            detection: DetectionInputs::default().detect(),
            profile: None,
            library: Err("cannot load".into()),
            elements: ELEMENTS.iter().map(|name| ElementInfo { name, plugin_version: None }).collect(),
            gpu: GpuInfo::default(),
        };
        let mut config = DeepStreamConfig::default();
        config.tracker.enabled = true;
        let scene = SourceSpec::from_config(
            &crate::config::SourceConfig {
                id: "demo".into(),
                uri: "scene://?seed=1".into(),
                loop_file: false,
                realtime: false,
                rtsp: Default::default(),
                detector: None,
                decoder: None,
                detect: None,
                device_id: None,
            },
            crate::config::DetectorKind::Auto,
        )
        .unwrap();
        assert_eq!(survey.missing(&config, std::slice::from_ref(&scene)).len(), 1, "nothing installed: one reason");
        let survey = Survey {
            elements: vec![ElementInfo { name: "nvvideoconvert", plugin_version: Some("1.2.3".into()) }],
            ..survey
        };
        let missing = survey.missing(&config, &[scene]);
        let all = missing.join("\n");
        for needle in ["metadata libraries", "`nvstreammux`", "`nvinfer`", "`nvtracker`", "infer_config", "`demo`"] {
            assert!(all.contains(needle), "{needle} not in {all}");
        }
    }

    #[test]
    fn gpu_presence_under_an_injected_root() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(GpuInfo::gather(root.path()), GpuInfo::default());
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        std::fs::write(root.path().join("dev/nvidia0"), "").unwrap();
        std::fs::create_dir_all(root.path().join("proc/driver/nvidia")).unwrap();
        std::fs::write(root.path().join("proc/driver/nvidia/version"), "NVRM version: 590.48\nGCC version\n").unwrap();
        let gpu = GpuInfo::gather(root.path());
        assert!(gpu.present);
        assert_eq!(gpu.device_nodes.len(), 1);
        assert_eq!(gpu.driver_version.as_deref(), Some("NVRM version: 590.48"));
    }
}
