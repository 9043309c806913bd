//! Hot-reload cost: time from writing a strategy file to the first frame
//! processed by the new build (through the real file watcher), cold (a build
//! never seen, so it is compiled) and cached (a build compiled before), and
//! process memory after 10 and after 1000 reloads.
//!
//! Run: `scripts/build-strategies.sh && cargo bench -p dshost --bench reload`

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dshost::alerts::Alert;
use dshost::config::{DetectorKind, PipelineConfig, RecoveryConfig, SourceConfig};
use dshost::frame::LabelTable;
use dshost::pipeline::SourceSpec;
use dshost::runtime::{Reloader, StrategySpec};
use dshost::runtime::{Runtime, RuntimeSettings};
use dshost::strategy::{EngineOptions, SandboxLimits, StrategyEngine};

fn strategies() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/strategies")
}

/// Resident set size of this process, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// A new build with identical behaviour (custom section appended).
fn rebuilt(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"dshost-bench-build";
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(body.len() as u8);
    out.extend(body);
    out
}

fn replace(target: &Path, bytes: &[u8]) {
    let tmp = target.with_extension("partial");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, target).expect("rename");
}

/// Waits for the first alert of `version` (drains older ones).
fn wait_version(alerts: &Receiver<Alert>, version: &str) -> Duration {
    let started = Instant::now();
    loop {
        match alerts.recv_timeout(Duration::from_secs(30)) {
            Ok(alert) if alert.strategy_version == version => return started.elapsed(),
            Ok(_) => {}
            Err(_) => panic!("no frame processed by {version} within 30 s"),
        }
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let marker_a = std::fs::read(strategies().join("marker_a.wasm"))?;
    let marker_b = std::fs::read(strategies().join("marker_b.wasm"))?;
    let cache = tempfile::tempdir()?;
    let engine = StrategyEngine::new(EngineOptions { cache_dir: Some(cache.path().to_path_buf()) })?;
    let (sender, alerts) = std::sync::mpsc::channel();
    let settings = RuntimeSettings {
        pipeline: PipelineConfig::default(),
        recovery: RecoveryConfig::default(),
        labels: Arc::new(LabelTable::coco()),
        rings: None,
        detector: None,
    };
    let runtime = Arc::new(Runtime::new(engine.clone(), settings, Vec::new(), sender)?);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("marker.wasm");
    std::fs::write(&path, &marker_a)?;
    let spec = StrategySpec {
        name: "marker".into(),
        path: path.clone(),
        config_json: "{}".into(),
        sources: Vec::new(),
        limits: SandboxLimits::default(),
    };
    let reloader = Arc::new(Mutex::new(Reloader::new(engine.clone(), runtime.clone())));
    reloader.lock().map_err(|_| anyhow::anyhow!("lock"))?.apply(spec, false)?;
    let source = SourceConfig {
        id: "cam".into(),
        uri: "test://ball?width=320&height=240&fps=200".into(),
        loop_file: false,
        realtime: true,
        rtsp: Default::default(),
        detector: None,
        decoder: None,
        detect: None,
        device_id: None,
    };
    runtime.add_source(SourceSpec::from_config(&source, DetectorKind::None)?)?;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = dshost::runtime::watch::spawn(reloader.clone(), None, stop.clone())?;
    let version = |bytes: &[u8]| -> anyhow::Result<String> {
        let loaded = engine.load_bytes("marker", bytes, &SandboxLimits::default())?;
        Ok(loaded.version.clone())
    };

    // Cold: every write is a build never compiled before.
    let mut cold = Vec::new();
    for i in 0..5 {
        let bytes = rebuilt(if i % 2 == 0 { &marker_b } else { &marker_a }, &format!("cold-{i}"));
        let written = Instant::now();
        replace(&path, &bytes);
        let expected = {
            // Compute the expected version without compiling twice: the tag
            // is in the hash, the describe version from the base build.
            let hash = dshost::strategy::ContentHash::of(&bytes).hex();
            let base = if i % 2 == 0 { "2.0.0" } else { "1.0.0" };
            format!("{base}+sha256:{}", &hash[..8])
        };
        wait_version(&alerts, &expected);
        cold.push(written.elapsed());
    }
    // Cached: alternate two builds that are already compiled.
    let (va, vb) = (version(&marker_a)?, version(&marker_b)?);
    let mut cached = Vec::new();
    for i in 0..20 {
        let (bytes, expected) = if i % 2 == 0 { (&marker_b, &vb) } else { (&marker_a, &va) };
        let written = Instant::now();
        replace(&path, bytes);
        wait_version(&alerts, expected);
        cached.push(written.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watcher.join();

    // Memory: reload directly (no watcher) 10, then 1000 times.
    let reload = |count: usize| -> anyhow::Result<()> {
        for i in 0..count {
            replace(&path, if i % 2 == 0 { &marker_b } else { &marker_a });
            let mut guard = reloader.lock().map_err(|_| anyhow::anyhow!("lock"))?;
            guard.reload("marker", false);
            while alerts.try_recv().is_ok() {}
        }
        Ok(())
    };
    reload(10)?;
    let after_10 = rss();
    reload(990)?;
    let after_1000 = rss();
    runtime.shutdown();

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("| measurement | value |");
    println!("|---|---:|");
    println!("| write -> first frame on new build, cold (compile), median of 5 | {:.1} ms |", ms(median(cold.clone())));
    println!("| same, cold, worst | {:.1} ms |", ms(cold.iter().copied().max().unwrap_or_default()));
    println!("| write -> first frame on new build, cached, median of 20 | {:.1} ms |", ms(median(cached.clone())));
    println!("| same, cached, worst | {:.1} ms |", ms(cached.iter().copied().max().unwrap_or_default()));
    println!("| RSS after 10 reloads | {:.1} MiB |", after_10 as f64 / 1048576.0);
    println!("| RSS after 1000 reloads | {:.1} MiB |", after_1000 as f64 / 1048576.0);
    println!("| growth per reload, 10 -> 1000 | {:.1} KiB |", (after_1000 as f64 - after_10 as f64) / 990.0 / 1024.0);
    Ok(())
}
