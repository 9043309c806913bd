//! A running dshost without its HTTP surface: the strategy engine, the
//! alert path (dispatcher thread, journal, sinks), the pipeline backend,
//! the sources and strategies, started from a config through [`Control`]
//! (startup is the diff from nothing) and watched for changes. The binary
//! and the end-to-end tests build it the same way.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::backend::{start_backend, BackendError};
use super::control::{ApplyReport, ConfigReader, Control};
use super::sources::{Runtime, RuntimeError, RuntimeSettings};
use super::strategies::Reloader;
use super::summary::{RunSummary, StrategySummary};
use crate::alerts::{Alert, AlertStats, DispatchError, Dispatcher, DispatcherSettings, SnapshotSettings, Throttle};
use crate::config::Config;
use crate::frame::ring::{RingSettings, Rings};

use crate::strategy::{EngineOptions, StrategyEngine};

/// How a service runs, besides its config.
pub struct ServiceOptions {
    /// Journal, strategy cache and other state.
    pub data_dir: PathBuf,
    /// The config file (watched for changes; reloaded by the API).
    pub config_path: Option<PathBuf>,
    /// Re-reads the config file with the command line's overrides.
    pub reader: Option<ConfigReader>,
    /// Watch strategy files and the config file.
    pub watch: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("failed to start the strategy engine: {0}")]
    Engine(#[from] crate::strategy::engine::EngineError),
    #[error("cannot start the alert sinks: {0}")]
    Alerts(#[from] DispatchError),
    #[error("cannot start the alert dispatcher thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the ONNX detector cannot start: {0}")]
    Detector(crate::detect::onnx::DetectorError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot start:\n  {}", .0.iter().map(|c| format!("{}: {}", c.key, c.detail.as_deref().unwrap_or(""))).collect::<Vec<_>>().join("\n  "))]
    Startup(Vec<super::control::Applied>),
}

/// The strategy engine, with its compiled-component cache under `data_dir`.
pub fn engine(data_dir: &Path) -> Result<Arc<StrategyEngine>, crate::strategy::engine::EngineError> {
    StrategyEngine::new(EngineOptions { cache_dir: Some(crate::paths::strategy_cache_dir(data_dir)) })
}

/// A config file change: apply its diff, log what happened.
fn apply_file_change(control: &Control) {
    tracing::info!("config file changed; applying what changed in it");
    match control.reload_file() {
        Ok(report) => tracing::info!(
            changes = report.changes.len(),
            failed = report.failures().len(),
            needs_restart = report.restart_needed().len(),
            "config file applied"
        ),
        Err(error) => tracing::error!(
            "config file changed but is invalid; nothing was applied and everything keeps running as it was:\n{error}"
        ),
    }
}

/// Where snapshots are written: `<data-dir>/snapshots`.
pub fn snapshot_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

pub struct Service {
    /// Every source's recent frames, when snapshots are on.
    rings: Option<Arc<Rings>>,
    snapshot_dir: PathBuf,
    /// The alert journal's file, when the journal is on.
    journal_path: Option<PathBuf>,
    /// How long a sink (or a watcher) waits for an alert's snapshot.
    snapshot_wait: Duration,
    control: Arc<Control>,
    runtime: Arc<Runtime>,
    alert_stats: Arc<AlertStats>,
    dispatcher: Option<JoinHandle<u64>>,
    watcher: Option<JoinHandle<()>>,
    stop_watch: Arc<AtomicBool>,
    /// Ends the memory trimming thread.
    stop_trim: Arc<AtomicBool>,
}

impl Service {
    /// Starts everything `config` describes; any part that cannot start is
    /// an error and nothing keeps running.
    pub fn start(config: Config, options: ServiceOptions) -> Result<Service, ServiceError> {
        let engine = engine(&options.data_dir)?;
        let alert_stats = Arc::new(AlertStats::default());
        let snapshots = &config.alerts.snapshots;
        let rings = snapshots.enabled.then(|| RingSettings {
            rings: Arc::new(Rings::default()),
            max_bytes: (snapshots.ring_mib.saturating_mul(1 << 20)) as usize,
            max_frames: snapshots.ring_frames,
            min_width: snapshots.max_width,
        });
        // Sinks are started by the startup diff, like any later change.
        let settings = DispatcherSettings {
            throttle: Throttle::new(config.alerts.throttle.clone(), config.alerts.strategies.clone()),
            snapshots: rings.as_ref().map(|r| SnapshotSettings {
                config: snapshots.clone(),
                dir: snapshot_dir(&options.data_dir),
                rings: r.rings.clone(),
            }),
            journal: config.alerts.journal.clone(),
            journal_path: config.alerts.journal.resolve_path(&options.data_dir),
            sinks: Vec::new(),
            shutdown_grace: Duration::from_secs_f64(config.alerts.shutdown_grace_seconds),
        };
        let journal_path = config.alerts.journal.enabled.then(|| settings.journal_path.clone());
        let snapshot_wait = Duration::from_millis(snapshots.wait_ms);
        let dispatcher = Dispatcher::start(settings, alert_stats.clone())?;
        let dispatch = dispatcher.control();
        let (sender, receiver) = std::sync::mpsc::channel::<Alert>();
        let dispatcher = std::thread::Builder::new()
            .name("alerts".into())
            .spawn(move || dispatcher.run(receiver))
            .map_err(ServiceError::Thread)?;
        // The model first: its labels are the host's label table.
        let detector = match super::objects::load_detector(&config) {
            Ok(detector) => detector,
            Err(error) => {
                drop(sender);
                let _ = dispatcher.join();
                return Err(ServiceError::Detector(error));
            }
        };
        let label_table = match &detector {
            Some(detector) => detector.labels.clone(),
            None => Arc::new(super::objects::labels(&config, None)),
        };
        let backend = match start_backend(&config, &label_table) {
            Ok(backend) => backend,
            Err(error) => {
                drop(sender);
                let _ = dispatcher.join();
                return Err(error.into());
            }
        };
        let settings = RuntimeSettings {
            pipeline: config.pipeline.clone(),
            recovery: config.recovery.clone(),
            labels: label_table,
            rings: rings.clone(),
            detector,
        };
        let mut runtime = Runtime::new(engine.clone(), settings, Vec::new(), sender)?;
        if let Some(backend) = backend {
            runtime = runtime.with_deepstream(backend);
        }
        let runtime = Arc::new(runtime);
        let reloader = Arc::new(Mutex::new(Reloader::new(engine, runtime.clone())));
        let control = Arc::new(Control::new(
            runtime.clone(),
            reloader,
            dispatch,
            &config,
            options.config_path.clone(),
            options.reader,
        ));
        let stop_trim = Arc::new(AtomicBool::new(false));
        if let Err(error) = super::memory::spawn_trimmer(stop_trim.clone()) {
            // Only memory held longer: everything else runs as it would.
            tracing::warn!(%error, "cannot start the memory trimming thread");
        }
        let mut service = Service {
            rings: rings.map(|r| r.rings),
            snapshot_dir: snapshot_dir(&options.data_dir),
            journal_path,
            snapshot_wait,
            control,
            runtime,
            alert_stats,
            dispatcher: Some(dispatcher),
            watcher: None,
            stop_watch: Arc::new(AtomicBool::new(false)),
            stop_trim,
        };
        if config.strategies.is_empty() {
            tracing::warn!("no strategies configured: frames are analysed but nothing raises alerts");
        }
        let report = service.control.start(config);
        let failures: Vec<super::control::Applied> = report.failures().into_iter().cloned().collect();
        if !failures.is_empty() {
            service.shutdown();
            return Err(ServiceError::Startup(failures));
        }
        if options.watch {
            let config = options.config_path.clone().map(|path| {
                let control = service.control.clone();
                super::watch::ConfigWatch { path, on_change: Box::new(move || apply_file_change(&control)) }
            });
            let reloader = service.control.reloader().clone();
            match super::watch::spawn(reloader, config, service.stop_watch.clone()) {
                Ok(handle) => service.watcher = Some(handle),
                Err(error) => tracing::warn!(error = %error, "cannot watch for file changes; hot reload is off"),
            }
        }
        Ok(service)
    }

    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn alert_stats(&self) -> &Arc<AlertStats> {
        &self.alert_stats
    }

    /// The frame rings (thumbnails), when snapshots are on.
    pub fn rings(&self) -> Option<&Arc<Rings>> {
        self.rings.as_ref()
    }

    pub fn snapshot_dir(&self) -> &Path {
        &self.snapshot_dir
    }

    /// The alert journal's file; `None` when the journal is off.
    pub fn journal_path(&self) -> Option<&Path> {
        self.journal_path.as_deref()
    }

    /// How long sinks and watchers wait for an alert's snapshot.
    pub fn snapshot_wait(&self) -> Duration {
        self.snapshot_wait
    }

    /// Applies the config file again (what a file change does).
    pub fn reload(&self) -> Result<ApplyReport, super::control::ControlError> {
        self.control.reload_file()
    }

    /// Stops the watcher and every source, lets the strategies finish what
    /// was accepted and the sinks deliver within the shutdown grace, and
    /// says what the run did.
    pub fn shutdown(mut self) -> RunSummary {
        self.stop_watch.store(true, std::sync::atomic::Ordering::Relaxed);
        self.stop_trim.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
        let strategies: Vec<StrategySummary> = self
            .runtime
            .strategy_metrics()
            .iter()
            .map(|(source, name, m)| StrategySummary::of(source, name, m))
            .collect();
        let detector = self.runtime.settings().detector;
        let sources = self.runtime.shutdown();
        let alerts = self.dispatcher.take().and_then(|d| d.join().ok()).unwrap_or(0);
        let mut summary = RunSummary::new(sources, strategies, alerts, &self.alert_stats);
        summary.inference = detector.as_deref().map(super::summary::InferenceSummary::of);
        summary
    }
}
