//! Benchmark fixture: the same filter over typed records and over bytes.

wit_bindgen::generate!({ path: "wit", world: "bench" });

use dshost_sdk::layout::Objects;

#[allow(dead_code)] // used only by the wasm32 export below
struct Bench;

impl Guest for Bench {
    fn filter_records(objects: Vec<ObjectRecord>, class_id: u32, min_confidence: f32) -> Vec<Kept> {
        objects
            .iter()
            .filter(|o| o.class_id == class_id && o.confidence >= min_confidence)
            .map(|o| Kept {
                left: o.left,
                top: o.top,
                width: o.width,
                height: o.height,
                confidence: o.confidence,
                object_id: o.object_id,
            })
            .collect()
    }

    fn filter_bytes(objects: Vec<u8>, class_id: u32, min_confidence: f32) -> Vec<Kept> {
        Objects::whole_records(&objects)
            .iter()
            .filter(|o| o.class_id == class_id && o.confidence >= min_confidence)
            .map(|o| Kept {
                left: o.left,
                top: o.top,
                width: o.width,
                height: o.height,
                confidence: o.confidence,
                object_id: o.object_id,
            })
            .collect()
    }
}

#[cfg(target_arch = "wasm32")]
export!(Bench);
