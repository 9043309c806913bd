//! The alert journal: every alert that passes the throttle is written to an
//! embedded SQLite database (WAL) before any sink sees it, with one delivery
//! row per sink. Sinks acknowledge; what is still pending at exit is sent
//! again at the next start (at-least-once; alert ids are stable so consumers
//! can de-duplicate).
//!
//! One writer (the alert dispatcher thread) owns a [`Journal`]; readers
//! (`dshost alerts list|tail`, a sink catching up after its queue overflowed)
//! open their own [`JournalReader`], which WAL lets run beside the writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::alert::Alert;

/// The journal's file name under the data directory.
pub const JOURNAL_FILE: &str = "alerts.db";
const SCHEMA_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open the alert journal {path}: {source} (check that the directory exists and is writable, or set alerts.journal.path)")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("the alert journal {path} is full: the disk or its size cap is exhausted ({source}); free space or lower alerts.journal.max_age / max_mib")]
    Full { path: PathBuf, source: rusqlite::Error },
    #[error("the alert journal {path} failed: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("the alert journal {path} was written by a newer dshost (schema {found}, this build knows {SCHEMA_VERSION}); upgrade dshost or point alerts.journal.path elsewhere")]
    NewerSchema { path: PathBuf, found: i64 },
    #[error("no alert journal at {0}: dshost has not journaled alerts with this data directory (use --data-dir or --journal)")]
    Missing(PathBuf),
    #[error("the alert journal {0} is in use by another running dshost; give each instance its own --data-dir or alerts.journal.path")]
    InUse(PathBuf),
}

/// How far the journal syncs to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Survives a crash of dshost (SIGKILL, panic); the last transactions may
    /// be lost if the machine loses power.
    #[default]
    Normal,
    /// fsync on every commit: survives power loss, costs a disk flush per batch.
    Full,
}

/// `alerts.journal` in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    pub enabled: bool,
    /// Database file; default `<data-dir>/alerts.db`.
    pub path: Option<PathBuf>,
    /// Alerts older than this are deleted, delivered or not. Seconds.
    pub max_age_seconds: u64,
    /// The database is trimmed (oldest alerts first) beyond this size.
    pub max_mib: u64,
    pub sync: SyncMode,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            enabled: true,
            path: None,
            max_age_seconds: 7 * 24 * 3600,
            max_mib: 256,
            sync: SyncMode::Normal,
        }
    }
}

impl JournalConfig {
    pub fn resolve_path(&self, data_dir: &Path) -> PathBuf {
        self.path.clone().unwrap_or_else(|| data_dir.join(JOURNAL_FILE))
    }
}

/// Delivery state of one alert at one sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// The sink refused it for good (e.g. HTTP 400); not retried.
    Rejected,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Rejected => "rejected",
        }
    }

    fn parse(text: &str) -> DeliveryState {
        match text {
            "delivered" => DeliveryState::Delivered,
            "rejected" => DeliveryState::Rejected,
            _ => DeliveryState::Pending,
        }
    }
}

/// A sink's report about one journaled alert.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryUpdate {
    pub seq: i64,
    pub sink: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub error: Option<String>,
}

/// What retention removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Trimmed {
    pub expired: u64,
    /// Removed for size; `undelivered` of them had not reached every sink.
    pub for_size: u64,
    pub undelivered: u64,
    /// Ids of the alerts removed (their snapshots go with them).
    pub ids: Vec<String>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn is_full(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(rusqlite::ErrorCode::DiskFull))
}

/// The writer side.
pub struct Journal {
    path: PathBuf,
    conn: Connection,
    max_age: Duration,
    max_bytes: u64,
    /// Declared before the lock so it finishes before the lock is released.
    checkpointer: Option<Checkpointer>,
    clock: Arc<WriteClock>,
    epoch: Instant,
    /// Held (flock) while open: two writers would send each other's
    /// pending alerts.
    _lock: std::fs::File,
}

/// Copies the WAL into the database on its own thread and connection.
/// SQLite's automatic checkpoint runs inside a commit and fsyncs, which put
/// 15-20 ms into the p99 of alert delivery on the dispatcher thread; even a
/// passive checkpoint beside the writer stalls its WAL writes for
/// milliseconds while it syncs (docs/benchmarks.md). So checkpoints wait for
/// a quiet moment (no write for `QUIET`), and happen anyway after `AT_MOST`
/// with writes pending, which bounds the WAL under sustained load.
struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Writes since the last checkpoint and when the last one happened.
#[derive(Default)]
struct WriteClock {
    pending: AtomicU64,
    /// Milliseconds since `epoch` of the last write.
    last_write_ms: AtomicU64,
}

impl Checkpointer {
    const TICK: Duration = Duration::from_millis(100);
    const QUIET: Duration = Duration::from_millis(500);
    const AT_MOST: Duration = Duration::from_secs(10);

    fn start(path: &Path, clock: Arc<WriteClock>, epoch: Instant) -> Option<Checkpointer> {
        let conn = Connection::open(path).ok()?;
        conn.busy_timeout(Duration::from_secs(5)).ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("journal-checkpoint".into())
            .spawn(move || {
                let mut last_checkpoint = Instant::now();
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(Self::TICK);
                    if clock.pending.load(Ordering::Relaxed) == 0 {
                        continue;
                    }
                    let since_write = epoch
                        .elapsed()
                        .saturating_sub(Duration::from_millis(clock.last_write_ms.load(Ordering::Relaxed)));
                    if since_write < Self::QUIET && last_checkpoint.elapsed() < Self::AT_MOST {
                        continue;
                    }
                    clock.pending.store(0, Ordering::Relaxed);
                    last_checkpoint = Instant::now();
                    if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(journal = %shown, error = %error, "journal checkpoint failed; retrying");
                        clock.pending.store(1, Ordering::Relaxed);
                    }
                }
                // At exit, fold the whole WAL back so the files stay small.
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            })
            .ok()?;
        Some(Checkpointer { stop, thread: Some(thread) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Journal {
    pub fn open(path: &Path, config: &JournalConfig) -> Result<Journal, JournalError> {
        let open_error = |source| JournalError::Open { path: path.to_path_buf(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Err(error) = std::fs::create_dir_all(parent) {
                return Err(open_error(rusqlite::Error::ToSqlConversionFailure(Box::new(error))));
            }
        }
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| open_error(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(JournalError::InUse(path.to_path_buf())),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(open_error(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))
            }
        }
        let conn = Connection::open(path).map_err(open_error)?;
        let setup = format!(
            "PRAGMA auto_vacuum = INCREMENTAL;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {};
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;
             PRAGMA wal_autocheckpoint = 0;",
            match config.sync {
                SyncMode::Normal => "NORMAL",
                SyncMode::Full => "FULL",
            }
        );
        conn.execute_batch(&setup).map_err(open_error)?;
        let mut journal = Journal {
            path: path.to_path_buf(),
            conn,
            max_age: Duration::from_secs(config.max_age_seconds),
            max_bytes: config.max_mib.saturating_mul(1024 * 1024),
            checkpointer: None,
            clock: Arc::new(WriteClock::default()),
            epoch: Instant::now(),
            _lock: lock,
        };
        journal.migrate()?;
        journal.checkpointer = Checkpointer::start(path, journal.clock.clone(), journal.epoch);
        if journal.checkpointer.is_none() {
            // Without it the WAL would only grow: let SQLite checkpoint inline.
            journal.conn.execute_batch("PRAGMA wal_autocheckpoint = 1000;").map_err(|e| classify(path, e))?;
        }
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&self) -> Result<(), JournalError> {
        let version: i64 =
            self.conn.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(|e| classify(&self.path, e))?;
        if version > SCHEMA_VERSION {
            return Err(JournalError::NewerSchema { path: self.path.clone(), found: version });
        }
        self.conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS alerts (
                     seq INTEGER PRIMARY KEY AUTOINCREMENT,
                     id TEXT NOT NULL,
                     created_ms INTEGER NOT NULL,
                     source TEXT NOT NULL,
                     strategy TEXT NOT NULL,
                     pattern TEXT NOT NULL,
                     json TEXT NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS deliveries (
                     seq INTEGER NOT NULL REFERENCES alerts(seq) ON DELETE CASCADE,
                     sink TEXT NOT NULL,
                     state TEXT NOT NULL,
                     attempts INTEGER NOT NULL DEFAULT 0,
                     updated_ms INTEGER NOT NULL,
                     error TEXT,
                     PRIMARY KEY (seq, sink)
                 ) WITHOUT ROWID;
                 CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (sink, seq) WHERE state = 'pending';
                 CREATE INDEX IF NOT EXISTS alerts_created ON alerts (created_ms);
                 PRAGMA user_version = 1;",
            )
            .map_err(|e| classify(&self.path, e))
    }

    /// Writes alerts with a pending delivery row per sink, in one
    /// transaction; returns their sequence numbers in order.
    pub fn append(&mut self, alerts: &[&Alert], sinks: &[String]) -> Result<Vec<i64>, JournalError> {
        let now = now_ms();
        let tx = self.conn.transaction().map_err(|e| classify(&self.path, e))?;
        let mut seqs = Vec::with_capacity(alerts.len());
        {
            let mut insert_alert = tx
                .prepare_cached(
                    "INSERT INTO alerts (id, created_ms, source, strategy, pattern, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(|e| classify(&self.path, e))?;
            let mut insert_delivery = tx
                .prepare_cached(
                    "INSERT INTO deliveries (seq, sink, state, attempts, updated_ms) VALUES (?1, ?2, 'pending', 0, ?3)",
                )
                .map_err(|e| classify(&self.path, e))?;
            for alert in alerts {
                insert_alert
                    .execute(params![alert.id, now, alert.source, alert.strategy, alert.pattern, alert.to_json_line()])
                    .map_err(|e| classify(&self.path, e))?;
                let seq = tx.last_insert_rowid();
                for sink in sinks {
                    insert_delivery.execute(params![seq, sink, now]).map_err(|e| classify(&self.path, e))?;
                }
                seqs.push(seq);
            }
        }
        tx.commit().map_err(|e| classify(&self.path, e))?;
        self.wrote();
        Ok(seqs)
    }

    /// Records what sinks reported, in one transaction.
    pub fn update(&mut self, updates: &[DeliveryUpdate]) -> Result<(), JournalError> {
        if updates.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let tx = self.conn.transaction().map_err(|e| classify(&self.path, e))?;
        {
            let mut statement = tx
                .prepare_cached(
                    "UPDATE deliveries SET state = ?1, attempts = ?2, updated_ms = ?3, error = ?4 WHERE seq = ?5 AND sink = ?6",
                )
                .map_err(|e| classify(&self.path, e))?;
            for u in updates {
                statement
                    .execute(params![u.state.as_str(), u.attempts, now, u.error, u.seq, u.sink])
                    .map_err(|e| classify(&self.path, e))?;
            }
        }
        tx.commit().map_err(|e| classify(&self.path, e))?;
        self.wrote();
        Ok(())
    }

    fn wrote(&self) {
        self.clock.last_write_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.clock.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// Deletes alerts past their age, then the oldest until the database is
    /// under its size cap.
    pub fn trim(&mut self) -> Result<Trimmed, JournalError> {
        let mut trimmed = Trimmed::default();
        let cutoff = now_ms() - self.max_age.as_millis() as i64;
        let expired = self.delete_returning_ids("DELETE FROM alerts WHERE created_ms < ?1 RETURNING id", cutoff)?;
        trimmed.expired = expired.len() as u64;
        trimmed.ids.extend(expired);
        for _ in 0..64 {
            if self.used_bytes()? <= self.max_bytes {
                break;
            }
            let count: i64 = self
                .conn
                .query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))
                .map_err(|e| classify(&self.path, e))?;
            if count == 0 {
                break;
            }
            // A tenth at a time: few passes, and little more removed than needed.
            let batch = (count / 10).max(1);
            let undelivered: i64 = self
                .conn
                .query_row(
                    "SELECT count(DISTINCT d.seq) FROM deliveries d
                     WHERE d.state = 'pending' AND d.seq IN (SELECT seq FROM alerts ORDER BY seq LIMIT ?1)",
                    params![batch],
                    |r| r.get(0),
                )
                .map_err(|e| classify(&self.path, e))?;
            let removed = self.delete_returning_ids(
                "DELETE FROM alerts WHERE seq IN (SELECT seq FROM alerts ORDER BY seq LIMIT ?1) RETURNING id",
                batch,
            )?;
            trimmed.for_size += removed.len() as u64;
            trimmed.ids.extend(removed);
            trimmed.undelivered += undelivered as u64;
        }
        if trimmed.expired + trimmed.for_size > 0 {
            self.conn.execute_batch("PRAGMA incremental_vacuum;").map_err(|e| classify(&self.path, e))?;
        }
        Ok(trimmed)
    }

    fn delete_returning_ids(&self, sql: &str, value: i64) -> Result<Vec<String>, JournalError> {
        let mut statement = self.conn.prepare(sql).map_err(|e| classify(&self.path, e))?;
        let ids = statement
            .query_map(params![value], |row| row.get::<_, String>(0))
            .map_err(|e| classify(&self.path, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| classify(&self.path, e))?;
        Ok(ids)
    }

    /// Adds an alert's snapshot to its journaled JSON (it is encoded after
    /// the alert was written).
    pub fn set_snapshot(&mut self, seq: i64, snapshot: &super::snapshot::Snapshot) -> Result<(), JournalError> {
        let json = serde_json::to_string(snapshot).unwrap_or_default();
        self.conn
            .execute(
                "UPDATE alerts SET json = json_set(json, '$.snapshot', json(?1)) WHERE seq = ?2",
                params![json, seq],
            )
            .map_err(|e| classify(&self.path, e))?;
        self.wrote();
        Ok(())
    }

    /// Bytes in use (pages minus free pages).
    pub fn used_bytes(&self) -> Result<u64, JournalError> {
        let pragma = |name: &str| -> Result<i64, JournalError> {
            self.conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).map_err(|e| classify(&self.path, e))
        };
        let used = pragma("page_count")? - pragma("freelist_count")?;
        Ok((used.max(0) as u64) * pragma("page_size")? as u64)
    }

    /// Hard cap on the database size in pages (SQLite then answers "full"):
    /// for tests of the full-disk path.
    #[cfg(test)]
    fn set_max_page_count(&self, pages: u32) -> Result<(), JournalError> {
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(|e| classify(&self.path, e))
    }

    /// How many deliveries a sink has pending, and the newest one's seq.
    pub fn pending_summary(&self, sink: &str) -> Result<(usize, i64), JournalError> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(max(seq), 0) FROM deliveries WHERE sink = ?1 AND state = 'pending'",
                params![sink],
                |row| Ok((row.get::<_, i64>(0)? as usize, row.get::<_, i64>(1)?)),
            )
            .map_err(|e| classify(&self.path, e))
    }

    /// Pending deliveries for one sink after `after_seq`, oldest first.
    pub fn pending(&self, sink: &str, after_seq: i64, limit: usize) -> Result<Vec<(i64, Alert)>, JournalError> {
        pending(&self.conn, &self.path, sink, after_seq, limit)
    }
}

fn classify(path: &Path, source: rusqlite::Error) -> JournalError {
    if is_full(&source) {
        JournalError::Full { path: path.to_path_buf(), source }
    } else {
        JournalError::Sqlite { path: path.to_path_buf(), source }
    }
}

fn pending(
    conn: &Connection,
    path: &Path,
    sink: &str,
    after_seq: i64,
    limit: usize,
) -> Result<Vec<(i64, Alert)>, JournalError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT a.seq, a.json FROM deliveries d JOIN alerts a ON a.seq = d.seq
             WHERE d.sink = ?1 AND d.state = 'pending' AND d.seq > ?2 ORDER BY d.seq LIMIT ?3",
        )
        .map_err(|e| classify(path, e))?;
    let rows = statement
        .query_map(params![sink, after_seq, limit as i64], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))
        .map_err(|e| classify(path, e))?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, json) = row.map_err(|e| classify(path, e))?;
        match serde_json::from_str::<Alert>(&json) {
            Ok(alert) => out.push((seq, alert)),
            // A row no build of ours wrote; skipping it beats stalling the sink.
            Err(error) => tracing::error!(seq, error = %error, "unreadable alert in the journal; skipped"),
        }
    }
    Ok(out)
}

/// One journaled alert with its delivery state per sink.
#[derive(Debug, Clone, Serialize)]
pub struct JournalEntry {
    pub seq: i64,
    #[serde(flatten)]
    pub alert: Alert,
    /// Sink name -> state.
    pub delivery: std::collections::BTreeMap<String, DeliveryInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryInfo {
    pub state: DeliveryState,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Filters for [`JournalReader::entries`].
#[derive(Debug, Default, Clone)]
pub struct EntryFilter {
    pub after_seq: i64,
    pub source: Option<String>,
    pub strategy: Option<String>,
    pub pattern: Option<String>,
    /// Only alerts with at least one delivery in this state.
    pub state: Option<DeliveryState>,
    /// Newest `limit` (in ascending order) when set.
    pub last: Option<usize>,
}

/// Read-only access beside a running writer.
pub struct JournalReader {
    path: PathBuf,
    conn: Connection,
}

impl JournalReader {
    pub fn open(path: &Path) -> Result<JournalReader, JournalError> {
        if !path.exists() {
            return Err(JournalError::Missing(path.to_path_buf()));
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|source| JournalError::Open { path: path.to_path_buf(), source })?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(|e| classify(path, e))?;
        Ok(JournalReader { path: path.to_path_buf(), conn })
    }

    pub fn pending(&self, sink: &str, after_seq: i64, limit: usize) -> Result<Vec<(i64, Alert)>, JournalError> {
        pending(&self.conn, &self.path, sink, after_seq, limit)
    }

    /// Whether the writer has created the tables yet: a reader opened while
    /// a new journal is being set up sees an empty journal, not an error.
    fn has_tables(&self) -> Result<bool, JournalError> {
        self.conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n > 0)
            .map_err(|e| classify(&self.path, e))
    }

    pub fn last_seq(&self) -> Result<i64, JournalError> {
        if !self.has_tables()? {
            return Ok(0);
        }
        self.conn
            .query_row("SELECT max(seq) FROM alerts", [], |r| r.get::<_, Option<i64>>(0))
            .optional()
            .map(|v| v.flatten().unwrap_or(0))
            .map_err(|e| classify(&self.path, e))
    }

    /// Alerts with their delivery states, oldest first.
    pub fn entries(&self, filter: &EntryFilter) -> Result<Vec<JournalEntry>, JournalError> {
        if !self.has_tables()? {
            return Ok(Vec::new());
        }
        let mut sql = String::from("SELECT seq, json FROM alerts a WHERE seq > ?1");
        let mut values: Vec<rusqlite::types::Value> = vec![filter.after_seq.into()];
        if let Some(source) = &filter.source {
            values.push(source.clone().into());
            sql.push_str(&format!(" AND source = ?{}", values.len()));
        }
        if let Some(strategy) = &filter.strategy {
            values.push(strategy.clone().into());
            sql.push_str(&format!(" AND strategy = ?{}", values.len()));
        }
        if let Some(pattern) = &filter.pattern {
            values.push(pattern.clone().into());
            sql.push_str(&format!(" AND pattern = ?{}", values.len()));
        }
        if let Some(state) = filter.state {
            values.push(state.as_str().to_string().into());
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = a.seq AND d.state = ?{})",
                values.len()
            ));
        }
        match filter.last {
            Some(last) => sql = format!("SELECT * FROM ({sql} ORDER BY seq DESC LIMIT {last}) ORDER BY seq"),
            None => sql.push_str(" ORDER BY seq"),
        }
        let mut statement = self.conn.prepare(&sql).map_err(|e| classify(&self.path, e))?;
        let rows = statement
            .query_map(rusqlite::params_from_iter(values), |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))
            .map_err(|e| classify(&self.path, e))?;
        let mut entries = Vec::new();
        for row in rows {
            let (seq, json) = row.map_err(|e| classify(&self.path, e))?;
            let Ok(alert) = serde_json::from_str::<Alert>(&json) else { continue };
            entries.push(JournalEntry { seq, alert, delivery: Default::default() });
        }
        let mut deliveries = self
            .conn
            .prepare_cached("SELECT sink, state, attempts, error FROM deliveries WHERE seq = ?1 ORDER BY sink")
            .map_err(|e| classify(&self.path, e))?;
        for entry in &mut entries {
            let rows = deliveries
                .query_map(params![entry.seq], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        DeliveryInfo {
                            state: DeliveryState::parse(&row.get::<_, String>(1)?),
                            attempts: row.get(2)?,
                            error: row.get(3)?,
                        },
                    ))
                })
                .map_err(|e| classify(&self.path, e))?;
            for row in rows {
                let (sink, info) = row.map_err(|e| classify(&self.path, e))?;
                entry.delivery.insert(sink, info);
            }
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::alert::{AlertBox, AlertLevel};

    fn alert(n: u64) -> Alert {
        Alert {
            id: format!("{n:032x}"),
            ts: "2026-11-26T10:00:00.123Z".into(),
            source: if n.is_multiple_of(2) { "cam-1".into() } else { "cam-2".into() },
            frame: n,
            pts_ns: n * 33_000_000,
            strategy: "yolo_filter".into(),
            strategy_version: "0.1.0+sha256:3f2a9c1e".into(),
            pattern: "person".into(),
            confidence: 0.9,
            bbox: AlertBox { left: 1.0, top: 2.0, width: 3.0, height: 4.0 },
            object_id: Some(n),
            level: AlertLevel::Medium,
            attributes: Default::default(),
            snapshot: None,
        }
    }

    fn sinks() -> Vec<String> {
        vec!["jsonl".into(), "mqtt".into()]
    }

    #[test]
    fn append_update_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.db");
        let mut journal = Journal::open(&path, &JournalConfig::default()).unwrap();
        let alerts: Vec<Alert> = (0..5).map(alert).collect();
        let refs: Vec<&Alert> = alerts.iter().collect();
        let seqs = journal.append(&refs, &sinks()).unwrap();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        journal
            .update(&[
                DeliveryUpdate {
                    seq: 2,
                    sink: "mqtt".into(),
                    state: DeliveryState::Delivered,
                    attempts: 3,
                    error: None,
                },
                DeliveryUpdate {
                    seq: 3,
                    sink: "jsonl".into(),
                    state: DeliveryState::Rejected,
                    attempts: 1,
                    error: Some("HTTP 400".into()),
                },
            ])
            .unwrap();
        let pending: Vec<i64> = journal.pending("mqtt", 0, 10).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(pending, vec![1, 3, 4, 5]);
        let after: Vec<i64> = journal.pending("jsonl", 3, 10).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(after, vec![4, 5]);

        let reader = JournalReader::open(&path).unwrap();
        assert_eq!(reader.last_seq().unwrap(), 5);
        let entries = reader.entries(&EntryFilter::default()).unwrap();
        assert_eq!(entries.len(), 5);
        assert_eq!(entries[1].alert, alerts[1]);
        assert_eq!(entries[1].delivery["mqtt"].state, DeliveryState::Delivered);
        assert_eq!(entries[1].delivery["mqtt"].attempts, 3);
        assert_eq!(entries[2].delivery["jsonl"].error.as_deref(), Some("HTTP 400"));
        let cam1 = reader.entries(&EntryFilter { source: Some("cam-1".into()), ..Default::default() }).unwrap();
        assert_eq!(cam1.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 3, 5]);
        let last2 = reader.entries(&EntryFilter { last: Some(2), ..Default::default() }).unwrap();
        assert_eq!(last2.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
        let rejected =
            reader.entries(&EntryFilter { state: Some(DeliveryState::Rejected), ..Default::default() }).unwrap();
        assert_eq!(rejected.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3]);
        let person = |pattern: &str| EntryFilter {
            source: Some("cam-2".into()),
            pattern: Some(pattern.into()),
            last: Some(1),
            ..Default::default()
        };
        assert_eq!(reader.entries(&person("person")).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4]);
        assert!(reader.entries(&person("car")).unwrap().is_empty());
    }

    #[test]
    fn survives_reopen_and_keeps_sequence_numbers_after_trimming() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.db");
        let config = JournalConfig { max_age_seconds: 0, ..Default::default() };
        {
            let mut journal = Journal::open(&path, &config).unwrap();
            let a = alert(1);
            journal.append(&[&a, &a], &sinks()).unwrap();
        }
        let mut journal = Journal::open(&path, &config).unwrap();
        assert_eq!(journal.pending("jsonl", 0, 10).unwrap().len(), 2);
        std::thread::sleep(Duration::from_millis(5));
        let trimmed = journal.trim().unwrap();
        assert_eq!(trimmed.expired, 2);
        assert!(journal.pending("jsonl", 0, 10).unwrap().is_empty(), "deliveries go with their alert");
        let a = alert(2);
        // AUTOINCREMENT: a trimmed sequence number is never handed out again,
        // so a reader's cursor stays valid.
        assert_eq!(journal.append(&[&a], &sinks()).unwrap(), vec![3]);
    }

    #[test]
    fn trims_oldest_first_to_the_size_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.db");
        let mut journal = Journal::open(&path, &JournalConfig { max_mib: 1, ..Default::default() }).unwrap();
        let mut big = alert(0);
        big.attributes.insert("note".into(), "x".repeat(1000));
        let batch: Vec<&Alert> = std::iter::repeat_n(&big, 100).collect();
        for _ in 0..30 {
            journal.append(&batch, &sinks()).unwrap();
        }
        assert!(journal.used_bytes().unwrap() > 1024 * 1024);
        let trimmed = journal.trim().unwrap();
        assert!(trimmed.for_size > 0);
        assert_eq!(trimmed.undelivered, trimmed.for_size, "none had been delivered");
        assert!(journal.used_bytes().unwrap() <= 1024 * 1024);
        let oldest = journal.pending("jsonl", 0, 1).unwrap()[0].0;
        assert_eq!(oldest, trimmed.for_size as i64 + 1, "the oldest went first");
    }

    #[test]
    fn a_full_journal_is_a_typed_error_that_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.db");
        let mut journal = Journal::open(&path, &JournalConfig::default()).unwrap();
        journal.set_max_page_count(16).unwrap();
        let mut big = alert(0);
        big.attributes.insert("note".into(), "x".repeat(1000));
        let batch: Vec<&Alert> = std::iter::repeat_n(&big, 50).collect();
        let error = (0..100).find_map(|_| journal.append(&batch, &sinks()).err()).expect("must fill up");
        assert!(matches!(error, JournalError::Full { .. }), "{error}");
        assert!(error.to_string().contains("free space"), "{error}");
    }

    #[test]
    fn unopenable_and_missing_journals_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"not a directory").unwrap();
        let error = Journal::open(&file.join("alerts.db"), &JournalConfig::default()).err().unwrap();
        assert!(error.to_string().contains("plain-file"), "{error}");
        let error = JournalReader::open(&dir.path().join("none.db")).err().unwrap();
        assert!(matches!(error, JournalError::Missing(_)));
        let path = dir.path().join("alerts.db");
        let _first = Journal::open(&path, &JournalConfig::default()).unwrap();
        let error = Journal::open(&path, &JournalConfig::default()).err().unwrap();
        assert!(matches!(error, JournalError::InUse(_)), "{error}");
        assert!(JournalReader::open(&path).is_ok(), "readers are welcome beside the writer");
    }

    #[test]
    fn a_reader_beside_a_journal_being_created_sees_it_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.db");
        // The file exists before the writer has made its tables.
        Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 0;").unwrap();
        let reader = JournalReader::open(&path).unwrap();
        assert!(reader.entries(&EntryFilter::default()).unwrap().is_empty());
        assert_eq!(reader.last_seq().unwrap(), 0);
    }
}
