//! The alert dispatcher: one thread between the strategy workers and the
//! sinks. Per batch of alerts: throttle, write to the journal in one
//! transaction, hand each alert to every sink's queue; in between, record
//! what the sinks report and apply retention.
//!
//! A journal that cannot be written (full disk, unwritable file) is a loud
//! error and a metric; alerts then still go to the sinks from memory, and
//! writing is tried again with every batch.
//!
//! Config changes reach the running dispatcher through [`DispatchControl`]:
//! new throttle settings (its state and counters carry over), sinks added,
//! removed or replaced (a replaced sink's undelivered alerts go to its
//! replacement, which has the same name), all between two batches.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::alert::Alert;
use super::journal::{DeliveryUpdate, Journal, JournalConfig, JournalError};
use super::sinks::worker_settings;
use super::sinks::{SinkConfig, SinkHandle};
use super::snapshot::{Snapshot, SnapshotConfig, SnapshotJob, SnapshotPool, SnapshotSlot};
use super::{AlertStats, Throttle, ThrottleConfig};
use crate::frame::ring::Rings;

/// How often retention runs, and how often a journal that failed to open
/// is tried again.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);
const REOPEN_EVERY: Duration = Duration::from_secs(15);
/// Alerts taken from the channel into one journal transaction.
const MAX_BATCH: usize = 512;

/// Where snapshots come from and go.
pub struct SnapshotSettings {
    pub config: SnapshotConfig,
    /// `<data-dir>/snapshots`.
    pub dir: PathBuf,
    /// Every source's ring of recent frames.
    pub rings: Arc<Rings>,
}

pub struct DispatcherSettings {
    pub throttle: Throttle,
    /// `None`: no snapshots.
    pub snapshots: Option<SnapshotSettings>,
    pub journal: JournalConfig,
    /// The resolved journal file.
    pub journal_path: PathBuf,
    pub sinks: Vec<SinkConfig>,
    pub shutdown_grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("alert sink `{name}`: {message}")]
    Sink { name: String, message: String },
    #[error("cannot start the thread of alert sink `{name}`: {source}")]
    Thread { name: String, source: std::io::Error },
    #[error(transparent)]
    JournalInUse(JournalError),
    #[error("an alert sink named `{0}` is already running")]
    DuplicateSink(String),
    #[error("no alert sink is named `{0}`")]
    UnknownSink(String),
    #[error("the alert dispatcher has stopped")]
    Stopped,
    #[error("cannot start the snapshot encoders under {dir}: {source}")]
    Snapshots { dir: PathBuf, source: std::io::Error },
}

/// A change for the running dispatcher.
enum Command {
    Throttle { global: ThrottleConfig, per_strategy: BTreeMap<String, ThrottleConfig> },
    ShutdownGrace(Duration),
    AddSink { config: Box<SinkConfig>, reply: Sender<Result<(), DispatchError>> },
    RemoveSink { name: String, reply: Sender<Result<(), DispatchError>> },
    ReplaceSink { config: Box<SinkConfig>, reply: Sender<Result<(), DispatchError>> },
}

/// Changes the running dispatcher's throttle and sinks (from any thread).
#[derive(Clone)]
pub struct DispatchControl {
    commands: Sender<Command>,
}

/// How long a caller waits for the dispatcher to apply a sink change (it
/// applies changes between batches; a removed sink may take its delivery
/// timeout to stop).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

impl DispatchControl {
    /// New throttle settings; cooldowns, bursts and counters carry over.
    pub fn set_throttle(
        &self,
        global: ThrottleConfig,
        per_strategy: BTreeMap<String, ThrottleConfig>,
    ) -> Result<(), DispatchError> {
        self.commands.send(Command::Throttle { global, per_strategy }).map_err(|_| DispatchError::Stopped)
    }

    pub fn set_shutdown_grace(&self, grace: Duration) -> Result<(), DispatchError> {
        self.commands.send(Command::ShutdownGrace(grace)).map_err(|_| DispatchError::Stopped)
    }

    /// Starts a sink; alerts admitted from then on go to it too, and what the
    /// journal holds undelivered for its name is sent to it.
    pub fn add_sink(&self, config: SinkConfig) -> Result<(), DispatchError> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.commands.send(Command::AddSink { config: Box::new(config), reply }).map_err(|_| DispatchError::Stopped)?;
        answer.recv_timeout(CONTROL_TIMEOUT).map_err(|_| DispatchError::Stopped)?
    }

    /// Stops a sink; its undelivered alerts stay pending in the journal.
    pub fn remove_sink(&self, name: &str) -> Result<(), DispatchError> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.commands
            .send(Command::RemoveSink { name: name.to_string(), reply })
            .map_err(|_| DispatchError::Stopped)?;
        answer.recv_timeout(CONTROL_TIMEOUT).map_err(|_| DispatchError::Stopped)?
    }

    /// Replaces a sink by one with new settings and the same name. The new
    /// settings are checked first: if they cannot work, the old sink keeps
    /// running.
    pub fn replace_sink(&self, config: SinkConfig) -> Result<(), DispatchError> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.commands
            .send(Command::ReplaceSink { config: Box::new(config), reply })
            .map_err(|_| DispatchError::Stopped)?;
        answer.recv_timeout(CONTROL_TIMEOUT).map_err(|_| DispatchError::Stopped)?
    }
}

pub struct Dispatcher {
    throttle: Throttle,
    journal_config: JournalConfig,
    journal_path: PathBuf,
    journal: Option<Journal>,
    journal_failing: bool,
    open_error: Option<JournalError>,
    last_open_attempt: Instant,
    last_maintenance: Instant,
    sinks: Vec<SinkHandle>,
    sink_names: Vec<String>,
    updates: Receiver<DeliveryUpdate>,
    update_sender: Sender<DeliveryUpdate>,
    commands: Receiver<Command>,
    command_sender: Sender<Command>,
    stats: Arc<AlertStats>,
    shutdown_grace: Duration,
    snapshots: Option<(SnapshotPool, Arc<Rings>)>,
    snapshot_dir: Option<PathBuf>,
    snapshot_wait: Duration,
    snapshots_done: Receiver<(i64, Snapshot)>,
}

impl Dispatcher {
    /// Opens the journal, starts every sink and queues what an earlier run
    /// left undelivered. Fails only on sink settings that cannot work
    /// (e.g. a secret's environment variable is missing).
    pub fn start(settings: DispatcherSettings, stats: Arc<AlertStats>) -> Result<Dispatcher, DispatchError> {
        let (update_sender, updates) = std::sync::mpsc::channel();
        let (command_sender, commands) = std::sync::mpsc::channel();
        let (snapshot_sender, snapshots_done) = std::sync::mpsc::channel();
        let snapshot_dir = settings.snapshots.as_ref().map(|s| s.dir.clone());
        let snapshot_wait = Duration::from_millis(settings.snapshots.as_ref().map_or(0, |s| s.config.wait_ms));
        let snapshots = match settings.snapshots {
            Some(s) if s.config.enabled => {
                let pool = SnapshotPool::start(&s.config, s.dir.clone(), snapshot_sender, stats.snapshots.clone())
                    .map_err(|source| DispatchError::Snapshots { dir: s.dir.clone(), source })?;
                Some((pool, s.rings))
            }
            _ => None,
        };
        let mut built = Vec::new();
        for config in &settings.sinks {
            let sink = config.build().map_err(|message| DispatchError::Sink { name: config.name(), message })?;
            built.push((config, sink));
        }
        let mut dispatcher = Dispatcher {
            throttle: settings.throttle,
            journal_config: settings.journal.clone(),
            journal_path: settings.journal_path.clone(),
            journal: None,
            journal_failing: false,
            open_error: None,
            last_open_attempt: Instant::now(),
            last_maintenance: Instant::now(),
            sinks: Vec::new(),
            sink_names: settings.sinks.iter().map(SinkConfig::name).collect(),
            updates,
            update_sender: update_sender.clone(),
            commands,
            command_sender,
            stats,
            shutdown_grace: settings.shutdown_grace,
            snapshots,
            snapshot_dir,
            snapshot_wait,
            snapshots_done,
        };
        if settings.journal.enabled {
            dispatcher.open_journal();
            if let Some(JournalError::InUse(path)) = dispatcher.open_error.take() {
                return Err(DispatchError::JournalInUse(JournalError::InUse(path)));
            }
        } else {
            tracing::warn!(
                "the alert journal is off (alerts.journal.enabled: false): alerts not yet delivered are lost at exit"
            );
        }
        let journal_for_sinks = dispatcher.journal_for_sinks();
        for (config, sink) in built {
            let handle = SinkHandle::spawn(
                sink,
                worker_settings(config, journal_for_sinks.clone(), dispatcher.snapshot_wait),
                update_sender.clone(),
            )
            .map_err(|source| DispatchError::Thread { name: config.name(), source })?;
            dispatcher.sinks.push(handle);
        }
        dispatcher.publish_sinks();
        dispatcher.replay_pending(None);
        dispatcher.maintain();
        Ok(dispatcher)
    }

    fn open_journal(&mut self) {
        self.last_open_attempt = Instant::now();
        match Journal::open(&self.journal_path, &self.journal_config) {
            Ok(journal) => {
                if self.journal_failing {
                    tracing::info!(path = %self.journal_path.display(), "the alert journal is writable again");
                }
                self.journal = Some(journal);
                self.journal_failing = false;
                self.stats.journal_ok.store(true, Ordering::Relaxed);
            }
            // Another running dshost owns it: a setup error, refused at start.
            Err(error @ JournalError::InUse(_)) => self.open_error = Some(error),
            Err(error) => {
                self.journal_failed(&error);
                self.open_error = Some(error);
            }
        }
    }

    fn journal_failed(&mut self, error: &JournalError) {
        self.stats.journal_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.journal_ok.store(false, Ordering::Relaxed);
        if !self.journal_failing {
            tracing::error!(
                error = %error,
                "ALERT JOURNAL FAILING: alerts are still delivered from memory, but those not yet delivered are lost if dshost stops"
            );
        }
        self.journal_failing = true;
    }

    /// Changes the running dispatcher from other threads.
    pub fn control(&self) -> DispatchControl {
        DispatchControl { commands: self.command_sender.clone() }
    }

    fn publish_sinks(&self) {
        self.stats.set_sinks(self.sinks.iter().map(|s| s.stats.clone()).collect());
    }

    fn journal_for_sinks(&self) -> Option<PathBuf> {
        self.journal_config.enabled.then(|| self.journal_path.clone())
    }

    fn apply_commands(&mut self) {
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Throttle { global, per_strategy } => {
                    self.throttle.reconfigure(global, per_strategy);
                    tracing::info!("alert throttle settings changed");
                }
                Command::ShutdownGrace(grace) => self.shutdown_grace = grace,
                Command::AddSink { config, reply } => {
                    let _ = reply.send(self.add_sink(&config));
                }
                Command::RemoveSink { name, reply } => {
                    let _ = reply.send(self.remove_sink(&name));
                }
                Command::ReplaceSink { config, reply } => {
                    // Between two batches, so no alert misses the sink's
                    // name in the journal; the new settings must build first.
                    let name = config.name();
                    let result = match config.build() {
                        Err(message) => Err(DispatchError::Sink { name, message }),
                        Ok(_) => self.remove_sink(&name).and_then(|()| self.add_sink(&config)),
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }

    fn add_sink(&mut self, config: &SinkConfig) -> Result<(), DispatchError> {
        let name = config.name();
        if self.sink_names.contains(&name) {
            return Err(DispatchError::DuplicateSink(name));
        }
        let sink = config.build().map_err(|message| DispatchError::Sink { name: name.clone(), message })?;
        let handle = SinkHandle::spawn(
            sink,
            worker_settings(config, self.journal_for_sinks(), self.snapshot_wait),
            self.update_sender.clone(),
        )
        .map_err(|source| DispatchError::Thread { name: name.clone(), source })?;
        self.sinks.push(handle);
        self.sink_names.push(name.clone());
        self.publish_sinks();
        self.replay_pending(Some(&name));
        tracing::info!(sink = %name, kind = config.kind(), "alert sink started");
        Ok(())
    }

    fn remove_sink(&mut self, name: &str) -> Result<(), DispatchError> {
        let Some(index) = self.sinks.iter().position(|s| s.name() == name) else {
            return Err(DispatchError::UnknownSink(name.to_string()));
        };
        let sink = self.sinks.remove(index);
        self.sink_names.retain(|n| n != name);
        self.publish_sinks();
        // No grace: what it has not delivered stays pending in the journal
        // (for a replacement of the same name, or the next start).
        sink.close(Duration::ZERO);
        sink.join();
        self.apply_updates();
        tracing::info!(sink = %name, "alert sink stopped");
        Ok(())
    }

    /// Queues what the journal holds undelivered (from an earlier run, or
    /// for a sink being replaced): for every sink, or only sink `only`.
    fn replay_pending(&mut self, only: Option<&str>) {
        let Some(journal) = &self.journal else { return };
        let mut total = 0;
        for sink in self.sinks.iter().filter(|s| only.is_none_or(|name| s.name() == name)) {
            let backlog = journal
                .pending_summary(sink.name())
                .and_then(|(count, last)| Ok((count, last, journal.pending(sink.name(), 0, sink.capacity())?)));
            match backlog {
                Ok((count, last, rows)) => {
                    total += count;
                    let now = Instant::now();
                    for (seq, alert) in rows {
                        sink.push(Some(seq), Arc::new(alert), None, now);
                    }
                    // The rest stays in the journal; the sink reads it in order.
                    sink.divert_up_to(last);
                }
                Err(error) => tracing::error!(sink = %sink.name(), error = %error, "cannot read undelivered alerts"),
            }
        }
        if total > 0 {
            self.stats.replayed.fetch_add(total as u64, Ordering::Relaxed);
            tracing::info!(
                deliveries = total,
                "sending alerts again that an earlier run journaled but did not deliver"
            );
        }
    }

    /// Throttles, journals and dispatches until every sender is gone, then
    /// gives the sinks `shutdown_grace` to finish. Returns how many alerts
    /// passed the throttle.
    pub fn run(mut self, alerts: Receiver<Alert>) -> u64 {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let received = Instant::now();
            let admitted = match alerts.recv_timeout(Duration::from_millis(200)) {
                Ok(alert) => {
                    batch.clear();
                    batch.push(alert);
                    while batch.len() < MAX_BATCH {
                        match alerts.try_recv() {
                            Ok(alert) => batch.push(alert),
                            Err(_) => break,
                        }
                    }
                    let now = Instant::now();
                    batch.drain(..).flat_map(|alert| self.throttle.admit(alert, now)).collect::<Vec<_>>()
                }
                Err(RecvTimeoutError::Timeout) => self.throttle.release_idle(Instant::now()),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.dispatch(admitted, received);
            for (reason, count) in self.throttle.suppressed() {
                self.stats.set_suppressed(*reason, *count);
            }
            self.apply_updates();
            self.apply_snapshots();
            self.apply_commands();
            if self.last_maintenance.elapsed() >= MAINTENANCE_EVERY {
                self.maintain();
            }
        }
        let rest = self.throttle.drain();
        self.dispatch(rest, Instant::now());
        // The encoders finish what is queued, so sinks waiting for pictures get them.
        drop(self.snapshots.take());
        for sink in &self.sinks {
            sink.close(self.shutdown_grace);
        }
        for sink in self.sinks.drain(..) {
            sink.join();
        }
        self.apply_updates();
        self.apply_snapshots();
        self.stats.emitted.load(Ordering::Relaxed)
    }

    fn dispatch(&mut self, admitted: Vec<Alert>, received: Instant) {
        if admitted.is_empty() {
            return;
        }
        self.stats.emitted.fetch_add(admitted.len() as u64, Ordering::Relaxed);
        if self.journal.is_none() && self.journal_config.enabled && self.last_open_attempt.elapsed() >= REOPEN_EVERY {
            self.open_journal();
        }
        let seqs = match self.journal.as_mut() {
            Some(journal) => {
                let refs: Vec<&Alert> = admitted.iter().collect();
                match journal.append(&refs, &self.sink_names) {
                    Ok(seqs) => {
                        if self.journal_failing {
                            self.journal_failing = false;
                            self.stats.journal_ok.store(true, Ordering::Relaxed);
                            tracing::info!("the alert journal accepts writes again");
                        }
                        self.stats.journaled.fetch_add(seqs.len() as u64, Ordering::Relaxed);
                        seqs.into_iter().map(Some).collect()
                    }
                    Err(error) => {
                        self.journal_failed(&error);
                        vec![None; admitted.len()]
                    }
                }
            }
            None => vec![None; admitted.len()],
        };
        for (alert, seq) in admitted.into_iter().zip(seqs) {
            let slot = self.snapshot(&alert, seq);
            let alert = Arc::new(alert);
            self.stats.feed.publish(&alert, slot.as_ref());
            for sink in &self.sinks {
                sink.push(seq, alert.clone(), slot.clone(), received);
            }
        }
    }

    /// Queues the alert's snapshot, if its frame is still in its source's
    /// ring and an encoder has room; never waits.
    fn snapshot(&self, alert: &Alert, seq: Option<i64>) -> Option<Arc<SnapshotSlot>> {
        let (pool, rings) = self.snapshots.as_ref()?;
        let Some(frame) = rings.get(&alert.source).and_then(|ring| ring.find(alert.frame)) else {
            pool.stats.skipped_no_frame.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        pool.submit(SnapshotJob {
            seq,
            alert_id: alert.id.clone(),
            frame,
            bbox: alert.bbox,
            label: alert.pattern.clone(),
            confidence: alert.confidence,
        })
    }

    /// Writes finished snapshots into their alerts' journal rows.
    fn apply_snapshots(&mut self) {
        let done: Vec<(i64, Snapshot)> = self.snapshots_done.try_iter().collect();
        let Some(journal) = self.journal.as_mut() else { return };
        for (seq, snapshot) in done {
            if let Err(error) = journal.set_snapshot(seq, &snapshot) {
                self.journal_failed(&error);
                return;
            }
        }
    }

    fn apply_updates(&mut self) {
        let updates: Vec<DeliveryUpdate> = self.updates.try_iter().collect();
        if updates.is_empty() {
            return;
        }
        let Some(journal) = self.journal.as_mut() else { return };
        if let Err(error) = journal.update(&updates) {
            // The alerts stay pending and are sent again at the next start:
            // a duplicate, never a loss.
            self.journal_failed(&error);
        }
    }

    fn maintain(&mut self) {
        self.last_maintenance = Instant::now();
        let Some(journal) = self.journal.as_mut() else { return };
        match journal.trim() {
            Ok(trimmed) => {
                if let Some(dir) = &self.snapshot_dir {
                    for id in &trimmed.ids {
                        super::snapshot::remove(dir, id);
                    }
                }
                if trimmed.undelivered > 0 {
                    self.stats.trimmed_undelivered.fetch_add(trimmed.undelivered, Ordering::Relaxed);
                    tracing::warn!(
                        undelivered = trimmed.undelivered,
                        "journal retention removed alerts that some sink never got (raise alerts.journal.max_mib or fix the sink)"
                    );
                }
                if trimmed.expired + trimmed.for_size > 0 {
                    tracing::info!(expired = trimmed.expired, for_size = trimmed.for_size, "journal retention");
                }
            }
            Err(error) => tracing::error!(error = %error, "journal retention failed"),
        }
    }
}
