//! Command-line interface (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "dshost",
    version,
    about = "Run sandboxed WebAssembly strategies on live video analytics",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub global: GlobalArgs,
    /// `dshost [OPTIONS]` is `dshost run [OPTIONS]`.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options of the main job.
#[derive(Debug, Clone, Args, Default)]
pub struct RunArgs {
    /// Config file (YAML). Default: the embedded default config: one synthetic
    /// `scene://` source (rendered objects with ground truth, not real video).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Strategy component to run (repeatable). Replaces the config's strategy list;
    /// a config entry with the same name (file name without .wasm) supplies its settings.
    #[arg(long = "strategy", value_name = "FILE.wasm")]
    pub strategies: Vec<PathBuf>,
    /// Video source URI (repeatable): file path, rtsp://, http(s)://, v4l2://, test://PATTERN,
    /// scene://. Replaces the config's sources; ids are source-1, source-2, ...
    #[arg(long = "source", value_name = "URI")]
    pub sources: Vec<String>,
    /// ONNX detector model (the short form of `pipeline.onnx.model`): sources
    /// with `detector: auto` (the default) run it.
    #[arg(long, value_name = "FILE.onnx")]
    pub model: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Write alerts as JSON lines to FILE, or to stdout with `-` (instead of readable lines).
    #[arg(long, value_name = "FILE|-")]
    pub alerts_jsonl: Option<String>,
    /// Write the exit summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// Serve metrics, health and the control API on ADDR (e.g. 127.0.0.1:9464);
    /// overrides `monitoring.http.address`.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Do not watch strategy files and the config file for changes (no hot reload).
    #[arg(long)]
    pub no_watch: bool,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory for persistent state (compiled-strategy cache, alert journal).
    /// Default: $XDG_DATA_HOME/dshost or ~/.local/share/dshost.
    #[arg(long, global = true, env = "DSHOST_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "DSHOST_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline and strategies (the default command).
    Run(RunArgs),
    /// Check a config file; prints every error with its line, exits non-zero on errors.
    ValidateConfig { file: PathBuf },
    /// Record each frame's objects from a source as JSON lines (replayable with `strategy test`).
    Record(RecordArgs),
    /// Inspect and test strategy components.
    #[command(subcommand)]
    Strategy(StrategyCommand),
    /// Read the alert journal: alerts with their delivery state per sink.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Report GStreamer, DeepStream (version, how detected, metadata layout,
    /// profile, elements), the GPU, and which backend `auto` picks and why.
    Probe(ProbeArgs),
    /// Print a shell completion script on stdout, e.g.
    /// `dshost completions bash > /etc/bash_completion.d/dshost`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, e.g. `dshost man | man -l -`.
    Man,
    /// Inspect ONNX models for the inference stage (`pipeline.detector: onnx`).
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Load a model as the inference stage does and report its inputs,
    /// outputs, detected format, labels, batch sizes, the ONNX Runtime and
    /// providers, and the time of one inference (warm-up excluded).
    Check(ModelCheckArgs),
}

#[derive(Debug, Args)]
pub struct ModelCheckArgs {
    /// The model (.onnx).
    pub file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Labels file, one label per line (default: the model's `names` metadata).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Output format (default: recognised from the outputs).
    #[arg(long, value_enum, default_value_t = ModelFormatArg::Auto)]
    pub format: ModelFormatArg,
    /// Execution provider.
    #[arg(long, value_enum, default_value_t = ModelProviderArg::Auto)]
    pub provider: ModelProviderArg,
    /// GPU index for cuda and tensorrt.
    #[arg(long, default_value_t = 0)]
    pub device_id: u32,
    /// Intra-op threads (0 = ONNX Runtime's choice).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Replay a captured CUDA graph with IO binding (GPU providers; as
    /// `pipeline.onnx.cuda_graph`), for the timed runs and `--throughput`.
    #[arg(long)]
    pub cuda_graph: bool,
    /// Timed inferences after the warm-up (the report gives the median).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub runs: usize,
    /// Throughput of bare inference: for each thread count (comma-separated,
    /// e.g. `1,4,8`), that many threads, each with a session of its own, run
    /// the model for `--seconds`; prints images/s and latency per count.
    #[arg(long, value_name = "THREADS,...", value_delimiter = ',')]
    pub throughput: Vec<usize>,
    /// Seconds per `--throughput` step.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelFormatArg {
    Auto,
    Yolo,
    Yolov5,
    Yolox,
    End2end,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelProviderArg {
    Auto,
    Cpu,
    Cuda,
    Tensorrt,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Print journaled alerts, oldest first.
    List(AlertsListArgs),
    /// Print the newest alerts, then follow new ones as they are journaled.
    Tail(AlertsTailArgs),
}

#[derive(Debug, Clone, Args)]
pub struct JournalFilter {
    /// The journal file (default: <data-dir>/alerts.db).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Print alert JSON lines with a `delivery` object (state per sink).
    #[arg(long)]
    pub json: bool,
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only this strategy.
    #[arg(long)]
    pub strategy: Option<String>,
}

#[derive(Debug, Args)]
pub struct AlertsListArgs {
    #[command(flatten)]
    pub filter: JournalFilter,
    /// Only alerts with at least one delivery in this state.
    #[arg(long, value_enum)]
    pub state: Option<DeliveryStateArg>,
    /// Only the newest N.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
}

#[derive(Debug, Args)]
pub struct AlertsTailArgs {
    #[command(flatten)]
    pub filter: JournalFilter,
    /// How many of the newest alerts to print first.
    #[arg(short = 'n', long, default_value_t = 10)]
    pub lines: usize,
    /// Print and exit instead of following.
    #[arg(long)]
    pub no_follow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeliveryStateArg {
    Pending,
    Delivered,
    Rejected,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Print the report as JSON (shape in docs/probe.md).
    #[arg(long)]
    pub json: bool,
    /// Config whose `pipeline` settings and sources apply (default: the embedded default).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum StrategyCommand {
    /// Check that a file is a valid strategy component and show what it says
    /// about itself.
    Check {
        /// The strategy component (.wasm).
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replay recorded frames (JSON lines) through a strategy and print each
    /// detection as an alert JSON line on stdout. Needs no GStreamer or GPU.
    Test(StrategyTestArgs),
}

#[derive(Debug, Args)]
pub struct StrategyTestArgs {
    /// The strategy component (.wasm).
    pub file: PathBuf,
    /// Frames to replay, one JSON object per line (the format `dshost record` writes).
    #[arg(long, value_name = "FRAMES.jsonl")]
    pub frames: PathBuf,
    /// The strategy's own config (YAML or JSON), as under `config:` in a dshost config.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Strategy name used in the output (default: the file name without extension).
    #[arg(long)]
    pub name: Option<String>,
    /// Class labels, one per line, line N = class id N (default: the 80 COCO labels).
    /// Labels named in the frames file are added.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Deadline of one `process` call, milliseconds.
    #[arg(long, default_value_t = 20)]
    pub call_timeout_ms: u64,
    /// Memory cap of the instance, MiB.
    #[arg(long, default_value_t = 64)]
    pub memory_mib: usize,
    /// Most detections accepted per frame.
    #[arg(long, default_value_t = 256)]
    pub max_detections: usize,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Source URI (same forms as `--source`).
    #[arg(long, value_name = "URI")]
    pub source: String,
    /// Where to write the frames.
    #[arg(long, value_name = "FILE.jsonl")]
    pub frames_out: PathBuf,
    /// Config whose `pipeline` settings (detector, tracker, labels) apply.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// ONNX detector model (the short form of `pipeline.onnx.model`).
    #[arg(long, value_name = "FILE.onnx")]
    pub model: Option<PathBuf>,
    /// Stop after this many seconds (live sources run until stopped otherwise).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
}
