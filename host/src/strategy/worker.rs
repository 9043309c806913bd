//! The strategy worker of one source: takes frames from the source's queue
//! and runs every strategy assigned to the source on each, on its own
//! thread (never a GStreamer streaming thread), turning accepted detections
//! into alerts.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Outcome, SupervisedInstance};
use crate::alerts::alert::{Alert, Origin};
use crate::frame::CompactFrame;
use crate::pipeline::metrics::SourceMetrics;
use crate::pipeline::queue::FrameQueue;

/// One strategy's instance for this source.
pub struct StrategySlot {
    pub name: String,
    pub instance: SupervisedInstance,
}

/// Receives every analysed frame (e.g. `dshost record`).
pub type FrameTap = Box<dyn FnMut(&CompactFrame) + Send>;

pub struct Worker {
    pub queue: Arc<FrameQueue>,
    pub metrics: Arc<SourceMetrics>,
    pub slots: Vec<StrategySlot>,
    pub alerts: Sender<Alert>,
    pub run_id: u64,
    pub tap: Option<FrameTap>,
}

impl Worker {
    /// Runs until the queue is closed and drained.
    pub fn run(mut self) {
        self.queue.register_consumer();
        loop {
            match self.queue.pop(Duration::from_millis(100)) {
                Some(frame) => self.handle(frame),
                None if self.queue.is_closed_and_empty() => break,
                None => {}
            }
        }
    }

    fn handle(&mut self, frame: CompactFrame) {
        if let Some(tap) = &mut self.tap {
            tap(&frame);
        }
        let started = Instant::now();
        let now = SystemTime::now();
        for slot in &mut self.slots {
            let Outcome::Processed(detections) = slot.instance.process(&frame) else {
                continue;
            };
            self.metrics
                .detections
                .fetch_add(detections.len() as u64, Ordering::Relaxed);
            let version = slot.instance.component().version.clone();
            for (index, detection) in detections.into_iter().enumerate() {
                let origin = Origin {
                    source: &frame.source_id,
                    frame: frame.frame_number,
                    pts_ns: frame.pts_ns,
                    strategy: &slot.name,
                    strategy_version: &version,
                    index,
                    run: self.run_id,
                };
                // The receiver lives as long as the runtime; if it is gone we
                // are shutting down and there is nobody to tell.
                let _ = self
                    .alerts
                    .send(Alert::from_detection(detection, origin, now));
            }
        }
        self.metrics
            .strategy_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.metrics
            .frames_to_strategies
            .fetch_add(1, Ordering::Relaxed);
        self.queue.recycle(frame.objects);
    }
}
