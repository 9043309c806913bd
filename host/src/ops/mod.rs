//! Operations: Prometheus metrics, health, and the HTTP control API.

pub mod http;
pub mod metrics;
pub mod tls;
pub mod token;
