//! Per-source counters (atomics: the streaming thread, the controller and
//! the worker write; the status line, summary and metrics endpoint read).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::metrics::{Histogram, FRAME_LATENCY_BUCKETS};

/// Lifecycle of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    Starting = 0,
    Running = 1,
    Reconnecting = 2,
    Ended = 3,
    Failed = 4,
    Stopped = 5,
}

impl SourceState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => SourceState::Starting,
            1 => SourceState::Running,
            2 => SourceState::Reconnecting,
            3 => SourceState::Ended,
            4 => SourceState::Failed,
            _ => SourceState::Stopped,
        }
    }

    /// Whether the source will produce no more frames.
    pub fn is_final(self) -> bool {
        matches!(self, SourceState::Ended | SourceState::Failed | SourceState::Stopped)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Starting => "starting",
            SourceState::Running => "running",
            SourceState::Reconnecting => "reconnecting",
            SourceState::Ended => "ended",
            SourceState::Failed => "failed",
            SourceState::Stopped => "stopped",
        }
    }
}

#[derive(Debug)]
pub struct SourceMetrics {
    pub frames_decoded: AtomicU64,
    pub frames_to_strategies: AtomicU64,
    /// Dropped because the strategy queue was full.
    pub dropped_backlog: AtomicU64,
    /// Dropped because the inference stage fell behind (live sources).
    pub dropped_inference: AtomicU64,
    pub objects: AtomicU64,
    pub detections: AtomicU64,
    pub restarts: AtomicU64,
    /// Total time spent in strategy calls, nanoseconds.
    pub strategy_ns: AtomicU64,
    /// From a frame leaving the pipeline to its strategies' results.
    pub latency: Histogram,
    /// Nanoseconds since `epoch` of the last decoded frame.
    last_frame_ns: AtomicU64,
    /// Exponentially weighted frame rate, as f64 bits.
    fps_bits: AtomicU64,
    state: AtomicU8,
    epoch: Instant,
    /// Why the source last restarted or failed.
    pub last_error: Mutex<Option<String>>,
    /// Nanoseconds since `epoch` of the first decoded frame (0 = none yet).
    first_frame_ns: AtomicU64,
    /// The video decoder element in use (e.g. `nvv4l2decoder`, `avdec_h264`).
    decoder: Mutex<Option<String>>,
}

impl Default for SourceMetrics {
    fn default() -> Self {
        SourceMetrics {
            frames_decoded: AtomicU64::new(0),
            frames_to_strategies: AtomicU64::new(0),
            dropped_backlog: AtomicU64::new(0),
            dropped_inference: AtomicU64::new(0),
            objects: AtomicU64::new(0),
            detections: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            strategy_ns: AtomicU64::new(0),
            latency: Histogram::with_buckets(&FRAME_LATENCY_BUCKETS),
            last_frame_ns: AtomicU64::new(0),
            fps_bits: AtomicU64::new(0),
            state: AtomicU8::new(SourceState::Starting as u8),
            epoch: Instant::now(),
            last_error: Mutex::new(None),
            first_frame_ns: AtomicU64::new(0),
            decoder: Mutex::new(None),
        }
    }
}

impl SourceMetrics {
    pub fn state(&self) -> SourceState {
        SourceState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn set_state(&self, state: SourceState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// Called by the streaming thread for every frame.
    pub fn mark_frame(&self) {
        self.frames_decoded.fetch_add(1, Ordering::Relaxed);
        let now = self.epoch.elapsed().as_nanos() as u64 + 1;
        let previous = self.last_frame_ns.swap(now, Ordering::Relaxed);
        if previous == 0 {
            let _ = self.first_frame_ns.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
        if previous != 0 && now > previous {
            let instant = 1e9 / (now - previous) as f64;
            let old = f64::from_bits(self.fps_bits.load(Ordering::Relaxed));
            let smoothed = if old == 0.0 { instant } else { old * 0.95 + instant * 0.05 };
            self.fps_bits.store(smoothed.to_bits(), Ordering::Relaxed);
        }
    }

    /// Recent frame rate; 0 when no frame came for two seconds.
    pub fn fps(&self) -> f64 {
        match self.last_frame() {
            Some(at) if at.elapsed() < std::time::Duration::from_secs(2) => {
                f64::from_bits(self.fps_bits.load(Ordering::Relaxed))
            }
            _ => 0.0,
        }
    }

    /// When the last frame arrived, if any did.
    pub fn last_frame(&self) -> Option<Instant> {
        match self.last_frame_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(self.epoch + std::time::Duration::from_nanos(ns - 1)),
        }
    }

    pub fn set_decoder(&self, name: String) {
        if let Ok(mut slot) = self.decoder.lock() {
            *slot = Some(name);
        }
    }

    /// Seconds from the first to the last decoded frame.
    pub fn active_seconds(&self) -> f64 {
        let (first, last) = (self.first_frame_ns.load(Ordering::Relaxed), self.last_frame_ns.load(Ordering::Relaxed));
        if first == 0 || last <= first {
            0.0
        } else {
            (last - first) as f64 / 1e9
        }
    }

    pub fn set_error(&self, message: String) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(message);
        }
    }

    pub fn snapshot(&self, id: &str, uri: &str) -> SourceSummary {
        SourceSummary {
            id: id.to_string(),
            uri: uri.to_string(),
            state: self.state(),
            frames_decoded: self.frames_decoded.load(Ordering::Relaxed),
            frames_to_strategies: self.frames_to_strategies.load(Ordering::Relaxed),
            frames_dropped: DroppedFrames {
                strategy_backlog: self.dropped_backlog.load(Ordering::Relaxed),
                inference_backlog: self.dropped_inference.load(Ordering::Relaxed),
            },
            restarts: self.restarts.load(Ordering::Relaxed),
            objects: self.objects.load(Ordering::Relaxed),
            detections: self.detections.load(Ordering::Relaxed),
            strategy_seconds: self.strategy_ns.load(Ordering::Relaxed) as f64 / 1e9,
            latency_ms_p50: self.latency.quantile(0.5).map(|d| d.as_secs_f64() * 1e3),
            latency_ms_p99: self.latency.quantile(0.99).map(|d| d.as_secs_f64() * 1e3),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            decoder: self.decoder.lock().ok().and_then(|d| d.clone()),
            active_seconds: self.active_seconds(),
            mean_fps: {
                let frames = self.frames_decoded.load(Ordering::Relaxed);
                let seconds = self.active_seconds();
                (frames > 1 && seconds > 0.0).then(|| (frames - 1) as f64 / seconds)
            },
            detector: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DroppedFrames {
    pub strategy_backlog: u64,
    pub inference_backlog: u64,
}

/// What a source did (exit summary, `--summary-json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceSummary {
    pub id: String,
    /// Redacted URI.
    pub uri: String,
    pub state: SourceState,
    pub frames_decoded: u64,
    pub frames_to_strategies: u64,
    pub frames_dropped: DroppedFrames,
    pub restarts: u64,
    pub objects: u64,
    pub detections: u64,
    pub strategy_seconds: f64,
    /// Frame-to-detection latency estimates (histogram quantiles).
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub last_error: Option<String>,
    /// The video decoder element that ran (`nvv4l2decoder` = GPU), if any.
    pub decoder: Option<String>,
    /// From the first to the last decoded frame.
    pub active_seconds: f64,
    /// Frames per second over `active_seconds`.
    pub mean_fps: Option<f64>,
    /// Where the source's objects come from (`motion`, `roi`, `none`, or
    /// `nvinfer` on the DeepStream backend); set by the runtime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
}
