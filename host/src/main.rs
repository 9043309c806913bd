//! The `dshost` binary: parses the command line and runs the command.

mod alerts_cli;
mod cli;
mod model_cli;
mod run;

use std::io::{BufReader, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use cli::{Cli, Command, LogFormat, StrategyCommand, StrategyTestArgs};
use dshost::frame::{jsonl, LabelTable};
use dshost::runtime::replay::{replay, ReplayOptions};
use dshost::strategy::{RecoveryPolicy, SandboxLimits};

fn main() -> ExitCode {
    // Before any thread exists, so no arena is created above the cap.
    dshost::runtime::memory::tune_allocator();
    let cli = Cli::parse();
    init_logging(cli.global.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let data_dir = cli.global.data_dir.clone().unwrap_or_else(dshost::paths::default_data_dir);
    match cli.command {
        Some(Command::Strategy(StrategyCommand::Check { file, json })) => strategy_check(&data_dir, &file, json),
        Some(Command::Strategy(StrategyCommand::Test(args))) => strategy_test(&data_dir, &args),
        Some(Command::Run(args)) => run::run(&args, &data_dir),
        Some(Command::ValidateConfig { file }) => validate_config(&file),
        Some(Command::Record(args)) => run::record(&args),
        Some(Command::Alerts(command)) => alerts_cli::run(&data_dir, command),
        Some(Command::Probe(args)) => probe(&args),
        Some(Command::Model(cli::ModelCommand::Check(args))) => model_cli::check(&args),
        Some(Command::Completions { shell }) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "dshost", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man) => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(&mut std::io::stdout()).context("cannot write the man page")?;
            Ok(ExitCode::SUCCESS)
        }
        None => run::run(&cli.run, &data_dir),
    }
}

fn probe(args: &cli::ProbeArgs) -> Result<ExitCode> {
    let (text, origin) = match &args.config {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("cannot read the config {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (dshost::config::DEFAULT_CONFIG.to_string(), "<embedded default config>".to_string()),
    };
    // The probe looks at the pipeline and sources only: strategy files need not exist.
    let config = dshost::config::parse_config_with(&text, &origin, |config| config.strategies.clear())?;
    // Starting NVIDIA's decoder prints to stdout; the report must not mix with it.
    let mut out = run::private_stdout();
    let mut report = dshost::probe::probe(&config);
    gstreamer::init().context("GStreamer could not be initialised")?;
    let gpu = dshost::pipeline::decode::gpu_decode_report();
    report.gpu_decode = Some(serde_json::to_value(gpu).context("cannot encode the GPU decode report")?);
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report).context("cannot encode the probe report")?)?;
    } else {
        write!(out, "{}", report.to_text())?;
        writeln!(out, "GPU decode: {} ({})", if gpu.usable { "usable" } else { "unavailable" }, gpu.reason)?;
        for element in &gpu.elements {
            match (&element.plugin, &element.version) {
                (Some(plugin), Some(version)) => writeln!(
                    out,
                    "  {}: plugin {plugin} {version}{}{}",
                    element.name,
                    element.filename.as_deref().map(|f| format!(" ({f})")).unwrap_or_default(),
                    element.error.as_deref().map(|e| format!("; error: {e}")).unwrap_or_default()
                )?,
                _ => writeln!(out, "  {}: not found", element.name)?,
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn validate_config(file: &Path) -> Result<ExitCode> {
    match dshost::config::load_file(file) {
        Ok(config) => {
            println!(
                "{}: valid ({} sources, {} strategies)",
                file.display(),
                config.sources.len(),
                config.strategies.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprint!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}

use run::engine;

fn strategy_name(file: &Path) -> String {
    file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "strategy".to_string())
}

fn strategy_check(data_dir: &Path, file: &Path, json: bool) -> Result<ExitCode> {
    let engine = engine(data_dir)?;
    let component = engine
        .load_file(&strategy_name(file), file, &SandboxLimits::default())
        .with_context(|| format!("{} is not a usable strategy", file.display()))?;
    let report = serde_json::json!({
        "file": file.display().to_string(),
        "valid": true,
        "world": component.world.as_str(),
        "interface": component.contract.package(),
        "name": component.info.name,
        "version": component.info.version,
        "strategy_version": component.version,
        "description": component.info.description,
        "classes": component.info.classes,
        "needs_tracking": component.info.needs_tracking,
        "sha256": component.content_hash.hex(),
        "imports": component.imports,
        "compile_ms": component.compile.duration.as_secs_f64() * 1000.0,
        "compiled_from_cache": component.compile.from_cache,
    });
    if json {
        println!("{report}");
    } else {
        println!("{}: valid strategy component", file.display());
        println!("  name:        {} {}", component.info.name, component.info.version);
        println!("  version tag: {}", component.version);
        println!("  description: {}", component.info.description);
        println!("  world:       {} ({})", component.world.as_str(), component.contract.package());
        let form = match component.contract {
            dshost::strategy::Contract::V0_1 => "one record per detection",
            dshost::strategy::Contract::V0_2 => "packed detections",
        };
        println!("  contract:    {} ({form})", component.contract.version());
        let classes =
            if component.info.classes.is_empty() { "all".to_string() } else { component.info.classes.join(", ") };
        println!("  classes:     {classes}");
        println!("  tracking:    {}", if component.info.needs_tracking { "needed" } else { "not needed" });
        println!(
            "  imports:     {}",
            if component.imports.is_empty() { "none".to_string() } else { component.imports.join(", ") }
        );
        println!(
            "  compile:     {:.1} ms{}",
            component.compile.duration.as_secs_f64() * 1000.0,
            if component.compile.from_cache { " (from cache)" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn strategy_test(data_dir: &Path, args: &StrategyTestArgs) -> Result<ExitCode> {
    let frames_file = std::fs::File::open(&args.frames)
        .with_context(|| format!("cannot open the frames file {}", args.frames.display()))?;
    let frames = jsonl::read_frames(BufReader::new(frames_file))
        .with_context(|| format!("cannot read the frames file {}", args.frames.display()))?;
    let config_json = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the strategy config {}", path.display()))?;
            dshost::config::yaml_to_json(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => "{}".to_string(),
    };
    let mut labels = match &args.labels {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the labels file {}", path.display()))?;
            LabelTable::from_labels(text.lines().map(|l| l.trim().to_string()).collect())
        }
        None => LabelTable::coco(),
    };
    jsonl::learn_labels(&frames, &mut labels);
    if args.memory_mib == 0 || args.call_timeout_ms == 0 {
        bail!("--memory-mib and --call-timeout-ms must be greater than zero");
    }
    let limits = SandboxLimits {
        memory_bytes: args.memory_mib << 20,
        call_timeout: Duration::from_millis(args.call_timeout_ms),
        max_detections: args.max_detections,
        ..SandboxLimits::default()
    };
    let engine = engine(data_dir)?;
    let name = args.name.clone().unwrap_or_else(|| strategy_name(&args.file));
    let component = engine
        .load_file(&name, &args.file, &limits)
        .with_context(|| format!("{} is not a usable strategy", args.file.display()))?;
    let options = ReplayOptions {
        config_json,
        labels: Arc::new(labels),
        limits,
        // Replay is not real time: retry a failed instance at once.
        policy: RecoveryPolicy { initial_backoff: Duration::ZERO, ..RecoveryPolicy::default() },
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let summary = replay(&engine, &component, &frames, &options, &mut out)?;
    out.flush()?;
    let errors: u64 = summary.errors.values().sum();
    let error_list: Vec<String> = summary.errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
    eprintln!(
        "replayed {} frames through {} ({}): {} detections, {} invalid detections dropped, {} failed calls{}, {} frames skipped{}",
        summary.frames,
        component.name,
        component.version,
        summary.detections,
        summary.invalid_detections,
        errors,
        if error_list.is_empty() { String::new() } else { format!(" ({})", error_list.join(", ")) },
        summary.skipped_frames,
        if summary.quarantined.is_empty() {
            String::new()
        } else {
            format!("; quarantined for sources: {}", summary.quarantined.join(", "))
        },
    );
    Ok(if errors > 0 || summary.invalid_detections > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
}
