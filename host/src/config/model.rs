//! The configuration file's structure: every field documented with its
//! default. Defaults that the runtime also needs live in `config::defaults`.
//! The example configs in `configs/` are loaded by the tests.

use std::path::PathBuf;

use serde::Deserialize;

use super::defaults;

/// A whole dshost config (`configs/*.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Video sources.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Strategy plugins and which sources they see.
    #[serde(default)]
    pub strategies: Vec<StrategyConfig>,
    #[serde(default)]
    pub recovery: RecoveryConfig,
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    #[serde(default)]
    pub alerts: AlertsConfig,
}

/// What happens to detections on their way out.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Throttle for every strategy.
    #[serde(default)]
    pub throttle: crate::alerts::ThrottleConfig,
    /// Per-strategy throttles (by strategy name), replacing the global one.
    #[serde(default)]
    pub strategies: std::collections::BTreeMap<String, crate::alerts::ThrottleConfig>,
    /// The durable alert journal (SQLite under the data directory).
    #[serde(default)]
    pub journal: crate::alerts::JournalConfig,
    /// Where alerts go; empty = readable lines on stdout.
    #[serde(default)]
    pub sinks: Vec<crate::alerts::SinkConfig>,
    /// A picture of each alert's frame (and a crop of the object).
    #[serde(default)]
    pub snapshots: crate::alerts::snapshot::SnapshotConfig,
    /// At exit, how long sinks may keep delivering what they hold; the rest
    /// stays pending in the journal for the next start.
    #[serde(default = "AlertsConfig::default_shutdown_grace")]
    pub shutdown_grace_seconds: f64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            throttle: Default::default(),
            strategies: Default::default(),
            journal: Default::default(),
            sinks: Vec::new(),
            snapshots: Default::default(),
            shutdown_grace_seconds: Self::default_shutdown_grace(),
        }
    }
}

impl AlertsConfig {
    fn default_shutdown_grace() -> f64 {
        5.0
    }
}

/// Metrics, health and the control API.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    /// The HTTP server; absent = off (unless `--http` is given).
    #[serde(default)]
    pub http: Option<HttpConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on.
    #[serde(default = "HttpConfig::default_address")]
    pub address: String,
    /// Bearer token required on `/metrics` and `/v1`; mandatory when the
    /// address is not a loopback address. Prefer setting it through the
    /// environment (DSHOST_MONITORING__HTTP__TOKEN) over writing it here.
    #[serde(default)]
    pub token: Option<String>,
    /// Serve HTTPS with this certificate and key (PEM files).
    #[serde(default)]
    pub tls: Option<crate::tls::ServerTlsConfig>,
    /// Off loopback, allow the token over plain HTTP (logged at start).
    /// Without it, a token off loopback needs `tls`.
    #[serde(default)]
    pub allow_plaintext_token: bool,
}

impl HttpConfig {
    fn default_address() -> String {
        "127.0.0.1:9464".to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique id; appears in alerts, logs and metrics instead of the URI.
    pub id: String,
    /// File path, file://, rtsp://, http(s)://, v4l2://, test://PATTERN or scene://.
    pub uri: String,
    /// Restart a file from the beginning when it ends.
    #[serde(default, rename = "loop")]
    pub loop_file: bool,
    /// Play files at their frame rate instead of as fast as possible.
    #[serde(default)]
    pub realtime: bool,
    #[serde(default)]
    pub rtsp: RtspConfig,
    /// Object stage for this source; default: `pipeline.detector`.
    #[serde(default)]
    pub detector: Option<DetectorKind>,
    /// Video decoder for this source; default: `pipeline.decoder`.
    #[serde(default)]
    pub decoder: Option<DecoderKind>,
    /// How often the model runs on this source (`detector: onnx`); absent =
    /// the defaults of [`DetectSettings`].
    #[serde(default)]
    pub detect: Option<DetectSettings>,
    /// The GPU this source decodes and infers on; absent = the least loaded
    /// GPU (`pipeline.gpus`).
    #[serde(default)]
    pub device_id: Option<u32>,
}

/// Per-source pacing of the inference stage (Frigate's lesson: run the model
/// a few times per second, only when something moves, and let the tracker
/// carry boxes and ids in between).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectSettings {
    /// Model runs per second on this source; frames in between carry the
    /// tracker's boxes. Default 5 (one 640x640 YOLOv12n run costs ~137 ms of
    /// one core here, so 5/s fits a 2-core machine with room for decoding).
    pub fps: f64,
    /// Run the model only on frames where the motion detector saw something
    /// (default true); tracks are carried over still frames.
    pub motion_gate: bool,
}

impl Default for DetectSettings {
    fn default() -> Self {
        DetectSettings { fps: 5.0, motion_gate: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtspConfig {
    /// `tcp` (default; survives NAT and lossy links) or `udp` (lower latency).
    #[serde(default = "RtspConfig::default_transport")]
    pub transport: RtspTransport,
    /// Jitter buffer, milliseconds.
    #[serde(default = "RtspConfig::default_latency")]
    pub latency_ms: u32,
}

impl RtspConfig {
    fn default_transport() -> RtspTransport {
        RtspTransport::Tcp
    }
    fn default_latency() -> u32 {
        200
    }
}

impl Default for RtspConfig {
    fn default() -> Self {
        RtspConfig { transport: Self::default_transport(), latency_ms: Self::default_latency() }
    }
}

/// Where a frame's objects come from on the CPU backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    /// Region-of-interest metadata when the frame carries any, else motion.
    Auto,
    /// The built-in motion detector.
    Motion,
    /// Only `GstVideoRegionOfInterestMeta` attached upstream.
    Roi,
    /// No objects (strategies still see every frame).
    None,
    /// An ONNX model run by ONNX Runtime (`pipeline.onnx`).
    Onnx,
}

/// Which decoder turns compressed video (files, RTSP, HTTP) into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DecoderKind {
    /// NVIDIA's `nvv4l2decoder` + `nvvideoconvert` when they are registered
    /// and start, else the CPU decoder (the log says why).
    Auto,
    /// NVIDIA's GPU decoder; a source fails to start when it is unusable.
    Gpu,
    /// GStreamer's CPU decoders (FFmpeg, openh264, ...).
    Cpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// DeepStream when installed and usable, else CPU.
    Auto,
    /// Plain GStreamer on the CPU.
    Cpu,
    /// NVIDIA DeepStream; an error naming what is missing when it is not usable.
    Deepstream,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// `auto` (default: DeepStream when usable, else CPU), `cpu` or `deepstream`.
    pub backend: Backend,
    /// Default object stage for every source.
    pub detector: DetectorKind,
    /// Default video decoder for every source (`auto`, `gpu`, `cpu`).
    pub decoder: DecoderKind,
    /// The built-in motion detector.
    pub motion: MotionConfig,
    /// The IoU tracker giving ids to objects that come without one.
    pub tracker: TrackerConfig,
    /// Frames waiting per source for the strategies; when full the oldest is
    /// dropped and counted.
    pub queue_depth: usize,
    /// Class label table (index = class id); default: the 80 COCO labels
    /// plus `motion`.
    pub labels: Option<Vec<String>>,
    /// The DeepStream backend (used when `backend` picks it).
    pub deepstream: DeepStreamConfig,
    /// GPUs sources are spread over (decode and inference on the same GPU);
    /// absent = every NVIDIA GPU of the host.
    pub gpus: Option<Vec<u32>>,
    /// The ONNX Runtime inference stage (`detector: onnx`).
    pub onnx: OnnxConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            backend: Backend::Auto,
            detector: DetectorKind::Auto,
            decoder: DecoderKind::Auto,
            motion: MotionConfig::default(),
            tracker: TrackerConfig::default(),
            queue_depth: 16,
            labels: None,
            deepstream: DeepStreamConfig::default(),
            gpus: None,
            onnx: OnnxConfig::default(),
        }
    }
}

/// The ONNX Runtime inference stage: one model shared by every source that
/// uses `detector: onnx`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnnxConfig {
    /// The model file (`.onnx`). No default: `scripts/setup.sh` fetches a demo
    /// model to `~/.cache/dshost/models/yolov12n.onnx`.
    pub model: Option<PathBuf>,
    /// Output family; default `auto` (recognised from the output shapes and
    /// the model's metadata).
    pub format: OnnxFormat,
    /// Class labels; default `auto` (the model's `names` metadata, COCO for
    /// an 80-class model without it), or a file with one label per line.
    pub labels: OnnxLabels,
    /// Smallest score kept, 0-1; default 0.25 (Ultralytics' default).
    pub confidence: f32,
    /// Overlap above which class-wise NMS drops the weaker box; default 0.45.
    pub iou: f32,
    /// Only these labels are kept; default empty = all.
    pub classes: Vec<String>,
    /// Most boxes kept per frame; default 300 (Ultralytics' `max_det`).
    pub max_detections: usize,
    /// Execution provider; default `auto` (CUDA when it starts, else CPU,
    /// with the reason in the log).
    pub provider: OnnxProvider,
    /// GPU index for `cuda` and `tensorrt`; default 0.
    pub device_id: u32,
    /// Intra-op threads per session; default 0 = ONNX Runtime's choice (one
    /// per physical core).
    pub threads: usize,
    /// Inference worker threads, each with its own session; default: 1 on
    /// the CPU (intra-op threads already use every core), 4 on a GPU.
    pub workers: Option<usize>,
    /// Most frames run together in one batch (capped by what the model's
    /// batch dimension allows); default 4.
    pub max_batch: usize,
    /// How long a worker waits to fill a batch after its first frame, like
    /// nvstreammux's batched-push-timeout; default 10 ms.
    pub max_wait_ms: u64,
    /// Letterbox or stretch; default `auto` = what the format's reference
    /// code does (every supported family letterboxes).
    pub resize: OnnxResize,
    /// Capture each worker session's run once as a CUDA graph and replay it
    /// (GPU providers; models whose batch is fixed or 1). Inputs and outputs
    /// then go through fixed device buffers (IO binding). Default false.
    pub cuda_graph: bool,
}

impl Default for OnnxConfig {
    fn default() -> Self {
        OnnxConfig {
            model: None,
            format: OnnxFormat::Auto,
            labels: OnnxLabels::Auto,
            confidence: 0.25,
            iou: 0.45,
            classes: Vec::new(),
            max_detections: 300,
            provider: OnnxProvider::Auto,
            device_id: 0,
            threads: 0,
            workers: None,
            max_batch: 4,
            max_wait_ms: 10,
            resize: OnnxResize::Auto,
            cuda_graph: false,
        }
    }
}

/// How a model's output is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnnxFormat {
    /// Recognised from the output shapes and metadata.
    Auto,
    /// Ultralytics YOLOv5u/v8/v11/v12 heads: `[B, 4+nc, N]`, cx,cy,w,h and
    /// sigmoided class scores, no objectness, no NMS.
    Yolo,
    /// YOLOv5/YOLOv7: `[B, N, 5+nc]` with an objectness column.
    Yolov5,
    /// YOLOX: `[B, N, 5+nc]`, grid-decoded here when the export did not.
    Yolox,
    /// NMS inside the graph: `[B, K, 6]` or `[B, K, 7]` / `[K, 7]`.
    End2end,
}

/// Where class labels come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnnxLabels {
    /// The model's `names` metadata.
    Auto,
    /// A file with one label per line (line N = class N).
    File(PathBuf),
}

impl<'de> Deserialize<'de> for OnnxLabels {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(if text == "auto" { OnnxLabels::Auto } else { OnnxLabels::File(PathBuf::from(text)) })
    }
}

/// ONNX Runtime execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnnxProvider {
    /// CUDA when the library has it and it starts, else the CPU (logged).
    Auto,
    Cpu,
    /// NVIDIA CUDA; refuses to start when unusable, naming what is missing.
    Cuda,
    /// NVIDIA TensorRT (engines are built at the first start: minutes).
    Tensorrt,
}

/// How a frame is fitted into the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnnxResize {
    /// What the format's reference preprocessing does.
    Auto,
    /// Keep the aspect ratio and pad with grey 114.
    Letterbox,
    /// Scale each axis to the input size.
    Stretch,
}

/// The DeepStream backend: one batched pipeline (sources -> nvstreammux ->
/// nvinfer -> optional nvtracker -> dshost's probe). Element and property
/// choices come from the profile of the detected DeepStream version.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeepStreamConfig {
    /// Version override (e.g. `7.1`), taking precedence over detection;
    /// the metadata library's fingerprint must still confirm its layout.
    /// A number (`9.0`) is taken as its text.
    #[serde(deserialize_with = "version_text")]
    pub version: Option<String>,
    /// Install root holding `version`, `lib/` and the sample configs.
    pub root: PathBuf,
    /// nvinfer config file of the primary detector (required for DeepStream).
    pub infer_config: Option<PathBuf>,
    /// nvstreammux/nvinfer batch size; default: the number of sources.
    pub batch_size: Option<u32>,
    /// Legacy nvstreammux output width (boxes are in this coordinate space); default 1280.
    pub width: u32,
    /// Legacy nvstreammux output height; default 720.
    pub height: u32,
    /// How long nvstreammux waits to fill a batch, microseconds.
    pub batched_push_timeout_us: u32,
    /// Use the new nvstreammux (`USE_NEW_NVSTREAMMUX=yes`; DeepStream 6.0 and later).
    pub new_streammux: bool,
    /// Which confidence strategies see: the detector's or the tracker's.
    pub confidence: ConfidenceSource,
    /// The GPU the DeepStream elements run on; default 0.
    pub gpu_id: u32,
    /// nvtracker (off by default).
    pub tracker: DeepStreamTrackerConfig,
}

impl Default for DeepStreamConfig {
    fn default() -> Self {
        DeepStreamConfig {
            version: None,
            root: PathBuf::from("/opt/nvidia/deepstream/deepstream"),
            infer_config: None,
            batch_size: None,
            width: 1280,
            height: 720,
            batched_push_timeout_us: 40_000,
            new_streammux: false,
            confidence: ConfidenceSource::Detector,
            gpu_id: 0,
            tracker: DeepStreamTrackerConfig::default(),
        }
    }
}

fn version_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match serde_yaml::Value::deserialize(deserializer)? {
        serde_yaml::Value::Null => Ok(None),
        serde_yaml::Value::String(text) => Ok(Some(text)),
        serde_yaml::Value::Number(number) => Ok(Some(number.to_string())),
        _ => Err(serde::de::Error::custom("expected a version like 7.1 or 9.0.2")),
    }
}

/// Which confidence the compact object record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfidenceSource {
    /// `confidence`: the detector's (nvinfer).
    #[default]
    Detector,
    /// `tracker_confidence` for tracked objects, the detector's for untracked ones.
    Tracker,
}

/// nvtracker in the DeepStream pipeline.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeepStreamTrackerConfig {
    /// Add nvtracker after nvinfer; default false.
    pub enabled: bool,
    /// Low-level tracker config (`ll-config-file`); default: the sample
    /// config of the installed release, where the profile names one.
    pub config_file: Option<PathBuf>,
    /// Low-level tracker library (`ll-lib-file`); default: the profile's.
    pub lib_file: Option<PathBuf>,
}

/// Built-in motion detector (frame differencing).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotionConfig {
    /// Width of the grey analysis image; height follows the aspect ratio.
    pub analysis_width: u32,
    /// Per-pixel brightness change (0-255) that counts as motion.
    pub threshold: u8,
    /// Morphological closing iterations (joins fragments of one object).
    pub closing: u32,
    /// Smallest object, as a fraction of the frame area.
    pub min_area: f32,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig { analysis_width: 160, threshold: 25, closing: 2, min_area: 0.001 }
    }
}

/// IoU tracker giving stable object ids to detections that have none.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerConfig {
    /// Default true.
    pub enabled: bool,
    /// Overlap needed to continue a track.
    pub iou_threshold: f32,
    /// Frames a track survives without a match (frames the model ran on,
    /// when the model does not run on every frame).
    pub max_missed_frames: u32,
    /// ByteTrack-style second pass: boxes scoring at least this much but
    /// below the detector's confidence only continue existing tracks (so an
    /// id survives a frame where the object scored weakly); they never start
    /// one. Absent (default) = off, one pass over every box.
    pub low_confidence: Option<f32>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig { enabled: true, iou_threshold: 0.3, max_missed_frames: 15, low_confidence: None }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    /// Unique name; alerts carry it. Default: the file name without `.wasm`.
    #[serde(default)]
    pub name: Option<String>,
    /// The component, e.g. `target/strategies/yolo_filter.wasm`.
    pub path: PathBuf,
    /// The strategy's own settings, passed to it as JSON.
    #[serde(default)]
    pub config: serde_yaml::Value,
    /// Source ids this strategy sees; empty or absent = every source.
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub limits: LimitsConfig,
}

impl StrategyConfig {
    pub fn resolved_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "strategy".into())
        })
    }
}

/// Sandbox limits of one strategy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Linear memory cap of each instance, MiB; default 64.
    pub memory_mib: usize,
    /// Deadline of one `process` call, milliseconds; default 20.
    pub call_timeout_ms: u64,
    /// Most detections one call may return (the rest are dropped and counted); default 256.
    pub max_detections: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            memory_mib: defaults::STRATEGY_MEMORY_MIB,
            call_timeout_ms: defaults::STRATEGY_CALL_TIMEOUT_MS,
            max_detections: defaults::STRATEGY_MAX_DETECTIONS,
        }
    }
}

/// Source restarts and strategy recovery.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    /// First wait before a failed source restarts, milliseconds; default 500.
    pub initial_backoff_ms: u64,
    /// Longest wait between restarts (the wait doubles per failure), milliseconds; default 10000.
    pub max_backoff_ms: u64,
    /// Restarts before a source is given up; absent = unlimited for live
    /// sources, 3 for files.
    pub max_attempts: Option<u32>,
    /// A source that produces no frame for this long is restarted.
    pub watchdog_seconds: f64,
    /// Consecutive failures after which a strategy instance is quarantined.
    pub strategy_quarantine_after: u32,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            initial_backoff_ms: 500,
            max_backoff_ms: 10_000,
            max_attempts: None,
            watchdog_seconds: 5.0,
            strategy_quarantine_after: defaults::STRATEGY_QUARANTINE_AFTER,
        }
    }
}
