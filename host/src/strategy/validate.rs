//! Distrust every value a guest returns: detections are checked and clamped
//! before anything downstream sees them.

use std::sync::Arc;

use super::bindings::Level;
use super::returned::GuestDetection;

pub const MAX_PATTERN_BYTES: usize = 128;
pub const MAX_ATTRIBUTES: usize = 32;
pub const MAX_ATTRIBUTE_KEY_BYTES: usize = 64;
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;

/// A detection the host accepted: finite numbers, confidence in [0, 1], box
/// inside the frame, bounded strings.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidDetection {
    pub pattern: Arc<str>,
    pub confidence: f32,
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    pub object_id: Option<u64>,
    pub level: Level,
    pub attributes: Vec<(String, String)>,
}

/// Why a detection was dropped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("non-finite number in confidence or box")]
    NonFinite,
    #[error("confidence {0} outside 0..=1")]
    Confidence(f32),
    #[error("negative box size {width}x{height}")]
    NegativeSize { width: f32, height: f32 },
    #[error("box lies entirely outside the {frame_width}x{frame_height} frame")]
    OutsideFrame { frame_width: u32, frame_height: u32 },
    #[error("pattern must be 1..={MAX_PATTERN_BYTES} bytes without control characters (got {0} bytes)")]
    Pattern(usize),
    #[error("{0} attributes; at most {MAX_ATTRIBUTES} are allowed")]
    TooManyAttributes(usize),
    #[error("attribute key or value too long or with control characters (keys up to {MAX_ATTRIBUTE_KEY_BYTES}, values up to {MAX_ATTRIBUTE_VALUE_BYTES} bytes)")]
    Attribute,
}

/// Checks one detection against a frame of `width` x `height` pixels.
pub fn validate(detection: GuestDetection, width: u32, height: u32) -> Result<ValidDetection, Rejection> {
    Validator::default().check(detection, width, height)
}

/// [`validate`] for a stream of detections: remembers the last pattern it
/// accepted, so the detections of a frame, which share one interned pattern
/// string (`returned::Patterns`), have it scanned once instead of each.
#[derive(Debug, Default)]
pub struct Validator {
    accepted_pattern: Option<Arc<str>>,
}

impl Validator {
    /// Same rules as [`validate`].
    pub fn check(&mut self, detection: GuestDetection, width: u32, height: u32) -> Result<ValidDetection, Rejection> {
        let pattern_known = self.accepted_pattern.as_ref().is_some_and(|p| Arc::ptr_eq(p, &detection.pattern));
        let valid = check_numbers_and_strings(detection, width, height, pattern_known)?;
        if !pattern_known {
            self.accepted_pattern = Some(valid.pattern.clone());
        }
        Ok(valid)
    }
}

fn check_numbers_and_strings(
    detection: GuestDetection,
    width: u32,
    height: u32,
    pattern_known: bool,
) -> Result<ValidDetection, Rejection> {
    let b = &detection.bbox;
    let numbers = [detection.confidence, b.left, b.top, b.width, b.height];
    if numbers.iter().any(|v| !v.is_finite()) {
        return Err(Rejection::NonFinite);
    }
    if !(0.0..=1.0).contains(&detection.confidence) {
        return Err(Rejection::Confidence(detection.confidence));
    }
    if b.width < 0.0 || b.height < 0.0 {
        return Err(Rejection::NegativeSize { width: b.width, height: b.height });
    }
    let (frame_w, frame_h) = (width as f32, height as f32);
    let left = b.left.clamp(0.0, frame_w);
    let top = b.top.clamp(0.0, frame_h);
    let right = (b.left + b.width).clamp(0.0, frame_w);
    let bottom = (b.top + b.height).clamp(0.0, frame_h);
    // A box with area must keep some of it inside the frame; a point-like
    // box (zero size, e.g. a count event) is only clamped.
    let has_area = b.width > 0.0 && b.height > 0.0;
    if has_area && (right <= left || bottom <= top) {
        return Err(Rejection::OutsideFrame { frame_width: width, frame_height: height });
    }
    let pattern_ok = pattern_known
        || !detection.pattern.is_empty()
            && detection.pattern.len() <= MAX_PATTERN_BYTES
            && !detection.pattern.chars().any(char::is_control);
    if !pattern_ok {
        return Err(Rejection::Pattern(detection.pattern.len()));
    }
    if detection.attributes.len() > MAX_ATTRIBUTES {
        return Err(Rejection::TooManyAttributes(detection.attributes.len()));
    }
    let attribute_ok = |(k, v): &(String, String)| {
        !k.is_empty()
            && k.len() <= MAX_ATTRIBUTE_KEY_BYTES
            && v.len() <= MAX_ATTRIBUTE_VALUE_BYTES
            && !k.chars().any(char::is_control)
    };
    if !detection.attributes.iter().all(attribute_ok) {
        return Err(Rejection::Attribute);
    }
    Ok(ValidDetection {
        pattern: detection.pattern,
        confidence: detection.confidence,
        left,
        top,
        width: right - left,
        height: bottom - top,
        object_id: detection.object_id,
        level: detection.level,
        attributes: detection.attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::bindings::Bbox;

    fn detection(left: f32, top: f32, width: f32, height: f32, confidence: f32) -> GuestDetection {
        GuestDetection {
            pattern: "p".into(),
            confidence,
            bbox: Bbox { left, top, width, height },
            object_id: Some(3),
            level: Level::High,
            attributes: vec![("k".into(), "v".into())],
        }
    }

    #[test]
    fn accepts_and_clamps() {
        let valid = validate(detection(-10.0, 90.0, 30.0, 30.0, 0.5), 100, 100).unwrap();
        assert_eq!((valid.left, valid.top, valid.width, valid.height), (0.0, 90.0, 20.0, 10.0));
        assert_eq!(valid.object_id, Some(3));
        let point = validate(detection(500.0, 500.0, 0.0, 0.0, 1.0), 100, 100).unwrap();
        assert_eq!((point.left, point.top), (100.0, 100.0));
    }

    #[test]
    fn rejects_bad_values() {
        assert_eq!(validate(detection(0.0, 0.0, 1.0, 1.0, f32::NAN), 10, 10), Err(Rejection::NonFinite));
        assert_eq!(validate(detection(0.0, 0.0, f32::INFINITY, 1.0, 0.5), 10, 10), Err(Rejection::NonFinite));
        assert_eq!(validate(detection(0.0, 0.0, 1.0, 1.0, 1.5), 10, 10), Err(Rejection::Confidence(1.5)));
        assert!(matches!(validate(detection(0.0, 0.0, -1.0, 1.0, 0.5), 10, 10), Err(Rejection::NegativeSize { .. })));
        assert!(matches!(validate(detection(-50.0, 0.0, 10.0, 1.0, 0.5), 10, 10), Err(Rejection::OutsideFrame { .. })));
        let mut long = detection(0.0, 0.0, 1.0, 1.0, 0.5);
        long.pattern = "x".repeat(MAX_PATTERN_BYTES + 1).into();
        assert_eq!(validate(long, 10, 10), Err(Rejection::Pattern(MAX_PATTERN_BYTES + 1)));
        let mut attrs = detection(0.0, 0.0, 1.0, 1.0, 0.5);
        attrs.attributes = vec![("k".into(), "v".repeat(MAX_ATTRIBUTE_VALUE_BYTES + 1))];
        assert_eq!(validate(attrs, 10, 10), Err(Rejection::Attribute));
    }

    #[test]
    fn a_validator_scans_each_shared_pattern_and_forgets_none_it_refused() {
        let mut validator = Validator::default();
        let shared: Arc<str> = "person".into();
        for _ in 0..3 {
            let mut d = detection(0.0, 0.0, 1.0, 1.0, 0.5);
            d.pattern = shared.clone();
            assert!(Arc::ptr_eq(&validator.check(d, 10, 10).unwrap().pattern, &shared));
        }
        // A different string with the same text is still checked on its own.
        let mut bad = detection(0.0, 0.0, 1.0, 1.0, 0.5);
        bad.pattern = "per\u{7}son".into();
        assert_eq!(validator.check(bad.clone(), 10, 10), Err(Rejection::Pattern(7)));
        assert_eq!(validator.check(bad, 10, 10), Err(Rejection::Pattern(7)));
        // Numbers are checked whatever the pattern.
        let mut nan = detection(0.0, 0.0, 1.0, 1.0, f32::NAN);
        nan.pattern = shared;
        assert_eq!(validator.check(nan, 10, 10), Err(Rejection::NonFinite));
    }
}
