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
        }
    }

    /// The summary as the terminal shows it at exit.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for s in &self.sources {
            let _ = writeln!(
                out,
                "summary {}: {} frames decoded, {} given to strategies, {} dropped (strategy_backlog), {} restarts, {} objects, {} detections, state {}{}",
                s.id,
                s.frames_decoded,
                s.frames_to_strategies,
                s.frames_dropped.strategy_backlog,
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
        if self.journal.errors > 0 {
            let _ = writeln!(out, "summary: the alert journal failed {} times; see the log", self.journal.errors);
        }
        out
    }
}
