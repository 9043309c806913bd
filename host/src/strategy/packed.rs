//! The packed detections of contract 0.2.0 (`packed-detections` in `wit/`):
//! fixed 32-byte records, a pattern table and an attribute list, turned into
//! the same [`GuestDetection`]s a 0.1.0 result becomes, so that both versions
//! go through the same validation; each table entry is one shared string. This module only checks the packing itself; the values
//! are checked by `validate`.

use dshost_sdk::packed::{PackedRecord, FLAG_OBJECT_ID, PACKED_RECORD_SIZE as RECORD_SIZE};

use super::bindings::{Attribute, Bbox, Level, PackedDetections};
use super::returned::{GuestDetection, Patterns};

/// Why a packed result is malformed (the whole call's output is refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnpackError {
    #[error("packed records of {0} bytes are not a multiple of the {RECORD_SIZE}-byte record size")]
    Length(usize),
    #[error("record {record} names pattern {index}, but the pattern table has {patterns} entries")]
    Pattern { record: usize, index: u16, patterns: usize },
    #[error("record {record} has level {level}; levels are 0 (low) to 3 (critical)")]
    Level { record: usize, level: u8 },
    #[error("record {record} has flags {flags:#04x}; only bit 0 (object id present) is defined")]
    Flags { record: usize, flags: u8 },
    #[error("attribute {index} belongs to detection {detection}, but there are {records} records")]
    Attribute { index: usize, detection: u32, records: usize },
}

/// Number of detections a packed result holds (whole records only).
pub fn count(packed: &PackedDetections) -> usize {
    packed.records.len() / RECORD_SIZE
}

/// Unpacks a guest's `process` result into one [`GuestDetection`] per
/// record; `shared` turns the pattern table into shared strings.
pub fn unpack(packed: PackedDetections, shared: &mut Patterns) -> Result<Vec<GuestDetection>, UnpackError> {
    let PackedDetections { records, patterns, attributes } = packed;
    if !records.len().is_multiple_of(RECORD_SIZE) {
        return Err(UnpackError::Length(records.len()));
    }
    // Once per table entry, not per detection.
    let patterns: Vec<_> = patterns.iter().map(|pattern| shared.share(pattern)).collect();
    let mut detections = Vec::with_capacity(records.len() / RECORD_SIZE);
    for (record, bytes) in records.chunks_exact(RECORD_SIZE).enumerate() {
        let Ok(bytes) = <&[u8; RECORD_SIZE]>::try_from(bytes) else {
            return Err(UnpackError::Length(records.len()));
        };
        let r = PackedRecord::decode(bytes);
        let pattern = patterns.get(usize::from(r.pattern)).ok_or(UnpackError::Pattern {
            record,
            index: r.pattern,
            patterns: patterns.len(),
        })?;
        let level = match r.level {
            0 => Level::Low,
            1 => Level::Medium,
            2 => Level::High,
            3 => Level::Critical,
            level => return Err(UnpackError::Level { record, level }),
        };
        if r.flags & !FLAG_OBJECT_ID != 0 {
            return Err(UnpackError::Flags { record, flags: r.flags });
        }
        detections.push(GuestDetection {
            pattern: pattern.clone(),
            confidence: r.confidence,
            bbox: Bbox { left: r.left, top: r.top, width: r.width, height: r.height },
            object_id: r.object_id(),
            level,
            attributes: Vec::new(),
        });
    }
    let records = detections.len();
    for (index, Attribute { detection, key, value }) in attributes.into_iter().enumerate() {
        let target = usize::try_from(detection).ok().and_then(|at| detections.get_mut(at));
        match target {
            Some(target) => target.attributes.push((key, value)),
            None => return Err(UnpackError::Attribute { index, detection, records }),
        }
    }
    Ok(detections)
}

/// Packs detections the way the SDKs do (each distinct pattern once), for
/// tests, fuzzing and benchmarks of the host side.
pub fn pack(detections: &[GuestDetection]) -> PackedDetections {
    let mut records = Vec::with_capacity(detections.len() * RECORD_SIZE);
    let mut patterns: Vec<String> = Vec::new();
    let mut attributes = Vec::new();
    for (at, detection) in detections.iter().enumerate() {
        let index = match patterns.iter().position(|p| **p == *detection.pattern) {
            Some(index) => index,
            None => {
                patterns.push(detection.pattern.to_string());
                patterns.len() - 1
            }
        };
        let b = &detection.bbox;
        PackedRecord {
            left: b.left,
            top: b.top,
            width: b.width,
            height: b.height,
            confidence: detection.confidence,
            pattern: index as u16,
            level: detection.level as u8,
            flags: if detection.object_id.is_some() { FLAG_OBJECT_ID } else { 0 },
            object_id: detection.object_id.unwrap_or(0),
        }
        .encode_into(&mut records);
        for (key, value) in &detection.attributes {
            attributes.push(Attribute { detection: at as u32, key: key.clone(), value: value.clone() });
        }
    }
    PackedDetections { records, patterns, attributes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(pattern: &str, object_id: Option<u64>, level: Level, attributes: &[(&str, &str)]) -> GuestDetection {
        GuestDetection {
            pattern: pattern.into(),
            confidence: 0.75,
            bbox: Bbox { left: 1.5, top: 2.0, width: 30.0, height: 40.25 },
            object_id,
            level,
            attributes: attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    /// A record written by hand from the table in `wit/strategy.wit`.
    fn record(pattern: u16, level: u8, flags: u8, object_id: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for value in [1.5f32, 2.0, 30.0, 40.25, 0.75] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&pattern.to_le_bytes());
        out.extend_from_slice(&[level, flags]);
        out.extend_from_slice(&object_id.to_le_bytes());
        out
    }

    #[test]
    fn reads_the_documented_layout() {
        let mut records = record(1, 2, 1, 0x0102_0304_0506_0708);
        records.extend(record(0, 3, 0, 99));
        let packed = PackedDetections {
            records,
            patterns: vec!["car".into(), "person".into()],
            attributes: vec![
                Attribute { detection: 1, key: "zone".into(), value: "a".into() },
                Attribute { detection: 0, key: "k".into(), value: "v".into() },
                Attribute { detection: 1, key: "n".into(), value: "2".into() },
            ],
        };
        let unpacked = unpack(packed, &mut Patterns::default()).unwrap();
        assert_eq!(
            unpacked,
            vec![
                detection("person", Some(0x0102_0304_0506_0708), Level::High, &[("k", "v")]),
                // Flag bit 0 clear: the id bytes are ignored.
                detection("car", None, Level::Critical, &[("zone", "a"), ("n", "2")]),
            ]
        );
    }

    #[test]
    fn pack_round_trips_and_stores_each_pattern_once() {
        let detections = vec![
            detection("person", Some(7), Level::Medium, &[]),
            detection("car", None, Level::Low, &[("colour", "red")]),
            detection("person", Some(u64::MAX), Level::High, &[]),
        ];
        let packed = pack(&detections);
        assert_eq!(packed.patterns, vec!["person".to_string(), "car".to_string()]);
        assert_eq!(packed.records.len(), 3 * RECORD_SIZE);
        assert_eq!(count(&packed), 3);
        let unpacked = unpack(packed, &mut Patterns::default()).unwrap();
        assert_eq!(unpacked, detections);
        // One string for both "person" detections.
        assert!(std::sync::Arc::ptr_eq(&unpacked[0].pattern, &unpacked[2].pattern));
    }

    /// Found by the `guest_output` fuzz target: a NaN confidence (which
    /// validation later rejects) must survive unpack and pack bit for bit.
    #[test]
    fn non_finite_values_round_trip_bit_for_bit() {
        let mut records = record(0, 1, 1, 7);
        records[16..20].copy_from_slice(&[0xff; 4]);
        let packed = PackedDetections { records, patterns: vec!["a".into()], attributes: vec![] };
        let detections = unpack(packed.clone(), &mut Patterns::default()).unwrap();
        assert!(detections[0].confidence.is_nan());
        assert_eq!(pack(&detections), packed);
    }

    #[test]
    fn refuses_malformed_packing() {
        let packed = |records: Vec<u8>, attributes: Vec<Attribute>| PackedDetections {
            records,
            patterns: vec!["p".into()],
            attributes,
        };
        let unpack = |packed| unpack(packed, &mut Patterns::default());
        assert_eq!(unpack(packed(vec![0; 33], vec![])), Err(UnpackError::Length(33)));
        assert_eq!(
            unpack(packed(record(1, 0, 0, 0), vec![])),
            Err(UnpackError::Pattern { record: 0, index: 1, patterns: 1 })
        );
        assert_eq!(unpack(packed(record(0, 4, 0, 0), vec![])), Err(UnpackError::Level { record: 0, level: 4 }));
        assert_eq!(unpack(packed(record(0, 0, 2, 0), vec![])), Err(UnpackError::Flags { record: 0, flags: 2 }));
        let stray = Attribute { detection: 1, key: "k".into(), value: "v".into() };
        assert_eq!(
            unpack(packed(record(0, 0, 0, 0), vec![stray])),
            Err(UnpackError::Attribute { index: 0, detection: 1, records: 1 })
        );
        assert_eq!(unpack(packed(Vec::new(), Vec::new())), Ok(Vec::new()));
    }
}
