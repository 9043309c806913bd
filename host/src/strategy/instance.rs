//! One live instance of a strategy for one source: a store, the instance's
//! exports, and calls with deadlines.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;

use super::bindings::{Detection, FrameHeader, Handler, HostContext, State};
use super::component::StrategyComponent;
use super::engine::StrategyEngine;
use super::metrics::ErrorKind;
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

/// A configured instance.
pub struct StrategyInstance {
    component: Arc<StrategyComponent>,
    store: Store<GuestState>,
    handler: Handler,
    state: Option<State>,
    call_ticks: u64,
    setup_ticks: u64,
    /// Frame header reused for every call (the source id never changes).
    header: FrameHeader,
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
        let handler = component
            .handler
            .load(&mut store, &instance)
            .map_err(|e| CallError::new(ErrorKind::Instantiate, format!("{e:#}")))?;
        let state = match &component.state {
            Some(indices) => Some(
                indices
                    .load(&mut store, &instance)
                    .map_err(|e| CallError::new(ErrorKind::Instantiate, format!("{e:#}")))?,
            ),
            None => None,
        };
        let context = HostContext {
            source_id: settings.source_id.to_string(),
            class_labels: settings.labels.labels().to_vec(),
            host_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let configured = handler.call_configure(&mut store, &settings.config_json, &context);
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
            header: FrameHeader {
                source_id: settings.source_id.to_string(),
                frame_number: 0,
                pts_ns: 0,
                width: 0,
                height: 0,
            },
        })
    }

    pub fn component(&self) -> &Arc<StrategyComponent> {
        &self.component
    }

    /// Calls `process`. The result is not validated yet.
    pub fn process(&mut self, frame: &CompactFrame) -> Result<Vec<Detection>, CallError> {
        // The header is kept and updated in place: no allocation per call.
        self.header.frame_number = frame.frame_number;
        self.header.pts_ns = frame.pts_ns;
        self.header.width = frame.width;
        self.header.height = frame.height;
        self.store.set_epoch_deadline(self.call_ticks);
        self.store.data_mut().reset_memory_denied();
        match self.handler.call_process(&mut self.store, &self.header, &frame.objects) {
            Ok(Ok(detections)) => Ok(detections),
            Ok(Err(message)) => Err(CallError::new(ErrorKind::GuestError, truncate(&message, 512))),
            Err(error) => {
                let kind = classify(&error, self.store.data());
                Err(CallError::new(kind, describe_trap(kind, &error)))
            }
        }
    }

    /// Serialized state of a stateful strategy; `None` for stateless ones.
    pub fn save_state(&mut self) -> Result<Option<Vec<u8>>, CallError> {
        let Some(state) = &self.state else {
            return Ok(None);
        };
        self.store.set_epoch_deadline(self.setup_ticks);
        state.call_save_state(&mut self.store).map(Some).map_err(|error| {
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
        match state.call_load_state(&mut self.store, saved) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(CallError::new(ErrorKind::GuestError, format!("load-state refused: {message}"))),
            Err(error) => {
                let kind = classify(&error, self.store.data());
                Err(CallError::new(kind, format!("load-state failed: {error:#}")))
            }
        }
    }
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
