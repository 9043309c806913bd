//! Config + profile -> the batched pipeline, as gst-launch text: one core
//! (`nvstreammux` -> `nvinfer` -> optional `nvtracker` -> dshost's sink,
//! whose pad probe reads the metadata) and one chain per source ending in
//! a request pad of the muxer. The runner parses the core once and adds
//! or removes source chains while running; the golden tests pin the whole
//! text for every profile.

use std::path::Path;

use super::profile::{Profile, SourceElement, TrackerStyle};
use crate::config::{DeepStreamConfig, RtspTransport};
use crate::pipeline::source::SourceSpec;
use crate::pipeline::uri::SourceUri;

pub const MUX: &str = "dshost-mux";
pub const SINK: &str = "dshost-sink";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error(
        "`pipeline.deepstream.infer_config` is not set: the DeepStream backend needs an nvinfer config file for its \
         detector (see /opt/nvidia/deepstream/deepstream/samples/configs/deepstream-app/config_infer_primary.txt)"
    )]
    NoInferConfig,
    #[error(
        "source `{id}` ({kind}) cannot run on the DeepStream backend, which takes files, rtsp:// and http(s):// \
         URIs; use `pipeline.backend: cpu` for it"
    )]
    UnsupportedSource { id: String, kind: &'static str },
    #[error("source `{id}`: cannot make a URI of {path}: {message}")]
    Path { id: String, path: String, message: String },
    #[error(
        "the new nvstreammux is not available in DeepStream {profile} (alpha before 6.0); set \
         `pipeline.deepstream.new_streammux: false`"
    )]
    NewMuxUnavailable { profile: &'static str },
}

/// A source as the DeepStream pipeline takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsSource {
    pub id: String,
    /// Full URI (credentials included for RTSP: the elements need them).
    pub uri: String,
    pub rtsp: bool,
    pub rtsp_tcp: bool,
    pub rtsp_latency_ms: u32,
    pub loop_file: bool,
}

impl DsSource {
    pub fn from_spec(spec: &SourceSpec) -> Result<Self, BuildError> {
        let id = spec.id.to_string();
        let (uri, rtsp) = match &spec.uri {
            SourceUri::File { path } => {
                let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                let uri = url::Url::from_file_path(&absolute).map_err(|()| BuildError::Path {
                    id: id.clone(),
                    path: absolute.display().to_string(),
                    message: "not an absolute path".into(),
                })?;
                (uri.to_string(), false)
            }
            SourceUri::Rtsp { url, user, password } => (with_credentials(url, user, password), true),
            SourceUri::Http { url, user, password } => (with_credentials(url, user, password), false),
            SourceUri::V4l2 { .. } => return Err(BuildError::UnsupportedSource { id, kind: "v4l2 camera" }),
            SourceUri::Test { .. } => return Err(BuildError::UnsupportedSource { id, kind: "test pattern" }),
            SourceUri::Scene { .. } => return Err(BuildError::UnsupportedSource { id, kind: "synthetic scene" }),
        };
        Ok(DsSource {
            id,
            uri,
            rtsp,
            rtsp_tcp: spec.rtsp.transport == RtspTransport::Tcp,
            rtsp_latency_ms: spec.rtsp.latency_ms,
            loop_file: spec.loop_file,
        })
    }
}

fn with_credentials(url: &url::Url, user: &Option<String>, password: &Option<String>) -> String {
    let mut url = url.clone();
    if let Some(user) = user {
        let _ = url.set_username(user);
    }
    if password.is_some() {
        let _ = url.set_password(password.as_deref());
    }
    url.to_string()
}

/// The whole batched pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineDescription {
    pub profile: &'static str,
    /// Environment the plugins read when they load (before the first element is made).
    pub env: Vec<(&'static str, &'static str)>,
    /// Muxer -> inference -> tracker -> sink.
    pub core: String,
    /// (source id, muxer pad index, chain); the chain's last element links
    /// to `dshost-mux.sink_<index>`.
    pub sources: Vec<(String, u32, String)>,
}

impl PipelineDescription {
    /// The text of the golden files: comment lines, then one gst-launch
    /// description per line (core first; together one pipeline).
    pub fn to_text(&self) -> String {
        let env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut text = format!(
            "# DeepStream profile {}\n# environment: {}\n{}\n",
            self.profile,
            if env.is_empty() { "-".to_string() } else { env.join(" ") },
            self.core
        );
        for (_, index, chain) in &self.sources {
            text.push_str(&format!("{chain} ! {MUX}.sink_{index}\n"));
        }
        text
    }

    /// Everything as one gst-launch description.
    pub fn launch_line(&self) -> String {
        let mut line = self.core.clone();
        for (_, index, chain) in &self.sources {
            line.push_str(&format!(" {chain} ! {MUX}.sink_{index}"));
        }
        line
    }
}

/// Quotes a property value for gst-launch syntax.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn path_text(path: &Path) -> String {
    quote(&path.display().to_string())
}

/// The core: muxer, inference, optional tracker, sink.
pub fn core(config: &DeepStreamConfig, profile: &Profile, sources: usize) -> Result<String, BuildError> {
    let infer = config.infer_config.as_deref().ok_or(BuildError::NoInferConfig)?;
    let batch = config.batch_size.unwrap_or(sources as u32).max(1);
    let mut parts = Vec::new();
    if config.new_streammux {
        if !profile.new_streammux_available {
            return Err(BuildError::NewMuxUnavailable { profile: profile.id });
        }
        // The new muxer does not scale (no width/height); nvinfer scales per frame.
        let mut mux = format!("nvstreammux name={MUX} batch-size={batch}");
        if profile.new_streammux_push_timeout {
            mux.push_str(&format!(" batched-push-timeout={}", config.batched_push_timeout_us));
        }
        parts.push(mux);
    } else {
        parts.push(format!(
            "nvstreammux name={MUX} batch-size={batch} width={} height={} batched-push-timeout={} gpu-id={} \
             enable-padding=0",
            config.width, config.height, config.batched_push_timeout_us, config.gpu_id
        ));
    }
    parts.push(format!(
        "nvinfer name=dshost-infer config-file-path={} batch-size={batch} gpu-id={}",
        path_text(infer),
        config.gpu_id
    ));
    if config.tracker.enabled {
        let lib =
            config.tracker.lib_file.clone().unwrap_or_else(|| config.root.join("lib").join(profile.tracker_library));
        let mut tracker =
            format!("nvtracker name=dshost-tracker ll-lib-file={} gpu-id={}", path_text(&lib), config.gpu_id);
        let tracker_config =
            config.tracker.config_file.clone().or_else(|| profile.tracker_sample_config.map(|c| config.root.join(c)));
        if let Some(file) = tracker_config {
            tracker.push_str(&format!(" ll-config-file={}", path_text(&file)));
        }
        if profile.tracker_batch_process {
            tracker.push_str(" enable-batch-process=1");
        }
        if profile.tracker == TrackerStyle::Legacy {
            // deepstream-app's default tracker resolution for the 5.x libraries.
            tracker.push_str(" tracker-width=640 tracker-height=384");
        }
        parts.push(tracker);
    }
    // sync=false: dshost paces nothing itself; the probe on this sink reads the metadata.
    parts.push(format!("fakesink name={SINK} sync=false async=false enable-last-sample=false"));
    Ok(parts.join(" ! "))
}

/// The chain of one source (without the link to the muxer).
pub fn source_chain(config: &DeepStreamConfig, profile: &Profile, index: u32, source: &DsSource) -> String {
    match profile.source {
        SourceElement::Nvurisrcbin => {
            let mut element =
                format!("nvurisrcbin name=dshost-src-{index} uri={} gpu-id={}", quote(&source.uri), config.gpu_id);
            if source.rtsp {
                // 4 = TCP only, 0 = UDP and TCP; nvurisrcbin reconnects by itself.
                element.push_str(&format!(
                    " latency={} select-rtp-protocol={} rtsp-reconnect-interval=5",
                    source.rtsp_latency_ms,
                    if source.rtsp_tcp { 4 } else { 0 }
                ));
            }
            if source.loop_file {
                element.push_str(" file-loop=true");
            }
            format!("{element} ! queue name=dshost-queue-{index}")
        }
        SourceElement::Uridecodebin => format!(
            "uridecodebin name=dshost-src-{index} uri={} ! nvvideoconvert gpu-id={} ! \
             video/x-raw(memory:NVMM),format=NV12 ! queue name=dshost-queue-{index}",
            quote(&source.uri),
            config.gpu_id
        ),
    }
}

/// The whole pipeline for `sources`, which get muxer pads 0, 1, ...
pub fn build(
    config: &DeepStreamConfig,
    profile: &Profile,
    sources: &[DsSource],
) -> Result<PipelineDescription, BuildError> {
    let core = core(config, profile, sources.len())?;
    let sources = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i as u32, source_chain(config, profile, i as u32, s)))
        .collect();
    let env = if config.new_streammux { vec![("USE_NEW_NVSTREAMMUX", "yes")] } else { Vec::new() };
    Ok(PipelineDescription { profile: profile.id, env, core, sources })
}

#[cfg(test)]
mod tests {
    //! Golden tests: the description built from one fixed config for every
    //! profile equals `tests/fixtures/deepstream/pipeline-<profile>.txt`.
    //! `DSHOST_BLESS=1` rewrites the files after an intended change.
    use std::path::PathBuf;

    use super::*;
    use crate::pipeline::deepstream::profile::PROFILES;

    fn fixed_config() -> DeepStreamConfig {
        let mut config = DeepStreamConfig {
            infer_config: Some(PathBuf::from("/etc/dshost/config_infer_primary.txt")),
            batch_size: None,
            ..DeepStreamConfig::default()
        };
        config.tracker.enabled = true;
        config
    }

    fn fixed_sources() -> Vec<DsSource> {
        vec![
            DsSource {
                id: "lobby".into(),
                uri: "file:///videos/lobby.mp4".into(),
                rtsp: false,
                rtsp_tcp: false,
                rtsp_latency_ms: 0,
                loop_file: true,
            },
            DsSource {
                id: "gate".into(),
                uri: "rtsp://viewer:pw@gate.example:554/stream1".into(),
                rtsp: true,
                rtsp_tcp: true,
                rtsp_latency_ms: 200,
                loop_file: false,
            },
        ]
    }

    fn check_golden(name: &str, text: &str) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/deepstream").join(name);
        if std::env::var_os("DSHOST_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (DSHOST_BLESS=1 writes it)", path.display()));
        assert_eq!(text, expected, "{} differs (DSHOST_BLESS=1 rewrites it after an intended change)", path.display());
    }

    #[test]
    fn golden_pipeline_for_every_profile() {
        for profile in &PROFILES {
            let description = build(&fixed_config(), profile, &fixed_sources()).unwrap();
            check_golden(&format!("pipeline-{}.txt", profile.id), &description.to_text());
        }
    }

    #[test]
    fn golden_new_streammux() {
        let config = DeepStreamConfig { new_streammux: true, ..fixed_config() };
        for id in ["6.0-6.3", "9.x"] {
            let profile = Profile::by_id(id).unwrap();
            let description = build(&config, profile, &fixed_sources()).unwrap();
            assert_eq!(description.env, vec![("USE_NEW_NVSTREAMMUX", "yes")]);
            check_golden(&format!("pipeline-{id}-new-streammux.txt",), &description.to_text());
        }
        let error = build(&config, Profile::by_id("5.x").unwrap(), &fixed_sources()).unwrap_err();
        assert_eq!(error, BuildError::NewMuxUnavailable { profile: "5.x" });
    }

    #[test]
    fn launch_line_joins_core_and_sources() {
        let description = build(&fixed_config(), Profile::by_id("9.x").unwrap(), &fixed_sources()).unwrap();
        let line = description.launch_line();
        assert!(line.starts_with(&description.core));
        assert!(
            line.contains("! dshost-queue-1 ! dshost-mux.sink_1")
                || line.contains("name=dshost-queue-1 ! dshost-mux.sink_1")
        );
    }

    #[test]
    fn errors_name_the_missing_setting_and_the_source() {
        let config = DeepStreamConfig::default();
        let error = build(&config, &PROFILES[0], &fixed_sources()).unwrap_err();
        assert!(error.to_string().contains("pipeline.deepstream.infer_config"), "{error}");
        let scene = crate::pipeline::source::SourceSpec::from_config(
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
        let error = DsSource::from_spec(&scene).unwrap_err();
        assert!(error.to_string().contains("`demo`") && error.to_string().contains("synthetic scene"), "{error}");
    }

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(quote(r#"a "b" c\d"#), r#""a \"b\" c\\d""#);
    }
}
