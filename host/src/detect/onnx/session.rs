//! One ONNX Runtime session with its input buffer and decoder: frames in,
//! boxes in source pixels out. A worker of the pool owns one; so do
//! `dshost model check` and the benchmark.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::decode::{DecodeError, DecodeOptions, Decoder};
use super::model::{BatchCapability, ModelInfo};
use super::preprocess::{Preprocess, PreprocessError, RgbImage, Transform};
use crate::detect::Detected;

/// One frame to run: the image as scaled by the pipeline and the size of
/// the source frame its boxes are reported in.
#[derive(Debug, Clone, Copy)]
pub struct FrameRef<'a> {
    pub image: RgbImage<'a>,
    pub source_width: u32,
    pub source_height: u32,
}

/// Why a frame has no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InferenceError {
    #[error("preprocessing: {0}")]
    Preprocess(#[from] PreprocessError),
    /// The run of the batch holding this frame failed (e.g. GPU memory).
    #[error("inference of a batch of {batch} failed: {source}")]
    Run { batch: usize, source: Arc<ort::Error> },
    #[error("decoding: {0}")]
    Decode(#[from] DecodeError),
    #[error("the model has no float32 output {output}")]
    Output { output: String },
    /// A panic while running the batch (a bug; the worker carried on).
    #[error("the inference worker panicked: {0}")]
    Panicked(String),
}

/// Where the time of one run went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunTiming {
    /// Frames in the run (the tensor's batch may be larger for a fixed batch).
    pub frames: usize,
    pub preprocess: Duration,
    pub inference: Duration,
    pub decode: Duration,
}

pub struct InferenceSession {
    session: ort::session::Session,
    preprocess: Preprocess,
    decoder: Decoder,
    output: usize,
    output_name: String,
    /// Frames per run at most.
    capacity: usize,
    /// A static batch: every run feeds exactly `capacity` items.
    fixed: bool,
    input: Vec<f32>,
    transforms: Vec<Transform>,
    /// Frame index of each batch slot.
    slots: Vec<usize>,
}

impl std::fmt::Debug for InferenceSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceSession").field("capacity", &self.capacity).field("fixed", &self.fixed).finish()
    }
}

impl InferenceSession {
    pub(crate) fn new(session: ort::session::Session, info: &ModelInfo, max_batch: usize) -> Self {
        let capacity = info.batch.frames_per_run(max_batch);
        let fixed = matches!(info.batch, BatchCapability::Fixed { .. });
        let preprocess = info.preprocess;
        InferenceSession {
            session,
            preprocess,
            decoder: Decoder::new(info.layout.clone(), preprocess.input_width, preprocess.input_height),
            output: info.output,
            output_name: info.run_outputs.get(info.output).map(|o| o.name.clone()).unwrap_or_default(),
            capacity,
            fixed,
            // Allocated once: steady state writes into the same buffer.
            input: vec![0.0; capacity * preprocess.item_len()],
            transforms: Vec::with_capacity(capacity),
            slots: Vec::with_capacity(capacity),
        }
    }

    /// Most frames one [`detect`](Self::detect) call takes.
    /// The model's input, width x height.
    pub fn input_size(&self) -> (u32, u32) {
        (self.preprocess.input_width, self.preprocess.input_height)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Runs `frames` (at most [`capacity`](Self::capacity)) as one batch;
    /// `results[i]` receives frame `i`'s boxes or why it has none. A frame
    /// that cannot be preprocessed fails alone; a failed run fails the
    /// frames of the run.
    pub fn detect(
        &mut self,
        frames: &[FrameRef<'_>],
        options: &DecodeOptions,
        results: &mut Vec<Result<Vec<Detected>, InferenceError>>,
    ) -> RunTiming {
        results.clear();
        let mut timing = RunTiming { frames: frames.len(), ..RunTiming::default() };
        if frames.is_empty() {
            return timing;
        }
        debug_assert!(frames.len() <= self.capacity);
        let frames = &frames[..frames.len().min(self.capacity)];
        let started = Instant::now();
        let item = self.preprocess.item_len();
        self.transforms.clear();
        self.slots.clear();
        for (index, frame) in frames.iter().enumerate() {
            let slot = self.slots.len();
            let out = &mut self.input[slot * item..(slot + 1) * item];
            match self.preprocess.write(&frame.image, frame.source_width, frame.source_height, out) {
                Ok(transform) => {
                    self.transforms.push(transform);
                    self.slots.push(index);
                    results.push(Ok(Vec::new()));
                }
                Err(error) => results.push(Err(error.into())),
            }
        }
        timing.preprocess = started.elapsed();
        let used = self.slots.len();
        if used == 0 {
            return timing;
        }
        let batch = if self.fixed { self.capacity } else { used };
        // Unused slots of a fixed batch: zeros, whatever ran before.
        self.input[used * item..batch * item].fill(0.0);
        let (width, height) = (self.preprocess.input_width as usize, self.preprocess.input_height as usize);
        let ran = Instant::now();
        let run = match ort::value::TensorRef::from_array_view(([batch, 3, height, width], &self.input[..batch * item]))
        {
            Ok(tensor) => self.session.run(ort::inputs![tensor]),
            Err(error) => Err(error),
        };
        timing.inference = ran.elapsed();
        let outputs = match run {
            Ok(outputs) => outputs,
            Err(error) => {
                let error = Arc::new(error);
                for &index in &self.slots {
                    results[index] = Err(InferenceError::Run { batch: used, source: error.clone() });
                }
                return timing;
            }
        };
        let decoded = Instant::now();
        let extracted = (self.output < outputs.len())
            .then(|| outputs[self.output].try_extract_tensor::<f32>().ok())
            .flatten()
            .map(|(shape, data)| (shape.to_vec(), data));
        let Some((shape, data)) = extracted else {
            for &index in &self.slots {
                results[index] = Err(InferenceError::Output { output: self.output_name.clone() });
            }
            return timing;
        };
        for (slot, &index) in self.slots.iter().enumerate() {
            let mut found = Vec::new();
            results[index] = self
                .decoder
                .decode(data, &shape, slot, &self.transforms[slot], options, &mut found)
                .map(|()| found)
                .map_err(InferenceError::from);
        }
        timing.decode = decoded.elapsed();
        timing
    }
}
