//! The difference between two configs, keyed the way the runtime applies
//! it: sources by id, strategies by name, sinks by name, plus the throttle
//! and the settings sources are started with. Startup is the diff from the
//! empty config; a file change or an API edit is the diff from the config
//! running now. Keys that cannot change in a running dshost are listed by
//! their path as needing a restart, never silently ignored.

use std::collections::BTreeMap;

use super::model::{Config, SourceConfig, StrategyConfig};
use crate::alerts::SinkConfig;

/// Items of one keyed section that were added, removed or changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyed<T> {
    pub added: Vec<T>,
    /// Keys of items that are gone.
    pub removed: Vec<String>,
    /// Items whose settings differ (the new settings).
    pub changed: Vec<T>,
}

impl<T> Default for Keyed<T> {
    fn default() -> Self {
        Keyed { added: Vec::new(), removed: Vec::new(), changed: Vec::new() }
    }
}

impl<T> Keyed<T> {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl<T: Clone + PartialEq> Keyed<T> {
    fn between(old: &[T], new: &[T], key: impl Fn(&T) -> String) -> Self {
        let old: BTreeMap<String, &T> = old.iter().map(|item| (key(item), item)).collect();
        let new_keys: BTreeMap<String, &T> = new.iter().map(|item| (key(item), item)).collect();
        let mut diff = Keyed::default();
        // In the new config's order, so sources start in the order written.
        for item in new {
            match old.get(&key(item)) {
                None => diff.added.push(item.clone()),
                Some(previous) if *previous != item => diff.changed.push(item.clone()),
                Some(_) => {}
            }
        }
        diff.removed = old.keys().filter(|k| !new_keys.contains_key(*k)).cloned().collect();
        diff
    }
}

/// What it takes to go from one config to another.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigDiff {
    pub sources: Keyed<SourceConfig>,
    pub strategies: Keyed<StrategyConfig>,
    pub sinks: Keyed<SinkConfig>,
    /// `alerts.throttle` or `alerts.strategies` changed.
    pub throttle: bool,
    /// `alerts.shutdown_grace_seconds` changed.
    pub shutdown_grace: bool,
    /// Paths of changed settings that every source is started with
    /// (`pipeline.detector`, `pipeline.motion`, `recovery`, ...): applying
    /// them restarts every running source.
    pub source_settings: Vec<String>,
    /// Paths of changed settings that only a restart of dshost applies.
    pub restart_needed: Vec<String>,
}

impl ConfigDiff {
    pub fn between(old: &Config, new: &Config) -> ConfigDiff {
        let mut diff = ConfigDiff {
            sources: Keyed::between(&old.sources, &new.sources, |s| s.id.clone()),
            strategies: Keyed::between(&old.strategies, &new.strategies, StrategyConfig::resolved_name),
            sinks: Keyed::between(&old.alerts.sinks, &new.alerts.sinks, SinkConfig::name),
            throttle: old.alerts.throttle != new.alerts.throttle || old.alerts.strategies != new.alerts.strategies,
            shutdown_grace: old.alerts.shutdown_grace_seconds != new.alerts.shutdown_grace_seconds,
            ..ConfigDiff::default()
        };
        let (a, b) = (&old.pipeline, &new.pipeline);
        let mut restart = |path: &str, changed: bool| {
            if changed {
                diff.restart_needed.push(path.to_string());
            }
        };
        restart("pipeline.backend", a.backend != b.backend);
        restart("pipeline.deepstream", a.deepstream != b.deepstream);
        restart("alerts.journal", old.alerts.journal != new.alerts.journal);
        restart("alerts.snapshots", old.alerts.snapshots != new.alerts.snapshots);
        restart("monitoring.http", old.monitoring.http != new.monitoring.http);
        let mut source_setting = |path: &str, changed: bool| {
            if changed {
                diff.source_settings.push(path.to_string());
            }
        };
        source_setting("pipeline.detector", a.detector != b.detector);
        source_setting("pipeline.decoder", a.decoder != b.decoder);
        source_setting("pipeline.motion", a.motion != b.motion);
        source_setting("pipeline.tracker", a.tracker != b.tracker);
        source_setting("pipeline.queue_depth", a.queue_depth != b.queue_depth);
        source_setting("pipeline.labels", a.labels != b.labels);
        source_setting("pipeline.onnx", a.onnx != b.onnx);
        source_setting("recovery", old.recovery != new.recovery);
        diff
    }

    /// The diff from nothing (startup).
    pub fn initial(config: &Config) -> ConfigDiff {
        let mut diff = ConfigDiff::between(&Config::default(), config);
        // Nothing runs yet: every setting is simply the one to start with.
        diff.restart_needed.clear();
        diff.source_settings.clear();
        diff.throttle = false;
        diff.shutdown_grace = false;
        // Unchanged-from-default items are still to be started.
        diff.sources = Keyed { added: config.sources.clone(), ..Keyed::default() };
        diff.strategies = Keyed { added: config.strategies.clone(), ..Keyed::default() };
        diff.sinks = Keyed { added: config.alerts.sinks.clone(), ..Keyed::default() };
        diff
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
            && self.strategies.is_empty()
            && self.sinks.is_empty()
            && !self.throttle
            && !self.shutdown_grace
            && self.source_settings.is_empty()
            && self.restart_needed.is_empty()
    }

    /// A one-line account for the log: `sources +1 -0 ~2, sinks +1, ...`.
    pub fn describe(&self) -> String {
        fn keyed<T>(name: &str, k: &Keyed<T>, out: &mut Vec<String>) {
            if !k.is_empty() {
                out.push(format!("{name} +{} -{} ~{}", k.added.len(), k.removed.len(), k.changed.len()));
            }
        }
        let mut parts = Vec::new();
        keyed("sources", &self.sources, &mut parts);
        keyed("strategies", &self.strategies, &mut parts);
        keyed("sinks", &self.sinks, &mut parts);
        if self.throttle {
            parts.push("throttle".to_string());
        }
        if self.shutdown_grace {
            parts.push("alerts.shutdown_grace_seconds".to_string());
        }
        if !self.source_settings.is_empty() {
            parts.push(format!("source settings ({})", self.source_settings.join(", ")));
        }
        if !self.restart_needed.is_empty() {
            parts.push(format!("needs a restart: {}", self.restart_needed.join(", ")));
        }
        if parts.is_empty() {
            "no changes".to_string()
        } else {
            parts.join("; ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    fn config(text: &str) -> Config {
        parse_config(text, "test.yaml").unwrap()
    }

    const BASE: &str = "
sources:
  - {id: a, uri: 'test://ball'}
  - {id: b, uri: 'test://snow'}
alerts:
  throttle: {cooldown_seconds: 5}
  sinks:
    - {type: console}
";

    #[test]
    fn startup_adds_everything() {
        let diff = ConfigDiff::initial(&config(BASE));
        assert_eq!(diff.sources.added.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(diff.sinks.added.len(), 1);
        assert!(diff.restart_needed.is_empty() && !diff.throttle);
    }

    const CHANGED: &str = "
sources:
  - {id: a, uri: 'test://ball'}
  - {id: b, uri: 'test://smpte'}
  - {id: c, uri: 'scene://?seed=2'}
pipeline: {backend: cpu, motion: {threshold: 40}}
alerts:
  throttle: {cooldown_seconds: 9}
  sinks:
    - {type: console}
    - {type: jsonl, path: '/tmp/x.jsonl'}
";

    #[test]
    fn keyed_changes_and_restart_only_keys() {
        let diff = ConfigDiff::between(&config(BASE), &config(CHANGED));
        assert_eq!(diff.sources.added.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(diff.sources.changed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert!(diff.sources.removed.is_empty());
        assert_eq!(diff.sinks.added.iter().map(SinkConfig::name).collect::<Vec<_>>(), ["jsonl"]);
        assert!(diff.throttle);
        assert_eq!(diff.restart_needed, ["pipeline.backend"]);
        assert_eq!(diff.source_settings, ["pipeline.motion"]);
        assert!(diff.describe().contains("needs a restart: pipeline.backend"), "{}", diff.describe());
        let back = ConfigDiff::between(&config(CHANGED), &config(BASE));
        assert_eq!(back.sources.removed, ["c"]);
        assert_eq!(back.sinks.removed, ["jsonl"]);
        assert!(ConfigDiff::between(&config(BASE), &config(BASE)).is_empty());
    }
}
