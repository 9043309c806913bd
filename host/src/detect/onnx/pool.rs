//! The inference pool: one model serving every source. Sources submit
//! frames into small per-source queues; worker threads (each with its own
//! session) collect up to `max_batch` frames across sources, round-robin,
//! waiting at most `max_wait` after the oldest one (nvstreammux's
//! batched-push-timeout), run them, and hand each frame's result to the
//! source's completion callback.
//!
//! Submitting never blocks a live (paced) source: a full queue drops its
//! oldest frame, which the caller counts as `inference_backlog`. A file
//! (unpaced) source waits for room, giving up when its stop flag is set,
//! like `FrameQueue::push_waiting`. Per source, results arrive in
//! submission order: a source's frames are never in two running batches at
//! once. A failed run fails its frames only, counted and logged once per
//! burst of failures.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use super::decode::DecodeOptions;
use super::metrics::{ModelMetrics, SourceInferenceMetrics};
use super::model::{ModelError, OnnxModel};
use super::preprocess::RgbImage;
use super::provider::Provider;
use super::session::{FrameRef, InferenceError, InferenceSession, RunTiming};
use crate::detect::Detected;

/// Runs one batch; the pool's workers own one each. Implemented by
/// [`SessionRunner`] (a real ONNX Runtime session); the trait exists so the
/// scheduling can be tested with runs that block or fail on cue.
pub trait BatchRunner: Send + 'static {
    /// Most frames per run.
    fn capacity(&self) -> usize;
    /// Runs once before serving frames (a GPU session's first run picks its
    /// kernels, which takes seconds: no frame should wait behind that).
    fn warm_up(&mut self) {}
    /// Runs `frames`; `results[i]` is frame `i`'s outcome.
    fn run(&mut self, frames: &[FrameRef<'_>], results: &mut Vec<Result<Vec<Detected>, InferenceError>>) -> RunTiming;
}

/// A session and the decoding settings of the stage.
pub struct SessionRunner {
    pub session: InferenceSession,
    pub options: Arc<DecodeOptions>,
}

impl BatchRunner for SessionRunner {
    fn capacity(&self) -> usize {
        self.session.capacity()
    }

    fn run(&mut self, frames: &[FrameRef<'_>], results: &mut Vec<Result<Vec<Detected>, InferenceError>>) -> RunTiming {
        self.session.detect(frames, &self.options, results)
    }

    fn warm_up(&mut self) {
        if let Err(error) = self.session.capture() {
            tracing::error!(%error, "cannot capture the CUDA graph of an inference session; its runs will fail (set pipeline.onnx.cuda_graph: false)");
        }
        let (width, height) = self.session.input_size();
        let image = vec![super::preprocess::PAD_VALUE; width as usize * height as usize * 3];
        let frame =
            FrameRef { image: RgbImage::packed(&image, width, height), source_width: width, source_height: height };
        let frames = vec![frame; self.session.capacity()];
        let mut results = Vec::new();
        self.session.detect(&frames, &self.options, &mut results);
    }
}

/// How long a pool with CUDA graphs waits for its workers' captures (each
/// first runs the model regularly, which on a cold GPU picks kernels for
/// seconds).
const GRAPH_CAPTURE_TIMEOUT: Duration = Duration::from_secs(300);

/// Worker threads for a provider when `pipeline.onnx.workers` is not set:
/// one on the CPU (its intra-op threads already use every core; a second
/// session would only compete for them), four on a GPU (concurrent runs
/// overlap the host-side work: 233 -> 657 images/s from 1 to 4 threads on
/// the H200, docs/benchmarks.md).
pub fn default_workers(provider: Provider) -> usize {
    if provider.is_gpu() {
        4
    } else {
        1
    }
}

/// Pool settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolOptions {
    /// Most frames per batch (further capped by what the model runs).
    pub max_batch: usize,
    /// Longest wait to fill a batch, counted from the oldest frame's
    /// submission.
    pub max_wait: Duration,
    /// Frames queued per source (small: old frames are stale).
    pub queue_depth: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions { max_batch: 4, max_wait: Duration::from_millis(10), queue_depth: 2 }
    }
}

/// A frame handed to the pool.
#[derive(Debug)]
pub struct Frame<T> {
    /// Packed RGB8 rows (take buffers from [`SourceHandle::buffer`]; the
    /// pool returns them there after preprocessing).
    pub image: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    /// The source frame's size, which boxes are reported in.
    pub source_width: u32,
    pub source_height: u32,
    /// The caller's frame (handed back with the result).
    pub context: T,
}

/// What became of a submitted frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Submitted<T> {
    Queued,
    /// Queued; the oldest queued frame of this (live) source was dropped to
    /// make room: its context, for the caller to count and release.
    DisplacedOldest(T),
    /// Not queued: the pool or the source is stopping.
    Stopped(T),
}

/// A frame's result, given to the source's callback on a worker thread
/// (keep the callback short: hand the frame on, do not process it there).
#[derive(Debug)]
pub struct InferenceResult<T> {
    pub context: T,
    pub detections: Result<Vec<Detected>, InferenceError>,
    /// From submission to the start of its batch.
    pub queued: Duration,
    /// The batch it ran in.
    pub timing: RunTiming,
}

/// How a source paces its frames.
#[derive(Debug, Clone)]
pub enum Pacing {
    /// A camera: never wait; drop the oldest queued frame when full.
    Live,
    /// A file read as fast as possible: wait for room, until `stop` is set.
    Unpaced { stop: Arc<AtomicBool> },
}

type Callback<T> = Box<dyn Fn(InferenceResult<T>) + Send + Sync>;

struct Job<T> {
    frame: Frame<T>,
    submitted: Instant,
}

struct SourceSlot<T> {
    id: Arc<str>,
    pacing: Pacing,
    queue: ArrayQueue<Job<T>>,
    buffers: ArrayQueue<Vec<u8>>,
    /// Frames of this source are in a running batch.
    busy: AtomicBool,
    closed: AtomicBool,
    /// Submitted and not yet completed.
    pending: AtomicUsize,
    /// An unpaced submitter waiting for room.
    waiter: Mutex<Option<Thread>>,
    on_result: Callback<T>,
    metrics: Arc<SourceInferenceMetrics>,
}

impl<T> SourceSlot<T> {
    fn wake_waiter(&self) {
        if let Ok(waiter) = self.waiter.try_lock() {
            if let Some(thread) = waiter.as_ref() {
                thread.unpark();
            }
        }
    }

    fn stopping(&self) -> bool {
        self.closed.load(Ordering::Acquire)
            || matches!(&self.pacing, Pacing::Unpaced { stop } if stop.load(Ordering::Relaxed))
    }
}

struct Shared<T> {
    sources: RwLock<Vec<Arc<SourceSlot<T>>>>,
    /// Where the next collection round starts (fairness across batches).
    cursor: AtomicUsize,
    /// The worker collecting a batch now, woken by submissions.
    collector: Mutex<Option<Thread>>,
    /// Only one worker collects at a time (so batches are not split).
    token: Mutex<bool>,
    token_free: Condvar,
    stop: AtomicBool,
    options: PoolOptions,
    metrics: Arc<ModelMetrics>,
    /// A burst of failed runs is being counted (logged once).
    failing: AtomicBool,
    failed_runs: AtomicU64,
    name: String,
    /// Workers past their warm-up.
    warm: Mutex<usize>,
    warm_done: Condvar,
}

impl<T> Shared<T> {
    fn wake_collector(&self) {
        let collector = self.collector.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(thread) = collector.as_ref() {
            thread.unpark();
        }
    }
}

/// The pool: workers and the registry of sources.
pub struct InferencePool<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    workers: Vec<JoinHandle<()>>,
}

impl<T: Send + 'static> InferencePool<T> {
    /// A pool for `model` with `workers` threads, each with its own session.
    pub fn for_model(
        model: &OnnxModel,
        workers: usize,
        options: PoolOptions,
        decode: DecodeOptions,
    ) -> Result<Self, ModelError> {
        let decode = Arc::new(decode);
        let mut runners: Vec<Box<dyn BatchRunner>> = Vec::new();
        let mut graphs = false;
        for _ in 0..workers.max(1) {
            let session = model.session(options.max_batch)?;
            graphs |= session.uses_graph();
            runners.push(Box::new(SessionRunner { session, options: decode.clone() }));
        }
        let count = runners.len();
        let pool = Self::start(model.info().file.clone(), runners, options);
        if graphs {
            // Each worker captures its graph on its own thread (ONNX Runtime
            // keeps a graph per thread), one at a time; no frame and, as the
            // sources start after this returns, no decoder's CUDA work may
            // run meanwhile.
            pool.wait_warm(count, GRAPH_CAPTURE_TIMEOUT);
        }
        Ok(pool)
    }

    /// Waits until `count` workers have warmed up, or `timeout`.
    fn wait_warm(&self, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut warm = self.shared.warm.lock().unwrap_or_else(|p| p.into_inner());
        while *warm < count {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(model = %self.shared.name, warm = *warm, count, "inference workers still warming up");
                return;
            }
            warm = self.shared.warm_done.wait_timeout(warm, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// A pool running `runners` (one worker thread each).
    pub fn start(name: String, runners: Vec<Box<dyn BatchRunner>>, options: PoolOptions) -> Self {
        let capacity = runners.iter().map(|r| r.capacity()).max().unwrap_or(1);
        let shared = Arc::new(Shared {
            sources: RwLock::new(Vec::new()),
            cursor: AtomicUsize::new(0),
            collector: Mutex::new(None),
            token: Mutex::new(false),
            token_free: Condvar::new(),
            stop: AtomicBool::new(false),
            metrics: Arc::new(ModelMetrics::new(capacity)),
            options,
            failing: AtomicBool::new(false),
            failed_runs: AtomicU64::new(0),
            name,
            warm: Mutex::new(0),
            warm_done: Condvar::new(),
        });
        let workers = runners
            .into_iter()
            .enumerate()
            .filter_map(|(index, runner)| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("dshost-infer-{index}"))
                    .spawn(move || worker(shared, runner))
                    .map_err(|e| tracing::error!("cannot start inference worker {index}: {e}"))
                    .ok()
            })
            .collect();
        InferencePool { shared, workers }
    }

    /// Registers a source; its results go to `on_result`.
    pub fn add_source(
        &self,
        id: &str,
        pacing: Pacing,
        on_result: impl Fn(InferenceResult<T>) + Send + Sync + 'static,
    ) -> SourceHandle<T> {
        // A file waits for room instead of dropping, so a deeper queue costs
        // it only buffers (allocated on use) and lets one source fill a whole
        // batch: with `queue_depth` frames a source could not keep more
        // than that many in flight, and many workers on few sources ran
        // partial batches. A camera keeps `queue_depth`: under overload a
        // deeper queue would only add latency before the oldest is dropped.
        let options = &self.shared.options;
        let depth = match pacing {
            Pacing::Live => options.queue_depth.max(1),
            Pacing::Unpaced { .. } => options.queue_depth.max(options.max_batch).max(1),
        };
        let slot = Arc::new(SourceSlot {
            id: Arc::from(id),
            pacing,
            queue: ArrayQueue::new(depth),
            buffers: ArrayQueue::new(depth + 2),
            busy: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            pending: AtomicUsize::new(0),
            waiter: Mutex::new(None),
            on_result: Box::new(on_result),
            metrics: Arc::new(SourceInferenceMetrics::default()),
        });
        self.shared.sources.write().unwrap_or_else(|p| p.into_inner()).push(slot.clone());
        SourceHandle { slot, shared: self.shared.clone() }
    }

    pub fn metrics(&self) -> &Arc<ModelMetrics> {
        &self.shared.metrics
    }

    /// Worker threads running.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Stops the workers after their current batch; frames still queued
    /// are dropped (drain a source with [`SourceHandle::finish`] first).
    pub fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.token_free.notify_all();
        self.shared.wake_collector();
        for slot in self.shared.sources.read().unwrap_or_else(|p| p.into_inner()).iter() {
            slot.wake_waiter();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl<T: Send + 'static> Drop for InferencePool<T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A source's end of the pool. Dropping it unregisters the source; frames
/// it still had queued are dropped.
pub struct SourceHandle<T: Send + 'static> {
    slot: Arc<SourceSlot<T>>,
    shared: Arc<Shared<T>>,
}

impl<T: Send + 'static> SourceHandle<T> {
    pub fn id(&self) -> &str {
        &self.slot.id
    }

    pub fn metrics(&self) -> &Arc<SourceInferenceMetrics> {
        &self.slot.metrics
    }

    /// An image buffer of at least `len` bytes' capacity, recycled from
    /// frames already preprocessed (no allocation in steady state).
    pub fn buffer(&self, len: usize) -> Vec<u8> {
        let mut buffer = self.slot.buffers.pop().unwrap_or_default();
        buffer.clear();
        buffer.reserve(len);
        buffer
    }

    /// Hands a frame to the pool (see [`Pacing`] for what happens when the
    /// source's queue is full).
    pub fn submit(&self, frame: Frame<T>) -> Submitted<T> {
        let slot = &self.slot;
        if self.shared.stop.load(Ordering::Acquire) || slot.closed.load(Ordering::Acquire) {
            return Submitted::Stopped(frame.context);
        }
        slot.metrics.submitted.fetch_add(1, Ordering::Relaxed);
        let job = Job { frame, submitted: Instant::now() };
        let outcome = match &slot.pacing {
            Pacing::Live => {
                slot.pending.fetch_add(1, Ordering::AcqRel);
                match slot.queue.force_push(job) {
                    None => Submitted::Queued,
                    Some(old) => {
                        slot.pending.fetch_sub(1, Ordering::AcqRel);
                        slot.metrics.backlog_drops.fetch_add(1, Ordering::Relaxed);
                        let _ = slot.buffers.push(old.frame.image);
                        Submitted::DisplacedOldest(old.frame.context)
                    }
                }
            }
            Pacing::Unpaced { .. } => match self.push_waiting(job) {
                Ok(()) => Submitted::Queued,
                Err(job) => {
                    slot.metrics.submitted.fetch_sub(1, Ordering::Relaxed);
                    let _ = slot.buffers.push(job.frame.image);
                    return Submitted::Stopped(job.frame.context);
                }
            },
        };
        self.shared.wake_collector();
        outcome
    }

    fn push_waiting(&self, mut job: Job<T>) -> Result<(), Job<T>> {
        let slot = &self.slot;
        // Counted before the push: a fast worker may complete the frame
        // before this thread runs again.
        slot.pending.fetch_add(1, Ordering::AcqRel);
        loop {
            match slot.queue.push(job) {
                Ok(()) => return Ok(()),
                Err(back) => job = back,
            }
            if self.shared.stop.load(Ordering::Acquire) || slot.stopping() {
                slot.pending.fetch_sub(1, Ordering::AcqRel);
                return Err(job);
            }
            *slot.waiter.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::thread::current());
            // A worker that popped between the failed push and the line
            // above did not see this thread: try once more before parking.
            match slot.queue.push(job) {
                Ok(()) => return Ok(()),
                Err(back) => job = back,
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }

    /// Waits until every frame submitted so far has its result (end of a
    /// file), at most `timeout`. Returns whether it got there.
    pub fn finish(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.slot.pending.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline || self.shared.stop.load(Ordering::Acquire) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Frames submitted and not completed.
    pub fn pending(&self) -> usize {
        self.slot.pending.load(Ordering::Acquire)
    }
}

impl<T: Send + 'static> Drop for SourceHandle<T> {
    fn drop(&mut self) {
        self.slot.closed.store(true, Ordering::Release);
        self.slot.wake_waiter();
        let mut sources = self.shared.sources.write().unwrap_or_else(|p| p.into_inner());
        sources.retain(|s| !Arc::ptr_eq(s, &self.slot));
    }
}

type Taken<T> = (Arc<SourceSlot<T>>, Job<T>);

/// One pass over the sources from the cursor, taking at most one frame per
/// source, skipping sources whose frames are in another running batch.
fn take_round<T>(shared: &Shared<T>, batch: &mut Vec<Taken<T>>, marked: &mut Vec<Arc<SourceSlot<T>>>, capacity: usize) {
    let sources = shared.sources.read().unwrap_or_else(|p| p.into_inner());
    let count = sources.len();
    if count == 0 {
        return;
    }
    let start = shared.cursor.load(Ordering::Relaxed) % count;
    for k in 0..count {
        if batch.len() >= capacity {
            break;
        }
        let index = (start + k) % count;
        let slot = &sources[index];
        let ours = marked.iter().any(|m| Arc::ptr_eq(m, slot));
        if !ours && slot.busy.load(Ordering::Acquire) {
            continue;
        }
        if let Some(job) = slot.queue.pop() {
            if !ours {
                slot.busy.store(true, Ordering::Release);
                marked.push(slot.clone());
            }
            slot.wake_waiter();
            batch.push((slot.clone(), job));
            // The next round (and the next batch) starts after the last
            // source served.
            shared.cursor.store(index + 1, Ordering::Relaxed);
        }
    }
}

/// Collects a batch: until `capacity` frames, or `max_wait` after the
/// oldest frame taken, or the pool stops.
fn collect<T>(shared: &Shared<T>, batch: &mut Vec<Taken<T>>, marked: &mut Vec<Arc<SourceSlot<T>>>, capacity: usize) {
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let before = batch.len();
        take_round(shared, batch, marked, capacity);
        if batch.len() >= capacity {
            return;
        }
        if batch.is_empty() {
            // Woken by a submission; the timeout only bounds how late a
            // stop is noticed.
            std::thread::park_timeout(Duration::from_millis(100));
            continue;
        }
        let deadline = batch[0].1.submitted + shared.options.max_wait;
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        if batch.len() == before {
            std::thread::park_timeout(deadline - now);
        }
    }
}

fn worker<T: Send + 'static>(shared: Arc<Shared<T>>, mut runner: Box<dyn BatchRunner>) {
    // All workers warm up at once, at start.
    runner.warm_up();
    *shared.warm.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    shared.warm_done.notify_all();
    // The session already capped this by `max_batch` (a fixed-batch model
    // runs its full batch whatever `max_batch` says).
    let capacity = runner.capacity().max(1);
    let mut batch: Vec<Taken<T>> = Vec::with_capacity(capacity);
    let mut marked: Vec<Arc<SourceSlot<T>>> = Vec::with_capacity(capacity);
    let mut results = Vec::with_capacity(capacity);
    loop {
        {
            let mut taken = shared.token.lock().unwrap_or_else(|p| p.into_inner());
            while *taken && !shared.stop.load(Ordering::Acquire) {
                taken = shared.token_free.wait(taken).unwrap_or_else(|p| p.into_inner());
            }
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            *taken = true;
        }
        *shared.collector.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::thread::current());
        collect(&shared, &mut batch, &mut marked, capacity);
        *shared.collector.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *shared.token.lock().unwrap_or_else(|p| p.into_inner()) = false;
        shared.token_free.notify_one();
        if batch.is_empty() {
            continue;
        }
        run_batch(&shared, runner.as_mut(), &mut batch, &mut results);
        for slot in marked.drain(..) {
            slot.busy.store(false, Ordering::Release);
        }
        // The collector may be waiting for frames of the sources just freed.
        shared.wake_collector();
    }
}

fn run_batch<T>(
    shared: &Shared<T>,
    runner: &mut dyn BatchRunner,
    batch: &mut Vec<Taken<T>>,
    results: &mut Vec<Result<Vec<Detected>, InferenceError>>,
) {
    let started = Instant::now();
    let frames: Vec<FrameRef<'_>> = batch
        .iter()
        .map(|(_, job)| FrameRef {
            image: RgbImage {
                data: &job.frame.image,
                width: job.frame.width,
                height: job.frame.height,
                stride: job.frame.stride,
            },
            source_width: job.frame.source_width,
            source_height: job.frame.source_height,
        })
        .collect();
    let run = catch_unwind(AssertUnwindSafe(|| runner.run(&frames, results)));
    drop(frames);
    let timing = match run {
        Ok(timing) => timing,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(model = %shared.name, %message, "inference worker panicked; its batch fails, the worker carries on");
            results.clear();
            results.extend((0..batch.len()).map(|_| Err(InferenceError::Panicked(message.clone()))));
            RunTiming { frames: batch.len(), ..RunTiming::default() }
        }
    };
    let metrics = &shared.metrics;
    metrics.runs.fetch_add(1, Ordering::Relaxed);
    metrics.record_batch(batch.len());
    metrics.inference.observe(timing.inference);
    metrics.batch_duration.observe(started.elapsed());
    let run_error = results.iter().find_map(|r| match r {
        Err(e @ (InferenceError::Run { .. } | InferenceError::Panicked(_))) => Some(e.to_string()),
        _ => None,
    });
    match run_error {
        Some(error) => {
            metrics.run_errors.fetch_add(1, Ordering::Relaxed);
            let burst = shared.failed_runs.fetch_add(1, Ordering::Relaxed);
            if !shared.failing.swap(true, Ordering::Relaxed) {
                tracing::warn!(model = %shared.name, %error, "inference failed; its frames have no detections (further failures are counted, not logged, until a run succeeds)");
            }
            let _ = burst;
        }
        None => {
            if shared.failing.swap(false, Ordering::Relaxed) {
                let failed = shared.failed_runs.swap(0, Ordering::Relaxed);
                tracing::info!(model = %shared.name, failed_runs = failed, "inference recovered");
            }
        }
    }
    // Pad the results in case a runner returned fewer than asked.
    while results.len() < batch.len() {
        results.push(Err(InferenceError::Panicked("the runner returned no result for this frame".into())));
    }
    for ((slot, job), detections) in batch.drain(..).zip(results.drain(..)) {
        let Job { frame, submitted } = job;
        let Frame { image, context, .. } = frame;
        let _ = slot.buffers.push(image);
        match &detections {
            Ok(_) => {
                metrics.frames.fetch_add(1, Ordering::Relaxed);
                slot.metrics.inferred.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                metrics.frame_errors.fetch_add(1, Ordering::Relaxed);
                slot.metrics.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let result =
            InferenceResult { context, detections, queued: started.saturating_duration_since(submitted), timing };
        if catch_unwind(AssertUnwindSafe(|| (slot.on_result)(result))).is_err() {
            tracing::error!(source = %slot.id, "the inference result callback panicked");
        }
        slot.metrics.latency.observe(submitted.elapsed());
        slot.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    //! The scheduling, driven by a scripted runner: a real model cannot be
    //! made to block, or fail, on cue. The same pool over real ONNX Runtime
    //! sessions is tested in tests/onnx.rs.
    use super::*;
    use std::sync::mpsc;

    /// Records each run's frames (by their first pixel byte = frame tag),
    /// optionally holding each run until released, failing runs whose
    /// first frame is tagged 255.
    struct Scripted {
        capacity: usize,
        runs: Arc<Mutex<Vec<Vec<u8>>>>,
        gate: Option<Arc<(Mutex<usize>, Condvar)>>,
        entered: Arc<AtomicUsize>,
    }

    impl BatchRunner for Scripted {
        fn capacity(&self) -> usize {
            self.capacity
        }

        fn run(
            &mut self,
            frames: &[FrameRef<'_>],
            results: &mut Vec<Result<Vec<Detected>, InferenceError>>,
        ) -> RunTiming {
            self.entered.fetch_add(1, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                let (lock, cv) = &**gate;
                let mut permits = lock.lock().unwrap();
                while *permits == 0 {
                    permits = cv.wait(permits).unwrap();
                }
                *permits -= 1;
            }
            let tags: Vec<u8> = frames.iter().map(|f| f.image.data[0]).collect();
            self.runs.lock().unwrap().push(tags.clone());
            results.clear();
            if tags[0] == 255 {
                panic!("scripted failure");
            }
            for tag in tags {
                results.push(Ok(vec![Detected {
                    left: 0.0,
                    top: 0.0,
                    width: 1.0,
                    height: 1.0,
                    confidence: f32::from(tag) / 255.0,
                    class_id: u32::from(tag),
                    object_id: None,
                }]));
            }
            RunTiming { frames: frames.len(), ..RunTiming::default() }
        }
    }

    fn frame(tag: u8, context: u32) -> Frame<u32> {
        Frame { image: vec![tag; 3], width: 1, height: 1, stride: 3, source_width: 1, source_height: 1, context }
    }

    type Results = mpsc::Receiver<(String, u32, Result<u32, String>)>;
    /// The tags of each run's frames, in run order.
    type Runs = Arc<Mutex<Vec<Vec<u8>>>>;

    fn pool(
        workers: usize,
        capacity: usize,
        options: PoolOptions,
        gate: Option<Arc<(Mutex<usize>, Condvar)>>,
    ) -> (InferencePool<u32>, Runs, Arc<AtomicUsize>) {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let entered = Arc::new(AtomicUsize::new(0));
        let runners: Vec<Box<dyn BatchRunner>> = (0..workers)
            .map(|_| {
                Box::new(Scripted { capacity, runs: runs.clone(), gate: gate.clone(), entered: entered.clone() })
                    as Box<dyn BatchRunner>
            })
            .collect();
        (InferencePool::start("test".into(), runners, options), runs, entered)
    }

    fn source(
        pool: &InferencePool<u32>,
        id: &str,
        pacing: Pacing,
        tx: &mpsc::Sender<(String, u32, Result<u32, String>)>,
    ) -> SourceHandle<u32> {
        let tx = Mutex::new(tx.clone());
        let name = id.to_string();
        pool.add_source(id, pacing, move |r: InferenceResult<u32>| {
            let outcome = r.detections.map(|d| d[0].class_id).map_err(|e| e.to_string());
            let _ = tx.lock().unwrap().send((name.clone(), r.context, outcome));
        })
    }

    fn release(gate: &Arc<(Mutex<usize>, Condvar)>, runs: usize) {
        *gate.0.lock().unwrap() += runs;
        gate.1.notify_all();
    }

    fn recv(rx: &Results) -> (String, u32, Result<u32, String>) {
        rx.recv_timeout(Duration::from_secs(10)).expect("a result within 10 s")
    }

    /// Warms up slowly, one at a time (as graph captures do).
    struct SlowWarm {
        order: Arc<Mutex<Vec<usize>>>,
        index: usize,
    }

    impl BatchRunner for SlowWarm {
        fn capacity(&self) -> usize {
            1
        }
        fn warm_up(&mut self) {
            static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
            let _one = ONE_AT_A_TIME.lock().unwrap();
            std::thread::sleep(Duration::from_millis(30));
            self.order.lock().unwrap().push(self.index);
        }
        fn run(&mut self, _: &[FrameRef<'_>], results: &mut Vec<Result<Vec<Detected>, InferenceError>>) -> RunTiming {
            results.clear();
            RunTiming::default()
        }
    }

    #[test]
    fn waiting_for_warm_up_returns_once_every_worker_warmed() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let runners: Vec<Box<dyn BatchRunner>> =
            (0..3).map(|index| Box::new(SlowWarm { order: order.clone(), index }) as Box<dyn BatchRunner>).collect();
        let mut pool = InferencePool::<u32>::start("warm".into(), runners, PoolOptions::default());
        pool.wait_warm(3, Duration::from_secs(30));
        let mut warmed = order.lock().unwrap().clone();
        warmed.sort();
        assert_eq!(warmed, [0, 1, 2]);
        // A count never reached gives up at the timeout instead of hanging.
        pool.wait_warm(4, Duration::from_millis(20));
        pool.shutdown();
    }

    #[test]
    fn batches_across_sources_round_robin() {
        let gate = Arc::new((Mutex::new(0), Condvar::new()));
        let options = PoolOptions { max_batch: 4, max_wait: Duration::from_millis(200), queue_depth: 2 };
        let (pool, runs, entered) = pool(1, 4, options, Some(gate.clone()));
        let (tx, rx) = mpsc::channel();
        let z = source(&pool, "z", Pacing::Live, &tx);
        let a = source(&pool, "a", Pacing::Live, &tx);
        let b = source(&pool, "b", Pacing::Live, &tx);
        let c = source(&pool, "c", Pacing::Live, &tx);
        // Hold the worker in a run of z's frame, so that the next batch is
        // collected from queues that are all filled already.
        z.submit(frame(1, 1));
        wait_until(|| entered.load(Ordering::SeqCst) == 1);
        // a: 2 frames, b: 2, c: 1. A batch of 4 takes one frame per source
        // per round, starting after z (the last source served): a, b, c,
        // then a again; b's second frame runs next.
        for (handle, tags) in [(&a, [10u8, 11]), (&b, [20, 21])] {
            for tag in tags {
                assert_eq!(handle.submit(frame(tag, u32::from(tag))), Submitted::Queued);
            }
        }
        assert_eq!(c.submit(frame(30, 30)), Submitted::Queued);
        release(&gate, 3);
        for _ in 0..6 {
            let (_, context, result) = recv(&rx);
            assert_eq!(result, Ok(context), "each frame gets its own result");
        }
        let runs = runs.lock().unwrap().clone();
        assert_eq!(runs, vec![vec![1u8], vec![10, 20, 30, 11], vec![21]]);
        assert_eq!(pool.metrics().batch_sizes(), [(1, 2), (4, 1)]);
    }

    #[test]
    fn an_unpaced_source_fills_a_whole_batch_alone() {
        let gate = Arc::new((Mutex::new(0), Condvar::new()));
        let options = PoolOptions { max_batch: 4, max_wait: Duration::from_millis(200), queue_depth: 2 };
        let (pool, runs, entered) = pool(1, 4, options, Some(gate.clone()));
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let a = source(&pool, "a", Pacing::Unpaced { stop: stop.clone() }, &tx);
        a.submit(frame(1, 1));
        wait_until(|| entered.load(Ordering::SeqCst) == 1);
        // The worker is held in frame 1's run: four more frames queue
        // (max_batch, above queue_depth) on a thread of their own, since a
        // fifth would wait for room.
        let feeder = std::thread::spawn(move || {
            for tag in 2..=5u8 {
                assert_eq!(a.submit(frame(tag, u32::from(tag))), Submitted::Queued);
            }
            a
        });
        wait_until(|| feeder.is_finished());
        release(&gate, 2);
        for _ in 0..5 {
            let (_, context, result) = recv(&rx);
            assert_eq!(result, Ok(context));
        }
        assert_eq!(runs.lock().unwrap().clone(), vec![vec![1u8], vec![2, 3, 4, 5]]);
        stop.store(true, Ordering::Release);
        drop(feeder.join());
    }

    #[test]
    fn a_partial_batch_runs_after_max_wait() {
        let options = PoolOptions { max_batch: 4, max_wait: Duration::from_millis(30), queue_depth: 2 };
        let (pool, runs, _) = pool(1, 4, options, None);
        let (tx, rx) = mpsc::channel();
        let a = source(&pool, "a", Pacing::Live, &tx);
        let started = Instant::now();
        a.submit(frame(1, 1));
        assert_eq!(recv(&rx).1, 1);
        // The run waited for more frames (max_wait) before running alone.
        // Only the lower bound is a fact of the code; no upper bound on a
        // loaded machine.
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(runs.lock().unwrap().clone(), vec![vec![1u8]]);
    }

    #[test]
    fn a_live_source_drops_its_oldest_frame_when_full() {
        let gate = Arc::new((Mutex::new(0), Condvar::new()));
        let options = PoolOptions { max_batch: 1, max_wait: Duration::ZERO, queue_depth: 2 };
        let (pool, _runs, entered) = pool(1, 1, options, Some(gate.clone()));
        let (tx, rx) = mpsc::channel();
        let a = source(&pool, "a", Pacing::Live, &tx);
        // Frame 1 is taken by the worker (blocked in the run); 2 and 3 fill
        // the queue; 4 displaces 2, 5 displaces 3.
        a.submit(frame(1, 1));
        wait_until(|| entered.load(Ordering::SeqCst) == 1);
        assert_eq!(a.submit(frame(2, 2)), Submitted::Queued);
        assert_eq!(a.submit(frame(3, 3)), Submitted::Queued);
        assert_eq!(a.submit(frame(4, 4)), Submitted::DisplacedOldest(2));
        assert_eq!(a.submit(frame(5, 5)), Submitted::DisplacedOldest(3));
        release(&gate, 3);
        let order: Vec<u32> = (0..3).map(|_| recv(&rx).1).collect();
        assert_eq!(order, [1, 4, 5], "in submission order, the dropped ones missing");
        assert_eq!(a.metrics().backlog_drops.load(Ordering::Relaxed), 2);
        assert!(a.finish(Duration::from_secs(5)));
    }

    fn wait_until(condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "condition not reached in 10 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_unpaced_source_waits_for_room_and_gives_up_on_stop() {
        let gate = Arc::new((Mutex::new(0), Condvar::new()));
        let options = PoolOptions { max_batch: 1, max_wait: Duration::ZERO, queue_depth: 1 };
        let (pool, _runs, entered) = pool(1, 1, options, Some(gate.clone()));
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let a = Arc::new(source(&pool, "a", Pacing::Unpaced { stop: stop.clone() }, &tx));
        a.submit(frame(1, 1));
        wait_until(|| entered.load(Ordering::SeqCst) == 1);
        a.submit(frame(2, 2));
        // The queue is full and the worker blocked: the third submission
        // waits until the worker takes frame 2.
        let submitter = {
            let a = a.clone();
            std::thread::spawn(move || a.submit(frame(3, 3)))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!submitter.is_finished(), "an unpaced submitter waits for room");
        release(&gate, 1);
        assert_eq!(submitter.join().unwrap(), Submitted::Queued);
        release(&gate, 2);
        let order: Vec<u32> = (0..3).map(|_| recv(&rx).1).collect();
        assert_eq!(order, [1, 2, 3], "nothing dropped");
        assert_eq!(a.metrics().backlog_drops.load(Ordering::Relaxed), 0);
        // Blocked again, then the stop flag releases the waiting submitter.
        a.submit(frame(4, 4));
        wait_until(|| entered.load(Ordering::SeqCst) == 4);
        a.submit(frame(5, 5));
        let submitter = {
            let a = a.clone();
            std::thread::spawn(move || a.submit(frame(6, 6)))
        };
        std::thread::sleep(Duration::from_millis(20));
        stop.store(true, Ordering::Relaxed);
        assert_eq!(submitter.join().unwrap(), Submitted::Stopped(6));
        release(&gate, 2);
    }

    #[test]
    fn a_failed_run_fails_only_its_frames() {
        let options = PoolOptions { max_batch: 2, max_wait: Duration::from_millis(500), queue_depth: 2 };
        let gate = Arc::new((Mutex::new(0), Condvar::new()));
        let (pool, _runs, _) = pool(1, 2, options, Some(gate.clone()));
        let (tx, rx) = mpsc::channel();
        let a = source(&pool, "a", Pacing::Live, &tx);
        let b = source(&pool, "b", Pacing::Live, &tx);
        // Batch 1: a's failing frame (255) with b's frame 7; batch 2: a's 8.
        a.submit(frame(255, 1));
        b.submit(frame(7, 2));
        release(&gate, 1);
        let mut first = [recv(&rx), recv(&rx)];
        first.sort_by_key(|r| r.1);
        assert!(first.iter().all(|r| r.2.as_ref().is_err_and(|e| e.contains("scripted failure"))), "{first:?}");
        a.submit(frame(8, 3));
        b.submit(frame(9, 4));
        release(&gate, 2);
        let mut second = [recv(&rx), recv(&rx)];
        second.sort_by_key(|r| r.1);
        assert_eq!(second.iter().map(|r| r.2.clone()).collect::<Vec<_>>(), [Ok(8), Ok(9)]);
        let m = pool.metrics();
        assert_eq!((m.run_errors.load(Ordering::Relaxed), m.frame_errors.load(Ordering::Relaxed)), (1, 2));
        assert_eq!(m.frames.load(Ordering::Relaxed), 2);
        assert_eq!(pool.workers(), 1, "the worker survived the panic");
    }

    #[test]
    fn a_source_is_never_in_two_running_batches() {
        // Two workers, batch 1: a's frames must still complete in order.
        let options = PoolOptions { max_batch: 1, max_wait: Duration::ZERO, queue_depth: 8 };
        let (pool, _runs, _) = pool(2, 1, options, None);
        let (tx, rx) = mpsc::channel();
        let a = source(&pool, "a", Pacing::Unpaced { stop: Arc::new(AtomicBool::new(false)) }, &tx);
        for n in 0..50u32 {
            a.submit(frame((n % 200) as u8, n));
        }
        let order: Vec<u32> = (0..50).map(|_| recv(&rx).1).collect();
        assert_eq!(order, (0..50).collect::<Vec<_>>());
        assert!(a.finish(Duration::from_secs(5)));
    }
}
