//! The main job (`dshost run`) and `dshost record`: configuration with
//! command-line overrides, strategies, the runtime, alert output, the live
//! status line and the exit summary.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cli::{RecordArgs, RunArgs};
use dshost::alerts::sinks::jsonl::JsonlConfig;
use dshost::alerts::{Alert, AlertStats, Dispatcher, DispatcherSettings, SinkConfig, Suppression, Throttle};
use dshost::config::{self, Backend, Config, SourceConfig, StrategyConfig};
use dshost::frame::jsonl::FrameLine;
use dshost::frame::LabelTable;
use dshost::pipeline::deepstream::batched::DeepStreamPipeline;
use dshost::pipeline::deepstream::select::{decide, Choice, Survey};
use dshost::pipeline::deepstream::Profile;
use dshost::pipeline::{Runtime, RuntimeSettings, SourceSpec, SourceSummary};
use dshost::strategy::reload::{Reloader, StrategySpec};
use dshost::strategy::StrategyEngine;

/// Loads the config (file or embedded default) with the command line's
/// sources and strategies applied, reporting every error at once.
pub fn load_config(config: Option<&Path>, sources: &[String], strategies: &[PathBuf]) -> Result<Config> {
    let (text, origin) = match config {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("cannot read the config {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (config::DEFAULT_CONFIG.to_string(), "<embedded default config>".to_string()),
    };
    let parsed = config::parse_config_with(&text, &origin, |config| apply_overrides(config, sources, strategies))?;
    Ok(parsed)
}

fn apply_overrides(config: &mut Config, sources: &[String], strategies: &[PathBuf]) {
    if !sources.is_empty() {
        config.sources = sources
            .iter()
            .enumerate()
            .map(|(i, uri)| SourceConfig {
                id: format!("source-{}", i + 1),
                uri: uri.clone(),
                loop_file: false,
                realtime: false,
                rtsp: Default::default(),
                detector: None,
                decoder: None,
            })
            .collect();
        // Strategies pinned to the replaced sources would point nowhere.
        for strategy in &mut config.strategies {
            strategy.sources.clear();
        }
    }
    if !strategies.is_empty() {
        let configured = std::mem::take(&mut config.strategies);
        config.strategies = strategies
            .iter()
            .map(|path| {
                let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                match configured.iter().find(|s| s.resolved_name() == name) {
                    Some(entry) => StrategyConfig { path: path.clone(), ..entry.clone() },
                    None => StrategyConfig {
                        name: Some(name),
                        path: path.clone(),
                        config: serde_yaml::Value::Null,
                        sources: Vec::new(),
                        limits: Default::default(),
                    },
                }
            })
            .collect();
    }
}

pub fn engine(data_dir: &Path) -> Result<Arc<StrategyEngine>> {
    let options = dshost::strategy::EngineOptions { cache_dir: Some(dshost::paths::strategy_cache_dir(data_dir)) };
    StrategyEngine::new(options).context("failed to start the strategy engine")
}

fn labels(config: &Config) -> LabelTable {
    match &config.pipeline.labels {
        Some(labels) => LabelTable::from_labels(labels.clone()),
        None => {
            let mut table = LabelTable::coco();
            table.intern("motion");
            table
        }
    }
}

fn specs(config: &Config) -> Result<Vec<StrategySpec>> {
    config
        .strategies
        .iter()
        .map(|entry| {
            StrategySpec::from_config(entry).with_context(|| format!("strategy `{}` config", entry.resolved_name()))
        })
        .collect()
}

fn start_sources(runtime: &Runtime, config: &Config) -> Result<()> {
    for source in &config.sources {
        let spec = SourceSpec::from_config(source, config.pipeline.detector)
            .with_context(|| format!("source `{}`", source.id))?;
        if matches!(spec.uri, dshost::pipeline::uri::SourceUri::Scene { .. }) {
            tracing::info!(
                source = %spec.id,
                "source `{}` is SYNTHETIC: a rendered scene with ground-truth objects, for demos and tests",
                spec.id
            );
        }
        runtime.add_source(spec).with_context(|| format!("cannot start source `{}`", source.id))?;
    }
    Ok(())
}

/// The sinks of this run: the config's, plus `--alerts-jsonl`; readable
/// lines on stdout when nothing else is configured.
fn alert_sinks(config: &Config, alerts_jsonl: Option<&str>) -> Vec<SinkConfig> {
    let mut sinks = config.alerts.sinks.clone();
    if let Some(target) = alerts_jsonl {
        if target == "-" {
            // JSON lines own stdout now; readable lines would corrupt them.
            sinks.retain(|sink| !matches!(sink, SinkConfig::Console(_)));
        }
        // Named by its target, so a journal shared by runs with different
        // files does not send one file's pending alerts to another.
        let name = if target == "-" { "jsonl-stdout".to_string() } else { format!("jsonl:{target}") };
        sinks.push(SinkConfig::Jsonl(JsonlConfig {
            name: Some(name),
            path: PathBuf::from(target),
            ..Default::default()
        }));
        if target != "-" && config.alerts.sinks.is_empty() {
            sinks.insert(0, SinkConfig::Console(Default::default()));
        }
    } else if sinks.is_empty() {
        sinks.push(SinkConfig::Console(Default::default()));
    }
    sinks
}

fn start_alerts(config: &Config, args: &RunArgs, data_dir: &Path, stats: Arc<AlertStats>) -> Result<Dispatcher> {
    let throttle = Throttle::new(config.alerts.throttle.clone(), config.alerts.strategies.clone());
    let settings = DispatcherSettings {
        throttle,
        journal: config.alerts.journal.clone(),
        journal_path: config.alerts.journal.resolve_path(data_dir),
        sinks: alert_sinks(config, args.alerts_jsonl.as_deref()),
        shutdown_grace: Duration::from_secs_f64(config.alerts.shutdown_grace_seconds),
    };
    // Console and `-` sinks write to a private copy of stdout (see below).
    dshost::alerts::sinks::set_stdout(private_stdout());
    Dispatcher::start(settings, stats).context("cannot start the alert sinks")
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

/// Waits for the end of every source, the duration, or Ctrl-C, showing a
/// status line on a terminal.
fn wait(runtime: &Runtime, duration: Option<f64>, alerts_seen: &dyn Fn() -> u64) -> Result<()> {
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
        if runtime.all_ended() {
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

fn print_summary(summaries: &[SourceSummary], alerts: u64, stats: &AlertStats) {
    for s in summaries {
        eprintln!(
            "summary {}: {} frames decoded, {} given to strategies, {} dropped (strategy_backlog), {} restarts, {} objects, {} detections, state {}{}",
            s.id,
            s.frames_decoded,
            s.frames_to_strategies,
            s.frames_dropped.strategy_backlog,
            s.restarts,
            s.objects,
            s.detections,
            s.state.as_str(),
            s.last_error.as_ref().map(|e| format!(", last error: {e}")).unwrap_or_default()
        );
    }
    let suppressed: Vec<String> = Suppression::ALL
        .iter()
        .map(|r| (r, stats.suppressed(*r)))
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{}={n}", r.as_str()))
        .collect();
    if suppressed.is_empty() {
        eprintln!("summary: {alerts} alerts");
    } else {
        eprintln!("summary: {alerts} alerts, suppressed: {}", suppressed.join(", "));
    }
    for sink in stats.sinks.get().map(Vec::as_slice).unwrap_or_default() {
        let pending = sink.left_pending.load(Ordering::Relaxed);
        eprintln!(
            "summary sink {} ({}): {} delivered, {} failed attempts, {} rejected, {} dropped{}",
            sink.name,
            sink.kind,
            sink.delivered.load(Ordering::Relaxed),
            sink.failures.load(Ordering::Relaxed),
            sink.rejected.load(Ordering::Relaxed),
            sink.dropped.load(Ordering::Relaxed),
            if pending > 0 {
                format!(", {pending} still pending (sent again at the next start)")
            } else {
                String::new()
            }
        );
    }
    let journal_errors = stats.journal_errors.load(Ordering::Relaxed);
    if journal_errors > 0 {
        eprintln!("summary: the alert journal failed {journal_errors} times; see the log");
    }
}

fn sink_summaries(stats: &AlertStats) -> Vec<serde_json::Value> {
    stats
        .sinks
        .get()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|sink| {
            serde_json::json!({
                "name": sink.name,
                "type": sink.kind,
                "delivered": sink.delivered.load(Ordering::Relaxed),
                "failed_attempts": sink.failures.load(Ordering::Relaxed),
                "rejected": sink.rejected.load(Ordering::Relaxed),
                "dropped": sink.dropped.load(Ordering::Relaxed),
                "left_pending": sink.left_pending.load(Ordering::Relaxed),
            })
        })
        .collect()
}

pub fn run(args: &RunArgs, data_dir: &Path) -> Result<ExitCode> {
    let config = load_config(args.config.as_deref(), &args.sources, &args.strategies)?;
    if config.sources.is_empty() {
        anyhow::bail!("no sources: add `sources:` to the config or pass --source URI");
    }
    let engine = engine(data_dir)?;
    let initial = specs(&config)?;
    if initial.is_empty() {
        tracing::warn!("no strategies configured: frames are analysed but nothing raises alerts");
    }
    let alert_stats = Arc::new(AlertStats::default());
    let dispatcher = start_alerts(&config, args, data_dir, alert_stats.clone())?;
    let (sender, receiver) = std::sync::mpsc::channel::<Alert>();
    let writer = std::thread::Builder::new().name("alerts".into()).spawn(move || dispatcher.run(receiver))?;
    let labels = Arc::new(labels(&config));
    let deepstream = choose_backend(&config, &labels)?;
    let settings = RuntimeSettings {
        pipeline: config.pipeline.clone(),
        recovery: config.recovery.clone(),
        labels: labels.clone(),
    };
    let mut runtime = Runtime::new(engine.clone(), settings, Vec::new(), sender)?;
    if let Some(deepstream) = deepstream {
        runtime = runtime.with_deepstream(deepstream);
    }
    let runtime = Arc::new(runtime);
    // Startup is a reload from nothing: the same path as hot reload, but
    // here any failure is fatal.
    let reloader = Arc::new(Mutex::new(Reloader::new(engine, runtime.clone())));
    let failures: Vec<String> = lock(&reloader)
        .apply_all(initial)
        .into_iter()
        .filter_map(|(name, result)| result.err().map(|e| format!("strategy `{name}`: {e}")))
        .collect();
    let started = if failures.is_empty() {
        start_sources(&runtime, &config)
    } else {
        Err(anyhow::anyhow!("cannot start the strategies:\n  {}", failures.join("\n  ")))
    };
    let stop_watch = Arc::new(AtomicBool::new(false));
    let mut watcher = None;
    let mut http = None;
    let started = started.and_then(|()| {
        let Some((address, token)) = http_settings(args, &config)? else { return Ok(()) };
        let state = dshost::ops::http::ApiState {
            runtime: runtime.clone(),
            reloader: reloader.clone(),
            default_detector: config.pipeline.detector,
            alerts: alert_stats.clone(),
            token: token.map(Arc::from),
        };
        let options = dshost::ops::http::HttpOptions {
            tls: config.monitoring.http.as_ref().and_then(|h| h.tls.clone()),
            allow_plaintext_token: config.monitoring.http.as_ref().is_some_and(|h| h.allow_plaintext_token),
        };
        http = Some(dshost::ops::http::HttpServer::start_with(address, state, options)?);
        Ok(())
    });
    if started.is_ok() {
        if !args.no_watch {
            let config_reader = args.config.clone().map(|path| {
                let (sources, strategies) = (args.sources.clone(), args.strategies.clone());
                let reread = path.clone();
                let reader: dshost::strategy::watch::ConfigReader = Box::new(move || {
                    let config = load_config(Some(&reread), &sources, &strategies).map_err(|e| format!("{e:#}"))?;
                    specs(&config).map_err(|e| format!("{e:#}"))
                });
                (path, reader)
            });
            match dshost::strategy::watch::spawn(reloader.clone(), config_reader, stop_watch.clone()) {
                Ok(handle) => watcher = Some(handle),
                Err(error) => {
                    tracing::warn!(error = %error, "cannot watch for strategy changes; hot reload is off")
                }
            }
        }
        let stats = alert_stats.clone();
        let seen = move || stats.emitted.load(Ordering::Relaxed);
        wait(&runtime, args.duration, &seen)?;
    }
    drop(http);
    stop_watch.store(true, Ordering::Relaxed);
    if let Some(watcher) = watcher {
        let _ = watcher.join();
    }
    drop(reloader);
    let strategy_metrics = runtime.strategy_metrics();
    let summaries = runtime.shutdown();
    drop(runtime);
    let alerts = writer.join().unwrap_or(0);
    started?;
    print_summary(&summaries, alerts, &alert_stats);
    if let Some(path) = &args.summary_json {
        let strategies: Vec<serde_json::Value> = strategy_metrics
            .iter()
            .map(|(source, name, m)| {
                serde_json::json!({
                    "source": source,
                    "strategy": name,
                    "calls": m.calls.load(Ordering::Relaxed),
                    "detections": m.detections.load(Ordering::Relaxed),
                    "invalid_detections": m.invalid_detections.load(Ordering::Relaxed),
                    "errors": m.total_errors(),
                    "restarts": m.restarts.load(Ordering::Relaxed),
                    "quarantines": m.quarantines.load(Ordering::Relaxed),
                })
            })
            .collect();
        let summary = serde_json::json!({
            "sources": summaries,
            "strategies": strategies,
            "alerts": alerts,
            "sinks": sink_summaries(&alert_stats),
            "journal": {
                "journaled": alert_stats.journaled.load(Ordering::Relaxed),
                "errors": alert_stats.journal_errors.load(Ordering::Relaxed),
                "replayed": alert_stats.replayed.load(Ordering::Relaxed),
            },
        });
        std::fs::write(path, format!("{summary:#}\n"))
            .with_context(|| format!("cannot write the summary {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn record(args: &RecordArgs) -> Result<ExitCode> {
    let config = load_config(args.config.as_deref(), std::slice::from_ref(&args.source), &[])?;
    let labels = Arc::new(labels(&config));
    let file = std::fs::File::create(&args.frames_out)
        .with_context(|| format!("cannot create {}", args.frames_out.display()))?;
    let out = Arc::new(Mutex::new(std::io::BufWriter::new(file)));
    let engine = StrategyEngine::new(Default::default()).context("failed to start the strategy engine")?;
    let (sender, _receiver) = std::sync::mpsc::channel::<Alert>();
    let settings = RuntimeSettings {
        pipeline: config.pipeline.clone(),
        recovery: config.recovery.clone(),
        labels: labels.clone(),
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
    let started = start_sources(&runtime, &config);
    if started.is_ok() {
        wait(&runtime, args.duration, &|| 0)?;
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

/// Applies `pipeline.backend`: `None` runs the CPU backend; the DeepStream
/// pipeline when `auto` finds it usable or `deepstream` asks for it (an
/// error naming what is missing when it is not usable).
fn choose_backend(config: &Config, labels: &Arc<LabelTable>) -> Result<Option<Arc<DeepStreamPipeline>>> {
    if config.pipeline.backend == Backend::Cpu {
        tracing::info!("backend: cpu (configured)");
        return Ok(None);
    }
    gstreamer::init().context("GStreamer could not be initialised")?;
    let ds = &config.pipeline.deepstream;
    let survey = Survey::gather(ds);
    let sources: Vec<SourceSpec> =
        config.sources.iter().filter_map(|s| SourceSpec::from_config(s, config.pipeline.detector).ok()).collect();
    let missing = survey.missing(ds, &sources);
    match decide(config.pipeline.backend, &missing, survey.profile, survey.detection.layout)? {
        Choice::Cpu { reason } => {
            tracing::info!(reason = %reason, "backend: cpu");
            Ok(None)
        }
        Choice::Deepstream { profile, layout } => {
            let (Some(profile), Ok(library)) = (Profile::by_id(profile), survey.library) else {
                anyhow::bail!("DeepStream profile {profile} or its metadata library vanished between checks");
            };
            if ds.new_streammux {
                // nvstreammux reads this when its plugin loads, which is when
                // the first element is made, below; no other thread reads it.
                std::env::set_var("USE_NEW_NVSTREAMMUX", "yes");
            }
            tracing::info!(profile = profile.id, layout = %layout, "backend: deepstream");
            let pipeline = DeepStreamPipeline::start(ds, profile, library, layout, labels.clone(), sources.len())
                .context("cannot start the DeepStream pipeline")?;
            Ok(Some(pipeline))
        }
    }
}

fn lock(reloader: &Mutex<Reloader>) -> std::sync::MutexGuard<'_, Reloader> {
    reloader.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where to serve HTTP, if anywhere: `--http` wins over the config.
fn http_settings(args: &RunArgs, config: &Config) -> Result<Option<(std::net::SocketAddr, Option<String>)>> {
    let configured = config.monitoring.http.as_ref();
    let address = match (&args.http, configured) {
        (Some(address), _) => address.clone(),
        (None, Some(http)) => http.address.clone(),
        (None, None) => return Ok(None),
    };
    let address =
        address.parse().with_context(|| format!("`{address}` is not a listen address like 127.0.0.1:9464"))?;
    let token = configured.and_then(|h| h.token.clone()).filter(|t| !t.is_empty());
    Ok(Some((address, token)))
}
