//! Counters of the inference stage, per model and per source. Plain
//! atomics: workers write, the metrics endpoint and the summary read.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{Histogram, INFERENCE_BUCKETS};

/// One model (one pool).
#[derive(Debug)]
pub struct ModelMetrics {
    /// Duration of each session run (one batch).
    pub inference: Histogram,
    /// Preprocessing + run + decoding of each batch.
    pub batch_duration: Histogram,
    /// `batch_sizes[n]`: runs of `n` frames (index 0 unused).
    batch_sizes: Box<[AtomicU64]>,
    /// Session runs.
    pub runs: AtomicU64,
    /// Frames with a result.
    pub frames: AtomicU64,
    /// Frames without one (failed preprocessing, run or decoding).
    pub frame_errors: AtomicU64,
    /// Session runs that failed (each fails its frames).
    pub run_errors: AtomicU64,
}

impl ModelMetrics {
    pub fn new(max_batch: usize) -> Self {
        ModelMetrics {
            inference: Histogram::with_buckets(&INFERENCE_BUCKETS),
            batch_duration: Histogram::with_buckets(&INFERENCE_BUCKETS),
            batch_sizes: (0..=max_batch.max(1)).map(|_| AtomicU64::new(0)).collect(),
            runs: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            frame_errors: AtomicU64::new(0),
            run_errors: AtomicU64::new(0),
        }
    }

    pub fn record_batch(&self, frames: usize) {
        if let Some(slot) = self.batch_sizes.get(frames) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(frames, runs)` for every batch size seen at least once.
    pub fn batch_sizes(&self) -> Vec<(usize, u64)> {
        self.batch_sizes
            .iter()
            .enumerate()
            .map(|(size, count)| (size, count.load(Ordering::Relaxed)))
            .filter(|&(size, count)| size > 0 && count > 0)
            .collect()
    }
}

/// One source's frames through the stage.
#[derive(Debug)]
pub struct SourceInferenceMetrics {
    /// Frames handed to the pool.
    pub submitted: AtomicU64,
    /// Frames with a result.
    pub inferred: AtomicU64,
    /// Frames of a live source dropped because the pool fell behind (the
    /// oldest queued frame makes room): `inference_backlog`.
    pub backlog_drops: AtomicU64,
    /// Frames that failed.
    pub errors: AtomicU64,
    /// Frames the model did not run on because of `detect.fps` (the tracker
    /// carried boxes over them).
    pub gated_fps: AtomicU64,
    /// Frames the model did not run on because nothing moved (`motion_gate`).
    pub gated_motion: AtomicU64,
    /// From submission to the result (queue wait + batch + inference).
    pub latency: Histogram,
}

impl Default for SourceInferenceMetrics {
    fn default() -> Self {
        SourceInferenceMetrics {
            submitted: AtomicU64::new(0),
            inferred: AtomicU64::new(0),
            backlog_drops: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            gated_fps: AtomicU64::new(0),
            gated_motion: AtomicU64::new(0),
            latency: Histogram::with_buckets(&INFERENCE_BUCKETS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_counters() {
        let m = ModelMetrics::new(4);
        m.record_batch(1);
        m.record_batch(4);
        m.record_batch(4);
        m.record_batch(9);
        assert_eq!(m.batch_sizes(), [(1, 1), (4, 2)]);
    }
}
