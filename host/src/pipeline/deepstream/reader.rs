//! Walks an `NvDsBatchMeta` (frames, then each frame's objects) with the
//! layout the fingerprint confirmed, and turns each frame into compact
//! object records. Runs on the streaming thread: no allocation once the
//! scratch vector has grown, no locks, bounded list walks.

use std::ffi::{c_char, CStr};

use super::abi::{GList, NvDsBatchMeta, NvDsFrameMetaHead, NvDsFrameMetaV6, NvDsObjectMetaV5, NvDsObjectMetaV9};
use super::library::fingerprint_of;
use super::version::MetaLayout;
pub use crate::config::ConfidenceSource;
use crate::frame::{LabelTable, Object};

/// Longest list the reader follows; a longer one is treated as corrupt.
const MAX_LIST: usize = 4096;

/// One frame of a batch, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// `source_id`: the nvstreammux sink pad index of the source.
    pub source_id: u32,
    pub batch_id: u32,
    /// `frame_num` (per source, counted by nvstreammux).
    pub frame_num: i32,
    pub pts_ns: u64,
    /// The coordinate space of the boxes: the pipeline (muxer output) size
    /// where the frame meta records it (6.0 on), else the muxer output size
    /// the reader was given, else the source frame size.
    pub width: u32,
    pub height: u32,
    pub source_width: u32,
    pub source_height: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("the buffer's batch meta has no frame/object pools; not a DeepStream batch meta")]
    NoPools,
    #[error(
        "the batch meta's pools hold {object}-byte objects and {frame}-byte frames, but the reader was set up for the \
         {expected} layout; refusing to read it"
    )]
    LayoutChanged { expected: MetaLayout, object: u32, frame: u32 },
}

/// Reads batch metas of one layout.
pub struct BatchReader {
    layout: MetaLayout,
    confidence: ConfidenceSource,
    output_size: Option<(u32, u32)>,
    objects: Vec<Object>,
}

impl BatchReader {
    pub fn new(layout: MetaLayout, confidence: ConfidenceSource) -> Self {
        BatchReader { layout, confidence, output_size: None, objects: Vec::with_capacity(64) }
    }

    /// The muxer's output size (the legacy nvstreammux scales to it), for
    /// frame metas without `pipeline_width`: 5.x, and every frame meta
    /// after a `gst_buffer_copy` (the real 9.0.2 library's copy leaves
    /// `pipeline_width`/`pipeline_height` at 0).
    pub fn with_output_size(mut self, size: Option<(u32, u32)>) -> Self {
        self.output_size = size.filter(|(w, h)| *w > 0 && *h > 0);
        self
    }

    pub fn layout(&self) -> MetaLayout {
        self.layout
    }

    /// Calls `on_frame` for every frame of the batch with its objects.
    /// The pools' element sizes are checked first, on every batch (two
    /// loads): a batch meta of another layout is refused, never read.
    ///
    /// The class id of an object is the index of its `obj_label` in
    /// `labels` when the label is there (so strategies' class names work
    /// whatever the model's numbering), else nvinfer's `class_id`.
    ///
    /// # Safety
    /// `batch` must point to a live batch meta that nothing modifies during
    /// the call (a pad probe holds the buffer).
    pub unsafe fn read(
        &mut self,
        batch: *const NvDsBatchMeta,
        labels: &LabelTable,
        mut on_frame: impl FnMut(&FrameInfo, &[Object]),
    ) -> Result<usize, ReadError> {
        let found = fingerprint_of(batch).ok_or(ReadError::NoPools)?;
        let (object, frame) = self.layout.sizes();
        if (found.object_meta_size, found.frame_meta_size) != (object, frame) {
            return Err(ReadError::LayoutChanged {
                expected: self.layout,
                object: found.object_meta_size,
                frame: found.frame_meta_size,
            });
        }
        let mut frames = 0;
        let mut node = (*batch).frame_meta_list as *const GList;
        while !node.is_null() && frames < MAX_LIST {
            let meta = (*node).data as *const NvDsFrameMetaHead;
            node = (*node).next;
            if meta.is_null() {
                continue;
            }
            frames += 1;
            let head = &*meta;
            let (mut width, mut height) =
                self.output_size.unwrap_or((head.source_frame_width, head.source_frame_height));
            if self.layout != MetaLayout::Ds5 {
                // 6.0 and later record the muxer's output size right after the shared head.
                let v6 = &*(meta as *const NvDsFrameMetaV6);
                if v6.pipeline_width > 0 && v6.pipeline_height > 0 {
                    (width, height) = (v6.pipeline_width, v6.pipeline_height);
                }
            }
            let info = FrameInfo {
                source_id: head.source_id,
                batch_id: head.batch_id,
                frame_num: head.frame_num,
                pts_ns: head.buf_pts,
                width,
                height,
                source_width: head.source_frame_width,
                source_height: head.source_frame_height,
            };
            self.objects.clear();
            if self.layout.is_v9_object() {
                self.collect::<NvDsObjectMetaV9>(head.obj_meta_list, labels);
            } else {
                self.collect::<NvDsObjectMetaV5>(head.obj_meta_list, labels);
            }
            on_frame(&info, &self.objects);
        }
        Ok(frames)
    }

    unsafe fn collect<M: ObjectMeta>(&mut self, mut node: *const GList, labels: &LabelTable) {
        let mut seen = 0;
        while !node.is_null() && seen < MAX_LIST {
            let meta = (*node).data as *const M;
            node = (*node).next;
            seen += 1;
            if meta.is_null() {
                continue;
            }
            let meta = &*meta;
            let (left, top, width, height) = meta.rect();
            let object_id = meta.object_id();
            let confidence = match self.confidence {
                ConfidenceSource::Tracker if object_id != u64::MAX => meta.tracker_confidence(),
                _ => meta.confidence(),
            };
            let label = label_str(meta.label());
            let class_id = match label.and_then(|l| labels.id_of(l)) {
                Some(id) => id,
                None => meta.class_id() as u32,
            };
            self.objects.push(Object {
                left,
                top,
                width,
                height,
                // nvinfer writes -0.1 or similar for "no confidence"; the
                // compact layout promises [0, 1].
                confidence: if confidence.is_finite() { confidence.clamp(0.0, 1.0) } else { 0.0 },
                class_id,
                object_id,
            });
        }
    }
}

fn label_str(bytes: &[c_char; 128]) -> Option<&str> {
    // SAFETY: c_char and u8 have the same size and alignment.
    let bytes: &[u8; 128] = unsafe { &*(bytes as *const [c_char; 128] as *const [u8; 128]) };
    CStr::from_bytes_until_nul(bytes).ok()?.to_str().ok().filter(|s| !s.is_empty())
}

/// The object fields the reader uses, for both object layouts.
trait ObjectMeta {
    fn rect(&self) -> (f32, f32, f32, f32);
    fn object_id(&self) -> u64;
    fn class_id(&self) -> i32;
    fn confidence(&self) -> f32;
    fn tracker_confidence(&self) -> f32;
    fn label(&self) -> &[c_char; 128];
}

macro_rules! object_meta {
    ($t:ty) => {
        impl ObjectMeta for $t {
            fn rect(&self) -> (f32, f32, f32, f32) {
                let r = &self.rect_params;
                (r.left, r.top, r.width, r.height)
            }
            fn object_id(&self) -> u64 {
                self.object_id
            }
            fn class_id(&self) -> i32 {
                self.class_id
            }
            fn confidence(&self) -> f32 {
                self.confidence
            }
            fn tracker_confidence(&self) -> f32 {
                self.tracker_confidence
            }
            fn label(&self) -> &[c_char; 128] {
                &self.obj_label
            }
        }
    };
}
object_meta!(NvDsObjectMetaV5);
object_meta!(NvDsObjectMetaV9);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stop_at_nul_and_empty_is_none() {
        let mut raw = [0 as c_char; 128];
        for (i, b) in b"person".iter().enumerate() {
            raw[i] = *b as c_char;
        }
        assert_eq!(label_str(&raw), Some("person"));
        assert_eq!(label_str(&[0; 128]), None);
        // No NUL at all: not a C string, so no label.
        assert_eq!(label_str(&[b'a' as c_char; 128]), None);
    }
}
