//! Prometheus text exposition of everything dshost counts: sources,
//! strategies per source, reloads, alerts and the process itself.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::alerts::{AlertStats, Suppression};
use crate::frame::SourceState;
use crate::metrics::Histogram;
use crate::runtime::control::ReloadCounters;
use crate::runtime::{Reloader, Runtime};
use crate::strategy::metrics::ErrorKind;

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
        }
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        let counts = histogram.counts();
        let mut cumulative = 0u64;
        let buckets = histogram.buckets();
        for (i, bound) in buckets.iter().enumerate() {
            cumulative += counts[i];
            let le = format!("{bound}");
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &with_le, cumulative as f64);
        }
        cumulative += counts[buckets.len()];
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &with_le, cumulative as f64);
        self.sample(&format!("{name}_sum"), labels, histogram.sum().as_secs_f64());
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
    }
}

/// Process figures read from /proc (Linux).
fn process_stats() -> Option<(f64, f64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks (100 per second on Linux).
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((pages * 4096.0, (utime + stime) / 100.0))
}

const STATES: [SourceState; 6] = [
    SourceState::Starting,
    SourceState::Running,
    SourceState::Reconnecting,
    SourceState::Ended,
    SourceState::Failed,
    SourceState::Stopped,
];

/// Renders the whole exposition.
pub fn render(
    runtime: &Runtime,
    reloader: Option<&Reloader>,
    alerts: &AlertStats,
    config_reloads: Option<&ReloadCounters>,
) -> String {
    let mut e = Exposition { out: String::with_capacity(8192) };
    let sources = runtime.source_metrics();
    let detector = runtime.settings().detector;
    let inference = detector.as_ref().map(|d| d.source_metrics()).unwrap_or_default();

    e.family("dshost_source_frames_total", "counter", "Frames decoded per source.");
    for (id, m) in &sources {
        e.sample("dshost_source_frames_total", &[("source", id)], m.frames_decoded.load(Ordering::Relaxed) as f64);
    }
    e.family("dshost_source_frames_analysed_total", "counter", "Frames given to the strategies per source.");
    for (id, m) in &sources {
        e.sample(
            "dshost_source_frames_analysed_total",
            &[("source", id)],
            m.frames_to_strategies.load(Ordering::Relaxed) as f64,
        );
    }
    e.family("dshost_source_frames_dropped_total", "counter", "Frames dropped per source, by reason.");
    for (id, m) in &sources {
        let dropped = m.dropped_backlog.load(Ordering::Relaxed) as f64;
        e.sample("dshost_source_frames_dropped_total", &[("source", id), ("reason", "strategy_backlog")], dropped);
    }
    for (id, m) in &inference {
        let dropped = m.backlog_drops.load(Ordering::Relaxed) as f64;
        e.sample("dshost_source_frames_dropped_total", &[("source", id), ("reason", "inference_backlog")], dropped);
    }
    e.family("dshost_source_fps", "gauge", "Recent frame rate per source (exponentially weighted).");
    for (id, m) in &sources {
        e.sample("dshost_source_fps", &[("source", id)], m.fps());
    }
    e.family("dshost_source_objects_total", "counter", "Objects found per source.");
    for (id, m) in &sources {
        e.sample("dshost_source_objects_total", &[("source", id)], m.objects.load(Ordering::Relaxed) as f64);
    }
    e.family("dshost_source_reconnects_total", "counter", "Restarts of the source's pipeline.");
    for (id, m) in &sources {
        e.sample("dshost_source_reconnects_total", &[("source", id)], m.restarts.load(Ordering::Relaxed) as f64);
    }
    e.family("dshost_source_state", "gauge", "1 for the state the source is in.");
    for (id, m) in &sources {
        let current = m.state();
        for state in STATES {
            e.sample(
                "dshost_source_state",
                &[("source", id), ("state", state.as_str())],
                f64::from(u8::from(state == current)),
            );
        }
    }
    e.family("dshost_source_latency_seconds", "histogram", "Frame-to-detection latency per source.");
    for (id, m) in &sources {
        e.histogram("dshost_source_latency_seconds", &[("source", id)], &m.latency);
    }

    let strategies = runtime.strategy_metrics();
    let versions: Vec<(String, String)> =
        runtime.plans().into_iter().map(|p| (p.name, p.component.version.clone())).collect();
    e.family("dshost_strategy_info", "gauge", "The running version of each strategy.");
    for (name, version) in &versions {
        e.sample("dshost_strategy_info", &[("strategy", name), ("version", version)], 1.0);
    }
    e.family("dshost_strategy_calls_total", "counter", "Strategy calls per strategy and source.");
    for (source, name, m) in &strategies {
        e.sample(
            "dshost_strategy_calls_total",
            &[("strategy", name), ("source", source)],
            m.calls.load(Ordering::Relaxed) as f64,
        );
    }
    e.family("dshost_strategy_errors_total", "counter", "Failed strategy calls by kind.");
    for (source, name, m) in &strategies {
        for kind in ErrorKind::ALL {
            e.sample(
                "dshost_strategy_errors_total",
                &[("strategy", name), ("source", source), ("kind", kind.as_str())],
                m.errors(kind) as f64,
            );
        }
    }
    e.family("dshost_strategy_timeouts_total", "counter", "Strategy calls interrupted at their deadline.");
    for (source, name, m) in &strategies {
        e.sample(
            "dshost_strategy_timeouts_total",
            &[("strategy", name), ("source", source)],
            m.errors(ErrorKind::Timeout) as f64,
        );
    }
    e.family("dshost_strategy_quarantines_total", "counter", "Times a strategy instance was quarantined.");
    for (source, name, m) in &strategies {
        e.sample(
            "dshost_strategy_quarantines_total",
            &[("strategy", name), ("source", source)],
            m.quarantines.load(Ordering::Relaxed) as f64,
        );
    }
    e.family("dshost_strategy_restarts_total", "counter", "Fresh instances created after a failure.");
    for (source, name, m) in &strategies {
        e.sample(
            "dshost_strategy_restarts_total",
            &[("strategy", name), ("source", source)],
            m.restarts.load(Ordering::Relaxed) as f64,
        );
    }
    e.family("dshost_strategy_detections_total", "counter", "Detections accepted from the strategy.");
    for (source, name, m) in &strategies {
        e.sample(
            "dshost_strategy_detections_total",
            &[("strategy", name), ("source", source)],
            m.detections.load(Ordering::Relaxed) as f64,
        );
    }
    e.family("dshost_strategy_invalid_detections_total", "counter", "Detections dropped by validation.");
    for (source, name, m) in &strategies {
        let invalid = m.invalid_detections.load(Ordering::Relaxed) as f64;
        e.sample("dshost_strategy_invalid_detections_total", &[("strategy", name), ("source", source)], invalid);
    }
    e.family("dshost_strategy_call_duration_seconds", "histogram", "Duration of strategy calls.");
    for (source, name, m) in &strategies {
        e.histogram(
            "dshost_strategy_call_duration_seconds",
            &[("strategy", name), ("source", source)],
            &m.call_duration,
        );
    }
    if let Some(reloader) = reloader {
        e.family("dshost_strategy_reloads_total", "counter", "Strategy reloads by result.");
        for (name, _) in &versions {
            if let Some(stats) = reloader.stats(name) {
                e.sample(
                    "dshost_strategy_reloads_total",
                    &[("strategy", name), ("result", "ok")],
                    stats.succeeded.load(Ordering::Relaxed) as f64,
                );
                e.sample(
                    "dshost_strategy_reloads_total",
                    &[("strategy", name), ("result", "failed")],
                    stats.failed.load(Ordering::Relaxed) as f64,
                );
            }
        }
    }
    e.family("dshost_alerts_total", "counter", "Alerts that passed the throttle.");
    e.sample("dshost_alerts_total", &[], alerts.emitted.load(Ordering::Relaxed) as f64);
    e.family("dshost_alerts_suppressed_total", "counter", "Alerts suppressed by the throttle, by reason.");
    for reason in Suppression::ALL {
        e.sample("dshost_alerts_suppressed_total", &[("reason", reason.as_str())], alerts.suppressed(reason) as f64);
    }
    render_delivery(&mut e, alerts);
    if let Some((rss, cpu)) = process_stats() {
        e.family("dshost_process_resident_memory_bytes", "gauge", "Resident memory of the dshost process.");
        e.sample("dshost_process_resident_memory_bytes", &[], rss);
        e.family("dshost_process_cpu_seconds_total", "counter", "CPU time used by the dshost process.");
        e.sample("dshost_process_cpu_seconds_total", &[], cpu);
    }
    e.family("dshost_snapshots_total", "counter", "Alert snapshots by result.");
    let snapshots = &alerts.snapshots;
    for (result, counter) in [
        ("written", &snapshots.written),
        ("skipped_busy", &snapshots.skipped_busy),
        ("skipped_no_frame", &snapshots.skipped_no_frame),
        ("failed", &snapshots.failed),
    ] {
        e.sample("dshost_snapshots_total", &[("result", result)], counter.load(Ordering::Relaxed) as f64);
    }
    e.family(
        "dshost_snapshots_evicted_total",
        "counter",
        "Snapshot files removed to stay under alerts.snapshots.max_mib.",
    );
    e.sample("dshost_snapshots_evicted_total", &[], snapshots.evicted.load(Ordering::Relaxed) as f64);
    if let Some(detector) = &detector {
        render_inference(&mut e, detector, &inference);
    }
    if let Some(counters) = config_reloads {
        e.family(
            "dshost_config_reloads_total",
            "counter",
            "Configuration changes applied (startup, file changes, the control API), by section and result.",
        );
        for ((section, result), count) in counters.snapshot() {
            e.sample("dshost_config_reloads_total", &[("section", &section), ("result", &result)], count as f64);
        }
    }
    e.out
}

fn render_inference(
    e: &mut Exposition,
    detector: &crate::detect::onnx::OnnxDetector,
    sources: &[(String, std::sync::Arc<crate::detect::onnx::metrics::SourceInferenceMetrics>)],
) {
    let model = detector.model.info().file.clone();
    let labels = [("model", model.as_str()), ("provider", detector.provider.as_str())];
    let m = detector.model_metrics();
    e.family("dshost_inference_seconds", "histogram", "Duration of one model run (one batch).");
    e.histogram("dshost_inference_seconds", &labels, &m.inference);
    e.family("dshost_inference_batches_total", "counter", "Model runs by the number of frames they carried.");
    for (size, runs) in m.batch_sizes() {
        let size = size.to_string();
        e.sample("dshost_inference_batches_total", &[labels[0], ("frames", size.as_str())], runs as f64);
    }
    e.family("dshost_inference_errors_total", "counter", "Model runs that failed (each fails its frames).");
    e.sample("dshost_inference_errors_total", &labels[..1], m.run_errors.load(Ordering::Relaxed) as f64);
    e.family("dshost_source_inferred_frames_total", "counter", "Frames the model ran on, per source.");
    for (id, s) in sources {
        e.sample("dshost_source_inferred_frames_total", &[("source", id)], s.inferred.load(Ordering::Relaxed) as f64);
    }
    e.family(
        "dshost_source_inference_gated_total",
        "counter",
        "Frames the model skipped, per source, by reason (fps: detect.fps; motion: nothing moved).",
    );
    for (id, s) in sources {
        e.sample(
            "dshost_source_inference_gated_total",
            &[("source", id), ("reason", "fps")],
            s.gated_fps.load(Ordering::Relaxed) as f64,
        );
        e.sample(
            "dshost_source_inference_gated_total",
            &[("source", id), ("reason", "motion")],
            s.gated_motion.load(Ordering::Relaxed) as f64,
        );
    }
    e.family("dshost_source_inference_latency_seconds", "histogram", "From a frame's submission to its result.");
    for (id, s) in sources {
        e.histogram("dshost_source_inference_latency_seconds", &[("source", id)], &s.latency);
    }
}

/// Name, type, help and value of one per-sink metric family.
type SinkFamily = (&'static str, &'static str, &'static str, fn(&crate::alerts::SinkStats) -> f64);

/// The journal and each sink.
fn render_delivery(e: &mut Exposition, alerts: &AlertStats) {
    let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed) as f64;
    e.family("dshost_alert_journal_writes_total", "counter", "Alerts written to the journal.");
    e.sample("dshost_alert_journal_writes_total", &[], load(&alerts.journaled));
    e.family("dshost_alert_journal_errors_total", "counter", "Failed journal operations (full disk, unwritable file).");
    e.sample("dshost_alert_journal_errors_total", &[], load(&alerts.journal_errors));
    e.family("dshost_alert_journal_up", "gauge", "1 while the journal accepts writes.");
    e.sample("dshost_alert_journal_up", &[], f64::from(u8::from(alerts.journal_ok.load(Ordering::Relaxed))));
    e.family(
        "dshost_alerts_replayed_total",
        "counter",
        "Undelivered alerts from an earlier run queued again at start.",
    );
    e.sample("dshost_alerts_replayed_total", &[], load(&alerts.replayed));
    e.family(
        "dshost_alerts_trimmed_undelivered_total",
        "counter",
        "Alerts removed by journal retention before every sink had them.",
    );
    e.sample("dshost_alerts_trimmed_undelivered_total", &[], load(&alerts.trimmed_undelivered));
    let sinks = alerts.sinks();
    let sinks = sinks.as_slice();
    let families: [SinkFamily; 6] = [
        ("dshost_sink_delivered_total", "counter", "Alerts a sink confirmed.", |s| {
            s.delivered.load(Ordering::Relaxed) as f64
        }),
        ("dshost_sink_failures_total", "counter", "Failed delivery attempts (each retry counts).", |s| {
            s.failures.load(Ordering::Relaxed) as f64
        }),
        ("dshost_sink_rejected_total", "counter", "Alerts a sink refused for good (not retried).", |s| {
            s.rejected.load(Ordering::Relaxed) as f64
        }),
        ("dshost_sink_dropped_total", "counter", "Alerts dropped from a full queue with no journal to wait in.", |s| {
            s.dropped.load(Ordering::Relaxed) as f64
        }),
        ("dshost_sink_queue_depth", "gauge", "Alerts waiting in a sink's memory queue.", |s| {
            s.queue_depth.load(Ordering::Relaxed) as f64
        }),
        ("dshost_sink_up", "gauge", "1 while a sink's last attempt succeeded.", |s| {
            f64::from(u8::from(s.up.load(Ordering::Relaxed)))
        }),
    ];
    for (name, kind, help, value) in families {
        e.family(name, kind, help);
        for sink in sinks {
            e.sample(name, &[("sink", &sink.name), ("type", sink.kind)], value(sink));
        }
    }
    e.family(
        "dshost_sink_delivery_seconds",
        "histogram",
        "From the alert reaching the dispatcher to the sink confirming it.",
    );
    for sink in sinks {
        e.histogram("dshost_sink_delivery_seconds", &[("sink", &sink.name), ("type", sink.kind)], &sink.latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::default();
        h.observe(std::time::Duration::from_micros(3));
        h.observe(std::time::Duration::from_secs(5));
        let mut e = Exposition { out: String::new() };
        e.histogram("x_seconds", &[("source", "s")], &h);
        assert!(e.out.contains("x_seconds_bucket{source=\"s\",le=\"0.000005\"} 1"), "{}", e.out);
        assert!(e.out.contains("x_seconds_bucket{source=\"s\",le=\"+Inf\"} 2"), "{}", e.out);
        assert!(e.out.contains("x_seconds_count{source=\"s\"} 2"), "{}", e.out);
    }
}
