//! Alerts: what leaves dshost. For now the alert record and its JSON line;
//! throttling, the journal and sinks build on it.

pub mod alert;

pub use alert::{Alert, AlertBox, AlertLevel};
