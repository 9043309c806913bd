//! What a sink sends: the alert JSON of the architecture contract, or
//! DeepStream's minimal message schema for consumers built for `nvmsgconv`.

use serde::Deserialize;

use crate::alerts::alert::Alert;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// The alert JSON line (`{"id":...,"ts":...,"source":...}`).
    #[default]
    Dshost,
    /// DeepStream's minimal schema (`nvmsgconv` payload-type 1): version,
    /// id, @timestamp, sensorId and one `id|left|top|right|bottom|label`
    /// string per object.
    Deepstream,
}

impl PayloadFormat {
    pub fn encode(self, alert: &Alert) -> Vec<u8> {
        match self {
            PayloadFormat::Dshost => alert.to_json_line().into_bytes(),
            PayloadFormat::Deepstream => deepstream_minimal(alert).into_bytes(),
        }
    }
}

fn deepstream_minimal(alert: &Alert) -> String {
    // DeepStream writes -1 (as an unsigned 64-bit value) for untracked objects;
    // consumers parse the field as text, so say -1 plainly.
    let object_id = alert.object_id.map(|id| id.to_string()).unwrap_or_else(|| "-1".to_string());
    let b = &alert.bbox;
    let object = format!(
        "{object_id}|{:.0}|{:.0}|{:.0}|{:.0}|{}",
        b.left,
        b.top,
        b.left + b.width,
        b.top + b.height,
        alert.pattern.replace('|', "_")
    );
    serde_json::json!({
        "version": "4.0",
        "id": alert.id,
        "@timestamp": alert.ts,
        "sensorId": alert.source,
        "objects": [object],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deepstream_minimal_schema() {
        let alert = crate::alerts::sinks::tests::alert();
        let value: serde_json::Value = serde_json::from_slice(&PayloadFormat::Deepstream.encode(&alert)).unwrap();
        assert_eq!(value["version"], "4.0");
        assert_eq!(value["sensorId"], "gate/north");
        assert_eq!(value["@timestamp"], "2026-11-26T10:00:00.123Z");
        assert_eq!(value["objects"][0], "7|100|50|140|170|person");
        let plain: serde_json::Value = serde_json::from_slice(&PayloadFormat::Dshost.encode(&alert)).unwrap();
        assert_eq!(plain["id"], alert.id);
    }
}
