//! Alert evidence with the real binary: every alert of a run carries a
//! snapshot of its own frame, on disk, in the journal and over HTTP. The
//! pictures are decoded by GStreamer's `jpegdec` (not by dshost) and checked
//! against the synthetic scene's ground truth: the scene paints each person
//! as a block of luma 235 on a background of at most 120, at the box the
//! alert carries, in the frame the alert names. The sinks carry the same
//! pictures: a webhook as multipart/form-data (parsed by Python's standard
//! MIME parser), mosquitto as a retained `<topic>/snapshot` message, and
//! nats-server's JetStream object store.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Decodes a JPEG with GStreamer into (width, height, packed RGB).
fn decode(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(
        "appsrc name=src caps=image/jpeg ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    src.push_buffer(gst::Buffer::from_slice(jpeg.to_vec())).unwrap();
    src.end_of_stream().unwrap();
    let sample = sink.pull_sample().expect("jpegdec decoded nothing");
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer().unwrap(), &info).unwrap();
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).unwrap();
    let (w, h) = (info.width() as usize, info.height() as usize);
    let mut pixels = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        pixels.extend_from_slice(&data[y * stride..y * stride + w * 3]);
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (w, h, pixels)
}

fn brightness(pixels: &[u8], width: usize, x: usize, y: usize) -> u32 {
    let at = (y * width + x) * 3;
    (u32::from(pixels[at]) + u32::from(pixels[at + 1]) + u32::from(pixels[at + 2])) / 3
}

fn get(url: &str) -> (u16, Vec<u8>) {
    match ureq::get(url).call() {
        Ok(response) => {
            let status = response.status();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
            (status, bytes)
        }
        Err(ureq::Error::Status(code, _)) => (code, Vec::new()),
        Err(e) => panic!("{e}"),
    }
}

fn alerts(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// The street scene through `yolo_filter` (every person), throttled to one
/// alert per object every 2 s, with 640-pixel snapshots; `sinks` is the
/// YAML of `alerts.sinks` entries (each line indented for it), or empty.
fn scene_config(sinks: &str) -> String {
    format!(
        "sources:\n  - {{id: street, uri: 'scene://?seed=5&width=640&height=360&fps=30'}}\n\
         strategies:\n  - path: {}\n    config: {{classes: [person], min_confidence: 0.0}}\n\
         alerts:\n  throttle: {{cooldown_seconds: 2}}\n  snapshots: {{max_width: 640}}\n{}",
        common::strategy("yolo_filter").display(),
        if sinks.is_empty() { String::new() } else { format!("  sinks:\n{sinks}") }
    )
}

#[test]
fn every_alert_carries_a_snapshot_of_its_own_frame() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let alerts_path = dir.path().join("alerts.jsonl");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, scene_config("")).unwrap();
    let mut dshost = Command::new(common::dshost_bin())
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["run", "--no-watch", "--config"])
        .arg(&config)
        .arg("--alerts-jsonl")
        .arg(&alerts_path)
        .args(["--http", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(90);
    while alerts(&alerts_path).len() < 6 {
        assert!(Instant::now() < deadline, "fewer than 6 alerts within 90 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The console's live thumbnail: the newest frame, 320 wide.
    let (status, thumbnail) = get(&format!("{base}/v1/sources/street/thumbnail.jpg"));
    assert_eq!(status, 200);
    assert_eq!(decode(&thumbnail).0, 320);
    assert_eq!(get(&format!("{base}/v1/sources/nowhere/thumbnail.jpg")).0, 404);

    let written = alerts(&alerts_path);
    let mut checked = 0;
    for alert in &written {
        let id = alert["id"].as_str().unwrap();
        let snapshot = &alert["snapshot"];
        assert!(snapshot.is_object(), "alert without a snapshot: {alert}");
        assert_eq!((snapshot["width"].as_u64(), snapshot["height"].as_u64()), (Some(640), Some(360)), "{alert}");
        let bytes = std::fs::read(snapshot["path"].as_str().unwrap()).expect("the snapshot file");
        let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(snapshot["sha256"], digest.as_str(), "{alert}");
        // Served as it is on disk.
        let (status, served) = get(&format!("{base}/v1/alerts/{id}/snapshot.jpg"));
        assert_eq!((status, served == bytes), (200, true), "{id}");
        let (status, crop) = get(&format!("{base}/v1/alerts/{id}/crop.jpg"));
        assert_eq!(status, 200, "{id}");

        let (w, h, pixels) = decode(&bytes);
        assert_eq!((w, h), (640, 360));
        let (left, top) = (alert["bbox"]["left"].as_f64().unwrap(), alert["bbox"]["top"].as_f64().unwrap());
        let (bw, bh) = (alert["bbox"]["width"].as_f64().unwrap(), alert["bbox"]["height"].as_f64().unwrap());
        let mid_y = (top + bh / 2.0) as usize;
        // People entering or leaving at an edge are a few pixels wide, under
        // the drawn box lines: only whole people are looked at.
        if bw < 16.0 || left < 8.0 || left + bw > w as f64 - 8.0 {
            continue;
        }
        // The person is where the alert says, in this very frame: inside its
        // box the scene's bright block, just outside its side edges the
        // background (a person from a later frame would have moved: the
        // scene's people walk 2-6 px a frame at this size).
        let inside = brightness(&pixels, w, (left + bw / 2.0) as usize, mid_y);
        assert!(inside > 200, "{id}: box centre brightness {inside}");
        let x_in = (left + 4.0) as usize;
        let edge_in = brightness(&pixels, w, x_in.min(w - 1), mid_y);
        assert!(edge_in > 200, "{id}: 4 px inside the left edge {edge_in}");
        let edge_out = brightness(&pixels, w, (left - 5.0) as usize, mid_y);
        // Another object may stand right beside it; count only clean cases.
        if edge_out < 150 {
            checked += 1;
        }
        // The crop is the object: mostly bright.
        let (cw, ch, crop_pixels) = decode(&crop);
        assert!(cw >= bw as usize / 2 && ch >= bh as usize / 2, "{id}: crop {cw}x{ch}");
        assert!(brightness(&crop_pixels, cw, cw / 2, ch / 2) > 200, "{id}: crop centre");
    }
    assert!(checked * 3 >= written.len(), "background just outside the box in only {checked} of {}", written.len());

    let _ = Command::new("kill").args(["-INT", &dshost.id().to_string()]).status();
    assert!(dshost.wait().unwrap().success());
    // The journal holds each alert's snapshot too.
    let output = Command::new(common::dshost_bin())
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["alerts", "list", "--json"])
        .output()
        .unwrap();
    let journaled: Vec<Value> =
        String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for alert in &written {
        let entry = journaled.iter().find(|e| e["id"] == alert["id"]).expect("journaled");
        assert_eq!(entry["snapshot"]["sha256"], alert["snapshot"]["sha256"], "{entry}");
    }
}

/// The pictures travel with the alerts through the sinks, byte for byte
/// what the alert's `snapshot.sha256` names.
#[test]
fn sinks_carry_the_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let alerts_path = dir.path().join("alerts.jsonl");
    let received = dir.path().join("received");
    let webhook_port = common::brokers::free_port();
    let mut receiver = Command::new("python3")
        .arg(common::repo_root().join("tests/tools/multipart_receiver.py"))
        .arg(webhook_port.to_string())
        .arg(&received)
        .spawn()
        .expect("python3");
    common::brokers::wait_for_port(webhook_port, Duration::from_secs(10));
    let mqtt_dir = dir.path().join("mqtt");
    std::fs::create_dir_all(&mqtt_dir).unwrap();
    let mosquitto = common::brokers::Mosquitto::start(&mqtt_dir);
    let nats_dir = dir.path().join("nats");
    std::fs::create_dir_all(&nats_dir).unwrap();
    let nats = common::brokers::NatsServer::start(&nats_dir);
    let config = dir.path().join("config.yaml");
    let sinks = format!(
        "    - {{type: webhook, name: hook, url: 'http://127.0.0.1:{webhook_port}/alerts', snapshot: multipart}}\n\
         \x20   - {{type: mqtt, name: mqtt, address: '127.0.0.1:{}', topic: 'cams/{{source}}/{{pattern}}', snapshots: true}}\n\
         \x20   - {{type: nats, name: nats, url: '{}', subject: 'cams.{{source}}.{{pattern}}', stream: CAMS, create_stream: true, snapshot_bucket: cam-snapshots}}\n",
        mosquitto.port,
        nats.url(),
    );
    std::fs::write(&config, scene_config(&sinks)).unwrap();
    let mut dshost = Command::new(common::dshost_bin())
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["run", "--no-watch", "--config"])
        .arg(&config)
        .arg("--alerts-jsonl")
        .arg(&alerts_path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while alerts(&alerts_path).len() < 4 {
        assert!(Instant::now() < deadline, "fewer than 4 alerts within 90 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").args(["-INT", &dshost.id().to_string()]).status();
    assert!(dshost.wait().unwrap().success());
    let written = alerts(&alerts_path);
    let with_picture: Vec<&Value> = written.iter().filter(|a| a["snapshot"].is_object()).collect();
    assert!(with_picture.len() >= 4, "{written:?}");

    // Webhook: one multipart request per alert; the snapshot part is the
    // file the alert names, a JPEG of the stated size, and the crop is there.
    let requests: Vec<Value> = std::fs::read_to_string(received.join("requests.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let _ = receiver.kill();
    let _ = receiver.wait();
    for alert in &with_picture {
        let request = requests
            .iter()
            .find(|r| r["alert"]["id"] == alert["id"])
            .unwrap_or_else(|| panic!("the webhook never got {}", alert["id"]));
        assert!(request["content_type"].as_str().unwrap().starts_with("multipart/form-data; boundary="));
        let part = &request["parts"]["snapshot"];
        assert_eq!(part["type"], "image/jpeg");
        assert_eq!(part["sha256"], alert["snapshot"]["sha256"], "{request}");
        let bytes = std::fs::read(part["path"].as_str().unwrap()).unwrap();
        assert_eq!(decode(&bytes).0, 640);
        let crop = &request["parts"]["crop"];
        assert_eq!(crop["type"], "image/jpeg", "{request}");
        let crop_file = std::fs::read(alert["snapshot"]["crop"].as_str().unwrap()).unwrap();
        let crop_digest: String = Sha256::digest(&crop_file).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(crop["sha256"], crop_digest.as_str());
    }

    // MQTT: the retained snapshot is the last alert's picture.
    let last = with_picture.last().unwrap();
    let retained = Command::new("mosquitto_sub")
        .args(["-p", &mosquitto.port.to_string(), "-t", "cams/street/person/snapshot", "-C", "1", "-N", "-W", "10"])
        .output()
        .expect("mosquitto_sub");
    let digest: String = Sha256::digest(&retained.stdout).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, last["snapshot"]["sha256"].as_str().unwrap(), "retained snapshot");

    // NATS: each alert message names its objects, and the objects are the
    // pictures.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let jetstream = async_nats::jetstream::new(client);
        let stream = jetstream.get_stream("CAMS").await.unwrap();
        let bucket = jetstream.get_object_store("cam-snapshots").await.unwrap();
        let (first, last_seq) = {
            let mut stream = stream.clone();
            let state = stream.info().await.unwrap().state.clone();
            (state.first_sequence, state.last_sequence)
        };
        let mut seen = 0;
        for seq in first..=last_seq {
            let message = stream.get_raw_message(seq).await.unwrap();
            let alert: Value = serde_json::from_slice(&message.payload).unwrap();
            let Some(expected) = alert["snapshot"]["sha256"].as_str() else { continue };
            let headers = message.headers;
            assert_eq!(headers.get("Dshost-Snapshot-Bucket").map(|v| v.as_str()), Some("cam-snapshots"));
            let name = headers.get("Dshost-Snapshot").unwrap().as_str().to_string();
            assert_eq!(name, format!("{}.jpg", alert["id"].as_str().unwrap()));
            let mut object = bucket.get(&name).await.unwrap();
            let mut bytes = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut object, &mut bytes).await.unwrap();
            let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(digest, expected, "object {name}");
            assert!(headers.get("Dshost-Crop").is_some());
            seen += 1;
        }
        assert!(seen >= with_picture.len(), "{seen} NATS alerts with pictures for {} alerts", with_picture.len());
    });
}
