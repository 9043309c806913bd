//! The pad probe at the end of the batched pipeline: reads each buffer's
//! `NvDsBatchMeta` and hands every frame, as a compact frame, to the queue
//! of its source (the same per-source queues and strategy workers the CPU
//! backend uses). On the streaming thread it only reads, copies into a
//! pooled buffer and enqueues; the route table's lock is held by writers
//! only for a slot assignment.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::library::MetaLibrary;
use super::reader::{BatchReader, ReadError};
use crate::frame::{LabelTable, SourceOutlet};

/// Where the frames of one muxer pad (`NvDsFrameMeta::source_id`) go: the
/// source's outlet, as on the CPU backend.
pub type Route = SourceOutlet;

/// Muxer pad index -> route.
#[derive(Default)]
pub struct Routes {
    slots: RwLock<Vec<Option<Arc<Route>>>>,
}

impl Routes {
    pub fn set(&self, index: u32, route: Route) {
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let index = index as usize;
        if slots.len() <= index {
            slots.resize_with(index + 1, || None);
        }
        slots[index] = Some(Arc::new(route));
    }

    pub fn remove(&self, index: u32) -> Option<Arc<Route>> {
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        slots.get_mut(index as usize).and_then(Option::take)
    }

    fn get(&self, index: u32) -> Option<Arc<Route>> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots.get(index as usize).and_then(|slot| slot.clone())
    }

    /// The lowest free pad index.
    pub fn free_index(&self) -> u32 {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots.iter().position(Option::is_none).unwrap_or(slots.len()) as u32
    }
}

/// Counters of the probe itself (not of a source).
#[derive(Default)]
pub struct ProbeStats {
    pub batches: AtomicU64,
    /// Buffers that carried no batch meta.
    pub without_meta: AtomicU64,
    /// Frames whose source id has no route (a source being removed).
    pub unrouted_frames: AtomicU64,
    /// Batches refused because their layout was not the confirmed one.
    pub refused: AtomicU64,
}

/// Reads batch metas and routes their frames.
pub struct MetaProbe {
    library: Arc<MetaLibrary>,
    reader: BatchReader,
    routes: Arc<Routes>,
    labels: Arc<LabelTable>,
    pub stats: Arc<ProbeStats>,
}

impl MetaProbe {
    pub fn new(library: Arc<MetaLibrary>, reader: BatchReader, routes: Arc<Routes>, labels: Arc<LabelTable>) -> Self {
        MetaProbe { library, reader, routes, labels, stats: Arc::new(ProbeStats::default()) }
    }

    /// Reads one buffer; returns the number of frames handed to sources.
    pub fn process(&mut self, buffer: &gst::BufferRef) -> Result<usize, ReadError> {
        // SAFETY: the buffer is alive for the call; the library only reads it.
        let batch = unsafe { self.library.batch_meta(buffer.as_ptr() as *mut gst::ffi::GstBuffer) };
        if batch.is_null() {
            self.stats.without_meta.fetch_add(1, Ordering::Relaxed);
            return Ok(0);
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        let routes = &self.routes;
        let stats = &self.stats;
        let mut delivered = 0;
        // SAFETY: the batch meta belongs to the buffer, which the probe holds.
        let read = unsafe {
            self.reader.read(batch, &self.labels, |info, objects| {
                let Some(route) = routes.get(info.source_id) else {
                    stats.unrouted_frames.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                route.metrics.mark_frame();
                let frame_number = u64::try_from(info.frame_num).unwrap_or(0);
                let mut frame = route.new_frame(frame_number, info.pts_ns, info.width, info.height);
                for object in objects {
                    frame.push(object);
                }
                route.deliver(frame);
                delivered += 1;
            })
        };
        if read.is_err() {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
        }
        read.map(|_| delivered)
    }

    /// Installs the probe on `pad` (the sink pad of the pipeline's last element).
    pub fn install(self, pad: &gst::Pad) -> Option<gst::PadProbeId> {
        let reported = AtomicBool::new(false);
        // Only this pad's streaming thread takes the lock: never contended.
        let probe = Mutex::new(self);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let (Some(buffer), Ok(mut probe)) = (info.buffer(), probe.lock()) else {
                return gst::PadProbeReturn::Ok;
            };
            if let Err(error) = probe.process(buffer) {
                // Once: the same refusal would repeat for every batch.
                if !reported.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %error, "DeepStream metadata refused; frames are not analysed");
                }
            }
            gst::PadProbeReturn::Ok
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: &str) -> Route {
        Route {
            source_id: Arc::from(id),
            queue: Arc::new(crate::frame::FrameQueue::new(2)),
            metrics: Arc::new(crate::frame::SourceMetrics::default()),
            paced: true,
            stop: Arc::new(AtomicBool::new(false)),
            ring: None,
        }
    }

    #[test]
    fn sources_join_and_leave_through_reused_pad_indexes() {
        let routes = Routes::default();
        assert_eq!(routes.free_index(), 0);
        routes.set(0, route("a"));
        routes.set(1, route("b"));
        assert_eq!(routes.free_index(), 2);
        assert_eq!(routes.remove(0).map(|r| r.source_id.to_string()), Some("a".into()));
        assert!(routes.get(0).is_none());
        assert_eq!(routes.free_index(), 0, "a left: its muxer pad index is reused");
        routes.set(0, route("c"));
        assert_eq!(routes.get(0).map(|r| r.source_id.to_string()), Some("c".into()));
        assert_eq!(routes.get(1).map(|r| r.source_id.to_string()), Some("b".into()));
        assert!(routes.get(7).is_none() && routes.remove(7).is_none());
    }
}
