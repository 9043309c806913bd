//! Watches strategy files (and the config file) and triggers reloads: a
//! strategy file change reloads the strategies using it; a config file
//! change calls the caller's hook (the service applies the file's diff
//! through its `Control`).
//!
//! Parent directories are watched, not the files: editors and build tools
//! replace files by renaming, which a watch on the file itself would miss.
//! Events are debounced; the reload path hashes the content, so writes that
//! change nothing cost nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use super::control::lock_reloader as lock;
use super::strategies::Reloader;

/// Quiet time that ends a burst of file events.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// A burst longer than this is handled anyway.
const MAX_BURST: Duration = Duration::from_millis(500);

/// The config file to watch, and what to do when it changes.
pub struct ConfigWatch {
    pub path: PathBuf,
    pub on_change: Box<dyn Fn() + Send>,
}

/// Starts the watcher thread.
pub fn spawn(
    reloader: Arc<Mutex<Reloader>>,
    config: Option<ConfigWatch>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, notify::Error> {
    let (sender, events) = channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if !matches!(event.kind, notify::EventKind::Access(_)) {
                for path in event.paths {
                    let _ = sender.send(path);
                }
            }
        }
    })?;
    let config_path = config.as_ref().map(|c| std::path::absolute(&c.path).unwrap_or_else(|_| c.path.clone()));
    let on_change = config.map(|c| c.on_change);
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    let mut watch_dirs = move |watcher: &mut notify::RecommendedWatcher, dirs: Vec<PathBuf>| {
        for dir in dirs {
            if watched.insert(dir.clone()) {
                if let Err(error) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %dir.display(), error = %error, "cannot watch for strategy changes");
                }
            }
        }
    };
    let initial = lock(&reloader).watched_dirs();
    watch_dirs(&mut watcher, initial);
    if let Some(dir) = config_path.as_ref().and_then(|p| p.parent()) {
        watch_dirs(&mut watcher, vec![dir.to_path_buf()]);
    }
    std::thread::Builder::new()
        .name("strategy-watch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let first = match events.recv_timeout(Duration::from_millis(200)) {
                    Ok(path) => path,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                let mut changed = BTreeSet::from([first]);
                let burst = Instant::now();
                while burst.elapsed() < MAX_BURST {
                    match events.recv_timeout(DEBOUNCE) {
                        Ok(path) => {
                            changed.insert(path);
                        }
                        Err(_) => break,
                    }
                }
                let config_changed = config_path.as_ref().is_some_and(|p| changed.contains(p));
                if let (true, Some(on_change)) = (config_changed, &on_change) {
                    on_change();
                    let dirs = lock(&reloader).watched_dirs();
                    watch_dirs(&mut watcher, dirs);
                    continue;
                }
                for path in &changed {
                    reload_path(&reloader, path);
                }
            }
            drop(watcher);
        })
        .map_err(|e| notify::Error::generic(&e.to_string()))
}

fn reload_path(reloader: &Arc<Mutex<Reloader>>, path: &Path) {
    let mut reloader = lock(reloader);
    for name in reloader.names_for_path(path) {
        if !path.exists() {
            tracing::warn!(
                strategy = %name, file = %path.display(),
                "strategy file deleted; the running version keeps serving until a new file appears"
            );
            continue;
        }
        let _ = reloader.reload(&name, false);
    }
}
