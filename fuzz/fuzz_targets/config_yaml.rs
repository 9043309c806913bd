//! The config loader: YAML with line mapping for its errors, then the
//! model's validation. Any text must give a config or errors, never a panic,
//! and every error names where it is.
#![no_main]

use dshost::config::parse_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(errors) = parse_config(text, "fuzz.yaml") {
        assert!(!errors.to_string().is_empty());
    }
});
