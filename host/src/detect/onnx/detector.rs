//! One configured detector: ONNX Runtime loaded, the provider chosen, the
//! model loaded and checked, and its inference pool running, shared by every
//! source that runs the model. Built once per `pipeline.onnx` setting (and
//! again, checked before it replaces the running one, when that changes).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::metrics::{ModelMetrics, SourceInferenceMetrics};
use super::model::{ModelError, ModelOptions, OnnxModel};
use super::pool::{default_workers, InferencePool, PoolOptions};
use super::preprocess::Resize;
use super::provider::{select_provider, Provider, ProviderError};
use super::runtime::{LibrarySearch, OrtRuntime, RuntimeError};
use crate::config::OnnxConfig;
use crate::frame::LabelTable;

#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// What a frame waiting in the pool is, for its source's stage: the
/// stage's own sequence number.
pub type Ticket = u64;

pub struct OnnxDetector {
    pub config: OnnxConfig,
    pub model: Arc<OnnxModel>,
    pub provider: Provider,
    pub pool: InferencePool<Ticket>,
    /// The tracker's threshold between strong and weak boxes (the model's
    /// own confidence); the pool decodes down to the weak threshold.
    pub strong_confidence: f32,
    /// The weak-box threshold the tracker's second pass uses.
    pub low_confidence: f32,
    /// The host's label table with the model's labels in it (what
    /// strategies are configured with).
    pub labels: Arc<LabelTable>,
    /// Per-source counters, for the metrics endpoint.
    sources: Mutex<BTreeMap<String, Arc<SourceInferenceMetrics>>>,
}

/// The second (ByteTrack-style) tracker pass is on for the detector unless
/// the config says otherwise: boxes between this and `confidence` only
/// continue tracks.
pub const DEFAULT_LOW_CONFIDENCE: f32 = 0.1;

impl OnnxDetector {
    /// Loads everything `config` names. `table` makes the host's label
    /// table from the model's labels; the model's class ids are mapped into
    /// it, so strategies see them by name.
    pub fn load(
        config: &OnnxConfig,
        low_confidence: Option<f32>,
        table: impl FnOnce(&[String]) -> LabelTable,
    ) -> Result<OnnxDetector, DetectorError> {
        let runtime = OrtRuntime::get_or_load(&LibrarySearch::from_env())?;
        let support = runtime.provider_support(config.device_id);
        let choice = select_provider(config.provider, &support)?;
        if let Some(reason) = &choice.fallback_reason {
            tracing::warn!(reason = %reason, "ONNX inference on the CPU: the GPU provider is not usable");
        }
        let options = ModelOptions::from_config(config, choice.provider)?;
        let model = OnnxModel::load(runtime, &options)?;
        let low = low_confidence.unwrap_or(DEFAULT_LOW_CONFIDENCE).min(config.confidence);
        let mut labels = table(model.labels());
        let decode =
            model.decode_options(low, config.iou, config.max_detections, &config.classes, Some(&mut labels))?;
        let workers = config.workers.unwrap_or_else(|| default_workers(choice.provider));
        let pool_options = PoolOptions {
            max_batch: config.max_batch.max(1),
            max_wait: Duration::from_millis(config.max_wait_ms),
            ..PoolOptions::default()
        };
        let pool = InferencePool::for_model(&model, workers, pool_options, decode)?;
        tracing::info!(
            model = %model.info().file,
            provider = choice.provider.as_str(),
            labels = model.labels().len(),
            workers,
            "ONNX detector ready"
        );
        Ok(OnnxDetector {
            config: config.clone(),
            model,
            provider: choice.provider,
            pool,
            strong_confidence: config.confidence,
            low_confidence: low,
            labels: Arc::new(labels),
            sources: Mutex::new(BTreeMap::new()),
        })
    }

    /// The RGB image the pipeline should deliver: the model's input size,
    /// with the aspect ratio kept where the model letterboxes.
    pub fn input(&self) -> (u32, u32, bool) {
        let pre = self.model.preprocess();
        (pre.input_width, pre.input_height, pre.resize != Resize::Stretch)
    }

    pub fn model_metrics(&self) -> &Arc<ModelMetrics> {
        self.pool.metrics()
    }

    pub(super) fn register(&self, source: &str, metrics: Arc<SourceInferenceMetrics>) {
        self.sources.lock().unwrap_or_else(|p| p.into_inner()).insert(source.to_string(), metrics);
    }

    /// Counters of every source that ran the model.
    pub fn source_metrics(&self) -> Vec<(String, Arc<SourceInferenceMetrics>)> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}
