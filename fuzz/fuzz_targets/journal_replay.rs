//! The journal's replay path: a row of the SQLite journal (written by an
//! earlier run, or damaged) is read back as a pending delivery and encoded
//! for the sinks. Unreadable rows are skipped, readable ones must encode and
//! read back as the same alert.
#![no_main]

use std::sync::{Mutex, OnceLock};

use dshost::alerts::journal::Journal;
use dshost::alerts::sinks::PayloadFormat;
use dshost::alerts::{Alert, JournalConfig};
use libfuzzer_sys::fuzz_target;

struct Db {
    _dir: std::path::PathBuf,
    journal: Journal,
    raw: rusqlite::Connection,
}

fn db() -> &'static Mutex<Db> {
    static DB: OnceLock<Mutex<Db>> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dshost-fuzz-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("alerts.db");
        let journal = Journal::open(&path, &JournalConfig::default()).expect("journal");
        let raw = rusqlite::Connection::open(&path).expect("second connection");
        Mutex::new(Db { _dir: dir, journal, raw })
    })
}

fuzz_target!(|data: &[u8]| {
    let json = String::from_utf8_lossy(data);
    let Ok(db) = db().lock() else { return };
    let inserted = db.raw.execute(
        "INSERT INTO alerts (id, created_ms, source, strategy, pattern, json) VALUES ('x', 0, 's', 't', 'p', ?1)",
        [json.as_ref()],
    );
    if inserted.is_err() {
        return;
    }
    let seq = db.raw.last_insert_rowid();
    db.raw
        .execute("INSERT INTO deliveries (seq, sink, state, updated_ms) VALUES (?1, 'fuzz', 'pending', 0)", [seq])
        .expect("delivery row");
    let pending = db.journal.pending("fuzz", seq - 1, 16).expect("the replay query itself must not fail");
    assert!(pending.len() <= 1);
    for (got, alert) in pending {
        assert_eq!(got, seq);
        let line = PayloadFormat::Dshost.encode(&alert);
        let back: Alert = serde_json::from_slice(&line).expect("an alert we read must encode readably");
        assert_eq!(PayloadFormat::Dshost.encode(&back), line);
        let _ = PayloadFormat::Deepstream.encode(&alert);
        let _ = dshost::alerts::sinks::console::readable(&alert);
        let _ =
            dshost::alerts::sinks::fill_template("a/{source}/{pattern}/{strategy}/{level}", &alert, |s| s.to_string());
    }
    db.raw.execute("DELETE FROM alerts", []).expect("cleanup");
});
