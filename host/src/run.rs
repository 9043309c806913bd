//! The main job (`dshost run`) and `dshost record`: the command line turned
//! into a config and options for the library's [`App`], the wait (with a
//! status line on a terminal), and the exit summary.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cli::{RecordArgs, RunArgs};
use dshost::app::{self, App};
use dshost::config::overrides::{self, CommandLine};
use dshost::config::Config;
use dshost::frame::jsonl::FrameLine;
use dshost::frame::SourceSummary;
use dshost::runtime::control::ConfigReader;
use dshost::runtime::{Runtime, RuntimeSettings, ServiceOptions};
use dshost::strategy::StrategyEngine;

fn command_line(args: &RunArgs) -> CommandLine {
    CommandLine {
        sources: args.sources.clone(),
        strategies: args.strategies.clone(),
        alerts_jsonl: args.alerts_jsonl.clone(),
        model: args.model.clone(),
        no_strategies: false,
    }
}

/// Loads the config (file or embedded default) with the command line's
/// changes applied, reporting every error at once.
pub fn load_config(path: Option<&Path>, overrides: &CommandLine) -> Result<Config> {
    Ok(overrides::load(path, overrides)?)
}

/// Stdout carries only alerts (or `probe --json`), but native libraries in
/// the pipeline may print there too (NVIDIA's libnvv4l2 prints "Opening in
/// BLOCKING MODE" for every GPU decoder), which would corrupt
/// `--alerts-jsonl -`. So the caller gets a private duplicate of stdout and
/// descriptor 1 is pointed at stderr.
pub fn private_stdout() -> Box<dyn Write + Send> {
    use std::os::fd::AsFd;
    let _ = std::io::stdout().flush();
    let Ok(copy) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return Box::new(std::io::stdout());
    };
    // SAFETY: dup2 on the process's own standard descriptors; Rust's stdout
    // was flushed above and keeps using descriptor 1, now stderr.
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Box::new(std::io::stdout());
    }
    Box::new(std::io::LineWriter::new(std::fs::File::from(copy)))
}

/// Waits for Ctrl-C, the duration, or (unless the control API is on, when
/// sources can still be added) the end of every source, showing a status
/// line on a terminal.
fn wait(runtime: &Runtime, duration: Option<f64>, keep_serving: bool, alerts_seen: &dyn Fn() -> u64) -> Result<()> {
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        ctrlc::set_handler(move || interrupted.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }
    let started = Instant::now();
    let deadline = duration.map(|d| started + Duration::from_secs_f64(d.max(0.0)));
    let show_status = std::io::stderr().is_terminal();
    let mut last_status = Instant::now();
    let mut previous: Vec<SourceSummary> = runtime.summaries();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if interrupted.load(Ordering::SeqCst) {
            tracing::info!("interrupted; stopping and flushing");
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if !keep_serving && runtime.all_ended() {
            break;
        }
        if show_status && last_status.elapsed() >= Duration::from_secs(1) {
            let elapsed = last_status.elapsed().as_secs_f64();
            last_status = Instant::now();
            let current = runtime.summaries();
            eprint!("\r\x1b[2K{}", status_line(&previous, &current, elapsed, alerts_seen()));
            previous = current;
        }
    }
    if show_status {
        eprint!("\r\x1b[2K");
    }
    Ok(())
}

fn status_line(previous: &[SourceSummary], current: &[SourceSummary], seconds: f64, alerts: u64) -> String {
    let parts: Vec<String> = current
        .iter()
        .map(|now| {
            let before = previous.iter().find(|p| p.id == now.id);
            let frames = now.frames_decoded - before.map(|b| b.frames_decoded).unwrap_or(0);
            let given = now.frames_to_strategies - before.map(|b| b.frames_to_strategies).unwrap_or(0);
            let objects = now.objects - before.map(|b| b.objects).unwrap_or(0);
            let strategy_s = now.strategy_seconds - before.map(|b| b.strategy_seconds).unwrap_or(0.0);
            format!(
                "{} {:.1} fps {:.1} obj/f {:.0} µs/f",
                now.id,
                frames as f64 / seconds,
                objects as f64 / frames.max(1) as f64,
                strategy_s * 1e6 / given.max(1) as f64
            )
        })
        .collect();
    format!("{} | alerts {alerts}", parts.join(" | "))
}

pub fn run(args: &RunArgs, data_dir: &Path) -> Result<ExitCode> {
    let overrides = command_line(args);
    let config = load_config(args.config.as_deref(), &overrides)?;
    let http = app::http_settings(&config, args.http.as_deref())?;
    if config.sources.is_empty() && http.is_none() {
        anyhow::bail!(
            "no sources: add `sources:` to the config or pass --source URI (or turn on the control API with \
             --http ADDR to add them at run time)"
        );
    }
    // Console and `-` sinks write to a private copy of stdout (see there).
    dshost::alerts::sinks::set_stdout(private_stdout());
    let reader: Option<ConfigReader> = args.config.clone().map(|path| {
        let overrides = overrides.clone();
        Box::new(move || overrides::load(Some(&path), &overrides)) as ConfigReader
    });
    let options = ServiceOptions {
        data_dir: data_dir.to_path_buf(),
        config_path: args.config.clone(),
        reader,
        watch: !args.no_watch,
    };
    let app = App::start(config, options, http)?;
    let stats = app.service().alert_stats().clone();
    let seen = move || stats.emitted.load(Ordering::Relaxed);
    let waited = wait(app.service().runtime(), args.duration, app.serves_api(), &seen);
    let summary = app.shutdown();
    eprint!("{}", summary.to_text());
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_string_pretty(&summary).context("cannot encode the summary")?;
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("cannot write the summary {}", path.display()))?;
    }
    waited?;
    Ok(ExitCode::SUCCESS)
}

pub fn record(args: &RecordArgs) -> Result<ExitCode> {
    let overrides = CommandLine {
        sources: vec![args.source.clone()],
        model: args.model.clone(),
        // `record` runs no strategy: their files need not exist.
        no_strategies: true,
        ..CommandLine::default()
    };
    let config = load_config(args.config.as_deref(), &overrides)?;
    let detector = dshost::runtime::objects::load_detector(&config).context("the ONNX detector cannot start")?;
    let labels = match &detector {
        Some(detector) => detector.labels.clone(),
        None => Arc::new(dshost::runtime::objects::labels(&config, None)),
    };
    let file = std::fs::File::create(&args.frames_out)
        .with_context(|| format!("cannot create {}", args.frames_out.display()))?;
    let out = Arc::new(Mutex::new(std::io::BufWriter::new(file)));
    let engine = StrategyEngine::new(Default::default()).context("failed to start the strategy engine")?;
    // No strategies run: the alert channel stays silent.
    let (sender, _receiver) = std::sync::mpsc::channel();
    let settings = RuntimeSettings {
        pipeline: config.pipeline.clone(),
        recovery: config.recovery.clone(),
        labels: labels.clone(),
        rings: None,
        detector,
    };
    let tap_out = out.clone();
    let runtime = Runtime::new(engine, settings, Vec::new(), sender)?.with_frame_tap(move |_source| {
        let out = tap_out.clone();
        let labels = labels.clone();
        Box::new(move |frame| {
            let line = FrameLine::from_compact(frame, &labels);
            if let (Ok(mut out), Ok(text)) = (out.lock(), serde_json::to_string(&line)) {
                if let Err(error) = writeln!(out, "{text}") {
                    tracing::error!(error = %error, "cannot write a frame line");
                }
            }
        })
    });
    let started = runtime.add_sources(&config);
    if started.is_ok() {
        wait(&runtime, args.duration, false, &|| 0)?;
    }
    let summaries = runtime.shutdown();
    started?;
    if let Ok(mut out) = out.lock() {
        out.flush().with_context(|| format!("cannot write {}", args.frames_out.display()))?;
    }
    let frames: u64 = summaries.iter().map(|s| s.frames_to_strategies).sum();
    eprintln!("recorded {frames} frames to {}", args.frames_out.display());
    Ok(ExitCode::SUCCESS)
}

/// The strategy engine with its cache under `data_dir`.
pub fn engine(data_dir: &Path) -> Result<Arc<StrategyEngine>> {
    dshost::runtime::service::engine(data_dir).context("failed to start the strategy engine")
}
