//! Loading and hot-reloading strategies: one path for startup (a reload from
//! nothing), file changes and config changes. The new version is compiled
//! (or taken from the cache), instantiated and configured for every source
//! before any source switches; each source then switches at a frame
//! boundary, carrying state for stateful strategies. Any failure keeps the
//! running version and says why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::sources::{Runtime, RuntimeError, StrategyPlan};
use crate::config::{self, StrategyConfig};
use crate::strategy::{ContentHash, LoadError, SandboxLimits, StrategyEngine};

/// A strategy as configured: where its component is and how it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategySpec {
    pub name: String,
    /// Absolute path of the component.
    pub path: PathBuf,
    pub config_json: String,
    pub sources: Vec<String>,
    pub limits: SandboxLimits,
}

impl StrategySpec {
    pub fn from_config(entry: &StrategyConfig) -> Result<Self, config::YamlError> {
        let path = std::path::absolute(&entry.path).unwrap_or_else(|_| entry.path.clone());
        Ok(StrategySpec {
            name: entry.resolved_name(),
            path,
            config_json: config::value_to_json(&entry.config)?,
            sources: entry.sources.clone(),
            limits: SandboxLimits {
                memory_bytes: entry.limits.memory_mib << 20,
                call_timeout: Duration::from_millis(entry.limits.call_timeout_ms),
                max_detections: entry.limits.max_detections,
                ..SandboxLimits::default()
            },
        })
    }
}

/// Reload counters of one strategy.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

/// Why a reload did not happen. The running version keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("strategy file {} was deleted or is unreadable ({source}); keeping the running version", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("file sha256:{hash}: {error}")]
    Load { hash: String, error: LoadError },
    #[error("file sha256:{hash}: {error}")]
    Install { hash: String, error: RuntimeError },
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadOutcome {
    /// Same bytes and settings as the running version: nothing to do.
    Unchanged,
    /// The new version runs; `kept_old` lists sources that refused the
    /// running version's state and so keep the old version, with the reason.
    Installed { version: String, previous: Option<String>, elapsed: Duration, kept_old: Vec<(String, String)> },
}

struct Running {
    spec: StrategySpec,
    hash: ContentHash,
    version: String,
}

/// Owns the strategies' lifecycle for a runtime.
pub struct Reloader {
    engine: Arc<StrategyEngine>,
    runtime: Arc<Runtime>,
    running: BTreeMap<String, Running>,
    stats: BTreeMap<String, Arc<ReloadStats>>,
}

impl Reloader {
    pub fn new(engine: Arc<StrategyEngine>, runtime: Arc<Runtime>) -> Self {
        Reloader { engine, runtime, running: BTreeMap::new(), stats: BTreeMap::new() }
    }

    /// The specs currently running.
    pub fn specs(&self) -> Vec<StrategySpec> {
        self.running.values().map(|r| r.spec.clone()).collect()
    }

    pub fn stats(&self, name: &str) -> Option<Arc<ReloadStats>> {
        self.stats.get(name).cloned()
    }

    /// Running version of `name`.
    pub fn version(&self, name: &str) -> Option<String> {
        self.running.get(name).map(|r| r.version.clone())
    }

    /// Loads or reloads one strategy. Unless `force`, identical bytes and
    /// settings are a no-op.
    pub fn apply(&mut self, spec: StrategySpec, force: bool) -> Result<ReloadOutcome, ReloadError> {
        let stats = self.stats.entry(spec.name.clone()).or_default().clone();
        let result = self.try_apply(spec.clone(), force);
        match &result {
            Ok(ReloadOutcome::Unchanged) => {
                tracing::debug!(strategy = %spec.name, "strategy file rewritten with identical content; nothing to reload")
            }
            Ok(ReloadOutcome::Installed { version, previous, elapsed, kept_old }) => {
                stats.succeeded.fetch_add(1, Ordering::Relaxed);
                match previous {
                    Some(previous) => tracing::info!(
                        strategy = %spec.name, from = %previous, to = %version,
                        elapsed_ms = elapsed.as_secs_f64() * 1e3, "strategy reloaded"
                    ),
                    None => {
                        tracing::info!(strategy = %spec.name, version = %version, "strategy started")
                    }
                }
                for (source, reason) in kept_old {
                    tracing::warn!(
                        strategy = %spec.name, source = %source, reason = %reason,
                        "this source keeps the previous version: the new one refused its state"
                    );
                }
            }
            Err(error) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = stats.last_error.lock() {
                    *last = Some(error.to_string());
                }
                let running = self.version(&spec.name).unwrap_or_else(|| "none".to_string());
                tracing::error!(strategy = %spec.name, running = %running, error = %error, "strategy reload failed; the running version keeps serving");
            }
        }
        result
    }

    fn try_apply(&mut self, spec: StrategySpec, force: bool) -> Result<ReloadOutcome, ReloadError> {
        let started = Instant::now();
        let bytes =
            std::fs::read(&spec.path).map_err(|source| ReloadError::Read { path: spec.path.clone(), source })?;
        let hash = ContentHash::of(&bytes);
        let short = hash.hex()[..8].to_string();
        let previous = self.running.get(&spec.name);
        if !force && previous.is_some_and(|r| r.hash == hash && r.spec == spec) {
            return Ok(ReloadOutcome::Unchanged);
        }
        let previous_version = previous.map(|r| r.version.clone());
        let component = self
            .engine
            .load_bytes(&spec.name, &bytes, &spec.limits)
            .map_err(|error| ReloadError::Load { hash: short.clone(), error })?;
        let version = component.version.clone();
        let plan = StrategyPlan {
            name: spec.name.clone(),
            component,
            config_json: spec.config_json.clone(),
            sources: spec.sources.clone(),
            limits: spec.limits.clone(),
        };
        let outcomes =
            self.runtime.install_strategy(plan).map_err(|error| ReloadError::Install { hash: short, error })?;
        let kept_old: Vec<(String, String)> =
            outcomes.into_iter().filter_map(|o| o.result.err().map(|reason| (o.source, reason.to_string()))).collect();
        self.running.insert(spec.name.clone(), Running { spec, hash, version: version.clone() });
        Ok(ReloadOutcome::Installed { version, previous: previous_version, elapsed: started.elapsed(), kept_old })
    }

    /// Re-reads the file of a running strategy.
    pub fn reload(&mut self, name: &str, force: bool) -> Option<Result<ReloadOutcome, ReloadError>> {
        let spec = self.running.get(name)?.spec.clone();
        Some(self.apply(spec, force))
    }

    /// Makes the running strategies match `specs`: starts new ones, reloads
    /// changed ones, stops removed ones. Returns each strategy's result.
    pub fn apply_all(&mut self, specs: Vec<StrategySpec>) -> Vec<(String, Result<ReloadOutcome, ReloadError>)> {
        let wanted: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let removed: Vec<String> = self.running.keys().filter(|name| !wanted.contains(name)).cloned().collect();
        for name in removed {
            self.runtime.remove_strategy(&name);
            self.running.remove(&name);
            tracing::info!(strategy = %name, "strategy removed from the config; stopped");
        }
        specs.into_iter().map(|spec| (spec.name.clone(), self.apply(spec, false))).collect()
    }

    /// Names of running strategies whose component is `path`.
    pub fn names_for_path(&self, path: &Path) -> Vec<String> {
        self.running.values().filter(|r| r.spec.path == path).map(|r| r.spec.name.clone()).collect()
    }

    /// Directories holding the running strategies' files.
    pub fn watched_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> =
            self.running.values().filter_map(|r| r.spec.path.parent().map(Path::to_path_buf)).collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }
}
