//! Video sources and the pipeline that turns them into compact frames.
//!
//! `uri` parses and redacts source URIs, `source` holds a source's settings,
//! `cpu` builds one GStreamer pipeline per source with the object stage in
//! `detect` (and the synthetic `scene`), `queue` hands frames to the strategy
//! worker without blocking, `controller` restarts failing sources, and
//! `runtime` adds and removes sources while running. `decode` picks GPU
//! (NVIDIA nvv4l2decoder) or CPU decoding per source.

pub mod controller;
pub mod cpu;
pub mod decode;
pub mod deepstream;
pub mod metrics;
pub mod queue;
pub mod runtime;
pub mod scene;
pub mod source;
pub mod uri;

pub use metrics::{SourceState, SourceSummary};
pub use runtime::{Runtime, RuntimeError, RuntimeSettings, StrategyPlan};
pub use source::SourceSpec;
