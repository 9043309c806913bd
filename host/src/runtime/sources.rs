//! The running sources: added, changed and removed at run time, each with
//! its controller thread (GStreamer pipeline, restarts) or its pad in the
//! shared DeepStream pipeline, its object stage, and its strategy worker
//! thread, isolated from every other source. Strategy plans are installed
//! here on every source they apply to.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use super::objects;
use super::worker::{FrameTap, InstallOutcome, StrategySlot, Worker, WorkerCommand};
use crate::alerts::Alert;
use crate::config::{PipelineConfig, RecoveryConfig};
use crate::frame::ring::{FrameRing, RingSettings};
use crate::frame::{FrameQueue, LabelTable, SourceMetrics, SourceOutlet, SourceState, SourceSummary};
use crate::pipeline::controller::run_source;
use crate::pipeline::cpu::StageContext;
use crate::pipeline::decode::{self, DecodePath};
use crate::pipeline::deepstream::batched::DeepStreamPipeline;
use crate::pipeline::SourceSpec;
use crate::strategy::{
    CallError, InstanceSettings, RecoveryPolicy, SandboxLimits, StrategyComponent, StrategyEngine, StrategyMetrics,
    SupervisedInstance,
};

/// A loaded strategy and where it runs.
#[derive(Clone)]
pub struct StrategyPlan {
    pub name: String,
    pub component: Arc<StrategyComponent>,
    pub config_json: String,
    /// Source ids; empty = every source.
    pub sources: Vec<String>,
    pub limits: SandboxLimits,
}

impl StrategyPlan {
    fn applies_to(&self, source: &str) -> bool {
        self.sources.is_empty() || self.sources.iter().any(|s| s == source)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("a source with the id `{0}` is already running")]
    DuplicateSource(String),
    #[error("no source has the id `{0}`")]
    UnknownSource(String),
    #[error("strategy `{strategy}` could not start for source `{source_id}`: {error}")]
    Strategy { strategy: String, source_id: String, error: CallError },
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("dshost is shutting down")]
    ShuttingDown,
    #[error(
        "source `{0}` runs the ONNX detector, but no model is loaded: set `pipeline.onnx.model` (or --model FILE.onnx)"
    )]
    NoDetector(String),
    #[error(transparent)]
    Placement(#[from] super::placement::PlacementError),
    #[error("the ONNX detector cannot start on this source's GPU: {0}")]
    Detector(String),
    #[error("source `{id}`: {error}")]
    Uri { id: String, error: crate::pipeline::uri::UriError },
    #[error("GStreamer could not be initialised: {0}")]
    Gstreamer(String),
    #[error("cannot add the source to the DeepStream pipeline: {0}")]
    DeepStream(String),
    #[error(transparent)]
    Decode(#[from] decode::DecodeError),
}

/// Makes the frame tap of a source (given its id).
type TapFactory = Box<dyn Fn(&str) -> FrameTap + Send + Sync>;

struct SourceHandle {
    spec: SourceSpec,
    outlet: SourceOutlet,
    commands: Sender<WorkerCommand>,
    controller: Option<JoinHandle<()>>,
    worker: Option<JoinHandle<()>>,
    strategy_metrics: Vec<(String, Arc<StrategyMetrics>)>,
    /// Set when the source runs in the shared DeepStream pipeline.
    deepstream: Option<Arc<DeepStreamPipeline>>,
    /// What finds its objects (`auto` resolved).
    detector: crate::config::DetectorKind,
}

/// Settings shared by every source.
#[derive(Clone)]
pub struct RuntimeSettings {
    pub pipeline: PipelineConfig,
    pub recovery: RecoveryConfig,
    pub labels: Arc<LabelTable>,
    /// Frame rings for snapshots; `None` = off.
    pub rings: Option<RingSettings>,
    /// The ONNX detector, when a source runs one.
    pub detector: Option<Arc<crate::detect::onnx::OnnxDetector>>,
}

pub struct Runtime {
    engine: Arc<StrategyEngine>,
    /// Replaced by a config change; sources added afterwards use the new one.
    settings: RwLock<RuntimeSettings>,
    strategies: RwLock<Vec<StrategyPlan>>,
    /// Serializes strategy installs (reloads may come from several places).
    installing: Mutex<()>,
    /// Taken at shutdown, so the alert dispatcher sees the end of the stream
    /// once the workers are gone, whoever still holds the runtime.
    alerts: Mutex<Option<Sender<Alert>>>,
    run_id: u64,
    sources: Mutex<BTreeMap<String, SourceHandle>>,
    tap_factory: Option<TapFactory>,
    /// The batched DeepStream pipeline, when that backend was chosen.
    deepstream: Option<Arc<DeepStreamPipeline>>,
    /// Which GPU each GPU source runs on.
    placement: Mutex<super::placement::Placement>,
    /// The ONNX detector of each GPU a source was placed on (the
    /// configured one serves its own device id).
    detectors: Mutex<BTreeMap<u32, Arc<crate::detect::onnx::OnnxDetector>>>,
}

impl Runtime {
    pub fn new(
        engine: Arc<StrategyEngine>,
        settings: RuntimeSettings,
        strategies: Vec<StrategyPlan>,
        alerts: Sender<Alert>,
    ) -> Result<Self, RuntimeError> {
        crate::pipeline::init().map_err(|e| RuntimeError::Gstreamer(e.to_string()))?;
        let settings_gpus = settings.pipeline.gpus.clone();
        let run_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()) << 32;
        Ok(Runtime {
            engine,
            settings: RwLock::new(settings),
            strategies: RwLock::new(strategies),
            installing: Mutex::new(()),
            alerts: Mutex::new(Some(alerts)),
            run_id,
            sources: Mutex::new(BTreeMap::new()),
            tap_factory: None,
            deepstream: None,
            placement: Mutex::new(super::placement::Placement::new(super::placement::host_gpus(
                settings_gpus.as_deref(),
            ))),
            detectors: Mutex::new(BTreeMap::new()),
        })
    }

    /// Runs sources in the batched DeepStream pipeline instead of one CPU
    /// pipeline each; queues and strategy workers stay per source.
    pub fn with_deepstream(mut self, pipeline: Arc<DeepStreamPipeline>) -> Self {
        self.deepstream = Some(pipeline);
        self
    }

    /// Every analysed frame of every source also goes to a tap made by
    /// `factory` for that source (used by `dshost record`).
    pub fn with_frame_tap(mut self, factory: impl Fn(&str) -> FrameTap + Send + Sync + 'static) -> Self {
        self.tap_factory = Some(Box::new(factory));
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SourceHandle>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (single inserts and removes), so poisoning is safe to ignore.
        self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The settings sources are started with.
    pub fn settings(&self) -> RuntimeSettings {
        self.settings.read().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Replaces the settings; running sources keep theirs until restarted.
    pub fn set_settings(&self, settings: RuntimeSettings) {
        match self.settings.write() {
            Ok(mut current) => *current = settings,
            Err(poisoned) => *poisoned.into_inner() = settings,
        }
    }

    /// Starts a source (and its strategy instances) without touching others.
    pub fn add_source(&self, spec: SourceSpec) -> Result<(), RuntimeError> {
        let id = spec.id.to_string();
        if self.lock().contains_key(&id) {
            return Err(RuntimeError::DuplicateSource(id));
        }
        let settings = self.settings();
        // Holding the install lock: a strategy reload cannot slip between
        // reading the plans and registering this source.
        let _installing = self.installing.lock().unwrap_or_else(|p| p.into_inner());
        let choice = spec.decoder.unwrap_or(settings.pipeline.decoder);
        let selection = decode::select(&id, choice, &spec.uri, || decode::gpu_decode_report().clone())?;
        match (&selection.fallback, selection.path) {
            (Some(reason), _) => {
                tracing::warn!(source = %id, reason = %reason, "GPU decode unavailable; decoding on the CPU")
            }
            (None, DecodePath::Gpu) => {
                tracing::info!(source = %id, "decoding on the GPU (nvv4l2decoder + nvvideoconvert)")
            }
            (None, _) => tracing::debug!(source = %id, decode = selection.path.as_str(), "decoder chosen"),
        }
        // A source on the GPU (its decoder, or its detector) gets a GPU:
        // decode, conversion and inference all on that one.
        let detector_kind = objects::detector_of(&spec, settings.pipeline.onnx.model.is_some());
        let onnx_gpu = settings.detector.as_ref().is_some_and(|d| d.provider.is_gpu())
            && detector_kind == crate::config::DetectorKind::Onnx;
        let gpu = if selection.path == DecodePath::Gpu || onnx_gpu {
            let request = super::placement::Request { source: id.clone(), pinned: spec.device_id, weight: 0 };
            let placed = self.placement.lock().unwrap_or_else(|p| p.into_inner()).place(&request);
            match placed {
                Ok(gpu) => Some(gpu),
                // No device node to count GPUs by (a container without
                // /dev/nvidia*): the configured device, as before.
                Err(super::placement::PlacementError::NoGpu(_)) => spec.device_id,
                Err(error) => return Err(RuntimeError::Placement(error)),
            }
        } else {
            None
        };
        if let Some(gpu) = gpu {
            tracing::info!(source = %id, gpu, "source placed on GPU {gpu}");
        }
        let mut settings = settings;
        if let (true, Some(gpu), Some(detector)) = (onnx_gpu, gpu, settings.detector.clone()) {
            settings.detector = Some(self.detector_on(&detector, gpu)?);
        }
        let plans: Vec<StrategyPlan> = self.plans().into_iter().filter(|p| p.applies_to(&id)).collect();
        let mut slots = Vec::new();
        let mut strategy_metrics = Vec::new();
        for plan in &plans {
            let (instance, metrics) = self.instantiate(plan, &spec.id, &settings)?;
            slots.push(StrategySlot { name: plan.name.clone(), instance });
            strategy_metrics.push((plan.name.clone(), metrics));
        }
        let Some(alerts) = self.alerts.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return Err(RuntimeError::ShuttingDown);
        };
        let (commands, command_receiver) = std::sync::mpsc::channel();
        // The DeepStream backend's frames stay on the GPU: no ring there.
        let ring = match (&settings.rings, &self.deepstream) {
            (Some(rings), None) => {
                let ring = Arc::new(FrameRing::new(rings.max_bytes, rings.max_frames));
                rings.rings.insert(&id, ring.clone());
                Some(ring)
            }
            _ => None,
        };
        let outlet = SourceOutlet {
            source_id: spec.id.clone(),
            queue: Arc::new(FrameQueue::new(settings.pipeline.queue_depth)),
            metrics: Arc::new(SourceMetrics::default()),
            paced: spec.realtime,
            stop: Arc::new(AtomicBool::new(false)),
            ring,
        };
        let worker = Worker {
            queue: outlet.queue.clone(),
            metrics: outlet.metrics.clone(),
            slots,
            alerts,
            run_id: self.run_id,
            tap: self.tap_factory.as_ref().map(|factory| factory(&id)),
            commands: command_receiver,
            source_id: id.clone(),
        };
        let worker = std::thread::Builder::new()
            .name(format!("strategies-{id}"))
            .spawn(move || worker.run())
            .map_err(RuntimeError::Thread)?;
        // A source runs either in the shared DeepStream pipeline or in a
        // GStreamer pipeline of its own under a restart controller.
        let started = match &self.deepstream {
            Some(deepstream) => deepstream
                .add_source(&spec, outlet.clone())
                .map(|_pad| (None, Some(deepstream.clone())))
                .map_err(|error| RuntimeError::DeepStream(error.to_string())),
            None => {
                let stage = StageContext {
                    outlet: outlet.clone(),
                    objects: match objects::stage_factory(&spec, &settings) {
                        Ok(factory) => factory,
                        Err(error) => {
                            outlet.queue.close();
                            let _ = worker.join();
                            if let Some(rings) = &settings.rings {
                                rings.rings.remove(&id);
                            }
                            return Err(error);
                        }
                    },
                    frame_counter: Arc::new(AtomicU64::new(0)),
                    decode: selection.path,
                    min_width: settings.rings.as_ref().map_or(0, |r| r.min_width),
                    gpu,
                };
                let (spec, recovery, stop) = (spec.clone(), settings.recovery.clone(), outlet.stop.clone());
                std::thread::Builder::new()
                    .name(format!("source-{id}"))
                    .spawn(move || run_source(spec, stage, recovery, stop))
                    .map(|controller| (Some(controller), None))
                    .map_err(RuntimeError::Thread)
            }
        };
        let (controller, deepstream) = match started {
            Ok(started) => started,
            Err(error) => {
                outlet.queue.close();
                let _ = worker.join();
                if let Some(rings) = &settings.rings {
                    rings.rings.remove(&id);
                }
                return Err(error);
            }
        };
        self.lock().insert(
            id,
            SourceHandle {
                spec,
                outlet,
                commands,
                controller,
                worker: Some(worker),
                strategy_metrics,
                deepstream,
                detector: detector_kind,
            },
        );
        Ok(())
    }

    /// Starts every source of `config`, in order; stops at the first that
    /// cannot start.
    pub fn add_sources(&self, config: &crate::config::Config) -> Result<(), RuntimeError> {
        for source in &config.sources {
            let spec = SourceSpec::from_config(source, config.pipeline.detector)
                .map_err(|error| RuntimeError::Uri { id: source.id.clone(), error })?;
            self.add_source(spec)?;
        }
        Ok(())
    }

    /// The configured detector, or one like it on `gpu` (loaded once per GPU).
    fn detector_on(
        &self,
        detector: &Arc<crate::detect::onnx::OnnxDetector>,
        gpu: u32,
    ) -> Result<Arc<crate::detect::onnx::OnnxDetector>, RuntimeError> {
        if detector.config.device_id == gpu {
            return Ok(detector.clone());
        }
        let mut detectors = self.detectors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = detectors.get(&gpu).filter(|d| d.config == OnnxConfigOnGpu::of(&detector.config, gpu)) {
            return Ok(found.clone());
        }
        let config = OnnxConfigOnGpu::of(&detector.config, gpu);
        let labels = detector.labels.clone();
        let loaded =
            crate::detect::onnx::OnnxDetector::load(&config, Some(detector.low_confidence), |_| (*labels).clone())
                .map_err(|e| RuntimeError::Detector(e.to_string()))?;
        let loaded = Arc::new(loaded);
        detectors.insert(gpu, loaded.clone());
        Ok(loaded)
    }

    /// The strategies as currently installed.
    pub fn plans(&self) -> Vec<StrategyPlan> {
        self.strategies.read().map(|plans| plans.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    fn policy(settings: &RuntimeSettings) -> RecoveryPolicy {
        RecoveryPolicy { quarantine_after: settings.recovery.strategy_quarantine_after, ..RecoveryPolicy::default() }
    }

    /// A configured instance of `plan` for `source` (instantiate + configure).
    fn instantiate(
        &self,
        plan: &StrategyPlan,
        source: &Arc<str>,
        settings: &RuntimeSettings,
    ) -> Result<(SupervisedInstance, Arc<StrategyMetrics>), RuntimeError> {
        let metrics = Arc::new(StrategyMetrics::default());
        let instance_settings = InstanceSettings {
            source_id: source.clone(),
            config_json: plan.config_json.clone(),
            labels: settings.labels.clone(),
            limits: plan.limits.clone(),
        };
        let instance = SupervisedInstance::start(
            self.engine.clone(),
            plan.component.clone(),
            instance_settings,
            Self::policy(settings),
            metrics.clone(),
        )
        .map_err(|error| RuntimeError::Strategy {
            strategy: plan.name.clone(),
            source_id: source.to_string(),
            error,
        })?;
        Ok((instance, metrics))
    }

    /// Installs a new or changed strategy on every source it applies to, at
    /// a frame boundary per source, and removes it from sources it no longer
    /// applies to. Every instance is created and configured before any
    /// source switches: a `configure` error changes nothing. Stateful
    /// strategies carry their state over; a source whose new instance
    /// refuses the state keeps the old version (reported per source).
    pub fn install_strategy(&self, plan: StrategyPlan) -> Result<Vec<InstallOutcome>, RuntimeError> {
        let _installing = self.installing.lock().unwrap_or_else(|p| p.into_inner());
        let settings = self.settings();
        let targets: Vec<(Arc<str>, Sender<WorkerCommand>, Arc<FrameQueue>)> = self
            .lock()
            .values()
            .filter(|h| plan.applies_to(&h.spec.id))
            .map(|h| (h.spec.id.clone(), h.commands.clone(), h.outlet.queue.clone()))
            .collect();
        let mut prepared = Vec::new();
        for (source, commands, queue) in targets {
            let (instance, metrics) = self.instantiate(&plan, &source, &settings)?;
            prepared.push((source, commands, queue, instance, metrics));
        }
        let (reply, replies) = std::sync::mpsc::channel();
        let mut sent = 0;
        for (source, commands, queue, instance, metrics) in prepared {
            let command = WorkerCommand::Install {
                name: plan.name.clone(),
                instance: Box::new(instance),
                carry_state: true,
                reply: reply.clone(),
            };
            if commands.send(command).is_ok() {
                queue.wake();
                sent += 1;
                if let Some(handle) = self.lock().get_mut(&*source) {
                    handle.strategy_metrics.retain(|(name, _)| name != &plan.name);
                    handle.strategy_metrics.push((plan.name.clone(), metrics));
                }
            }
        }
        let mut outcomes = Vec::new();
        for _ in 0..sent {
            match replies.recv_timeout(Duration::from_secs(30)) {
                Ok(outcome) => outcomes.push(outcome),
                Err(_) => break,
            }
        }
        // Sources the strategy no longer applies to stop running it.
        for handle in self.lock().values_mut() {
            if !plan.applies_to(&handle.spec.id) && handle.strategy_metrics.iter().any(|(n, _)| n == &plan.name) {
                let _ = handle.commands.send(WorkerCommand::Remove { name: plan.name.clone() });
                handle.outlet.queue.wake();
                handle.strategy_metrics.retain(|(name, _)| name != &plan.name);
            }
        }
        if let Ok(mut plans) = self.strategies.write() {
            match plans.iter_mut().find(|p| p.name == plan.name) {
                Some(existing) => *existing = plan,
                None => plans.push(plan),
            }
        }
        Ok(outcomes)
    }

    /// Stops running strategy `name` everywhere.
    pub fn remove_strategy(&self, name: &str) {
        let _installing = self.installing.lock().unwrap_or_else(|p| p.into_inner());
        for handle in self.lock().values_mut() {
            let _ = handle.commands.send(WorkerCommand::Remove { name: name.to_string() });
            handle.outlet.queue.wake();
            handle.strategy_metrics.retain(|(n, _)| n != name);
        }
        if let Ok(mut plans) = self.strategies.write() {
            plans.retain(|p| p.name != name);
        }
    }

    /// Stops and removes a source; frames it already queued are processed.
    pub fn remove_source(&self, id: &str) -> Result<SourceSummary, RuntimeError> {
        let handle = self.lock().remove(id).ok_or_else(|| RuntimeError::UnknownSource(id.to_string()))?;
        self.placement.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        if let Some(rings) = &self.settings().rings {
            rings.rings.remove(id);
        }
        Ok(finish(handle))
    }

    /// Every source's counters.
    pub fn source_metrics(&self) -> Vec<(String, Arc<SourceMetrics>)> {
        self.lock().iter().map(|(id, h)| (id.clone(), h.outlet.metrics.clone())).collect()
    }

    /// Ids of the running sources.
    pub fn source_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Whether every source has ended (files done, sources failed for good).
    pub fn all_ended(&self) -> bool {
        self.lock().values().all(|h| h.outlet.metrics.state().is_final())
    }

    pub fn summaries(&self) -> Vec<SourceSummary> {
        self.lock()
            .values()
            .map(|h| {
                let mut summary = h.outlet.metrics.snapshot(&h.spec.id, &h.spec.uri.redacted());
                summary.detector = Some(detector_name(h));
                summary
            })
            .collect()
    }

    /// Per (source, strategy) metrics.
    pub fn strategy_metrics(&self) -> Vec<(String, String, Arc<StrategyMetrics>)> {
        self.lock()
            .iter()
            .flat_map(|(source, h)| {
                h.strategy_metrics.iter().map(move |(name, m)| (source.clone(), name.clone(), m.clone()))
            })
            .collect()
    }

    /// Stops every source, lets workers drain what was accepted, and returns
    /// the final summaries.
    pub fn shutdown(&self) -> Vec<SourceSummary> {
        // No source can be added from here on (adding holds this lock).
        let installing = self.installing.lock().unwrap_or_else(|p| p.into_inner());
        self.alerts.lock().unwrap_or_else(|p| p.into_inner()).take();
        let handles: Vec<SourceHandle> = std::mem::take(&mut *self.lock()).into_values().collect();
        drop(installing);
        for handle in &handles {
            handle.outlet.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let summaries = handles.into_iter().map(finish).collect();
        if let Some(deepstream) = &self.deepstream {
            deepstream.shutdown();
        }
        summaries
    }
}

fn finish(mut handle: SourceHandle) -> SourceSummary {
    let detector = detector_name(&handle);
    handle.outlet.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(deepstream) = handle.deepstream.take() {
        deepstream.remove_source(&handle.spec.id);
        // No controller closes the queue here: close it so the worker drains and ends.
        handle.outlet.queue.close();
        if handle.outlet.metrics.state() == SourceState::Running {
            handle.outlet.metrics.set_state(SourceState::Stopped);
        }
    }
    if let Some(controller) = handle.controller.take() {
        let _ = controller.join();
    }
    if let Some(worker) = handle.worker.take() {
        let _ = worker.join();
    }
    let mut summary = handle.outlet.metrics.snapshot(&handle.spec.id, &handle.spec.uri.redacted());
    summary.detector = Some(detector);
    summary
}

/// What finds a source's objects, as the API shows it.
fn detector_name(handle: &SourceHandle) -> String {
    if handle.deepstream.is_some() {
        // The batched pipeline's own inference element.
        return "nvinfer".to_string();
    }
    let kind = handle.detector;
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| format!("{kind:?}"))
}

/// `pipeline.onnx` with another device.
struct OnnxConfigOnGpu;

impl OnnxConfigOnGpu {
    fn of(config: &crate::config::OnnxConfig, gpu: u32) -> crate::config::OnnxConfig {
        crate::config::OnnxConfig { device_id: gpu, ..config.clone() }
    }
}
