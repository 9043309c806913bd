//! The compact object layout shared by the host and every strategy.
//!
//! A frame's objects travel as consecutive 32-byte little-endian records:
//!
//! | offset | type | field                                              |
//! |-------:|------|----------------------------------------------------|
//! |      0 | f32  | left, pixels                                       |
//! |      4 | f32  | top, pixels                                        |
//! |      8 | f32  | width, pixels                                      |
//! |     12 | f32  | height, pixels                                     |
//! |     16 | f32  | confidence, 0..=1                                  |
//! |     20 | u32  | class id (index into the host's class-label table) |
//! |     24 | u64  | object/track id; [`UNTRACKED`] when there is none  |
//!
//! [`Objects`] is a zero-copy view: it borrows the buffer and decodes a record
//! only when it is read.

/// Size of one object record in bytes.
pub const RECORD_SIZE: usize = 32;

/// Object id of an object that no tracker has given an id.
pub const UNTRACKED: u64 = u64::MAX;

/// One decoded object record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Object {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    pub confidence: f32,
    pub class_id: u32,
    /// Raw id; [`UNTRACKED`] means none. Prefer [`Object::track_id`].
    pub object_id: u64,
}

impl Object {
    /// The tracker's id for this object, if it has one.
    pub fn track_id(&self) -> Option<u64> {
        (self.object_id != UNTRACKED).then_some(self.object_id)
    }

    /// Bottom-centre point (where a person or vehicle touches the ground), pixels.
    pub fn bottom_center(&self) -> (f32, f32) {
        (self.left + self.width / 2.0, self.top + self.height)
    }

    /// Centre point, pixels.
    pub fn center(&self) -> (f32, f32) {
        (self.left + self.width / 2.0, self.top + self.height / 2.0)
    }

    /// Decodes one record. `bytes` must hold at least [`RECORD_SIZE`] bytes.
    #[inline]
    pub fn decode(bytes: &[u8; RECORD_SIZE]) -> Self {
        let f = |at: usize| f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[24..32]);
        Object {
            left: f(0),
            top: f(4),
            width: f(8),
            height: f(12),
            confidence: f(16),
            class_id: u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]),
            object_id: u64::from_le_bytes(id),
        }
    }

    /// Encodes this object as one record.
    #[inline]
    pub fn encode(&self) -> [u8; RECORD_SIZE] {
        let mut out = [0u8; RECORD_SIZE];
        out[0..4].copy_from_slice(&self.left.to_le_bytes());
        out[4..8].copy_from_slice(&self.top.to_le_bytes());
        out[8..12].copy_from_slice(&self.width.to_le_bytes());
        out[12..16].copy_from_slice(&self.height.to_le_bytes());
        out[16..20].copy_from_slice(&self.confidence.to_le_bytes());
        out[20..24].copy_from_slice(&self.class_id.to_le_bytes());
        out[24..32].copy_from_slice(&self.object_id.to_le_bytes());
        out
    }

    /// Appends this object's record to `buffer`.
    #[inline]
    pub fn encode_into(&self, buffer: &mut Vec<u8>) {
        buffer.extend_from_slice(&self.encode());
    }
}

/// Why a byte buffer is not a valid objects buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutError {
    /// Length of the rejected buffer.
    pub len: usize,
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "objects buffer of {} bytes is not a multiple of the {RECORD_SIZE}-byte record size", self.len)
    }
}

impl std::error::Error for LayoutError {}

/// A zero-copy view over a frame's objects buffer.
#[derive(Debug, Clone, Copy)]
pub struct Objects<'a> {
    bytes: &'a [u8],
}

impl<'a> Objects<'a> {
    /// Wraps a buffer, checking that it holds whole records.
    pub fn new(bytes: &'a [u8]) -> Result<Self, LayoutError> {
        if bytes.len().is_multiple_of(RECORD_SIZE) {
            Ok(Objects { bytes })
        } else {
            Err(LayoutError { len: bytes.len() })
        }
    }

    /// Wraps the whole records of a buffer, ignoring a trailing partial one.
    pub fn whole_records(bytes: &'a [u8]) -> Self {
        Objects { bytes: &bytes[..bytes.len() - bytes.len() % RECORD_SIZE] }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.bytes.len() / RECORD_SIZE
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The object at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<Object> {
        let start = index.checked_mul(RECORD_SIZE)?;
        let record = self.bytes.get(start..start + RECORD_SIZE)?;
        record.try_into().ok().map(Object::decode)
    }

    /// Iterates over the objects in buffer order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Object> + 'a {
        self.bytes.chunks_exact(RECORD_SIZE).map(|chunk| Object::decode(chunk.try_into().unwrap_or(&[0; RECORD_SIZE])))
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Encodes a list of objects into a fresh buffer (tests, replay tools).
pub fn encode_objects(objects: &[Object]) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(objects.len() * RECORD_SIZE);
    for object in objects {
        object.encode_into(&mut buffer);
    }
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Object {
        Object {
            left: 100.5,
            top: 50.0,
            width: 40.0,
            height: 120.25,
            confidence: 0.92,
            class_id: 7,
            object_id: 0x0102_0304_0506_0708,
        }
    }

    #[test]
    fn record_layout_is_little_endian_at_documented_offsets() {
        let bytes = sample().encode();
        assert_eq!(&bytes[0..4], &100.5f32.to_le_bytes());
        assert_eq!(&bytes[12..16], &120.25f32.to_le_bytes());
        assert_eq!(&bytes[16..20], &0.92f32.to_le_bytes());
        assert_eq!(&bytes[20..24], &[7, 0, 0, 0]);
        assert_eq!(&bytes[24..32], &[8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn round_trip_through_view() {
        let untracked = Object { object_id: UNTRACKED, ..sample() };
        let buffer = encode_objects(&[sample(), untracked]);
        let view = Objects::new(&buffer).unwrap();
        assert_eq!(view.len(), 2);
        assert_eq!(view.get(0), Some(sample()));
        assert_eq!(view.get(1).unwrap().track_id(), None);
        assert_eq!(view.get(2), None);
        assert_eq!(view.iter().count(), 2);
    }

    #[test]
    fn rejects_partial_records() {
        assert_eq!(Objects::new(&[0u8; 33]).unwrap_err(), LayoutError { len: 33 });
        assert!(Objects::new(&[]).unwrap().is_empty());
    }
}
