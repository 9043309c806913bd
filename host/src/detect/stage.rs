//! The built-in object stage: ROI metadata from upstream elements, the
//! motion detector, and the IoU tracker, run inline on the streaming thread
//! (all three cost well under a millisecond per frame at the analysis size).

use std::sync::Arc;

use gstreamer as gst;
use gstreamer_video as gst_video;

use super::motion::LumaPlane;
use super::{roi, Detected, IouTracker, MotionDetector};
use crate::config::{DetectorKind, MotionConfig, TrackerConfig};
use crate::frame::{CompactFrame, ImageRequest, LabelTable, Object, ObjectStage, SourceOutlet, UNTRACKED};

/// What a [`BuiltinStage`] is made from.
#[derive(Clone)]
pub struct BuiltinSettings {
    /// `auto`, `motion`, `roi` or `none` (resolved by the caller: a
    /// synthetic scene source reads its ROI ground truth).
    pub kind: DetectorKind,
    pub motion: MotionConfig,
    pub tracker: TrackerConfig,
    pub labels: Arc<LabelTable>,
    pub source_id: Arc<str>,
}

/// Detector + tracker state of one source.
pub struct BuiltinStage {
    kind: DetectorKind,
    /// Set once a frame carried ROI metadata (for `auto`).
    seen_roi: bool,
    motion: MotionDetector,
    analysis_width: u32,
    tracker: Option<IouTracker>,
    labels: LabelTable,
    source_id: Arc<str>,
    found: Vec<Detected>,
}

impl BuiltinStage {
    pub fn new(settings: BuiltinSettings) -> Self {
        let mut labels = (*settings.labels).clone();
        let motion_class = labels.intern("motion");
        BuiltinStage {
            kind: settings.kind,
            seen_roi: false,
            analysis_width: settings.motion.analysis_width,
            motion: MotionDetector::new(settings.motion, motion_class),
            tracker: settings.tracker.enabled.then(|| IouTracker::new(settings.tracker)),
            labels,
            source_id: settings.source_id,
            found: Vec::new(),
        }
    }

    /// Finds the frame's objects and encodes them into `frame`. `info` is
    /// the buffer's format; `frame` carries the source's size, larger when
    /// the GPU scaled the frame down for analysis.
    fn run(&mut self, buffer: &gst::BufferRef, info: &gst_video::VideoInfo, frame: &mut CompactFrame) {
        self.found.clear();
        let read_roi = matches!(self.kind, DetectorKind::Roi | DetectorKind::Auto);
        if read_roi {
            let grew = roi::read_rois(buffer, &mut self.labels, &mut self.found);
            if grew {
                tracing::warn!(
                    source = %self.source_id,
                    labels = ?self.labels.labels().iter().rev().take(3).collect::<Vec<_>>(),
                    "ROI metadata names labels missing from `pipeline.labels`; they get new class ids on this source only"
                );
            }
            self.seen_roi |= !self.found.is_empty();
        }
        let run_motion = match self.kind {
            DetectorKind::Motion => true,
            DetectorKind::Auto => !self.seen_roi,
            _ => false,
        };
        if run_motion {
            if let Ok(video) = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info) {
                if let Ok(data) = video.plane_data(0) {
                    let plane = LumaPlane {
                        data,
                        width: info.width() as usize,
                        height: info.height() as usize,
                        stride: info.stride()[0].max(0) as usize,
                    };
                    let first = self.found.len();
                    self.found.extend(self.motion.detect(plane));
                    scale_boxes(&mut self.found[first..], (info.width(), info.height()), (frame.width, frame.height));
                }
            }
        }
        if let Some(tracker) = &mut self.tracker {
            tracker.update(&mut self.found);
        }
        for object in &self.found {
            frame.push(&object.to_record());
        }
    }
}

impl ObjectStage for BuiltinStage {
    fn image(&self) -> ImageRequest {
        ImageRequest::Luma { analysis_width: self.analysis_width }
    }

    fn process(
        &mut self,
        buffer: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        mut frame: CompactFrame,
        outlet: &SourceOutlet,
    ) {
        self.run(buffer, info, &mut frame);
        outlet.deliver(frame);
    }
}

/// Maps boxes found in an `image`-sized picture to `frame`-sized pixels.
pub fn scale_boxes(found: &mut [Detected], image: (u32, u32), frame: (u32, u32)) {
    if image == frame {
        return;
    }
    let sx = frame.0 as f32 / image.0.max(1) as f32;
    let sy = frame.1 as f32 / image.1.max(1) as f32;
    for object in found {
        object.left *= sx;
        object.width *= sx;
        object.top *= sy;
        object.height *= sy;
    }
}

impl Detected {
    /// The compact record strategies read.
    pub fn to_record(&self) -> Object {
        Object {
            left: self.left,
            top: self.top,
            width: self.width,
            height: self.height,
            confidence: self.confidence,
            class_id: self.class_id,
            object_id: self.object_id.unwrap_or(UNTRACKED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_scale_to_the_source_size() {
        let mut found = [Detected {
            left: 10.0,
            top: 5.0,
            width: 20.0,
            height: 10.0,
            confidence: 1.0,
            class_id: 0,
            object_id: None,
        }];
        scale_boxes(&mut found, (320, 180), (1920, 1080));
        assert_eq!((found[0].left, found[0].top, found[0].width, found[0].height), (60.0, 30.0, 120.0, 60.0));
        assert_eq!(found[0].to_record().object_id, UNTRACKED);
    }
}
