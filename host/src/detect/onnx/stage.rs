//! The ONNX object stage of one source, behind the pipeline's
//! `frame::ObjectStage` contract.
//!
//! On the streaming thread it only decides and copies: the model runs
//! `detect.fps` times per second of video and, with `motion_gate`, only on
//! frames where the motion detector (on a grey copy of the model-sized
//! image) saw something; such a frame's image is copied into a pooled buffer
//! and submitted to the detector's pool, every other frame is queued to be
//! carried. A thread of the source's own (`onnx-post-<id>`) takes the frames
//! in order, waits for each one's inference, runs the tracker (the model's
//! boxes on model frames, the carried tracks in between) and delivers the
//! frame to the source's outlet; so results never overtake each other, a
//! slow strategy never holds an inference worker, and the streaming thread
//! never waits on inference. A live source whose frames cannot be inferred
//! in time drops its oldest waiting frame (`inference_backlog`); a file
//! waits.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use gstreamer as gst;
use gstreamer_video as gst_video;

use super::detector::{OnnxDetector, Ticket};
use super::metrics::SourceInferenceMetrics;
use super::pool::{Frame, InferenceResult, Pacing, SourceHandle, Submitted};
use crate::config::{DetectSettings, MotionConfig, TrackerConfig};
use crate::detect::motion::{LumaPlane, MotionDetector};
use crate::detect::tracker::{IouTracker, Observation};
use crate::detect::Detected;
use crate::frame::{CompactFrame, ImageRequest, ObjectStage, SourceOutlet};

/// The model runs at least this often on a gated source, moving or not
/// (objects that appear without the motion detector noticing, or leave).
const REFRESH_NS: u64 = 5_000_000_000;
/// Frames waiting for the post thread before a file source's streaming
/// thread waits (a live source never waits: its oldest frame goes).
const MAX_WAITING: usize = 64;

/// What the stage of one source is made from.
#[derive(Clone)]
pub struct OnnxStageSettings {
    pub detector: Arc<OnnxDetector>,
    pub detect: DetectSettings,
    pub motion: MotionConfig,
    pub tracker: TrackerConfig,
    pub source_id: Arc<str>,
}

enum State {
    Waiting(Ticket),
    Ready(Option<Vec<Detected>>),
    Carry,
}

struct Entry {
    frame: CompactFrame,
    state: State,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
    closed: bool,
    outlet: Option<SourceOutlet>,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct OnnxStage {
    settings: OnnxStageSettings,
    shared: Arc<Shared>,
    handle: Option<SourceHandle<Ticket>>,
    post: Option<JoinHandle<()>>,
    metrics: Arc<SourceInferenceMetrics>,
    motion: Option<MotionDetector>,
    grey: Vec<u8>,
    next_ticket: Ticket,
    last_run_ns: Option<u64>,
}

impl OnnxStage {
    pub fn new(settings: OnnxStageSettings) -> Self {
        let shared = Arc::new(Shared { queue: Mutex::new(Queue::default()), changed: Condvar::new() });
        let motion = settings.detect.motion_gate.then(|| MotionDetector::new(settings.motion.clone(), 0));
        OnnxStage {
            shared,
            handle: None,
            post: None,
            metrics: Arc::new(SourceInferenceMetrics::default()),
            motion,
            grey: Vec::new(),
            next_ticket: 0,
            last_run_ns: None,
            settings,
        }
    }

    /// Registers with the pool and starts the post thread (first frame: the
    /// outlet is known from then on).
    fn start(&mut self, outlet: &SourceOutlet) {
        let pacing = if outlet.paced { Pacing::Live } else { Pacing::Unpaced { stop: outlet.stop.clone() } };
        let shared = self.shared.clone();
        let handle = self.settings.detector.pool.add_source(&self.settings.source_id, pacing, move |result| {
            complete(&shared, result);
        });
        self.metrics = handle.metrics().clone();
        self.settings.detector.register(&self.settings.source_id, self.metrics.clone());
        self.handle = Some(handle);
        self.shared.lock().outlet = Some(outlet.clone());
        let shared = self.shared.clone();
        let tracker = self.tracker();
        let spawned = std::thread::Builder::new()
            .name(format!("onnx-post-{}", self.settings.source_id))
            .spawn(move || post(shared, tracker));
        match spawned {
            Ok(thread) => self.post = Some(thread),
            Err(error) => {
                tracing::error!(source = %self.settings.source_id, error = %error, "cannot start the inference post thread")
            }
        }
    }

    fn tracker(&self) -> Option<IouTracker> {
        let config = &self.settings.tracker;
        config.enabled.then(|| {
            let mut config = config.clone();
            config.low_confidence = Some(config.low_confidence.unwrap_or(super::detector::DEFAULT_LOW_CONFIDENCE));
            IouTracker::with_detector_confidence(config, self.settings.detector.strong_confidence)
        })
    }

    /// Whether the model runs on this frame (and counts why not).
    fn due(&mut self, pts_ns: u64, image: &RgbView<'_>) -> bool {
        let interval = (1e9 / self.settings.detect.fps.max(0.001)) as u64;
        let since = self.last_run_ns.map(|last| pts_ns.saturating_sub(last));
        if since.is_some_and(|since| since < interval) && pts_ns >= self.last_run_ns.unwrap_or(0) {
            self.metrics.gated_fps.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let Some(motion) = self.motion.as_mut() else { return true };
        grey(image, &mut self.grey);
        let plane = LumaPlane {
            data: &self.grey,
            width: image.width as usize,
            height: image.height as usize,
            stride: image.width as usize,
        };
        let moved = !motion.detect(plane).is_empty();
        // First frame, a stale view, or something moved.
        let refresh = since.is_none_or(|since| since >= REFRESH_NS);
        if moved || refresh {
            return true;
        }
        self.metrics.gated_motion.fetch_add(1, Ordering::Relaxed);
        false
    }

    fn push(&self, entry: Entry, live: bool) {
        let mut queue = self.shared.lock();
        if live {
            // Never wait: beyond the bound, the oldest carried frame goes
            // (a frame waiting for inference is the pool's to drop).
            while queue.entries.len() >= MAX_WAITING {
                let Some(position) = queue.entries.iter().position(|e| !matches!(e.state, State::Waiting(_))) else {
                    break;
                };
                if let Some(old) = queue.entries.remove(position) {
                    self.metrics.backlog_drops.fetch_add(1, Ordering::Relaxed);
                    if let Some(outlet) = &queue.outlet {
                        outlet.metrics.dropped_inference.fetch_add(1, Ordering::Relaxed);
                        outlet.queue.recycle(old.frame.objects);
                    }
                }
            }
        } else {
            while queue.entries.len() >= MAX_WAITING && !queue.closed {
                let stopping = queue.outlet.as_ref().is_some_and(SourceOutlet::stopping);
                if stopping {
                    return;
                }
                let (next, _) = self
                    .shared
                    .changed
                    .wait_timeout(queue, Duration::from_millis(50))
                    .unwrap_or_else(|p| p.into_inner());
                queue = next;
            }
        }
        queue.entries.push_back(entry);
        drop(queue);
        self.shared.changed.notify_all();
    }
}

/// A packed-RGB view of the frame the pipeline delivered.
struct RgbView<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
    stride: usize,
}

/// BT.601 luma of `image`, packed, into `out`.
fn grey(image: &RgbView<'_>, out: &mut Vec<u8>) {
    let (w, h) = (image.width as usize, image.height as usize);
    out.resize(w * h, 0);
    for y in 0..h {
        let row = &image.data[y * image.stride..y * image.stride + w * 3];
        for (x, px) in row.chunks_exact(3).enumerate() {
            out[y * w + x] = ((77 * u32::from(px[0]) + 150 * u32::from(px[1]) + 29 * u32::from(px[2])) >> 8) as u8;
        }
    }
}

/// A worker's result for one frame (on the worker's thread: only marks it).
fn complete(shared: &Shared, result: InferenceResult<Ticket>) {
    let mut queue = shared.lock();
    let ticket = result.context;
    if let Some(entry) = queue.entries.iter_mut().find(|e| matches!(e.state, State::Waiting(t) if t == ticket)) {
        entry.state = State::Ready(result.detections.ok());
    }
    drop(queue);
    shared.changed.notify_all();
}

/// The source's post thread: frames in order, tracked, delivered.
fn post(shared: Arc<Shared>, mut tracker: Option<IouTracker>) {
    let mut found = Vec::new();
    loop {
        let mut queue = shared.lock();
        let ready = matches!(queue.entries.front(), Some(Entry { state: State::Ready(_) | State::Carry, .. }));
        if !ready {
            if queue.closed && queue.entries.is_empty() {
                return;
            }
            let (next, _) =
                shared.changed.wait_timeout(queue, Duration::from_millis(100)).unwrap_or_else(|p| p.into_inner());
            drop(next);
            continue;
        }
        let Some(Entry { mut frame, state }) = queue.entries.pop_front() else { continue };
        let Some(outlet) = queue.outlet.clone() else { continue };
        drop(queue);
        shared.changed.notify_all();
        let observation = match &state {
            State::Ready(Some(detections)) => Observation::Detections(detections),
            // A failed run (counted by the pool) carries the tracks too.
            State::Ready(None) | State::Carry | State::Waiting(_) => Observation::NoModelResult,
        };
        match &mut tracker {
            Some(tracker) => tracker.observe(observation, &mut found),
            None => {
                found.clear();
                if let Observation::Detections(detections) = observation {
                    found.extend_from_slice(detections);
                }
            }
        }
        for object in &found {
            frame.push(&object.to_record());
        }
        outlet.deliver(frame);
    }
}

impl ObjectStage for OnnxStage {
    fn image(&self) -> ImageRequest {
        let (width, height, keep_aspect) = self.settings.detector.input();
        ImageRequest::Rgb { width, height, keep_aspect }
    }

    fn process(
        &mut self,
        buffer: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        frame: CompactFrame,
        outlet: &SourceOutlet,
    ) {
        if self.handle.is_none() {
            self.start(outlet);
        }
        let live = outlet.paced;
        let Ok(video) = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info) else {
            self.push(Entry { frame, state: State::Carry }, live);
            return;
        };
        let (Ok(data), Some(&stride)) = (video.plane_data(0), info.stride().first()) else {
            self.push(Entry { frame, state: State::Carry }, live);
            return;
        };
        let image = RgbView { data, width: info.width(), height: info.height(), stride: stride.max(0) as usize };
        if info.format() != gst_video::VideoFormat::Rgb || !self.due(frame.pts_ns, &image) {
            self.push(Entry { frame, state: State::Carry }, live);
            return;
        }
        let Some(handle) = &self.handle else {
            self.push(Entry { frame, state: State::Carry }, live);
            return;
        };
        let row = image.width as usize * 3;
        let mut copy = handle.buffer(row * image.height as usize);
        for y in 0..image.height as usize {
            copy.extend_from_slice(&image.data[y * image.stride..y * image.stride + row]);
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.last_run_ns = Some(frame.pts_ns);
        let (source_width, source_height) = (frame.width, frame.height);
        // Queued before submitting: a fast worker may answer at once.
        self.push(Entry { frame, state: State::Waiting(ticket) }, live);
        let submitted = handle.submit(Frame {
            image: copy,
            width: image.width,
            height: image.height,
            stride: row,
            source_width,
            source_height,
            context: ticket,
        });
        match submitted {
            Submitted::Queued => {}
            // The pool dropped the oldest waiting frame of this live source
            // (counted there as a backlog drop): it is not delivered.
            Submitted::DisplacedOldest(old) => {
                let mut queue = self.shared.lock();
                if let Some(at) = queue.entries.iter().position(|e| matches!(e.state, State::Waiting(t) if t == old)) {
                    if let Some(dropped) = queue.entries.remove(at) {
                        outlet.metrics.dropped_inference.fetch_add(1, Ordering::Relaxed);
                        outlet.queue.recycle(dropped.frame.objects);
                    }
                }
                drop(queue);
                self.shared.changed.notify_all();
            }
            Submitted::Stopped(ticket) => {
                let mut queue = self.shared.lock();
                if let Some(entry) =
                    queue.entries.iter_mut().find(|e| matches!(e.state, State::Waiting(t) if t == ticket))
                {
                    entry.state = State::Carry;
                }
                drop(queue);
                self.shared.changed.notify_all();
            }
        }
    }

    fn finish(&mut self) {
        // End of stream: every frame waiting for inference gets its result
        // and reaches the strategies before the source is done.
        if let Some(handle) = &self.handle {
            handle.finish(Duration::from_secs(60));
        }
        self.close();
    }
}

impl OnnxStage {
    /// Delivers what is queued (frames still without a result carry the
    /// tracks) and stops the post thread.
    fn close(&mut self) {
        {
            let mut queue = self.shared.lock();
            for entry in queue.entries.iter_mut() {
                if matches!(entry.state, State::Waiting(_)) {
                    entry.state = State::Carry;
                }
            }
            queue.closed = true;
        }
        self.shared.changed.notify_all();
        if let Some(post) = self.post.take() {
            let _ = post.join();
        }
    }
}

impl Drop for OnnxStage {
    fn drop(&mut self) {
        // A restart or a stop: the pool drops this source's queued frames
        // with the handle; what the stage holds is delivered.
        self.handle.take();
        self.close();
    }
}
