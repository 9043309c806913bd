//! Measurements shared by every stage: a lock-free duration histogram
//! (strategy calls, frame latency, inference, sink delivery).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the duration histogram buckets, in seconds: from a
/// strategy call (microseconds) to a CPU inference or a slow sink (seconds).
pub const DURATION_BUCKETS: [f64; 16] =
    [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 5e-3, 2e-2, 1e-1, 0.25, 0.5, 1.0, 2.5];

/// Buckets for model inference and frame latency (1 ms to 5 s): a CPU run
/// of a 640x640 detector takes 30-300 ms, a GPU run a few ms.
pub const INFERENCE_BUCKETS: [f64; 14] =
    [1e-3, 2.5e-3, 5e-3, 1e-2, 2e-2, 3.5e-2, 5e-2, 7.5e-2, 0.1, 0.15, 0.25, 0.5, 1.0, 5.0];

/// Buckets for a frame's latency from capture to its strategies' results
/// (100 us to 5 s): without a detector a frame takes well under a
/// millisecond, with a GPU detector a few to tens of ms, on a CPU hundreds.
/// Bounds at 35, 50 and 75 ms so a "p99 under 50 ms" reads off a bucket edge
/// instead of an interpolation across 20-100 ms.
pub const FRAME_LATENCY_BUCKETS: [f64; 19] = [
    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2e-2, 3.5e-2, 5e-2, 7.5e-2, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A fixed-bucket histogram (Prometheus style, cumulative on export).
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds, seconds.
    buckets: &'static [f64],
    /// One count per bucket plus the overflow (+Inf) bucket.
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    /// Buckets for sub-millisecond calls ([`DURATION_BUCKETS`]).
    fn default() -> Self {
        Histogram::with_buckets(&DURATION_BUCKETS)
    }
}

impl Histogram {
    /// A histogram with these upper bounds (seconds, ascending).
    pub fn with_buckets(buckets: &'static [f64]) -> Self {
        Histogram {
            buckets,
            counts: (0..=buckets.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// The upper bounds, seconds.
    pub fn buckets(&self) -> &'static [f64] {
        self.buckets
    }

    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = self.buckets.iter().position(|&b| seconds <= b).unwrap_or(self.buckets.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(duration.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Non-cumulative counts per bucket (last = overflow).
    pub fn counts(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }

    pub fn count(&self) -> u64 {
        self.counts().iter().sum()
    }

    /// Estimated `q` quantile (0..=1), interpolated within its bucket;
    /// `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts = self.counts();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut seen = 0.0;
        for (i, &count) in counts.iter().enumerate() {
            let next = seen + count as f64;
            if next >= rank && count > 0 {
                let lower = if i == 0 { 0.0 } else { self.buckets[i - 1] };
                let upper = self.buckets.get(i).copied().unwrap_or(lower * 2.0);
                let fraction = (rank - seen) / count as f64;
                return Some(Duration::from_secs_f64(lower + (upper - lower) * fraction));
            }
            seen = next;
        }
        None
    }

    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_nanos(500));
        h.observe(Duration::from_micros(3));
        h.observe(Duration::from_secs(2));
        h.observe(Duration::from_secs(5));
        let counts = h.counts();
        assert_eq!(counts[0], 1);
        assert_eq!(counts[2], 1);
        assert_eq!(counts[counts.len() - 2], 1, "2 s: the last finite bucket");
        assert_eq!(*counts.last().unwrap(), 1, "5 s: overflow");
        assert_eq!(h.count(), 4);
        let median = h.quantile(0.25).unwrap();
        assert!(median > Duration::from_micros(0) && median <= Duration::from_micros(1), "{median:?}");
        let q = h.quantile(0.5).unwrap();
        assert!(q > Duration::from_micros(2) && q <= Duration::from_micros(5), "{q:?}");
        assert!(Histogram::default().quantile(0.5).is_none());
    }

    #[test]
    fn histogram_with_inference_buckets() {
        let h = Histogram::with_buckets(&INFERENCE_BUCKETS);
        h.observe(Duration::from_millis(137));
        h.observe(Duration::from_millis(3));
        assert_eq!(h.counts().len(), INFERENCE_BUCKETS.len() + 1);
        assert_eq!(h.counts()[9], 1, "137 ms falls in (100, 150] ms");
        assert_eq!(h.counts()[2], 1);
        let p99 = h.quantile(0.99).unwrap();
        assert!(p99 > Duration::from_millis(100) && p99 <= Duration::from_millis(150), "{p99:?}");
    }
}
