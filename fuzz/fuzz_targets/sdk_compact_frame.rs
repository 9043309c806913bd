//! The SDK's compact frame decoder (what every Rust strategy reads) and the
//! packed detection record: decoding then encoding gives the same bytes.
#![no_main]

use dshost_sdk::layout::{Objects, RECORD_SIZE};
use dshost_sdk::packed::{PackedRecord, PACKED_RECORD_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Objects::new(data) {
        Ok(objects) => {
            assert_eq!(objects.len() * RECORD_SIZE, data.len());
            for (index, (object, bytes)) in objects.iter().zip(data.chunks_exact(RECORD_SIZE)).enumerate() {
                assert_eq!(object.encode().as_slice(), bytes);
                assert_eq!(objects.get(index).map(|o| o.encode()), Some(object.encode()));
            }
            assert!(objects.get(objects.len()).is_none());
        }
        Err(error) => assert_eq!(error.len, data.len()),
    }
    let whole = Objects::whole_records(data);
    assert_eq!(whole.len(), data.len() / RECORD_SIZE);
    for chunk in data.chunks_exact(PACKED_RECORD_SIZE) {
        let Ok(bytes) = <&[u8; PACKED_RECORD_SIZE]>::try_from(chunk) else { continue };
        let mut again = Vec::new();
        PackedRecord::decode(bytes).encode_into(&mut again);
        assert_eq!(again.as_slice(), chunk);
    }
});
