//! Per-frame cost of a strategy call: encode the frame's objects, call
//! `yolo_filter` in its sandbox, validate what it returns. Baselines measured
//! in the same run: the same filter compiled natively into the host, and the
//! same work fed as typed WIT records instead of bytes.
//!
//! Run: `scripts/build-strategies.sh && cargo bench -p dshost --bench strategy_call`
//! Prints a Markdown table (recorded in docs/benchmarks.md).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dshost::frame::{CompactFrame, LabelTable, Object, Objects};
use dshost::strategy::validate::validate;
use dshost::strategy::{EngineOptions, InstanceSettings, SandboxLimits, StrategyEngine, StrategyInstance};
use dshost_sdk::{FrameHeader, HostContext, Strategy};
use wasmtime::component::{Component, Linker};
use wasmtime::Store;

mod records {
    wasmtime::component::bindgen!({ path: "../tests/guests/bench_records/wit", world: "bench" });
}

mod common;

use common::{objects, strategies_dir};

const CONFIG: &str = r#"{"classes": ["person"], "min_confidence": 0.5}"#;

/// Median of `rounds` rounds, each the mean of `iterations` calls.
fn measure(iterations: u32, mut body: impl FnMut()) -> Duration {
    for _ in 0..iterations / 10 + 1 {
        body();
    }
    let mut rounds: Vec<Duration> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                body();
            }
            start.elapsed() / iterations
        })
        .collect();
    rounds.sort();
    rounds[rounds.len() / 2]
}

fn fill(frame: &mut CompactFrame, objects: &[Object]) {
    frame.objects.clear();
    for object in objects {
        frame.push(object);
    }
}

fn main() -> anyhow::Result<()> {
    let yolo = strategies_dir().join("yolo_filter.wasm");
    let bench = strategies_dir().join("bench_records.wasm");
    if !yolo.exists() || !bench.exists() {
        anyhow::bail!("strategy components missing: run scripts/build-strategies.sh first");
    }
    let engine = StrategyEngine::new(EngineOptions::default())?;
    let limits = SandboxLimits::default();
    let component = engine.load_file("yolo_filter", &yolo, &limits)?;
    let labels = Arc::new(LabelTable::coco());
    let settings = InstanceSettings {
        source_id: Arc::from("bench"),
        config_json: CONFIG.to_string(),
        labels: labels.clone(),
        limits: limits.clone(),
    };
    let mut instance = StrategyInstance::new(&engine, component, &settings)?;
    let context =
        HostContext { source_id: "bench".into(), class_labels: labels.labels().to_vec(), host_version: "bench".into() };
    let mut native = yolo_filter::YoloFilter::configure(CONFIG, &context).map_err(anyhow::Error::msg)?;

    // Records-vs-bytes fixture, instantiated without the sandbox's imports.
    let bench_component = Component::from_file(engine.engine(), &bench).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let mut linker: Linker<()> = Linker::new(engine.engine());
    // Its Rust std imports WASI it never calls; trapping stubs satisfy them.
    linker.define_unknown_imports_as_traps(&bench_component).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let mut bench_store = Store::new(engine.engine(), ());
    bench_store.set_epoch_deadline(u64::MAX / 2);
    let bench_guest = records::Bench::instantiate(&mut bench_store, &bench_component, &linker)
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;

    println!("| objects | wasm: encode + call + validate | native filter in host | ratio | wasm, records | wasm, bytes | records / bytes |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for count in [0usize, 10, 100, 1000] {
        let objects = objects(count);
        let iterations = if count >= 1000 { 2_000 } else { 20_000 };
        let mut frame = CompactFrame::with_capacity(Arc::from("bench"), count);
        frame.width = 1280;
        frame.height = 720;

        let wasm = measure(iterations, || {
            fill(&mut frame, &objects);
            frame.frame_number += 1;
            let detections = instance.process(&frame).unwrap_or_default();
            let kept = detections.into_iter().filter_map(|d| validate(d, frame.width, frame.height).ok()).count();
            black_box(kept);
        });

        let header = FrameHeader { source_id: "bench".into(), frame_number: 0, pts_ns: 0, width: 1280, height: 720 };
        let native_cost = measure(iterations, || {
            fill(&mut frame, &objects);
            let detections = native.process(&header, Objects::whole_records(&frame.objects)).unwrap_or_default();
            black_box(detections.len());
        });

        let typed: Vec<records::ObjectRecord> = objects
            .iter()
            .map(|o| records::ObjectRecord {
                left: o.left,
                top: o.top,
                width: o.width,
                height: o.height,
                confidence: o.confidence,
                class_id: o.class_id,
                object_id: o.object_id,
            })
            .collect();
        let records_cost = measure(iterations, || {
            let kept = bench_guest.call_filter_records(&mut bench_store, &typed, 0, 0.5).unwrap_or_default();
            black_box(kept.len());
        });
        let bytes_cost = measure(iterations, || {
            fill(&mut frame, &objects);
            let kept = bench_guest.call_filter_bytes(&mut bench_store, &frame.objects, 0, 0.5).unwrap_or_default();
            black_box(kept.len());
        });

        let us = |d: Duration| format!("{:.2} µs", d.as_secs_f64() * 1e6);
        println!(
            "| {count} | {} | {} | {:.1}x | {} | {} | {:.2}x |",
            us(wasm),
            us(native_cost),
            wasm.as_secs_f64() / native_cost.as_secs_f64().max(1e-12),
            us(records_cost),
            us(bytes_cost),
            records_cost.as_secs_f64() / bytes_cost.as_secs_f64().max(1e-12),
        );
    }
    Ok(())
}
