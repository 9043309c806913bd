//! Where a source's analysed frames go: one outlet per source, which both
//! backends (the CPU pipeline's appsink callback, the DeepStream probe) and
//! the object stage's inference workers deliver into. It owns the hand-off
//! rule: clock-paced sources never wait (the oldest queued frame is dropped
//! and counted), unpaced ones (files read as fast as possible) wait for
//! room so no frame goes unanalysed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::metrics::SourceMetrics;
use super::queue::FrameQueue;
use super::CompactFrame;

#[derive(Clone)]
pub struct SourceOutlet {
    pub source_id: Arc<str>,
    pub queue: Arc<FrameQueue>,
    pub metrics: Arc<SourceMetrics>,
    /// Frames arrive paced by a clock (cameras, real-time playback).
    pub paced: bool,
    /// Set when the source is being stopped.
    pub stop: Arc<AtomicBool>,
    /// Recent frames kept for snapshots and thumbnails, when on.
    pub ring: Option<Arc<super::ring::FrameRing>>,
}

impl SourceOutlet {
    /// A frame ready for the strategies: counts its objects and enqueues it.
    /// Never blocks for a paced source; for an unpaced one it waits only for
    /// queue space (ordinary sink backpressure) and gives up on `stop`.
    pub fn deliver(&self, frame: CompactFrame) {
        self.metrics.objects.fetch_add(frame.object_count() as u64, Ordering::Relaxed);
        if self.paced {
            if self.queue.push(frame) {
                self.metrics.dropped_backlog.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            self.queue.push_waiting(frame, &self.stop);
        }
    }

    /// A frame header with a pooled, empty object buffer.
    pub fn new_frame(&self, frame_number: u64, pts_ns: u64, width: u32, height: u32) -> CompactFrame {
        CompactFrame {
            source_id: self.source_id.clone(),
            frame_number,
            pts_ns,
            width,
            height,
            objects: self.queue.take_buffer(),
            captured_at: std::time::Instant::now(),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outlet(paced: bool, depth: usize) -> SourceOutlet {
        SourceOutlet {
            source_id: Arc::from("s"),
            queue: Arc::new(FrameQueue::new(depth)),
            metrics: Arc::new(SourceMetrics::default()),
            paced,
            stop: Arc::new(AtomicBool::new(false)),
            ring: None,
        }
    }

    #[test]
    fn paced_sources_drop_the_oldest_and_count_it() {
        let outlet = outlet(true, 2);
        for n in 0..5 {
            let mut frame = outlet.new_frame(n, 0, 10, 10);
            frame.push(&crate::frame::Object {
                left: 0.0,
                top: 0.0,
                width: 1.0,
                height: 1.0,
                confidence: 0.5,
                class_id: 0,
                object_id: 1,
            });
            outlet.deliver(frame);
        }
        assert_eq!(outlet.metrics.dropped_backlog.load(Ordering::Relaxed), 3);
        assert_eq!(outlet.metrics.objects.load(Ordering::Relaxed), 5);
        assert_eq!(outlet.queue.pop(Duration::ZERO).map(|f| f.frame_number), Some(3));
    }

    #[test]
    fn unpaced_sources_wait_until_stopped() {
        let outlet = outlet(false, 1);
        outlet.deliver(outlet.new_frame(0, 0, 1, 1));
        let stopper = {
            let stop = outlet.stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                stop.store(true, Ordering::Relaxed);
            })
        };
        // Blocks until `stop`: the queue is full and nobody consumes.
        outlet.deliver(outlet.new_frame(1, 0, 1, 1));
        stopper.join().unwrap();
        assert_eq!(outlet.metrics.dropped_backlog.load(Ordering::Relaxed), 0);
        assert_eq!(outlet.queue.pop(Duration::ZERO).map(|f| f.frame_number), Some(0));
        assert!(outlet.queue.pop(Duration::ZERO).is_none());
    }
}
