//! Alerts: what leaves dshost. For now the alert record and its JSON line;
//! throttling, the journal and sinks build on it.

pub mod alert;
pub mod throttle;

pub use alert::{Alert, AlertBox, AlertLevel};
pub use throttle::{Suppression, Throttle, ThrottleConfig};

use std::sync::atomic::{AtomicU64, Ordering};

/// Alert counters shared with the metrics endpoint.
#[derive(Debug, Default)]
pub struct AlertStats {
    /// Alerts that passed the throttle and were written.
    pub emitted: AtomicU64,
    suppressed: [AtomicU64; Suppression::ALL.len()],
}

impl AlertStats {
    pub fn set_suppressed(&self, reason: Suppression, count: u64) {
        self.suppressed[reason as usize].store(count, Ordering::Relaxed);
    }

    pub fn suppressed(&self, reason: Suppression) -> u64 {
        self.suppressed[reason as usize].load(Ordering::Relaxed)
    }
}
