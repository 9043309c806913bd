//! Decoder selection end to end with the real `dshost` binary, the real
//! GStreamer registry and real H.264 files: `cpu` never uses NVIDIA's
//! decoder, `auto` uses it exactly when `dshost probe` says it is usable and
//! otherwise falls back with the reason in the log, and `gpu` where it is
//! unusable refuses to start, naming what is missing. On CI (no GPU, no
//! DeepStream) this checks the fallback; on a GPU box with the bundle of
//! scripts/bundle-gpu.sh the same test checks the GPU path.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::media::{clip, CLIP_FRAMES};
use serde_json::Value;

fn dshost(args: &[&str]) -> Output {
    Command::new(common::dshost_bin())
        .arg("--data-dir")
        .arg(common::repo_root().join("target/test-cache/gpu-decode-data"))
        .env("DSHOST_ALERTS__JOURNAL__PATH", common::unique_journal())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("cannot run dshost")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn probe() -> Value {
    let output = dshost(&["probe", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("probe --json prints JSON")
}

fn config(dir: &Path, name: &str, default: &str, sources: &[(&str, &str, Option<&str>)]) -> String {
    let mut text = format!("pipeline:\n  decoder: {default}\nsources:\n");
    for (id, uri, decoder) in sources {
        text.push_str(&format!("  - id: {id}\n    uri: \"{uri}\"\n"));
        if let Some(decoder) = decoder {
            text.push_str(&format!("    decoder: {decoder}\n"));
        }
    }
    text.push_str(&format!("strategies:\n  - path: \"{}\"\n", common::strategy("yolo_filter").display()));
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn probe_reports_both_gpu_elements_with_a_reason() {
    let report = probe();
    let gpu = &report["gpu_decode"];
    let names: Vec<&str> = gpu["elements"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["nvv4l2decoder", "nvvideoconvert"]);
    let usable = gpu["usable"].as_bool().unwrap();
    let all_found = gpu["elements"].as_array().unwrap().iter().all(|e| e["found"] == true);
    assert!(!usable || all_found, "usable needs both elements: {gpu}");
    let reason = gpu["reason"].as_str().unwrap();
    if !all_found {
        assert!(reason.contains("not in the GStreamer registry") && reason.contains("bundle-gpu.sh"), "{reason}");
    }
    assert!(report["gstreamer"]["version"].as_str().unwrap().starts_with("GStreamer 1."));
}

#[test]
fn cpu_and_auto_decode_every_frame_with_the_decoder_the_probe_predicts() {
    let usable = probe()["gpu_decode"]["usable"].as_bool().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = clip("h264_640x360.mp4");
    let file = file.to_string_lossy();
    let config = config(
        dir.path(),
        "mixed.yaml",
        "auto",
        &[
            ("forced-cpu", &file, Some("cpu")),
            ("auto", &file, None),
            ("pattern", "test://ball?frames=30&realtime=false", Some("gpu")),
        ],
    );
    let summary = dir.path().join("summary.json");
    let output = dshost(&["run", "--config", &config, "--no-watch", "--summary-json", summary.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let source = |id: &str| summary["sources"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap().clone();

    let cpu = source("forced-cpu");
    assert_eq!(cpu["frames_decoded"], CLIP_FRAMES, "{cpu}");
    let cpu_decoder = cpu["decoder"].as_str().expect("the CPU decoder element is recorded");
    assert_ne!(cpu_decoder, "nvv4l2decoder");

    let auto = source("auto");
    assert_eq!(auto["frames_decoded"], CLIP_FRAMES, "{auto}");
    let log = stderr(&output);
    if usable {
        assert_eq!(auto["decoder"], "nvv4l2decoder", "{auto}");
    } else {
        assert_eq!(auto["decoder"].as_str(), Some(cpu_decoder), "{auto}");
        assert!(log.contains("GPU decode unavailable; decoding on the CPU"), "{log}");
        assert!(log.contains("source=auto") && log.contains("nvv4l2decoder"), "{log}");
        assert!(!log.contains("source=forced-cpu"), "`cpu` is not a fallback: {log}");
    }

    // Raw video has nothing to decode: `gpu` there is not an error.
    let pattern = source("pattern");
    assert_eq!(pattern["frames_decoded"], 30, "{pattern}");
    assert_eq!(pattern["decoder"], Value::Null, "{pattern}");
}

#[test]
fn gpu_where_unusable_is_refused_naming_what_is_missing() {
    let gpu = probe()["gpu_decode"].clone();
    let dir = tempfile::tempdir().unwrap();
    let file = clip("h264_640x360.mp4");
    let config = config(dir.path(), "gpu.yaml", "gpu", &[("cam", &file.to_string_lossy(), None)]);
    let summary = dir.path().join("summary.json");
    let output = dshost(&["run", "--config", &config, "--no-watch", "--summary-json", summary.to_str().unwrap()]);
    let log = stderr(&output);
    if gpu["usable"] == true {
        assert!(output.status.success(), "{log}");
        let summary: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
        assert_eq!(summary["sources"][0]["decoder"], "nvv4l2decoder");
        assert_eq!(summary["sources"][0]["frames_decoded"], CLIP_FRAMES);
    } else {
        assert!(!output.status.success(), "`decoder: gpu` must not start without a usable GPU decoder: {log}");
        assert!(log.contains("source `cam` asks for `decoder: gpu` but GPU decode is unavailable"), "{log}");
        assert!(log.contains(gpu["reason"].as_str().unwrap()), "the probe's reason is in the error: {log}");
        assert!(log.contains("decoder: auto"), "the error says how to fall back: {log}");
    }
}
