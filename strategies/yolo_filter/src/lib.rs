//! `yolo_filter`: keeps the detector's objects that match class, confidence,
//! size and (optionally) a polygon zone, and reports one detection per kept
//! object. See README.md for the config.

use dshost_sdk::geometry::{normalize, Polygon};
use dshost_sdk::{Detection, FrameHeader, HostContext, Level, Objects, Strategy, StrategyInfo};
use serde::Deserialize;

/// A class given by label (`"person"`) or by numeric id (`0`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum ClassRef {
    Id(u32),
    Label(String),
}

fn default_min_confidence() -> f32 {
    0.5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Classes to keep; empty or absent keeps every class.
    #[serde(default)]
    classes: Vec<ClassRef>,
    #[serde(default = "default_min_confidence")]
    min_confidence: f32,
    #[serde(default)]
    min_width: f32,
    #[serde(default)]
    min_height: f32,
    /// Polygon in normalized 0..1 frame coordinates; objects count as inside
    /// when their bottom-centre point is.
    #[serde(default)]
    zone: Option<Vec<[f32; 2]>>,
    /// Detection name; defaults to the object's label.
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    level: Option<LevelName>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum LevelName {
    Low,
    Medium,
    High,
    Critical,
}

impl From<LevelName> for Level {
    fn from(level: LevelName) -> Level {
        match level {
            LevelName::Low => Level::Low,
            LevelName::Medium => Level::Medium,
            LevelName::High => Level::High,
            LevelName::Critical => Level::Critical,
        }
    }
}

pub struct YoloFilter {
    /// Indexed by class id; `None` = keep every class.
    keep_class: Option<Vec<bool>>,
    min_confidence: f32,
    min_width: f32,
    min_height: f32,
    zone: Option<Polygon>,
    pattern: Option<String>,
    level: Level,
    labels: Vec<String>,
}

impl YoloFilter {
    fn keeps_class(&self, class_id: u32) -> bool {
        match &self.keep_class {
            None => true,
            Some(keep) => keep.get(class_id as usize).copied().unwrap_or(false),
        }
    }

    fn pattern_for(&self, class_id: u32) -> String {
        if let Some(pattern) = &self.pattern {
            return pattern.clone();
        }
        match self.labels.get(class_id as usize) {
            Some(label) if !label.is_empty() => label.clone(),
            _ => format!("class_{class_id}"),
        }
    }
}

impl Strategy for YoloFilter {
    fn describe() -> StrategyInfo {
        dshost_sdk::info(
            "yolo_filter",
            env!("CARGO_PKG_VERSION"),
            "keeps detector objects by class, confidence, size and zone",
        )
    }

    fn configure(config: &str, context: &HostContext) -> Result<Self, String> {
        let config: Config = dshost_sdk::parse_config(config)?;
        if !(0.0..=1.0).contains(&config.min_confidence) {
            return Err(format!("`min_confidence` must be within 0..=1, got {}", config.min_confidence));
        }
        if !(config.min_width >= 0.0 && config.min_height >= 0.0) {
            return Err("`min_width` and `min_height` must be zero or positive".to_string());
        }
        let keep_class = if config.classes.is_empty() {
            None
        } else {
            let mut keep = vec![false; context.class_labels.len()];
            for class in &config.classes {
                let id = match class {
                    ClassRef::Id(id) => *id as usize,
                    ClassRef::Label(label) => {
                        dshost_sdk::class_id(context, label).map_err(|e| format!("`classes`: {e}"))? as usize
                    }
                };
                if id >= keep.len() {
                    keep.resize(id + 1, false);
                }
                keep[id] = true;
            }
            Some(keep)
        };
        let zone = match config.zone {
            None => None,
            Some(points) => Some(
                Polygon::new(points.into_iter().map(|[x, y]| (x, y)).collect()).map_err(|e| format!("`zone`: {e}"))?,
            ),
        };
        if matches!(&config.pattern, Some(p) if p.is_empty()) {
            return Err("`pattern` must not be empty".to_string());
        }
        Ok(YoloFilter {
            keep_class,
            min_confidence: config.min_confidence,
            min_width: config.min_width,
            min_height: config.min_height,
            zone,
            pattern: config.pattern,
            level: config.level.map(Level::from).unwrap_or(Level::Medium),
            labels: context.class_labels.clone(),
        })
    }

    fn process(&mut self, frame: &FrameHeader, objects: Objects<'_>) -> Result<Vec<Detection>, String> {
        // Sized for every object at once: one allocation, no regrowth.
        let mut detections = Vec::with_capacity(objects.len());
        for object in objects.iter() {
            if object.confidence < self.min_confidence
                || object.width < self.min_width
                || object.height < self.min_height
                || !self.keeps_class(object.class_id)
            {
                continue;
            }
            if let Some(zone) = &self.zone {
                if !zone.contains(normalize(object.bottom_center(), frame.width, frame.height)) {
                    continue;
                }
            }
            detections.push(
                dshost_sdk::detect(self.pattern_for(object.class_id)).from_object(&object).level(self.level).build(),
            );
        }
        Ok(detections)
    }
}

dshost_sdk::export_strategy!(YoloFilter);

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

    fn frame() -> FrameHeader {
        FrameHeader { source_id: "cam-1".into(), frame_number: 1, pts_ns: 0, width: 1000, height: 1000 }
    }

    fn object(class_id: u32, confidence: f32, left: f32, top: f32, size: f32, id: u64) -> Object {
        Object { left, top, width: size, height: size, confidence, class_id, object_id: id }
    }

    fn run(config: &str, objects: &[Object]) -> Vec<Detection> {
        let mut filter = YoloFilter::configure(config, &context()).unwrap();
        let buffer = encode_objects(objects);
        filter.process(&frame(), Objects::new(&buffer).unwrap()).unwrap()
    }

    #[test]
    fn keeps_by_class_label_and_id_and_confidence() {
        let objects = [
            object(0, 0.9, 10.0, 10.0, 50.0, 1),
            object(1, 0.9, 10.0, 10.0, 50.0, 2),
            object(2, 0.9, 10.0, 10.0, 50.0, 3),
            object(0, 0.3, 10.0, 10.0, 50.0, 4),
        ];
        let kept = run(r#"{"classes": ["person", 2]}"#, &objects);
        let ids: Vec<_> = kept.iter().map(|d| d.object_id).collect();
        assert_eq!(ids, vec![Some(1), Some(3)]);
        assert_eq!(kept[0].pattern, "person");
        assert_eq!(kept[1].pattern, "car");
        assert_eq!(run("{}", &objects).len(), 3, "default min_confidence is 0.5, all classes");
    }

    #[test]
    fn size_zone_and_pattern() {
        let objects = [
            object(0, 0.9, 100.0, 100.0, 20.0, UNTRACKED),
            // bottom-centre (625, 750) inside the right half
            object(0, 0.9, 600.0, 700.0, 50.0, 9),
        ];
        let kept = run(
            r#"{"min_width": 30, "zone": [[0.5,0],[1,0],[1,1],[0.5,1]], "pattern": "intruder", "level": "high"}"#,
            &objects,
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].pattern, "intruder");
        assert_eq!(kept[0].level, Level::High);
        assert_eq!(kept[0].object_id, Some(9));
        let untracked = run(r#"{"min_confidence": 0.1}"#, &objects[..1]);
        assert_eq!(untracked[0].object_id, None);
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = |c: &str| YoloFilter::configure(c, &context()).err().unwrap();
        assert!(err(r#"{"classes": ["dragon"]}"#).contains("unknown label `dragon`"));
        assert!(err(r#"{"min_confidence": 2}"#).contains("min_confidence"));
        assert!(err(r#"{"zone": [[0,0],[1,1]]}"#).contains("zone"));
        assert!(err(r#"{"colour": "red"}"#).contains("unknown field `colour`"));
    }
}
