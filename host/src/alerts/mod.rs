//! Alerts: what leaves dshost. Detections become alerts, pass the throttle,
//! are written to the journal, and are delivered by each sink from its own
//! queue (strategies -> throttle -> journal -> sinks).

pub mod alert;
pub mod dispatch;
pub mod feed;
pub mod journal;
pub mod sinks;
pub mod snapshot;
pub mod throttle;

pub use alert::{Alert, AlertBox, AlertLevel};
pub use dispatch::{DispatchControl, DispatchError, Dispatcher, DispatcherSettings, SnapshotSettings};
pub use journal::{JournalConfig, JournalError};
pub use sinks::{SinkConfig, SinkStats};
pub use throttle::{Suppression, Throttle, ThrottleConfig};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Alert counters shared with the metrics endpoint.
#[derive(Debug, Default)]
pub struct AlertStats {
    /// Alerts that passed the throttle.
    pub emitted: AtomicU64,
    suppressed: [AtomicU64; Suppression::ALL.len()],
    /// Alerts written to the journal.
    pub journaled: AtomicU64,
    /// Failed journal writes (full disk, unwritable file, ...).
    pub journal_errors: AtomicU64,
    /// True while the journal accepts writes.
    pub journal_ok: AtomicBool,
    /// Undelivered alerts from an earlier run queued again at start.
    pub replayed: AtomicU64,
    /// Removed by retention before every sink had them.
    pub trimmed_undelivered: AtomicU64,
    /// Snapshots written, skipped and failed.
    pub snapshots: Arc<snapshot::SnapshotStats>,
    /// One entry per running sink (sinks come and go with config changes).
    sinks: RwLock<Vec<Arc<SinkStats>>>,
    /// Admitted alerts for live watchers (the console's event stream).
    pub feed: feed::AlertFeed,
}

impl AlertStats {
    pub fn set_suppressed(&self, reason: Suppression, count: u64) {
        self.suppressed[reason as usize].store(count, Ordering::Relaxed);
    }

    pub fn suppressed(&self, reason: Suppression) -> u64 {
        self.suppressed[reason as usize].load(Ordering::Relaxed)
    }

    /// The running sinks' counters.
    pub fn sinks(&self) -> Vec<Arc<SinkStats>> {
        self.sinks.read().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The counters of sink `name`, if it runs.
    pub fn sink(&self, name: &str) -> Option<Arc<SinkStats>> {
        self.sinks().into_iter().find(|s| s.name == name)
    }

    fn set_sinks(&self, sinks: Vec<Arc<SinkStats>>) {
        match self.sinks.write() {
            Ok(mut current) => *current = sinks,
            Err(poisoned) => *poisoned.into_inner() = sinks,
        }
    }
}
