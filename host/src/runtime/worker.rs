//! The strategy worker of one source: takes frames from the source's queue
//! and runs every strategy assigned to the source on each, on its own
//! thread (never a GStreamer streaming thread), turning accepted detections
//! into alerts.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::finding;
use crate::alerts::alert::{Alert, Origin};
use crate::frame::{CompactFrame, FrameQueue, SourceMetrics};
use crate::strategy::{Outcome, SupervisedInstance};

/// One strategy's instance for this source.
pub struct StrategySlot {
    pub name: String,
    pub instance: SupervisedInstance,
}

/// Receives every analysed frame (e.g. `dshost record`).
pub type FrameTap = Box<dyn FnMut(&CompactFrame) + Send>;

/// Changes to a worker's strategies, applied between two frames: a frame is
/// always processed entirely by one version of each strategy.
pub enum WorkerCommand {
    /// Installs `instance` as strategy `name`, replacing the running one.
    /// With `carry_state`, the old instance's `save-state` feeds the new
    /// one's `load-state`; if that fails the old instance stays.
    Install { name: String, instance: Box<SupervisedInstance>, carry_state: bool, reply: Sender<InstallOutcome> },
    /// Stops running strategy `name` on this source.
    Remove { name: String },
}

/// Why a source kept the running version of a strategy at a reload.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HandOverError {
    #[error("the new version refused the running version's state: {0}")]
    Refused(String),
    #[error("the new instance is not running")]
    NotRunning,
}

/// What one worker did with an install.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallOutcome {
    pub source: String,
    pub result: Result<(), HandOverError>,
}

pub struct Worker {
    pub queue: Arc<FrameQueue>,
    pub metrics: Arc<SourceMetrics>,
    pub slots: Vec<StrategySlot>,
    pub alerts: Sender<Alert>,
    pub run_id: u64,
    pub tap: Option<FrameTap>,
    pub commands: Receiver<WorkerCommand>,
    pub source_id: String,
}

impl Worker {
    /// Runs until the queue is closed and drained.
    pub fn run(mut self) {
        self.queue.register_consumer();
        loop {
            while let Ok(command) = self.commands.try_recv() {
                self.apply(command);
            }
            match self.queue.pop(Duration::from_millis(100)) {
                Some(frame) => self.handle(frame),
                None if self.queue.is_closed_and_empty() => break,
                None => {}
            }
        }
    }

    fn apply(&mut self, command: WorkerCommand) {
        match command {
            WorkerCommand::Install { name, mut instance, carry_state, reply } => {
                let result = match self.slots.iter_mut().find(|slot| slot.name == name) {
                    Some(slot) => {
                        let handed_over =
                            if carry_state { hand_over_state(&mut slot.instance, &mut instance) } else { Ok(()) };
                        if handed_over.is_ok() {
                            slot.instance = *instance;
                        }
                        handed_over
                    }
                    None => {
                        self.slots.push(StrategySlot { name, instance: *instance });
                        Ok(())
                    }
                };
                let _ = reply.send(InstallOutcome { source: self.source_id.clone(), result });
            }
            WorkerCommand::Remove { name } => self.slots.retain(|slot| slot.name != name),
        }
    }

    fn handle(&mut self, frame: CompactFrame) {
        if let Some(tap) = &mut self.tap {
            tap(&frame);
        }
        let started = Instant::now();
        let now = SystemTime::now();
        for slot in &mut self.slots {
            let Outcome::Processed(detections) = slot.instance.process(&frame) else {
                continue;
            };
            self.metrics.detections.fetch_add(detections.len() as u64, Ordering::Relaxed);
            let version = &slot.instance.component().version;
            for (index, detection) in detections.into_iter().enumerate() {
                let origin = Origin {
                    source: &frame.source_id,
                    frame: frame.frame_number,
                    pts_ns: frame.pts_ns,
                    strategy: &slot.name,
                    strategy_version: version,
                    index,
                    run: self.run_id,
                };
                // The receiver lives as long as the runtime; if it is gone we
                // are shutting down and there is nobody to tell.
                let _ = self.alerts.send(Alert::from_finding(finding(detection), origin, now));
            }
        }
        self.metrics.strategy_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.metrics.latency.observe(frame.captured_at.elapsed());
        self.metrics.frames_to_strategies.fetch_add(1, Ordering::Relaxed);
        self.queue.recycle(frame.objects);
    }
}

/// Moves the state of a stateful strategy from the running instance to its
/// replacement. A running instance that is dead (backing off, quarantined)
/// has no state to give; the new one starts fresh.
fn hand_over_state(old: &mut SupervisedInstance, new: &mut SupervisedInstance) -> Result<(), HandOverError> {
    let Some(old_instance) = old.instance_mut() else {
        return Ok(());
    };
    let saved = match old_instance.save_state() {
        Ok(Some(saved)) => saved,
        Ok(None) => return Ok(()),
        Err(error) => {
            tracing::warn!(error = %error, "the running version could not save its state; the new version starts fresh");
            return Ok(());
        }
    };
    match new.instance_mut() {
        // The call error keeps its text; it is a guest's answer, not a cause chain.
        Some(new_instance) => new_instance.load_state(&saved).map_err(|e| HandOverError::Refused(e.to_string())),
        None => Err(HandOverError::NotRunning),
    }
}
