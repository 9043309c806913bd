//! Gives memory the allocator holds but no longer uses back to the system.
//!
//! Video frames are allocated on GStreamer's streaming threads and freed on
//! others (strategy workers, the snapshot ring, the alert path), which leaves
//! glibc's per-thread arenas holding freed memory it does not return by
//! itself: in the hour-long soak (docs/benchmarks.md) one `malloc_trim`
//! gave back 249 MiB of a 796 MiB process. A thread of its own trims once a
//! minute (a few milliseconds of walking the arenas).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the allocator is asked to give memory back.
pub const TRIM_EVERY: Duration = Duration::from_secs(60);

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
    fn the_trimmer_stops_when_told() {
        release_free_memory();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = spawn_trimmer(stop.clone()).unwrap();
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }
}
