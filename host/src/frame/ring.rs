//! A short per-source ring of the recent decoded frames, kept so an alert's
//! snapshot shows the frame the detection came from, not a later one, and
//! the console can show a live thumbnail. Bounded by bytes and by count; the
//! streaming thread only pushes a buffer reference (never copying a CPU
//! frame), and never waits: when a reader holds the lock the push is skipped.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use gstreamer as gst;
use gstreamer_video as gst_video;

/// One decoded frame as the object stage received it.
pub struct RingFrame {
    pub frame_number: u64,
    pub pts_ns: u64,
    /// The buffer (a reference to the decoder's memory on the CPU path).
    pub buffer: gst::Buffer,
    pub info: gst_video::VideoInfo,
    /// The source's size; detection boxes are in these pixels (the frame
    /// may be scaled down for analysis).
    pub source_size: (u32, u32),
}

impl RingFrame {
    fn bytes(&self) -> usize {
        self.buffer.size()
    }
}

struct Frames {
    frames: VecDeque<Arc<RingFrame>>,
    bytes: usize,
}

pub struct FrameRing {
    state: Mutex<Frames>,
    max_bytes: usize,
    max_frames: usize,
}

impl FrameRing {
    pub fn new(max_bytes: usize, max_frames: usize) -> Self {
        FrameRing {
            state: Mutex::new(Frames { frames: VecDeque::new(), bytes: 0 }),
            max_bytes: max_bytes.max(1),
            max_frames: max_frames.max(1),
        }
    }

    /// Called from the streaming thread; never waits.
    pub fn push(&self, frame: RingFrame) {
        let Ok(mut state) = self.state.try_lock() else {
            return;
        };
        state.bytes += frame.bytes();
        state.frames.push_back(Arc::new(frame));
        while state.frames.len() > self.max_frames || (state.bytes > self.max_bytes && state.frames.len() > 1) {
            if let Some(old) = state.frames.pop_front() {
                state.bytes = state.bytes.saturating_sub(old.bytes());
            }
        }
    }

    /// The frame with this number, if it is still held.
    pub fn find(&self, frame_number: u64) -> Option<Arc<RingFrame>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.frames.iter().rev().find(|f| f.frame_number == frame_number).cloned()
    }

    /// The newest frame.
    pub fn latest(&self) -> Option<Arc<RingFrame>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.frames.back().cloned()
    }

    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What rings the runtime gives sources (snapshots on).
#[derive(Clone)]
pub struct RingSettings {
    pub rings: Arc<Rings>,
    pub max_bytes: usize,
    pub max_frames: usize,
    /// The frames kept are at least this wide where the pipeline scales them
    /// (the GPU-decode path), so snapshots are not thumbnails.
    pub min_width: u32,
}

/// The rings of every running source, by source id.
#[derive(Default)]
pub struct Rings {
    rings: RwLock<BTreeMap<String, Arc<FrameRing>>>,
}

impl Rings {
    pub fn insert(&self, source: &str, ring: Arc<FrameRing>) {
        self.rings.write().unwrap_or_else(|p| p.into_inner()).insert(source.to_string(), ring);
    }

    pub fn remove(&self, source: &str) {
        self.rings.write().unwrap_or_else(|p| p.into_inner()).remove(source);
    }

    pub fn get(&self, source: &str) -> Option<Arc<FrameRing>> {
        self.rings.read().unwrap_or_else(|p| p.into_inner()).get(source).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64, bytes: usize) -> RingFrame {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, 4, 4).build().unwrap();
        RingFrame {
            frame_number: n,
            pts_ns: n * 1000,
            buffer: gst::Buffer::with_size(bytes).unwrap(),
            info,
            source_size: (4, 4),
        }
    }

    #[test]
    fn bounded_by_count_and_bytes_newest_kept() {
        let ring = FrameRing::new(1000, 3);
        for n in 0..5 {
            ring.push(frame(n, 100));
        }
        assert_eq!(ring.len(), 3);
        assert!(ring.find(1).is_none() && ring.find(2).is_some());
        assert_eq!(ring.latest().map(|f| f.frame_number), Some(4));
        let ring = FrameRing::new(250, 100);
        for n in 0..5 {
            ring.push(frame(n, 100));
        }
        assert_eq!(ring.len(), 2, "two 100-byte frames fit 250 bytes");
        // A frame larger than the budget is still kept (the newest one).
        ring.push(frame(9, 1000));
        assert_eq!((ring.len(), ring.latest().map(|f| f.frame_number)), (1, Some(9)));
    }
}
