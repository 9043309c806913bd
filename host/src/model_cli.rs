//! `dshost model check FILE.onnx`: loads a model exactly as the inference
//! stage does and reports what it found.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::{ModelCheckArgs, ModelFormatArg, ModelProviderArg};
use dshost::config::{OnnxFormat, OnnxLabels, OnnxProvider, OnnxResize};
use dshost::detect::onnx::format::Layout;
use dshost::detect::onnx::preprocess::{Channels, Resize};
use dshost::detect::onnx::{
    select_provider, BatchCapability, DecodeOptions, FrameRef, LibrarySearch, ModelOptions, OnnxModel, OrtRuntime,
    ProviderStatus, RgbImage, RunTiming,
};

pub fn check(args: &ModelCheckArgs) -> Result<ExitCode> {
    let runtime = OrtRuntime::get_or_load(&LibrarySearch::from_env()).context("ONNX Runtime is not usable")?;
    let requested = match args.provider {
        ModelProviderArg::Auto => OnnxProvider::Auto,
        ModelProviderArg::Cpu => OnnxProvider::Cpu,
        ModelProviderArg::Cuda => OnnxProvider::Cuda,
        ModelProviderArg::Tensorrt => OnnxProvider::Tensorrt,
    };
    let support = runtime.provider_support(args.device_id);
    let choice = select_provider(requested, &support)?;
    if args.cuda_graph && !choice.provider.is_gpu() {
        anyhow::bail!(
            "--cuda-graph needs a GPU provider, and this runs on the CPU{}",
            choice.fallback_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
        );
    }
    let options = ModelOptions {
        path: args.file.clone(),
        format: match args.format {
            ModelFormatArg::Auto => OnnxFormat::Auto,
            ModelFormatArg::Yolo => OnnxFormat::Yolo,
            ModelFormatArg::Yolov5 => OnnxFormat::Yolov5,
            ModelFormatArg::Yolox => OnnxFormat::Yolox,
            ModelFormatArg::End2end => OnnxFormat::End2end,
        },
        labels: args.labels.clone().map(OnnxLabels::File).unwrap_or(OnnxLabels::Auto),
        resize: OnnxResize::Auto,
        provider: choice.provider,
        device_id: args.device_id,
        threads: args.threads,
        cuda_graph: args.cuda_graph,
    };
    let model = OnnxModel::load(runtime, &options)?;
    let info = model.info();
    let mut session = model.session(1)?;
    // A grey frame of the input size: the timing is the model's, not the
    // content's (the graph does the same work for any pixels).
    let pre = info.preprocess;
    let image = vec![114u8; pre.input_width as usize * pre.input_height as usize * 3];
    let frame = FrameRef {
        image: RgbImage::packed(&image, pre.input_width, pre.input_height),
        source_width: pre.input_width,
        source_height: pre.input_height,
    };
    let decode = DecodeOptions::default();
    let mut results = Vec::new();
    let frames = vec![frame; session.capacity()];
    // Warm-up (the load ran the model once already; one more settles the
    // allocator and, on a GPU, the kernels chosen).
    session.capture().with_context(|| format!("{}: cannot capture a CUDA graph", args.file.display()))?;
    session.detect(&frames, &decode, &mut results);
    let mut timings: Vec<RunTiming> = Vec::new();
    for _ in 0..args.runs.max(1) {
        timings.push(session.detect(&frames, &decode, &mut results));
        if let Some(Err(error)) = results.first() {
            anyhow::bail!("{}: inference fails: {error}", args.file.display());
        }
    }
    timings.sort_by_key(|t| t.inference);
    let median = timings[timings.len() / 2];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;

    let mut out = std::io::stdout().lock();
    if args.json {
        let report = serde_json::json!({
            "file": info.file,
            "onnxruntime": {
                "version": runtime.version(),
                "library": runtime.library().display().to_string(),
                "origin": runtime.origin(),
            },
            "providers": support,
            "provider": choice.provider,
            "provider_fallback": choice.fallback_reason,
            "device_id": info.device_id,
            "cuda_graph": session.uses_graph(),
            "inputs": info.inputs,
            "outputs": info.outputs,
            "run_outputs": info.run_outputs,
            "format": info.family,
            "output": info.output,
            "layout": info.layout,
            "labels": { "count": info.labels.len(), "source": info.labels_source, "labels": info.labels },
            "batch": info.batch,
            "preprocess": info.preprocess,
            "metadata": info.metadata,
            "timing_ms": {
                "runs": timings.len(),
                "inference": ms(median.inference),
                "preprocess": ms(median.preprocess),
                "decode": ms(median.decode),
                "first_run": ms(info.probe_run),
            },
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&report).context("cannot encode the report")?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let status = |s: &ProviderStatus| match s {
        ProviderStatus::Usable => "usable".to_string(),
        ProviderStatus::Unusable(reason) => format!("unusable ({reason})"),
    };
    let tensors = |list: &[dshost::detect::onnx::model::TensorInfo]| {
        list.iter()
            .map(|t| {
                let dims: Vec<String> = t
                    .shape
                    .iter()
                    .zip(t.symbols.iter().map(String::as_str).chain(std::iter::repeat("")))
                    .map(|(d, s)| {
                        if *d < 0 {
                            if s.is_empty() {
                                "?".to_string()
                            } else {
                                s.to_string()
                            }
                        } else {
                            d.to_string()
                        }
                    })
                    .collect();
                format!("{} {} [{}]", t.name, t.element, dims.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    writeln!(out, "{}: usable ONNX model", info.file)?;
    writeln!(out, "  ONNX Runtime: {} ({}, {})", runtime.version(), runtime.library().display(), runtime.origin())?;
    writeln!(out, "  providers:    cpu {}", status(&support.cpu))?;
    writeln!(out, "                cuda {}", status(&support.cuda))?;
    writeln!(out, "                tensorrt {}", status(&support.tensorrt))?;
    match &choice.fallback_reason {
        Some(_) => writeln!(out, "  provider:     {} (auto: CUDA is unusable, see above)", choice.provider)?,
        None => writeln!(out, "  provider:     {} (device {})", choice.provider, info.device_id)?,
    }
    if args.cuda_graph {
        let graph = if session.uses_graph() { "yes" } else { "no (see the warning above)" };
        writeln!(out, "  cuda graph:   {graph}")?;
    }
    writeln!(out, "  inputs:       {}", tensors(&info.inputs))?;
    writeln!(out, "  outputs:      {}", tensors(&info.outputs))?;
    let run_shapes: Vec<String> = info.run_outputs.iter().map(|o| o.to_string()).collect();
    writeln!(out, "  ran as:       {}", run_shapes.join("; "))?;
    let layout = match &info.layout {
        Layout::Scores { classes, boxes, channels_first } => format!(
            "{classes} classes, {boxes} boxes, cx,cy,w,h + class scores, {}",
            if *channels_first { "channels first" } else { "one row per box" }
        ),
        Layout::Objectness { classes, boxes } => {
            format!("{classes} classes, {boxes} boxes, cx,cy,w,h, objectness, class scores")
        }
        Layout::Grid { classes, boxes, strides } => {
            format!("{classes} classes, {boxes} grid cells of strides {strides:?}, decoded here (offsets, log sizes)")
        }
        Layout::Boxes6 { rows } => format!("NMS inside: {rows} rows of x1,y1,x2,y2,score,class"),
        Layout::Boxes7 { rows, batched } => format!(
            "NMS inside: {rows} rows of batch,x1,y1,x2,y2,class,score{}",
            if *batched { "" } else { " for the whole batch" }
        ),
    };
    writeln!(out, "  format:       {} (output {}: {layout})", info.family, info.run_outputs[info.output].name)?;
    writeln!(
        out,
        "  preprocess:   {}x{}, {}, {}, {}",
        pre.input_width,
        pre.input_height,
        match pre.resize {
            Resize::LetterboxCentered => "letterbox centred (pad 114)",
            Resize::LetterboxTopLeft => "letterbox top-left (pad 114)",
            Resize::Stretch => "stretched",
        },
        match pre.channels {
            Channels::Rgb => "RGB",
            Channels::Bgr => "BGR",
        },
        if pre.scale == 1.0 { "0-255".to_string() } else { "/255".to_string() }
    )?;
    let first: Vec<&str> = info.labels.iter().take(8).map(String::as_str).collect();
    writeln!(
        out,
        "  labels:       {} from {}: {}{}",
        info.labels.len(),
        info.labels_source,
        first.join(", "),
        if info.labels.len() > first.len() { ", ..." } else { "" }
    )?;
    let batch = match &info.batch {
        BatchCapability::Fixed { size } => format!("static {size} (every run has {size} frame(s))"),
        BatchCapability::Dynamic => "symbolic; batches of several frames run".to_string(),
        BatchCapability::SingleOnly { reason } => {
            format!("symbolic, but a batch of 2 fails, so 1 frame per run ({})", reason.lines().next().unwrap_or(""))
        }
    };
    writeln!(out, "  batch:        {batch}")?;
    for key in ["description", "author", "version", "license", "task", "stride", "imgsz", "producer"] {
        if let Some(value) = info.metadata.get(key) {
            writeln!(out, "  {:<13} {value}", format!("{key}:"))?;
        }
    }
    writeln!(
        out,
        "  inference:    {:.1} ms ({} after a warm-up run, batch of {}; preprocess {:.2} ms, decode {:.2} ms; first run {:.0} ms)",
        ms(median.inference),
        if timings.len() == 1 { "one timed run".to_string() } else { format!("median of {} timed runs", timings.len()) },
        frames.len(),
        ms(median.preprocess),
        ms(median.decode),
        ms(info.probe_run)
    )?;
    drop(out);
    throughput(&model, &args.throughput, args.seconds)?;
    Ok(ExitCode::SUCCESS)
}

/// Bare inference throughput: `count` threads, each with its own session,
/// running a letterbox-grey frame back to back for `seconds`.
fn throughput(model: &OnnxModel, counts: &[usize], seconds: f64) -> Result<()> {
    if counts.is_empty() {
        return Ok(());
    }
    let pre = model.info().preprocess;
    let image = vec![114u8; pre.input_width as usize * pre.input_height as usize * 3];
    let decode = DecodeOptions::default();
    let mut out = std::io::stdout().lock();
    // A static batch of N runs N images a time: fill every slot (they are
    // processed either way) and count them all.
    let per_run = model.info().batch.frames_per_run(1);
    writeln!(out, "| threads (session each) | images/s ({per_run} per run) | run ms p50 | run ms p99 |")?;
    writeln!(out, "|---:|---:|---:|---:|")?;
    for &count in counts.iter().filter(|&&c| c > 0) {
        let mut sessions = Vec::new();
        for _ in 0..count {
            sessions.push(model.session(per_run)?);
        }
        let (image, decode) = (&image, &decode);
        // Every session warms up first (a CUDA session's first run picks its
        // kernels: seconds), then all run together for `seconds`.
        let start = std::sync::Barrier::new(count);
        let start = &start;
        let span = Duration::from_secs_f64(seconds.max(0.5));
        let mut times: Vec<Duration> = std::thread::scope(|scope| {
            let handles: Vec<_> = sessions
                .into_iter()
                .map(|mut session| {
                    scope.spawn(move || {
                        let frame = FrameRef {
                            image: RgbImage::packed(image, pre.input_width, pre.input_height),
                            source_width: pre.input_width,
                            source_height: pre.input_height,
                        };
                        let frames = vec![frame; per_run];
                        let mut results = Vec::new();
                        // On this thread: ONNX Runtime keeps a graph per thread.
                        if let Err(error) = session.capture() {
                            eprintln!("cannot capture a CUDA graph: {error}");
                        }
                        session.detect(&frames, decode, &mut results); // warm-up
                        start.wait();
                        let deadline = std::time::Instant::now() + span;
                        let mut times = Vec::new();
                        while std::time::Instant::now() < deadline {
                            times.push(session.detect(&frames, decode, &mut results).inference);
                        }
                        times
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
        });
        times.sort();
        let at = |q: f64| times.get(((times.len().max(1) - 1) as f64 * q) as usize).copied().unwrap_or_default();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let images = (times.len() * per_run) as f64;
        writeln!(out, "| {count} | {:.0} | {:.2} | {:.2} |", images / seconds, ms(at(0.5)), ms(at(0.99)))?;
    }
    Ok(())
}
