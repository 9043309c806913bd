//! Readable alert lines (or JSON lines) on stdout.

use serde::Deserialize;

use super::{DeliveryConfig, DeliveryError, Sink};
use crate::alerts::alert::Alert;

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    pub name: Option<String>,
    /// Print the alert JSON line instead of the readable line.
    pub json: bool,
    pub delivery: DeliveryConfig,
}

pub struct ConsoleSink {
    json: bool,
}

impl ConsoleSink {
    pub fn new(config: &ConsoleConfig) -> ConsoleSink {
        ConsoleSink { json: config.json }
    }
}

impl Sink for ConsoleSink {
    fn deliver(&mut self, alert: &Alert, payload: &[u8]) -> Result<(), DeliveryError> {
        let json = self.json;
        let written = super::with_stdout(|out| {
            let written = if json {
                out.write_all(payload).and_then(|()| out.write_all(b"\n"))
            } else {
                writeln!(out, "{}", readable(alert))
            };
            written.and_then(|()| out.flush())
        });
        // A closed stdout (`dshost | head`) will not come back: retrying
        // would only hold up shutdown, so the alert counts as rejected here.
        written.map_err(|e| DeliveryError::Reject(format!("stdout: {e}")))
    }
}

/// One line a person can read.
pub fn readable(alert: &Alert) -> String {
    let id = alert.object_id.map(|id| format!(" id={id}")).unwrap_or_default();
    let attributes: Vec<String> = alert.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{} [{}] {} #{} {}: {} {:.2} at {:.0},{:.0} {:.0}x{:.0}{}{}",
        alert.ts,
        alert.level.as_str(),
        alert.source,
        alert.frame,
        alert.strategy,
        alert.pattern,
        alert.confidence,
        alert.bbox.left,
        alert.bbox.top,
        alert.bbox.width,
        alert.bbox.height,
        id,
        if attributes.is_empty() { String::new() } else { format!(" {}", attributes.join(" ")) }
    )
}
