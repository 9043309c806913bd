//! Per-frame cost of a strategy call: encode the frame's objects, call
//! `yolo_filter` in its sandbox, validate what it returns; once built against
//! contract 0.2.0 (packed detections) and once against 0.1.0 (one record per
//! detection). Baselines measured in the same run: the same filter compiled
//! natively into the host, and the same work fed as typed WIT records
//! instead of bytes.
//!
//! Run: `scripts/build-strategies.sh && cargo bench -p dshost --bench strategy_call`
//! Prints a Markdown table (recorded in docs/benchmarks.md).
//!
//! For profiling (e.g. under `valgrind --tool=callgrind`), narrow the run:
//! `DSHOST_BENCH_OBJECTS=100 DSHOST_BENCH_ITERATIONS=200`, and
//! `DSHOST_BENCH_ONLY=0.2.0` measures that column alone (the others print 0).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dshost::frame::{CompactFrame, LabelTable, Object, Objects};
use dshost::strategy::validate::Validator;
use dshost::strategy::{Contract, EngineOptions, InstanceSettings, SandboxLimits, StrategyEngine, StrategyInstance};
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
    let yolo_v0_1 = strategies_dir().join("yolo_filter_v0_1.wasm");
    let bench = strategies_dir().join("bench_records.wasm");
    if !yolo.exists() || !yolo_v0_1.exists() || !bench.exists() {
        anyhow::bail!("strategy components missing: run scripts/build-strategies.sh first");
    }
    let engine = StrategyEngine::new(EngineOptions::default())?;
    // 1000 objects give 334 detections, past the default per-frame cap.
    let limits = SandboxLimits { max_detections: 1024, ..SandboxLimits::default() };
    let component = engine.load_file("yolo_filter", &yolo, &limits)?;
    let component_v0_1 = engine.load_file("yolo_filter_v0_1", &yolo_v0_1, &limits)?;
    anyhow::ensure!(component.contract == Contract::V0_2, "yolo_filter.wasm is not a 0.2.0 build");
    anyhow::ensure!(component_v0_1.contract == Contract::V0_1, "yolo_filter_v0_1.wasm is not a 0.1.0 build");
    let labels = Arc::new(LabelTable::coco());
    let settings = InstanceSettings {
        source_id: Arc::from("bench"),
        config_json: CONFIG.to_string(),
        labels: labels.clone(),
        limits: limits.clone(),
    };
    let mut instance = StrategyInstance::new(&engine, component, &settings)?;
    let mut instance_v0_1 = StrategyInstance::new(&engine, component_v0_1, &settings)?;
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

    println!("| objects | detections | 0.2.0: encode + call + validate | 0.1.0: same | 0.1.0 / 0.2.0 | native filter in host | 0.2.0 / native | wasm, records | wasm, bytes | records / bytes |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let counts: Vec<usize> = match std::env::var("DSHOST_BENCH_OBJECTS") {
        Ok(list) => list.split(',').map(|n| n.trim().parse()).collect::<Result<_, _>>()?,
        Err(_) => vec![0, 10, 100, 1000],
    };
    let only_v0_2 = std::env::var("DSHOST_BENCH_ONLY").is_ok_and(|v| v == "0.2.0");
    let fixed_iterations: Option<u32> = std::env::var("DSHOST_BENCH_ITERATIONS").ok().map(|n| n.parse()).transpose()?;
    for count in counts {
        let objects = objects(count);
        let iterations = fixed_iterations.unwrap_or(if count >= 1000 { 2_000 } else { 20_000 });
        let mut frame = CompactFrame::with_capacity(Arc::from("bench"), count);
        frame.width = 1280;
        frame.height = 720;

        // Both builds must answer alike, or the comparison means nothing.
        fill(&mut frame, &objects);
        let found = instance.process(&frame).map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(found == instance_v0_1.process(&frame).map_err(|e| anyhow::anyhow!("{e}"))?);
        let detections = found.len();

        let mut call = |instance: &mut StrategyInstance| {
            measure(iterations, || {
                fill(&mut frame, &objects);
                frame.frame_number += 1;
                let detections = instance.process(&frame).unwrap_or_default();
                let mut validator = Validator::default();
                let kept =
                    detections.into_iter().filter_map(|d| validator.check(d, frame.width, frame.height).ok()).count();
                black_box(kept);
            })
        };
        let wasm = call(&mut instance);
        if only_v0_2 {
            println!("| {count} | {detections} | {:.2} µs | 0 | 0 | 0 | 0 | 0 | 0 | 0 |", wasm.as_secs_f64() * 1e6);
            continue;
        }
        let wasm_v0_1 = call(&mut instance_v0_1);

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
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-12);
        println!(
            "| {count} | {detections} | {} | {} | {:.2}x | {} | {:.1}x | {} | {} | {:.2}x |",
            us(wasm),
            us(wasm_v0_1),
            ratio(wasm_v0_1, wasm),
            us(native_cost),
            ratio(wasm, native_cost),
            us(records_cost),
            us(bytes_cost),
            ratio(records_cost, bytes_cost),
        );
    }
    Ok(())
}
