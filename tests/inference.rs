//! The ONNX detector through the real binary: the demo model (YOLOv12n, COCO)
//! on real footage and photos, decoded and scaled by the real pipeline.
//! Expectations come from outside dshost: vtest.avi (Debian's opencv-doc) is
//! a fixed camera over a path with 2-10 people walking in every frame, 40-110
//! px tall; scikit-image's `astronaut` photo holds one person filling most of
//! its left half (hand-measured: the suit spans x 0-380, y 10-512 of 512x512).

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn dshost(data_dir: &Path) -> Command {
    let assets = common::models::assets();
    let mut command = Command::new(common::dshost_bin());
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env("DSHOST_ORT_LIB", &assets.ort_lib)
        .env("DSHOST_ALERTS__JOURNAL__PATH", common::unique_journal())
        .env("RUST_LOG", "info");
    command
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn people_on_vtest_are_detected_on_most_frames_and_keep_their_ids() {
    let assets = common::models::assets();
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames.jsonl");
    let output = dshost(&dir.path().join("data"))
        .arg("record")
        .arg("--source")
        .arg(&assets.vtest)
        .arg("--model")
        .arg(&assets.model)
        .arg("--frames-out")
        .arg(&frames)
        .args(["--duration", "20"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let recorded = lines(&frames);
    assert!(recorded.len() >= 40, "only {} frames analysed in 20 s", recorded.len());
    let people = |frame: &Value| -> Vec<Value> {
        frame["objects"].as_array().unwrap().iter().filter(|o| o["label"] == "person").cloned().collect()
    };
    let with_people = recorded.iter().filter(|f| !people(f).is_empty()).count();
    assert!(with_people * 10 >= recorded.len() * 8, "people on {with_people} of {} frames", recorded.len());
    let heights: Vec<f64> = recorded.iter().flat_map(people).map(|o| o["height"].as_f64().unwrap()).collect();
    let plausible = heights.iter().filter(|h| (30.0..=150.0).contains(*h)).count();
    assert!(plausible * 10 >= heights.len() * 8, "most people 40-110 px tall: {plausible} of {}", heights.len());
    // A walking person keeps one id over consecutive frames (model frames
    // and the frames between them, where the tracker carries the box).
    let mut run: HashMap<u64, (usize, usize)> = HashMap::new(); // id -> (current run, longest)
    for frame in &recorded {
        let ids: Vec<u64> = people(frame).iter().filter_map(|o| o["object_id"].as_u64()).collect();
        for (id, (current, longest)) in run.iter_mut() {
            if !ids.contains(id) {
                *longest = (*longest).max(*current);
                *current = 0;
            }
        }
        for id in ids {
            let entry = run.entry(id).or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(entry.0);
        }
    }
    let longest = run.values().map(|(_, longest)| *longest).max().unwrap_or(0);
    assert!(longest >= 30, "the longest unbroken track is {longest} frames");
    assert!(stderr(&output).contains("ONNX detector ready"), "{}", stderr(&output));
}

#[test]
fn the_astronaut_photo_through_the_pipeline() {
    let assets = common::models::assets();
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames.jsonl");
    let output = dshost(&dir.path().join("data"))
        .arg("record")
        .arg("--source")
        .arg(assets.photos.join("astronaut.png"))
        .arg("--model")
        .arg(&assets.model)
        .arg("--frames-out")
        .arg(&frames)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let recorded = lines(&frames);
    assert_eq!(recorded.len(), 1, "a photo is one frame");
    let frame = &recorded[0];
    assert_eq!((frame["width"].as_u64(), frame["height"].as_u64()), (Some(512), Some(512)));
    let person = frame["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["label"] == "person")
        .max_by(|a, b| a["confidence"].as_f64().partial_cmp(&b["confidence"].as_f64()).unwrap())
        .expect("the astronaut");
    let (l, t) = (person["left"].as_f64().unwrap(), person["top"].as_f64().unwrap());
    let (r, b) = (l + person["width"].as_f64().unwrap(), t + person["height"].as_f64().unwrap());
    assert!(person["confidence"].as_f64().unwrap() > 0.6, "{person}");
    assert!(l < 40.0 && (0.0..=60.0).contains(&t) && (330.0..=420.0).contains(&r) && b > 480.0, "box {l},{t},{r},{b}");
}

#[test]
fn yolo_filter_on_the_clip_gives_person_alerts_through_the_journal_and_sinks() {
    let assets = common::models::assets();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let alerts = dir.path().join("alerts.jsonl");
    let summary = dir.path().join("summary.json");
    let output = dshost(&data_dir)
        .env_remove("DSHOST_ALERTS__JOURNAL__PATH")
        .arg("--strategy")
        .arg(common::strategy("yolo_filter"))
        .arg("--model")
        .arg(&assets.model)
        .arg("--source")
        .arg(&assets.vtest)
        .args(["--duration", "20", "--no-watch"])
        .arg("--alerts-jsonl")
        .arg(&alerts)
        .arg("--summary-json")
        .arg(&summary)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let written = lines(&alerts);
    let people: Vec<&Value> = written.iter().filter(|a| a["pattern"] == "person").collect();
    assert!(people.len() >= 3, "person alerts: {}", people.len());
    assert!(written.iter().all(|a| ["person", "bicycle", "car"].contains(&a["pattern"].as_str().unwrap())));
    for alert in &people {
        assert!(alert["object_id"].as_u64().is_some(), "tracked: {alert}");
        let path = alert["snapshot"]["path"].as_str().expect("a snapshot");
        assert!(Path::new(path).exists(), "{path}");
    }
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let inference = &summary["inference"];
    assert_eq!(inference["provider"], "cpu", "{summary}");
    assert!(inference["runs"].as_u64().unwrap() > 10, "{summary}");
    // The journal has every alert, delivered.
    let listed = Command::new(common::dshost_bin())
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["alerts", "list", "--json"])
        .output()
        .unwrap();
    let journaled: Vec<Value> =
        String::from_utf8_lossy(&listed.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(journaled.len(), written.len());
    for entry in &journaled {
        let sink = format!("jsonl:{}", alerts.display());
        assert_eq!(entry["delivery"][sink.as_str()]["state"], "delivered", "{entry}");
    }
}

#[test]
fn bad_models_are_named_with_the_fix_and_a_running_dshost_keeps_its_model() {
    let assets = common::models::assets();
    let dir = tempfile::tempdir().unwrap();
    // At start: a missing file and a truncated one.
    let missing = dshost(&dir.path().join("data"))
        .arg("--strategy")
        .arg(common::strategy("yolo_filter"))
        .args(["--source", "scene://?frames=5&realtime=false", "--model", "/nonexistent/model.onnx"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("/nonexistent/model.onnx"), "{}", stderr(&missing));
    let truncated = dir.path().join("truncated.onnx");
    let bytes = std::fs::read(&assets.model).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let output = dshost(&dir.path().join("data"))
        .args(["--source", "test://ball?frames=5&realtime=false"])
        .arg("--strategy")
        .arg(common::strategy("yolo_filter"))
        .arg("--model")
        .arg(&truncated)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("truncated.onnx") && text.contains("Fix"), "{text}");

    // Running: the model file of the config is replaced by a truncated one
    // and the config reloaded: the change is refused, everything runs on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("config.yaml");
    let write_config = |model: &Path| {
        std::fs::write(
            &config,
            format!(
                "sources:\n  - {{id: clip, uri: '{}', loop: true, realtime: true}}\n  - {{id: scene, uri: 'scene://?fps=10'}}\n\
                 pipeline:\n  onnx: {{model: '{}'}}\n",
                assets.vtest.display(),
                model.display()
            ),
        )
        .unwrap()
    };
    write_config(&assets.model);
    let mut running = dshost(&dir.path().join("data"))
        .args(["run", "--no-watch", "--config"])
        .arg(&config)
        .args(["--http", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let frames = |id: &str| -> u64 {
        let Ok(response) = ureq::get(&format!("{base}/v1/sources")).call() else { return 0 };
        let listed: Value = response.into_json().unwrap();
        listed["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .map_or(0, |s| s["frames_decoded"].as_u64().unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while frames("clip") < 5 || frames("scene") < 5 {
        assert!(Instant::now() < deadline, "sources did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    write_config(&truncated);
    let response = match ureq::post(&format!("{base}/v1/config/reload")).call() {
        Ok(r) => (r.status(), r.into_json::<Value>().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json::<Value>().unwrap()),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(response.0, 422, "{}", response.1);
    let change = response.1["changes"].as_array().unwrap().iter().find(|c| c["key"] == "pipeline.onnx").cloned();
    let change = change.expect("pipeline.onnx reported");
    assert_eq!(change["result"], "failed");
    assert!(change["detail"].as_str().unwrap().contains("truncated.onnx"), "{change}");
    let (clip, scene) = (frames("clip"), frames("scene"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames("clip") < clip + 10 || frames("scene") < scene + 10 {
        assert!(Instant::now() < deadline, "the sources stopped after the refused change");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = running.kill();
    let _ = running.wait();
}
