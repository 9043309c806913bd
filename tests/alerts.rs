//! Alerts end to end: throttle counts from a scripted detection stream, the
//! journal, and delivery to real sinks on 127.0.0.1 (a local HTTP server
//! for the webhook, mosquitto, nats-server with JetStream), including broker
//! outages mid-burst and a dshost killed with SIGKILL.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::alert_path::{dshost, journal_json, start, AlertPath};
use common::brokers::{free_port, Mosquitto, MqttSubscriber, NatsServer};
use dshost::alerts::journal::{DeliveryState, EntryFilter, JournalReader};
use dshost::alerts::{Alert, AlertBox, AlertLevel};
use hmac::{Hmac, Mac};
use serde_json::Value;

const FRAME_NS: u64 = 33_333_333;

fn alert(strategy: &str, frame: u64, pattern: &str, object_id: Option<u64>, confidence: f32) -> Alert {
    Alert {
        id: format!("{strategy}-{frame:04}-{pattern}-{}", object_id.map_or(-1, |id| id as i64)),
        ts: "2026-11-26T10:00:00.000Z".into(),
        source: "cam-1".into(),
        frame,
        pts_ns: frame * FRAME_NS,
        strategy: strategy.into(),
        strategy_version: "0.1.0+sha256:00000000".into(),
        pattern: pattern.into(),
        confidence,
        bbox: AlertBox { left: 10.0, top: 20.0, width: 30.0, height: 40.0 },
        object_id,
        level: AlertLevel::Medium,
        attributes: BTreeMap::new(),
        snapshot: None,
    }
}

fn jsonl_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn throttle_counts_from_a_scripted_detection_stream() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alerts.jsonl");
    let running = start(
        &format!(
            "  throttle: {{cooldown_seconds: 0}}
  strategies:
    loiter: {{cooldown_seconds: 5}}
    confident: {{min_confidence: 0.5, levels: {{car: critical}}}}
    bursty: {{burst: {{window_seconds: 2, threshold: 5}}}}
    limited: {{max_alerts_per_minute: 10}}
  sinks:
    - {{type: jsonl, name: file, path: '{}'}}
",
            out.display()
        ),
        &dir.path().join("alerts.db"),
    );
    // Ten seconds of 30 fps video, detections in frame order.
    for frame in 0..300u64 {
        // One person loitering the whole time, a second from frame 200.
        running.sender.send(alert("loiter", frame, "person", Some(1), 0.9)).unwrap();
        if frame >= 200 {
            running.sender.send(alert("loiter", frame, "person", Some(2), 0.9)).unwrap();
        }
        // Every 10th frame a car, alternately below and above 0.5.
        if frame % 10 == 0 {
            let confidence = if (frame / 10) % 2 == 0 { 0.3 } else { 0.8 };
            running.sender.send(alert("confident", frame, "car", Some(frame), confidence)).unwrap();
        }
        // A burst of 30 untracked bags within one second, then one more later.
        if (30..60).contains(&frame) || frame == 120 {
            running.sender.send(alert("bursty", frame, "bag", None, 0.9)).unwrap();
        }
        // 40 different dogs at once: the token bucket lets 10 through.
        if frame < 40 {
            running.sender.send(alert("limited", frame, "dog", Some(frame), 0.9)).unwrap();
        }
    }
    let (admitted, stats) = running.finish();

    // loiter: person 1 at frames 0 and 151 (frame 150 is 4.99999995 s after 0),
    // person 2 at frame 200; confident: the 15 above 0.5; bursty: 5 through,
    // the collapsed alert (25) when frame 120 closes the window, and frame 120;
    // limited: 10.
    assert_eq!(admitted, 3 + 15 + 7 + 10);
    let suppressed: BTreeMap<&str, u64> =
        dshost::alerts::Suppression::ALL.iter().map(|r| (r.as_str(), stats.suppressed(*r))).collect();
    assert_eq!(
        suppressed,
        BTreeMap::from([("cooldown", 298 + 99), ("min_confidence", 15), ("burst", 25), ("rate_limit", 30)])
    );

    let lines: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 35);
    let frames_of = |strategy: &str| -> Vec<u64> {
        lines.iter().filter(|l| l["strategy"] == strategy).map(|l| l["frame"].as_u64().unwrap()).collect()
    };
    assert_eq!(frames_of("loiter"), vec![0, 151, 200]);
    assert_eq!(frames_of("bursty"), vec![30, 31, 32, 33, 34, 35, 120]);
    let collapsed: Vec<&Value> = lines.iter().filter(|l| l["attributes"]["burst_count"].is_string()).collect();
    assert_eq!(collapsed.len(), 1);
    assert_eq!(collapsed[0]["attributes"]["burst_count"], "25");
    assert_eq!(collapsed[0]["frame"], 35, "the first collapsed alert carries the count");
    assert!(lines.iter().filter(|l| l["strategy"] == "confident").all(|l| l["level"] == "critical"));

    // Every admitted alert was journaled and is marked delivered.
    let entries = JournalReader::open(&dir.path().join("alerts.db")).unwrap().entries(&EntryFilter::default()).unwrap();
    assert_eq!(entries.len(), 35);
    assert!(entries.iter().all(|e| e.delivery["file"].state == DeliveryState::Delivered));
    assert_eq!(stats.journaled.load(Ordering::Relaxed), 35);
}

/// Headers (lower-case names) and body of one request.
type Request = (BTreeMap<String, String>, Vec<u8>);

/// A tiny HTTP/1.1 server: answers each POST with the next scripted status
/// (then 200), refuses the pattern `poison` with 400, records every request.
struct WebhookServer {
    port: u16,
    received: Arc<Mutex<Vec<Request>>>,
}

impl WebhookServer {
    fn start(port: u16, first_statuses: Vec<u16>) -> WebhookServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            let mut script = first_statuses.into_iter();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        break;
                    }
                    let mut headers = BTreeMap::new();
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        let (name, value) = line.split_once(':').unwrap();
                        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
                    }
                    let length: usize = headers["content-length"].parse().unwrap();
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let poison = serde_json::from_slice::<Value>(&body).unwrap()["pattern"] == "poison";
                    let status = if poison { 400 } else { script.next().unwrap_or(200) };
                    log.lock().unwrap().push((headers, body));
                    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                    if stream.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            }
        });
        WebhookServer { port, received }
    }

    fn ids(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| serde_json::from_slice::<Value>(body).unwrap()["id"].as_str().unwrap().to_string())
            .collect()
    }
}

#[test]
fn webhook_signs_retries_and_records_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let server = WebhookServer::start(free_port(), vec![503, 503, 429]);
    let running = start(
        &format!(
            "  sinks:
    - type: webhook
      url: http://127.0.0.1:{}/hook
      hmac_secret: s3cret-for-tests
      headers: {{Authorization: Bearer abc}}
      delivery: {{retry_initial_ms: 20, retry_max_ms: 100}}
",
            server.port
        ),
        &dir.path().join("alerts.db"),
    );
    for frame in 0..20 {
        let pattern = if frame == 7 { "poison" } else { "person" };
        running.sender.send(alert("s", frame, pattern, Some(frame), 0.9)).unwrap();
    }
    running.wait_delivered("webhook", 19, Duration::from_secs(30));
    let (_, stats) = running.finish();
    let sink = &stats.sinks()[0];
    assert_eq!(sink.rejected.load(Ordering::Relaxed), 1);
    assert_eq!(sink.failures.load(Ordering::Relaxed), 3, "503, 503 and 429 were retried");

    let received = server.received.lock().unwrap().clone();
    for (headers, body) in &received {
        assert_eq!(headers["authorization"], "Bearer abc");
        assert_eq!(headers["content-type"], "application/json");
        let timestamp = &headers["x-dshost-timestamp"];
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret-for-tests").unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(headers["x-dshost-signature"], format!("sha256={expected}"));
        let id = serde_json::from_slice::<Value>(body).unwrap()["id"].as_str().unwrap().to_string();
        assert_eq!(headers["x-dshost-alert-id"], id);
    }
    let unique: BTreeSet<String> = server.ids().into_iter().collect();
    assert_eq!(unique.len(), 20, "19 delivered + the rejected one, each seen");

    let entries = JournalReader::open(&dir.path().join("alerts.db")).unwrap().entries(&EntryFilter::default()).unwrap();
    let states: Vec<DeliveryState> = entries.iter().map(|e| e.delivery["webhook"].state).collect();
    assert_eq!(states.iter().filter(|s| **s == DeliveryState::Delivered).count(), 19);
    let rejected = entries.iter().find(|e| &*e.alert.pattern == "poison").unwrap();
    assert_eq!(rejected.delivery["webhook"].state, DeliveryState::Rejected);
    assert!(rejected.delivery["webhook"].error.as_deref().unwrap().contains("HTTP 400"));
    assert_eq!(entries[0].delivery["webhook"].attempts, 4, "three refusals, then accepted");
}

/// Sends `count` alerts at about one per millisecond, calling `outage` once
/// `at` of them are out.
fn burst(running: &AlertPath, count: u64, at: u64, outage: impl FnOnce()) -> BTreeSet<String> {
    let mut outage = Some(outage);
    let mut ids = BTreeSet::new();
    for frame in 0..count {
        if frame == at {
            if let Some(outage) = outage.take() {
                outage();
            }
        }
        let alert = alert("burst", frame, "person", Some(frame), 0.9);
        ids.insert(alert.id.clone());
        running.sender.send(alert).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    ids
}

#[test]
fn mqtt_broker_restarted_mid_burst_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path());
    let mut subscriber = MqttSubscriber::start(broker.port, "dshost/#", dir.path().join("received.txt"));
    subscriber.wait_subscribed("dshost/probe");
    let running = start(
        &format!(
            "  sinks:
    - type: mqtt
      address: 127.0.0.1:{}
      topic: dshost/{{source}}/{{pattern}}
      delivery: {{retry_initial_ms: 50, retry_max_ms: 200, timeout_ms: 2000, queue_capacity: 64}}
",
            broker.port
        ),
        &dir.path().join("alerts.db"),
    );
    let sent = burst(&running, 400, 150, || {
        broker.stop();
        std::thread::sleep(Duration::from_millis(700));
        broker.restart();
    });
    running.wait_delivered("mqtt", 400, Duration::from_secs(60));
    let (_, stats) = running.finish();
    assert!(stats.sinks()[0].failures.load(Ordering::Relaxed) > 0, "the outage must have been seen");

    let deadline = Instant::now() + Duration::from_secs(20);
    let received = loop {
        let received: BTreeSet<String> = subscriber
            .lines()
            .iter()
            .filter_map(|line| line.split_once(' '))
            .filter(|(topic, _)| *topic != "dshost/probe")
            .map(|(topic, payload)| {
                assert_eq!(topic, "dshost/cam-1/person");
                serde_json::from_str::<Value>(payload).unwrap()["id"].as_str().unwrap().to_string()
            })
            .collect();
        if received.len() >= sent.len() || Instant::now() > deadline {
            break received;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let missing: Vec<&String> = sent.difference(&received).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} of {} alerts never arrived, e.g. {missing:?}",
        sent.len() - received.len(),
        sent.len()
    );
    let entries = JournalReader::open(&dir.path().join("alerts.db")).unwrap().entries(&EntryFilter::default()).unwrap();
    assert!(entries.iter().all(|e| e.delivery["mqtt"].state == DeliveryState::Delivered));
}

/// Every alert id in a JetStream stream, in stream order, read with
/// async-nats on a connection of its own.
fn jetstream_ids(url: &str, stream: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let jetstream = async_nats::jetstream::new(client);
        let mut stream = jetstream.get_stream(stream).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut ids = Vec::new();
        for seq in state.first_sequence..=state.last_sequence {
            let message = stream.get_raw_message(seq).await.unwrap();
            ids.push(serde_json::from_slice::<Value>(&message.payload).unwrap()["id"].as_str().unwrap().to_string());
        }
        ids
    })
}

#[test]
fn nats_jetstream_killed_mid_burst_loses_nothing_and_stores_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = NatsServer::start(dir.path());
    let running = start(
        &format!(
            "  sinks:
    - type: nats
      url: {}
      subject: dshost.alerts.{{source}}.{{pattern}}
      stream: ALERTS
      create_stream: true
      delivery: {{retry_initial_ms: 50, retry_max_ms: 200, timeout_ms: 2000, queue_capacity: 64}}
",
            server.url()
        ),
        &dir.path().join("alerts.db"),
    );
    // Down for longer than the sink's acknowledgement timeout (2 s) while
    // alerts keep coming, so a publish must fail: async-nats reconnects and
    // resends by itself, and a shorter outage can pass unseen.
    let sent = burst(&running, 400, 150, || server.kill());
    std::thread::sleep(Duration::from_millis(3000));
    server.restart();
    running.wait_delivered("nats", 400, Duration::from_secs(60));
    let (_, stats) = running.finish();
    assert!(stats.sinks()[0].failures.load(Ordering::Relaxed) > 0, "the outage must have been seen");
    let stored = jetstream_ids(&server.url(), "ALERTS");
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(unique, sent, "every alert is in the stream");
    assert_eq!(stored.len(), unique.len(), "Nats-Msg-Id de-duplicated the redeliveries");
}

#[test]
fn sigkill_mid_run_loses_nothing_that_was_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let hook_port = free_port();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "sources:
  - id: street
    uri: scene://?seed=3&width=640&height=360&fps=30
strategies:
  - name: yolo_filter
    path: {}
    config: {{classes: [person, bicycle, car], min_confidence: 0.5}}
alerts:
  sinks:
    - type: webhook
      url: http://127.0.0.1:{hook_port}/hook
      delivery: {{retry_initial_ms: 50, retry_max_ms: 200}}
    - type: jsonl
      path: {}
",
            common::strategy("yolo_filter").display(),
            dir.path().join("alerts.jsonl").display()
        ),
    )
    .unwrap();
    // First run: the webhook is down, so its deliveries pile up in the journal.
    let mut first = dshost(&data_dir)
        .args(["run", "--no-watch", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let journaled = data_dir.join("alerts.db").exists() && journal_json(&data_dir).len() >= 30;
        if journaled {
            break;
        }
        assert!(Instant::now() < deadline, "no alerts journaled within a minute");
        std::thread::sleep(Duration::from_millis(200));
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let accepted = journal_json(&data_dir);
    let accepted_ids: BTreeSet<String> = accepted.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    assert!(accepted.iter().all(|e| e["delivery"]["webhook"]["state"] == "pending"));
    // What the JSON-lines sink had written before the kill is marked so.
    let written: BTreeSet<String> = jsonl_ids(&dir.path().join("alerts.jsonl")).into_iter().collect();
    assert!(!written.is_empty());

    // Second run, webhook up: a short scene, and the backlog goes out first.
    let server = WebhookServer::start(hook_port, Vec::new());
    let second = dshost(&data_dir)
        .args(["run", "--no-watch", "--config"])
        .arg(&config)
        .args(["--source", "scene://?seed=4&width=640&height=360&fps=30&realtime=false&frames=10"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let hooked: BTreeSet<String> = server.ids().into_iter().collect();
    let missing: Vec<&String> = accepted_ids.difference(&hooked).take(5).collect();
    assert!(missing.is_empty(), "accepted before SIGKILL but never delivered: {missing:?}");
    let after = journal_json(&data_dir);
    for entry in after.iter().filter(|e| accepted_ids.contains(e["id"].as_str().unwrap())) {
        assert_eq!(entry["delivery"]["webhook"]["state"], "delivered", "{entry}");
        assert_eq!(entry["delivery"]["jsonl"]["state"], "delivered", "{entry}");
    }
    // At-least-once to the file too: every accepted alert is in it (some twice).
    let written: BTreeSet<String> = jsonl_ids(&dir.path().join("alerts.jsonl")).into_iter().collect();
    assert!(accepted_ids.is_subset(&written));

    // `alerts tail` shows delivery states.
    let tail = dshost(&data_dir).args(["alerts", "tail", "--no-follow", "-n", "3"]).output().unwrap();
    let text = String::from_utf8_lossy(&tail.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().all(|l| l.contains("webhook=delivered") && l.contains("jsonl=delivered")), "{text}");
}

#[test]
fn an_unwritable_journal_is_loud_and_alerts_still_flow() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let out = dir.path().join("alerts.jsonl");
    let summary = dir.path().join("summary.json");
    let output = dshost(&dir.path().join("data"))
        .args(["run", "--no-watch", "--source", "scene://?seed=3&width=640&height=360&realtime=false&frames=60"])
        .arg("--strategy")
        .arg(common::strategy("yolo_filter"))
        .arg("--alerts-jsonl")
        .arg(&out)
        .arg("--summary-json")
        .arg(&summary)
        .env("DSHOST_ALERTS__JOURNAL__PATH", blocker.join("alerts.db"))
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("ALERT JOURNAL FAILING"), "{stderr}");
    assert!(stderr.contains("not-a-dir"), "the error names the journal: {stderr}");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert!(summary["journal"]["errors"].as_u64().unwrap() >= 1);
    let alerts = summary["alerts"].as_u64().unwrap();
    assert!(alerts > 0);
    assert_eq!(jsonl_ids(&out).len() as u64, alerts, "every alert still reached the file");
}

#[test]
fn validate_config_checks_sinks_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "sources: [{id: a, uri: 'scene://'}]
alerts:
  sinks:
    - type: mqtt
      address: nowhere
      topic: 'a/#'
    - type: webhook
      url: 'ftp://x'
    - type: nats
      url: nats://127.0.0.1:1
      create_stream: true
    - type: mqtt
      address: 127.0.0.1:1
",
    )
    .unwrap();
    let output = Command::new(common::dshost_bin()).arg("validate-config").arg(&path).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "alerts.sinks[0].address",
        "alerts.sinks[0].topic",
        "alerts.sinks[1].url",
        "alerts.sinks[2].create_stream",
        "alerts.sinks[3].name",
    ] {
        assert!(stderr.contains(needle), "missing {needle} in:\n{stderr}");
    }
    // Nothing listens on port 1: a valid config must pass without connecting.
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "sources: [{id: a, uri: 'scene://'}]\nalerts:\n  sinks:\n    - {type: nats, url: 'nats://127.0.0.1:1', stream: S, create_stream: true}\n",
    )
    .unwrap();
    let output = Command::new(common::dshost_bin()).arg("validate-config").arg(&good).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
