//! Defaults that both the config model and the runtime use, in one place.

/// `strategies[].limits.memory_mib`.
pub const STRATEGY_MEMORY_MIB: usize = 64;
/// `strategies[].limits.call_timeout_ms`.
pub const STRATEGY_CALL_TIMEOUT_MS: u64 = 20;
/// `strategies[].limits.max_detections`.
pub const STRATEGY_MAX_DETECTIONS: usize = 256;
/// `recovery.strategy_quarantine_after`: consecutive failures before an
/// instance is quarantined.
pub const STRATEGY_QUARANTINE_AFTER: u32 = 5;
