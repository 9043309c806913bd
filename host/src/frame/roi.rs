//! Objects as `GstVideoRegionOfInterestMeta`, the standard GStreamer way to
//! attach detections to a buffer (Intel DL Streamer's `gvadetect` writes
//! it): the convention both the writers (our synthetic scene) and the
//! reader (`detect::roi`) follow. Label = the ROI type, confidence in the
//! `detection` parameter structure, object id in `object_id`'s `id`.

use gstreamer as gst;
use gstreamer_video::VideoRegionOfInterestMeta;

/// Name of the parameter structure holding `confidence` (DL Streamer's).
pub const DETECTION_PARAM: &str = "detection";
/// Name of the parameter structure holding the tracker's `id`.
pub const OBJECT_ID_PARAM: &str = "object_id";

/// Attaches one object as ROI meta (the synthetic scene uses this; any
/// element that does the same is understood by `detect::roi::read_rois`).
pub fn attach_roi(
    buffer: &mut gst::BufferRef,
    label: &str,
    rect: (u32, u32, u32, u32),
    confidence: f64,
    object_id: u64,
) {
    let mut meta = VideoRegionOfInterestMeta::add(buffer, label, rect);
    meta.add_param(gst::Structure::builder(DETECTION_PARAM).field("confidence", confidence).build());
    meta.add_param(gst::Structure::builder(OBJECT_ID_PARAM).field("id", object_id).build());
}
