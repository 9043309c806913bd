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
                writeln!(out, "{}", line(alert))
            };
            written.and_then(|()| out.flush())
        });
        // A closed stdout (`dshost | head`) will not come back: retrying
        // would only hold up shutdown, so the alert counts as rejected here.
        written.map_err(|e| DeliveryError::Reject(format!("stdout: {e}")))
    }
}

/// The console's line: [`readable`], then where the alert's picture is
/// (the sink waits for it, bounded by `snapshots.wait_ms`), so an operator
/// can open the evidence of what they read.
fn line(alert: &Alert) -> String {
    match &alert.snapshot {
        Some(snapshot) => format!("{} | snapshot {}", readable(alert), snapshot.path),
        None => readable(alert),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::alert::{AlertBox, AlertLevel, Finding, Origin};
    use crate::alerts::snapshot::Snapshot;

    fn alert() -> Alert {
        let finding = Finding {
            pattern: "person".into(),
            confidence: 0.84,
            bbox: AlertBox { left: 640.0, top: 241.0, width: 45.0, height: 82.0 },
            object_id: Some(1),
            level: AlertLevel::Medium,
            attributes: Vec::new(),
        };
        let origin = Origin {
            source: "source-1",
            frame: 0,
            pts_ns: 0,
            strategy: "yolo_filter",
            strategy_version: "0.1.0",
            index: 0,
            run: 0,
        };
        Alert::from_finding(finding, origin, std::time::SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn the_line_names_the_picture_when_there_is_one() {
        let mut alert = alert();
        assert!(line(&alert).ends_with("person 0.84 at 640,241 45x82 id=1"), "{}", line(&alert));
        alert.snapshot = Some(Snapshot {
            path: "/data/snapshots/ab/abcd.jpg".into(),
            sha256: "00".into(),
            width: 768,
            height: 576,
            crop: None,
        });
        assert!(line(&alert).ends_with("id=1 | snapshot /data/snapshots/ab/abcd.jpg"), "{}", line(&alert));
    }
}
