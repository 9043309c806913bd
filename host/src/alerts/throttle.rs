//! The throttle between strategies and alert outputs: so that one loitering
//! person is one alert, not thirty a second.
//!
//! Per alert, in order: minimum confidence; per-key cooldown (key = source,
//! strategy, pattern and object id when there is one); burst collapse (more
//! than `threshold` alerts of one pattern from one source and strategy within
//! `window_seconds` become a single alert carrying `burst_count`); and a token
//! bucket per source and strategy (`max_alerts_per_minute`). Cooldowns and
//! burst windows run on the source's video time (`pts_ns`), so files analysed
//! faster than real time and replays are throttled as the video is; the
//! token bucket runs on wall time, because it protects the outputs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use super::alert::{Alert, AlertLevel};

/// Throttle settings (global, or per strategy).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Quiet time per key after an alert, seconds of video; 0 = off.
    pub cooldown_seconds: f64,
    /// Alerts below this confidence are dropped.
    pub min_confidence: f32,
    /// Sustained alerts per minute per source and strategy; absent = unlimited.
    pub max_alerts_per_minute: Option<u32>,
    /// Burst collapse; absent = off.
    pub burst: Option<BurstConfig>,
    /// Level per pattern, overriding the strategy's.
    pub levels: BTreeMap<String, AlertLevel>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            cooldown_seconds: 0.0,
            min_confidence: 0.0,
            max_alerts_per_minute: None,
            burst: None,
            levels: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstConfig {
    pub window_seconds: f64,
    /// Alerts allowed through per window before the rest are collapsed.
    pub threshold: u32,
}

/// Why an alert was suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Suppression {
    Confidence,
    Cooldown,
    Burst,
    RateLimit,
}

impl Suppression {
    pub const ALL: [Suppression; 4] =
        [Suppression::Confidence, Suppression::Cooldown, Suppression::Burst, Suppression::RateLimit];

    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::Confidence => "min_confidence",
            Suppression::Cooldown => "cooldown",
            Suppression::Burst => "burst",
            Suppression::RateLimit => "rate_limit",
        }
    }
}

type CooldownKey = (String, String, Arc<str>, Option<u64>);
type StreamKey = (String, String);
type BurstKey = (String, String, Arc<str>);

struct Burst {
    started_ns: u64,
    passed: u32,
    collapsed: u32,
    /// The first collapsed alert, sent with the count when the window ends.
    sample: Option<Alert>,
    /// Wall time of the first collapse: a source that goes quiet must not
    /// hold its burst alert forever.
    collapsed_at: Option<Instant>,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Throttle state for every key.
pub struct Throttle {
    global: ThrottleConfig,
    per_strategy: BTreeMap<String, ThrottleConfig>,
    last_sent_ns: HashMap<CooldownKey, u64>,
    /// The newest pts seen per source, to tell which cooldowns have passed.
    latest_pts: HashMap<String, u64>,
    /// `last_sent_ns` is pruned when it grows to this size.
    prune_at: usize,
    bursts: HashMap<BurstKey, Burst>,
    buckets: HashMap<StreamKey, Bucket>,
    suppressed: BTreeMap<Suppression, u64>,
}

/// Cooldown entries kept before the first prune.
const PRUNE_MIN: usize = 4096;

/// How far a source's pts may go back before it counts as a new timeline:
/// alerts of one source arrive in frame order, so any step back is a
/// restart; a second of slack keeps a strategy's alert about an earlier
/// frame (e.g. a loiter reported late) from being taken for one.
const REWIND_NS: u64 = 1_000_000_000;

impl Throttle {
    pub fn new(global: ThrottleConfig, per_strategy: BTreeMap<String, ThrottleConfig>) -> Self {
        Throttle {
            global,
            per_strategy,
            last_sent_ns: HashMap::new(),
            latest_pts: HashMap::new(),
            prune_at: PRUNE_MIN,
            bursts: HashMap::new(),
            buckets: HashMap::new(),
            suppressed: BTreeMap::new(),
        }
    }

    /// New settings; cooldowns, open bursts, token buckets and counters
    /// carry over, so a change never releases a flood.
    pub fn reconfigure(&mut self, global: ThrottleConfig, per_strategy: BTreeMap<String, ThrottleConfig>) {
        self.global = global;
        self.per_strategy = per_strategy;
    }

    /// Suppressed alerts so far, by reason.
    pub fn suppressed(&self) -> &BTreeMap<Suppression, u64> {
        &self.suppressed
    }

    fn config(&self, strategy: &str) -> &ThrottleConfig {
        self.per_strategy.get(strategy).unwrap_or(&self.global)
    }

    fn suppress(&mut self, reason: Suppression) -> Vec<Alert> {
        *self.suppressed.entry(reason).or_default() += 1;
        Vec::new()
    }

    /// Passes an alert through; returns what to send now (nothing, the alert,
    /// or a collapsed burst that ended before it).
    pub fn admit(&mut self, mut alert: Alert, now: Instant) -> Vec<Alert> {
        self.observe_pts(&alert.source, alert.pts_ns);
        let config = self.config(&alert.strategy).clone();
        let mut out = self.close_bursts(&alert.source, &alert.strategy, alert.pts_ns, &config);
        if alert.confidence < config.min_confidence {
            self.suppress(Suppression::Confidence);
            return out;
        }
        if let Some(level) = config.levels.get(&*alert.pattern) {
            alert.level = *level;
        }
        let key: CooldownKey = (alert.source.clone(), alert.strategy.clone(), alert.pattern.clone(), alert.object_id);
        if config.cooldown_seconds > 0.0 {
            let cooldown_ns = (config.cooldown_seconds * 1e9) as u64;
            // A pts that went backwards (source restarted) ends the cooldown.
            if let Some(&last) = self.last_sent_ns.get(&key) {
                if alert.pts_ns >= last && alert.pts_ns - last < cooldown_ns {
                    self.suppress(Suppression::Cooldown);
                    return out;
                }
            }
        }
        if let Some(burst) = &config.burst {
            let burst_key: BurstKey = (alert.source.clone(), alert.strategy.clone(), alert.pattern.clone());
            let window_ns = (burst.window_seconds * 1e9) as u64;
            let fresh = Burst { started_ns: alert.pts_ns, passed: 0, collapsed: 0, sample: None, collapsed_at: None };
            let state = self.bursts.entry(burst_key).or_insert(fresh);
            if alert.pts_ns < state.started_ns || alert.pts_ns - state.started_ns >= window_ns {
                *state = Burst { started_ns: alert.pts_ns, passed: 0, collapsed: 0, sample: None, collapsed_at: None };
            }
            if state.passed >= burst.threshold {
                state.collapsed += 1;
                if state.sample.is_none() {
                    state.sample = Some(alert);
                    state.collapsed_at = Some(now);
                }
                self.suppress(Suppression::Burst);
                return out;
            }
            state.passed += 1;
        }
        if let Some(per_minute) = config.max_alerts_per_minute {
            let capacity = f64::from(per_minute.max(1));
            let bucket = self
                .buckets
                .entry((alert.source.clone(), alert.strategy.clone()))
                .or_insert(Bucket { tokens: capacity, refilled: now });
            let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * capacity / 60.0).min(capacity);
            bucket.refilled = now;
            if bucket.tokens < 1.0 {
                self.suppress(Suppression::RateLimit);
                return out;
            }
            bucket.tokens -= 1.0;
        }
        self.last_sent_ns.insert(key, alert.pts_ns);
        if self.last_sent_ns.len() >= self.prune_at {
            self.prune_cooldowns();
        }
        out.push(alert);
        out
    }

    /// Follows a source's newest pts. A pts well behind it starts a new
    /// timeline (a looping file rewound, a camera reconnected): the old
    /// timeline's cooldowns are dropped, as its times cannot be compared with
    /// the new ones. Kept, they would stay forever (a looping file's newest
    /// pts never passes the last seconds of the loop, so pruning never sees
    /// them expire: the soak's memory slope), and a new object that reuses
    /// an old id after a reconnect would be held back by the old one's.
    fn observe_pts(&mut self, source: &str, pts_ns: u64) {
        match self.latest_pts.get_mut(source) {
            Some(latest) if pts_ns.saturating_add(REWIND_NS) < *latest => {
                *latest = pts_ns;
                self.last_sent_ns.retain(|(of, ..), _| of != source);
            }
            Some(latest) => *latest = (*latest).max(pts_ns),
            None => {
                self.latest_pts.insert(source.to_string(), pts_ns);
            }
        }
    }

    /// Drops cooldown entries whose cooldown has passed: every tracked object
    /// gets an entry, and new object ids arrive for as long as dshost runs,
    /// so without this the map grows by every object ever alerted on. An
    /// entry newer than its source's newest pts (within the rewind slack of
    /// [`Throttle::observe_pts`]) stays.
    fn prune_cooldowns(&mut self) {
        let (global, per_strategy, latest) = (&self.global, &self.per_strategy, &self.latest_pts);
        self.last_sent_ns.retain(|(source, strategy, _, _), last| {
            let cooldown_ns = (per_strategy.get(strategy).unwrap_or(global).cooldown_seconds * 1e9) as u64;
            let newest = latest.get(source).copied().unwrap_or(0);
            newest < *last || newest - *last < cooldown_ns
        });
        self.prune_at = (self.last_sent_ns.len() * 2).max(PRUNE_MIN);
    }

    /// Cooldown entries held (for tests and metrics).
    pub fn cooldown_entries(&self) -> usize {
        self.last_sent_ns.len()
    }

    /// Collapsed alerts of windows of this source and strategy that ended
    /// before `pts_ns`.
    fn close_bursts(&mut self, source: &str, strategy: &str, pts_ns: u64, config: &ThrottleConfig) -> Vec<Alert> {
        let Some(burst) = &config.burst else { return Vec::new() };
        let window_ns = (burst.window_seconds * 1e9) as u64;
        let mut out = Vec::new();
        for ((s, st, _), state) in self.bursts.iter_mut() {
            if s != source || st != strategy {
                continue;
            }
            let ended = pts_ns < state.started_ns || pts_ns - state.started_ns >= window_ns;
            if ended {
                if let Some(mut sample) = state.sample.take() {
                    sample.attributes.insert("burst_count".to_string(), state.collapsed.to_string());
                    out.push(sample);
                }
            }
        }
        out
    }

    /// Collapsed bursts held for longer than twice their window in wall time
    /// (their source went quiet, so no later alert closes the window).
    pub fn release_idle(&mut self, now: Instant) -> Vec<Alert> {
        let mut out = Vec::new();
        for ((_, strategy, _), state) in self.bursts.iter_mut() {
            let window = self
                .per_strategy
                .get(strategy)
                .unwrap_or(&self.global)
                .burst
                .as_ref()
                .map(|b| std::time::Duration::from_secs_f64(b.window_seconds * 2.0));
            let idle = match (state.collapsed_at, window) {
                (Some(at), Some(window)) => now.saturating_duration_since(at) >= window,
                _ => false,
            };
            if idle {
                if let Some(mut sample) = state.sample.take() {
                    sample.attributes.insert("burst_count".to_string(), state.collapsed.to_string());
                    state.collapsed_at = None;
                    out.push(sample);
                }
            }
        }
        out
    }

    /// Every collapsed burst still held (at shutdown).
    pub fn drain(&mut self) -> Vec<Alert> {
        let mut out = Vec::new();
        for state in self.bursts.values_mut() {
            if let Some(mut sample) = state.sample.take() {
                sample.attributes.insert("burst_count".to_string(), state.collapsed.to_string());
                out.push(sample);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::alert::AlertBox;

    const SECOND: u64 = 1_000_000_000;

    fn alert(pts_ns: u64, pattern: &str, object_id: Option<u64>, confidence: f32) -> Alert {
        Alert {
            id: format!("{pts_ns}-{pattern}-{object_id:?}"),
            ts: String::new(),
            source: "cam".into(),
            frame: pts_ns / (SECOND / 30),
            pts_ns,
            strategy: "s".into(),
            strategy_version: "1".into(),
            pattern: pattern.into(),
            confidence,
            bbox: AlertBox { left: 0.0, top: 0.0, width: 1.0, height: 1.0 },
            object_id,
            level: AlertLevel::Medium,
            attributes: BTreeMap::new(),
            snapshot: None,
        }
    }

    #[test]
    fn cooldowns_of_objects_long_gone_are_forgotten() {
        let config = ThrottleConfig { cooldown_seconds: 5.0, ..ThrottleConfig::default() };
        let mut throttle = Throttle::new(config, BTreeMap::new());
        let now = Instant::now();
        // 100,000 objects, a new one every 10 ms of video: 1000 s of a busy
        // scene, each object alerted once.
        for i in 0..100_000u64 {
            let passed = throttle.admit(alert(i * SECOND / 100, "person", Some(i), 0.9), now);
            assert_eq!(passed.len(), 1);
        }
        // Only objects within the last cooldown (5 s = 500 objects) need an
        // entry; pruning keeps the map within twice the prune threshold.
        assert!(throttle.cooldown_entries() < 2 * PRUNE_MIN, "{} entries", throttle.cooldown_entries());
        // An object within its cooldown is still held back after pruning.
        let last = 99_999u64;
        assert!(throttle.admit(alert(last * SECOND / 100 + SECOND, "person", Some(last), 0.9), now).is_empty());
    }

    #[test]
    fn a_looping_file_keeps_only_its_current_loops_cooldowns() {
        // A 10 s file looped 300 times (about 50 minutes), its pts back to 0
        // at each loop; the tracker numbers objects on across loops, a new
        // one every 100 ms, each alerted once.
        let config = ThrottleConfig { cooldown_seconds: 5.0, ..ThrottleConfig::default() };
        let mut throttle = Throttle::new(config, BTreeMap::new());
        let now = Instant::now();
        let mut id = 0u64;
        for _loop in 0..300 {
            for step in 0..100u64 {
                id += 1;
                let passed = throttle.admit(alert(step * SECOND / 10, "person", Some(id), 0.9), now);
                assert_eq!(passed.len(), 1);
            }
        }
        // One loop's 100 objects at most. Before, the entries of each loop's
        // last 5 s (newer than the loop's newest pts minus the cooldown)
        // were never pruned: about 50 a loop, 15,000 here.
        assert!(throttle.cooldown_entries() <= 100, "{} entries", throttle.cooldown_entries());
    }

    #[test]
    fn a_reconnected_camera_does_not_inherit_cooldowns_of_reused_ids() {
        let config = ThrottleConfig { cooldown_seconds: 5.0, ..ThrottleConfig::default() };
        let mut throttle = Throttle::new(config, BTreeMap::new());
        let now = Instant::now();
        // Object 7 alerted at 3 s, the stream runs on to 60 s.
        assert_eq!(throttle.admit(alert(3 * SECOND, "person", Some(7), 0.9), now).len(), 1);
        assert_eq!(throttle.admit(alert(60 * SECOND, "person", Some(1), 0.9), now).len(), 1);
        // The camera reconnects: pts from 0 again, the new tracker's ids from
        // 1 again. A new object 7 at 4 s is not the old one.
        assert_eq!(throttle.admit(alert(SECOND / 2, "person", Some(1), 0.9), now).len(), 1);
        assert_eq!(throttle.admit(alert(4 * SECOND, "person", Some(7), 0.9), now).len(), 1);
        // Within the new timeline the cooldown still holds.
        assert!(throttle.admit(alert(6 * SECOND, "person", Some(7), 0.9), now).is_empty());
        // A small step back (an alert about an earlier frame) is no restart.
        assert!(throttle.admit(alert(5 * SECOND + SECOND / 2, "person", Some(7), 0.9), now).is_empty());
    }

    fn run(throttle: &mut Throttle, alerts: Vec<Alert>) -> Vec<Alert> {
        let now = Instant::now();
        let mut out: Vec<Alert> = alerts.into_iter().flat_map(|a| throttle.admit(a, now)).collect();
        out.extend(throttle.drain());
        out
    }

    #[test]
    fn cooldown_per_object_makes_a_loiterer_one_alert() {
        let config = ThrottleConfig { cooldown_seconds: 10.0, ..Default::default() };
        let mut throttle = Throttle::new(config, BTreeMap::new());
        // 30 fps for 15 s: person 1 the whole time, person 2 from 5 s.
        let mut alerts = Vec::new();
        for frame in 0..450u64 {
            let pts = frame * SECOND / 30;
            alerts.push(alert(pts, "person", Some(1), 0.9));
            if frame >= 150 {
                alerts.push(alert(pts, "person", Some(2), 0.9));
            }
        }
        let sent = run(&mut throttle, alerts);
        let ids: Vec<(u64, Option<u64>)> = sent.iter().map(|a| (a.pts_ns / SECOND, a.object_id)).collect();
        assert_eq!(ids, vec![(0, Some(1)), (5, Some(2)), (10, Some(1))]);
        assert_eq!(throttle.suppressed()[&Suppression::Cooldown], 450 + 300 - 3);
    }

    #[test]
    fn confidence_levels_rate_limit_and_bursts() {
        let mut levels = BTreeMap::new();
        levels.insert("intruder".to_string(), AlertLevel::Critical);
        let config =
            ThrottleConfig { min_confidence: 0.5, max_alerts_per_minute: Some(3), levels, ..Default::default() };
        let mut throttle = Throttle::new(config, BTreeMap::new());
        let sent = run(
            &mut throttle,
            (0..6u64).map(|i| alert(i * SECOND, "intruder", Some(i), if i == 0 { 0.3 } else { 0.9 })).collect(),
        );
        assert_eq!(sent.len(), 3, "one below confidence, then the bucket of 3 empties");
        assert!(sent.iter().all(|a| a.level == AlertLevel::Critical));
        assert_eq!(throttle.suppressed()[&Suppression::Confidence], 1);
        assert_eq!(throttle.suppressed()[&Suppression::RateLimit], 2);

        let burst =
            ThrottleConfig { burst: Some(BurstConfig { window_seconds: 1.0, threshold: 2 }), ..Default::default() };
        let mut throttle = Throttle::new(ThrottleConfig::default(), BTreeMap::from([("s".to_string(), burst)]));
        // 10 distinct objects within one second, then one more two seconds later.
        let mut alerts: Vec<Alert> = (0..10u64).map(|i| alert(i * SECOND / 20, "car", Some(i), 0.9)).collect();
        alerts.push(alert(3 * SECOND, "car", Some(99), 0.9));
        let sent = run(&mut throttle, alerts);
        let counts: Vec<Option<&String>> = sent.iter().map(|a| a.attributes.get("burst_count")).collect();
        assert_eq!(sent.len(), 4, "2 through, 1 collapsed carrying the count, 1 after the window");
        assert_eq!(counts.iter().filter(|c| c.map(String::as_str) == Some("8")).count(), 1);
        assert_eq!(throttle.suppressed()[&Suppression::Burst], 8);

        // A source that goes quiet mid-burst: the collapsed alert comes out
        // after twice the window of wall time, without a later alert.
        let burst =
            ThrottleConfig { burst: Some(BurstConfig { window_seconds: 1.0, threshold: 1 }), ..Default::default() };
        let mut throttle = Throttle::new(burst, BTreeMap::new());
        let start = Instant::now();
        for i in 0..3u64 {
            throttle.admit(alert(i * SECOND / 10, "car", Some(i), 0.9), start);
        }
        assert!(throttle.release_idle(start + std::time::Duration::from_millis(500)).is_empty());
        let released = throttle.release_idle(start + std::time::Duration::from_secs(3));
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].attributes["burst_count"], "2");
        assert!(throttle.drain().is_empty(), "released once");
    }
}
