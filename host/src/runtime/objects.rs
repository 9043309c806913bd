//! Which object stage each source gets, and building it: the runtime owns
//! this choice so the pipeline and the detectors never import each other.

use std::sync::Arc;

use super::sources::{RuntimeError, RuntimeSettings};
use crate::config::{Config, DetectorKind};
use crate::detect::onnx::{DetectorError, OnnxDetector, OnnxStage, OnnxStageSettings};
use crate::detect::{BuiltinSettings, BuiltinStage};
use crate::frame::{LabelTable, ObjectStage, StageFactory};
use crate::pipeline::uri::SourceUri;
use crate::pipeline::SourceSpec;

/// The detector a source runs: its own or the pipeline's, with `auto`
/// resolved where the source decides it (a synthetic scene carries its
/// ground truth as ROI metadata) and where a model is configured (`onnx`).
pub fn detector_of(spec: &SourceSpec, model_configured: bool) -> DetectorKind {
    match spec.detector {
        DetectorKind::Auto if matches!(spec.uri, SourceUri::Scene { .. }) => DetectorKind::Roi,
        DetectorKind::Auto if model_configured => DetectorKind::Onnx,
        other => other,
    }
}

/// Whether any source of `config` runs the ONNX detector.
pub fn needs_model(config: &Config) -> bool {
    let model = config.pipeline.onnx.model.is_some();
    config.sources.iter().any(|source| match SourceSpec::from_config(source, config.pipeline.detector) {
        Ok(spec) => detector_of(&spec, model) == DetectorKind::Onnx,
        Err(_) => false,
    }) || (model && config.pipeline.detector != DetectorKind::None)
}

/// The class label table: `pipeline.labels`; else the model's labels when
/// a model runs, else COCO's 80; `motion` after them.
pub fn labels(config: &Config, model_labels: Option<&[String]>) -> LabelTable {
    let mut table = match (&config.pipeline.labels, model_labels) {
        (Some(labels), _) => LabelTable::from_labels(labels.clone()),
        (None, Some(model)) => LabelTable::from_labels(model.to_vec()),
        (None, None) => LabelTable::coco(),
    };
    table.intern("motion");
    table
}

/// Loads the detector `config` asks for (`None` when no source needs one).
pub fn load_detector(config: &Config) -> Result<Option<Arc<OnnxDetector>>, DetectorError> {
    if !needs_model(config) {
        return Ok(None);
    }
    let detector = OnnxDetector::load(&config.pipeline.onnx, config.pipeline.tracker.low_confidence, |model| {
        labels(config, Some(model))
    })?;
    Ok(Some(Arc::new(detector)))
}

/// Makes the object stage of each run of `spec`'s pipeline.
pub fn stage_factory(spec: &SourceSpec, settings: &RuntimeSettings) -> Result<StageFactory, RuntimeError> {
    let kind = detector_of(spec, settings.pipeline.onnx.model.is_some());
    if kind == DetectorKind::Onnx {
        let Some(detector) = settings.detector.clone() else {
            return Err(RuntimeError::NoDetector(spec.id.to_string()));
        };
        let onnx = OnnxStageSettings {
            detector,
            detect: spec.detect.clone(),
            motion: settings.pipeline.motion.clone(),
            tracker: settings.pipeline.tracker.clone(),
            source_id: spec.id.clone(),
        };
        return Ok(Arc::new(move || Box::new(OnnxStage::new(onnx.clone())) as Box<dyn ObjectStage>));
    }
    let builtin = BuiltinSettings {
        kind,
        motion: settings.pipeline.motion.clone(),
        tracker: settings.pipeline.tracker.clone(),
        labels: settings.labels.clone(),
        source_id: spec.id.clone(),
    };
    Ok(Arc::new(move || Box::new(BuiltinStage::new(builtin.clone())) as Box<dyn ObjectStage>))
}
