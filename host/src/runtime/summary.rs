//! What a run did: one struct, written as JSON for `--summary-json` and as
//! lines for the terminal at exit.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::alerts::{AlertStats, Suppression};
use crate::frame::SourceSummary;
use crate::strategy::StrategyMetrics;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategySummary {
    pub source: String,
    pub strategy: String,
    pub calls: u64,
    pub detections: u64,
    pub invalid_detections: u64,
    pub errors: u64,
    pub restarts: u64,
    pub quarantines: u64,
}

impl StrategySummary {
    pub fn of(source: &str, strategy: &str, m: &StrategyMetrics) -> Self {
        StrategySummary {
            source: source.to_string(),
            strategy: strategy.to_string(),
            calls: m.calls.load(Ordering::Relaxed),
            detections: m.detections.load(Ordering::Relaxed),
            invalid_detections: m.invalid_detections.load(Ordering::Relaxed),
            errors: m.total_errors(),
            restarts: m.restarts.load(Ordering::Relaxed),
            quarantines: m.quarantines.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SinkSummary {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub rejected: u64,
    pub dropped: u64,
    /// Still pending at exit: sent again at the next start.
    pub left_pending: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JournalSummary {
    pub journaled: u64,
    pub errors: u64,
    pub replayed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceInference {
    pub source: String,
    pub submitted: u64,
    pub inferred: u64,
    pub backlog_drops: u64,
    pub errors: u64,
    pub gated_fps: u64,
    pub gated_motion: u64,
    /// From submission to the result.
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p99: Option<f64>,
}

/// What the ONNX detector did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferenceSummary {
    pub model: String,
    pub provider: &'static str,
    pub runs: u64,
    pub frames: u64,
    pub run_errors: u64,
    /// Per model run.
    pub inference_ms_p50: Option<f64>,
    pub inference_ms_p99: Option<f64>,
    /// `[frames, runs]` for each batch size seen.
    pub batch_sizes: Vec<(usize, u64)>,
    pub sources: Vec<SourceInference>,
}

impl InferenceSummary {
    pub fn of(detector: &crate::detect::onnx::OnnxDetector) -> Self {
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        let m = detector.model_metrics();
        InferenceSummary {
            model: detector.model.info().file.clone(),
            provider: detector.provider.as_str(),
            runs: m.runs.load(Ordering::Relaxed),
            frames: m.frames.load(Ordering::Relaxed),
            run_errors: m.run_errors.load(Ordering::Relaxed),
            inference_ms_p50: ms(m.inference.quantile(0.5)),
            inference_ms_p99: ms(m.inference.quantile(0.99)),
            batch_sizes: m.batch_sizes(),
            sources: detector
                .source_metrics()
                .iter()
                .map(|(source, s)| SourceInference {
                    source: source.clone(),
                    submitted: s.submitted.load(Ordering::Relaxed),
                    inferred: s.inferred.load(Ordering::Relaxed),
                    backlog_drops: s.backlog_drops.load(Ordering::Relaxed),
                    errors: s.errors.load(Ordering::Relaxed),
                    gated_fps: s.gated_fps.load(Ordering::Relaxed),
                    gated_motion: s.gated_motion.load(Ordering::Relaxed),
                    latency_ms_p50: ms(s.latency.quantile(0.5)),
                    latency_ms_p99: ms(s.latency.quantile(0.99)),
                })
                .collect(),
        }
    }
}

/// The exit summary (`--summary-json` writes it as JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub sources: Vec<SourceSummary>,
    pub strategies: Vec<StrategySummary>,
    /// Alerts that passed the throttle.
    pub alerts: u64,
    /// Alerts the throttle held back, by reason.
    pub suppressed: BTreeMap<&'static str, u64>,
    pub sinks: Vec<SinkSummary>,
    pub journal: JournalSummary,
    /// Present when the ONNX detector ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference: Option<InferenceSummary>,
}

impl RunSummary {
    pub fn new(
        sources: Vec<SourceSummary>,
        strategies: Vec<StrategySummary>,
        alerts: u64,
        stats: &AlertStats,
    ) -> RunSummary {
        RunSummary {
            sources,
            strategies,
            alerts,
            suppressed: Suppression::ALL
                .iter()
                .map(|r| (r.as_str(), stats.suppressed(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            sinks: stats
                .sinks()
                .iter()
                .map(|sink| SinkSummary {
                    name: sink.name.clone(),
                    kind: sink.kind.to_string(),
                    delivered: sink.delivered.load(Ordering::Relaxed),
                    failed_attempts: sink.failures.load(Ordering::Relaxed),
                    rejected: sink.rejected.load(Ordering::Relaxed),
                    dropped: sink.dropped.load(Ordering::Relaxed),
                    left_pending: sink.left_pending.load(Ordering::Relaxed),
                })
                .collect(),
            journal: JournalSummary {
                journaled: stats.journaled.load(Ordering::Relaxed),
                errors: stats.journal_errors.load(Ordering::Relaxed),
                replayed: stats.replayed.load(Ordering::Relaxed),
            },
            inference: None,
        }
    }

    /// The summary as the terminal shows it at exit.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for s in &self.sources {
            let _ = writeln!(
                out,
                "summary {}: {} frames decoded, {} given to strategies, {} dropped (strategy_backlog){}, {} restarts, {} objects, {} detections, state {}{}",
                s.id,
                s.frames_decoded,
                s.frames_to_strategies,
                s.frames_dropped.strategy_backlog,
                match s.frames_dropped.inference_backlog {
                    0 => String::new(),
                    n => format!(", {n} dropped (inference_backlog)"),
                },
                s.restarts,
                s.objects,
                s.detections,
                s.state.as_str(),
                s.last_error.as_ref().map(|e| format!(", last error: {e}")).unwrap_or_default()
            );
        }
        if self.suppressed.is_empty() {
            let _ = writeln!(out, "summary: {} alerts", self.alerts);
        } else {
            let reasons: Vec<String> = self.suppressed.iter().map(|(r, n)| format!("{r}={n}")).collect();
            let _ = writeln!(out, "summary: {} alerts, suppressed: {}", self.alerts, reasons.join(", "));
        }
        for sink in &self.sinks {
            let _ = writeln!(
                out,
                "summary sink {} ({}): {} delivered, {} failed attempts, {} rejected, {} dropped{}",
                sink.name,
                sink.kind,
                sink.delivered,
                sink.failed_attempts,
                sink.rejected,
                sink.dropped,
                if sink.left_pending > 0 {
                    format!(", {} still pending (sent again at the next start)", sink.left_pending)
                } else {
                    String::new()
                }
            );
        }
        if let Some(i) = &self.inference {
            let _ = writeln!(
                out,
                "summary inference {} ({}): {} runs, {} frames, median {:.1} ms per run, p99 {:.1} ms",
                i.model,
                i.provider,
                i.runs,
                i.frames,
                i.inference_ms_p50.unwrap_or(0.0),
                i.inference_ms_p99.unwrap_or(0.0)
            );
        }
        if self.journal.errors > 0 {
            let _ = writeln!(out, "summary: the alert journal failed {} times; see the log", self.journal.errors);
        }
        out
    }
}
