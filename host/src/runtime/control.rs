//! The one way configuration is applied: startup (the diff from nothing),
//! a changed config file, and the control API's edits all become a new
//! desired config, checked by the same validators, then applied as a
//! [`ConfigDiff`] of the config running now. Each keyed item (source,
//! strategy, sink) is built and checked before what it replaces stops; an
//! item that fails keeps its running version (or, new, is not started) and
//! is reported, and everything else goes ahead. Keys that only a restart
//! applies are reported with their path.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use super::sources::{Runtime, RuntimeError, RuntimeSettings};
use super::strategies::{ReloadOutcome, Reloader, StrategySpec};
use crate::alerts::DispatchControl;
use crate::config::diff::ConfigDiff;
use crate::config::{self, Config, ConfigErrors, SourceConfig};
use crate::frame::SourceSummary;
use crate::pipeline::SourceSpec;

/// Re-reads the config file with the command line's overrides applied.
pub type ConfigReader = Box<dyn Fn() -> Result<Config, ConfigErrors> + Send + Sync>;

/// Why a change was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Invalid(ConfigErrors),
    #[error("a source with the id `{0}` already exists")]
    DuplicateSource(String),
    #[error("no source has the id `{0}`")]
    UnknownSource(String),
    #[error("dshost runs without a config file (the embedded default or --source); there is nothing to reload")]
    NoConfigFile,
    #[error("source `{source_id}` could not start: {message}")]
    StartFailed { source_id: String, message: String },
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
}

/// What happened to one key of a change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    /// `sources.cam-1`, `strategies.yolo_filter`, `alerts.sinks.mqtt`,
    /// `alerts.throttle`, `pipeline.motion`, ...
    pub key: String,
    /// `added`, `removed`, `changed`, `restarted`, `failed` or `restart_needed`.
    pub result: &'static str,
    /// Why it failed, or what a restart would apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Everything one apply did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApplyReport {
    pub changes: Vec<Applied>,
}

impl ApplyReport {
    fn push(&mut self, key: impl Into<String>, result: &'static str, detail: Option<String>) {
        self.changes.push(Applied { key: key.into(), result, detail });
    }

    pub fn failures(&self) -> Vec<&Applied> {
        self.changes.iter().filter(|c| c.result == "failed").collect()
    }

    pub fn restart_needed(&self) -> Vec<&Applied> {
        self.changes.iter().filter(|c| c.result == "restart_needed").collect()
    }
}

/// Counts of applied changes by config section and result (the
/// `dshost_config_reloads_total` metric).
#[derive(Debug, Default)]
pub struct ReloadCounters {
    counts: Mutex<BTreeMap<(String, String), u64>>,
}

impl ReloadCounters {
    fn add(&self, section: &str, result: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry((section.to_string(), result.to_string())).or_default() += 1;
    }

    /// ((section, result), count), sorted.
    pub fn snapshot(&self) -> Vec<((String, String), u64)> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

struct State {
    /// What runs now: the desired state as far as it could be applied.
    running: Config,
    /// The config file as last read (a file change is the diff from this).
    file: Option<Config>,
}

/// Applies configuration to a running dshost.
pub struct Control {
    runtime: Arc<Runtime>,
    reloader: Arc<Mutex<Reloader>>,
    dispatch: DispatchControl,
    state: Mutex<State>,
    reader: Option<ConfigReader>,
    config_path: Option<PathBuf>,
    pub counters: ReloadCounters,
}

/// The part of the config that only a restart changes, from `config`,
/// over an otherwise empty config: the state before startup.
fn empty_like(config: &Config) -> Config {
    let mut empty = Config {
        pipeline: config.pipeline.clone(),
        recovery: config.recovery.clone(),
        monitoring: config.monitoring.clone(),
        ..Config::default()
    };
    empty.alerts.journal = config.alerts.journal.clone();
    empty.alerts.snapshots = config.alerts.snapshots.clone();
    empty.alerts.throttle = config.alerts.throttle.clone();
    empty.alerts.strategies = config.alerts.strategies.clone();
    empty.alerts.shutdown_grace_seconds = config.alerts.shutdown_grace_seconds;
    empty
}

fn section_of(key: &str) -> &str {
    match key.split('.').next() {
        Some("alerts") if key.starts_with("alerts.sinks") => "sinks",
        Some("alerts") if key.starts_with("alerts.throttle") || key.starts_with("alerts.strategies") => "throttle",
        Some(section) => section,
        None => key,
    }
}

impl Control {
    /// `initial` sets what only a restart changes (the backend, the journal,
    /// the HTTP server, which the caller started from it); nothing else runs
    /// until [`Control::start`].
    pub fn new(
        runtime: Arc<Runtime>,
        reloader: Arc<Mutex<Reloader>>,
        dispatch: DispatchControl,
        initial: &Config,
        config_path: Option<PathBuf>,
        reader: Option<ConfigReader>,
    ) -> Control {
        Control {
            runtime,
            reloader,
            dispatch,
            state: Mutex::new(State { running: empty_like(initial), file: None }),
            reader,
            config_path,
            counters: ReloadCounters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn reloader(&self) -> &Arc<Mutex<Reloader>> {
        &self.reloader
    }

    /// The config file watched and reloaded, if any.
    pub fn config_path(&self) -> Option<&PathBuf> {
        self.config_path.as_ref()
    }

    /// The config running now.
    pub fn running(&self) -> Config {
        self.lock().running.clone()
    }

    /// Startup: applies `config` as the diff from nothing.
    pub fn start(&self, config: Config) -> ApplyReport {
        let mut state = self.lock();
        state.file = Some(config.clone());
        let diff = ConfigDiff::initial(&config);
        self.apply_locked(&mut state, config, diff)
    }

    /// Re-reads the config file and applies what changed in it since it was
    /// last read. An invalid file changes nothing.
    pub fn reload_file(&self) -> Result<ApplyReport, ControlError> {
        let Some(reader) = &self.reader else {
            return Err(ControlError::NoConfigFile);
        };
        let new = match reader() {
            Ok(new) => new,
            Err(errors) => {
                self.counters.add("config", "invalid");
                return Err(ControlError::Invalid(errors));
            }
        };
        let mut state = self.lock();
        let previous_file = state.file.clone().unwrap_or_else(|| state.running.clone());
        let diff = ConfigDiff::between(&previous_file, &new);
        // The file's changes apply to what runs now (which may also hold
        // sources added through the API): the new desired state is the
        // running one with the file's changes made to it.
        let mut desired = state.running.clone();
        merge_file_changes(&mut desired, &new, &diff);
        state.file = Some(new);
        let diff = ConfigDiff::between(&state.running, &desired);
        Ok(self.apply_locked(&mut state, desired, diff))
    }

    /// Adds a source (the control API), checked like one in the file.
    pub fn add_source(&self, source: SourceConfig) -> Result<ApplyReport, ControlError> {
        let mut state = self.lock();
        if state.running.sources.iter().any(|s| s.id == source.id) {
            return Err(ControlError::DuplicateSource(source.id));
        }
        let mut desired = state.running.clone();
        desired.sources.push(source.clone());
        config::check(&desired, "the new source").map_err(|mut errors| {
            // Only the new source's problems are the caller's.
            let at = format!("sources[{}]", desired.sources.len() - 1);
            errors.issues.retain(|issue| issue.path.starts_with(&at));
            for issue in &mut errors.issues {
                issue.path = issue.path.trim_start_matches(&at).trim_start_matches('.').to_string();
            }
            ControlError::Invalid(errors)
        })?;
        let diff = ConfigDiff::between(&state.running, &desired);
        let report = self.apply_locked(&mut state, desired, diff);
        match report.failures().first() {
            Some(failure) => Err(ControlError::StartFailed {
                source_id: source.id,
                message: failure.detail.clone().unwrap_or_default(),
            }),
            None => Ok(report),
        }
    }

    /// Stops and removes a source (the control API).
    pub fn remove_source(&self, id: &str) -> Result<SourceSummary, ControlError> {
        let mut state = self.lock();
        if !state.running.sources.iter().any(|s| s.id == id) {
            return Err(ControlError::UnknownSource(id.to_string()));
        }
        let summary = self.runtime.remove_source(id)?;
        state.running.sources.retain(|s| s.id != id);
        self.counters.add("sources", "removed");
        tracing::info!(source = %id, "source removed");
        Ok(summary)
    }

    /// Re-reads a running strategy's file (the control API's reload).
    pub fn reload_strategy(
        &self,
        name: &str,
        force: bool,
    ) -> Option<Result<ReloadOutcome, super::strategies::ReloadError>> {
        let result = lock_reloader(&self.reloader).reload(name, force);
        if let Some(result) = &result {
            self.counters.add("strategies", if result.is_ok() { "applied" } else { "failed" });
        }
        result
    }

    fn apply_locked(&self, state: &mut State, mut desired: Config, diff: ConfigDiff) -> ApplyReport {
        let mut report = ApplyReport::default();
        let running = &mut state.running;
        tracing::info!(changes = %diff.describe(), "applying configuration");
        // Settings that only a restart applies keep their running values.
        for key in &diff.restart_needed {
            report.push(key.clone(), "restart_needed", Some("applies at the next start of dshost".to_string()));
            tracing::warn!(key = %key, "this setting changed but applies only when dshost restarts");
            match key.as_str() {
                "pipeline.backend" => desired.pipeline.backend = running.pipeline.backend,
                "pipeline.deepstream" => desired.pipeline.deepstream = running.pipeline.deepstream.clone(),
                "alerts.journal" => desired.alerts.journal = running.alerts.journal.clone(),
                "alerts.snapshots" => desired.alerts.snapshots = running.alerts.snapshots.clone(),
                "monitoring.http" => desired.monitoring = running.monitoring.clone(),
                _ => {}
            }
        }
        self.apply_strategies(&diff, &mut desired, running, &mut report);
        // Sinks before sources: an alert must never find its sink missing.
        self.apply_alerts(&diff, &desired, running, &mut report);
        // New settings for sources: the runtime starts sources with them, and
        // every running source restarts to take them.
        let mut settings_changed = !diff.source_settings.is_empty();
        if settings_changed {
            let current = self.runtime.settings();
            // A new model (or labels, or tracker settings it uses) is loaded
            // and checked before any source switches to it.
            let detector = if diff.source_settings.iter().any(|k| k.starts_with("pipeline.")) {
                super::objects::load_detector(&desired).map_err(|e| e.to_string())
            } else {
                Ok(current.detector.clone())
            };
            match detector {
                Ok(detector) => {
                    let labels = match &detector {
                        Some(detector) => detector.labels.clone(),
                        None => Arc::new(super::objects::labels(&desired, None)),
                    };
                    self.runtime.set_settings(RuntimeSettings {
                        pipeline: desired.pipeline.clone(),
                        recovery: desired.recovery.clone(),
                        labels,
                        detector,
                        ..current
                    });
                    for key in &diff.source_settings {
                        report.push(key.clone(), "changed", Some("running sources restart to apply it".to_string()));
                    }
                }
                Err(error) => {
                    for key in &diff.source_settings {
                        report.push(key.clone(), "failed", Some(format!("{error}; the running settings stay")));
                    }
                    desired.pipeline = running.pipeline.clone();
                    desired.recovery = running.recovery.clone();
                    settings_changed = false;
                }
            }
        }
        running.pipeline = desired.pipeline.clone();
        running.recovery = desired.recovery.clone();
        self.apply_sources(&diff, settings_changed, &desired, running, &mut report);
        running.monitoring = desired.monitoring.clone();
        for change in &report.changes {
            let result = match change.result {
                "failed" | "restart_needed" => change.result,
                _ => "applied",
            };
            self.counters.add(section_of(&change.key), result);
        }
        for failure in report.failures() {
            tracing::error!(
                key = %failure.key,
                error = failure.detail.as_deref().unwrap_or(""),
                "configuration change not applied; the running version keeps serving"
            );
        }
        report
    }

    fn apply_strategies(
        &self,
        diff: &ConfigDiff,
        desired: &mut Config,
        running: &mut Config,
        report: &mut ApplyReport,
    ) {
        if diff.strategies.is_empty() {
            return;
        }
        let mut specs = Vec::new();
        for entry in &desired.strategies {
            let name = entry.resolved_name();
            match StrategySpec::from_config(entry) {
                Ok(spec) => specs.push(spec),
                Err(error) => {
                    report.push(format!("strategies.{name}"), "failed", Some(format!("its config: {error}")));
                    // Keep the running version of it, if there is one.
                    let was = running.strategies.iter().find(|s| s.resolved_name() == name);
                    specs.extend(was.and_then(|was| StrategySpec::from_config(was).ok()));
                }
            }
        }
        let results = lock_reloader(&self.reloader).apply_all(specs);
        let mut kept: Vec<config::StrategyConfig> = Vec::new();
        for entry in &desired.strategies {
            let name = entry.resolved_name();
            let key = format!("strategies.{name}");
            let was = running.strategies.iter().find(|s| s.resolved_name() == name).cloned();
            match results.iter().find(|(n, _)| *n == name).map(|(_, r)| r) {
                Some(Ok(outcome)) => {
                    if let ReloadOutcome::Installed { .. } = outcome {
                        report.push(key, if was.is_some() { "changed" } else { "added" }, None);
                    }
                    kept.push(entry.clone());
                }
                Some(Err(error)) => {
                    report.push(key, "failed", Some(error.to_string()));
                    kept.extend(was);
                }
                None => kept.extend(was),
            }
        }
        for name in &diff.strategies.removed {
            report.push(format!("strategies.{name}"), "removed", None);
        }
        desired.strategies = kept.clone();
        running.strategies = kept;
    }

    fn apply_sources(
        &self,
        diff: &ConfigDiff,
        restart_all: bool,
        desired: &Config,
        running: &mut Config,
        report: &mut ApplyReport,
    ) {
        let detector = desired.pipeline.detector;
        let start = |source: &SourceConfig| -> Result<(), String> {
            let spec = SourceSpec::from_config(source, detector).map_err(|e| e.to_string())?;
            announce(&spec);
            self.runtime.add_source(spec).map_err(|e| e.to_string())
        };
        for id in &diff.sources.removed {
            if self.runtime.remove_source(id).is_ok() {
                report.push(format!("sources.{id}"), "removed", None);
            }
            running.sources.retain(|s| &s.id != id);
        }
        let changed: Vec<&SourceConfig> = diff.sources.changed.iter().collect();
        // With new source settings every running source restarts; changed
        // sources restart with their new config.
        let restarting: Vec<SourceConfig> = if restart_all {
            running
                .sources
                .iter()
                .map(|s| changed.iter().find(|c| c.id == s.id).map(|c| (*c).clone()).unwrap_or_else(|| s.clone()))
                .collect()
        } else {
            changed.iter().map(|c| (*c).clone()).collect()
        };
        for new in restarting {
            let key = format!("sources.{}", new.id);
            let Some(old) = running.sources.iter().find(|s| s.id == new.id).cloned() else {
                continue;
            };
            let _ = self.runtime.remove_source(&new.id);
            match start(&new) {
                Ok(()) => {
                    report.push(key, if new == old { "restarted" } else { "changed" }, None);
                    if let Some(slot) = running.sources.iter_mut().find(|s| s.id == new.id) {
                        *slot = new;
                    }
                }
                Err(error) => {
                    // Roll back: the source runs as it did.
                    let restored = start(&old);
                    let detail = match restored {
                        Ok(()) => format!("{error}; the previous settings run again"),
                        Err(again) => {
                            running.sources.retain(|s| s.id != old.id);
                            format!("{error}; the previous settings could not start either: {again}")
                        }
                    };
                    report.push(key, "failed", Some(detail));
                }
            }
        }
        for new in &diff.sources.added {
            let key = format!("sources.{}", new.id);
            match start(new) {
                Ok(()) => {
                    report.push(key, "added", None);
                    running.sources.push(new.clone());
                }
                Err(error) => report.push(key, "failed", Some(error)),
            }
        }
    }

    fn apply_alerts(&self, diff: &ConfigDiff, desired: &Config, running: &mut Config, report: &mut ApplyReport) {
        for name in &diff.sinks.removed {
            let key = format!("alerts.sinks.{name}");
            match self.dispatch.remove_sink(name) {
                Ok(()) => {
                    report.push(key, "removed", None);
                    running.alerts.sinks.retain(|s| &s.name() != name);
                }
                Err(error) => report.push(key, "failed", Some(error.to_string())),
            }
        }
        for sink in &diff.sinks.changed {
            let name = sink.name();
            let key = format!("alerts.sinks.{name}");
            match self.dispatch.replace_sink(sink.clone()) {
                Ok(()) => {
                    report.push(key, "changed", None);
                    if let Some(slot) = running.alerts.sinks.iter_mut().find(|s| s.name() == name) {
                        *slot = sink.clone();
                    }
                }
                Err(error) => report.push(key, "failed", Some(error.to_string())),
            }
        }
        for sink in &diff.sinks.added {
            let key = format!("alerts.sinks.{}", sink.name());
            match self.dispatch.add_sink(sink.clone()) {
                Ok(()) => {
                    report.push(key, "added", None);
                    running.alerts.sinks.push(sink.clone());
                }
                Err(error) => report.push(key, "failed", Some(error.to_string())),
            }
        }
        if diff.throttle {
            match self.dispatch.set_throttle(desired.alerts.throttle.clone(), desired.alerts.strategies.clone()) {
                Ok(()) => {
                    report.push("alerts.throttle", "changed", None);
                    running.alerts.throttle = desired.alerts.throttle.clone();
                    running.alerts.strategies = desired.alerts.strategies.clone();
                }
                Err(error) => report.push("alerts.throttle", "failed", Some(error.to_string())),
            }
        }
        if diff.shutdown_grace {
            let grace = Duration::from_secs_f64(desired.alerts.shutdown_grace_seconds);
            if self.dispatch.set_shutdown_grace(grace).is_ok() {
                report.push("alerts.shutdown_grace_seconds", "changed", None);
                running.alerts.shutdown_grace_seconds = desired.alerts.shutdown_grace_seconds;
            }
        }
    }
}

/// Makes `desired` (the running config) carry the changes `diff` found
/// between the previous and the `new` file.
fn merge_file_changes(desired: &mut Config, new: &Config, diff: &ConfigDiff) {
    desired.sources.retain(|s| !diff.sources.removed.contains(&s.id));
    for source in diff.sources.changed.iter().chain(&diff.sources.added) {
        match desired.sources.iter_mut().find(|s| s.id == source.id) {
            Some(slot) => *slot = source.clone(),
            None => desired.sources.push(source.clone()),
        }
    }
    // Strategies, sinks and settings have no other editor than the file.
    desired.strategies = new.strategies.clone();
    desired.pipeline = new.pipeline.clone();
    desired.recovery = new.recovery.clone();
    desired.monitoring = new.monitoring.clone();
    desired.alerts = new.alerts.clone();
}

/// Logs what a source is, once, when it starts.
fn announce(spec: &SourceSpec) {
    if matches!(spec.uri, crate::pipeline::uri::SourceUri::Scene { .. }) {
        tracing::info!(
            source = %spec.id,
            "source `{}` is SYNTHETIC: a rendered scene with ground-truth objects, for demos and tests",
            spec.id
        );
    }
}

pub fn lock_reloader(reloader: &Mutex<Reloader>) -> MutexGuard<'_, Reloader> {
    reloader.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_of_keys() {
        assert_eq!(section_of("sources.cam-1"), "sources");
        assert_eq!(section_of("alerts.sinks.mqtt"), "sinks");
        assert_eq!(section_of("alerts.throttle"), "throttle");
        assert_eq!(section_of("pipeline.motion"), "pipeline");
        assert_eq!(section_of("recovery"), "recovery");
    }

    #[test]
    fn file_changes_merge_into_the_running_config() {
        let parse = |text: &str| config::parse_config(text, "t").unwrap();
        let before = parse("sources:\n  - {id: a, uri: 'test://ball'}\n  - {id: b, uri: 'test://ball'}\n");
        let after = parse("sources:\n  - {id: a, uri: 'test://snow'}\n  - {id: c, uri: 'test://ball'}\n");
        // `api` was added through the control API: the file never named it.
        let mut running = parse(
            "sources:\n  - {id: a, uri: 'test://ball'}\n  - {id: b, uri: 'test://ball'}\n  - {id: api, uri: 'test://smpte'}\n",
        );
        merge_file_changes(&mut running, &after, &ConfigDiff::between(&before, &after));
        let ids: Vec<(&str, &str)> = running.sources.iter().map(|s| (s.id.as_str(), s.uri.as_str())).collect();
        assert_eq!(ids, [("a", "test://snow"), ("api", "test://smpte"), ("c", "test://ball")]);
    }
}
