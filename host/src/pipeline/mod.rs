//! Video sources and the pipelines that decode them: the first stage.
//!
//! `uri` parses and redacts source URIs, `source` holds a source's settings,
//! `cpu` builds one GStreamer pipeline per source (and the synthetic `scene`)
//! that hands each decoded frame to the source's object stage
//! (`frame::ObjectStage`, built by the runtime), `controller` restarts
//! failing sources, `decode` picks GPU (NVIDIA nvv4l2decoder) or CPU
//! decoding per source, and `deepstream` runs the batched DeepStream
//! pipeline instead where it is installed.

pub mod controller;
pub mod cpu;
pub mod decode;
pub mod deepstream;
pub mod scene;
pub mod source;
pub mod uri;

pub use source::SourceSpec;

/// Initialises GStreamer (once per process; later calls are cheap) with its
/// own log sent to `tracing`.
pub fn init() -> Result<(), gstreamer::glib::Error> {
    gstreamer::init()?;
    bridge_gstreamer_log();
    Ok(())
}

/// Sends GStreamer's own debug log (its threshold set by `GST_DEBUG`, errors
/// only by default) to `tracing`, target `gstreamer`, instead of stderr.
fn bridge_gstreamer_log() {
    use gstreamer::DebugLevel;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gstreamer::log::remove_default_log_function();
        gstreamer::log::add_log_function(|category, level, file, function, line, object, message| {
            let Some(text) = message.get() else { return };
            let object = object.map(|o| o.to_string()).unwrap_or_default();
            let (category, file, function) = (category.name(), file.as_str(), function.as_str());
            match level {
                DebugLevel::Error => {
                    tracing::error!(target: "gstreamer", category, object, file, function, line, "{text}")
                }
                DebugLevel::Warning => {
                    tracing::warn!(target: "gstreamer", category, object, file, function, line, "{text}")
                }
                DebugLevel::Fixme | DebugLevel::Info => {
                    tracing::info!(target: "gstreamer", category, object, file, function, line, "{text}")
                }
                DebugLevel::Debug => {
                    tracing::debug!(target: "gstreamer", category, object, file, function, line, "{text}")
                }
                _ => tracing::trace!(target: "gstreamer", category, object, file, function, line, "{text}"),
            }
        });
    });
}
