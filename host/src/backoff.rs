//! Exponential backoff with jitter, shared by source restarts, strategy
//! re-instantiation and alert sink retries.

use std::time::Duration;

/// `initial * 2^(attempt-1)`, capped at `max` (`attempt` counts from 1).
pub fn exponential(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    initial.saturating_mul(1 << exponent).min(max)
}

/// +-20 %, so that many cameras behind one failed switch, or sinks behind
/// one broker, do not retry in lockstep.
pub fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(0.8 + 0.4 * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let (initial, max) = (Duration::from_millis(500), Duration::from_secs(10));
        assert_eq!(exponential(initial, max, 1), Duration::from_millis(500));
        assert_eq!(exponential(initial, max, 3), Duration::from_millis(2000));
        assert_eq!(exponential(initial, max, 10), Duration::from_secs(10));
        assert_eq!(exponential(initial, max, u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(800) && d <= Duration::from_millis(1200), "{d:?}");
        }
    }
}
