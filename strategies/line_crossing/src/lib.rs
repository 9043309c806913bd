//! `line_crossing`: directional counts across named lines, per class.
//!
//! Counting rules that keep counts honest:
//! - Only tracked objects count: an untracked detection has no identity, so
//!   counting it would count every frame (the failure of supervision's
//!   `LineZone`).
//! - An object's side is decided by its bottom-centre point. Within
//!   `hysteresis` (normalized distance) of the line it is on neither side, so
//!   a box that flickers around the line changes nothing.
//! - A side change counts only after the object has stayed on the new side
//!   for `min_frames` consecutive frames, and only where it passes within the
//!   segment (not beyond its ends).
//!
//! Counts and per-track sides survive hot reload through the stateful world.

use std::collections::BTreeMap;

use dshost_sdk::geometry::{normalize, Segment};
use dshost_sdk::{Detection, FrameHeader, HostContext, Level, Objects, StatefulStrategy, Strategy, StrategyInfo};
use serde::{Deserialize, Serialize};

fn default_in_name() -> String {
    "in".to_string()
}

fn default_out_name() -> String {
    "out".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineConfig {
    name: String,
    /// Endpoints in normalized 0..1 frame coordinates. Crossing towards the
    /// right-hand side of start -> end (as seen on screen) is `in`.
    start: [f32; 2],
    end: [f32; 2],
    #[serde(default)]
    classes: Vec<String>,
    #[serde(default = "default_in_name")]
    in_name: String,
    #[serde(default = "default_out_name")]
    out_name: String,
}

fn default_hysteresis() -> f32 {
    0.02
}

fn default_min_frames() -> u32 {
    2
}

fn default_min_confidence() -> f32 {
    0.3
}

fn default_track_timeout_seconds() -> f64 {
    5.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    lines: Vec<LineConfig>,
    #[serde(default = "default_hysteresis")]
    hysteresis: f32,
    #[serde(default = "default_min_frames")]
    min_frames: u32,
    #[serde(default = "default_min_confidence")]
    min_confidence: f32,
    #[serde(default = "default_track_timeout_seconds")]
    track_timeout_seconds: f64,
}

struct Line {
    name: String,
    segment: Segment,
    classes: Option<Vec<u32>>,
    in_name: String,
    out_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Side {
    Left,
    Right,
}

/// One track's position relative to one line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LineSide {
    confirmed: Option<Side>,
    pending: Option<(Side, u32)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Track {
    last_seen_ns: u64,
    /// Line name -> side.
    sides: BTreeMap<String, LineSide>,
}

/// Counts per line, per class label: `[in, out]`.
type Counts = BTreeMap<String, BTreeMap<String, [u64; 2]>>;

/// What `save-state` writes. Versioned so later builds can read it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedState {
    version: u32,
    counts: Counts,
    tracks: BTreeMap<u64, Track>,
}

const STATE_VERSION: u32 = 1;

pub struct LineCrossing {
    lines: Vec<Line>,
    hysteresis: f32,
    min_frames: u32,
    min_confidence: f32,
    track_timeout_ns: u64,
    labels: Vec<String>,
    counts: Counts,
    tracks: BTreeMap<u64, Track>,
    /// The last frame's pts, to tell a restarted stream.
    last_pts_ns: Option<u64>,
}

impl LineCrossing {
    fn label(&self, class_id: u32) -> String {
        match self.labels.get(class_id as usize) {
            Some(label) if !label.is_empty() => label.clone(),
            _ => format!("class_{class_id}"),
        }
    }

    /// Total counts of a line over every class, `[in, out]`.
    fn totals(&self, line: &str) -> [u64; 2] {
        self.counts
            .get(line)
            .map(|per_class| per_class.values().fold([0, 0], |acc, c| [acc[0] + c[0], acc[1] + c[1]]))
            .unwrap_or([0, 0])
    }
}

impl Strategy for LineCrossing {
    fn describe() -> StrategyInfo {
        StrategyInfo {
            needs_tracking: true,
            ..dshost_sdk::info(
                "line_crossing",
                env!("CARGO_PKG_VERSION"),
                "directional per-class counts across named lines, kept across reloads",
            )
        }
    }

    fn configure(config: &str, context: &HostContext) -> Result<Self, String> {
        let config: Config = dshost_sdk::parse_config(config)?;
        if config.lines.is_empty() {
            return Err("`lines` must name at least one line".to_string());
        }
        if !(config.hysteresis.is_finite() && (0.0..0.5).contains(&config.hysteresis)) {
            return Err(format!("`hysteresis` must be within 0..0.5, got {}", config.hysteresis));
        }
        if config.min_frames == 0 {
            return Err("`min_frames` must be at least 1".to_string());
        }
        if !(config.track_timeout_seconds.is_finite() && config.track_timeout_seconds > 0.0) {
            return Err("`track_timeout_seconds` must be a positive number".to_string());
        }
        let mut lines: Vec<Line> = Vec::new();
        for (index, line) in config.lines.into_iter().enumerate() {
            let at = format!("`lines[{index}]`");
            if line.name.is_empty() || lines.iter().any(|l| l.name == line.name) {
                return Err(format!("{at}: `name` must be non-empty and unique"));
            }
            let segment = Segment::new((line.start[0], line.start[1]), (line.end[0], line.end[1]))
                .map_err(|e| format!("{at}: {e}"))?;
            let classes = if line.classes.is_empty() {
                None
            } else {
                Some(dshost_sdk::class_ids(context, &line.classes).map_err(|e| format!("{at}.classes: {e}"))?)
            };
            lines.push(Line { name: line.name, segment, classes, in_name: line.in_name, out_name: line.out_name });
        }
        Ok(LineCrossing {
            lines,
            hysteresis: config.hysteresis,
            min_frames: config.min_frames,
            min_confidence: config.min_confidence,
            track_timeout_ns: (config.track_timeout_seconds * 1e9) as u64,
            labels: context.class_labels.clone(),
            counts: Counts::new(),
            tracks: BTreeMap::new(),
            last_pts_ns: None,
        })
    }

    fn process(&mut self, frame: &FrameHeader, objects: Objects<'_>) -> Result<Vec<Detection>, String> {
        let now = frame.pts_ns;
        // A frame older than the last one: the stream restarted (the camera
        // reconnected, the file looped). Its tracks belong to the old
        // timeline: forgotten, so a new object that gets an old id does not
        // inherit its sides, and a looping file's tracks do not pile up (the
        // timeout below never passes for a loop's last seconds).
        if self.last_pts_ns.is_some_and(|last| now < last) {
            self.tracks.clear();
        }
        self.last_pts_ns = Some(now);
        let mut crossings = Vec::new();
        for object in objects.iter() {
            let Some(id) = object.track_id() else {
                continue;
            };
            if object.confidence < self.min_confidence {
                continue;
            }
            let point = normalize(object.bottom_center(), frame.width, frame.height);
            let track = self.tracks.entry(id).or_default();
            track.last_seen_ns = now;
            for (index, line) in self.lines.iter().enumerate() {
                if line.classes.as_ref().is_some_and(|c| !c.contains(&object.class_id)) {
                    continue;
                }
                let distance = line.segment.signed_distance(point);
                if distance.abs() < self.hysteresis {
                    continue; // dead band: neither side
                }
                let side = if distance > 0.0 { Side::Right } else { Side::Left };
                let state = track.sides.entry(line.name.clone()).or_default();
                match state.confirmed {
                    None => state.confirmed = Some(side),
                    Some(confirmed) if confirmed == side => state.pending = None,
                    Some(_) => {
                        let seen = match state.pending {
                            Some((pending, count)) if pending == side => count + 1,
                            _ => 1,
                        };
                        state.pending = Some((side, seen));
                        if seen >= self.min_frames {
                            state.confirmed = Some(side);
                            state.pending = None;
                            let along = line.segment.projection(point);
                            if (0.0..=1.0).contains(&along) {
                                crossings.push((index, side, object));
                            }
                        }
                    }
                }
            }
        }
        let mut detections = Vec::new();
        for (index, side, object) in crossings {
            let label = self.label(object.class_id);
            let line = &self.lines[index];
            let (direction, slot) = match side {
                Side::Right => (line.in_name.clone(), 0),
                Side::Left => (line.out_name.clone(), 1),
            };
            let name = line.name.clone();
            let per_class = self.counts.entry(name.clone()).or_default().entry(label.clone()).or_insert([0, 0]);
            per_class[slot] += 1;
            let count = per_class[slot];
            let [total_in, total_out] = self.totals(&name);
            detections.push(
                dshost_sdk::detect("line_cross")
                    .from_object(&object)
                    .level(Level::Low)
                    .attribute("line", &name)
                    .attribute("direction", direction)
                    .attribute("class", label)
                    .attribute("count", count)
                    .attribute("total_in", total_in)
                    .attribute("total_out", total_out)
                    .build(),
            );
        }
        let timeout = self.track_timeout_ns;
        self.tracks.retain(|_, track| now.saturating_sub(track.last_seen_ns) <= timeout);
        Ok(detections)
    }
}

impl StatefulStrategy for LineCrossing {
    fn save_state(&self) -> Vec<u8> {
        let state = SavedState { version: STATE_VERSION, counts: self.counts.clone(), tracks: self.tracks.clone() };
        serde_json::to_vec(&state).unwrap_or_default()
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        if state.is_empty() {
            return Ok(());
        }
        let saved: SavedState =
            serde_json::from_slice(state).map_err(|e| format!("cannot read saved line_crossing state: {e}"))?;
        if saved.version > STATE_VERSION {
            return Err(format!("saved state has version {}, this build reads up to {STATE_VERSION}", saved.version));
        }
        self.counts = saved.counts;
        self.tracks = saved.tracks;
        Ok(())
    }
}

dshost_sdk::export_stateful_strategy!(LineCrossing);

#[cfg(test)]
mod tests {
    use super::*;
    use dshost_sdk::layout::{encode_objects, Object, UNTRACKED};

    fn context() -> HostContext {
        HostContext {
            source_id: "cam-1".into(),
            class_labels: vec!["person".into(), "bicycle".into(), "car".into()],
            host_version: "test".into(),
        }
    }

    /// A horizontal line across the middle of a 1000x1000 frame.
    const CONFIG: &str = r#"{"lines": [{"name": "gate", "start": [0, 0.5], "end": [1, 0.5]}]}"#;

    /// An object whose bottom-centre is at (500, y).
    fn at(y: f32, id: u64) -> Object {
        Object { left: 490.0, top: y - 40.0, width: 20.0, height: 40.0, confidence: 0.9, class_id: 0, object_id: id }
    }

    fn run(strategy: &mut LineCrossing, frames: &[Vec<Object>]) -> Vec<Vec<(String, String)>> {
        run_from(strategy, 0, frames)
    }

    /// `frames` as the stream's frames `first`, `first + 1`, ... (30 fps).
    fn run_from(strategy: &mut LineCrossing, first: usize, frames: &[Vec<Object>]) -> Vec<Vec<(String, String)>> {
        let mut out = Vec::new();
        for (n, objects) in frames.iter().enumerate() {
            let n = first + n;
            let frame = FrameHeader {
                source_id: "cam-1".into(),
                frame_number: n as u64,
                pts_ns: n as u64 * 33_000_000,
                width: 1000,
                height: 1000,
            };
            let buffer = encode_objects(objects);
            for d in strategy.process(&frame, Objects::new(&buffer).unwrap()).unwrap() {
                out.push(d.attributes);
            }
        }
        out
    }

    fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> &'a str {
        &attrs.iter().find(|(k, _)| k == key).unwrap().1
    }

    #[test]
    fn counts_each_direction_once() {
        let mut lc = LineCrossing::configure(CONFIG, &context()).unwrap();
        let events = run(
            &mut lc,
            &[vec![at(300.0, 1)], vec![at(450.0, 1)], vec![at(600.0, 1)], vec![at(650.0, 1)], vec![at(700.0, 1)]],
        );
        assert_eq!(events.len(), 1);
        assert_eq!(attr(&events[0], "direction"), "in");
        assert_eq!(attr(&events[0], "count"), "1");
        let back = run_from(&mut lc, 5, &[vec![at(300.0, 1)], vec![at(250.0, 1)]]);
        assert_eq!(attr(&back[0], "direction"), "out");
        assert_eq!(attr(&back[0], "total_in"), "1");
        assert_eq!(attr(&back[0], "total_out"), "1");
    }

    #[test]
    fn flicker_and_untracked_do_not_count() {
        let mut lc = LineCrossing::configure(CONFIG, &context()).unwrap();
        // Flicker inside the dead band (0.5 +- 0.02) and single-frame jumps.
        let frames = vec![
            vec![at(400.0, 1)],
            vec![at(510.0, 1)],
            vec![at(490.0, 1)],
            vec![at(560.0, 1)],
            vec![at(400.0, 1)],
            vec![at(560.0, 1)],
            vec![at(400.0, 1)],
        ];
        assert!(run(&mut lc, &frames).is_empty());
        let untracked = vec![vec![at(300.0, UNTRACKED)], vec![at(700.0, UNTRACKED)], vec![at(700.0, UNTRACKED)]];
        assert!(run(&mut lc, &untracked).is_empty());
    }

    #[test]
    fn a_restarted_stream_forgets_the_old_tracks() {
        let mut lc = LineCrossing::configure(CONFIG, &context()).unwrap();
        // Object 1 crosses in, below the line.
        let crossing = [vec![at(300.0, 1)], vec![at(600.0, 1)], vec![at(650.0, 1)], vec![at(700.0, 1)]];
        assert_eq!(run(&mut lc, &crossing).len(), 1);
        // The camera reconnects (pts from 0) and its new tracker gives id 1
        // to an object standing above the line: not a crossing of the old one.
        assert!(run(&mut lc, &[vec![at(300.0, 1)], vec![at(300.0, 1)], vec![at(300.0, 1)]]).is_empty());
        // A looping file: every loop's objects get new ids, its pts restart.
        let mut id = 10;
        for _loop in 0..100 {
            let frames: Vec<Vec<Object>> = (0..10)
                .map(|_| {
                    id += 1;
                    vec![at(300.0, id)]
                })
                .collect();
            run(&mut lc, &frames);
        }
        // Only the current loop's tracks are held (before: every loop's).
        assert!(lc.tracks.len() <= 10, "{} tracks", lc.tracks.len());
    }

    #[test]
    fn crossing_beyond_segment_end_is_ignored() {
        let config = r#"{"lines": [{"name": "short", "start": [0, 0.5], "end": [0.3, 0.5]}]}"#;
        let mut lc = LineCrossing::configure(config, &context()).unwrap();
        assert!(run(&mut lc, &[vec![at(300.0, 1)], vec![at(700.0, 1)], vec![at(700.0, 1)]]).is_empty());
    }

    #[test]
    fn state_survives_reload() {
        let mut old = LineCrossing::configure(CONFIG, &context()).unwrap();
        run(&mut old, &[vec![at(300.0, 1)], vec![at(700.0, 1)], vec![at(700.0, 1)], vec![at(300.0, 2)]]);
        let saved = old.save_state();
        let mut new = LineCrossing::configure(CONFIG, &context()).unwrap();
        new.load_state(&saved).unwrap();
        // Track 2 was seen above the line before the reload: it now counts.
        let events = run_from(&mut new, 4, &[vec![at(700.0, 2)], vec![at(700.0, 2)]]);
        assert_eq!(attr(&events[0], "total_in"), "2");
        assert!(new.load_state(b"not json").is_err());
        assert!(new.load_state(br#"{"version": 99, "counts": {}, "tracks": {}}"#).unwrap_err().contains("version 99"));
    }
}
