//! Pipeline overhead: N 720p30 H.264 files decoded as fast as possible
//! through dshost with `yolo_filter`, against the same decode pipelines run
//! by `gst-launch-1.0`, measured in the same run on the same machine.
//!
//! Run: `scripts/build-strategies.sh && cargo bench -p dshost --bench pipeline`
//! (`DSHOST_BENCH_FRAMES` sets frames per clip, default 300; `DSHOST_BENCH_SOURCES`
//! the source counts, default `1,2,4,8,16`.)
//! Prints a Markdown table (recorded in docs/benchmarks.md).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CLIPS: usize = 4;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// CPU time (user + system) of all waited-for children so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn run(command: &mut Command) -> anyhow::Result<(Duration, Duration)> {
    let cpu_before = children_cpu();
    let started = Instant::now();
    let output = command.output()?;
    let wall = started.elapsed();
    if !output.status.success() {
        anyhow::bail!("{:?} failed: {}", command, String::from_utf8_lossy(&output.stderr));
    }
    Ok((wall, children_cpu() - cpu_before))
}

fn clips(frames: u64) -> anyhow::Result<Vec<PathBuf>> {
    let dir = root().join("target/bench-media");
    std::fs::create_dir_all(&dir)?;
    let mut paths = Vec::new();
    for i in 0..CLIPS {
        let path = dir.join(format!("h264_720p30_{frames}f_{i}.mp4"));
        if !path.exists() {
            let pipeline = format!(
                "videotestsrc num-buffers={frames} pattern={} ! video/x-raw,width=1280,height=720,framerate=30/1,format=I420 \
                 ! x264enc speed-preset=veryfast key-int-max=30 bitrate=4000 ! h264parse ! mp4mux ! filesink location={}",
                ["ball", "smpte", "snow", "pinwheel"][i],
                path.display()
            );
            run(Command::new("gst-launch-1.0").arg("-q").arg("-e").args(pipeline.split_whitespace()))?;
        }
        paths.push(path);
    }
    Ok(paths)
}

/// The decode work dshost does for a file, as one gst-launch pipeline per source.
fn gst_launch(files: &[&Path]) -> Command {
    let mut command = Command::new("gst-launch-1.0");
    command.arg("-q");
    for file in files {
        let branch = format!(
            "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format={{I420,NV12}} ! fakesink sync=false",
            file.display()
        );
        command.args(branch.split_whitespace());
    }
    command
}

fn main() -> anyhow::Result<()> {
    let frames: u64 = std::env::var("DSHOST_BENCH_FRAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let counts: Vec<usize> = std::env::var("DSHOST_BENCH_SOURCES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 4, 8, 16]);
    let yolo = root().join("target/strategies/yolo_filter.wasm");
    if !yolo.exists() {
        anyhow::bail!("run scripts/build-strategies.sh first");
    }
    let clips = clips(frames)?;
    let data_dir = tempfile::tempdir()?;
    let dshost = env!("CARGO_BIN_EXE_dshost");
    // Warm the compile cache and GStreamer's registry so neither is measured.
    run(Command::new(dshost).arg("--data-dir").arg(data_dir.path()).args(["strategy", "check"]).arg(&yolo))?;
    run(&mut gst_launch(&[&clips[0]]))?;

    // Two object stages: `none` measures what dshost itself adds to decoding
    // (hand-off, queue, worker, strategy call); `motion` adds the built-in
    // motion detector, which is analysis work like inference, not overhead.
    let configs: Vec<(&str, PathBuf)> = ["none", "motion"]
        .iter()
        .map(|detector| {
            let path = data_dir.path().join(format!("{detector}.yaml"));
            std::fs::write(&path, format!("pipeline:\n  detector: {detector}\n")).map(|_| (*detector, path))
        })
        .collect::<Result<_, _>>()?;
    println!("| sources | object stage | gst-launch CPU s | dshost CPU s | CPU ratio | gst-launch fps | dshost fps | dshost CPU ms/frame | latency p50 / p99 ms |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &counts {
        for (detector, config) in &configs {
            let files: Vec<&Path> = (0..n).map(|i| clips[i % CLIPS].as_path()).collect();
            let total = frames * n as u64;
            let (base_wall, base_cpu) = run(&mut gst_launch(&files))?;
            let summary = data_dir.path().join(format!("summary-{n}.json"));
            let mut command = Command::new(dshost);
            command
                .arg("--config")
                .arg(config)
                .arg("--data-dir")
                .arg(data_dir.path())
                .arg("--strategy")
                .arg(&yolo)
                .arg("--summary-json")
                .arg(&summary)
                .arg("--alerts-jsonl")
                .arg(data_dir.path().join("alerts.jsonl"))
                .env("RUST_LOG", "warn");
            for file in &files {
                command.arg("--source").arg(file);
            }
            let (wall, cpu) = run(&mut command)?;
            let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary)?)?;
            let sources = report["sources"].as_array().cloned().unwrap_or_default();
            let decoded: u64 = sources.iter().map(|s| s["frames_to_strategies"].as_u64().unwrap_or(0)).sum();
            if decoded != total {
                anyhow::bail!("dshost analysed {decoded} of {total} frames");
            }
            let worst = |key: &str| sources.iter().filter_map(|s| s[key].as_f64()).fold(0.0f64, f64::max);
            println!(
                "| {n} | {detector} | {:.2} | {:.2} | {:.3} | {:.0} | {:.0} | {:.3} | {:.2} / {:.2} |",
                base_cpu.as_secs_f64(),
                cpu.as_secs_f64(),
                cpu.as_secs_f64() / base_cpu.as_secs_f64(),
                total as f64 / base_wall.as_secs_f64(),
                total as f64 / wall.as_secs_f64(),
                cpu.as_secs_f64() * 1e3 / total as f64,
                worst("latency_ms_p50"),
                worst("latency_ms_p99"),
            );
        }
    }
    Ok(())
}
