//! The packed detection record of contract 0.2.0 (`packed-detections` in
//! `wit/strategy.wit`), shared by the host (which unpacks it) and the guest
//! SDK (which packs what `Strategy::process` returns):
//!
//! | offset | type | field                                                 |
//! |-------:|------|-------------------------------------------------------|
//! |      0 | f32  | bbox left, pixels                                     |
//! |      4 | f32  | bbox top, pixels                                      |
//! |      8 | f32  | bbox width, pixels                                    |
//! |     12 | f32  | bbox height, pixels                                   |
//! |     16 | f32  | confidence, 0..=1                                     |
//! |     20 | u16  | pattern: index into the pattern table                 |
//! |     22 | u8   | level: 0 low, 1 medium, 2 high, 3 critical            |
//! |     23 | u8   | flags: bit 0 ([`FLAG_OBJECT_ID`]); other bits zero    |
//! |     24 | u64  | object/track id, read only when bit 0 is set          |

/// Size of one packed detection record in bytes.
pub const PACKED_RECORD_SIZE: usize = 32;

/// Flag bit: the record's object id is present.
pub const FLAG_OBJECT_ID: u8 = 1;

/// One packed detection record, as plain fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackedRecord {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    pub confidence: f32,
    pub pattern: u16,
    pub level: u8,
    pub flags: u8,
    pub object_id: u64,
}

impl PackedRecord {
    /// Decodes one record.
    #[inline]
    pub fn decode(bytes: &[u8; PACKED_RECORD_SIZE]) -> Self {
        let f = |at: usize| f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[24..32]);
        PackedRecord {
            left: f(0),
            top: f(4),
            width: f(8),
            height: f(12),
            confidence: f(16),
            pattern: u16::from_le_bytes([bytes[20], bytes[21]]),
            level: bytes[22],
            flags: bytes[23],
            object_id: u64::from_le_bytes(id),
        }
    }

    /// Writes this record into `out`.
    #[inline]
    pub fn write(&self, out: &mut [u8; PACKED_RECORD_SIZE]) {
        out[0..4].copy_from_slice(&self.left.to_le_bytes());
        out[4..8].copy_from_slice(&self.top.to_le_bytes());
        out[8..12].copy_from_slice(&self.width.to_le_bytes());
        out[12..16].copy_from_slice(&self.height.to_le_bytes());
        out[16..20].copy_from_slice(&self.confidence.to_le_bytes());
        out[20..22].copy_from_slice(&self.pattern.to_le_bytes());
        out[22] = self.level;
        out[23] = self.flags;
        out[24..32].copy_from_slice(&self.object_id.to_le_bytes());
    }

    /// Appends this record to `buffer`.
    #[inline]
    pub fn encode_into(&self, buffer: &mut Vec<u8>) {
        let mut out = [0u8; PACKED_RECORD_SIZE];
        self.write(&mut out);
        buffer.extend_from_slice(&out);
    }

    /// The object id when flag bit 0 says there is one.
    pub fn object_id(&self) -> Option<u64> {
        (self.flags & FLAG_OBJECT_ID != 0).then_some(self.object_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_little_endian_at_documented_offsets() {
        let record = PackedRecord {
            left: 1.5,
            top: 2.0,
            width: 3.0,
            height: 4.0,
            confidence: 0.5,
            pattern: 0x0102,
            level: 3,
            flags: FLAG_OBJECT_ID,
            object_id: 0x0102_0304_0506_0708,
        };
        let mut bytes = Vec::new();
        record.encode_into(&mut bytes);
        assert_eq!(bytes.len(), PACKED_RECORD_SIZE);
        assert_eq!(&bytes[0..4], &1.5f32.to_le_bytes());
        assert_eq!(&bytes[16..20], &0.5f32.to_le_bytes());
        assert_eq!(&bytes[20..24], &[2, 1, 3, 1]);
        assert_eq!(&bytes[24..32], &[8, 7, 6, 5, 4, 3, 2, 1]);
        let array: [u8; PACKED_RECORD_SIZE] = bytes.try_into().unwrap();
        assert_eq!(PackedRecord::decode(&array), record);
        assert_eq!(record.object_id(), Some(0x0102_0304_0506_0708));
        assert_eq!(PackedRecord { flags: 0, ..record }.object_id(), None);
    }
}
