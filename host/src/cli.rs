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
    /// Inspect and test strategy components.
    #[command(subcommand)]
    Strategy(StrategyCommand),
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
