//! The alert path as `dshost run` builds it (throttle, journal, sinks) for
//! one `alerts:` section, fed alerts directly; and the CLI's view of a
//! journal.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dshost::alerts::{Alert, AlertStats, Dispatcher, DispatcherSettings, SinkStats, Throttle};
use serde_json::Value;

pub struct AlertPath {
    pub sender: std::sync::mpsc::Sender<Alert>,
    thread: std::thread::JoinHandle<u64>,
    pub stats: Arc<AlertStats>,
}

/// Starts the dispatcher for `alerts_yaml` (the `alerts:` section as the
/// config loader reads it; its cross-checks, e.g. that throttled strategies
/// exist, are tested elsewhere) with its journal at `journal`.
pub fn start(alerts_yaml: &str, journal: &Path) -> AlertPath {
    // The sinks' errors in the test output (shown when a test fails).
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let alerts: serde_yaml::Value = serde_yaml::from_str(alerts_yaml).unwrap();
    let config: dshost::config::Config = serde_yaml::from_value(serde_yaml::Value::Mapping(
        [(serde_yaml::Value::from("alerts"), alerts)].into_iter().collect(),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    for sink in &config.alerts.sinks {
        assert_eq!(sink.validate(), Vec::new(), "the test's own sink config must be valid");
    }
    let stats = Arc::new(AlertStats::default());
    let settings = DispatcherSettings {
        snapshots: None,
        throttle: Throttle::new(config.alerts.throttle.clone(), config.alerts.strategies.clone()),
        journal: config.alerts.journal.clone(),
        journal_path: journal.to_path_buf(),
        sinks: config.alerts.sinks.clone(),
        shutdown_grace: Duration::from_secs_f64(config.alerts.shutdown_grace_seconds),
    };
    let dispatcher = Dispatcher::start(settings, stats.clone()).unwrap_or_else(|e| panic!("{e}"));
    let (sender, receiver) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || dispatcher.run(receiver));
    AlertPath { sender, thread, stats }
}

impl AlertPath {
    /// One counter of sink `name` (0 before the sink reported any).
    pub fn counter(&self, name: &str, which: fn(&SinkStats) -> u64) -> u64 {
        self.stats.sink(name).map(|s| which(&s)).unwrap_or(0)
    }

    pub fn wait(&self, what: &str, mut done: impl FnMut(&AlertPath) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_delivered(&self, name: &str, count: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.counter(name, delivered) < count {
            assert!(
                Instant::now() < deadline,
                "sink {name}: {} of {count} delivered after {timeout:?}",
                self.counter(name, delivered)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Closes the input and waits for the dispatcher: the alerts it
    /// admitted, and the stats.
    pub fn finish(self) -> (u64, Arc<AlertStats>) {
        drop(self.sender);
        (self.thread.join().unwrap(), self.stats)
    }
}

pub fn delivered(s: &SinkStats) -> u64 {
    s.delivered.load(Ordering::Relaxed)
}

pub fn failures(s: &SinkStats) -> u64 {
    s.failures.load(Ordering::Relaxed)
}

/// `dshost --data-dir DIR` with warnings only.
pub fn dshost(data_dir: &Path) -> Command {
    let mut command = Command::new(super::dshost_bin());
    command.arg("--data-dir").arg(data_dir).env("RUST_LOG", "warn");
    command
}

/// The journal as `dshost alerts list --json` prints it.
pub fn journal_json(data_dir: &Path) -> Vec<Value> {
    let output = dshost(data_dir).args(["alerts", "list", "--json"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}
