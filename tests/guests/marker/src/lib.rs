//! Marker strategy: exactly one detection per frame, whose pattern names the
//! build (`a`, or `b` when built with the `variant-b` feature). Tests swap
//! the two builds and check, frame by frame, which one processed what.

use dshost_sdk::{Detection, FrameHeader, HostContext, Objects, Strategy, StrategyInfo};

const VARIANT: &str = if cfg!(feature = "variant-b") { "b" } else { "a" };

pub struct Marker;

impl Strategy for Marker {
    fn describe() -> StrategyInfo {
        dshost_sdk::info(
            "marker",
            if cfg!(feature = "variant-b") { "2.0.0" } else { "1.0.0" },
            "one detection per frame naming the build",
        )
    }

    fn configure(_config: &str, _context: &HostContext) -> Result<Self, String> {
        Ok(Marker)
    }

    fn process(&mut self, frame: &FrameHeader, objects: Objects<'_>) -> Result<Vec<Detection>, String> {
        Ok(vec![dshost_sdk::detect(VARIANT)
            .bbox(0.0, 0.0, frame.width as f32, frame.height as f32)
            .attribute("objects", objects.len())
            .build()])
    }
}

dshost_sdk::export_strategy!(Marker);
