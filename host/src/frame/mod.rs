//! The compact frame: what the pipeline hands to strategies.
//!
//! A frame is a small header plus its objects encoded in the 32-byte record
//! layout of `dshost_sdk::layout` (documented in `wit/strategy.wit`). Bytes
//! instead of typed records keep the guest call cheap for every language.

pub mod jsonl;
pub mod labels;

use std::sync::Arc;
use std::time::Instant;

pub use dshost_sdk::layout::{encode_objects, Object, Objects, RECORD_SIZE, UNTRACKED};
pub use labels::LabelTable;

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
    /// When the pipeline finished the frame (decoded, objects attached);
    /// frame-to-detection latency is measured from here.
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
