//! The live feed of admitted alerts, for watchers such as the web console's
//! event stream (`GET /v1/events`). The dispatcher publishes every alert
//! that passed the throttle, with the slot its snapshot will fill.
//!
//! Publishing never waits: it is a `tokio::sync::broadcast` send (a short
//! internal lock, never held across anything slow), skipped outright while
//! nobody watches. A watcher that falls more than [`FEED_CAPACITY`] alerts
//! behind loses the oldest ones and is told how many (`Lagged`); the
//! dispatcher and the sinks are never held up by it.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::alert::Alert;
use super::snapshot::SnapshotSlot;

/// Alerts a watcher may be behind before it loses the oldest.
pub const FEED_CAPACITY: usize = 1024;

/// One admitted alert, as the feed carries it.
#[derive(Clone)]
pub struct FedAlert {
    pub alert: Arc<Alert>,
    /// Filled by an encoder when a snapshot was queued for this alert.
    pub snapshot: Option<Arc<SnapshotSlot>>,
}

/// The fan-out; one per service, in [`super::AlertStats`].
pub struct AlertFeed {
    sender: broadcast::Sender<FedAlert>,
}

impl Default for AlertFeed {
    fn default() -> Self {
        AlertFeed { sender: broadcast::Sender::new(FEED_CAPACITY) }
    }
}

impl std::fmt::Debug for AlertFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertFeed").field("watchers", &self.sender.receiver_count()).finish()
    }
}

impl AlertFeed {
    /// Hands an admitted alert to every watcher; never waits.
    pub fn publish(&self, alert: &Arc<Alert>, snapshot: Option<&Arc<SnapshotSlot>>) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        // An error only means the last watcher left meanwhile.
        let _ = self.sender.send(FedAlert { alert: alert.clone(), snapshot: snapshot.cloned() });
    }

    /// A new watcher: it gets the alerts admitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FedAlert> {
        self.sender.subscribe()
    }

    pub fn watchers(&self) -> usize {
        self.sender.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::alert::{AlertBox, AlertLevel};
    use broadcast::error::TryRecvError;

    fn alert(n: u64) -> Arc<Alert> {
        Arc::new(Alert {
            id: format!("{n:032x}"),
            ts: "2026-11-26T10:00:00.123Z".into(),
            source: "cam-1".into(),
            frame: n,
            pts_ns: 0,
            strategy: "yolo_filter".into(),
            strategy_version: "0.1.0".into(),
            pattern: "person".into(),
            confidence: 0.9,
            bbox: AlertBox { left: 1.0, top: 2.0, width: 3.0, height: 4.0 },
            object_id: None,
            level: AlertLevel::Medium,
            attributes: Default::default(),
            snapshot: None,
        })
    }

    #[test]
    fn watchers_get_what_is_published_after_they_subscribe() {
        let feed = AlertFeed::default();
        feed.publish(&alert(0), None);
        let mut first = feed.subscribe();
        feed.publish(&alert(1), None);
        let mut second = feed.subscribe();
        feed.publish(&alert(2), None);
        assert_eq!(first.try_recv().unwrap().alert.frame, 1);
        assert_eq!(first.try_recv().unwrap().alert.frame, 2);
        assert_eq!(second.try_recv().unwrap().alert.frame, 2);
        assert!(matches!(second.try_recv(), Err(TryRecvError::Empty)));
    }

    #[test]
    fn a_slow_watcher_loses_the_oldest_and_is_told_how_many() {
        let feed = AlertFeed::default();
        let mut slow = feed.subscribe();
        let extra = 10;
        // Publishing past the capacity returns at once every time.
        for n in 0..(FEED_CAPACITY + extra) as u64 {
            feed.publish(&alert(n), None);
        }
        assert!(matches!(slow.try_recv(), Err(TryRecvError::Lagged(n)) if n == extra as u64));
        assert_eq!(slow.try_recv().unwrap().alert.frame, extra as u64);
    }

    #[test]
    fn publishing_without_watchers_keeps_nothing() {
        let feed = AlertFeed::default();
        let kept = alert(0);
        feed.publish(&kept, None);
        assert_eq!(Arc::strong_count(&kept), 1);
        assert_eq!(feed.watchers(), 0);
    }
}
