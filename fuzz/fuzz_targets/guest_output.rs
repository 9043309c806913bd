//! Guest-output validation: arbitrary detections, as a 0.2.0 guest returns
//! them packed (records, pattern table, attributes) and as 0.1.0 records.
//! Whatever passes must be finite, within the frame and within the bounds.
#![no_main]

use dshost::strategy::bindings::{Attribute, PackedDetections};
use dshost::strategy::packed::{pack, unpack};
use dshost::strategy::returned::Patterns;
use dshost::strategy::validate::{
    validate, MAX_ATTRIBUTES, MAX_ATTRIBUTE_KEY_BYTES, MAX_ATTRIBUTE_VALUE_BYTES, MAX_PATTERN_BYTES,
};
use libfuzzer_sys::fuzz_target;

/// Splits the input into a frame size, records, patterns and attributes.
fn packed(data: &[u8]) -> Option<(u32, u32, PackedDetections)> {
    let (&w, rest) = data.split_first()?;
    let (&h, rest) = rest.split_first()?;
    let (&n, rest) = rest.split_first()?;
    let records_len = (usize::from(n) * 32).min(rest.len());
    let (records, rest) = rest.split_at(records_len);
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\u{1}');
    let patterns: Vec<String> = parts.next().unwrap_or("").split('\u{2}').map(str::to_string).collect();
    let attributes = parts
        .map(|a| {
            let mut fields = a.splitn(3, '\u{2}');
            let detection = fields.next().and_then(|d| d.parse().ok()).unwrap_or(0);
            Attribute {
                detection,
                key: fields.next().unwrap_or("").to_string(),
                value: fields.next().unwrap_or("").to_string(),
            }
        })
        .collect();
    Some((u32::from(w) * 8, u32::from(h) * 8, PackedDetections { records: records.to_vec(), patterns, attributes }))
}

fuzz_target!(|data: &[u8]| {
    let Some((width, height, packed)) = packed(data) else { return };
    let mut patterns = Patterns::default();
    let Ok(detections) = unpack(packed, &mut patterns) else { return };
    // The 0.1.0 path sees the same detections as records: packing them
    // again and unpacking gives them back unchanged.
    // Compared packed (bytes), not as detections: NaN != NaN (the first
    // finding of this target, now a unit test in strategy/packed.rs).
    let packed = pack(&detections);
    let again = unpack(packed.clone(), &mut patterns).expect("what pack writes unpacks");
    assert_eq!(pack(&again), packed);
    for detection in detections {
        let Ok(valid) = validate(detection, width, height) else { continue };
        for v in [valid.confidence, valid.left, valid.top, valid.width, valid.height] {
            assert!(v.is_finite());
        }
        assert!((0.0..=1.0).contains(&valid.confidence));
        assert!(valid.left >= 0.0 && valid.top >= 0.0 && valid.width >= 0.0 && valid.height >= 0.0);
        assert!(valid.left + valid.width <= width as f32 && valid.top + valid.height <= height as f32);
        assert!(!valid.pattern.is_empty() && valid.pattern.len() <= MAX_PATTERN_BYTES);
        assert!(!valid.pattern.chars().any(char::is_control));
        assert!(valid.attributes.len() <= MAX_ATTRIBUTES);
        for (key, value) in &valid.attributes {
            assert!(
                !key.is_empty() && key.len() <= MAX_ATTRIBUTE_KEY_BYTES && value.len() <= MAX_ATTRIBUTE_VALUE_BYTES
            );
        }
    }
});
