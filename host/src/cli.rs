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
    /// Report what this machine offers: GStreamer version and whether GPU
    /// decode (NVIDIA nvv4l2decoder + nvvideoconvert) is usable, and why not.
    Probe {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
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
    /// Stop after this many seconds (live sources run until stopped otherwise).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
}
