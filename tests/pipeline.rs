//! The main job end to end: the real `dshost` binary on real encoded video
//! (generated with GStreamer in the test setup), the synthetic scene, and the
//! motion detector checked against an independent measurement.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::media::{clip, gst_launch, CLIPS, CLIP_FRAMES};
use dshost::pipeline::scene::Scene;
use dshost::pipeline::uri::SyntheticFormat;
use serde_json::Value;

fn dshost(args: &[&str]) -> Output {
    Command::new(common::dshost_bin())
        .arg("--data-dir")
        .arg(common::repo_root().join("target/test-cache/pipeline-data"))
        .args(args)
        .env("DSHOST_ALERTS__JOURNAL__PATH", common::unique_journal())
        .env("RUST_LOG", "warn")
        .output()
        .expect("cannot run dshost")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn four_files_of_two_codecs_and_sizes_decode_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let yolo = common::strategy("yolo_filter");
    let mut args = vec![
        "--strategy".to_string(),
        yolo.to_string_lossy().into_owned(),
        "--summary-json".to_string(),
        summary.to_string_lossy().into_owned(),
        "--alerts-jsonl".to_string(),
        dir.path().join("alerts.jsonl").to_string_lossy().into_owned(),
    ];
    for c in CLIPS {
        args.push("--source".into());
        args.push(clip(c.name).to_string_lossy().into_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = dshost(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = read_json(&summary);
    let sources = summary["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 4);
    for source in sources {
        assert_eq!(source["frames_decoded"], CLIP_FRAMES, "{source}");
        assert_eq!(source["frames_to_strategies"], CLIP_FRAMES, "{source}");
        assert_eq!(source["frames_dropped"]["strategy_backlog"], 0, "{source}");
        assert_eq!(source["state"], "ended", "{source}");
        assert_eq!(source["restarts"], 0, "{source}");
    }
    // One summary line per source on stderr.
    assert_eq!(stderr(&output).lines().filter(|l| l.starts_with("summary source-")).count(), 4);
    let calls: u64 = summary["strategies"].as_array().unwrap().iter().map(|s| s["calls"].as_u64().unwrap()).sum();
    assert_eq!(calls, 4 * CLIP_FRAMES, "yolo_filter saw every frame of every source");
}

#[test]
fn scene_alerts_through_yolo_filter_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 150;
    let config = write(
        dir.path(),
        "scene.yaml",
        &format!(
            "sources:\n  - id: street\n    uri: scene://?seed=3&width=960&height=540&fps=30&frames={frames}&realtime=false\n\
             strategies:\n  - path: {}\n    config: {{min_confidence: 0.0}}\n",
            common::strategy("yolo_filter").display()
        ),
    );
    let output = dshost(&["run", "--config", &config, "--alerts-jsonl", "-"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let got: BTreeSet<String> = json_lines(&String::from_utf8_lossy(&output.stdout))
        .iter()
        .map(|a| {
            assert_eq!(a["source"], "street");
            assert_eq!(a["strategy"], "yolo_filter");
            format!(
                "{} {} {} {:.4} {} {} {} {}",
                a["frame"],
                a["object_id"],
                a["pattern"].as_str().unwrap(),
                a["confidence"].as_f64().unwrap(),
                a["bbox"]["left"],
                a["bbox"]["top"],
                a["bbox"]["width"],
                a["bbox"]["height"]
            )
        })
        .collect();
    let scene =
        Scene::new(3, SyntheticFormat { width: 960, height: 540, fps: 30, realtime: false, frames: Some(frames) });
    let mut pixels = Vec::new();
    let mut expected = BTreeSet::new();
    for n in 0..frames {
        for (object, (x, y, w, h)) in scene.render(n, &mut pixels) {
            expected.insert(format!(
                "{n} {} {} {:.4} {:.1} {:.1} {:.1} {:.1}",
                object.id, object.label, object.confidence, x as f64, y as f64, w as f64, h as f64
            ));
        }
    }
    assert!(expected.len() > 50, "the scene must have objects to check");
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} alerts missing (first: {missing:?}), {} unexpected (first: {extra:?})",
        expected.difference(&got).count(),
        got.difference(&expected).count()
    );
}

#[test]
fn motion_detector_finds_the_moving_ball() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 60usize;
    let (width, height) = (320usize, 240usize);
    // Independent truth: the ball's centroid in raw grey frames.
    let raw = dir.path().join("ball.gray");
    gst_launch(&format!(
        "videotestsrc pattern=ball num-buffers={frames} ! video/x-raw,width={width},height={height},format=GRAY8,framerate=30/1 ! filesink location={}",
        raw.display()
    ));
    let pixels = std::fs::read(&raw).unwrap();
    let centroids: Vec<(f64, f64)> = pixels
        .chunks_exact(width * height)
        .map(|frame| {
            let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
            for (i, &v) in frame.iter().enumerate() {
                if v > 128 {
                    sx += (i % width) as f64;
                    sy += (i / width) as f64;
                    n += 1.0;
                }
            }
            (sx / n, sy / n)
        })
        .collect();

    let config = write(dir.path(), "motion.yaml", "pipeline:\n  detector: motion\n");
    let out = dir.path().join("frames.jsonl");
    let output = dshost(&[
        "record",
        "--source",
        &format!("test://ball?width={width}&height={height}&frames={frames}&realtime=false"),
        "--config",
        &config,
        "--frames-out",
        &out.to_string_lossy(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let recorded = json_lines(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(recorded.len(), frames);
    let mut hits = 0;
    for line in &recorded[2..] {
        let n = line["frame"].as_u64().unwrap() as usize;
        let (cx, cy) = centroids[n];
        let found = line["objects"].as_array().unwrap().iter().any(|o| {
            let (l, t) = (o["left"].as_f64().unwrap(), o["top"].as_f64().unwrap());
            let (w, h) = (o["width"].as_f64().unwrap(), o["height"].as_f64().unwrap());
            assert_eq!(o["label"], "motion");
            cx >= l - 4.0 && cx <= l + w + 4.0 && cy >= t - 4.0 && cy <= t + h + 4.0 && w < 120.0 && h < 120.0
        });
        hits += usize::from(found);
    }
    assert!(hits * 10 >= (frames - 2) * 9, "ball found in {hits} of {} frames", frames - 2);
    // Tracked: the ball keeps one id over most frames.
    let ids: BTreeSet<u64> = recorded
        .iter()
        .flat_map(|l| l["objects"].as_array().unwrap().iter().map(|o| o["object_id"].as_u64().unwrap()))
        .collect();
    assert!(ids.len() < frames / 4, "the tracker should keep ids stable, got {} ids", ids.len());
}

#[test]
fn bad_sources_and_configs_are_refused_with_the_reason() {
    let missing = dshost(&[
        "--source",
        "/nonexistent/clip.mp4",
        "--strategy",
        &common::strategy("yolo_filter").to_string_lossy(),
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("file not found: /nonexistent/clip.mp4"), "{}", stderr(&missing));

    let scheme = dshost(&["--source", "gopher://x/y"]);
    assert!(stderr(&scheme).contains("unsupported scheme `gopher`"), "{}", stderr(&scheme));

    // A camera with a password that is really started (nothing listens on
    // port 1, so it is tried and retried), logged at debug level.
    let password = Command::new(common::dshost_bin())
        .arg("--data-dir")
        .arg(common::repo_root().join("target/test-cache/pipeline-data"))
        .args(["--source", "rtsp://admin:hunter2@127.0.0.1:1/x", "--duration", "1.5", "--strategy"])
        .arg(common::strategy("yolo_filter"))
        .env("DSHOST_ALERTS__JOURNAL__PATH", common::unique_journal())
        .env("RUST_LOG", "debug")
        .output()
        .expect("cannot run dshost");
    let log = stderr(&password);
    assert!(password.status.success(), "{log}");
    assert!(log.contains("starting source") && log.contains("rtsp://admin:***@127.0.0.1:1/x"), "{log}");
    assert!(log.contains("restarting source"), "the camera must have been tried: {log}");
    assert!(!log.contains("hunter2"), "passwords never reach the log: {log}");

    let dir = tempfile::tempdir().unwrap();
    let broken = write(
        dir.path(),
        "broken.yaml",
        "sources:\n  - id: a\n    uri: test://nope\n  - id: a\n    uri: test://ball\npipeline:\n  queue_depth: 0\n",
    );
    let output = dshost(&["validate-config", &broken]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("has 3 errors"), "{text}");
    assert!(text.contains("broken.yaml:3: `sources[0].uri`: unknown test pattern `nope`"), "{text}");
    assert!(text.contains("broken.yaml:4: `sources[1].id`: duplicate source id `a`"), "{text}");
    assert!(text.contains("broken.yaml:7: `pipeline.queue_depth`"), "{text}");
}

#[test]
fn example_configs_are_valid() {
    // The examples reference target/strategies, which exist once built.
    common::strategies_dir();
    for name in ["default.yaml", "production.yaml", "testing.yaml"] {
        let path = common::repo_root().join("configs").join(name);
        let output = Command::new(common::dshost_bin())
            .current_dir(common::repo_root())
            .args(["validate-config", &path.to_string_lossy()])
            .output()
            .unwrap();
        assert!(output.status.success(), "{name}: {}", stderr(&output));
    }
}

#[test]
fn sources_are_added_and_removed_at_run_time_without_disturbing_others() {
    use dshost::config::{PipelineConfig, RecoveryConfig, SourceConfig};
    use dshost::frame::LabelTable;
    use dshost::frame::SourceState;
    use dshost::pipeline::SourceSpec;
    use dshost::runtime::{Runtime, RuntimeSettings};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let (sender, _alerts) = std::sync::mpsc::channel();
    let settings = RuntimeSettings {
        pipeline: PipelineConfig::default(),
        recovery: RecoveryConfig::default(),
        labels: Arc::new(LabelTable::coco()),
        rings: None,
        detector: None,
    };
    let runtime = Runtime::new(common::engine(), settings, Vec::new(), sender).unwrap();
    let spec = |id: &str| {
        let config = SourceConfig {
            id: id.to_string(),
            uri: "test://ball?width=160&height=120&fps=30".to_string(),
            loop_file: false,
            realtime: true,
            rtsp: Default::default(),
            detector: None,
            decoder: None,
            detect: None,
            device_id: None,
        };
        SourceSpec::from_config(&config, dshost::config::DetectorKind::Motion).unwrap()
    };
    let frames = |id: &str| runtime.summaries().into_iter().find(|s| s.id == id).map(|s| s.frames_decoded);
    let wait_until = |what: &str, condition: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    runtime.add_source(spec("a")).unwrap();
    wait_until("frames from a", &|| frames("a").unwrap_or(0) > 5);
    runtime.add_source(spec("b")).unwrap();
    assert!(matches!(runtime.add_source(spec("b")), Err(dshost::runtime::RuntimeError::DuplicateSource(_))));
    wait_until("frames from b", &|| frames("b").unwrap_or(0) > 5);

    let removed = runtime.remove_source("b").unwrap();
    assert_eq!(removed.state, SourceState::Stopped);
    assert_eq!(frames("b"), None);
    let a_before = frames("a").unwrap();
    wait_until("a to keep running after b left", &|| frames("a").unwrap_or(0) > a_before + 10);
    assert!(matches!(runtime.remove_source("b"), Err(dshost::runtime::RuntimeError::UnknownSource(_))));
    let summaries = runtime.shutdown();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].restarts, 0);
}

#[test]
fn the_throttle_turns_a_stream_of_detections_into_one_alert_per_object() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 150;
    let config = write(
        dir.path(),
        "throttled.yaml",
        &format!(
            "sources:\n  - id: street\n    uri: scene://?seed=3&width=960&height=540&fps=30&frames={frames}&realtime=false\n\
             strategies:\n  - path: {}\n    config: {{min_confidence: 0.0}}\n\
             alerts:\n  throttle:\n    cooldown_seconds: 60\n",
            common::strategy("yolo_filter").display()
        ),
    );
    let output = dshost(&["run", "--config", &config, "--alerts-jsonl", "-"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let alerts = json_lines(&String::from_utf8_lossy(&output.stdout));
    let scene =
        Scene::new(3, SyntheticFormat { width: 960, height: 540, fps: 30, realtime: false, frames: Some(frames) });
    let mut pixels = Vec::new();
    let mut detections = 0;
    let mut objects = BTreeSet::new();
    for n in 0..frames {
        for (object, _) in scene.render(n, &mut pixels) {
            detections += 1;
            objects.insert(object.id);
        }
    }
    let alerted: BTreeSet<u64> = alerts.iter().map(|a| a["object_id"].as_u64().unwrap()).collect();
    assert_eq!(alerts.len(), objects.len(), "one alert per object within the cooldown");
    assert_eq!(alerted, objects);
    let summary = stderr(&output);
    assert!(summary.contains(&format!("suppressed: cooldown={}", detections - objects.len())), "{summary}");
}

/// A looping file keeps producing: a 2 s clip of a moving ball, `loop: true`,
/// played as fast as it decodes for several of its lengths; the motion detector's objects keep turning
/// into alerts after every rewind (video time starts over), and every alert
/// keeps an id of its own.
#[test]
fn looping_files_keep_producing_alerts_after_every_rewind() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("ball.mp4");
    gst_launch(&format!(
        "videotestsrc pattern=ball num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 ! h264parse ! mp4mux ! filesink location={}",
        clip.display()
    ));
    let config = write(
        dir.path(),
        "loop.yaml",
        &format!(
            "sources:\n  - {{id: ball, uri: {}, loop: true, detector: motion}}\n\
             strategies:\n  - path: {}\n    config: {{min_confidence: 0.0}}\n\
             alerts:\n  throttle: {{cooldown_seconds: 0.5}}\n",
            clip.display(),
            common::strategy("yolo_filter").display()
        ),
    );
    let alerts_path = dir.path().join("alerts.jsonl");
    let output =
        dshost(&["run", "--config", &config, "--duration", "6", "--alerts-jsonl", &alerts_path.to_string_lossy()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let alerts = json_lines(&std::fs::read_to_string(&alerts_path).unwrap());
    // Each rewind starts video time over: count the plays that alerted.
    let mut plays = 1;
    let mut last_pts = 0;
    for alert in &alerts {
        let pts = alert["pts_ns"].as_u64().unwrap();
        if pts < last_pts {
            plays += 1;
        }
        last_pts = pts;
    }
    // Played as fast as it decodes: many plays in 6 s (5 in a debug build).
    assert!(plays >= 3, "alerts from {plays} plays of the 2 s clip in 6 s: {} alerts", alerts.len());
    let ids: BTreeSet<&str> = alerts.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), alerts.len(), "alert ids repeat across plays");
}
