//! Which pipeline backend runs (`pipeline.backend`), decided the same way
//! for `dshost run` and `dshost probe`: survey the machine, list what
//! DeepStream would still need for the config's sources, then apply the
//! setting (`auto` falls back to the CPU backend with the reason).

use std::sync::Arc;

use crate::config::{Backend, Config};
use crate::frame::LabelTable;
use crate::pipeline::deepstream::batched::{DeepStreamError, DeepStreamPipeline};
use crate::pipeline::deepstream::select::{decide, Choice, NotUsable, Survey};
use crate::pipeline::deepstream::Profile;
use crate::pipeline::SourceSpec;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("GStreamer could not be initialised: {0}")]
    Gstreamer(#[from] gstreamer::glib::Error),
    #[error(transparent)]
    NotUsable(#[from] NotUsable),
    #[error("DeepStream profile {0} or its metadata library vanished between checks; run `dshost probe`")]
    Vanished(&'static str),
    #[error("cannot start the DeepStream pipeline: {0}")]
    DeepStream(#[from] DeepStreamError),
}

/// What this machine offers for `config`.
pub struct BackendSurvey {
    pub survey: Survey,
    /// What DeepStream still lacks for the config's sources; empty = usable.
    pub missing: Vec<String>,
    /// The config's sources that parse (the others are refused elsewhere).
    pub sources: Vec<SourceSpec>,
}

impl BackendSurvey {
    /// Looks at the machine (GStreamer must be initialised).
    pub fn gather(config: &Config) -> BackendSurvey {
        let ds = &config.pipeline.deepstream;
        let survey = Survey::gather(ds);
        let sources: Vec<SourceSpec> =
            config.sources.iter().filter_map(|s| SourceSpec::from_config(s, config.pipeline.detector).ok()).collect();
        let missing = survey.missing(ds, &sources);
        BackendSurvey { survey, missing, sources }
    }

    /// What `requested` runs here.
    pub fn decide(&self, requested: Backend) -> Result<Choice, NotUsable> {
        decide(requested, &self.missing, self.survey.profile, self.survey.detection.layout)
    }
}

/// Applies `pipeline.backend`: `None` runs the CPU backend; the DeepStream
/// pipeline when `auto` finds it usable or `deepstream` asks for it (an
/// error naming what is missing when it is not usable).
pub fn start_backend(
    config: &Config,
    labels: &Arc<LabelTable>,
) -> Result<Option<Arc<DeepStreamPipeline>>, BackendError> {
    if config.pipeline.backend == Backend::Cpu {
        tracing::info!("backend: cpu (configured)");
        return Ok(None);
    }
    crate::pipeline::init()?;
    let survey = BackendSurvey::gather(config);
    match survey.decide(config.pipeline.backend)? {
        Choice::Cpu { reason } => {
            tracing::info!(reason = %reason, "backend: cpu");
            Ok(None)
        }
        Choice::Deepstream { profile, layout } => {
            let (Some(profile), Ok(library)) = (Profile::by_id(profile), survey.survey.library) else {
                return Err(BackendError::Vanished(profile));
            };
            let ds = &config.pipeline.deepstream;
            if ds.new_streammux {
                // nvstreammux reads this when its plugin loads, which is when
                // the first element is made, below; no other thread reads it.
                std::env::set_var("USE_NEW_NVSTREAMMUX", "yes");
            }
            tracing::info!(profile = profile.id, layout = %layout, "backend: deepstream");
            let pipeline =
                DeepStreamPipeline::start(ds, profile, library, layout, labels.clone(), survey.sources.len())?;
            Ok(Some(pipeline))
        }
    }
}
