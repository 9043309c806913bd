//! Operations: Prometheus metrics, health, the HTTP control API and the
//! web console.

pub mod console;
pub mod events;
pub mod http;
pub mod metrics;
pub mod session;
pub mod tls;
pub mod token;
