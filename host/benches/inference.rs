//! The inference stage against bare ONNX Runtime, in the same run on the
//! same model with the same session settings: a bare `ort` session running
//! a prepared input tensor, and the stage (a frame through the pool:
//! letterbox preprocessing, the run, decoding and NMS, the hand-off to the
//! result callback), one frame at a time, interleaved in rounds so that a
//! noisy machine affects both alike.
//!
//! Run: `bash scripts/fetch-models.sh && cargo bench -p dshost --bench inference`
//! (`DSHOST_BENCH_RUNS` inferences per side, default 40; `DSHOST_BENCH_THREADS`
//! intra-op threads, default 0 = ONNX Runtime's choice; `DSHOST_BENCH_PROVIDER`
//! cpu (default) or cuda.)

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gstreamer::prelude::*;

use dshost::config::{OnnxFormat, OnnxLabels, OnnxResize};
use dshost::detect::onnx::model::build_session;
use dshost::detect::onnx::{
    DecodeOptions, Frame, InferencePool, LibrarySearch, ModelOptions, OnnxModel, OrtRuntime, Pacing, PoolOptions,
    Provider, RgbImage, RunTiming,
};

fn assets() -> Result<Vec<(String, PathBuf)>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-models.sh");
    let output = std::process::Command::new("bash").arg(&script).output()?;
    if !output.status.success() {
        bail!("{} failed: {}", script.display(), String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), PathBuf::from(v))))
        .collect())
}

/// A real photo decoded and scaled by GStreamer to `size`.
fn photo(path: &std::path::Path, size: (u32, u32)) -> Result<(Vec<u8>, usize)> {
    gstreamer::init()?;
    let description = format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! videoscale ! \
         video/x-raw,format=RGB,width={},height={},pixel-aspect-ratio=1/1 ! appsink name=sink sync=false",
        path.display(),
        size.0,
        size.1
    );
    let pipeline = gstreamer::parse::launch(&description)?
        .downcast::<gstreamer::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let sink = pipeline
        .by_name("sink")
        .context("no sink")?
        .downcast::<gstreamer_app::AppSink>()
        .map_err(|_| anyhow::anyhow!("not an appsink"))?;
    pipeline.set_state(gstreamer::State::Playing)?;
    let sample = sink.pull_sample().context("no frame")?;
    let info = gstreamer_video::VideoInfo::from_caps(sample.caps().context("no caps")?)?;
    let data = sample.buffer().context("no buffer")?.map_readable()?.to_vec();
    pipeline.set_state(gstreamer::State::Null)?;
    Ok((data, info.stride()[0] as usize))
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> Result<()> {
    let runs: usize = std::env::var("DSHOST_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let threads: usize = std::env::var("DSHOST_BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let provider = match std::env::var("DSHOST_BENCH_PROVIDER").as_deref() {
        Ok("cuda") => Provider::Cuda,
        _ => Provider::Cpu,
    };
    let assets = assets()?;
    let get = |key: &str| assets.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).context(key.to_string());
    // DSHOST_ORT_LIB, when set, wins (a GPU build on the device).
    let search = match std::env::var_os("DSHOST_ORT_LIB") {
        Some(lib) => LibrarySearch { env_override: Some(lib.into()), cache_dir: None, system: false },
        None => LibrarySearch { env_override: Some(get("DSHOST_ORT_LIB")?), cache_dir: None, system: false },
    };
    let runtime = OrtRuntime::get_or_load(&search)?;
    let options = ModelOptions {
        path: get("DSHOST_DEMO_MODEL")?,
        format: OnnxFormat::Auto,
        labels: OnnxLabels::Auto,
        resize: OnnxResize::Auto,
        provider,
        device_id: 0,
        cuda_graph: false,
        threads,
    };
    let model = OnnxModel::load(runtime, &options)?;
    let pre = *model.preprocess();
    // astronaut.png is 512x512: letterboxed into 640x640 without padding;
    // a 4:3 frame like vtest.avi's pads. Use the clip's shape: 768x576.
    let (source_width, source_height) = (768u32, 576u32);
    let (width, height) = model.fit_size(source_width, source_height);
    let (image, stride) = photo(&get("DSHOST_PHOTOS")?.join("astronaut.png"), (width, height))?;

    // Bare ONNX Runtime: a session with the stage's settings, and the input
    // tensor prepared once (what the stage's preprocessing would write).
    let mut bare = build_session(runtime, &options, None)?;
    let mut input = vec![0f32; pre.item_len()];
    pre.write(&RgbImage { data: &image, width, height, stride }, source_width, source_height, &mut input)?;
    let shape = [1usize, 3, pre.input_height as usize, pre.input_width as usize];
    let mut bare_run = || -> Result<Duration> {
        let tensor = ort::value::TensorRef::from_array_view((shape, input.as_slice()))?;
        let started = Instant::now();
        let outputs = bare.run(ort::inputs![tensor])?;
        let elapsed = started.elapsed();
        drop(outputs);
        Ok(elapsed)
    };

    // Throughput of bare ONNX Runtime with several threads, each running a
    // session of its own (what the pool's workers do): images/s, the anchor
    // the GPU stage is measured against (DSHOST_BENCH_SWEEP="1 2 4 8 16").
    if let Ok(sweep) = std::env::var("DSHOST_BENCH_SWEEP") {
        let seconds: f64 = std::env::var("DSHOST_BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5.0);
        println!("| bare ORT threads (own session each) | images/s | p50 ms | p99 ms |");
        println!("|---|---:|---:|---:|");
        for count in sweep.split_whitespace().filter_map(|v| v.parse::<usize>().ok()) {
            let mut sessions = Vec::new();
            for _ in 0..count {
                sessions.push(build_session(runtime, &options, None)?);
            }
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let input = &input;
            let results: Vec<Result<Vec<Duration>>> = std::thread::scope(|scope| {
                let handles: Vec<_> = sessions
                    .into_iter()
                    .map(|mut session| {
                        scope.spawn(move || -> Result<Vec<Duration>> {
                            let mut times = Vec::new();
                            // Warm-up run, not counted.
                            let tensor = ort::value::TensorRef::from_array_view((shape, input.as_slice()))?;
                            drop(session.run(ort::inputs![tensor])?);
                            while Instant::now() < deadline {
                                let tensor = ort::value::TensorRef::from_array_view((shape, input.as_slice()))?;
                                let started = Instant::now();
                                drop(session.run(ort::inputs![tensor])?);
                                times.push(started.elapsed());
                            }
                            Ok(times)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("thread panicked"))))
                    .collect()
            });
            let mut all = Vec::new();
            for result in results {
                all.extend(result?);
            }
            all.sort();
            println!(
                "| {count} | {:.0} | {:.2} | {:.2} |",
                all.len() as f64 / seconds,
                ms(percentile(&all, 0.5)),
                ms(percentile(&all, 0.99))
            );
        }
    }

    // The stage: one source, one worker, one frame in flight.
    let pool: InferencePool<u32> = InferencePool::for_model(
        &model,
        1,
        PoolOptions { max_batch: 1, max_wait: Duration::ZERO, queue_depth: 2 },
        DecodeOptions::default(),
    )?;
    let (tx, rx) = mpsc::channel::<(usize, RunTiming, Instant)>();
    let tx = Mutex::new(tx);
    let source = pool.add_source("bench", Pacing::Unpaced { stop: Arc::new(AtomicBool::new(false)) }, move |r| {
        let found = r.detections.map(|d| d.len()).unwrap_or(0);
        let _ = tx.lock().map(|tx| tx.send((found, r.timing, Instant::now())));
    });
    let stage_run = || -> Result<(Duration, usize, RunTiming)> {
        let mut buffer = source.buffer(image.len());
        buffer.extend_from_slice(&image);
        let started = Instant::now();
        source.submit(Frame { image: buffer, width, height, stride, source_width, source_height, context: 0 });
        let (found, timing, done) = rx.recv_timeout(Duration::from_secs(60))?;
        Ok((done - started, found, timing))
    };

    // Warm-up both (first runs allocate and choose kernels).
    for _ in 0..3 {
        bare_run()?;
        stage_run()?;
    }
    let rounds = 5;
    let per_round = runs.div_ceil(rounds);
    let (mut bare_times, mut stage_times) = (Vec::new(), Vec::new());
    let (mut runs_inside, mut preprocess, mut decode, mut handoff) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut found = 0;
    for _ in 0..rounds {
        for _ in 0..per_round {
            bare_times.push(bare_run()?);
        }
        for _ in 0..per_round {
            let (elapsed, n, timing) = stage_run()?;
            stage_times.push(elapsed);
            runs_inside.push(timing.inference);
            preprocess.push(timing.preprocess);
            decode.push(timing.decode);
            handoff.push(elapsed.saturating_sub(timing.inference + timing.preprocess + timing.decode));
            found = n;
        }
    }
    for list in [&mut bare_times, &mut stage_times, &mut runs_inside, &mut preprocess, &mut decode, &mut handoff] {
        list.sort();
    }
    let (b50, b99) = (percentile(&bare_times, 0.5), percentile(&bare_times, 0.99));
    let (s50, s99) = (percentile(&stage_times, 0.5), percentile(&stage_times, 0.99));
    println!(
        "inference bench: {} ({}x{}), ONNX Runtime {}, {}, intra-op threads {}, {} runs per side in {rounds} interleaved rounds",
        model.info().file,
        pre.input_width,
        pre.input_height,
        runtime.version(),
        provider,
        if threads == 0 { "ORT default".to_string() } else { threads.to_string() },
        bare_times.len()
    );
    println!("| path | p50 ms | p99 ms |");
    println!("|---|---|---|");
    println!("| bare ORT `session.run` (tensor prepared once) | {:.1} | {:.1} |", ms(b50), ms(b99));
    println!("| stage: submit -> result (preprocess + run + decode + NMS + pool) | {:.1} | {:.1} |", ms(s50), ms(s99));
    println!(
        "| stage, its `session.run` alone | {:.1} | {:.1} |",
        ms(percentile(&runs_inside, 0.5)),
        ms(percentile(&runs_inside, 0.99))
    );
    println!(
        "| stage, preprocess (letterbox into NCHW f32) | {:.2} | {:.2} |",
        ms(percentile(&preprocess, 0.5)),
        ms(percentile(&preprocess, 0.99))
    );
    println!(
        "| stage, decode + NMS + mapping to source pixels | {:.2} | {:.2} |",
        ms(percentile(&decode, 0.5)),
        ms(percentile(&decode, 0.99))
    );
    println!(
        "| stage, the rest: queue, worker wake-up, callback | {:.2} | {:.2} |",
        ms(percentile(&handoff, 0.5)),
        ms(percentile(&handoff, 0.99))
    );
    println!(
        "ratio stage/bare: p50 {:.3}, p99 {:.3} (target: p50 under 1.10); {found} detections per frame",
        ms(s50) / ms(b50),
        ms(s99) / ms(b99)
    );
    Ok(())
}
