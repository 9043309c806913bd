//! The frames JSON-lines reader (`dshost strategy test`, `record`): any
//! bytes; what it accepts must convert to a compact frame and back.
#![no_main]

use std::io::BufReader;

use dshost::frame::jsonl::{learn_labels, read_frames, FrameLine};
use dshost::frame::LabelTable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frames) = read_frames(BufReader::new(data)) else { return };
    let mut labels = LabelTable::coco();
    learn_labels(&frames, &mut labels);
    for line in &frames {
        let compact = line.to_compact(&labels);
        assert_eq!(compact.object_count(), line.objects.len());
        // Converting the compact frame back and again is stable.
        let back = FrameLine::from_compact(&compact, &labels);
        assert_eq!(back.to_compact(&labels).objects, compact.objects);
    }
});
