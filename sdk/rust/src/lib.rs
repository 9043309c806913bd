//! # dshost-sdk: write dshost strategies in Rust
//!
//! A strategy is a WebAssembly component (built for `wasm32-wasip2`) that
//! receives each frame's objects and returns detections. Implement
//! [`Strategy`] (and [`StatefulStrategy`] to keep state across hot reloads),
//! then export it with [`export_strategy!`] or [`export_stateful_strategy!`].
//!
//! ```
//! use dshost_sdk::{Detection, FrameHeader, HostContext, Objects, Strategy, StrategyInfo};
//!
//! /// Reports every object wider than 100 pixels.
//! struct WideObjects;
//!
//! impl Strategy for WideObjects {
//!     fn describe() -> StrategyInfo {
//!         dshost_sdk::info("wide_objects", "0.1.0", "objects wider than 100 px")
//!     }
//!
//!     fn configure(_config: &str, _context: &HostContext) -> Result<Self, String> {
//!         Ok(WideObjects)
//!     }
//!
//!     fn process(&mut self, _frame: &FrameHeader, objects: Objects<'_>) -> Result<Vec<Detection>, String> {
//!         Ok(objects
//!             .iter()
//!             .filter(|o| o.width > 100.0)
//!             .map(|o| dshost_sdk::detect("wide").from_object(&o).build())
//!             .collect())
//!     }
//! }
//!
//! dshost_sdk::export_strategy!(WideObjects);
//! # fn main() {}
//! ```
//!
//! The compact object layout is documented in [`layout`]. `export_strategy!`
//! builds a component of contract `dshost:strategy@0.2.0`, which returns the
//! detections packed ([`packed`]); with the crate feature `contract-0-1` it
//! builds one of 0.1.0 instead (for hosts that know only 0.1.0).
//! The author-facing API is the same for both.
//!
//! With the default feature `talc`, a strategy's Rust allocations use the
//! [talc](https://crates.io/crates/talc) allocator instead of wasi-libc's
//! dlmalloc, with a free-list cache in front for blocks of up to 64 bytes: a
//! strategy allocates a few small strings per detection, and this serves
//! them in a fraction of dlmalloc's time (see docs/benchmarks.md). A strategy that sets its own `#[global_allocator]`
//! turns the feature off (`default-features = false, features = ["bindings"]`).

pub mod geometry;
pub mod layout;
pub mod packed;

pub use layout::{Object, Objects, RECORD_SIZE, UNTRACKED};

#[cfg(any(test, all(feature = "talc", target_family = "wasm", not(target_feature = "atomics"))))]
mod alloc;

#[cfg(feature = "bindings")]
mod guest;
#[cfg(feature = "bindings")]
pub use guest::*;
