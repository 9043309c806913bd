//! The alert record and its JSON-lines form (a stable external contract):
//!
//! `{"id":"...","ts":"2026-11-26T10:00:00.123Z","source":"cam-1","frame":12,
//!   "pts_ns":400000000,"strategy":"yolo_filter","strategy_version":"0.1.0+sha256:3f2a9c1e",
//!   "pattern":"person","confidence":0.92,"bbox":{"left":100,"top":50,"width":40,"height":120},
//!   "object_id":7,"level":"medium"}`
//!
//! `attributes` is added when the strategy set any, and `snapshot`
//! (`{"path","sha256","width","height","crop"}`) when a picture was taken.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    Low,
    Medium,
    High,
    Critical,
}

impl AlertLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Low => "low",
            AlertLevel::Medium => "medium",
            AlertLevel::High => "high",
            AlertLevel::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlertBox {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id: the same detection always gets the same id, so consumers
    /// can de-duplicate redeliveries.
    pub id: String,
    /// When the alert was created, RFC 3339 UTC with milliseconds.
    pub ts: String,
    pub source: String,
    pub frame: u64,
    pub pts_ns: u64,
    pub strategy: String,
    pub strategy_version: String,
    /// Shared with the strategy's answer and the throttle's keys.
    pub pattern: Arc<str>,
    pub confidence: f32,
    pub bbox: AlertBox,
    pub object_id: Option<u64>,
    pub level: AlertLevel,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// The picture of the frame the detection came from (when snapshots are
    /// on and one was taken); added once it is encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<super::snapshot::Snapshot>,
}

/// What a strategy found, as the alert stage takes it (validated by the
/// strategy runtime before it gets here).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub pattern: Arc<str>,
    pub confidence: f32,
    pub bbox: AlertBox,
    pub object_id: Option<u64>,
    pub level: AlertLevel,
    pub attributes: Vec<(String, String)>,
}

/// Where a detection came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub source: &'a str,
    pub frame: u64,
    pub pts_ns: u64,
    pub strategy: &'a str,
    pub strategy_version: &'a str,
    /// Position of the detection within the strategy's answer for the frame.
    pub index: usize,
    /// Distinguishes runs of the process (frame numbers restart with it);
    /// 0 for replays, which must give the same ids every time.
    pub run: u64,
}

impl Alert {
    pub fn from_finding(finding: Finding, origin: Origin<'_>, now: SystemTime) -> Alert {
        Alert {
            id: alert_id(&origin),
            ts: humantime::format_rfc3339_millis(now).to_string(),
            source: origin.source.to_string(),
            frame: origin.frame,
            pts_ns: origin.pts_ns,
            strategy: origin.strategy.to_string(),
            strategy_version: origin.strategy_version.to_string(),
            pattern: finding.pattern,
            confidence: finding.confidence,
            bbox: finding.bbox,
            object_id: finding.object_id,
            level: finding.level,
            attributes: finding.attributes.into_iter().collect(),
            snapshot: None,
        }
    }

    /// The alert as one JSON line (without the newline).
    pub fn to_json_line(&self) -> String {
        // Serializing plain strings and numbers cannot fail; non-finite
        // floats were rejected by validation.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// 128-bit id derived from where the detection came from.
fn alert_id(origin: &Origin<'_>) -> String {
    let mut hasher = Sha256::new();
    for part in [origin.source, origin.strategy, origin.strategy_version] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.update(origin.frame.to_le_bytes());
    hasher.update(origin.pts_ns.to_le_bytes());
    hasher.update((origin.index as u64).to_le_bytes());
    hasher.update(origin.run.to_le_bytes());
    hasher.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection() -> Finding {
        Finding {
            pattern: "person".into(),
            confidence: 0.92,
            bbox: AlertBox { left: 100.0, top: 50.0, width: 40.0, height: 120.0 },
            object_id: Some(7),
            level: AlertLevel::Medium,
            attributes: Vec::new(),
        }
    }

    fn origin(index: usize) -> Origin<'static> {
        Origin {
            source: "cam-1",
            frame: 12,
            pts_ns: 400_000_000,
            strategy: "yolo_filter",
            strategy_version: "0.1.0+sha256:3f2a9c1e",
            index,
            run: 0,
        }
    }

    #[test]
    fn json_line_matches_the_contract() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_687_200_123);
        let alert = Alert::from_finding(detection(), origin(0), now);
        let value: serde_json::Value = serde_json::from_str(&alert.to_json_line()).unwrap();
        assert_eq!(value["ts"], "2026-11-26T10:00:00.123Z");
        assert_eq!(value["source"], "cam-1");
        assert_eq!(value["strategy_version"], "0.1.0+sha256:3f2a9c1e");
        assert_eq!(value["bbox"]["width"], 40.0);
        assert_eq!(value["object_id"], 7);
        assert_eq!(value["level"], "medium");
        assert!(value.get("attributes").is_none());
        assert_eq!(value["id"].as_str().unwrap().len(), 32);
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let now = SystemTime::now();
        let a = Alert::from_finding(detection(), origin(0), now);
        let b = Alert::from_finding(detection(), origin(0), now);
        let c = Alert::from_finding(detection(), origin(1), now);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
    }
}
