//! What the benchmarks share: where the built strategies are, and the
//! deterministic objects they are fed.
#![allow(dead_code)]

use std::path::PathBuf;

use dshost::frame::Object;

/// `target/strategies/` (built by `scripts/build-strategies.sh`).
pub fn strategies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/strategies")
}

/// Deterministic objects: every third a confident person.
pub fn objects(count: usize) -> Vec<Object> {
    (0..count)
        .map(|i| Object {
            left: (i * 7 % 1200) as f32,
            top: (i * 13 % 600) as f32,
            width: 40.0,
            height: 100.0,
            confidence: if i % 3 == 0 { 0.9 } else { 0.3 },
            class_id: if i % 3 == 0 { 0 } else { (i % 5) as u32 },
            object_id: i as u64,
        })
        .collect()
}
