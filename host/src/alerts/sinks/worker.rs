//! A sink's thread: bounded queue in, retries with backoff, outcomes back to
//! the journal.
//!
//! The queue never blocks the dispatcher. When it is full, journaled alerts
//! are *diverted*: left in the journal only, and the worker reads them back
//! from there, in order, once it has caught up. Alerts that could not be
//! journaled (journal off or failing) have nowhere else to wait, so the
//! oldest is dropped and counted instead.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Batching, DeliveryConfig, DeliveryError, PayloadFormat, Sink};
use crate::alerts::alert::Alert;
use crate::alerts::journal::{DeliveryState, DeliveryUpdate, JournalReader};
use crate::alerts::snapshot::SnapshotSlot;
use crate::metrics::Histogram;

/// Per-sink counters for metrics and the exit summary.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub name: String,
    pub kind: &'static str,
    pub delivered: AtomicU64,
    /// Failed attempts (each retry counts).
    pub failures: AtomicU64,
    pub rejected: AtomicU64,
    /// Dropped because the queue was full and there was no journal to wait in.
    pub dropped: AtomicU64,
    /// Left pending at shutdown (delivered at the next start).
    pub left_pending: AtomicU64,
    pub queue_depth: AtomicU64,
    /// 1 while the last attempt succeeded (or none failed yet).
    pub up: AtomicBool,
    /// From the dispatcher receiving the alert to the sink confirming it.
    pub latency: Histogram,
}

struct Item {
    seq: Option<i64>,
    alert: Arc<Alert>,
    /// The alert's snapshot, being encoded.
    snapshot: Option<Arc<SnapshotSlot>>,
    received: Instant,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Item>,
    /// Highest journaled sequence number left in the journal only.
    diverted_up_to: Option<i64>,
    /// Set at shutdown: deliver what is queued until then, then stop.
    stop_at: Option<Instant>,
}

struct Shared {
    state: Mutex<QueueState>,
    ready: Condvar,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The dispatcher's side of one sink.
pub struct SinkHandle {
    pub stats: Arc<SinkStats>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

pub struct WorkerSettings {
    pub name: String,
    pub kind: &'static str,
    pub format: PayloadFormat,
    pub delivery: DeliveryConfig,
    /// Where diverted alerts are read back from; `None` without a journal.
    pub journal: Option<PathBuf>,
    /// Longest wait for an alert's snapshot before delivering without it.
    pub snapshot_wait: Duration,
}

impl SinkHandle {
    pub fn spawn(
        sink: Box<dyn Sink>,
        settings: WorkerSettings,
        updates: Sender<DeliveryUpdate>,
    ) -> std::io::Result<SinkHandle> {
        let stats = Arc::new(SinkStats {
            name: settings.name.clone(),
            kind: settings.kind,
            up: AtomicBool::new(true),
            ..Default::default()
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(QueueState::default()),
            ready: Condvar::new(),
            capacity: settings.delivery.queue_capacity.max(1),
        });
        let worker = Worker {
            batching: sink.batching(),
            sink,
            shared: shared.clone(),
            stats: stats.clone(),
            updates,
            format: settings.format,
            delivery: settings.delivery,
            journal_path: settings.journal,
            journal: None,
            cursor: 0,
            name: settings.name.clone(),
            failing_since: None,
            snapshot_wait: settings.snapshot_wait,
        };
        let thread = std::thread::Builder::new().name(format!("sink-{}", settings.name)).spawn(move || worker.run())?;
        Ok(SinkHandle { stats, shared, thread: Some(thread) })
    }

    /// Never blocks on the sink.
    pub fn push(&self, seq: Option<i64>, alert: Arc<Alert>, snapshot: Option<Arc<SnapshotSlot>>, received: Instant) {
        let mut state = self.shared.lock();
        match seq {
            Some(seq) if state.diverted_up_to.is_some() || state.items.len() >= self.shared.capacity => {
                state.diverted_up_to = Some(seq);
            }
            _ => {
                if state.items.len() >= self.shared.capacity {
                    // Not journaled: nowhere else to keep it.
                    state.items.pop_front();
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                state.items.push_back(Item { seq, alert, snapshot, received });
            }
        }
        self.stats.queue_depth.store(state.items.len() as u64, Ordering::Relaxed);
        drop(state);
        self.shared.ready.notify_one();
    }

    pub fn name(&self) -> &str {
        &self.stats.name
    }

    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Journaled alerts up to `seq` that were never queued: the worker reads
    /// them from the journal after what is queued.
    pub fn divert_up_to(&self, seq: i64) {
        let mut state = self.shared.lock();
        if seq > state.diverted_up_to.unwrap_or(0) && seq > state.items.back().and_then(|i| i.seq).unwrap_or(0) {
            state.diverted_up_to = Some(seq);
        }
        drop(state);
        self.shared.ready.notify_one();
    }

    /// Asks the worker to finish what it has within `grace`, then stop.
    pub fn close(&self, grace: Duration) {
        self.shared.lock().stop_at = Some(Instant::now() + grace);
        self.shared.ready.notify_all();
    }

    pub fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

enum Work {
    Item(Item),
    CatchUp(i64),
    Idle,
    Stop,
}

struct Worker {
    sink: Box<dyn Sink>,
    batching: Batching,
    shared: Arc<Shared>,
    stats: Arc<SinkStats>,
    updates: Sender<DeliveryUpdate>,
    format: PayloadFormat,
    delivery: DeliveryConfig,
    journal_path: Option<PathBuf>,
    journal: Option<JournalReader>,
    /// Highest journaled sequence number handled.
    cursor: i64,
    name: String,
    failing_since: Option<(Instant, u64)>,
    snapshot_wait: Duration,
}

impl Worker {
    fn run(mut self) {
        loop {
            match self.next() {
                Work::Item(item) => {
                    let items = if self.batching.max_items > 1 { self.gather(item) } else { vec![item] };
                    for seq in items.iter().filter_map(|i| i.seq) {
                        self.cursor = self.cursor.max(seq);
                    }
                    self.handle(items);
                }
                Work::CatchUp(up_to) => self.catch_up(up_to),
                Work::Idle => self.sink.idle(),
                Work::Stop => break,
            }
        }
        let left = self.shared.lock().items.len() as u64;
        if left > 0 {
            self.stats.left_pending.fetch_add(left, Ordering::Relaxed);
        }
    }

    fn next(&self) -> Work {
        let mut state = self.shared.lock();
        loop {
            if let Some(stop_at) = state.stop_at {
                if Instant::now() >= stop_at {
                    return Work::Stop;
                }
            }
            if let Some(item) = state.items.pop_front() {
                self.stats.queue_depth.store(state.items.len() as u64, Ordering::Relaxed);
                return Work::Item(item);
            }
            if let Some(up_to) = state.diverted_up_to {
                if self.cursor >= up_to {
                    state.diverted_up_to = None;
                    continue;
                }
                return Work::CatchUp(up_to);
            }
            if state.stop_at.is_some() {
                return Work::Stop;
            }
            let (next, timeout) = self
                .shared
                .ready
                .wait_timeout(state, Duration::from_secs(1))
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state = next;
            if timeout.timed_out()
                && state.items.is_empty()
                && state.diverted_up_to.is_none()
                && state.stop_at.is_none()
            {
                return Work::Idle;
            }
        }
    }

    /// A batch starting with `first`: whatever is queued, then what arrives
    /// until the batch is full or the first alert has waited `max_wait`
    /// (shutdown cuts the wait short).
    fn gather(&self, first: Item) -> Vec<Item> {
        let deadline = first.received + self.batching.max_wait;
        let mut items = vec![first];
        let mut state = self.shared.lock();
        loop {
            while items.len() < self.batching.max_items {
                match state.items.pop_front() {
                    Some(item) => items.push(item),
                    None => break,
                }
            }
            self.stats.queue_depth.store(state.items.len() as u64, Ordering::Relaxed);
            let now = Instant::now();
            // Diverted alerts wait in the journal: send this batch, then read them.
            if items.len() >= self.batching.max_items
                || now >= deadline
                || state.stop_at.is_some()
                || state.diverted_up_to.is_some()
            {
                return items;
            }
            let (next, _) =
                self.shared.ready.wait_timeout(state, deadline - now).unwrap_or_else(|poisoned| poisoned.into_inner());
            state = next;
        }
    }

    /// Reads diverted alerts back from the journal, oldest first.
    fn catch_up(&mut self, up_to: i64) {
        if self.journal.is_none() {
            match self.journal_path.as_deref().map(JournalReader::open) {
                Some(Ok(reader)) => self.journal = Some(reader),
                Some(Err(error)) => {
                    tracing::error!(sink = %self.name, error = %error, "cannot read diverted alerts back from the journal; they stay pending for the next start");
                    self.cursor = up_to;
                    return;
                }
                None => {
                    self.cursor = up_to;
                    return;
                }
            }
        }
        let batch = self.delivery.queue_capacity.clamp(16, 512);
        let rows = match self.journal.as_ref().map(|j| j.pending(&self.name, self.cursor, batch)) {
            Some(Ok(rows)) => rows,
            Some(Err(error)) => {
                tracing::error!(sink = %self.name, error = %error, "cannot read diverted alerts from the journal; retrying");
                self.journal = None;
                std::thread::sleep(Duration::from_millis(500));
                return;
            }
            None => return,
        };
        if rows.is_empty() {
            // Trimmed or already handled: nothing up to `up_to` is left.
            self.cursor = self.cursor.max(up_to);
            return;
        }
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            if self.stopping_now() {
                return;
            }
            let items: Vec<Item> = rows
                .by_ref()
                .take(self.batching.max_items.max(1))
                .map(|(seq, alert)| Item {
                    seq: Some(seq),
                    alert: Arc::new(alert),
                    snapshot: None,
                    received: Instant::now(),
                })
                .collect();
            for seq in items.iter().filter_map(|i| i.seq) {
                self.cursor = self.cursor.max(seq);
            }
            self.handle(items);
        }
    }

    fn stopping_now(&self) -> bool {
        self.shared.lock().stop_at.is_some_and(|at| Instant::now() >= at)
    }

    /// Delivers `items` (one, or a batch for batching sinks) until it
    /// succeeds, is rejected, or shutdown's grace runs out.
    fn handle(&mut self, mut items: Vec<Item>) {
        if items.is_empty() {
            return;
        }
        // Alerts go out with their pictures: wait (on this sink's own
        // thread, bounded) for them to be encoded; without one an alert goes
        // as it is.
        for item in &mut items {
            if let Some(slot) = item.snapshot.take() {
                if let Some(snapshot) = slot.wait(self.snapshot_wait) {
                    let mut alert = (*item.alert).clone();
                    alert.snapshot = Some(snapshot);
                    item.alert = Arc::new(alert);
                }
            }
        }
        let payloads: Vec<Vec<u8>> = items.iter().map(|item| self.format.encode(&item.alert)).collect();
        let journaled = items.iter().any(|item| item.seq.is_some());
        let mut attempts: u32 = 0;
        let initial = Duration::from_millis(self.delivery.retry_initial_ms.max(1));
        let max_backoff = Duration::from_millis(self.delivery.retry_max_ms.max(self.delivery.retry_initial_ms));
        loop {
            attempts += 1;
            let result = match (&items[..], &payloads[..]) {
                ([item], [payload]) => self.sink.deliver(&item.alert, payload),
                _ => {
                    let batch: Vec<(&Alert, &[u8])> =
                        items.iter().zip(&payloads).map(|(item, payload)| (&*item.alert, payload.as_slice())).collect();
                    self.sink.deliver_batch(&batch)
                }
            };
            match result {
                Ok(()) => {
                    self.recovered();
                    for item in &items {
                        self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                        self.stats.latency.observe(item.received.elapsed());
                        self.report(item.seq, DeliveryState::Delivered, attempts, None);
                    }
                    return;
                }
                Err(DeliveryError::Reject(reason)) => {
                    for item in &items {
                        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(sink = %self.name, alert = %item.alert.id, reason = %reason, "the sink rejected an alert; it will not be retried");
                        self.report(item.seq, DeliveryState::Rejected, attempts, Some(reason.clone()));
                    }
                    return;
                }
                Err(DeliveryError::Retry(reason)) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    self.failed(&reason, journaled);
                }
            }
            let delay = crate::backoff::jittered(crate::backoff::exponential(initial, max_backoff, attempts));
            if !self.sleep_unless_stopping(delay) {
                for item in &items {
                    if item.seq.is_some() {
                        self.stats.left_pending.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                return;
            }
        }
    }

    /// Sleeps, or returns false at once if shutdown's grace has run out
    /// (the alert then stays pending in the journal).
    fn sleep_unless_stopping(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        let mut state = self.shared.lock();
        loop {
            if state.stop_at.is_some_and(|at| Instant::now() >= at) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            let wake = state.stop_at.map_or(until, |at| at.min(until));
            let (next, _) = self
                .shared
                .ready
                .wait_timeout(state, wake.saturating_duration_since(now))
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state = next;
        }
    }

    fn failed(&mut self, reason: &str, journaled: bool) {
        self.stats.up.store(false, Ordering::Relaxed);
        match &mut self.failing_since {
            Some((_, count)) => *count += 1,
            None => {
                self.failing_since = Some((Instant::now(), 1));
                let kept = if journaled { "alerts wait in the journal" } else { "alerts wait in memory (no journal)" };
                tracing::error!(sink = %self.name, reason = %reason, "sink unavailable; retrying with backoff, {kept}");
            }
        }
    }

    fn recovered(&mut self) {
        self.stats.up.store(true, Ordering::Relaxed);
        if let Some((since, count)) = self.failing_since.take() {
            tracing::info!(sink = %self.name, failed_attempts = count, down_for = ?since.elapsed(), "sink recovered");
        }
    }

    fn report(&self, seq: Option<i64>, state: DeliveryState, attempts: u32, error: Option<String>) {
        if let Some(seq) = seq {
            let _ = self.updates.send(DeliveryUpdate { seq, sink: self.name.clone(), state, attempts, error });
        }
    }
}
