//! `dshost probe`: what this machine offers the pipeline (GStreamer,
//! DeepStream version and how it was found, metadata layout, profile,
//! DeepStream elements, GPU) and which backend `auto` picks, and why.
//! The JSON shape is documented in `docs/probe.md`.

use serde::Serialize;

use crate::config::{Backend, Config};
use crate::pipeline::deepstream::select::{Choice, ElementInfo, GpuInfo};
use crate::pipeline::deepstream::{Fingerprint, MetaLayout};
use crate::runtime::backend::BackendSurvey;

#[derive(Debug, Serialize)]
pub struct ProbeReport {
    pub gstreamer: GstreamerInfo,
    pub deepstream: DeepStreamInfo,
    pub gpu: GpuInfo,
    /// GPU decoding (nvv4l2decoder) detection: filled by the GPU-decode
    /// module (issue #9) once it exists; `null` until then.
    pub gpu_decode: Option<serde_json::Value>,
    /// ONNX Runtime for the inference stage: version, library, providers.
    pub onnxruntime: Option<crate::detect::onnx::RuntimeReport>,
    pub backend: BackendInfo,
}

#[derive(Debug, Serialize)]
pub struct GstreamerInfo {
    pub version: String,
}

#[derive(Debug, Serialize)]
pub struct DeepStreamInfo {
    /// Any sign of DeepStream (a version or a loadable metadata library).
    pub found: bool,
    pub version: Option<String>,
    /// `override`, `version_file`, `plugin_registry` or `fingerprint`.
    pub detected_by: Option<crate::pipeline::deepstream::version::VersionSource>,
    pub root: String,
    pub metadata_library: LibraryInfo,
    pub fingerprint: Option<Fingerprint>,
    /// The layout dshost reads (confirmed by the fingerprint), or null.
    pub metadata_layout: Option<MetaLayout>,
    pub profile: Option<&'static str>,
    pub elements: Vec<ElementInfo>,
    /// Disagreements between sources and refusals.
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct LibraryInfo {
    pub loaded: bool,
    pub location: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BackendInfo {
    /// `pipeline.backend` of the config probed.
    pub configured: &'static str,
    /// What `auto` runs here, with the config's sources and settings.
    pub auto: Choice,
    /// What the configured setting runs here...
    pub configured_runs: Option<Choice>,
    /// ...or why it cannot start.
    pub configured_error: Option<String>,
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Auto => "auto",
        Backend::Cpu => "cpu",
        Backend::Deepstream => "deepstream",
    }
}

/// Looks at this machine with `config`'s pipeline settings and sources
/// (sources that fail to parse are left out of the source check).
pub fn probe(config: &Config) -> ProbeReport {
    let _ = crate::pipeline::init();
    let gathered = BackendSurvey::gather(config);
    let auto = match gathered.decide(Backend::Auto) {
        Ok(choice) => choice,
        Err(error) => Choice::Cpu { reason: error.to_string() },
    };
    let (configured_runs, configured_error) = match gathered.decide(config.pipeline.backend) {
        Ok(choice) => (Some(choice), None),
        Err(error) => (None, Some(error.to_string())),
    };
    let survey = gathered.survey;
    let layout = survey.detection.layout;
    let profile = survey.profile;
    let (loaded, location, error) = match &survey.library {
        Ok(library) => (true, Some(library.location.clone()), None),
        Err(error) => (false, None, Some(error.clone())),
    };
    ProbeReport {
        gstreamer: GstreamerInfo { version: gstreamer::version_string().to_string() },
        deepstream: DeepStreamInfo {
            found: survey.detection.found() || survey.elements.iter().any(|e| e.plugin_version.is_some()),
            version: survey.detection.version.map(|v| v.to_string()),
            detected_by: survey.detection.source,
            root: survey.root.display().to_string(),
            metadata_library: LibraryInfo { loaded, location, error },
            fingerprint: survey.detection.fingerprint,
            metadata_layout: layout,
            profile: profile.map(|p| p.id),
            elements: survey.elements.clone(),
            problems: survey.detection.problems.clone(),
        },
        gpu: survey.gpu.clone(),
        gpu_decode: None,
        onnxruntime: Some(crate::detect::onnx::runtime::probe(
            &crate::detect::onnx::LibrarySearch::from_env(),
            config.pipeline.onnx.device_id,
        )),
        backend: BackendInfo {
            configured: backend_name(config.pipeline.backend),
            auto,
            configured_runs,
            configured_error,
        },
    }
}

impl ProbeReport {
    /// The readable form of the report.
    pub fn to_text(&self) -> String {
        let ds = &self.deepstream;
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!("GStreamer:        {}", self.gstreamer.version));
        line(format!(
            "DeepStream:       {}",
            match (&ds.version, ds.found) {
                (Some(v), _) => format!("{v} (detected by {})", detected(ds)),
                (None, true) => format!("version unknown (detected by {})", detected(ds)),
                (None, false) => "not found".to_string(),
            }
        ));
        line(format!("  install root:   {}", ds.root));
        line(format!(
            "  metadata libs:  {}",
            match (&ds.metadata_library.location, &ds.metadata_library.error) {
                (Some(location), _) => format!("loaded ({location})"),
                (None, Some(error)) => format!("not loaded: {error}"),
                (None, None) => "not loaded".to_string(),
            }
        ));
        if let Some(f) = &ds.fingerprint {
            line(format!(
                "  fingerprint:    object meta {} bytes, frame meta {} bytes",
                f.object_meta_size, f.frame_meta_size
            ));
        }
        line(format!(
            "  metadata layout: {}",
            ds.metadata_layout.map(|l| l.to_string()).unwrap_or_else(|| "none (metadata is not read)".into())
        ));
        line(format!("  profile:        {}", ds.profile.unwrap_or("none")));
        let present: Vec<String> =
            ds.elements.iter().filter_map(|e| e.plugin_version.as_ref().map(|v| format!("{} {v}", e.name))).collect();
        line(format!("  elements:       {}", if present.is_empty() { "none".to_string() } else { present.join(", ") }));
        for problem in &ds.problems {
            line(format!("  problem:        {problem}"));
        }
        line(format!(
            "GPU:              {}",
            if self.gpu.present {
                format!("{} {}", self.gpu.device_nodes.join(" "), self.gpu.driver_version.clone().unwrap_or_default())
            } else {
                "none".to_string()
            }
        ));
        line(format!("  libcuda:        {}", if self.gpu.libcuda_loadable { "loadable" } else { "not loadable" }));
        if let Some(ort) = &self.onnxruntime {
            use crate::detect::onnx::ProviderStatus;
            match (&ort.version, &ort.library, &ort.error) {
                (Some(version), Some(library), _) => line(format!("ONNX Runtime:     {version} ({library})")),
                (_, _, Some(error)) => line(format!("ONNX Runtime:     not usable: {error}")),
                _ => line("ONNX Runtime:     not usable".to_string()),
            }
            if let Some(providers) = &ort.providers {
                for (name, status) in
                    [("cpu", &providers.cpu), ("cuda", &providers.cuda), ("tensorrt", &providers.tensorrt)]
                {
                    let text = match status {
                        ProviderStatus::Usable => "usable".to_string(),
                        ProviderStatus::Unusable(why) => format!("unusable: {why}"),
                    };
                    line(format!("  {name:<15} {text}"));
                }
            }
        }
        line(format!("Backend `auto`:   {}", choice_text(&self.backend.auto)));
        if self.backend.configured != "auto" {
            line(format!(
                "Backend `{}`: {}",
                self.backend.configured,
                match (&self.backend.configured_runs, &self.backend.configured_error) {
                    (Some(choice), _) => choice_text(choice),
                    (None, error) => format!("cannot start: {}", error.as_deref().unwrap_or("-")),
                }
            ));
        }
        out
    }
}

fn detected(ds: &DeepStreamInfo) -> String {
    serde_json::to_value(ds.detected_by)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "-".to_string())
}

fn choice_text(choice: &Choice) -> String {
    match choice {
        Choice::Cpu { reason } => format!("cpu ({reason})"),
        Choice::Deepstream { profile, layout } => {
            format!("deepstream (profile {profile}, metadata layout {layout})")
        }
    }
}
