//! Keeps one (strategy, source) instance serving: validates its output,
//! replaces it after a trap or timeout with exponential backoff, and
//! quarantines it after repeated failures. A failure here never touches any
//! other instance.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::component::StrategyComponent;
use super::engine::StrategyEngine;
use super::instance::{CallError, InstanceSettings, StrategyInstance};
use super::metrics::StrategyMetrics;
use super::validate::{ValidDetection, Validator};
use crate::frame::CompactFrame;

/// When to retry a failed instance and when to give up on it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryPolicy {
    /// Wait before the first re-instantiation; doubles per consecutive failure.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Consecutive failures after which the instance is quarantined until
    /// the strategy is reloaded.
    pub quarantine_after: u32,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        RecoveryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            quarantine_after: crate::config::defaults::STRATEGY_QUARANTINE_AFTER,
        }
    }
}

impl RecoveryPolicy {
    fn backoff(&self, consecutive_failures: u32) -> Duration {
        crate::backoff::exponential(self.initial_backoff, self.max_backoff, consecutive_failures)
    }
}

/// Why a frame was not given to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Waiting to re-instantiate after a failure.
    Backoff,
    /// Too many consecutive failures; waiting for a reload.
    Quarantined,
}

/// What happened to one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The guest ran; these detections passed validation.
    Processed(Vec<ValidDetection>),
    Skipped(SkipReason),
    Failed(CallError),
}

/// A supervised (strategy, source) instance.
pub struct SupervisedInstance {
    engine: Arc<StrategyEngine>,
    component: Arc<StrategyComponent>,
    settings: InstanceSettings,
    policy: RecoveryPolicy,
    instance: Option<StrategyInstance>,
    consecutive_failures: u32,
    retry_at: Option<Instant>,
    quarantined: bool,
    metrics: Arc<StrategyMetrics>,
    last_invalid_warning: Option<Instant>,
}

/// Minimum time between two warnings about invalid detections of one instance.
const INVALID_WARNING_INTERVAL: Duration = Duration::from_secs(10);

impl SupervisedInstance {
    /// Creates and configures the first instance; an error here is a
    /// configuration problem the operator must see.
    pub fn start(
        engine: Arc<StrategyEngine>,
        component: Arc<StrategyComponent>,
        settings: InstanceSettings,
        policy: RecoveryPolicy,
        metrics: Arc<StrategyMetrics>,
    ) -> Result<Self, CallError> {
        let instance = StrategyInstance::new(&engine, component.clone(), &settings)?;
        Ok(SupervisedInstance {
            engine,
            component,
            settings,
            policy,
            instance: Some(instance),
            consecutive_failures: 0,
            retry_at: None,
            quarantined: false,
            metrics,
            last_invalid_warning: None,
        })
    }

    pub fn component(&self) -> &Arc<StrategyComponent> {
        &self.component
    }

    pub fn metrics(&self) -> &Arc<StrategyMetrics> {
        &self.metrics
    }

    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }

    /// The live instance, if any (for state hand-over on reload).
    pub fn instance_mut(&mut self) -> Option<&mut StrategyInstance> {
        self.instance.as_mut()
    }

    /// Runs one frame through the strategy.
    pub fn process(&mut self, frame: &CompactFrame) -> Outcome {
        if self.quarantined {
            self.metrics.frames_skipped.fetch_add(1, Ordering::Relaxed);
            return Outcome::Skipped(SkipReason::Quarantined);
        }
        if self.instance.is_none() {
            if self.retry_at.is_some_and(|at| Instant::now() < at) {
                self.metrics.frames_skipped.fetch_add(1, Ordering::Relaxed);
                return Outcome::Skipped(SkipReason::Backoff);
            }
            match StrategyInstance::new(&self.engine, self.component.clone(), &self.settings) {
                Ok(instance) => {
                    self.metrics.restarts.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        strategy = %self.component.name, source = %self.settings.source_id,
                        "strategy instance restarted"
                    );
                    self.instance = Some(instance);
                }
                Err(error) => return self.fail(error),
            }
        }
        let Some(instance) = self.instance.as_mut() else {
            return Outcome::Skipped(SkipReason::Backoff);
        };
        let started = Instant::now();
        let result = instance.process(frame);
        self.metrics.call_duration.observe(started.elapsed());
        self.metrics.calls.fetch_add(1, Ordering::Relaxed);
        match result {
            // Includes more than `limits.max_detections` (checked by the instance).
            Err(error) => self.fail(error),
            Ok(detections) => {
                self.consecutive_failures = 0;
                Outcome::Processed(self.validate_all(detections, frame))
            }
        }
    }

    fn validate_all(
        &mut self,
        detections: Vec<super::returned::GuestDetection>,
        frame: &CompactFrame,
    ) -> Vec<ValidDetection> {
        let mut valid = Vec::with_capacity(detections.len());
        let mut first_rejection = None;
        let mut rejected = 0u64;
        let mut validator = Validator::default();
        for detection in detections {
            match validator.check(detection, frame.width, frame.height) {
                Ok(detection) => valid.push(detection),
                Err(rejection) => {
                    rejected += 1;
                    first_rejection.get_or_insert(rejection);
                }
            }
        }
        self.metrics.detections.fetch_add(valid.len() as u64, Ordering::Relaxed);
        if let Some(reason) = first_rejection {
            self.metrics.invalid_detections.fetch_add(rejected, Ordering::Relaxed);
            let now = Instant::now();
            if self.last_invalid_warning.is_none_or(|at| now.duration_since(at) >= INVALID_WARNING_INTERVAL) {
                self.last_invalid_warning = Some(now);
                tracing::warn!(
                    strategy = %self.component.name, source = %self.settings.source_id,
                    frame = frame.frame_number, rejected, reason = %reason,
                    "dropped invalid detections returned by the strategy"
                );
            }
        }
        valid
    }

    fn fail(&mut self, error: CallError) -> Outcome {
        self.metrics.record_error(error.kind);
        self.consecutive_failures += 1;
        if error.kind.kills_instance() {
            self.instance = None;
            self.retry_at = Some(Instant::now() + self.policy.backoff(self.consecutive_failures));
        }
        if self.consecutive_failures >= self.policy.quarantine_after {
            self.quarantined = true;
            self.instance = None;
            self.metrics.quarantines.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                strategy = %self.component.name, version = %self.component.version,
                source = %self.settings.source_id, failures = self.consecutive_failures,
                kind = %error.kind, cause = %error.message,
                "strategy quarantined for this source after repeated failures; fix it and reload"
            );
        } else {
            tracing::warn!(
                strategy = %self.component.name, version = %self.component.version,
                source = %self.settings.source_id, kind = %error.kind, cause = %error.message,
                "strategy call failed"
            );
        }
        Outcome::Failed(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RecoveryPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_millis(100));
        assert_eq!(policy.backoff(2), Duration::from_millis(200));
        assert_eq!(policy.backoff(4), Duration::from_millis(800));
        assert_eq!(policy.backoff(30), Duration::from_secs(10));
    }
}
