//! Loading a model: the file checked, a session created on the chosen
//! provider, the input read, one run on a grey frame (which resolves
//! symbolic output dimensions and proves the model runs), the family
//! recognised, the labels, and what batch sizes actually run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::decode::DecodeOptions;
use super::format::{self, Family, Hints, Layout, OutputShape, Recognised};
use super::labels::{self, LabelsError};
use super::preprocess::{Channels, Preprocess, Resize, PAD_VALUE};
use super::provider::{self, Provider};
use super::runtime::OrtRuntime;
use super::session::InferenceSession;
use crate::config::{OnnxConfig, OnnxFormat, OnnxLabels, OnnxResize};
use crate::frame::labels::COCO_LABELS;
use crate::frame::LabelTable;

const MODEL_FIX: &str = "check `pipeline.onnx.model` (or `--model`); `bash scripts/setup.sh` fetches the demo \
                         model to ~/.cache/dshost/models/yolov12n.onnx";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the model file {} does not exist. Fix: {MODEL_FIX}", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read the model file {}: {source}. Fix: {MODEL_FIX}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error(
        "{} is not an ONNX model: {reason}. Fix: give a .onnx file (re-export or download it again; \
         `bash scripts/fetch-models.sh` restores the demo model)", path.display()
    )]
    NotOnnx { path: PathBuf, reason: String },
    #[error(
        "ONNX Runtime {version} cannot load {} on {provider}: {source}. Fix: export the model with an opset this \
         ONNX Runtime supports, or try `pipeline.onnx.provider: cpu`", path.display()
    )]
    Load { path: PathBuf, version: String, provider: Provider, source: ort::Error },
    #[error(
        "{}: the CUDA graph's device buffers could not be set up on GPU {device_id}: {source}. Fix: set \
         `pipeline.onnx.cuda_graph: false`", path.display()
    )]
    GraphSetup { path: PathBuf, device_id: u32, source: ort::Error },
    #[error("{}: {reason}. Fix: export a detector with one float32 NCHW image input (e.g. images [1, 3, 640, 640])", path.display())]
    Input { path: PathBuf, reason: String },
    #[error("{} fails on a blank {width}x{height} frame: {source}", path.display())]
    ProbeRun { path: PathBuf, width: u32, height: u32, source: ort::Error },
    #[error(transparent)]
    Format(#[from] format::FormatError),
    #[error("{}: {source}", path.display())]
    Labels { path: PathBuf, source: LabelsError },
    #[error(
        "`pipeline.onnx.classes` names {} that the model does not know; its labels are: {}",
        unknown.join(", "), preview(known)
    )]
    UnknownClasses { unknown: Vec<String>, known: Vec<String> },
    #[error("`pipeline.onnx.model` is not set")]
    NoModel,
}

fn preview(labels: &[String]) -> String {
    let shown: Vec<&str> = labels.iter().take(12).map(String::as_str).collect();
    if labels.len() > shown.len() {
        format!("{}, ... ({} in all)", shown.join(", "), labels.len())
    } else {
        shown.join(", ")
    }
}

/// How to load a model (from `pipeline.onnx` plus the chosen provider).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    pub path: PathBuf,
    pub format: OnnxFormat,
    pub labels: OnnxLabels,
    pub resize: OnnxResize,
    pub provider: Provider,
    pub device_id: u32,
    /// Intra-op threads; 0 = ONNX Runtime's choice.
    pub threads: usize,
    /// Worker sessions replay a captured CUDA graph (GPU providers only;
    /// see [`InferenceSession`]).
    pub cuda_graph: bool,
}

impl ModelOptions {
    /// The same options for a session that must not capture a graph.
    fn without_graph(&self) -> ModelOptions {
        ModelOptions { cuda_graph: false, ..self.clone() }
    }

    pub fn from_config(config: &OnnxConfig, provider: Provider) -> Result<Self, ModelError> {
        Ok(ModelOptions {
            path: config.model.clone().ok_or(ModelError::NoModel)?,
            format: config.format,
            labels: config.labels.clone(),
            resize: config.resize,
            provider,
            device_id: config.device_id,
            threads: config.threads,
            // `auto` may have fallen back to the CPU: no graph there.
            cuda_graph: config.cuda_graph && provider.is_gpu(),
        })
    }
}

/// One input or output as the model declares it.
#[derive(Debug, Clone, Serialize)]
pub struct TensorInfo {
    pub name: String,
    /// e.g. `f32`; `sequence`/`map` for non-tensors.
    pub element: String,
    /// Declared dimensions, -1 where symbolic.
    pub shape: Vec<i64>,
    /// Names of symbolic dimensions (empty where static).
    pub symbols: Vec<String>,
}

/// What batch sizes a model runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BatchCapability {
    /// A static batch dimension of `size`: every run has exactly that many
    /// frames (unused slots are padded).
    Fixed { size: usize },
    /// A symbolic batch dimension, and a run of 2 frames worked.
    Dynamic,
    /// A symbolic batch dimension, but a run of 2 frames failed (static
    /// reshapes inside, as in YOLOv12's attention blocks): batch 1 only.
    SingleOnly { reason: String },
}

impl BatchCapability {
    /// Most frames per run, given the configured `max_batch`.
    pub fn frames_per_run(&self, max_batch: usize) -> usize {
        match self {
            BatchCapability::Fixed { size } => *size,
            BatchCapability::Dynamic => max_batch.max(1),
            BatchCapability::SingleOnly { .. } => 1,
        }
    }
}

/// Everything known about a loaded model (`dshost model check` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub file: String,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    /// Output shapes of the probe run.
    pub run_outputs: Vec<OutputShape>,
    pub family: Family,
    /// The output the boxes are read from.
    pub output: usize,
    pub layout: Layout,
    pub labels: Vec<String>,
    /// Where the labels came from.
    pub labels_source: String,
    pub batch: BatchCapability,
    pub preprocess: Preprocess,
    pub provider: Provider,
    pub device_id: u32,
    pub threads: usize,
    /// The model's metadata (`names` left out: see `labels`).
    pub metadata: BTreeMap<String, String>,
    /// The probe run on a grey frame (includes first-run initialisation).
    pub probe_run: Duration,
}

/// A loaded model: its description and what creates sessions for it.
pub struct OnnxModel {
    runtime: &'static OrtRuntime,
    options: ModelOptions,
    info: ModelInfo,
    /// CPU sessions of one model share their pre-packed weights.
    prepacked: Option<ort::session::builder::PrepackedWeights>,
    /// The session used while loading, handed to the first caller of
    /// [`OnnxModel::session`] instead of building another.
    first: Mutex<Option<ort::session::Session>>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel").field("file", &self.info.file).field("family", &self.info.family).finish()
    }
}

/// Checks the top level of the protobuf `ModelProto` without parsing it:
/// every field well-formed and inside the file, an `ir_version` and a
/// `graph`. Catches truncated files and files of another kind with a clear
/// message before ONNX Runtime reports a parse failure.
pub(crate) fn check_onnx_bytes(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Err("it is a zip archive; unzip it and give the .onnx file inside".into());
    }
    fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *bytes.get(*at)?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let truncated = |at: usize| format!("it ends inside a field at byte {at} of {} (truncated?)", bytes.len());
    let (mut at, mut ir_version, mut graph) = (0usize, false, false);
    while at < bytes.len() {
        let start = at;
        let key = varint(bytes, &mut at).ok_or_else(|| truncated(start))?;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 || field > 1000 {
            return Err(format!("byte {start} is not an ONNX field (another kind of file?)"));
        }
        match wire {
            0 => {
                varint(bytes, &mut at).ok_or_else(|| truncated(start))?;
            }
            1 => at += 8,
            2 => {
                let len = varint(bytes, &mut at).ok_or_else(|| truncated(start))?;
                at = at.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
            }
            5 => at += 4,
            _ => return Err(format!("byte {start} is not an ONNX field (another kind of file?)")),
        }
        if at > bytes.len() {
            return Err(truncated(start));
        }
        ir_version |= field == 1 && wire == 0;
        graph |= field == 7 && wire == 2;
    }
    match (ir_version, graph) {
        (true, true) => Ok(()),
        (false, _) => Err("it has no ONNX ir_version (another kind of file?)".into()),
        (true, false) => Err("it has no graph".into()),
    }
}

fn tensor_info(outlet: &ort::value::Outlet) -> TensorInfo {
    use ort::value::ValueType;
    match outlet.dtype() {
        ValueType::Tensor { ty, shape, dimension_symbols } => TensorInfo {
            name: outlet.name().to_string(),
            element: ty.to_string(),
            shape: shape.to_vec(),
            symbols: dimension_symbols.iter().cloned().collect(),
        },
        ValueType::Sequence(_) => {
            TensorInfo { name: outlet.name().into(), element: "sequence".into(), shape: vec![], symbols: vec![] }
        }
        ValueType::Map { .. } => {
            TensorInfo { name: outlet.name().into(), element: "map".into(), shape: vec![], symbols: vec![] }
        }
        ValueType::Optional(_) => {
            TensorInfo { name: outlet.name().into(), element: "optional".into(), shape: vec![], symbols: vec![] }
        }
    }
}

/// The shape of the output a captured CUDA graph writes, or why the model
/// cannot replay one: every run must have the same shapes, so the batch must
/// be fixed (or 1) and the probe's output shape static.
pub(crate) fn graph_output_shape(
    batch: &BatchCapability,
    outputs: &[OutputShape],
    output: usize,
) -> Result<Vec<i64>, String> {
    if *batch == BatchCapability::Dynamic {
        return Err(
            "the model's batch dimension is dynamic (a graph replays one shape); export it with a fixed batch".into()
        );
    }
    let shape = outputs.get(output).map(|o| o.shape.clone()).unwrap_or_default();
    if shape.is_empty() || shape.iter().any(|&d| d <= 0) {
        return Err(format!("the output shape {shape:?} is not static"));
    }
    Ok(shape)
}

/// Builds a session of `options.path` with the settings the stage uses
/// (public for the benchmark's bare-ONNX-Runtime baseline).
pub fn build_session(
    runtime: &OrtRuntime,
    options: &ModelOptions,
    prepacked: Option<&ort::session::builder::PrepackedWeights>,
) -> Result<ort::session::Session, ort::Error> {
    let mut builder = ort::session::Session::builder(runtime.environment())?
        .with_inter_threads(1)?
        // Spinning worker threads would burn the cores GStreamer needs
        // between runs; the stage runs a few times per second per source.
        .with_intra_op_spinning(false)?
        .with_inter_op_spinning(false)?;
    if options.threads > 0 {
        builder = builder.with_intra_threads(options.threads)?;
    }
    // ONNX Runtime prints every failed run to stderr; the pool reports
    // failures itself, once per burst. `ORT_LOG=warning` (or info, verbose)
    // brings its own messages back for debugging.
    if std::env::var_os("ORT_LOG").is_none() {
        builder = builder.with_log_level(ort::logging::LogLevel::Fatal)?;
    }
    if let Some(prepacked) = prepacked {
        builder = builder.with_prepacked_weights(prepacked)?;
    }
    provider::register(&mut builder, options.provider, options.device_id, options.cuda_graph)?;
    builder.commit_from_file(&options.path)
}

/// The image input: (batch dimension or -1, height, width).
fn image_input(path: &Path, inputs: &[TensorInfo]) -> Result<(i64, i64, i64), ModelError> {
    let describe =
        || inputs.iter().map(|i| format!("{} {} {:?}", i.name, i.element, i.shape)).collect::<Vec<_>>().join(", ");
    let input_error = |reason: String| ModelError::Input { path: path.to_path_buf(), reason };
    let [input] = inputs else {
        return Err(input_error(format!(
            "it has {} inputs ({}); dshost feeds one image input",
            inputs.len(),
            describe()
        )));
    };
    if input.element != "f32" {
        return Err(input_error(format!(
            "its input {} is {}, not float32{}",
            input.name,
            input.element,
            if input.element == "f16" { " (a half-precision export; export with half=False)" } else { "" }
        )));
    }
    match *input.shape.as_slice() {
        [b, 3, h, w] => Ok((b, h, w)),
        [_, h, _, 3] if h != 3 => Err(input_error(format!(
            "its input {} {:?} is channels-last (NHWC); dshost feeds NCHW",
            input.name, input.shape
        ))),
        _ => Err(input_error(format!("its input {} {:?} is not [batch, 3, height, width]", input.name, input.shape))),
    }
}

/// `imgsz` metadata (Ultralytics writes `[640, 640]`, height first).
fn metadata_size(metadata: &BTreeMap<String, String>) -> Option<(u32, u32)> {
    let text = metadata.get("imgsz")?;
    let numbers: Vec<u32> = text
        .trim_matches(|c| c == '[' || c == ']' || c == '(' || c == ')')
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    match *numbers.as_slice() {
        [h, w] if h > 0 && w > 0 => Some((w, h)),
        [s] if s > 0 => Some((s, s)),
        _ => None,
    }
}

struct ProbeRun {
    outputs: Vec<OutputShape>,
    /// The first item of each f32 output.
    values: Vec<Option<Vec<f32>>>,
    duration: Duration,
}

fn probe_run(
    session: &mut ort::session::Session,
    batch: usize,
    width: u32,
    height: u32,
    value: f32,
) -> Result<ProbeRun, ort::Error> {
    let item = 3 * width as usize * height as usize;
    let input = vec![value; batch * item];
    let tensor =
        ort::value::TensorRef::from_array_view(([batch, 3, height as usize, width as usize], input.as_slice()))?;
    let started = std::time::Instant::now();
    let outputs = session.run(ort::inputs![tensor])?;
    let duration = started.elapsed();
    let mut shapes = Vec::new();
    let mut values = Vec::new();
    for (name, value) in outputs.iter() {
        let shape = value.dtype().tensor_shape().map(|s| s.to_vec()).unwrap_or_default();
        values.push(value.try_extract_tensor::<f32>().ok().map(|(_, data)| data.to_vec()));
        shapes.push(OutputShape { name: name.to_string(), shape });
    }
    Ok(ProbeRun { outputs: shapes, values, duration })
}

impl OnnxModel {
    /// Loads and checks `options.path` (see the module comment).
    pub fn load(runtime: &'static OrtRuntime, options: &ModelOptions) -> Result<Arc<OnnxModel>, ModelError> {
        let path = options.path.clone();
        let file = path.display().to_string();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ModelError::Missing { path }),
            Err(source) => return Err(ModelError::Unreadable { path, source }),
        };
        check_onnx_bytes(&bytes).map_err(|reason| ModelError::NotOnnx { path: path.clone(), reason })?;
        drop(bytes);
        let prepacked = (options.provider == Provider::Cpu).then(ort::session::builder::PrepackedWeights::new);
        // The probe runs batches of different sizes, which a captured graph
        // cannot: this session never captures one.
        let probe_options = options.without_graph();
        let mut session =
            build_session(runtime, &probe_options, prepacked.as_ref()).map_err(|source| ModelError::Load {
                path: path.clone(),
                version: runtime.version().to_string(),
                provider: options.provider,
                source,
            })?;
        let inputs: Vec<TensorInfo> = session.inputs().iter().map(tensor_info).collect();
        let outputs: Vec<TensorInfo> = session.outputs().iter().map(tensor_info).collect();
        let metadata = read_metadata(&session);
        let (batch_dim, h, w) = image_input(&path, &inputs)?;
        let (width, height) = if h > 0 && w > 0 {
            (w as u32, h as u32)
        } else if let Some(size) = metadata_size(&metadata) {
            size
        } else {
            tracing::warn!(model = %file, "the input size is dynamic and the model has no `imgsz` metadata: using 640x640");
            (640, 640)
        };
        let probe_batch = if batch_dim > 0 { batch_dim as usize } else { 1 };
        let grey = f32::from(PAD_VALUE) / 255.0;
        let probe = probe_run(&mut session, probe_batch, width, height, grey)
            .map_err(|source| ModelError::ProbeRun { path: path.clone(), width, height, source })?;
        let names = match metadata.get("names").map(|text| labels::parse_names(text)) {
            Some(Ok(names)) => Some(names),
            Some(Err(error)) => {
                if options.labels == OnnxLabels::Auto {
                    return Err(ModelError::Labels { path, source: error });
                }
                None
            }
            None => None,
        };
        let hints = Hints {
            input_width: width,
            input_height: height,
            batch: probe_batch,
            metadata_classes: names.as_ref().map(Vec::len),
        };
        let Recognised { family, output, mut layout } =
            format::recognise(options.format, &probe.outputs, hints, &file)?;
        let resize = match (options.resize, family) {
            (OnnxResize::Stretch, _) => Resize::Stretch,
            (_, Family::Yolox) => Resize::LetterboxTopLeft,
            _ => Resize::LetterboxCentered,
        };
        let preprocess = match family {
            // YOLOX's reference `preproc`: BGR (OpenCV), 0-255, no scaling.
            Family::Yolox => {
                Preprocess { input_width: width, input_height: height, resize, channels: Channels::Bgr, scale: 1.0 }
            }
            _ => Preprocess {
                input_width: width,
                input_height: height,
                resize,
                channels: Channels::Rgb,
                scale: 1.0 / 255.0,
            },
        };
        if let (Family::Yolox, Layout::Objectness { classes, boxes }) = (family, &layout) {
            let (classes, boxes) = (*classes, *boxes);
            let strides: Vec<u32> = [vec![8, 16, 32], vec![8, 16, 32, 64]]
                .into_iter()
                .find(|s| format::grid_cells(width, height, s) == boxes)
                .unwrap_or_default();
            if !strides.is_empty() {
                // Judge with YOLOX's own input range (0-255).
                let run = probe_run(&mut session, probe_batch, width, height, f32::from(PAD_VALUE))
                    .map_err(|source| ModelError::ProbeRun { path: path.clone(), width, height, source })?;
                let values = run.values.get(output).cloned().flatten().unwrap_or_default();
                if format::yolox_needs_grid(&values, 5 + classes, width, height, &strides) {
                    layout = Layout::Grid { classes, boxes, strides };
                }
            }
        }
        if probe.values.get(output).is_none_or(Option::is_none) {
            return Err(ModelError::Input {
                path,
                reason: format!("its output {} is not float32", probe.outputs[output].name),
            });
        }
        let (labels, labels_source) = resolve_labels(options, names, layout.classes(), &path)?;
        let batch = match batch_dim {
            n if n > 0 => BatchCapability::Fixed { size: n as usize },
            _ => match probe_run(&mut session, 2, width, height, grey) {
                Ok(_) => BatchCapability::Dynamic,
                Err(e) => {
                    let reason = e.to_string();
                    tracing::info!(model = %file, %reason, "the batch dimension is symbolic but a batch of 2 does not run: using batch 1 (frames of several sources run concurrently instead)");
                    BatchCapability::SingleOnly { reason }
                }
            },
        };
        let mut metadata = metadata;
        metadata.remove("names");
        let info = ModelInfo {
            file,
            inputs,
            outputs,
            run_outputs: probe.outputs,
            family,
            output,
            layout,
            labels,
            labels_source,
            batch,
            preprocess,
            provider: options.provider,
            device_id: options.device_id,
            threads: options.threads,
            metadata,
            probe_run: probe.duration,
        };
        tracing::info!(
            model = %info.file,
            family = %info.family,
            input = %format!("{width}x{height}"),
            labels = info.labels.len(),
            batch = ?info.batch,
            provider = %info.provider,
            "ONNX model loaded"
        );
        Ok(Arc::new(OnnxModel { runtime, options: options.clone(), info, prepacked, first: Mutex::new(Some(session)) }))
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn preprocess(&self) -> &Preprocess {
        &self.info.preprocess
    }

    pub fn labels(&self) -> &[String] {
        &self.info.labels
    }

    /// See [`Preprocess::fit_size`].
    pub fn fit_size(&self, source_width: u32, source_height: u32) -> (u32, u32) {
        self.info.preprocess.fit_size(source_width, source_height)
    }

    /// A session of its own (one per worker thread: `ort` runs a session
    /// from one thread at a time), taking at most `max_batch` frames per run.
    pub fn session(&self, max_batch: usize) -> Result<InferenceSession, ModelError> {
        let load_error = |source| ModelError::Load {
            path: self.options.path.clone(),
            version: self.runtime.version().to_string(),
            provider: self.options.provider,
            source,
        };
        if self.options.cuda_graph {
            let usable = graph_output_shape(&self.info.batch, &self.info.run_outputs, self.info.output)
                .and_then(|shape| super::session::graph_copies_available().map(|()| shape));
            match usable {
                Ok(output_shape) => {
                    // A session of its own: the probe session must not capture.
                    let session =
                        build_session(self.runtime, &self.options, self.prepacked.as_ref()).map_err(load_error)?;
                    return InferenceSession::with_graph(session, &self.info, output_shape, self.options.device_id)
                        .map_err(|source| ModelError::GraphSetup {
                            path: self.options.path.clone(),
                            device_id: self.options.device_id,
                            source,
                        });
                }
                Err(reason) => {
                    tracing::warn!(model = %self.info.file, %reason, "pipeline.onnx.cuda_graph: running without a CUDA graph");
                }
            }
        }
        let reused = self.first.lock().unwrap_or_else(|p| p.into_inner()).take();
        let session = match reused {
            Some(session) => session,
            None => build_session(self.runtime, &self.options.without_graph(), self.prepacked.as_ref())
                .map_err(load_error)?,
        };
        Ok(InferenceSession::new(session, &self.info, max_batch))
    }

    /// Thresholds and the class filter for this model. `classes` are
    /// labels; `host` (when given) is the host's label table the model's
    /// labels are mapped into (new labels are added to it).
    pub fn decode_options(
        &self,
        confidence: f32,
        iou: f32,
        max_detections: usize,
        classes: &[String],
        host: Option<&mut LabelTable>,
    ) -> Result<DecodeOptions, ModelError> {
        let labels = &self.info.labels;
        let allowed = if classes.is_empty() {
            None
        } else {
            let unknown: Vec<String> = classes.iter().filter(|c| !labels.contains(c)).cloned().collect();
            if !unknown.is_empty() {
                return Err(ModelError::UnknownClasses { unknown, known: labels.clone() });
            }
            Some(labels.iter().map(|l| classes.contains(l)).collect())
        };
        let class_ids = host.map(|table| {
            labels
                .iter()
                .enumerate()
                .map(
                    |(i, label)| {
                        if label.is_empty() {
                            table.intern(&format!("class_{i}"))
                        } else {
                            table.intern(label)
                        }
                    },
                )
                .collect()
        });
        Ok(DecodeOptions { confidence, iou, max_detections, allowed, class_ids })
    }
}

fn read_metadata(session: &ort::session::Session) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    if let Ok(meta) = session.metadata() {
        for key in meta.custom_keys().unwrap_or_default() {
            if let Some(value) = meta.custom(&key) {
                metadata.insert(key, value);
            }
        }
        if let Some(producer) = meta.producer().filter(|p| !p.is_empty()) {
            metadata.entry("producer".into()).or_insert(producer);
        }
    }
    metadata
}

fn resolve_labels(
    options: &ModelOptions,
    names: Option<Vec<String>>,
    classes: Option<usize>,
    path: &Path,
) -> Result<(Vec<String>, String), ModelError> {
    let labels_error = |source| ModelError::Labels { path: path.to_path_buf(), source };
    match &options.labels {
        OnnxLabels::File(file) => {
            let labels = labels::read_labels_file(file).map_err(labels_error)?;
            labels::check_count(&labels, classes, &format!("the labels file {}", file.display()))
                .map_err(labels_error)?;
            Ok((labels, format!("file {}", file.display())))
        }
        OnnxLabels::Auto => match names {
            Some(names) => {
                labels::check_count(&names, classes, "the model's `names` metadata").map_err(labels_error)?;
                Ok((names, "model metadata `names`".into()))
            }
            None if classes.is_none_or(|n| n == COCO_LABELS.len()) => {
                tracing::info!(model = %path.display(), "no `names` metadata: assuming the 80 COCO labels");
                Ok((
                    COCO_LABELS.iter().map(|s| s.to_string()).collect(),
                    "COCO (the model has no `names` metadata)".into(),
                ))
            }
            None => {
                let count = classes.unwrap_or(0);
                tracing::warn!(model = %path.display(), classes = count, "no `names` metadata and no labels file: classes are named class_0, class_1, ...");
                Ok(((0..count).map(|i| format!("class_{i}")).collect(), "generated (no `names` metadata)".into()))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_byte_check_names_the_problem() {
        // ir_version 8, graph of 2 bytes.
        assert!(check_onnx_bytes(&[0x08, 0x08, 0x3a, 0x02, 0x0a, 0x00]).is_ok());
        assert!(check_onnx_bytes(&provider::identity_model()).is_ok());
        let truncated = &provider::identity_model()[..20];
        assert!(check_onnx_bytes(truncated).unwrap_err().contains("truncated"));
        assert!(check_onnx_bytes(b"").unwrap_err().contains("empty"));
        assert!(check_onnx_bytes(b"PK\x03\x04rest").unwrap_err().contains("zip archive"));
        assert!(check_onnx_bytes(b"<html><body>404</body></html>").unwrap_err().contains("another kind of file"));
        assert!(check_onnx_bytes(&[0x08, 0x08]).unwrap_err().contains("no graph"));
        assert!(check_onnx_bytes(&[0x3a, 0x00]).unwrap_err().contains("ir_version"));
    }

    #[test]
    fn imgsz_metadata() {
        let mut m = BTreeMap::new();
        m.insert("imgsz".to_string(), "[480, 640]".to_string());
        assert_eq!(metadata_size(&m), Some((640, 480)));
        m.insert("imgsz".to_string(), "320".to_string());
        assert_eq!(metadata_size(&m), Some((320, 320)));
        m.insert("imgsz".to_string(), "big".to_string());
        assert_eq!(metadata_size(&m), None);
    }

    #[test]
    fn input_checks() {
        let t = |shape: &[i64], element: &str| TensorInfo {
            name: "images".into(),
            element: element.into(),
            shape: shape.to_vec(),
            symbols: vec![],
        };
        let p = Path::new("m.onnx");
        assert_eq!(image_input(p, &[t(&[1, 3, 640, 640], "f32")]).unwrap(), (1, 640, 640));
        assert_eq!(image_input(p, &[t(&[-1, 3, -1, -1], "f32")]).unwrap(), (-1, -1, -1));
        let text = image_input(p, &[t(&[1, 640, 640, 3], "f32")]).unwrap_err().to_string();
        assert!(text.contains("NHWC") && text.contains("m.onnx"), "{text}");
        assert!(image_input(p, &[t(&[1, 3, 640, 640], "f16")]).unwrap_err().to_string().contains("half=False"));
        assert!(image_input(p, &[t(&[1, 3, 640, 640], "f32"), t(&[1, 2], "i64")])
            .unwrap_err()
            .to_string()
            .contains("2 inputs"));
    }

    #[test]
    fn a_cuda_graph_reaches_only_gpu_sessions() {
        let config = OnnxConfig { model: Some("m.onnx".into()), cuda_graph: true, ..OnnxConfig::default() };
        // `auto` fell back to the CPU: the setting has nothing to act on.
        assert!(!ModelOptions::from_config(&config, Provider::Cpu).unwrap().cuda_graph);
        assert!(ModelOptions::from_config(&config, Provider::Cuda).unwrap().cuda_graph);
        assert!(ModelOptions::from_config(&config, Provider::TensorRt).unwrap().cuda_graph);
        let off = OnnxConfig { cuda_graph: false, ..config };
        assert!(!ModelOptions::from_config(&off, Provider::Cuda).unwrap().cuda_graph);
    }

    #[test]
    fn a_cuda_graph_needs_one_static_shape() {
        let outputs = [OutputShape { name: "output0".into(), shape: vec![1, 84, 8400] }];
        assert_eq!(graph_output_shape(&BatchCapability::Fixed { size: 1 }, &outputs, 0), Ok(vec![1, 84, 8400]));
        let single = BatchCapability::SingleOnly { reason: "reshape".into() };
        assert_eq!(graph_output_shape(&single, &outputs, 0), Ok(vec![1, 84, 8400]));
        let dynamic = graph_output_shape(&BatchCapability::Dynamic, &outputs, 0).unwrap_err();
        assert!(dynamic.contains("fixed batch"), "{dynamic}");
        let symbolic = [OutputShape { name: "dets".into(), shape: vec![1, -1, 6] }];
        let error = graph_output_shape(&BatchCapability::Fixed { size: 1 }, &symbolic, 0).unwrap_err();
        assert!(error.contains("not static"), "{error}");
        assert!(graph_output_shape(&BatchCapability::Fixed { size: 1 }, &outputs, 3).is_err());
    }

    #[test]
    fn batch_frames_per_run() {
        assert_eq!(BatchCapability::Fixed { size: 4 }.frames_per_run(2), 4);
        assert_eq!(BatchCapability::Dynamic.frames_per_run(8), 8);
        assert_eq!(BatchCapability::SingleOnly { reason: String::new() }.frames_per_run(8), 1);
    }
}
