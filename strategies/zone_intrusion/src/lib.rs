//! `zone_intrusion`: named polygon zones with enter, leave and loiter events
//! per tracked object. Untracked objects carry no identity, so they cannot
//! enter or leave anything and are ignored (run a tracker upstream).

use std::collections::{BTreeMap, BTreeSet};

use dshost_sdk::geometry::{normalize, Polygon};
use dshost_sdk::layout::Object;
use dshost_sdk::{Detection, FrameHeader, HostContext, Level, Objects, Strategy, StrategyInfo};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneConfig {
    name: String,
    /// Polygon in normalized 0..1 frame coordinates.
    polygon: Vec<[f32; 2]>,
    /// Labels that count; empty or absent = every class.
    #[serde(default)]
    classes: Vec<String>,
    /// Dwell time after which a `zone_loiter` event fires (once per stay).
    #[serde(default)]
    loiter_seconds: Option<f64>,
}

fn default_min_confidence() -> f32 {
    0.3
}

fn default_lost_after_seconds() -> f64 {
    2.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    zones: Vec<ZoneConfig>,
    #[serde(default = "default_min_confidence")]
    min_confidence: f32,
    /// An object not seen for this long has left every zone it was in.
    #[serde(default = "default_lost_after_seconds")]
    lost_after_seconds: f64,
}

struct Zone {
    name: String,
    polygon: Polygon,
    classes: Option<BTreeSet<u32>>,
    loiter_ns: Option<u64>,
}

/// Where one tracked object is.
struct TrackState {
    last_seen_ns: u64,
    last_object: Object,
    /// Zone index -> (entered at, loiter already reported).
    inside: BTreeMap<usize, (u64, bool)>,
}

pub struct ZoneIntrusion {
    zones: Vec<Zone>,
    min_confidence: f32,
    lost_after_ns: u64,
    labels: Vec<String>,
    tracks: BTreeMap<u64, TrackState>,
    /// The last frame's pts, to tell a restarted stream.
    last_pts_ns: Option<u64>,
}

fn seconds_to_ns(seconds: f64) -> u64 {
    (seconds * 1e9) as u64
}

impl ZoneIntrusion {
    /// Forgets the tracks whose last sighting is `lost`; each leaves the
    /// zones it was in (`reason: lost`).
    fn leave_lost(&mut self, lost: impl Fn(u64) -> bool, detections: &mut Vec<Detection>) {
        let ids: Vec<u64> = self.tracks.iter().filter(|(_, t)| lost(t.last_seen_ns)).map(|(id, _)| *id).collect();
        for id in ids {
            if let Some(track) = self.tracks.remove(&id) {
                for index in track.inside.keys() {
                    let mut detection = self.event("zone_leave", &self.zones[*index], &track.last_object, Level::Low);
                    detection.attributes.push(("reason".to_string(), "lost".to_string()));
                    detections.push(detection);
                }
            }
        }
    }

    fn event(&self, pattern: &str, zone: &Zone, object: &Object, level: Level) -> Detection {
        let label = self.labels.get(object.class_id as usize).cloned().unwrap_or_default();
        dshost_sdk::detect(pattern)
            .from_object(object)
            .level(level)
            .attribute("zone", &zone.name)
            .attribute("class", label)
            .build()
    }
}

impl Strategy for ZoneIntrusion {
    fn describe() -> StrategyInfo {
        StrategyInfo {
            needs_tracking: true,
            ..dshost_sdk::info(
                "zone_intrusion",
                env!("CARGO_PKG_VERSION"),
                "enter, leave and loiter events for named polygon zones",
            )
        }
    }

    fn configure(config: &str, context: &HostContext) -> Result<Self, String> {
        let config: Config = dshost_sdk::parse_config(config)?;
        if config.zones.is_empty() {
            return Err("`zones` must name at least one zone".to_string());
        }
        if !(config.lost_after_seconds.is_finite() && config.lost_after_seconds > 0.0) {
            return Err("`lost_after_seconds` must be a positive number".to_string());
        }
        let mut zones = Vec::new();
        let mut names = BTreeSet::new();
        for (index, zone) in config.zones.into_iter().enumerate() {
            let at = format!("`zones[{index}]`");
            if zone.name.is_empty() || !names.insert(zone.name.clone()) {
                return Err(format!("{at}: `name` must be non-empty and unique"));
            }
            let polygon = Polygon::new(zone.polygon.into_iter().map(|[x, y]| (x, y)).collect())
                .map_err(|e| format!("{at}.polygon: {e}"))?;
            let classes = if zone.classes.is_empty() {
                None
            } else {
                let ids = dshost_sdk::class_ids(context, &zone.classes).map_err(|e| format!("{at}.classes: {e}"))?;
                Some(ids.into_iter().collect())
            };
            let loiter_ns = match zone.loiter_seconds {
                None => None,
                Some(s) if s.is_finite() && s >= 0.0 => Some(seconds_to_ns(s)),
                Some(s) => return Err(format!("{at}.loiter_seconds must be zero or positive, got {s}")),
            };
            zones.push(Zone { name: zone.name, polygon, classes, loiter_ns });
        }
        Ok(ZoneIntrusion {
            zones,
            min_confidence: config.min_confidence,
            lost_after_ns: seconds_to_ns(config.lost_after_seconds),
            labels: context.class_labels.clone(),
            tracks: BTreeMap::new(),
            last_pts_ns: None,
        })
    }

    fn process(&mut self, frame: &FrameHeader, objects: Objects<'_>) -> Result<Vec<Detection>, String> {
        let now = frame.pts_ns;
        let mut detections = Vec::new();
        // A frame older than the last one: the stream restarted (the camera
        // reconnected, the file looped). The old timeline's tracks are lost;
        // kept, a looping file's tracks of a loop's last seconds would never
        // pass `lost_after` and pile up.
        if self.last_pts_ns.is_some_and(|last| now < last) {
            self.leave_lost(|_| true, &mut detections);
        }
        self.last_pts_ns = Some(now);
        for object in objects.iter() {
            let Some(id) = object.track_id() else {
                continue;
            };
            if object.confidence < self.min_confidence {
                continue;
            }
            let point = normalize(object.bottom_center(), frame.width, frame.height);
            let track = self.tracks.entry(id).or_insert_with(|| TrackState {
                last_seen_ns: now,
                last_object: object,
                inside: BTreeMap::new(),
            });
            track.last_seen_ns = now;
            track.last_object = object;
            let mut events = Vec::new();
            for (index, zone) in self.zones.iter().enumerate() {
                let applies = zone.classes.as_ref().is_none_or(|c| c.contains(&object.class_id));
                let inside = applies && zone.polygon.contains(point);
                match (inside, track.inside.get_mut(&index)) {
                    (true, None) => {
                        track.inside.insert(index, (now, false));
                        events.push(("zone_enter", index, Level::Medium));
                    }
                    (true, Some((entered, reported))) => {
                        if let Some(loiter) = zone.loiter_ns {
                            if !*reported && now.saturating_sub(*entered) >= loiter {
                                *reported = true;
                                events.push(("zone_loiter", index, Level::High));
                            }
                        }
                    }
                    (false, Some(_)) => {
                        track.inside.remove(&index);
                        events.push(("zone_leave", index, Level::Low));
                    }
                    (false, None) => {}
                }
            }
            for (pattern, index, level) in events {
                detections.push(self.event(pattern, &self.zones[index], &object, level));
            }
        }
        // Objects gone for too long leave every zone they were in.
        let lost_after = self.lost_after_ns;
        self.leave_lost(|last_seen| now.saturating_sub(last_seen) > lost_after, &mut detections);
        Ok(detections)
    }
}

dshost_sdk::export_strategy!(ZoneIntrusion);

#[cfg(test)]
mod tests {
    use super::*;
    use dshost_sdk::layout::encode_objects;

    const SECOND: u64 = 1_000_000_000;

    fn context() -> HostContext {
        HostContext {
            source_id: "cam-1".into(),
            class_labels: vec!["person".into(), "bicycle".into(), "car".into()],
            host_version: "test".into(),
        }
    }

    fn person_at(x: f32, id: u64) -> Object {
        // 20x40 box whose bottom-centre is at (x, 500) on a 1000x1000 frame.
        Object { left: x - 10.0, top: 460.0, width: 20.0, height: 40.0, confidence: 0.9, class_id: 0, object_id: id }
    }

    fn step(strategy: &mut ZoneIntrusion, t: u64, objects: &[Object]) -> Vec<(String, Option<u64>)> {
        let frame = FrameHeader { source_id: "cam-1".into(), frame_number: t, pts_ns: t, width: 1000, height: 1000 };
        let buffer = encode_objects(objects);
        strategy
            .process(&frame, Objects::new(&buffer).unwrap())
            .unwrap()
            .into_iter()
            .map(|d| (d.pattern, d.object_id))
            .collect()
    }

    #[test]
    fn enter_loiter_leave_and_lost() {
        let config = r#"{"zones": [{"name": "left", "polygon": [[0,0],[0.5,0],[0.5,1],[0,1]], "loiter_seconds": 3}]}"#;
        let mut zone = ZoneIntrusion::configure(config, &context()).unwrap();
        assert_eq!(step(&mut zone, 0, &[person_at(800.0, 1)]), vec![]);
        assert_eq!(step(&mut zone, SECOND, &[person_at(300.0, 1)]), vec![("zone_enter".into(), Some(1))]);
        assert_eq!(step(&mut zone, 3 * SECOND, &[person_at(300.0, 1)]), vec![]);
        assert_eq!(step(&mut zone, 4 * SECOND, &[person_at(310.0, 1)]), vec![("zone_loiter".into(), Some(1))]);
        assert_eq!(step(&mut zone, 5 * SECOND, &[person_at(320.0, 1)]), vec![], "loiter fires once per stay");
        assert_eq!(step(&mut zone, 6 * SECOND, &[person_at(700.0, 1)]), vec![("zone_leave".into(), Some(1))]);
        assert_eq!(step(&mut zone, 7 * SECOND, &[person_at(100.0, 2)]), vec![("zone_enter".into(), Some(2))]);
        assert_eq!(step(&mut zone, 10 * SECOND, &[]), vec![("zone_leave".into(), Some(2))], "lost track leaves");
    }

    #[test]
    fn a_restarted_stream_loses_the_old_tracks() {
        let config = r#"{"zones": [{"name": "left", "polygon": [[0,0],[0.5,0],[0.5,1],[0,1]]}]}"#;
        let mut zone = ZoneIntrusion::configure(config, &context()).unwrap();
        assert_eq!(step(&mut zone, 5 * SECOND, &[person_at(300.0, 1)]), vec![("zone_enter".into(), Some(1))]);
        // The stream restarts (pts from 0; a camera reconnected, a file
        // looped): object 1 of the old timeline is lost at once, not kept
        // until the new timeline passes 5 s.
        assert_eq!(
            step(&mut zone, 0, &[person_at(800.0, 2)]),
            vec![("zone_leave".into(), Some(1))],
            "the old track leaves"
        );
        // A looping file whose objects get new ids each loop: the tracks of a
        // loop's last seconds do not pile up.
        let mut id = 10;
        for _loop in 0..100 {
            for t in 0..10 {
                id += 1;
                step(&mut zone, t * SECOND / 10, &[person_at(800.0, id)]);
            }
        }
        assert!(zone.tracks.len() <= 10, "{} tracks", zone.tracks.len());
    }

    #[test]
    fn class_filter_and_untracked_objects() {
        let config = r#"{"zones": [{"name": "road", "polygon": [[0,0],[1,0],[1,1],[0,1]], "classes": ["car"]}]}"#;
        let mut zone = ZoneIntrusion::configure(config, &context()).unwrap();
        let untracked_car = Object { class_id: 2, ..person_at(500.0, dshost_sdk::UNTRACKED) };
        assert_eq!(step(&mut zone, 0, &[person_at(500.0, 1), untracked_car]), vec![]);
        let car = Object { class_id: 2, ..person_at(500.0, 5) };
        assert_eq!(step(&mut zone, 1, &[car]), vec![("zone_enter".into(), Some(5))]);
    }

    #[test]
    fn config_errors() {
        let err = |c: &str| ZoneIntrusion::configure(c, &context()).err().unwrap();
        assert!(err(r#"{"zones": []}"#).contains("at least one zone"));
        assert!(err(r#"{"zones": [{"name": "a", "polygon": [[0,0],[1,1]]}]}"#).contains("zones[0]`.polygon"));
        assert!(err(r#"{"zones": [{"name": "a", "polygon": [[0,0],[1,0],[1,1]], "classes": ["cow"]}]}"#)
            .contains("unknown label `cow`"));
        assert!(err(r#"{}"#).contains("missing field `zones`"));
    }
}
