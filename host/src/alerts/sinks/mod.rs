//! Alert sinks. Each sink runs on its own thread behind its own bounded
//! queue, retries with exponential backoff and jitter, and reports every
//! journaled alert's outcome back to the journal, so a dead sink never slows
//! another sink or the pipeline and nothing journaled is lost.

pub mod console;
pub mod email;
pub mod jsonl;
pub mod mqtt;
pub mod nats;
pub mod payload;
pub mod webhook;
mod worker;

use std::time::Duration;

use serde::Deserialize;

pub use payload::PayloadFormat;
pub use worker::{SinkHandle, SinkStats, WorkerSettings};

use super::alert::Alert;

/// Where the console sink and a `-` JSON-lines sink write: stdout, unless
/// the binary set a replacement (it keeps native libraries' prints out of
/// the alert stream).
static STDOUT: std::sync::OnceLock<std::sync::Mutex<Box<dyn std::io::Write + Send>>> = std::sync::OnceLock::new();

/// Replaces stdout for the console and `-` sinks (once per process).
pub fn set_stdout(out: Box<dyn std::io::Write + Send>) {
    let _ = STDOUT.set(std::sync::Mutex::new(out));
}

/// Runs `write` on the alert stdout.
pub(crate) fn with_stdout<R>(write: impl FnOnce(&mut dyn std::io::Write) -> R) -> R {
    match STDOUT.get() {
        Some(out) => write(&mut **out.lock().unwrap_or_else(|poisoned| poisoned.into_inner())),
        None => write(&mut std::io::stdout().lock()),
    }
}

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    /// Worth trying again (connection refused, timeout, HTTP 503, ...).
    Retry(String),
    /// The sink refused this alert for good (HTTP 400, ...): not retried.
    Reject(String),
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeliveryError::Retry(message) | DeliveryError::Reject(message) => f.write_str(message),
        }
    }
}

/// One destination. Calls come from the sink's own thread only.
pub trait Sink: Send {
    /// Delivers one alert; `Ok` only once the destination has it (flushed,
    /// acknowledged by the broker, answered 2xx).
    fn deliver(&mut self, alert: &Alert, payload: &[u8]) -> Result<(), DeliveryError>;
    /// Called about once a second while the queue is empty (keep-alives).
    fn idle(&mut self) {}
    /// How many alerts one delivery may carry ([`Sink::deliver_batch`]).
    fn batching(&self) -> Batching {
        Batching::default()
    }
    /// Delivers several alerts as one (a mail); `Ok` means all of them
    /// arrived, an error that none is known to have. Only called by sinks
    /// whose [`Sink::batching`] allows more than one.
    fn deliver_batch(&mut self, batch: &[(&Alert, &[u8])]) -> Result<(), DeliveryError> {
        batch.iter().try_for_each(|(alert, payload)| self.deliver(alert, payload))
    }
}

/// How a sink groups alerts: up to `max_items` in one delivery, the first
/// waiting at most `max_wait` for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub max_items: usize,
    pub max_wait: Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Batching { max_items: 1, max_wait: Duration::ZERO }
    }
}

/// Queueing and retry settings shared by every sink kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Alerts held in memory for this sink; beyond it they wait in the
    /// journal (or, without a journal, the oldest is dropped and counted).
    pub queue_capacity: usize,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Connect / request / acknowledgement timeout.
    pub timeout_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig { queue_capacity: 1024, retry_initial_ms: 200, retry_max_ms: 30_000, timeout_ms: 5_000 }
    }
}

impl DeliveryConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

/// `alerts.sinks[]` entries, told apart by `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    Console(console::ConsoleConfig),
    Jsonl(jsonl::JsonlConfig),
    Webhook(webhook::WebhookConfig),
    Mqtt(mqtt::MqttConfig),
    Nats(nats::NatsConfig),
    Email(email::EmailConfig),
}

/// Fields every sink kind has (each kind's struct carries them, because
/// serde cannot deny unknown fields through a flattened struct).
#[derive(Debug, Clone, Copy)]
pub struct Common<'a> {
    pub name: Option<&'a str>,
    pub format: PayloadFormat,
    pub delivery: &'a DeliveryConfig,
}

impl SinkConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Console(_) => "console",
            SinkConfig::Jsonl(_) => "jsonl",
            SinkConfig::Webhook(_) => "webhook",
            SinkConfig::Mqtt(_) => "mqtt",
            SinkConfig::Nats(_) => "nats",
            SinkConfig::Email(_) => "email",
        }
    }

    pub fn common(&self) -> Common<'_> {
        match self {
            SinkConfig::Console(c) => {
                Common { name: c.name.as_deref(), format: PayloadFormat::Dshost, delivery: &c.delivery }
            }
            SinkConfig::Jsonl(c) => Common { name: c.name.as_deref(), format: c.format, delivery: &c.delivery },
            SinkConfig::Webhook(c) => Common { name: c.name.as_deref(), format: c.format, delivery: &c.delivery },
            SinkConfig::Mqtt(c) => Common { name: c.name.as_deref(), format: c.format, delivery: &c.delivery },
            SinkConfig::Nats(c) => Common { name: c.name.as_deref(), format: c.format, delivery: &c.delivery },
            SinkConfig::Email(c) => Common { name: c.name.as_deref(), format: c.format, delivery: &c.delivery },
        }
    }

    /// The sink's name: delivery states in the journal and metrics use it.
    pub fn name(&self) -> String {
        self.common().name.map(str::to_string).unwrap_or_else(|| self.kind().to_string())
    }

    /// Checks settings without connecting anywhere: (field, problem) pairs.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let delivery = self.common().delivery;
        if delivery.queue_capacity == 0 {
            problems.push(("delivery.queue_capacity".into(), "must be at least 1".into()));
        }
        if delivery.retry_initial_ms == 0 || delivery.retry_max_ms < delivery.retry_initial_ms {
            problems.push((
                "delivery.retry_initial_ms".into(),
                "must be at least 1 and not above delivery.retry_max_ms".into(),
            ));
        }
        if let Some(name) = self.common().name {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                problems.push(("name".into(), "use letters, digits, `-`, `_` and `.`".into()));
            }
        }
        match self {
            SinkConfig::Console(_) => {}
            SinkConfig::Jsonl(c) => problems.extend(c.validate()),
            SinkConfig::Webhook(c) => problems.extend(c.validate()),
            SinkConfig::Mqtt(c) => problems.extend(c.validate()),
            SinkConfig::Nats(c) => problems.extend(c.validate()),
            SinkConfig::Email(c) => problems.extend(c.validate()),
        }
        problems
    }

    /// Opens the sink (no connection yet: sinks connect on first delivery,
    /// so a broker that is down at start is retried like any outage).
    pub fn build(&self) -> Result<Box<dyn Sink>, String> {
        Ok(match self {
            SinkConfig::Console(c) => Box::new(console::ConsoleSink::new(c)),
            SinkConfig::Jsonl(c) => Box::new(jsonl::JsonlSink::new(c)),
            SinkConfig::Webhook(c) => Box::new(webhook::WebhookSink::new(c)?),
            SinkConfig::Mqtt(c) => Box::new(mqtt::MqttSink::new(c, &self.name())?),
            SinkConfig::Nats(c) => Box::new(nats::NatsSink::new(c)?),
            SinkConfig::Email(c) => Box::new(email::EmailSink::new(c)?),
        })
    }
}

/// Worker settings for a configured sink; `journal` is where it reads back
/// alerts that did not fit its queue.
pub fn worker_settings(
    config: &SinkConfig,
    journal: Option<std::path::PathBuf>,
    snapshot_wait: Duration,
) -> WorkerSettings {
    let common = config.common();
    WorkerSettings {
        name: config.name(),
        kind: config.kind(),
        format: common.format,
        delivery: common.delivery.clone(),
        journal,
        snapshot_wait,
    }
}

/// Fills `{source}`, `{strategy}`, `{pattern}` and `{level}` in a topic or
/// subject template; `clean` makes each value safe for the protocol.
pub fn fill_template(template: &str, alert: &Alert, clean: fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let key = &rest[open + 1..open + close];
        match key {
            "source" => out.push_str(&clean(&alert.source)),
            "strategy" => out.push_str(&clean(&alert.strategy)),
            "pattern" => out.push_str(&clean(&alert.pattern)),
            "level" => out.push_str(alert.level.as_str()),
            other => {
                out.push('{');
                out.push_str(other);
                out.push('}');
            }
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// Placeholders in a template that [`fill_template`] does not know.
pub fn unknown_placeholders(template: &str) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        let key = &rest[open + 1..open + close];
        if !["source", "strategy", "pattern", "level"].contains(&key) {
            unknown.push(key.to_string());
        }
        rest = &rest[open + close + 1..];
    }
    unknown
}

/// A secret from the environment (preferred) or inline in the config.
pub fn secret(inline: &Option<String>, env: &Option<String>, what: &str) -> Result<Option<String>, String> {
    if let Some(variable) = env {
        return match std::env::var(variable) {
            Ok(value) if !value.is_empty() => Ok(Some(value)),
            _ => Err(format!("{what}: the environment variable {variable} is not set")),
        };
    }
    Ok(inline.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::alert::{AlertBox, AlertLevel};

    pub(crate) fn alert() -> Alert {
        Alert {
            id: "0123456789abcdef0123456789abcdef".into(),
            ts: "2026-11-26T10:00:00.123Z".into(),
            source: "gate/north".into(),
            frame: 12,
            pts_ns: 400_000_000,
            strategy: "yolo_filter".into(),
            strategy_version: "0.1.0+sha256:3f2a9c1e".into(),
            pattern: "person".into(),
            confidence: 0.92,
            bbox: AlertBox { left: 100.0, top: 50.0, width: 40.0, height: 120.0 },
            object_id: Some(7),
            level: AlertLevel::High,
            attributes: Default::default(),
            snapshot: None,
        }
    }

    #[test]
    fn templates_fill_known_placeholders_and_keep_unknown_ones() {
        let topic = fill_template("dshost/{source}/{pattern}/{level}/{nope}", &alert(), |v| v.replace('/', "_"));
        assert_eq!(topic, "dshost/gate_north/person/high/{nope}");
        assert_eq!(unknown_placeholders("a/{source}/{nope}/{level}"), vec!["nope".to_string()]);
    }

    #[test]
    fn sink_configs_parse_by_type_and_reject_unknown_fields() {
        let sinks: Vec<SinkConfig> = serde_yaml::from_str(
            "- type: console\n- type: mqtt\n  name: broker\n  address: 127.0.0.1:1883\n  delivery: {queue_capacity: 8}\n",
        )
        .unwrap();
        assert_eq!(sinks[0].name(), "console");
        assert_eq!(sinks[1].name(), "broker");
        assert_eq!(sinks[1].common().delivery.queue_capacity, 8);
        let error = serde_yaml::from_str::<Vec<SinkConfig>>("- type: mqtt\n  adress: x:1\n").unwrap_err();
        assert!(error.to_string().contains("adress"), "{error}");
        let error = serde_yaml::from_str::<Vec<SinkConfig>>("- type: kafka\n").unwrap_err();
        assert!(error.to_string().contains("kafka"), "{error}");
    }
}
