//! Per (strategy, source) counters, read by the summary and the metrics
//! endpoint. Plain atomics: the worker thread that owns the instance writes,
//! anyone reads.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::Histogram;

/// Why a strategy call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The guest trapped (panic, unreachable, out-of-bounds access...).
    Trap,
    /// The call ran past its deadline and was interrupted.
    Timeout,
    /// The guest tried to grow its memory past the cap and then trapped.
    MemoryLimit,
    /// The guest returned values the host refused (too many detections).
    InvalidOutput,
    /// The guest returned an `err` from `process`.
    GuestError,
    /// Creating or configuring a fresh instance failed.
    Instantiate,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Trap,
        ErrorKind::Timeout,
        ErrorKind::MemoryLimit,
        ErrorKind::InvalidOutput,
        ErrorKind::GuestError,
        ErrorKind::Instantiate,
    ];

    /// Label value used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Trap => "trap",
            ErrorKind::Timeout => "timeout",
            ErrorKind::MemoryLimit => "memory_limit",
            ErrorKind::InvalidOutput => "invalid_output",
            ErrorKind::GuestError => "guest_error",
            ErrorKind::Instantiate => "instantiate",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Whether the instance is unusable afterwards (wasmtime poisons an
    /// instance that trapped) and must be replaced.
    pub fn kills_instance(self) -> bool {
        matches!(self, ErrorKind::Trap | ErrorKind::Timeout | ErrorKind::MemoryLimit | ErrorKind::Instantiate)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters of one (strategy, source) pair.
#[derive(Debug, Default)]
pub struct StrategyMetrics {
    /// Calls to `process` that reached the guest.
    pub calls: AtomicU64,
    errors: [AtomicU64; ErrorKind::ALL.len()],
    /// Detections that passed validation.
    pub detections: AtomicU64,
    /// Detections dropped by validation.
    pub invalid_detections: AtomicU64,
    /// Frames not given to the guest because it was backing off or quarantined.
    pub frames_skipped: AtomicU64,
    /// Fresh instances created after a failure.
    pub restarts: AtomicU64,
    /// Times the instance was quarantined.
    pub quarantines: AtomicU64,
    /// Duration of `process` calls.
    pub call_duration: Histogram,
}

impl StrategyMetrics {
    pub fn record_error(&self, kind: ErrorKind) {
        self.errors[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()].load(Ordering::Relaxed)
    }

    pub fn total_errors(&self) -> u64 {
        ErrorKind::ALL.iter().map(|k| self.errors(*k)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_counters_by_kind() {
        let m = StrategyMetrics::default();
        m.record_error(ErrorKind::Timeout);
        m.record_error(ErrorKind::Timeout);
        m.record_error(ErrorKind::Trap);
        assert_eq!(m.errors(ErrorKind::Timeout), 2);
        assert_eq!(m.total_errors(), 3);
        assert!(ErrorKind::Timeout.kills_instance());
        assert!(!ErrorKind::GuestError.kills_instance());
    }
}
