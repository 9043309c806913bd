//! Which object stage each source gets, and building it: the runtime owns
//! this choice so the pipeline and the detectors never import each other.

use std::sync::Arc;

use super::sources::RuntimeSettings;
use crate::config::DetectorKind;
use crate::detect::{BuiltinSettings, BuiltinStage};
use crate::frame::{ObjectStage, StageFactory};
use crate::pipeline::uri::SourceUri;
use crate::pipeline::SourceSpec;

/// The detector a source runs: its own or the pipeline's, with `auto`
/// resolved where the source decides it (a synthetic scene carries its
/// ground truth as ROI metadata).
pub fn detector_of(spec: &SourceSpec) -> DetectorKind {
    match spec.detector {
        DetectorKind::Auto if matches!(spec.uri, SourceUri::Scene { .. }) => DetectorKind::Roi,
        other => other,
    }
}

/// Makes the object stage of each run of `spec`'s pipeline.
pub fn stage_factory(spec: &SourceSpec, settings: &RuntimeSettings) -> StageFactory {
    let builtin = BuiltinSettings {
        kind: detector_of(spec),
        motion: settings.pipeline.motion.clone(),
        tracker: settings.pipeline.tracker.clone(),
        labels: settings.labels.clone(),
        source_id: spec.id.clone(),
    };
    Arc::new(move || Box::new(BuiltinStage::new(builtin.clone())) as Box<dyn ObjectStage>)
}
