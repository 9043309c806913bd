//! Loading and validating a config: every problem is reported at once, each
//! with its path and line.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::locate::LineIndex;
use super::model::{
    AlertsConfig, Config, MonitoringConfig, PipelineConfig, RecoveryConfig, SourceConfig, StrategyConfig,
};
use crate::pipeline::uri::SourceUri;

/// One problem in a config.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigIssue {
    /// e.g. `sources[1].uri`
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors {
    /// The file (or `<embedded default>`).
    pub origin: String,
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.issues.len();
        writeln!(f, "{} has {count} error{}:", self.origin, if count == 1 { "" } else { "s" })?;
        for issue in &self.issues {
            match issue.line {
                Some(line) => writeln!(f, "  {}:{line}: `{}`: {}", self.origin, issue.path, issue.message)?,
                None => writeln!(f, "  {}: `{}`: {}", self.origin, issue.path, issue.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

const SECTIONS: [&str; 6] = ["sources", "pipeline", "strategies", "alerts", "monitoring", "recovery"];

struct Collector {
    issues: Vec<ConfigIssue>,
}

impl Collector {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue { path: path.into(), line: None, message: message.into() });
    }

    fn parse<T: DeserializeOwned>(&mut self, path: &str, value: &Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                let inner = error.path().to_string();
                let full = match (path.is_empty(), inner.as_str()) {
                    (_, ".") => path.to_string(),
                    (true, _) => inner,
                    (false, _) if inner.starts_with('[') => format!("{path}{inner}"),
                    (false, _) => format!("{path}.{inner}"),
                };
                self.push(full, error.into_inner().to_string());
                None
            }
        }
    }
}

/// Parses and validates config text. `origin` names it in messages; relative
/// paths are resolved by the caller.
pub fn parse_config(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    parse_config_with(text, origin, |_| {})
}

/// Like [`parse_config`], with `adjust` applied between parsing and the
/// semantic checks (command-line overrides are checked like the file).
pub fn parse_config_with(text: &str, origin: &str, adjust: impl FnOnce(&mut Config)) -> Result<Config, ConfigErrors> {
    let mut collector = Collector { issues: Vec::new() };
    let mut config = parse_sections(text, &mut collector);
    if let Some(config) = &mut config {
        adjust(config);
    }
    if let Some(config) = &config {
        validate(config, &mut collector);
    }
    if collector.issues.is_empty() {
        if let Some(config) = config {
            return Ok(config);
        }
    }
    let index = LineIndex::build(text);
    let mut issues = collector.issues;
    for issue in &mut issues {
        if issue.line.is_none() {
            issue.line = index.line_of(&issue.path);
        }
    }
    Err(ConfigErrors { origin: origin.to_string(), issues })
}

/// Checks a config built in code (the control API's edits of the running
/// config) with exactly the rules a file gets.
pub fn check(config: &Config, origin: &str) -> Result<(), ConfigErrors> {
    let mut collector = Collector { issues: Vec::new() };
    validate(config, &mut collector);
    if collector.issues.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors { origin: origin.to_string(), issues: collector.issues })
    }
}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        origin: origin.clone(),
        issues: vec![ConfigIssue { path: String::new(), line: None, message: format!("cannot read the file: {e}") }],
    })?;
    parse_config(&text, &origin)
}

fn parse_sections(text: &str, collector: &mut Collector) -> Option<Config> {
    let root: Value = match serde_yaml::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            let line = error.location().map(|l| l.line());
            collector.issues.push(ConfigIssue { path: String::new(), line, message: format!("invalid YAML: {error}") });
            return None;
        }
    };
    let mut root = root;
    if root.is_null() {
        root = Value::Mapping(Default::default());
    }
    for problem in super::env::apply_overrides(&mut root, std::env::vars()) {
        collector.push(problem.0, problem.1);
    }
    let mapping = match root {
        Value::Mapping(mapping) => mapping,
        _ => {
            collector.push("", "the config must be a mapping of sections (sources, pipeline, strategies, ...)");
            return None;
        }
    };
    let mut config = Config::default();
    let mut ok = true;
    for (key, value) in &mapping {
        let Some(name) = key.as_str() else {
            collector.push("", format!("section names must be strings, got {key:?}"));
            ok = false;
            continue;
        };
        match name {
            "sources" => match parse_list::<SourceConfig>(collector, "sources", value) {
                Some(list) => config.sources = list,
                None => ok = false,
            },
            "strategies" => match parse_list::<StrategyConfig>(collector, "strategies", value) {
                Some(list) => config.strategies = list,
                None => ok = false,
            },
            "pipeline" => match collector.parse::<PipelineConfig>("pipeline", value) {
                Some(pipeline) => config.pipeline = pipeline,
                None => ok = false,
            },
            "recovery" => match collector.parse::<RecoveryConfig>("recovery", value) {
                Some(recovery) => config.recovery = recovery,
                None => ok = false,
            },
            "alerts" => match collector.parse::<AlertsConfig>("alerts", value) {
                Some(alerts) => config.alerts = alerts,
                None => ok = false,
            },
            "monitoring" => match collector.parse::<MonitoringConfig>("monitoring", value) {
                Some(monitoring) => config.monitoring = monitoring,
                None => ok = false,
            },
            other => {
                collector.push(other, format!("unknown section `{other}`; expected one of: {}", SECTIONS.join(", ")));
                ok = false;
            }
        }
    }
    ok.then_some(config)
}

/// Parses each item on its own, so one bad item does not hide the others.
fn parse_list<T: DeserializeOwned>(collector: &mut Collector, path: &str, value: &Value) -> Option<Vec<T>> {
    let items = match value {
        Value::Null => return Some(Vec::new()),
        Value::Sequence(items) => items,
        _ => {
            collector.push(path, "must be a list");
            return None;
        }
    };
    let parsed: Vec<Option<T>> =
        items.iter().enumerate().map(|(i, item)| collector.parse(&format!("{path}[{i}]"), item)).collect();
    parsed.into_iter().collect()
}

/// `pipeline.deepstream`, checked without looking for DeepStream itself.
fn validate_deepstream(pipeline: &crate::config::PipelineConfig, collector: &mut Collector) {
    let ds = &pipeline.deepstream;
    if pipeline.backend == crate::config::Backend::Deepstream && ds.infer_config.is_none() {
        collector.push(
            "pipeline.deepstream.infer_config",
            "required with `pipeline.backend: deepstream`: the nvinfer config file of the detector",
        );
    }
    if let Some(version) = &ds.version {
        if crate::pipeline::deepstream::DsVersion::parse(version).is_none() {
            collector.push("pipeline.deepstream.version", format!("`{version}` is not a version like 7.1 or 9.0.2"));
        }
    }
    if ds.batch_size == Some(0) {
        collector.push("pipeline.deepstream.batch_size", "must be at least 1");
    }
    if ds.width == 0 || ds.height == 0 {
        collector.push("pipeline.deepstream", "`width` and `height` must be greater than 0");
    }
}

fn validate(config: &Config, collector: &mut Collector) {
    let mut ids = BTreeSet::new();
    for (i, source) in config.sources.iter().enumerate() {
        let at = format!("sources[{i}]");
        if !valid_id(&source.id) {
            collector.push(format!("{at}.id"), "ids are 1-64 characters of letters, digits, `-`, `_` and `.`");
        } else if !ids.insert(source.id.as_str()) {
            collector.push(format!("{at}.id"), format!("duplicate source id `{}`", source.id));
        }
        if let Err(error) = SourceUri::parse(&source.uri) {
            collector.push(format!("{at}.uri"), error.to_string());
        }
        if source.rtsp.latency_ms > 60_000 {
            collector.push(format!("{at}.rtsp.latency_ms"), "must be at most 60000");
        }
    }
    let pipeline = &config.pipeline;
    if pipeline.queue_depth == 0 || pipeline.queue_depth > 4096 {
        collector.push("pipeline.queue_depth", "must be within 1..=4096");
    }
    if !(16..=1920).contains(&pipeline.motion.analysis_width) {
        collector.push("pipeline.motion.analysis_width", "must be within 16..=1920");
    }
    if !(pipeline.motion.min_area > 0.0 && pipeline.motion.min_area < 1.0) {
        collector.push("pipeline.motion.min_area", "must be a fraction of the frame within (0, 1)");
    }
    if !(pipeline.tracker.iou_threshold > 0.0 && pipeline.tracker.iou_threshold < 1.0) {
        collector.push("pipeline.tracker.iou_threshold", "must be within (0, 1)");
    }
    if let Some(labels) = &pipeline.labels {
        if labels.is_empty() {
            collector.push("pipeline.labels", "must name at least one label (or be left out for COCO)");
        }
    }
    validate_deepstream(pipeline, collector);
    super::onnx::validate(config).into_iter().for_each(|(path, message)| collector.push(path, message));
    let mut names = BTreeSet::new();
    for (i, strategy) in config.strategies.iter().enumerate() {
        let at = format!("strategies[{i}]");
        let name = strategy.resolved_name();
        if !valid_id(&name) {
            collector.push(format!("{at}.name"), "names are 1-64 characters of letters, digits, `-`, `_` and `.`");
        } else if !names.insert(name.clone()) {
            collector.push(format!("{at}.name"), format!("duplicate strategy name `{name}`"));
        }
        if !strategy.path.is_file() {
            collector.push(
                format!("{at}.path"),
                format!(
                    "strategy file not found: {} (build the example strategies with scripts/build-strategies.sh)",
                    strategy.path.display()
                ),
            );
        }
        for (j, source) in strategy.sources.iter().enumerate() {
            if !ids.contains(source.as_str()) {
                collector.push(format!("{at}.sources[{j}]"), format!("no source has the id `{source}`"));
            }
        }
        let limits = &strategy.limits;
        if limits.memory_mib == 0 || limits.memory_mib > 4096 {
            collector.push(format!("{at}.limits.memory_mib"), "must be within 1..=4096");
        }
        if limits.call_timeout_ms == 0 || limits.call_timeout_ms > 60_000 {
            collector.push(format!("{at}.limits.call_timeout_ms"), "must be within 1..=60000");
        }
        if let Err(error) = super::value_to_json(&strategy.config) {
            collector.push(format!("{at}.config"), error.to_string());
        }
    }
    let recovery = &config.recovery;
    if recovery.initial_backoff_ms == 0 || recovery.initial_backoff_ms > recovery.max_backoff_ms {
        collector.push("recovery.initial_backoff_ms", "must be positive and at most `max_backoff_ms`");
    }
    if !(recovery.watchdog_seconds.is_finite() && recovery.watchdog_seconds > 0.0) {
        collector.push("recovery.watchdog_seconds", "must be a positive number of seconds");
    }
    if recovery.strategy_quarantine_after == 0 {
        collector.push("recovery.strategy_quarantine_after", "must be at least 1");
    }
    let throttles = std::iter::once(("alerts.throttle".to_string(), &config.alerts.throttle))
        .chain(config.alerts.strategies.iter().map(|(name, throttle)| (format!("alerts.strategies.{name}"), throttle)));
    for (at, throttle) in throttles {
        if !(throttle.cooldown_seconds.is_finite() && throttle.cooldown_seconds >= 0.0) {
            collector.push(format!("{at}.cooldown_seconds"), "must be zero (off) or a positive number of seconds");
        }
        if !(0.0..=1.0).contains(&throttle.min_confidence) {
            collector.push(format!("{at}.min_confidence"), "must be within 0..=1");
        }
        if throttle.max_alerts_per_minute == Some(0) {
            collector.push(format!("{at}.max_alerts_per_minute"), "must be at least 1 (leave it out for no limit)");
        }
        if let Some(burst) = &throttle.burst {
            if !(burst.window_seconds.is_finite() && burst.window_seconds > 0.0) || burst.threshold == 0 {
                collector
                    .push(format!("{at}.burst"), "needs a positive `window_seconds` and a `threshold` of at least 1");
            }
        }
    }
    for name in config.alerts.strategies.keys() {
        if !names.contains(name) {
            collector.push(format!("alerts.strategies.{name}"), format!("no strategy is named `{name}`"));
        }
    }
    let mut sink_names = std::collections::BTreeSet::new();
    for (index, sink) in config.alerts.sinks.iter().enumerate() {
        let at = format!("alerts.sinks[{index}]");
        for (field, problem) in sink.validate() {
            collector.push(format!("{at}.{field}"), problem);
        }
        let name = sink.name();
        if !sink_names.insert(name.clone()) {
            collector.push(
                format!("{at}.name"),
                format!("another sink is already named `{name}`; give each sink of one type its own `name`"),
            );
        }
    }
    for (field, problem) in config.alerts.snapshots.validate() {
        collector.push(format!("alerts.snapshots.{field}"), problem);
    }
    let journal = &config.alerts.journal;
    if journal.max_mib == 0 {
        collector.push("alerts.journal.max_mib", "must be at least 1");
    }
    if !(config.alerts.shutdown_grace_seconds.is_finite() && config.alerts.shutdown_grace_seconds >= 0.0) {
        collector.push("alerts.shutdown_grace_seconds", "must be zero or a positive number of seconds");
    }
    if let Some(http) = &config.monitoring.http {
        match http.address.parse::<std::net::SocketAddr>() {
            Err(e) => collector.push(
                "monitoring.http.address",
                format!("`{}` is not an address like 127.0.0.1:9464: {e}", http.address),
            ),
            Ok(address) if !address.ip().is_loopback() && http.token.as_deref().is_none_or(str::is_empty) => collector
                .push("monitoring.http.token", "a bearer token is required when listening on a non-loopback address"),
            Ok(address) if !address.ip().is_loopback() && http.tls.is_none() && !http.allow_plaintext_token => {
                collector.push(
                    "monitoring.http.tls",
                    "off loopback the token needs TLS (cert, key), or set allow_plaintext_token: true",
                )
            }
            Ok(_) => {}
        }
    }
}

/// The one id rule, for sources, strategies and sinks.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_error_with_path_and_line() {
        let text = "\
sources:
  - id: cam-1
    uri: test://ball
  - id: cam-1
    uri: gopher://nowhere
  - id: cam-3
    uri: test://ball
    rtsp:
      latency: 5
pipeline:
  queue_depth: 0
strategies:
  - path: /nonexistent/x.wasm
    sources: [cam-9]
colour: blue
";
        let errors = parse_config(text, "test.yaml").unwrap_err();
        let found: Vec<(String, Option<usize>)> = errors.issues.iter().map(|i| (i.path.clone(), i.line)).collect();
        assert!(found.contains(&("sources[2].rtsp.latency".to_string(), Some(9))), "{errors}");
        assert!(found.contains(&("colour".to_string(), Some(15))), "{errors}");
        assert!(errors.issues.iter().any(|i| i.message.contains("unknown field `latency`")), "{errors}");
        // Semantic checks run only once the structure parsed; fix the
        // structure and the rest shows up together.
        let text = text.replace("      latency: 5\n", "      latency_ms: 5\n").replace("colour: blue\n", "");
        let errors = parse_config(&text, "test.yaml").unwrap_err();
        let paths: Vec<&str> = errors.issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "sources[1].id",
                "sources[1].uri",
                "pipeline.queue_depth",
                "strategies[0].path",
                "strategies[0].sources[0]"
            ],
            "{errors}"
        );
        assert_eq!(errors.issues[1].line, Some(5));
        assert!(errors.to_string().contains("test.yaml:5: `sources[1].uri`: unsupported scheme `gopher`"));
    }

    #[test]
    fn empty_config_is_valid() {
        let config = parse_config("", "empty").unwrap();
        assert!(config.sources.is_empty());
        assert_eq!(config.pipeline.queue_depth, 16);
    }
}
