//! The object stage: where a frame's objects come from when no DeepStream
//! inference runs. Motion detection for plain cameras, ROI metadata from
//! upstream elements (DL Streamer style, and our synthetic scene), an ONNX
//! Runtime detector (`onnx`), and an IoU tracker for stable ids; `stage` puts them behind the pipeline's
//! `frame::ObjectStage` contract.

pub mod motion;
pub mod onnx;
pub mod roi;
pub mod stage;
pub mod tracker;

pub use motion::MotionDetector;
pub use stage::{BuiltinSettings, BuiltinStage};
pub use tracker::IouTracker;

/// An object found in a frame, in source-frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detected {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    pub confidence: f32,
    pub class_id: u32,
    /// Id given upstream (ROI meta), if any.
    pub object_id: Option<u64>,
}

impl Detected {
    pub fn iou(&self, other: &Detected) -> f32 {
        let x1 = self.left.max(other.left);
        let y1 = self.top.max(other.top);
        let x2 = (self.left + self.width).min(other.left + other.width);
        let y2 = (self.top + self.height).min(other.top + other.height);
        let intersection = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
        let union = self.width * self.height + other.width * other.height - intersection;
        if union <= 0.0 {
            0.0
        } else {
            intersection / union
        }
    }
}
