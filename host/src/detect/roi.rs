//! Reads `GstVideoRegionOfInterestMeta` (as attached by Intel DL Streamer's
//! `gvadetect`, or by our synthetic scene): label from the ROI type,
//! confidence from the `detection` parameter structure, object id from the
//! `object_id` structure's `id` field.

use gstreamer as gst;
use gstreamer_video::VideoRegionOfInterestMeta;

use super::Detected;
use crate::frame::roi::{DETECTION_PARAM, OBJECT_ID_PARAM};
use crate::frame::LabelTable;

/// Collects the buffer's ROI metas. New labels are appended to `labels`
/// (returned `true` when that happened).
pub fn read_rois(buffer: &gst::BufferRef, labels: &mut LabelTable, out: &mut Vec<Detected>) -> bool {
    let mut grew = false;
    for meta in buffer.iter_meta::<VideoRegionOfInterestMeta>() {
        let (x, y, w, h) = meta.rect();
        let label = meta.roi_type();
        let class_id = match labels.id_of(label) {
            Some(id) => id,
            None => {
                grew = true;
                labels.intern(label)
            }
        };
        let confidence = meta
            .param(DETECTION_PARAM)
            .and_then(|s| s.get::<f64>("confidence").ok())
            .map(|c| c.clamp(0.0, 1.0) as f32)
            .unwrap_or(1.0);
        let object_id = meta.param(OBJECT_ID_PARAM).and_then(|s| {
            s.get::<u64>("id")
                .ok()
                .or_else(|| s.get::<i64>("id").ok().map(|v| v as u64))
                .or_else(|| s.get::<i32>("id").ok().map(|v| v as u64))
                .or_else(|| s.get::<u32>("id").ok().map(u64::from))
        });
        out.push(Detected {
            left: x as f32,
            top: y as f32,
            width: w as f32,
            height: h as f32,
            confidence,
            class_id,
            object_id,
        });
    }
    grew
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::roi::attach_roi;

    #[test]
    fn round_trips_through_buffer_meta() {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::with_size(16).unwrap();
        {
            let buffer = buffer.get_mut().unwrap();
            attach_roi(buffer, "person", (10, 20, 30, 40), 0.87, 5);
            attach_roi(buffer, "forklift", (1, 2, 3, 4), 0.5, 6);
        }
        let mut labels = LabelTable::coco();
        let mut out = Vec::new();
        assert!(read_rois(&buffer, &mut labels, &mut out), "forklift is a new label");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].class_id, 0);
        assert_eq!((out[0].left, out[0].top, out[0].width, out[0].height), (10.0, 20.0, 30.0, 40.0));
        assert!((out[0].confidence - 0.87).abs() < 1e-6);
        assert_eq!(out[0].object_id, Some(5));
        assert_eq!(labels.label(out[1].class_id), Some("forklift"));
    }
}
