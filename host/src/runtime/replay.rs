//! Replays recorded frames through a strategy, without GStreamer: how a
//! strategy author tests their work (`dshost strategy test`).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use super::finding;
use crate::alerts::alert::{Alert, Origin};
use crate::frame::jsonl::FrameLine;
use crate::frame::LabelTable;
use crate::strategy::{
    CallError, ErrorKind, InstanceSettings, Outcome, RecoveryPolicy, SandboxLimits, StrategyComponent, StrategyEngine,
    StrategyMetrics, SupervisedInstance,
};

/// Settings of a replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The strategy's own config as JSON.
    pub config_json: String,
    pub labels: Arc<LabelTable>,
    pub limits: SandboxLimits,
    pub policy: RecoveryPolicy,
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReplaySummary {
    pub frames: u64,
    pub detections: u64,
    pub invalid_detections: u64,
    pub skipped_frames: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Sources whose instance ended quarantined.
    pub quarantined: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("strategy `{strategy}` could not start for source `{source_id}`: {error}")]
    Start { strategy: String, source_id: String, error: CallError },
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs `frames` through `component`, one instance per source as in a live
/// pipeline, and writes one alert JSON line per accepted detection.
pub fn replay(
    engine: &Arc<StrategyEngine>,
    component: &Arc<StrategyComponent>,
    frames: &[FrameLine],
    options: &ReplayOptions,
    out: &mut dyn Write,
) -> Result<ReplaySummary, ReplayError> {
    let mut instances: BTreeMap<String, SupervisedInstance> = BTreeMap::new();
    let mut summary = ReplaySummary::default();
    for line in frames {
        let frame = line.to_compact(&options.labels);
        if !instances.contains_key(&line.source) {
            let settings = InstanceSettings {
                source_id: frame.source_id.clone(),
                config_json: options.config_json.clone(),
                labels: options.labels.clone(),
                limits: options.limits.clone(),
            };
            let instance = SupervisedInstance::start(
                engine.clone(),
                component.clone(),
                settings,
                options.policy.clone(),
                Arc::new(StrategyMetrics::default()),
            )
            .map_err(|error| ReplayError::Start {
                strategy: component.name.clone(),
                source_id: line.source.clone(),
                error,
            })?;
            instances.insert(line.source.clone(), instance);
        }
        let Some(instance) = instances.get_mut(&line.source) else {
            continue;
        };
        summary.frames += 1;
        match instance.process(&frame) {
            Outcome::Processed(detections) => {
                let now = SystemTime::now();
                for (index, detection) in detections.into_iter().enumerate() {
                    let origin = Origin {
                        source: &line.source,
                        frame: line.frame,
                        pts_ns: line.pts_ns,
                        strategy: &component.name,
                        strategy_version: &component.version,
                        index,
                        run: 0,
                    };
                    writeln!(out, "{}", Alert::from_finding(finding(detection), origin, now).to_json_line())?;
                    summary.detections += 1;
                }
            }
            Outcome::Skipped(_) => summary.skipped_frames += 1,
            Outcome::Failed(error) => *summary.errors.entry(error.kind).or_default() += 1,
        }
    }
    for (source, instance) in &instances {
        summary.invalid_detections += instance.metrics().invalid_detections.load(std::sync::atomic::Ordering::Relaxed);
        if instance.is_quarantined() {
            summary.quarantined.push(source.clone());
        }
    }
    Ok(summary)
}
