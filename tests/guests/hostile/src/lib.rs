//! Hostile strategy fixture. Its config picks one misbehaviour:
//!
//! - `well_behaved`: one detection per object (the control).
//! - `infinite_loop`: never returns from `process`.
//! - `loop_in_configure`: never returns from `configure`.
//! - `memory_growth`: allocates until the memory cap stops it.
//! - `trap_on_call`: panics (traps) on call number `n` (1-based) and every `n`th after.
//! - `million_detections`: returns 1,000,000 detections.
//! - `bad_numbers`: NaN confidence, negative and off-frame boxes, plus one valid detection.
//! - `huge_strings`: a 4 MiB pattern and a 4 MiB attribute value, plus one valid detection.
//! - `configure_error`: `configure` returns an error.
//! - `guest_error`: `process` returns an error.

use dshost_sdk::{Detection, FrameHeader, HostContext, LogLevel, Objects, Strategy, StrategyInfo};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    WellBehaved,
    InfiniteLoop,
    LoopInConfigure,
    MemoryGrowth,
    TrapOnCall,
    MillionDetections,
    BadNumbers,
    HugeStrings,
    ConfigureError,
    GuestError,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: Mode,
    #[serde(default)]
    n: u64,
}

pub struct Hostile {
    mode: Mode,
    n: u64,
    calls: u64,
    hoard: Vec<Vec<u8>>,
}

fn valid(frame: &FrameHeader) -> Detection {
    dshost_sdk::detect("valid")
        .bbox(0.0, 0.0, frame.width as f32 / 2.0, frame.height as f32 / 2.0)
        .confidence(0.5)
        .build()
}

impl Strategy for Hostile {
    fn describe() -> StrategyInfo {
        dshost_sdk::info("hostile", "0.0.1", "test fixture that misbehaves on purpose")
    }

    fn configure(config: &str, _context: &HostContext) -> Result<Self, String> {
        let config: Config = dshost_sdk::parse_config(config)?;
        match config.mode {
            Mode::ConfigureError => return Err("configure refused: this fixture always fails here".to_string()),
            Mode::LoopInConfigure => spin_forever(),
            _ => {}
        }
        Ok(Hostile { mode: config.mode, n: config.n.max(1), calls: 0, hoard: Vec::new() })
    }

    fn process(&mut self, frame: &FrameHeader, objects: Objects<'_>) -> Result<Vec<Detection>, String> {
        self.calls += 1;
        match self.mode {
            Mode::WellBehaved | Mode::ConfigureError | Mode::LoopInConfigure => {
                Ok(objects.iter().map(|o| dshost_sdk::detect("object").from_object(&o).build()).collect())
            }
            Mode::InfiniteLoop => spin_forever(),
            Mode::MemoryGrowth => loop {
                let mut chunk = vec![0u8; 8 << 20];
                chunk[0] = self.hoard.len() as u8;
                self.hoard.push(chunk);
            },
            Mode::TrapOnCall => {
                if self.calls.is_multiple_of(self.n) {
                    dshost_sdk::log(LogLevel::Error, "about to trap on purpose");
                    panic!("trap on call {}", self.calls);
                }
                Ok(vec![valid(frame)])
            }
            Mode::MillionDetections => Ok((0..1_000_000).map(|_| valid(frame)).collect()),
            Mode::BadNumbers => Ok(vec![
                dshost_sdk::detect("nan").confidence(f32::NAN).build(),
                dshost_sdk::detect("negative").bbox(10.0, 10.0, -5.0, 20.0).build(),
                dshost_sdk::detect("outside").bbox(-500.0, -500.0, 10.0, 10.0).build(),
                dshost_sdk::detect("too_confident").confidence(3.0).build(),
                dshost_sdk::detect("infinite").bbox(0.0, 0.0, f32::INFINITY, 1.0).build(),
                valid(frame),
            ]),
            Mode::HugeStrings => Ok(vec![
                dshost_sdk::detect("x".repeat(4 << 20)).build(),
                dshost_sdk::detect("long_attribute").attribute("k", "v".repeat(4 << 20)).build(),
                valid(frame),
            ]),
            Mode::GuestError => Err(format!("guest error on frame {}", frame.frame_number)),
        }
    }
}

fn spin_forever() -> ! {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

dshost_sdk::export_strategy!(Hostile);
