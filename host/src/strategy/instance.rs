//! One live instance of a strategy for one source: a store, the instance's
//! exports, and calls with deadlines.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;

use super::bindings::{v0_1, v0_2, Detection, FrameHeader, HostContext};
use super::component::{HandlerIndices, StateIndices, StrategyComponent};
use super::engine::StrategyEngine;
use super::metrics::ErrorKind;
use super::packed;
use super::returned::{GuestDetection, Patterns};
use super::sandbox::{self, classify, deadline_ticks, GuestState, SandboxLimits};
use crate::frame::{CompactFrame, LabelTable};

/// A failed call into the guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct CallError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CallError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CallError { kind, message: message.into() }
    }
}

/// What an instance needs to be configured for a source.
#[derive(Debug, Clone)]
pub struct InstanceSettings {
    pub source_id: Arc<str>,
    /// The strategy's own config as JSON.
    pub config_json: String,
    pub labels: Arc<LabelTable>,
    pub limits: SandboxLimits,
}

/// A live instance's `handler` exports, per contract version.
enum Handler {
    V0_1(v0_1::exports::dshost::strategy::handler::Guest),
    /// With the frame header in 0.2.0's type, kept and updated in place.
    V0_2(v0_2::exports::dshost::strategy::handler::Guest, v0_2::dshost::strategy::types::FrameHeader),
}

/// A live instance's `state` exports, per contract version.
enum State {
    V0_1(v0_1::exports::dshost::strategy::state::Guest),
    V0_2(v0_2::exports::dshost::strategy::state::Guest),
}

/// A configured instance.
pub struct StrategyInstance {
    component: Arc<StrategyComponent>,
    store: Store<GuestState>,
    handler: Handler,
    state: Option<State>,
    call_ticks: u64,
    setup_ticks: u64,
    max_detections: usize,
    /// Frame header reused for every call (the source id never changes).
    header: FrameHeader,
    /// The patterns this instance returned lately, shared by its detections.
    patterns: Patterns,
}

impl StrategyInstance {
    /// Instantiates `component` and calls `configure`.
    pub fn new(
        engine: &StrategyEngine,
        component: Arc<StrategyComponent>,
        settings: &InstanceSettings,
    ) -> Result<Self, CallError> {
        let limits = &settings.limits;
        let mut store =
            sandbox::new_store(engine.engine(), limits, &component.name, &settings.source_id, limits.setup_timeout);
        let setup_ticks = deadline_ticks(limits.setup_timeout);

        let instance = component
            .pre
            .instantiate(&mut store)
            .map_err(|e| CallError::new(ErrorKind::Instantiate, format!("instantiation failed: {e:#}")))?;
        let header =
            FrameHeader { source_id: settings.source_id.to_string(), frame_number: 0, pts_ns: 0, width: 0, height: 0 };
        let loaded = match &component.handler {
            HandlerIndices::V0_1(indices) => indices.load(&mut store, &instance).map(Handler::V0_1),
            HandlerIndices::V0_2(indices) => {
                indices.load(&mut store, &instance).map(|guest| Handler::V0_2(guest, (&header).into()))
            }
        };
        let handler = loaded.map_err(|e| CallError::new(ErrorKind::Instantiate, format!("{e:#}")))?;
        let state = match &component.state {
            Some(StateIndices::V0_1(indices)) => Some(indices.load(&mut store, &instance).map(State::V0_1)),
            Some(StateIndices::V0_2(indices)) => Some(indices.load(&mut store, &instance).map(State::V0_2)),
            None => None,
        };
        let state = state.transpose().map_err(|e| CallError::new(ErrorKind::Instantiate, format!("{e:#}")))?;
        let context = HostContext {
            source_id: settings.source_id.to_string(),
            class_labels: settings.labels.labels().to_vec(),
            host_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let configured = match &handler {
            Handler::V0_1(guest) => guest.call_configure(&mut store, &settings.config_json, &context),
            Handler::V0_2(guest, _) => guest.call_configure(&mut store, &settings.config_json, &(&context).into()),
        };
        match configured {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                return Err(CallError::new(ErrorKind::Instantiate, format!("configure rejected the config: {message}")))
            }
            Err(error) => {
                let kind = classify(&error, store.data());
                return Err(CallError::new(ErrorKind::Instantiate, format!("configure failed ({kind}): {error:#}")));
            }
        }
        Ok(StrategyInstance {
            component,
            store,
            handler,
            state,
            call_ticks: deadline_ticks(limits.call_timeout),
            setup_ticks,
            max_detections: limits.max_detections,
            header,
            patterns: Patterns::default(),
        })
    }

    pub fn component(&self) -> &Arc<StrategyComponent> {
        &self.component
    }

    /// Calls `process`. The detections are not validated yet (see
    /// `validate`), but there are at most `limits.max_detections` of them
    /// and a 0.2.0 result is unpacked.
    pub fn process(&mut self, frame: &CompactFrame) -> Result<Vec<GuestDetection>, CallError> {
        self.store.set_epoch_deadline(self.call_ticks);
        self.store.data_mut().reset_memory_denied();
        // The header is kept and updated in place: no allocation per call.
        let returned = match &mut self.handler {
            Handler::V0_1(guest) => {
                let header = &mut self.header;
                (header.frame_number, header.pts_ns, header.width, header.height) =
                    (frame.frame_number, frame.pts_ns, frame.width, frame.height);
                guest.call_process(&mut self.store, header, &frame.objects).map(|r| r.map(Returned::Records))
            }
            Handler::V0_2(guest, header) => {
                (header.frame_number, header.pts_ns, header.width, header.height) =
                    (frame.frame_number, frame.pts_ns, frame.width, frame.height);
                guest.call_process(&mut self.store, header, &frame.objects).map(|r| r.map(Returned::Packed))
            }
        };
        match returned {
            Ok(Ok(Returned::Records(detections))) => {
                self.check_count(detections.len())?;
                let patterns = &mut self.patterns;
                Ok(detections.into_iter().map(|d| GuestDetection::from_record(d, patterns)).collect())
            }
            Ok(Ok(Returned::Packed(detections))) => {
                // Counted before unpacking, so an oversized answer costs no allocation.
                self.check_count(packed::count(&detections))?;
                packed::unpack(detections, &mut self.patterns).map_err(|e| {
                    CallError::new(ErrorKind::InvalidOutput, format!("returned malformed packed detections: {e}"))
                })
            }
            Ok(Err(message)) => Err(CallError::new(ErrorKind::GuestError, truncate(&message, 512))),
            Err(error) => {
                let kind = classify(&error, self.store.data());
                Err(CallError::new(kind, describe_trap(kind, &error)))
            }
        }
    }

    fn check_count(&self, count: usize) -> Result<(), CallError> {
        if count <= self.max_detections {
            return Ok(());
        }
        Err(CallError::new(
            ErrorKind::InvalidOutput,
            format!(
                "returned {count} detections; at most {} per frame are accepted (raise `limits.max_detections` if this is intended)",
                self.max_detections
            ),
        ))
    }

    /// Serialized state of a stateful strategy; `None` for stateless ones.
    pub fn save_state(&mut self) -> Result<Option<Vec<u8>>, CallError> {
        let Some(state) = &self.state else {
            return Ok(None);
        };
        self.store.set_epoch_deadline(self.setup_ticks);
        let saved = match state {
            State::V0_1(guest) => guest.call_save_state(&mut self.store),
            State::V0_2(guest) => guest.call_save_state(&mut self.store),
        };
        saved.map(Some).map_err(|error| {
            let kind = classify(&error, self.store.data());
            CallError::new(kind, format!("save-state failed: {error:#}"))
        })
    }

    /// Restores state saved by a previous version. Stateless strategies
    /// ignore it.
    pub fn load_state(&mut self, saved: &[u8]) -> Result<(), CallError> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        self.store.set_epoch_deadline(self.setup_ticks);
        let loaded = match state {
            State::V0_1(guest) => guest.call_load_state(&mut self.store, saved),
            State::V0_2(guest) => guest.call_load_state(&mut self.store, saved),
        };
        match loaded {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(CallError::new(ErrorKind::GuestError, format!("load-state refused: {message}"))),
            Err(error) => {
                let kind = classify(&error, self.store.data());
                Err(CallError::new(kind, format!("load-state failed: {error:#}")))
            }
        }
    }
}

/// What `process` returned, per contract version.
enum Returned {
    Records(Vec<Detection>),
    Packed(super::bindings::PackedDetections),
}

fn describe_trap(kind: ErrorKind, error: &wasmtime::Error) -> String {
    match kind {
        ErrorKind::Timeout => "the call ran past its deadline and was interrupted".to_string(),
        ErrorKind::MemoryLimit => format!("the guest hit its memory cap and trapped: {error}"),
        _ => format!("{error:#}"),
    }
}

fn truncate(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_string();
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// Deadline in a form for log lines.
pub fn format_duration(duration: Duration) -> String {
    if duration < Duration::from_millis(1) {
        format!("{} µs", duration.as_micros())
    } else {
        format!("{} ms", duration.as_millis())
    }
}
