//! What a guest's `process` returned, either contract version, before
//! validation. The pattern is shared (`Arc<str>`): a frame's detections
//! usually name one or two patterns, and copying the string once per
//! detection was a measurable part of a 100-object call (docs/benchmarks.md).

use std::sync::Arc;

use super::bindings::{Bbox, Detection, Level};

/// One detection as the guest returned it (not validated yet).
#[derive(Debug, Clone, PartialEq)]
pub struct GuestDetection {
    pub pattern: Arc<str>,
    pub confidence: f32,
    pub bbox: Bbox,
    pub object_id: Option<u64>,
    pub level: Level,
    pub attributes: Vec<(String, String)>,
}

impl GuestDetection {
    /// A 0.1.0 record, its pattern shared through `patterns`.
    pub fn from_record(detection: Detection, patterns: &mut Patterns) -> Self {
        GuestDetection {
            pattern: patterns.share(&detection.pattern),
            confidence: detection.confidence,
            bbox: detection.bbox,
            object_id: detection.object_id,
            level: detection.level,
            attributes: detection.attributes,
        }
    }
}

/// The patterns an instance returned lately, so the same text is one
/// allocation across detections and calls. Bounded: a guest returning
/// ever-new patterns costs one allocation each, never unbounded memory.
#[derive(Debug, Default)]
pub struct Patterns {
    known: Vec<Arc<str>>,
}

/// Most distinct patterns kept; real strategies use a handful.
const MAX_KNOWN: usize = 32;

impl Patterns {
    /// The shared copy of `pattern`.
    pub fn share(&mut self, pattern: &str) -> Arc<str> {
        if let Some(known) = self.known.iter().find(|known| ***known == *pattern) {
            return known.clone();
        }
        if self.known.len() == MAX_KNOWN {
            // Forget the oldest; what is still in use elsewhere keeps its own count.
            self.known.remove(0);
        }
        let shared: Arc<str> = Arc::from(pattern);
        self.known.push(shared.clone());
        shared
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.known.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_is_shared_and_the_table_stays_bounded() {
        let mut patterns = Patterns::default();
        let person = patterns.share("person");
        let again = patterns.share("person");
        assert!(Arc::ptr_eq(&person, &again));
        assert_eq!(&*patterns.share("car"), "car");
        for n in 0..1000 {
            assert_eq!(&*patterns.share(&format!("p{n}")), format!("p{n}"));
        }
        assert_eq!(patterns.len(), MAX_KNOWN);
        // Forgotten by the table, still intact where it was handed out.
        assert_eq!(&*person, "person");
        assert!(!Arc::ptr_eq(&person, &patterns.share("person")));
    }

    #[test]
    fn a_record_keeps_every_field() {
        let mut patterns = Patterns::default();
        let record = Detection {
            pattern: "person".into(),
            confidence: 0.5,
            bbox: Bbox { left: 1.0, top: 2.0, width: 3.0, height: 4.0 },
            object_id: Some(9),
            level: Level::High,
            attributes: vec![("k".into(), "v".into())],
        };
        let found = GuestDetection::from_record(record.clone(), &mut patterns);
        assert_eq!(&*found.pattern, "person");
        assert_eq!(
            (found.confidence, found.bbox, found.object_id, found.level),
            (0.5, record.bbox, Some(9), Level::High)
        );
        assert_eq!(found.attributes, record.attributes);
    }
}
