//! Alert delivery: detection-to-delivery latency (p50/p99) and sustained
//! alerts per second, through the whole alert path (throttle, SQLite
//! journal, sink queue and thread) to a JSON-lines file, a local mosquitto
//! broker and a local nats-server with JetStream, against a baseline
//! measured in the same run: the same sink called directly from the sending
//! thread (no journal, no queue). For NATS, the hand-written client that
//! async-nats replaced (benches/support/nats_handwritten.rs) is measured in
//! the same run too, called directly like the baseline.
//!
//! Latency is measured from handing the alert to dshost to the moment an
//! independent reader sees it: a thread tailing the file, or an MQTT or
//! NATS subscriber on its own connection.
//!
//!     cargo bench -p dshost --bench alerts

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dshost::alerts::sinks::jsonl::{JsonlConfig, JsonlSink};
use dshost::alerts::sinks::mqtt::{MqttConfig, MqttSink};
use dshost::alerts::sinks::nats::{NatsConfig, NatsSink};

#[path = "support/nats_handwritten.rs"]
mod nats_handwritten;
use dshost::alerts::sinks::{PayloadFormat, Sink, SinkConfig};
use dshost::alerts::{
    Alert, AlertBox, AlertLevel, AlertStats, Dispatcher, DispatcherSettings, JournalConfig, Throttle,
};

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

fn alert(n: u64) -> Alert {
    Alert {
        id: format!("{n:032x}"),
        ts: "2026-11-26T10:00:00.000Z".into(),
        source: "cam-1".into(),
        frame: n,
        pts_ns: n * 33_333_333,
        strategy: "yolo_filter".into(),
        strategy_version: "0.1.0+sha256:00000000".into(),
        pattern: "person".into(),
        confidence: 0.9,
        bbox: AlertBox { left: 10.0, top: 20.0, width: 30.0, height: 40.0 },
        object_id: Some(n),
        level: AlertLevel::Medium,
        attributes: Default::default(),
        snapshot: None,
    }
}

fn id_of(json: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    value["id"].as_str().map(str::to_string)
}

/// Tails a JSON-lines file, noting when each id appears.
fn tail_file(path: &Path, seen: Seen, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut file = loop {
            if let Ok(file) = std::fs::File::open(&path) {
                break file;
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_micros(50));
        };
        let mut pending = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        while !stop.load(Ordering::Relaxed) {
            // The file is only appended to: read on from where we were.
            let n = file.read(&mut chunk).unwrap_or(0);
            if n > 0 {
                let now = Instant::now();
                pending.extend_from_slice(&chunk[..n]);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if let Some(id) = id_of(&line) {
                        seen.lock().unwrap().entry(id).or_insert(now);
                    }
                }
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    })
}

/// A QoS 0 MQTT subscriber on its own connection.
fn subscribe(port: u16, seen: Seen, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect subscriber");
    stream.set_nodelay(true).unwrap();
    let connect = [0x10, 0x10, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 4, b'b', b'e', b'n', b'c'];
    stream.write_all(&connect).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    let topic = b"bench/#";
    let mut subscribe = vec![0x82, (2 + 2 + topic.len() + 1) as u8, 0, 1, 0, topic.len() as u8];
    subscribe.extend_from_slice(topic);
    subscribe.push(0);
    stream.write_all(&subscribe).unwrap();
    let mut suback = [0u8; 5];
    stream.read_exact(&mut suback).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            let n = match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => continue,
            };
            let now = Instant::now();
            buffer.extend_from_slice(&chunk[..n]);
            // Parse whole packets: fixed header, remaining length, body.
            loop {
                if buffer.len() < 2 {
                    break;
                }
                let (mut length, mut shift, mut at) = (0usize, 0, 1);
                let mut complete = false;
                while at < buffer.len() {
                    let byte = buffer[at];
                    length |= ((byte & 0x7f) as usize) << shift;
                    at += 1;
                    if byte & 0x80 == 0 {
                        complete = true;
                        break;
                    }
                    shift += 7;
                }
                if !complete || buffer.len() < at + length {
                    break;
                }
                let packet: Vec<u8> = buffer.drain(..at + length).collect();
                if packet[0] >> 4 == 3 {
                    let body = &packet[at..];
                    let topic_len = u16::from_be_bytes([body[0], body[1]]) as usize;
                    if let Some(id) = id_of(&body[2 + topic_len..]) {
                        seen.lock().unwrap().entry(id).or_insert(now);
                    }
                }
            }
        }
    })
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

struct Result {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
    per_second: f64,
}

/// Paced latency run, then a flat-out throughput run.
fn measure(paced: usize, flat_out: usize, send: &mut dyn FnMut(Alert), seen: &Seen) -> Result {
    let mut sent = HashMap::new();
    let start = Instant::now();
    for n in 0..paced as u64 {
        // 500 alerts a second: a busy site, far below saturation.
        let due = start + Duration::from_micros(2000 * n);
        // Sleep, not spin: on two cores a spinning sender would compete
        // with the threads being measured.
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let alert = alert(n);
        sent.insert(alert.id.clone(), Instant::now());
        send(alert);
    }
    wait_for(seen, paced);
    let seen_now = seen.lock().unwrap().clone();
    let mut latencies: Vec<Duration> =
        sent.iter().map(|(id, at)| seen_now[id].saturating_duration_since(*at)).collect();
    latencies.sort();
    seen.lock().unwrap().clear();

    let start = Instant::now();
    for n in 0..flat_out as u64 {
        send(alert(1_000_000 + n));
    }
    wait_for(seen, flat_out);
    let per_second = flat_out as f64 / start.elapsed().as_secs_f64();
    seen.lock().unwrap().clear();
    Result {
        p50: quantile(&latencies, 0.5),
        p99: quantile(&latencies, 0.99),
        p999: quantile(&latencies, 0.999),
        max: latencies.last().copied().unwrap_or_default(),
        per_second,
    }
}

fn wait_for(seen: &Seen, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.lock().unwrap().len() < count {
        assert!(Instant::now() < deadline, "only {} of {count} alerts arrived", seen.lock().unwrap().len());
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn dispatcher(
    mut sink: SinkConfig,
    dir: &Path,
    journal: bool,
) -> (std::sync::mpsc::Sender<Alert>, std::thread::JoinHandle<u64>) {
    if !journal {
        // Without a journal a full queue drops the oldest alert; the flat-out
        // run needs room for all of them.
        match &mut sink {
            SinkConfig::Jsonl(c) => c.delivery.queue_capacity = 100_000,
            SinkConfig::Mqtt(c) => c.delivery.queue_capacity = 100_000,
            SinkConfig::Nats(c) => c.delivery.queue_capacity = 100_000,
            _ => {}
        }
    }
    let settings = DispatcherSettings {
        snapshots: None,
        throttle: Throttle::new(Default::default(), Default::default()),
        journal: JournalConfig { enabled: journal, ..Default::default() },
        journal_path: dir.join(format!("alerts-{}.db", fastrand::u32(..))),
        sinks: vec![sink],
        shutdown_grace: Duration::from_secs(10),
    };
    let dispatcher = Dispatcher::start(settings, Arc::new(AlertStats::default())).expect("dispatcher");
    let (sender, receiver) = std::sync::mpsc::channel();
    (sender, std::thread::spawn(move || dispatcher.run(receiver)))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn report(name: &str, result: &Result, baseline: &Result) {
    println!(
        "{name:<36} p50 {:>6.3}  p99 {:>6.3}  p99.9 {:>6.3}  max {:>6.3} ms  {:>7.0}/s   vs direct: p50 x{:.2}, p99 x{:.2}, rate x{:.2}",
        ms(result.p50),
        ms(result.p99),
        ms(result.p999),
        ms(result.max),
        result.per_second,
        result.p50.as_secs_f64() / baseline.p50.as_secs_f64(),
        result.p99.as_secs_f64() / baseline.p99.as_secs_f64(),
        result.per_second / baseline.per_second,
    );
}

fn baseline_line(name: &str, result: &Result) {
    println!(
        "{name:<36} p50 {:>6.3}  p99 {:>6.3}  p99.9 {:>6.3}  max {:>6.3} ms  {:>7.0}/s",
        ms(result.p50),
        ms(result.p99),
        ms(result.p999),
        ms(result.max),
        result.per_second
    );
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    // 12 s of paced alerts: longer than the journal's forced checkpoint
    // interval (10 s), so its cost is in the figures.
    let (paced, flat_out) = (6000, 20_000);
    let dir = tempfile::tempdir().expect("tempdir");
    println!("alerts: {paced} paced at 500/s for latency, {flat_out} flat out for the rate (times in ms)\n");

    // JSON lines.
    let seen: Seen = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let direct_path = dir.path().join("direct.jsonl");
    let tail = tail_file(&direct_path, seen.clone(), stop.clone());
    let mut direct = JsonlSink::new(&JsonlConfig { path: direct_path, ..Default::default() });
    let base = measure(paced, flat_out, &mut |a| direct.deliver(&a, &PayloadFormat::Dshost.encode(&a)).unwrap(), &seen);
    stop.store(true, Ordering::Relaxed);
    tail.join().unwrap();
    baseline_line("jsonl: direct write (baseline)", &base);
    for journal in [true, false] {
        let path = dir.path().join(format!("dshost-{journal}.jsonl"));
        let stop = Arc::new(AtomicBool::new(false));
        let tail = tail_file(&path, seen.clone(), stop.clone());
        let sink = SinkConfig::Jsonl(JsonlConfig { path, ..Default::default() });
        let (sender, thread) = dispatcher(sink, dir.path(), journal);
        let result = measure(paced, flat_out, &mut |a| sender.send(a).unwrap(), &seen);
        drop(sender);
        thread.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        tail.join().unwrap();
        report(if journal { "jsonl: dshost (journal on)" } else { "jsonl: dshost (journal off)" }, &result, &base);
    }

    // MQTT on loopback.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
    let config_path = dir.path().join("mosquitto.conf");
    std::fs::write(&config_path, format!("listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"))
        .unwrap();
    let broker = match Command::new("mosquitto").arg("-c").arg(&config_path).stderr(Stdio::null()).spawn() {
        Ok(child) => Broker(child),
        Err(error) => {
            println!("\nmqtt: skipped, cannot start mosquitto ({error}); `bash scripts/setup.sh --tests` installs it");
            return;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let subscriber = subscribe(port, seen.clone(), stop.clone());
    let mqtt =
        MqttConfig { address: format!("127.0.0.1:{port}"), topic: "bench/{source}".into(), ..Default::default() };
    let mut direct = MqttSink::new(&mqtt, "direct").unwrap();
    let base = measure(paced, flat_out, &mut |a| direct.deliver(&a, &PayloadFormat::Dshost.encode(&a)).unwrap(), &seen);
    println!();
    baseline_line("mqtt qos1: direct publish (baseline)", &base);
    for journal in [true, false] {
        let (sender, thread) = dispatcher(SinkConfig::Mqtt(mqtt.clone()), dir.path(), journal);
        let result = measure(paced, flat_out, &mut |a| sender.send(a).unwrap(), &seen);
        drop(sender);
        thread.join().unwrap();
        report(
            if journal { "mqtt qos1: dshost (journal on)" } else { "mqtt qos1: dshost (journal off)" },
            &result,
            &base,
        );
    }
    stop.store(true, Ordering::Relaxed);
    subscriber.join().unwrap();
    drop(broker);

    nats(paced, flat_out, dir.path(), &seen);
}

/// A core-NATS subscriber on its own connection (JetStream publishes reach
/// plain subscribers too), noting when each alert id arrives.
fn nats_subscribe(url: &str, seen: Seen, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let url = url.to_string();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let client = async_nats::connect(url).await.expect("subscriber connects");
            let mut subscription = client.subscribe("bench.>").await.unwrap();
            client.flush().await.unwrap();
            ready_tx.send(()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let next =
                    tokio::time::timeout(Duration::from_millis(100), futures::StreamExt::next(&mut subscription)).await;
                if let Ok(Some(message)) = next {
                    let now = Instant::now();
                    if let Some(id) = id_of(&message.payload) {
                        seen.lock().unwrap().entry(id).or_insert(now);
                    }
                }
            }
        });
    });
    ready_rx.recv().expect("subscriber ready");
    thread
}

fn nats(paced: usize, flat_out: usize, dir: &Path, seen: &Seen) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
    let server = match Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir.join("jetstream"))
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => Broker(child),
        Err(error) => {
            println!(
                "\nnats: skipped, cannot start nats-server ({error}); `bash scripts/setup.sh --tests` installs it"
            );
            return;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("nats://127.0.0.1:{port}");
    let config = NatsConfig {
        url: url.clone(),
        subject: "bench.{source}".into(),
        stream: Some("BENCH".into()),
        create_stream: true,
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let subscriber = nats_subscribe(&url, seen.clone(), stop.clone());
    // async-nats called directly (this also creates the stream).
    let mut direct = NatsSink::new(&config).unwrap();
    let base = measure(paced, flat_out, &mut |a| direct.deliver(&a, &PayloadFormat::Dshost.encode(&a)).unwrap(), seen);
    drop(direct);
    println!();
    baseline_line("nats js: async-nats direct (baseline)", &base);
    let mut old = nats_handwritten::HandWrittenNats::new(&format!("127.0.0.1:{port}"), "bench.cam-1");
    let result = measure(paced, flat_out, &mut |a| old.deliver(&a, &PayloadFormat::Dshost.encode(&a)).unwrap(), seen);
    report("nats js: hand-written direct", &result, &base);
    drop(old);
    for journal in [true, false] {
        let (sender, thread) = dispatcher(SinkConfig::Nats(config.clone()), dir, journal);
        let result = measure(paced, flat_out, &mut |a| sender.send(a).unwrap(), seen);
        drop(sender);
        thread.join().unwrap();
        report(if journal { "nats js: dshost (journal on)" } else { "nats js: dshost (journal off)" }, &result, &base);
    }
    stop.store(true, Ordering::Relaxed);
    subscriber.join().unwrap();
    drop(server);
}
