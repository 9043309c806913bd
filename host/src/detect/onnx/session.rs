//! One ONNX Runtime session with its input buffer and decoder: frames in,
//! boxes in source pixels out. A worker of the pool owns one; so do
//! `dshost model check` and the benchmark.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cuda::{self, CopyMode, CopyStream};
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

/// Fixed buffers of a session that replays a CUDA graph: ONNX Runtime
/// captures the run once and replays it with the same device addresses, so
/// frames are written into pinned host memory, copied into the bound device
/// input, and the bound device output is copied back after the run.
struct GraphIo {
    binding: ort::session::IoBinding,
    host_input: ort::value::Tensor<f32>,
    device_input: ort::value::Tensor<f32>,
    device_output: ort::value::Tensor<f32>,
    host_output: ort::value::Tensor<f32>,
    device_id: u32,
    copies: CopyMode,
    /// Made on the first run, on the worker's own thread.
    stream: Option<CopyStream>,
}

impl GraphIo {
    fn new(
        session: &ort::session::Session,
        input_shape: [usize; 4],
        output_name: &str,
        output_shape: &[i64],
        device_id: u32,
    ) -> Result<GraphIo, ort::Error> {
        use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
        let device = i32::try_from(device_id).unwrap_or(i32::MAX);
        let on_device = Allocator::new(
            session,
            MemoryInfo::new(AllocationDevice::CUDA, device, AllocatorType::Device, MemoryType::Default)?,
        )?;
        let pinned_in = Allocator::new(
            session,
            MemoryInfo::new(AllocationDevice::CUDA_PINNED, device, AllocatorType::Device, MemoryType::CPUInput)?,
        )?;
        let pinned_out = Allocator::new(
            session,
            MemoryInfo::new(AllocationDevice::CUDA_PINNED, device, AllocatorType::Device, MemoryType::CPUOutput)?,
        )?;
        let output_shape: Vec<usize> = output_shape.iter().map(|&d| d.max(0) as usize).collect();
        let host_input = ort::value::Tensor::<f32>::new(&pinned_in, input_shape)?;
        let device_input = ort::value::Tensor::<f32>::new(&on_device, input_shape)?;
        let mut device_output = ort::value::Tensor::<f32>::new(&on_device, output_shape.clone())?;
        let host_output = ort::value::Tensor::<f32>::new(&pinned_out, output_shape)?;
        let input_name = session.inputs().first().map(|i| i.name().to_string()).unwrap_or_default();
        let mut binding = session.create_binding()?;
        binding.bind_input(input_name, &device_input)?;
        binding.bind_output(output_name, &mut device_output)?;
        Ok(GraphIo {
            binding,
            host_input,
            device_input,
            device_output,
            host_output,
            device_id,
            copies: CopyMode::current(),
            stream: None,
        })
    }

    /// Host input -> device, the graph, device output -> host.
    fn run(&mut self, session: &mut ort::session::Session) -> Result<(), ort::Error> {
        let cuda = cuda::runtime().map_err(ort::Error::new)?;
        let bytes = |t: &ort::value::Tensor<f32>| t.shape().iter().product::<i64>().max(0) as usize * 4;
        let (input, output) = (bytes(&self.host_input), bytes(&self.host_output));
        if self.copies == CopyMode::Stream && self.stream.is_none() {
            self.stream = Some(cuda.stream(self.device_id)?);
        }
        // None: legacy copies (no stream is made for them).
        let stream = self.stream.as_ref();
        // SAFETY: both tensors of a pair have the same shape (made together
        // in `new`), so `bytes` stays inside each. Each copy is waited for
        // before the next step: the run sees the whole input (ONNX Runtime's
        // stream is not ordered after ours), and the host output is complete
        // on return (the run waits for its own stream before returning).
        unsafe {
            let (device_input, host_input) = (self.device_input.data_ptr_mut(), self.host_input.data_ptr());
            match stream {
                Some(stream) => stream.copy(device_input, host_input, input)?,
                None => cuda.copy_legacy(device_input, host_input, input)?,
            }
            session.run_binding(&self.binding)?;
            let (host_output, device_output) = (self.host_output.data_ptr_mut(), self.device_output.data_ptr());
            match stream {
                Some(stream) => stream.copy(host_output, device_output, output),
                None => cuda.copy_legacy(host_output, device_output, output),
            }
        }
    }
}

/// Whether a CUDA graph session can copy its frames: the CUDA runtime
/// library is found (see [`cuda::runtime`]); otherwise why not.
pub(crate) fn graph_copies_available() -> Result<(), String> {
    cuda::runtime().map(|_| ())
}

/// Runs before a graph session serves frames: ONNX Runtime's CUDA provider
/// runs regularly first (allocations settle), then captures, then replays.
const GRAPH_WARM_RUNS: usize = 4;

pub struct InferenceSession {
    session: ort::session::Session,
    /// Set when the session replays a CUDA graph; `input` is then unused.
    graph: Option<GraphIo>,
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
            graph: None,
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

    /// A session built with `cuda_graph` (its model's batch fixed or 1, its
    /// output `output_shape`): every run feeds the same shapes through
    /// device buffers bound once.
    pub(crate) fn with_graph(
        session: ort::session::Session,
        info: &ModelInfo,
        output_shape: Vec<i64>,
        device_id: u32,
    ) -> Result<Self, ort::Error> {
        let mut this = InferenceSession::new(session, info, 1);
        // Every run replays the same shapes: pad to the capacity like a
        // static batch.
        this.fixed = true;
        let (width, height) = (this.preprocess.input_width as usize, this.preprocess.input_height as usize);
        let graph = GraphIo::new(
            &this.session,
            [this.capacity, 3, height, width],
            &this.output_name,
            &output_shape,
            device_id,
        )?;
        this.input = Vec::new();
        this.graph = Some(graph);
        Ok(this)
    }

    /// Runs a grey batch until ONNX Runtime has captured the graph (it
    /// captures after regular runs that settle allocations); nothing to do
    /// without a graph. Call it on the thread that will run the session:
    /// ONNX Runtime keeps the graph per thread. One capture at a time in the
    /// process: a capture forbids other CUDA work meanwhile (CUDA's global
    /// capture mode), and concurrent captures failed on the H200 ("operation
    /// not permitted when stream is capturing").
    pub fn capture(&mut self) -> Result<(), ort::Error> {
        static CAPTURE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let Some(graph) = &mut self.graph else { return Ok(()) };
        let _one_at_a_time = CAPTURE.lock().unwrap_or_else(|p| p.into_inner());
        graph.host_input.extract_tensor_mut().1.fill(f32::from(super::preprocess::PAD_VALUE) * self.preprocess.scale);
        for _ in 0..GRAPH_WARM_RUNS {
            graph.run(&mut self.session)?;
        }
        Ok(())
    }

    /// Whether runs replay a CUDA graph.
    pub fn uses_graph(&self) -> bool {
        self.graph.is_some()
    }

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
        let input: &mut [f32] = match &mut self.graph {
            Some(graph) => graph.host_input.extract_tensor_mut().1,
            None => &mut self.input,
        };
        for (index, frame) in frames.iter().enumerate() {
            let slot = self.slots.len();
            let out = &mut input[slot * item..(slot + 1) * item];
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
        input[used * item..batch * item].fill(0.0);
        let (width, height) = (self.preprocess.input_width as usize, self.preprocess.input_height as usize);
        let ran = Instant::now();
        if let Some(graph) = &mut self.graph {
            let run = graph.run(&mut self.session);
            timing.inference = ran.elapsed();
            if let Err(error) = run {
                fail_run(&self.slots, results, used, error);
                return timing;
            }
            let decoded = Instant::now();
            // The bound output's shape is fixed: read it in place, no copy.
            let (shape, data) = graph.host_output.extract_tensor();
            decode_slots(&mut self.decoder, &self.slots, &self.transforms, options, shape, data, results);
            timing.decode = decoded.elapsed();
            return timing;
        }
        let run = match ort::value::TensorRef::from_array_view(([batch, 3, height, width], &self.input[..batch * item]))
        {
            Ok(tensor) => self.session.run(ort::inputs![tensor]),
            Err(error) => Err(error),
        };
        timing.inference = ran.elapsed();
        let outputs = match run {
            Ok(outputs) => outputs,
            Err(error) => {
                fail_run(&self.slots, results, used, error);
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
        decode_slots(&mut self.decoder, &self.slots, &self.transforms, options, &shape, data, results);
        timing.decode = decoded.elapsed();
        timing
    }
}

/// Every frame of a failed run gets the run's error.
fn fail_run(slots: &[usize], results: &mut [Result<Vec<Detected>, InferenceError>], used: usize, error: ort::Error) {
    let error = Arc::new(error);
    for &index in slots {
        results[index] = Err(InferenceError::Run { batch: used, source: error.clone() });
    }
}

/// Boxes of each batch slot, into the result of the frame in that slot.
fn decode_slots(
    decoder: &mut Decoder,
    slots: &[usize],
    transforms: &[Transform],
    options: &DecodeOptions,
    shape: &[i64],
    data: &[f32],
    results: &mut [Result<Vec<Detected>, InferenceError>],
) {
    for (slot, &index) in slots.iter().enumerate() {
        let mut found = Vec::new();
        results[index] = decoder
            .decode(data, shape, slot, &transforms[slot], options, &mut found)
            .map(|()| found)
            .map_err(InferenceError::from);
    }
}
