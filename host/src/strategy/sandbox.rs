//! The sandbox each strategy instance runs in: per-store state, resource
//! limits, a WASI context that grants nothing, and the `host` import. It is
//! the one place that builds a guest store ([`new_store`]), links the host
//! functions ([`link_host`]) and names what a failed call ran into
//! ([`classify`]); `component`, `engine` and `instance` all build on it.
//!
//! Guests get no filesystem (no preopens), no network (all addresses denied,
//! no name lookup), no environment or arguments, and clocks frozen at zero
//! (use the frame's `pts-ns`). WASI is still linked, deny-all, because
//! toolchains such as componentize-py import it even when unused.

use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, ResourceTable, WasiCtx, WasiCtxView, WasiView};

use super::bindings::{v0_1, v0_2, LogLevel};
use super::metrics::ErrorKind;

/// One epoch tick. Deadlines are whole ticks, so this is their resolution.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Limits applied to every instance of a strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxLimits {
    /// Linear memory cap per instance, bytes.
    pub memory_bytes: usize,
    /// Deadline of one `process` call.
    pub call_timeout: Duration,
    /// Deadline of `describe`, `configure`, `save-state` and `load-state`.
    pub setup_timeout: Duration,
    /// Most detections one `process` call may return.
    pub max_detections: usize,
    /// Guest log lines per second (burst of twice that).
    pub log_lines_per_second: u32,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        use crate::config::defaults;
        SandboxLimits {
            memory_bytes: defaults::STRATEGY_MEMORY_MIB << 20,
            call_timeout: Duration::from_millis(defaults::STRATEGY_CALL_TIMEOUT_MS),
            setup_timeout: Duration::from_secs(2),
            max_detections: defaults::STRATEGY_MAX_DETECTIONS,
            log_lines_per_second: 10,
        }
    }
}

/// Epoch ticks for a deadline (at least one, plus one because the tick in
/// progress may be nearly over).
pub(crate) fn deadline_ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64 + 1
}

/// A store for one guest instance: its own state, the memory and instance
/// limits, and a deadline of `deadline` that traps when it passes.
pub(crate) fn new_store(
    engine: &Engine,
    limits: &SandboxLimits,
    strategy: &str,
    source: &str,
    deadline: Duration,
) -> Store<GuestState> {
    let mut store = Store::new(engine, GuestState::new(limits, strategy, source));
    store.limiter(|state| state.limiter());
    store.epoch_deadline_trap();
    store.set_epoch_deadline(deadline_ticks(deadline));
    store
}

/// Links what a guest may import: deny-all WASI 0.2 and the `host`
/// interface of every contract version the host implements.
pub(crate) fn link_host(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    v0_1::StatefulStrategy::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    v0_2::StatefulStrategy::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)
}

/// Names the failure behind a wasmtime error from a call into the guest.
pub(crate) fn classify(error: &wasmtime::Error, state: &GuestState) -> ErrorKind {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => ErrorKind::Timeout,
        _ if state.memory_denied() => ErrorKind::MemoryLimit,
        _ => ErrorKind::Trap,
    }
}

/// Longest guest log line kept; longer ones are cut.
const MAX_LOG_LINE: usize = 1024;

/// Everything a store owns besides the instance itself.
pub struct GuestState {
    limiter: MemoryLimiter,
    wasi: WasiCtx,
    table: ResourceTable,
    log: GuestLog,
}

impl GuestState {
    pub fn new(limits: &SandboxLimits, strategy: &str, source: &str) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        GuestState {
            limiter: MemoryLimiter { max_bytes: limits.memory_bytes, denied: false },
            wasi: wasi.build(),
            table: ResourceTable::new(),
            log: GuestLog::new(strategy, source, limits.log_lines_per_second),
        }
    }

    /// Whether the guest has asked for more memory than its cap (since the
    /// last reset); a trap right after is reported as a memory-limit failure.
    pub fn memory_denied(&self) -> bool {
        self.limiter.denied
    }

    pub fn reset_memory_denied(&mut self) {
        self.limiter.denied = false;
    }

    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limiter
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl v0_1::dshost::strategy::types::Host for GuestState {}

impl v0_1::dshost::strategy::host::Host for GuestState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log.write(level, &message);
    }
}

impl v0_2::dshost::strategy::types::Host for GuestState {}

impl v0_2::dshost::strategy::host::Host for GuestState {
    fn log(&mut self, level: v0_2::dshost::strategy::host::LogLevel, message: String) {
        self.log.write(level.into(), &message);
    }
}

/// Caps linear memory and remembers refusals.
struct MemoryLimiter {
    max_bytes: usize,
    denied: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables hold function references; 100k entries is far beyond any
        // real strategy and keeps a hostile guest from eating host memory.
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        // componentize-py components need more than 16 core instances.
        64
    }

    fn memories(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }
}

/// Clocks that always read zero: guests measure time with frame timestamps,
/// which keeps them deterministic and replayable.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Forwards guest log lines to `tracing`, rate-limited with a token bucket.
struct GuestLog {
    strategy: String,
    source: String,
    per_second: f64,
    tokens: f64,
    last_refill: Instant,
    dropped: u64,
}

impl GuestLog {
    fn new(strategy: &str, source: &str, per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        GuestLog {
            strategy: strategy.to_string(),
            source: source.to_string(),
            per_second,
            tokens: per_second * 2.0,
            last_refill: Instant::now(),
            dropped: 0,
        }
    }

    fn write(&mut self, level: LogLevel, message: &str) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last_refill).as_secs_f64();
        self.last_refill = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second * 2.0);
        if self.tokens < 1.0 {
            self.dropped += 1;
            return;
        }
        self.tokens -= 1.0;
        let line = sanitize(message);
        let (strategy, source, dropped) = (self.strategy.as_str(), self.source.as_str(), self.dropped);
        self.dropped = 0;
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: "dshost::guest", strategy, source, dropped, "{line}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "dshost::guest", strategy, source, dropped, "{line}")
            }
            LogLevel::Info => {
                tracing::info!(target: "dshost::guest", strategy, source, dropped, "{line}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "dshost::guest", strategy, source, dropped, "{line}")
            }
            LogLevel::Error => {
                tracing::error!(target: "dshost::guest", strategy, source, dropped, "{line}")
            }
        }
    }
}

/// Cuts a guest message to [`MAX_LOG_LINE`] bytes and replaces control
/// characters, so a guest cannot forge log lines or flood the terminal.
fn sanitize(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_LOG_LINE));
    for c in message.chars() {
        if out.len() + c.len_utf8() > MAX_LOG_LINE {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_cuts_and_strips_controls() {
        assert_eq!(sanitize("a\nb\x1b[31m"), "a b [31m");
        let long = "x".repeat(5000);
        assert!(sanitize(&long).len() <= MAX_LOG_LINE + '…'.len_utf8());
    }

    #[test]
    fn log_bucket_drops_floods() {
        let mut log = GuestLog::new("s", "cam", 1);
        for _ in 0..10 {
            log.write(LogLevel::Info, "hello");
        }
        assert!(log.dropped >= 7, "burst of 2 allowed, got {} dropped", log.dropped);
    }

    #[test]
    fn deadline_ticks() {
        assert_eq!(super::deadline_ticks(Duration::from_millis(20)), 21);
        assert_eq!(super::deadline_ticks(Duration::ZERO), 2);
    }

    #[test]
    fn memory_limiter_refuses_and_remembers() {
        let mut limiter = MemoryLimiter { max_bytes: 1 << 20, denied: false };
        assert!(limiter.memory_growing(0, 1 << 19, None).unwrap());
        assert!(!limiter.denied);
        assert!(!limiter.memory_growing(0, 2 << 20, None).unwrap());
        assert!(limiter.denied);
    }
}
