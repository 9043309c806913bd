//! The running DeepStream pipeline: the core from the builder (muxer ->
//! inference -> tracker -> sink with the metadata probe), and sources that
//! join and leave through the muxer's request pads while it runs. Frames
//! go to the same per-source queues and strategy workers as on the CPU
//! backend (see `probe`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::builder::{self, BuildError, DsSource, MUX, SINK};
use super::library::MetaLibrary;
use super::probe::{MetaProbe, Route, Routes};
use super::profile::Profile;
use super::reader::BatchReader;
use super::version::MetaLayout;
use crate::config::DeepStreamConfig;
use crate::frame::LabelTable;
use crate::frame::SourceState;
use crate::pipeline::source::SourceSpec;

#[derive(Debug, thiserror::Error)]
pub enum DeepStreamError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot create the DeepStream pipeline `{description}`: {error}")]
    Parse { description: String, error: String },
    #[error("the DeepStream pipeline has no element `{0}`")]
    NoElement(&'static str),
    #[error("source `{id}`: {message}")]
    Source { id: String, message: String },
    #[error("the DeepStream pipeline does not start: {0}")]
    State(String),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

struct Joined {
    index: u32,
    bin: gst::Bin,
    mux_pad: gst::Pad,
}

/// One batched pipeline for every source.
pub struct DeepStreamPipeline {
    config: DeepStreamConfig,
    profile: &'static Profile,
    pipeline: gst::Pipeline,
    mux: gst::Element,
    routes: Arc<Routes>,
    sources: Mutex<BTreeMap<String, Joined>>,
    stop: Arc<AtomicBool>,
    bus: Mutex<Option<JoinHandle<()>>>,
}

impl DeepStreamPipeline {
    /// Builds and starts the core; sources join with [`Self::add_source`].
    /// `expected_sources` sizes the batch when the config does not.
    pub fn start(
        config: &DeepStreamConfig,
        profile: &'static Profile,
        library: Arc<MetaLibrary>,
        layout: MetaLayout,
        labels: Arc<LabelTable>,
        expected_sources: usize,
    ) -> Result<Arc<Self>, DeepStreamError> {
        let core = builder::core(config, profile, expected_sources)?;
        let pipeline = gst::parse::launch(&core)
            .map_err(|e| DeepStreamError::Parse { description: core.clone(), error: e.to_string() })?
            .downcast::<gst::Pipeline>()
            .map_err(|_| DeepStreamError::Parse { description: core.clone(), error: "not a pipeline".into() })?;
        let mux = pipeline.by_name(MUX).ok_or(DeepStreamError::NoElement(MUX))?;
        let sink_pad =
            pipeline.by_name(SINK).and_then(|s| s.static_pad("sink")).ok_or(DeepStreamError::NoElement(SINK))?;
        // The legacy muxer scales to width x height; the new one does not.
        let output = (!config.new_streammux).then_some((config.width, config.height));
        let reader = BatchReader::new(layout, config.confidence).with_output_size(output);
        let routes = Arc::new(Routes::default());
        MetaProbe::new(library, reader, routes.clone(), labels).install(&sink_pad);
        pipeline.set_state(gst::State::Playing).map_err(|e| DeepStreamError::State(e.to_string()))?;
        let this = Arc::new(DeepStreamPipeline {
            config: config.clone(),
            profile,
            pipeline,
            mux,
            routes,
            sources: Mutex::new(BTreeMap::new()),
            stop: Arc::new(AtomicBool::new(false)),
            bus: Mutex::new(None),
        });
        let watcher = this.clone();
        let handle = std::thread::Builder::new()
            .name("deepstream-bus".into())
            .spawn(move || watcher.watch_bus())
            .map_err(DeepStreamError::Thread)?;
        *this.bus.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        tracing::info!(profile = profile.id, layout = %layout, "DeepStream pipeline started");
        Ok(this)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Joined>> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins a source through a new muxer request pad; its frames go to `route`.
    pub fn add_source(&self, spec: &SourceSpec, route: Route) -> Result<u32, DeepStreamError> {
        let source = DsSource::from_spec(spec)?;
        let id = source.id.clone();
        let failed = |message: String| DeepStreamError::Source { id: id.clone(), message };
        let index = self.routes.free_index();
        let chain = builder::source_chain(&self.config, self.profile, index, &source);
        let bin = gst::parse::bin_from_description(&chain, true).map_err(|e| failed(e.to_string()))?;
        let src_pad = bin.static_pad("src").ok_or_else(|| failed("the source chain has no output pad".into()))?;
        let mux_pad = self
            .mux
            .request_pad_simple(&format!("sink_{index}"))
            .ok_or_else(|| failed(format!("nvstreammux gave no request pad sink_{index}")))?;
        // A source's end of stream marks it ended (files), seen on our own pad.
        let metrics = route.metrics.clone();
        let live = spec.is_live();
        src_pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(event)) = &info.data {
                if event.type_() == gst::EventType::Eos && !live {
                    metrics.set_state(SourceState::Ended);
                }
            }
            gst::PadProbeReturn::Ok
        });
        route.metrics.set_state(SourceState::Running);
        self.routes.set(index, route);
        self.pipeline.add(&bin).map_err(|e| failed(e.to_string()))?;
        src_pad.link(&mux_pad).map_err(|e| failed(format!("cannot link to nvstreammux: {e:?}")))?;
        bin.sync_state_with_parent().map_err(|e| failed(e.to_string()))?;
        tracing::info!(source = %id, uri = %spec.uri.redacted(), pad = index, "source joined the DeepStream pipeline");
        self.lock().insert(id, Joined { index, bin, mux_pad });
        Ok(index)
    }

    /// Removes a source: its route first (no more frames), then its chain
    /// and its muxer pad.
    pub fn remove_source(&self, id: &str) {
        let Some(joined) = self.lock().remove(id) else { return };
        self.routes.remove(joined.index);
        let _ = joined.bin.set_state(gst::State::Null);
        let _ = self.pipeline.remove(&joined.bin);
        // As NVIDIA's runtime add/delete sample does: flush the stream out of
        // the muxer before its pad goes.
        joined.mux_pad.send_event(gst::event::FlushStop::new(false));
        self.mux.release_request_pad(&joined.mux_pad);
        tracing::info!(source = %id, "source left the DeepStream pipeline");
    }

    /// Logs the bus: errors and warnings of the shared pipeline.
    fn watch_bus(&self) {
        let Some(bus) = self.pipeline.bus() else { return };
        while !self.stop.load(Ordering::Relaxed) {
            let Some(message) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) else { continue };
            match message.view() {
                gst::MessageView::Error(error) => tracing::error!(
                    element = %message.src().map(|s| s.path_string().to_string()).unwrap_or_default(),
                    error = %error.error(),
                    "DeepStream pipeline error"
                ),
                gst::MessageView::Warning(warning) => tracing::warn!(
                    element = %message.src().map(|s| s.path_string().to_string()).unwrap_or_default(),
                    warning = %warning.error(),
                    "DeepStream pipeline warning"
                ),
                _ => {}
            }
        }
    }

    /// Stops the pipeline and its bus thread.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(handle) = self.bus.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = handle.join();
        }
    }
}
