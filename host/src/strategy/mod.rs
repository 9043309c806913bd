//! Sandboxed WebAssembly strategies: loading, instances, supervision.
//!
//! One [`StrategyEngine`] per process compiles components (through an
//! on-disk cache keyed by content hash), links them against the sandbox and
//! describes them ([`StrategyComponent`]). Each (strategy, source) pair gets
//! its own [`SupervisedInstance`]: a store and instance of its own, calls
//! with deadlines, validation of everything returned, and recovery.

pub mod bindings;
pub mod cache;
pub mod component;
pub mod engine;
pub mod instance;
pub mod metrics;
pub mod packed;
pub mod returned;
pub mod sandbox;
pub mod supervisor;
pub mod validate;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

pub use bindings::Contract;
pub use component::{CompileStats, StrategyComponent, World};
pub use engine::{EngineOptions, StrategyEngine};
pub use instance::{CallError, InstanceSettings, StrategyInstance};
pub use metrics::{ErrorKind, StrategyMetrics};
pub use returned::GuestDetection;
pub use sandbox::SandboxLimits;
pub use supervisor::{Outcome, RecoveryPolicy, SkipReason, SupervisedInstance};
pub use validate::ValidDetection;

/// SHA-256 of a component's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    pub fn of(bytes: &[u8]) -> Self {
        ContentHash(Sha256::digest(bytes).into())
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why a strategy component could not be loaded. Every variant says what to
/// do about it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("not a strategy component: {0}")]
    NotAComponent(String),
    #[error("the component does not compile: {0}")]
    Compile(String),
    #[error(
        "the component does not implement the strategy interface of {expected}; it exports [{}]. \
         Build it against the `wit/` directory of this dshost (see sdk/)",
        exports.join(", ")
    )]
    WrongInterface { expected: String, exports: Vec<String> },
    #[error(
        "the component needs imports the dshost sandbox does not provide: {message}. Its imports: [{}]. \
         Strategies may import `dshost:strategy/host` and WASI 0.2 only",
        imports.join(", ")
    )]
    Imports { message: String, imports: Vec<String> },
    #[error("`describe` failed: {0}")]
    Describe(String),
}
