//! The ONNX inference stage as a library, on real ONNX Runtime (the PyPI
//! 1.31.1 CPU library), real models and real images:
//! - each decoder family on a small graph built by
//!   tests/fixtures/onnx/make_graphs.py whose outputs are constants, the
//!   expected boxes computed by hand from those constants;
//! - the demo YOLOv12n on scikit-image photos decoded and scaled by a real
//!   GStreamer pipeline, against the detections listed in
//!   shared/design/inference.md and box ranges measured by hand on the
//!   photos;
//! - YOLOv12n and the tracker on the vtest.avi pedestrian clip;
//! - bad input, each refused with a message naming the file and the fix;
//! - the pool over real sessions: batching, and a failing run.
//!
//! Models, photos and the clip come from scripts/fetch-models.sh (cached,
//! pinned, checksummed); a failed fetch fails the tests.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app::AppSink;

use dshost::config::{OnnxFormat, OnnxLabels, OnnxResize, TrackerConfig};
use dshost::detect::onnx::format::Layout;
use dshost::detect::onnx::model::ModelError;
use dshost::detect::onnx::preprocess::{Channels, Resize};
use dshost::detect::onnx::{
    BatchCapability, DecodeOptions, Family, Frame, FrameRef, InferencePool, LibrarySearch, ModelOptions, OnnxModel,
    OrtRuntime, Pacing, PoolOptions, Provider, RgbImage,
};
use dshost::detect::tracker::{IouTracker, Observation};
use dshost::detect::Detected;
use dshost::frame::LabelTable;

use common::models::assets;

fn runtime() -> &'static OrtRuntime {
    let search = LibrarySearch { env_override: Some(assets().ort_lib.clone()), cache_dir: None, system: false };
    OrtRuntime::get_or_load(&search).expect("the fetched ONNX Runtime loads")
}

/// The test graphs, built once per test process into a fresh directory.
fn graphs() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = common::repo_root().join("tests/fixtures/onnx/make_graphs.py");
        let output = std::process::Command::new(&assets().python)
            .arg(&script)
            .arg(dir.path())
            .output()
            .expect("cannot run the venv's python");
        assert!(output.status.success(), "{} failed: {}", script.display(), String::from_utf8_lossy(&output.stderr));
        dir
    })
    .path()
}

fn options(path: PathBuf, labels: OnnxLabels) -> ModelOptions {
    ModelOptions {
        path,
        format: OnnxFormat::Auto,
        labels,
        resize: OnnxResize::Auto,
        provider: Provider::Cpu,
        device_id: 0,
        cuda_graph: false,
        threads: 1,
    }
}

fn load(name: &str) -> Result<Arc<OnnxModel>, ModelError> {
    OnnxModel::load(runtime(), &options(graphs().join(name), OnnxLabels::Auto))
}

/// Runs one frame of `width` x `height` grey pixels, reported in a
/// `source_width` x `source_height` source.
fn detect_grey(
    model: &OnnxModel,
    width: u32,
    height: u32,
    source: (u32, u32),
    decode: &DecodeOptions,
) -> Vec<Detected> {
    let image = vec![114u8; (width * height * 3) as usize];
    let frame =
        FrameRef { image: RgbImage::packed(&image, width, height), source_width: source.0, source_height: source.1 };
    let mut session = model.session(1).expect("session");
    let mut results = Vec::new();
    session.detect(&[frame], decode, &mut results);
    results.remove(0).expect("the frame runs")
}

/// (left, top, width, height, class, confidence), rounded for comparison.
fn boxes(found: &[Detected]) -> Vec<(f32, f32, f32, f32, u32, f32)> {
    let r = |v: f32| (v * 1000.0).round() / 1000.0;
    found.iter().map(|d| (r(d.left), r(d.top), r(d.width), r(d.height), d.class_id, r(d.confidence))).collect()
}

#[test]
fn yolo_head_constants_decode_to_the_hand_computed_boxes() {
    let model = load("yolo.onnx").expect("yolo.onnx loads");
    let info = model.info();
    assert_eq!(info.family, Family::Yolo);
    assert_eq!(info.layout, Layout::Scores { classes: 3, boxes: 84, channels_first: true });
    assert_eq!(info.labels, ["person", "bicycle", "car"]);
    assert_eq!(info.labels_source, "model metadata `names`");
    assert_eq!(info.batch, BatchCapability::Fixed { size: 1 });
    assert_eq!((info.preprocess.resize, info.preprocess.channels), (Resize::LetterboxCentered, Channels::Rgb));
    // A 128x64 source fits the 64x64 input as 64x32: 16 rows of padding
    // above and below, scale 0.5. Model boxes (cx, cy, w, h) from
    // make_graphs.py and their source boxes, x = x_model / 0.5,
    // y = (y_model - 16) / 0.5:
    //   box 0 person 0.9  (20, 30, 10, 20) -> x 30..50, y 8..48
    //   box 1 person 0.8  (21, 31, 10, 20): IoU 0.747 with box 0, suppressed
    //   box 2 bicycle 0.7 (21, 31, 10, 20) -> x 32..52, y 10..50
    //   box 5 car 0.6     (60, 44, 12, 8)  -> x 108..132 clipped to 128, y 48..64
    //   box 3 car 0.3     (50, 40, 8, 8)   -> x 92..108, y 40..56
    //   box 4 best 0.24: below the 0.25 threshold
    assert_eq!(model.fit_size(128, 64), (64, 32));
    let found = detect_grey(&model, 64, 32, (128, 64), &DecodeOptions::default());
    assert_eq!(
        boxes(&found),
        [
            (30.0, 8.0, 20.0, 40.0, 0, 0.9),
            (32.0, 10.0, 20.0, 40.0, 1, 0.7),
            (108.0, 48.0, 20.0, 16.0, 2, 0.6),
            (92.0, 40.0, 16.0, 16.0, 2, 0.3),
        ]
    );
    // The class filter is by label; the ids follow the host's table.
    let mut host = LabelTable::from_labels(vec!["car".into(), "person".into()]);
    let decode = model.decode_options(0.25, 0.45, 300, &["car".to_string()], Some(&mut host)).unwrap();
    let found = detect_grey(&model, 64, 32, (128, 64), &decode);
    assert_eq!(found.iter().map(|d| (d.class_id, d.confidence)).collect::<Vec<_>>(), [(0, 0.6), (0, 0.3)]);
    assert_eq!(host.labels(), ["car", "person", "bicycle"], "the model's labels are added to the host's table");
    let error = model.decode_options(0.25, 0.45, 300, &["dog".to_string()], None).unwrap_err();
    assert!(error.to_string().contains("`dog`") || error.to_string().contains("dog"), "{error}");
    assert!(error.to_string().contains("person, bicycle, car"), "{error}");
}

#[test]
fn yolov5_objectness_constants_and_a_labels_file() {
    let labels = graphs().join("yolov5-labels.txt");
    std::fs::write(&labels, "forklift\npallet\n").unwrap();
    let model = OnnxModel::load(runtime(), &options(graphs().join("yolov5.onnx"), OnnxLabels::File(labels.clone())))
        .expect("yolov5.onnx loads");
    assert_eq!(model.info().family, Family::Yolov5);
    assert_eq!(model.info().layout, Layout::Objectness { classes: 2, boxes: 252 });
    assert_eq!(model.labels(), ["forklift", "pallet"]);
    // Rows (cx, cy, w, h, obj, c0, c1) of make_graphs.py, source = input:
    //   row 0:   (20, 30, 10, 20), 0.9 x 0.5 = 0.45 class 0 -> (15, 20, 10, 20)
    //   row 7:   (40, 30, 10, 10), 0.3 x 0.9 = 0.27 class 1 -> (35, 25, 10, 10)
    //   row 100: 0.8 x 0.3 = 0.24, dropped; row 200: objectness 0.2, dropped
    let found = detect_grey(&model, 64, 64, (64, 64), &DecodeOptions::default());
    assert_eq!(boxes(&found), [(15.0, 20.0, 10.0, 20.0, 0, 0.45), (35.0, 25.0, 10.0, 10.0, 1, 0.27)]);
    // Without metadata or a file, the two classes get generated names.
    let model = load("yolov5.onnx").unwrap();
    assert_eq!(model.labels(), ["class_0", "class_1"]);
    // A labels file naming three classes for a two-class model.
    std::fs::write(&labels, "forklift\npallet\nhelmet\n").unwrap();
    let error = OnnxModel::load(runtime(), &options(graphs().join("yolov5.onnx"), OnnxLabels::File(labels.clone())))
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains(&labels.display().to_string()), "{text}");
    assert!(text.contains("names 3 labels but the model has 2 classes"), "{text}");
    assert!(text.contains("exactly 2 lines"), "{text}");
}

#[test]
fn yolox_grid_and_decoded_exports_give_the_same_boxes() {
    // Row 19 = cell (3, 2) of stride 8; raw: offsets (0.5, 0.25), log size
    // (ln 2, 0) -> centre ((0.5 + 3) * 8, (0.25 + 2) * 8) = (28, 18), size
    // (2 * 8, 1 * 8) = 16x8, score 0.9 x 0.8 = 0.72, class 1.
    // Row 69 = cell (1, 1) of stride 16: centre (1.5 * 16, 1.5 * 16) = (24, 24),
    // 16x16, score 0.5 x 0.9 = 0.45, class 0. The decoded export writes those
    // pixel values directly. YOLOX pads bottom-right: a 64x48 frame has no
    // offset, and its source is the frame itself.
    let expected = [(20.0, 14.0, 16.0, 8.0, 1, 0.72), (16.0, 16.0, 16.0, 16.0, 0, 0.45)];
    let raw = load("yolox_raw.onnx").expect("yolox_raw.onnx loads");
    assert_eq!(raw.info().family, Family::Yolox);
    assert_eq!(raw.info().layout, Layout::Grid { classes: 2, boxes: 84, strides: vec![8, 16, 32] });
    let pre = raw.info().preprocess;
    assert_eq!((pre.resize, pre.channels, pre.scale), (Resize::LetterboxTopLeft, Channels::Bgr, 1.0));
    assert_eq!(boxes(&detect_grey(&raw, 64, 48, (64, 48), &DecodeOptions::default())), expected);
    let decoded = load("yolox_decoded.onnx").expect("yolox_decoded.onnx loads");
    assert_eq!(decoded.info().layout, Layout::Objectness { classes: 2, boxes: 84 });
    assert_eq!(boxes(&detect_grey(&decoded, 64, 48, (64, 48), &DecodeOptions::default())), expected);
}

#[test]
fn end2end_layouts_keep_the_graphs_boxes() {
    // [1, 10, 6] rows x1, y1, x2, y2, score, class, at 64x64; the source is
    // 640x640, so every coordinate is x10. NMS was the graph's: the
    // overlapping rows 0 and 1 both stay; row 2 (0.2) is below 0.25.
    let model = load("end2end6.onnx").expect("end2end6.onnx loads");
    assert_eq!(model.info().family, Family::End2end);
    assert_eq!(model.info().layout, Layout::Boxes6 { rows: 10 });
    assert_eq!(model.labels(), ["person", "car"]);
    let found = detect_grey(&model, 64, 64, (640, 640), &DecodeOptions::default());
    assert_eq!(
        boxes(&found),
        [
            (100.0, 200.0, 200.0, 200.0, 0, 0.9),
            (120.0, 200.0, 200.0, 200.0, 0, 0.85),
            (400.0, 100.0, 200.0, 200.0, 1, 0.5)
        ]
    );
    // [4, 7] rows batch, x1, y1, x2, y2, class, score: two rows of batch
    // item 0 above 0.25, one below, one of item 1. No metadata: COCO.
    let model = load("end2end7.onnx").expect("end2end7.onnx loads");
    assert_eq!(model.info().layout, Layout::Boxes7 { rows: 4, batched: false });
    assert_eq!(model.labels().len(), 80);
    let found = detect_grey(&model, 64, 64, (64, 64), &DecodeOptions::default());
    assert_eq!(boxes(&found), [(5.0, 6.0, 20.0, 30.0, 2, 0.75), (30.0, 30.0, 20.0, 10.0, 0, 0.3)]);
}

#[test]
fn a_model_whose_outputs_match_no_format_is_refused_naming_the_shapes() {
    let path = graphs().join("nomatch.onnx");
    let error = load("nomatch.onnx").unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ModelError::Format(_)), "{text}");
    assert!(text.contains(&path.display().to_string()) && text.contains("output0 [1, 10]"), "{text}");
    assert!(text.contains("pipeline.onnx.format"), "{text}");
    // Forcing a family the outputs do not fit is refused too.
    let error = OnnxModel::load(
        runtime(),
        &ModelOptions { format: OnnxFormat::Yolov5, ..options(graphs().join("yolo.onnx"), OnnxLabels::Auto) },
    )
    .unwrap_err();
    assert!(error.to_string().contains("format: yolov5"), "{error}");
}

#[test]
fn missing_truncated_and_foreign_files_are_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let check = |path: &Path, expect: &str| {
        let error = OnnxModel::load(runtime(), &options(path.to_path_buf(), OnnxLabels::Auto)).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&path.display().to_string()), "names the file: {text}");
        assert!(text.contains(expect), "{expect}: {text}");
        assert!(text.contains("Fix:"), "gives the fix: {text}");
    };
    check(&dir.path().join("absent.onnx"), "does not exist");
    let bytes = std::fs::read(graphs().join("yolo.onnx")).unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    check(&truncated, "truncated");
    let png = dir.path().join("photo.onnx");
    std::fs::copy(assets().photos.join("astronaut.png"), &png).unwrap();
    check(&png, "not an ONNX model");
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    check(&empty, "empty");
    let zip = dir.path().join("model.onnx.zip");
    std::fs::write(&zip, b"PK\x03\x04\x14\x00\x00\x00").unwrap();
    check(&zip, "unzip");
}

#[test]
fn no_onnx_runtime_library_is_a_clear_error_of_the_cli() {
    // A separate process: the library is loaded once per process.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, "this is not a shared library\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dshost"))
        .args(["model", "check"])
        .arg(graphs().join("yolo.onnx"))
        .env("DSHOST_ORT_LIB", &fake)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&fake.display().to_string()), "{stderr}");
    assert!(stderr.contains("cannot be loaded as a library") && stderr.contains("scripts/setup.sh"), "{stderr}");
    // Nothing at all: no override, an empty cache, nothing on the system path.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dshost"))
        .args(["model", "check"])
        .arg(graphs().join("yolo.onnx"))
        .env_remove("DSHOST_ORT_LIB")
        .env("XDG_CACHE_HOME", dir.path())
        .env("LD_LIBRARY_PATH", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("ONNX Runtime not found") && stderr.contains("DSHOST_ORT_LIB (unset)"), "{stderr}");
    assert!(stderr.contains("libonnxruntime.so"), "{stderr}");
}

#[test]
fn model_check_reports_the_demo_model() {
    // Facts from shared/design/inference.md: Ultralytics 8.3.63 export of
    // YOLOv12n, input images [1, 3, 640, 640], output0 [1, 84, 8400], 80
    // COCO names in the metadata, static batch 1, AGPL-3.0 weights.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dshost"))
        .args(["model", "check", "--json"])
        .arg(&assets().model)
        .env("DSHOST_ORT_LIB", &assets().ort_lib)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["onnxruntime"]["version"], "1.31.1");
    assert_eq!(report["format"], "yolo");
    assert_eq!(report["inputs"][0]["name"], "images");
    assert_eq!(report["inputs"][0]["shape"], serde_json::json!([1, 3, 640, 640]));
    assert_eq!(report["outputs"][0]["name"], "output0");
    assert_eq!(report["outputs"][0]["shape"], serde_json::json!([1, 84, 8400]));
    assert_eq!(report["labels"]["count"], 80);
    assert_eq!(report["labels"]["labels"][0], "person");
    assert_eq!(report["labels"]["labels"][79], "toothbrush");
    assert_eq!(report["batch"], serde_json::json!({"kind": "fixed", "size": 1}));
    assert!(report["metadata"]["license"].as_str().unwrap_or("").contains("AGPL"), "{report}");
    assert_eq!(report["providers"]["cpu"]["status"], "usable");
    // The CPU wheel has no CUDA: auto falls back, saying why.
    assert_eq!(report["provider"], "cpu");
    assert!(report["provider_fallback"].as_str().unwrap_or("").contains("CPU-only build"), "{report}");
    assert!(report["timing_ms"]["inference"].as_f64().unwrap_or(0.0) > 0.0);
    // The readable form says the same.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dshost"))
        .args(["model", "check"])
        .arg(&assets().model)
        .env("DSHOST_ORT_LIB", &assets().ort_lib)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("format:       yolo") && text.contains("80 from model metadata `names`: person, bicycle, car"),
        "{text}"
    );
    assert!(text.contains("inference:"), "{text}");
    // A CUDA graph asked for where `auto` fell back to the CPU: refused,
    // saying why the GPU is not used.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dshost"))
        .args(["model", "check", "--cuda-graph"])
        .arg(&assets().model)
        .env("DSHOST_ORT_LIB", &assets().ort_lib)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--cuda-graph needs a GPU provider") && stderr.contains("CPU-only build"), "{stderr}");
}

// ----- the demo model on real photos -------------------------------------

/// Decodes an image file with GStreamer and returns its RGB pixels at
/// `size` (scaled by videoscale), or at its own size when `size` is None.
fn gst_rgb(path: &Path, size: Option<(u32, u32)>) -> (Vec<u8>, u32, u32, usize) {
    gst::init().unwrap();
    let caps = match size {
        Some((w, h)) => format!("video/x-raw,format=RGB,width={w},height={h},pixel-aspect-ratio=1/1"),
        None => "video/x-raw,format=RGB".to_string(),
    };
    let description = format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! videoscale ! {caps} ! appsink name=sink sync=false",
        path.display()
    );
    let pipeline = gst::parse::launch(&description).unwrap().downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink.pull_sample().expect("a decoded frame");
    let info = gstreamer_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let buffer = sample.buffer().unwrap().map_readable().unwrap();
    let out = (buffer.to_vec(), info.width(), info.height(), info.stride()[0] as usize);
    drop(buffer);
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

fn demo_model() -> Arc<OnnxModel> {
    static MODEL: OnceLock<Arc<OnnxModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let options = ModelOptions { threads: 0, ..options(assets().model.clone(), OnnxLabels::Auto) };
            OnnxModel::load(runtime(), &options).expect("the demo model loads")
        })
        .clone()
}

fn demo_session() -> &'static Mutex<dshost::detect::onnx::InferenceSession> {
    static SESSION: OnceLock<Mutex<dshost::detect::onnx::InferenceSession>> = OnceLock::new();
    SESSION.get_or_init(|| Mutex::new(demo_model().session(1).expect("session")))
}

/// The demo model's detections in `photo`, in the photo's pixels.
fn detect_photo(photo: &str) -> Vec<(String, f32, [f32; 4])> {
    let model = demo_model();
    let path = assets().photos.join(photo);
    let (_, source_width, source_height, _) = gst_rgb(&path, None);
    let fit = model.fit_size(source_width, source_height);
    let (pixels, width, height, stride) = gst_rgb(&path, Some(fit));
    assert_eq!((width, height), fit);
    let frame = FrameRef { image: RgbImage { data: &pixels, width, height, stride }, source_width, source_height };
    let mut results = Vec::new();
    demo_session().lock().unwrap().detect(&[frame], &DecodeOptions::default(), &mut results);
    let found = results.remove(0).expect("inference runs");
    found
        .iter()
        .map(|d| {
            (
                model.labels()[d.class_id as usize].clone(),
                d.confidence,
                [d.left, d.top, d.left + d.width, d.top + d.height],
            )
        })
        .collect()
}

/// Asserts the best detection of `label`: confidence within `confidence`,
/// box corners (x1, y1, x2, y2) each within their hand-measured range.
fn assert_box(
    photo: &str,
    found: &[(String, f32, [f32; 4])],
    label: &str,
    confidence: (f32, f32),
    ranges: [(f32, f32); 4],
) {
    let best = found
        .iter()
        .filter(|d| d.0 == label)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or_else(|| panic!("{photo}: no {label} among {found:?}"));
    assert!(
        best.1 >= confidence.0 && best.1 <= confidence.1,
        "{photo}: {label} confidence {} outside {confidence:?}",
        best.1
    );
    for (i, ((lo, hi), value)) in ranges.iter().zip(best.2).enumerate() {
        assert!(value >= *lo && value <= *hi, "{photo}: {label} corner {i} = {value} outside [{lo}, {hi}] ({best:?})");
    }
}

// The ranges: where the object's visible extent lies in the photo, measured
// by hand (an image viewer, pixel coordinates) with room for how tightly a
// detector fits it; inference.md's onnxruntime boxes lie inside each.
// Confidences: inference.md's value +-0.12 (our scaling is GStreamer's
// bilinear videoscale, not OpenCV's resize, so scores differ slightly).

#[test]
fn demo_model_finds_the_astronaut() {
    // 512x512; the suit spans x 18-362, her hair top is y 14, the suit runs
    // off the bottom. inference.md: person 0.80 [9, 16, 367, 512].
    let found = detect_photo("astronaut.png");
    assert_box("astronaut", &found, "person", (0.68, 0.92), [(0.0, 30.0), (5.0, 35.0), (340.0, 390.0), (490.0, 512.0)]);
    assert_eq!(found[0].0, "person", "{found:?}");
}

#[test]
fn demo_model_finds_the_cameraman() {
    // 512x512; the coat reaches the left edge and the bottom, the hair top
    // is y 64, the hands on the camera end near x 300-330.
    // inference.md: person 0.88 [1, 64, 304, 510].
    let found = detect_photo("camera.png");
    assert_box("camera", &found, "person", (0.76, 1.0), [(0.0, 20.0), (45.0, 85.0), (280.0, 340.0), (485.0, 512.0)]);
}

#[test]
fn demo_model_finds_the_cat() {
    // 451x300, the cat fills the frame up to its right ear near x 395.
    // inference.md: cat 0.82 [1, 1, 405, 296].
    let found = detect_photo("chelsea.png");
    assert_box("chelsea", &found, "cat", (0.70, 0.94), [(0.0, 30.0), (0.0, 30.0), (350.0, 451.0), (270.0, 300.0)]);
    assert_eq!(found[0].0, "cat");
}

#[test]
fn demo_model_finds_the_cup_and_spoon() {
    // 600x400; the cup's rim spans x 172-409 from y 17, its body and handle
    // end near y 250-305. inference.md: cup 0.82 [170, 16, 419, 247], plus a
    // spoon and a dining table.
    let found = detect_photo("coffee.png");
    assert_box("coffee", &found, "cup", (0.70, 0.94), [(150.0, 200.0), (5.0, 35.0), (395.0, 435.0), (225.0, 310.0)]);
    assert_eq!(found[0].0, "cup", "{found:?}");
    assert!(found.iter().any(|d| d.0 == "spoon"), "{found:?}");
}

#[test]
fn demo_model_finds_the_motorcycle() {
    // 741x500; from the tail light (x 92) or rear tyre (x 120) to the front
    // tyre (x 684), mirrors at y 67-80 to the tyres' bottom (y 452).
    // inference.md: motorcycle 0.90 [118, 67, 686, 455].
    let found = detect_photo("motorcycle_left.png");
    assert_box(
        "motorcycle",
        &found,
        "motorcycle",
        (0.78, 1.0),
        [(85.0, 135.0), (50.0, 95.0), (665.0, 705.0), (435.0, 475.0)],
    );
    assert_eq!(found[0].0, "motorcycle");
}

#[test]
fn demo_model_finds_nothing_on_the_rocket() {
    // inference.md: nothing at confidence 0.25.
    let found = detect_photo("rocket.jpg");
    assert!(found.is_empty(), "{found:?}");
}

// ----- the demo model and the tracker on real footage ---------------------

#[test]
fn people_on_vtest_are_detected_and_keep_their_ids() {
    // vtest.avi (768x576, 10 fps): a fixed camera over a path with 2-10
    // people walking in every frame, 40-110 px tall (inference.md). 24
    // consecutive frames (2.4 s) from 10 s in, scaled to 640x480 by
    // GStreamer, through the model and the two-pass tracker.
    gst::init().unwrap();
    let model = demo_model();
    let (width, height) = model.fit_size(768, 576);
    let description = format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! videoscale ! \
         video/x-raw,format=RGB,width={width},height={height},pixel-aspect-ratio=1/1 ! appsink name=sink sync=false",
        assets().vtest.display()
    );
    let pipeline = gst::parse::launch(&description).unwrap().downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<AppSink>().unwrap();
    pipeline.set_state(gst::State::Paused).unwrap();
    let _ = pipeline.state(gst::ClockTime::from_seconds(10));
    pipeline
        .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, gst::ClockTime::from_seconds(10))
        .expect("seek");
    pipeline.set_state(gst::State::Playing).unwrap();
    let person = model.labels().iter().position(|l| l == "person").unwrap() as u32;
    let decode = model.decode_options(0.1, 0.45, 300, &["person".to_string()], None).unwrap();
    let tracker_config = TrackerConfig { low_confidence: Some(0.1), ..TrackerConfig::default() };
    let mut tracker = IouTracker::with_detector_confidence(tracker_config, 0.25);
    let mut session = demo_session().lock().unwrap();
    let mut per_frame: Vec<Vec<Detected>> = Vec::new();
    let mut tracked = Vec::new();
    for _ in 0..24 {
        let sample = sink.pull_sample().expect("a frame of vtest.avi");
        let info = gstreamer_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        let buffer = sample.buffer().unwrap().map_readable().unwrap();
        let frame = FrameRef {
            image: RgbImage {
                data: &buffer,
                width: info.width(),
                height: info.height(),
                stride: info.stride()[0] as usize,
            },
            source_width: 768,
            source_height: 576,
        };
        let mut results = Vec::new();
        session.detect(&[frame], &decode, &mut results);
        let found = results.remove(0).expect("inference runs");
        tracker.observe(Observation::Detections(&found), &mut tracked);
        per_frame.push(tracked.clone());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let strong: Vec<Vec<&Detected>> =
        per_frame.iter().map(|f| f.iter().filter(|d| d.class_id == person && d.confidence >= 0.25).collect()).collect();
    assert!(
        strong.iter().all(|f| !f.is_empty()),
        "a person in every frame: {:?}",
        strong.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let heights: Vec<f32> = strong.iter().flatten().map(|d| d.height).collect();
    let plausible = heights.iter().filter(|&&h| (30.0..=140.0).contains(&h)).count();
    assert!(plausible * 10 >= heights.len() * 8, "most people 40-110 px tall (+-10): {heights:?}");
    // Walking people keep their ids: some id is on every one of the 24
    // frames, and most ids of the first frame are still there at the end.
    let mut frames_per_id: HashMap<u64, usize> = HashMap::new();
    for frame in &per_frame {
        for d in frame {
            *frames_per_id.entry(d.object_id.expect("tracked")).or_default() += 1;
        }
    }
    let longest = frames_per_id.values().max().copied().unwrap_or(0);
    assert_eq!(longest, 24, "an id on every frame: {frames_per_id:?}");
}

// ----- the pool over real sessions ---------------------------------------

type Outcome = (String, u32, Result<f32, String>);

fn uniform_frame(value: u8, context: u32) -> Frame<u32> {
    Frame {
        image: vec![value; 32 * 32 * 3],
        width: 32,
        height: 32,
        stride: 96,
        source_width: 32,
        source_height: 32,
        context,
    }
}

#[test]
fn pool_batches_frames_of_several_sources_on_a_real_session() {
    // pool.onnx: symbolic batch; each frame's one box scores the mean of
    // its (uniform) pixels, so a result tells whose frame it is. A batch
    // whose brightest pixel is above 0.9 (x 255) fails to run.
    let model = load("pool.onnx").expect("pool.onnx loads");
    assert_eq!(model.info().batch, BatchCapability::Dynamic);
    let options = PoolOptions { max_batch: 4, max_wait: Duration::from_millis(300), queue_depth: 4 };
    let pool: InferencePool<u32> = InferencePool::for_model(&model, 1, options, DecodeOptions::default()).unwrap();
    let (tx, rx) = mpsc::channel::<Outcome>();
    let sources: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|id| {
            let tx = Mutex::new(tx.clone());
            pool.add_source(id, Pacing::Unpaced { stop: Arc::new(AtomicBool::new(false)) }, move |r| {
                let outcome = r.detections.map(|d| d.first().map_or(-1.0, |d| d.confidence)).map_err(|e| e.to_string());
                let _ = tx.lock().unwrap().send((id.to_string(), r.context, outcome));
            })
        })
        .collect();
    // Frame value v scores v/255: a 89 -> 0.349, b 128 -> 0.502, c 191 -> 0.749.
    for (n, (source, value)) in sources.iter().zip([89u8, 128, 191]).enumerate() {
        source.submit(uniform_frame(value, n as u32));
    }
    let mut got: Vec<Outcome> = (0..3).map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap()).collect();
    got.sort_by_key(|o| o.1);
    for (outcome, expected) in got.iter().zip([89.0f32 / 255.0, 128.0 / 255.0, 191.0 / 255.0]) {
        let confidence = *outcome.2.as_ref().expect("the frame ran");
        assert!((confidence - expected).abs() < 1e-4, "{outcome:?}");
    }
    assert!(pool.metrics().batch_sizes().iter().any(|&(size, _)| size > 1), "{:?}", pool.metrics().batch_sizes());
    // A white frame of a fails its batch (with whatever frames share it);
    // the next frames of every source run.
    sources[0].submit(uniform_frame(255, 10));
    let failed = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(failed.1, 10);
    assert!(failed.2.as_ref().is_err_and(|e| e.contains("inference of a batch")), "{failed:?}");
    for (n, source) in sources.iter().enumerate() {
        source.submit(uniform_frame(89, 20 + n as u32));
    }
    for _ in 0..3 {
        let outcome = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(outcome.2.is_ok(), "frames after the failure run: {outcome:?}");
    }
    assert_eq!(pool.metrics().run_errors.load(Ordering::Relaxed), 1);
    assert_eq!(sources[0].metrics().errors.load(Ordering::Relaxed), 1);
}

#[test]
fn a_symbolic_batch_that_does_not_run_falls_back_to_one_frame_per_run() {
    // static_reshape.onnx reshapes its input to batch 1 inside, like
    // YOLOv12n's attention blocks: a batch of 2 fails at load time.
    let model = load("static_reshape.onnx").expect("static_reshape.onnx loads");
    match &model.info().batch {
        BatchCapability::SingleOnly { reason } => assert!(reason.contains("Reshape") || !reason.is_empty()),
        other => panic!("expected batch 1 only, got {other:?}"),
    }
    let options = PoolOptions { max_batch: 4, max_wait: Duration::from_millis(50), queue_depth: 4 };
    let pool: InferencePool<u32> = InferencePool::for_model(&model, 2, options, DecodeOptions::default()).unwrap();
    let (tx, rx) = mpsc::channel::<Outcome>();
    let handles: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|id| {
            let tx = Mutex::new(tx.clone());
            pool.add_source(id, Pacing::Live, move |r| {
                let outcome = r.detections.map(|d| d.first().map_or(-1.0, |d| d.confidence)).map_err(|e| e.to_string());
                let _ = tx.lock().unwrap().send((id.to_string(), r.context, outcome));
            })
        })
        .collect();
    for (n, handle) in handles.iter().enumerate() {
        handle.submit(uniform_frame(128, n as u32));
    }
    for _ in 0..2 {
        let outcome = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(outcome.2.as_ref().is_ok_and(|c| (c - 128.0 / 255.0).abs() < 1e-4), "{outcome:?}");
    }
    assert_eq!(pool.metrics().batch_sizes(), [(1, 2)], "two concurrent runs of one frame");
}

#[test]
fn a_static_batch_rewrite_of_the_demo_model_finds_each_slots_objects() {
    // scripts/static-batch.py rewrites the batch-1 export's reshapes for a
    // static batch of 3. Three different photos in one run: each slot must
    // give its own photo's objects inside the hand-measured ranges of the
    // single-photo tests above (a rewrite that mixed slots would move or
    // lose them).
    let dir = tempfile::tempdir().unwrap();
    let rewritten = dir.path().join("yolov12n-b3.onnx");
    let output = std::process::Command::new(&assets().python)
        .arg(common::repo_root().join("scripts/static-batch.py"))
        .arg(&assets().model)
        .arg(&rewritten)
        .arg("3")
        .output()
        .expect("cannot run the venv's python");
    assert!(output.status.success(), "static-batch.py failed: {}", String::from_utf8_lossy(&output.stderr));
    let model = OnnxModel::load(runtime(), &ModelOptions { threads: 0, ..options(rewritten, OnnxLabels::Auto) })
        .expect("the rewritten model loads");
    assert_eq!(model.info().batch, BatchCapability::Fixed { size: 3 });

    let photos = ["astronaut.png", "chelsea.png", "motorcycle_left.png"];
    let decoded: Vec<_> = photos
        .iter()
        .map(|photo| {
            let path = assets().photos.join(photo);
            let (_, source_width, source_height, _) = gst_rgb(&path, None);
            let fit = model.fit_size(source_width, source_height);
            let (pixels, width, height, stride) = gst_rgb(&path, Some(fit));
            (pixels, width, height, stride, source_width, source_height)
        })
        .collect();
    let frames: Vec<FrameRef> = decoded
        .iter()
        .map(|(pixels, width, height, stride, source_width, source_height)| FrameRef {
            image: RgbImage { data: pixels, width: *width, height: *height, stride: *stride },
            source_width: *source_width,
            source_height: *source_height,
        })
        .collect();
    let mut session = model.session(3).expect("session");
    let mut results = Vec::new();
    let timing = session.detect(&frames, &DecodeOptions::default(), &mut results);
    assert_eq!(timing.frames, 3);
    let named = |found: &[Detected]| -> Vec<(String, f32, [f32; 4])> {
        found
            .iter()
            .map(|d| {
                let label = model.labels()[d.class_id as usize].clone();
                (label, d.confidence, [d.left, d.top, d.left + d.width, d.top + d.height])
            })
            .collect()
    };
    let slots: Vec<_> = results.into_iter().map(|r| named(&r.expect("every slot runs"))).collect();
    assert_eq!(slots.len(), 3);
    assert_box(
        "astronaut",
        &slots[0],
        "person",
        (0.68, 0.92),
        [(0.0, 30.0), (5.0, 35.0), (340.0, 390.0), (490.0, 512.0)],
    );
    assert_eq!(slots[0][0].0, "person", "{:?}", slots[0]);
    assert_box("chelsea", &slots[1], "cat", (0.70, 0.94), [(0.0, 30.0), (0.0, 30.0), (350.0, 451.0), (270.0, 300.0)]);
    assert_eq!(slots[1][0].0, "cat");
    assert_box(
        "motorcycle",
        &slots[2],
        "motorcycle",
        (0.78, 1.0),
        [(85.0, 135.0), (50.0, 95.0), (665.0, 705.0), (435.0, 475.0)],
    );
    assert_eq!(slots[2][0].0, "motorcycle");
}
