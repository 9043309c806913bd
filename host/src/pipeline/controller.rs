//! Keeps one source running: builds its pipeline, watches the bus and a
//! no-frames watchdog, and restarts it alone with exponential backoff and
//! jitter after an error, an end-of-stream from a live source, or a stall.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::cpu::{self, StageContext};
use super::source::SourceSpec;
use crate::config::RecoveryConfig;
use crate::frame::SourceState;

/// How a pipeline run ended.
#[derive(Debug, PartialEq)]
enum RunEnd {
    /// File or finite generator finished.
    Finished,
    /// Stop requested.
    Stopped,
    /// Needs a restart, with the cause.
    Restart(String),
}

/// Runs the source until it ends, fails for good, or `stop` is set.
pub fn run_source(spec: SourceSpec, stage: StageContext, recovery: RecoveryConfig, stop: Arc<AtomicBool>) {
    let metrics = stage.outlet.metrics.clone();
    let source = spec.id.clone();
    let uri = spec.uri.redacted();
    let max_attempts = recovery.max_attempts.unwrap_or(if spec.is_live() { u32::MAX } else { 3 });
    let mut failures: u32 = 0;
    tracing::info!(source = %source, uri = %uri, "starting source");
    loop {
        let frames_before = metrics.frames_decoded.load(Ordering::Relaxed);
        let end = match cpu::build(&spec, &stage) {
            Ok(pipeline) => {
                let end = play(&pipeline, &spec, &stage, &recovery, &stop);
                let _ = pipeline.set_state(gst::State::Null);
                end
            }
            Err(error) => RunEnd::Restart(error.to_string()),
        };
        match end {
            RunEnd::Finished => {
                metrics.set_state(SourceState::Ended);
                tracing::info!(source = %source, "source ended");
                break;
            }
            RunEnd::Stopped => {
                metrics.set_state(SourceState::Stopped);
                break;
            }
            RunEnd::Restart(cause) => {
                if metrics.frames_decoded.load(Ordering::Relaxed) > frames_before {
                    failures = 0; // it worked for a while: start the backoff over
                }
                failures += 1;
                metrics.set_error(cause.clone());
                if failures > max_attempts {
                    metrics.set_state(SourceState::Failed);
                    tracing::error!(source = %source, uri = %uri, attempts = failures - 1, cause = %cause, "source failed for good; giving up");
                    break;
                }
                let delay = crate::backoff::jittered(backoff(&recovery, failures));
                metrics.set_state(SourceState::Reconnecting);
                metrics.restarts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    source = %source, uri = %uri, cause = %cause, attempt = failures,
                    retry_in_ms = delay.as_millis() as u64, "restarting source"
                );
                if sleep_unless_stopped(delay, &stop) {
                    metrics.set_state(SourceState::Stopped);
                    break;
                }
            }
        }
    }
    stage.outlet.queue.close();
}

fn backoff(recovery: &RecoveryConfig, failures: u32) -> Duration {
    crate::backoff::exponential(
        Duration::from_millis(recovery.initial_backoff_ms),
        Duration::from_millis(recovery.max_backoff_ms),
        failures,
    )
}

/// Sleeps in short steps; returns true when stopped meanwhile.
fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + total;
    while Instant::now() < deadline {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20).min(deadline.saturating_duration_since(Instant::now())));
    }
    stop.load(Ordering::Relaxed)
}

fn play(
    pipeline: &gst::Pipeline,
    spec: &SourceSpec,
    stage: &StageContext,
    recovery: &RecoveryConfig,
    stop: &AtomicBool,
) -> RunEnd {
    let Some(bus) = pipeline.bus() else {
        return RunEnd::Restart("pipeline has no bus".to_string());
    };
    if let Err(error) = pipeline.set_state(gst::State::Playing) {
        let detail = first_error(&bus).unwrap_or_else(|| error.to_string());
        return RunEnd::Restart(format!("cannot start: {detail}"));
    }
    let started = Instant::now();
    let watchdog = Duration::from_secs_f64(recovery.watchdog_seconds);
    let mut running_reported = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            return RunEnd::Stopped;
        }
        let last_frame = stage.outlet.metrics.last_frame();
        if !running_reported && last_frame.is_some_and(|at| at >= started) {
            stage.outlet.metrics.set_state(SourceState::Running);
            running_reported = true;
        }
        let quiet_since = last_frame.filter(|at| *at >= started).unwrap_or(started);
        if quiet_since.elapsed() > watchdog {
            return RunEnd::Restart(format!("no frames for {:.1} s (watchdog)", watchdog.as_secs_f64()));
        }
        let Some(message) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match message.view() {
            gst::MessageView::Error(error) => {
                return RunEnd::Restart(format!(
                    "{} (from {})",
                    error.error(),
                    error.src().map(|s| s.name().to_string()).unwrap_or_default()
                ));
            }
            gst::MessageView::Eos(_) => {
                if spec.is_live() {
                    return RunEnd::Restart("end of stream from a live source (disconnected)".to_string());
                }
                if spec.loop_file {
                    let rewound =
                        pipeline.seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT, gst::ClockTime::ZERO);
                    if rewound.is_err() {
                        return RunEnd::Restart("cannot rewind the file to loop it".to_string());
                    }
                    continue;
                }
                return RunEnd::Finished;
            }
            gst::MessageView::Warning(warning) => {
                tracing::debug!(source = %spec.id, warning = %warning.error(), "GStreamer warning");
            }
            _ => {}
        }
    }
}

fn first_error(bus: &gst::Bus) -> Option<String> {
    let message = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(200), &[gst::MessageType::Error])?;
    match message.view() {
        gst::MessageView::Error(error) => Some(error.error().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let recovery = RecoveryConfig::default();
        assert_eq!(backoff(&recovery, 1), Duration::from_millis(500));
        assert_eq!(backoff(&recovery, 3), Duration::from_millis(2000));
        assert_eq!(backoff(&recovery, 10), Duration::from_secs(10));
    }
}
