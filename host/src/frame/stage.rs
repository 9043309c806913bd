//! The contract between a pipeline backend and the object stage that finds
//! a frame's objects (motion, ROI metadata, an ONNX model). The pipeline
//! asks the stage what image it needs, converts and scales decoded video to
//! that, and hands every frame to the stage on the streaming thread; the
//! stage fills the frame's objects and delivers it to the source's outlet,
//! inline when that is cheap, or later from a worker of its own (inference
//! must never run on a streaming thread). Neither side imports the other:
//! the runtime builds the stage and gives it to the pipeline.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer_video as gst_video;

use super::outlet::SourceOutlet;
use super::CompactFrame;

/// The image an object stage reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRequest {
    /// A format whose first plane is 8-bit luma (I420, NV12, GRAY8, ...):
    /// the source's own frames on the CPU path (so upstream metadata passes
    /// untouched), scaled on the GPU to about twice `analysis_width` wide on
    /// the GPU-decode path (only that small image leaves the GPU).
    Luma { analysis_width: u32 },
    /// Packed RGB scaled to fit inside `width` x `height`, keeping the
    /// aspect ratio when `keep_aspect` (the stage pads the rest), else
    /// stretched to exactly that size.
    Rgb { width: u32, height: u32, keep_aspect: bool },
}

/// Finds the objects of one source's frames. One per source and pipeline
/// run (a restart makes a new one), called only from that pipeline's
/// streaming thread.
pub trait ObjectStage: Send {
    /// What the pipeline must deliver.
    fn image(&self) -> ImageRequest;

    /// Called on the streaming thread for every decoded frame: `buffer` in
    /// the format of `info`; `frame` carries the source's size (larger than
    /// `info`'s when the frame was scaled down for analysis) and a pooled
    /// object buffer. The stage must deliver the frame to `outlet` exactly
    /// once, now or later, and must not block (beyond `outlet`'s own wait
    /// for an unpaced source).
    fn process(
        &mut self,
        buffer: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        frame: CompactFrame,
        outlet: &SourceOutlet,
    );

    /// End of stream (on the streaming thread): deliver every frame still
    /// held before the source ends. Stages that deliver inline hold none.
    fn finish(&mut self) {}
}

/// Makes a fresh object stage for each run of a source's pipeline.
pub type StageFactory = Arc<dyn Fn() -> Box<dyn ObjectStage> + Send + Sync>;
