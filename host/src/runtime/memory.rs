//! Gives memory the allocator holds but no longer uses back to the system.
//!
//! Video frames are allocated on GStreamer's streaming threads and freed on
//! others (strategy workers, the snapshot ring, the alert path), which leaves
//! glibc's per-thread arenas holding freed memory it does not return by
//! itself: in the hour-long soak (docs/benchmarks.md) one `malloc_trim`
//! gave back 249 MiB of a 796 MiB process. A thread of its own trims once a
//! minute (a few milliseconds of walking the arenas).
//!
//! Trimming alone did not stop the growth: the soak's mapping dumps showed
//! `[heap]` shrinking while glibc's 64 MiB per-thread arenas kept growing
//! (dozens of streaming and worker threads each get one, up to 8 per core);
//! with `MALLOC_ARENA_MAX=2` the arenas stayed flat and the hour's RSS slope
//! fell to a third (docs/benchmarks.md). So the binary caps the
//! arena count at start-up, before any thread exists. This is a `mallopt`
//! rather than a Rust global allocator (mimalloc, jemalloc) because most of
//! the bytes are GStreamer's frames, allocated by C through glibc `malloc`,
//! which a Rust allocator would never see.
//!
//! With the arenas capped, the hour's mapping dumps showed the main arena
//! (`[heap]`) swinging by 50 MB and drifting: frames (hundreds of KiB each)
//! were carved out of the heap because glibc raises its mmap threshold
//! every time a large mmap'ed block is freed, up to 32 MiB, after which
//! every frame comes from the heap and freed frames leave holes that a trim
//! cannot return. Setting the threshold fixes it (and turns the dynamic
//! adjustment off): blocks of 128 KiB and more that do not fit in free heap
//! space are mapped on their own and unmapped when freed, so the heap stops
//! growing with frames and RSS follows what is live (the soak's `[heap]`
//! stayed at 15 MB, docs/benchmarks.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the allocator is asked to give memory back.
pub const TRIM_EVERY: Duration = Duration::from_secs(60);

/// Arenas glibc may create when the operator has not chosen (its own
/// `MALLOC_ARENA_MAX`, which glibc reads itself and which wins). Two kept the
/// soak's thread arenas flat; per-thread caches (tcache) still serve small allocations
/// without taking an arena lock.
pub const DEFAULT_ARENA_MAX: i32 = 2;

/// Allocations from this size on are mapped on their own when the operator
/// has not chosen (`MALLOC_MMAP_THRESHOLD_`, or `GLIBC_TUNABLES`, which
/// glibc reads itself). glibc's own starting value, kept fixed.
pub const DEFAULT_MMAP_THRESHOLD: i32 = 128 * 1024;

/// Caps glibc's malloc arenas unless `MALLOC_ARENA_MAX` is set, and fixes
/// the mmap threshold unless `MALLOC_MMAP_THRESHOLD_` is set (neither when
/// `GLIBC_TUNABLES` is: the operator tunes glibc). Call first thing in
/// `main`: arenas already created stay.
pub fn tune_allocator() {
    let operator = |name: &str| std::env::var_os(name).is_some() || std::env::var_os("GLIBC_TUNABLES").is_some();
    if !operator("MALLOC_ARENA_MAX") {
        set(M_ARENA_MAX, DEFAULT_ARENA_MAX);
    }
    if !operator("MALLOC_MMAP_THRESHOLD_") {
        set(M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
use libc::{M_ARENA_MAX, M_MMAP_THRESHOLD};
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
const M_ARENA_MAX: i32 = 0;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
const M_MMAP_THRESHOLD: i32 = 0;

/// One `mallopt`; the value when glibc accepted it.
fn set(option: i32, value: i32) -> Option<i32> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes a malloc tunable; it is thread-safe and
        // takes no pointers.
        let ok = unsafe { libc::mallopt(option, value) };
        if ok == 1 {
            return Some(value);
        }
    }
    let _ = (option, value);
    None
}

/// Returns freed memory to the system (glibc only; elsewhere nothing to do).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Starts the trimming thread; it ends when `stop` is set.
pub fn spawn_trimmer(stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("dshost-trim".into()).spawn(move || {
        let mut last = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(500));
            if last.elapsed() >= TRIM_EVERY {
                release_free_memory();
                last = Instant::now();
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_arena_cap_and_the_mmap_threshold() {
        // glibc's mallopt returns 1 on success; a rejected value would mean
        // the setting silently did nothing.
        assert_eq!(set(M_ARENA_MAX, DEFAULT_ARENA_MAX), Some(DEFAULT_ARENA_MAX));
        assert_eq!(set(M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD), Some(DEFAULT_MMAP_THRESHOLD));
    }

    #[test]
    fn the_trimmer_stops_when_told() {
        release_free_memory();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = spawn_trimmer(stop.clone()).unwrap();
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }
}
