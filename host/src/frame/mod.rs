//! The compact frame and its way from the pipeline to the strategies: what
//! every stage shares, so that no stage imports another.
//!
//! A frame is a small header plus its objects encoded in the 32-byte record
//! layout of `dshost_sdk::layout` (documented in `wit/strategy.wit`). Bytes
//! instead of typed records keep the guest call cheap for every language.
//! `stage` is the pipeline's contract with the object stage, `outlet` and
//! `queue` carry a source's frames to its strategy worker without blocking
//! the streaming thread, `metrics` counts what happened to them.

pub mod jsonl;
pub mod labels;
pub mod metrics;
pub mod outlet;
pub mod queue;
pub mod ring;
pub mod roi;
pub mod stage;

use std::sync::Arc;
use std::time::Instant;

pub use dshost_sdk::layout::{encode_objects, Object, Objects, RECORD_SIZE, UNTRACKED};
pub use labels::LabelTable;
pub use metrics::{SourceMetrics, SourceState, SourceSummary};
pub use outlet::SourceOutlet;
pub use queue::FrameQueue;
pub use stage::{ImageRequest, ObjectStage, StageFactory};

/// One analysed frame of one source.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactFrame {
    /// Source id as configured (never the URI: URIs carry credentials).
    pub source_id: Arc<str>,
    pub frame_number: u64,
    pub pts_ns: u64,
    pub width: u32,
    pub height: u32,
    /// Encoded object records; the length is a multiple of [`RECORD_SIZE`].
    pub objects: Vec<u8>,
    /// When the decoded frame reached the end of the pipeline, before its
    /// objects were found; frame-to-detection latency (object stage and
    /// strategies together) is measured from here.
    pub captured_at: Instant,
}

impl CompactFrame {
    /// A frame without objects, with room for `capacity` objects.
    pub fn with_capacity(source_id: Arc<str>, capacity: usize) -> Self {
        CompactFrame {
            source_id,
            frame_number: 0,
            pts_ns: 0,
            width: 0,
            height: 0,
            objects: Vec::with_capacity(capacity * RECORD_SIZE),
            captured_at: Instant::now(),
        }
    }

    /// Appends an object record.
    #[inline]
    pub fn push(&mut self, object: &Object) {
        object.encode_into(&mut self.objects);
    }

    /// Number of objects.
    pub fn object_count(&self) -> usize {
        self.objects.len() / RECORD_SIZE
    }

    /// Typed view over the objects.
    pub fn objects(&self) -> Objects<'_> {
        Objects::whole_records(&self.objects)
    }
}
