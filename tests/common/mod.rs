//! Shared setup for end-to-end tests: the strategy components (built once
//! per test process with the same script users run) and a strategy engine
//! with a compile cache shared between tests.
#![allow(dead_code)]

pub mod alert_path;
pub mod brokers;
pub mod media;
pub mod models;
pub mod pki;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use dshost::strategy::{EngineOptions, StrategyEngine};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// `target/strategies/`, with every strategy and test guest built. The
/// build script is incremental, so this costs about a second when nothing
/// changed.
pub fn strategies_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let status = Command::new("bash")
            .arg(root.join("scripts/build-strategies.sh"))
            .status()
            .expect("cannot run scripts/build-strategies.sh");
        assert!(status.success(), "scripts/build-strategies.sh failed");
        root.join("target/strategies")
    })
}

pub fn strategy(name: &str) -> PathBuf {
    strategies_dir().join(format!("{name}.wasm"))
}

pub fn strategy_bytes(name: &str) -> Vec<u8> {
    std::fs::read(strategy(name)).expect("strategy component missing")
}

/// A process-wide engine whose compile cache lives under `target/`, so a
/// component is compiled once across test runs.
pub fn engine() -> Arc<StrategyEngine> {
    static ENGINE: OnceLock<Arc<StrategyEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let cache_dir = repo_root().join("target/test-cache/strategies");
            StrategyEngine::new(EngineOptions { cache_dir: Some(cache_dir) }).expect("engine")
        })
        .clone()
}

/// A journal file of its own for one dshost process. Tests share data
/// directories (for the compiled-strategy cache), but a journal belongs to
/// one running dshost: it is locked, and a second instance would otherwise
/// send the first one's pending alerts. Pass it as
/// `DSHOST_ALERTS__JOURNAL__PATH`.
pub fn unique_journal() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    repo_root().join(format!("target/test-cache/journals/{}-{n}/alerts.db", std::process::id()))
}

/// Path of the `dshost` binary under test.
pub fn dshost_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dshost"))
}

pub fn fixture(path: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(path)
}
