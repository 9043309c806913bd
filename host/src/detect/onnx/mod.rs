//! The ONNX Runtime inference stage: real object detection on machines
//! without DeepStream. A model (YOLO-family or end-to-end export) is loaded
//! once and served to every source by a pool of worker threads; frames
//! arrive as RGB images the pipeline already scaled to fit the model input.
//!
//! - [`runtime`]: finding and loading ONNX Runtime (`load-dynamic`).
//! - [`provider`]: CPU / CUDA / TensorRT, chosen like `pipeline.decoder`.
//! - [`model`]: loading and checking a model; [`format`] recognises its
//!   family; [`labels`] its class names.
//! - [`preprocess`]: letterbox/stretch into the NCHW input, and back.
//! - [`decode`] and [`nms`]: output tensors to boxes in source pixels.
//! - [`session`]: one session with its buffers; [`pool`]: the workers,
//!   batching and per-source queues; [`metrics`]: what they count; `cuda`:
//!   the copies of a session that replays a CUDA graph.

mod cuda;
pub mod decode;
pub mod detector;
pub mod format;
pub mod labels;
pub mod metrics;
pub mod model;
pub mod nms;
pub mod pool;
pub mod preprocess;
pub mod provider;
pub mod runtime;
pub mod session;
pub mod stage;

pub use decode::DecodeOptions;
pub use detector::{DetectorError, OnnxDetector};
pub use format::Family;
pub use model::{BatchCapability, ModelError, ModelInfo, ModelOptions, OnnxModel};
pub use pool::{Frame, InferencePool, InferenceResult, Pacing, PoolOptions, SourceHandle, Submitted};
pub use preprocess::{Preprocess, RgbImage, Transform};
pub use provider::{select_provider, Provider, ProviderChoice, ProviderError, ProviderStatus, ProviderSupport};
pub use runtime::{LibrarySearch, OrtRuntime, RuntimeError, RuntimeReport};
pub use session::{FrameRef, InferenceError, InferenceSession, RunTiming};
pub use stage::{OnnxStage, OnnxStageSettings};
