//! dshost: a plugin-host runtime for real-time video analytics.
//!
//! Data flows sources -> pipeline -> object metadata -> compact frame ->
//! strategies (sandboxed WebAssembly) -> alerts -> sinks. The modules follow
//! that order.

pub mod alerts;
pub mod app;
pub mod backoff;
pub mod config;
pub mod detect;
pub mod frame;
pub mod metrics;
pub mod ops;
pub mod paths;
pub mod pipeline;
pub mod probe;
pub mod redact;
pub mod runtime;
pub mod strategy;
pub mod tls;
