//! The operations surface against the real binary: Prometheus metrics parsed
//! with a real exposition parser, health, the control API adding and removing
//! sources while another runs, configuration changes applied while running,
//! a service that starts empty and outlives its sources, and bearer-token
//! auth off loopback.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Dshost(Child);

impl Drop for Dshost {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `dshost run` on `config` (in a fresh directory, as `config.yaml`);
/// its log goes to `dshost.log` there, at debug level for dshost.
fn start(config: &str, extra: &[&str], env: &[(&str, &str)]) -> (Dshost, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.path().join("dshost.log")).unwrap();
    let mut command = Command::new(common::dshost_bin());
    command
        .arg("--data-dir")
        .arg(common::repo_root().join("target/test-cache/ops-data"))
        .env("DSHOST_ALERTS__JOURNAL__PATH", common::unique_journal())
        .args(["run", "--config"])
        .arg(&path)
        .args(extra)
        .env("RUST_LOG", "info,dshost=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    for (k, v) in env {
        command.env(k, v);
    }
    (Dshost(command.spawn().unwrap()), dir)
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Scrapes and parses /metrics; returns (name, labels, value) samples.
/// One parsed sample: metric name, sorted labels, value.
type Sample = (String, Vec<(String, String)>, f64);

fn scrape(base: &str, token: Option<&str>) -> Vec<Sample> {
    let mut request = ureq::get(&format!("{base}/metrics"));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let text = request.call().expect("metrics").into_string().unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus exposition");
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            let mut labels: Vec<(String, String)> = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            labels.sort();
            (s.metric, labels, value)
        })
        .collect()
}

fn value(samples: &[Sample], name: &str, source: &str) -> Option<f64> {
    samples
        .iter()
        .find(|(n, labels, _)| n == name && labels.iter().any(|(k, v)| k == "source" && v == source))
        .map(|(_, _, v)| *v)
}

fn post(url: &str, body: Value) -> (u16, Value) {
    match ureq::post(url).send_json(body) {
        Ok(response) => (response.status(), response.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, response)) => (code, response.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn metrics_health_and_sources_added_and_removed_through_the_api() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = format!(
        "sources:\n  - id: a\n    uri: test://ball?width=160&height=120&fps=30\n    detector: motion\n\
         strategies:\n  - path: {}\n    config: {{min_confidence: 0.0}}\n",
        common::strategy("yolo_filter").display()
    );
    let (_dshost, _dir) = start(&config, &["--http", &format!("127.0.0.1:{port}")], &[]);
    wait_for("readiness", || ureq::get(&format!("{base}/readyz")).call().is_ok_and(|r| r.status() == 200));
    let health: Value = ureq::get(&format!("{base}/healthz")).call().unwrap().into_json().unwrap();
    assert_eq!(health["status"], "ok");

    let samples = scrape(&base, None);
    assert!(value(&samples, "dshost_source_frames_total", "a").unwrap() > 0.0);
    assert!(samples
        .iter()
        .any(|(n, l, _)| n == "dshost_strategy_calls_total" && l.contains(&("strategy".into(), "yolo_filter".into()))));
    assert!(samples.iter().any(|(n, _, _)| n == "dshost_process_resident_memory_bytes"));
    assert!(samples.iter().any(|(n, l, v)| n == "dshost_strategy_info"
        && *v == 1.0
        && l.iter().any(|(k, v)| k == "version" && v.starts_with("0.1.0+sha256:"))));
    assert!(samples.iter().any(|(n, _, _)| n == "dshost_strategy_call_duration_seconds_count"));

    // Add a source while `a` runs.
    let (status, body) = post(
        &format!("{base}/v1/sources"),
        json!({"id": "b", "uri": "test://smpte?width=160&height=120&fps=30", "detector": "motion"}),
    );
    assert_eq!(status, 201, "{body}");
    wait_for("frames from b", || {
        value(&scrape(&base, None), "dshost_source_frames_total", "b").is_some_and(|v| v > 0.0)
    });
    let a_before = value(&scrape(&base, None), "dshost_source_frames_total", "a").unwrap();

    let (status, body) = post(&format!("{base}/v1/sources"), json!({"id": "b", "uri": "test://ball"}));
    assert_eq!(status, 409, "{body}");
    let (status, body) = post(&format!("{base}/v1/sources"), json!({"id": "c", "uri": "gopher://x"}));
    assert_eq!((status, body["field"].as_str()), (400, Some("uri")), "{body}");
    let (status, body) = post(&format!("{base}/v1/sources"), json!({"id": "c", "uri": "test://ball", "colour": 1}));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("colour"), "{body}");
    let (status, body) = post(&format!("{base}/v1/sources"), json!({"uri": "test://ball"}));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("id"), "{body}");

    let listed: Value = ureq::get(&format!("{base}/v1/sources")).call().unwrap().into_json().unwrap();
    assert_eq!(listed["sources"].as_array().unwrap().len(), 2);

    let removed = ureq::delete(&format!("{base}/v1/sources/b")).call().unwrap();
    assert_eq!(removed.status(), 200);
    match ureq::delete(&format!("{base}/v1/sources/b")).call() {
        Err(ureq::Error::Status(404, _)) => {}
        other => panic!("expected 404, got {other:?}"),
    }
    wait_for("a to keep running after b left", || {
        let samples = scrape(&base, None);
        value(&samples, "dshost_source_frames_total", "b").is_none()
            && value(&samples, "dshost_source_frames_total", "a").is_some_and(|v| v > a_before + 10.0)
    });

    // A camera with a password (nothing listens on its port: it keeps
    // reconnecting): the password shows nowhere, not in the API, the metrics
    // or the debug log.
    let camera = format!("rtsp://admin:hunter2@127.0.0.1:{}/stream", free_port());
    let (status, body) = post(&format!("{base}/v1/sources"), json!({"id": "cam", "uri": camera}));
    assert_eq!(status, 201, "{body}");
    wait_for("the camera to be tried", || {
        let listed: Value = ureq::get(&format!("{base}/v1/sources")).call().unwrap().into_json().unwrap();
        listed["sources"].as_array().unwrap().iter().any(|s| s["id"] == "cam" && s["restarts"].as_u64() > Some(0))
    });
    let listed = ureq::get(&format!("{base}/v1/sources")).call().unwrap().into_string().unwrap();
    assert!(listed.contains("rtsp://admin:***@127.0.0.1:"), "{listed}");
    let metrics = ureq::get(&format!("{base}/metrics")).call().unwrap().into_string().unwrap();
    let log = std::fs::read_to_string(_dir.path().join("dshost.log")).unwrap();
    assert!(log.contains("source = cam") || log.contains("source=cam"), "the log must mention the camera: {log}");
    for (what, text) in [("API", &listed), ("metrics", &metrics), ("log", &log)] {
        assert!(!text.contains("hunter2"), "the password leaked into the {what}");
    }
    assert_eq!(ureq::delete(&format!("{base}/v1/sources/cam")).call().unwrap().status(), 200);

    let strategies: Value = ureq::get(&format!("{base}/v1/strategies")).call().unwrap().into_json().unwrap();
    assert_eq!(strategies["strategies"][0]["name"], "yolo_filter");
    let (status, body) = post(&format!("{base}/v1/strategies/yolo_filter/reload"), json!({}));
    assert_eq!(status, 200, "{body}");
    assert!(body["version"].as_str().unwrap().starts_with("0.1.0+sha256:"));
    let (status, _) = post(&format!("{base}/v1/strategies/nope/reload"), json!({}));
    assert_eq!(status, 404);
}

#[test]
fn a_token_is_required_off_loopback_and_enforced_when_set() {
    let config = "sources:\n  - id: a\n    uri: test://ball?width=160&height=120&fps=30\n";
    // Off loopback without a token: refused at start, saying why.
    let (mut open, dir) = start(config, &["--http", "0.0.0.0:0"], &[]);
    let status = open.0.wait().unwrap();
    assert_eq!(status.code(), Some(1), "binding off loopback without a token must fail");
    let log = std::fs::read_to_string(dir.path().join("dshost.log")).unwrap();
    assert!(log.contains("refusing to listen on 0.0.0.0:0 without a bearer token"), "{log}");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let with_http = format!("{config}monitoring:\n  http:\n    address: 127.0.0.1:{port}\n");
    let (_dshost, _dir) = start(&with_http, &[], &[("DSHOST_MONITORING__HTTP__TOKEN", "s3cret")]);
    wait_for("the server", || ureq::get(&format!("{base}/healthz")).call().is_ok());
    match ureq::get(&format!("{base}/metrics")).call() {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("expected 401 without a token, got {other:?}"),
    }
    match ureq::get(&format!("{base}/v1/sources")).set("Authorization", "Bearer wrong").call() {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("expected 401 with a wrong token, got {other:?}"),
    }
    let samples = scrape(&base, Some("s3cret"));
    assert!(!samples.is_empty());
}

#[test]
fn environment_overrides_are_validated_like_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "pipeline:\n  queue_depth: 8\n").unwrap();
    let output = Command::new(common::dshost_bin())
        .args(["validate-config"])
        .arg(&path)
        .env("DSHOST_PIPELINE__QUEUE_DEPTH", "0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("`pipeline.queue_depth`: must be within 1..=4096"));
    let ok = Command::new(common::dshost_bin())
        .args(["validate-config"])
        .arg(&path)
        .env("DSHOST_PIPELINE__QUEUE_DEPTH", "64")
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

fn jsonl(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn counter(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|(_, _, v)| *v)
        .sum()
}

/// The config of the reload test: `sources` and `extra_sinks` vary.
fn reload_config(dir: &std::path::Path, sources: &[(&str, u32)], min_confidence: f32, extra_sink: bool) -> String {
    let mut text = String::from("sources:\n");
    for (id, seed) in sources {
        text += &format!("  - {{id: {id}, uri: 'scene://?seed={seed}&width=320&height=180&fps=30'}}\n");
    }
    text += &format!(
        "strategies:\n  - path: {}\n    config: {{min_confidence: 0.0}}\n",
        common::strategy("yolo_filter").display()
    );
    text += &format!("alerts:\n  throttle: {{min_confidence: {min_confidence}}}\n  sinks:\n");
    text += &format!("    - {{type: jsonl, name: first, path: '{}'}}\n", dir.join("first.jsonl").display());
    if extra_sink {
        text += &format!("    - {{type: jsonl, name: second, path: '{}'}}\n", dir.join("second.jsonl").display());
        // Only a restart applies this one: it must be reported, not ignored.
        text += "pipeline: {backend: cpu}\n";
    }
    text
}

#[test]
fn a_config_file_edit_adds_a_source_changes_the_throttle_and_adds_a_sink() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // The synthetic scene's confidences are at most 0.99 (its ground truth), so
    // a throttle minimum of 1.0 holds back every alert.
    let scratch = tempfile::tempdir().unwrap();
    let before = reload_config(scratch.path(), &[("a", 3)], 1.0, false);
    let (dshost, dir) = start(&before, &["--http", &format!("127.0.0.1:{port}")], &[]);
    let dir_path = dir.path().to_path_buf();
    let config = dir_path.join("config.yaml");
    wait_for("alerts held back by the throttle", || {
        ureq::get(&format!("{base}/healthz")).call().is_ok()
            && counter(&scrape(&base, None), "dshost_alerts_suppressed_total", &[("reason", "min_confidence")]) > 20.0
    });
    assert!(jsonl(&scratch.path().join("first.jsonl")).is_empty(), "the throttle must hold every alert back");

    // One edit of the watched file: a new source, a throttle that lets
    // alerts through, a second sink, and a restart-only key.
    std::fs::write(&config, reload_config(scratch.path(), &[("a", 3), ("b", 4)], 0.0, true)).unwrap();
    wait_for("alerts from both sources in both sinks", || {
        ["first.jsonl", "second.jsonl"].iter().all(|file| {
            let alerts = jsonl(&scratch.path().join(file));
            ["a", "b"].iter().all(|source| alerts.iter().any(|a| a["source"] == *source))
        })
    });
    let log = std::fs::read_to_string(dir_path.join("dshost.log")).unwrap();
    assert!(log.contains("applies only when dshost restarts") && log.contains("pipeline.backend"), "{log}");
    let samples = scrape(&base, None);
    for (section, result, at_least) in
        [("sources", "applied", 2.0), ("sinks", "applied", 2.0), ("throttle", "applied", 1.0)]
    {
        let seen = counter(&samples, "dshost_config_reloads_total", &[("section", section), ("result", result)]);
        assert!(seen >= at_least, "{section}/{result}: {seen}");
    }
    assert!(
        counter(&samples, "dshost_config_reloads_total", &[("section", "pipeline"), ("result", "restart_needed")])
            >= 1.0
    );

    // The same through the API: nothing changed in the file since, so the only
    // change it reports is the restart-only key, still not applied.
    let (status, body) = post(&format!("{base}/v1/config/reload"), json!({}));
    assert_eq!(status, 200, "{body}");
    let changes = body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{body}");
    assert_eq!(
        (changes[0]["key"].as_str(), changes[0]["result"].as_str()),
        (Some("pipeline.backend"), Some("restart_needed"))
    );

    // An invalid file changes nothing and says what is wrong, with the line.
    std::fs::write(&config, "sources:\n  - id: a\n    uri: gopher://x\n").unwrap();
    let (status, body) = post(&format!("{base}/v1/config/reload"), json!({}));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["issues"][0]["path"], "sources[0].uri", "{body}");
    assert_eq!(body["issues"][0]["line"], 3, "{body}");
    let listed: Value = ureq::get(&format!("{base}/v1/sources")).call().unwrap().into_json().unwrap();
    assert_eq!(listed["sources"].as_array().unwrap().len(), 2, "{listed}");
    drop(dshost);
}

#[test]
fn with_the_api_on_it_starts_empty_and_outlives_its_sources() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = format!("strategies:\n  - path: {}\n", common::strategy("yolo_filter").display());
    let (mut dshost, _dir) = start(&config, &["--http", &format!("127.0.0.1:{port}")], &[]);
    wait_for("the server", || ureq::get(&format!("{base}/healthz")).call().is_ok());
    let listed: Value = ureq::get(&format!("{base}/v1/sources")).call().unwrap().into_json().unwrap();
    assert_eq!(listed["sources"], json!([]));
    for round in 0..2 {
        // A short file-like source that ends by itself, and one removed.
        let (status, body) = post(
            &format!("{base}/v1/sources"),
            json!({"id": "short", "uri": "test://ball?width=64&height=48&fps=30&frames=10&realtime=false"}),
        );
        assert_eq!(status, 201, "round {round}: {body}");
        let (status, body) =
            post(&format!("{base}/v1/sources"), json!({"id": "live", "uri": "test://ball?width=64&height=48&fps=30"}));
        assert_eq!(status, 201, "round {round}: {body}");
        wait_for("frames from live", || {
            value(&scrape(&base, None), "dshost_source_frames_total", "live").is_some_and(|v| v > 5.0)
        });
        wait_for("short to end", || {
            let listed: Value = ureq::get(&format!("{base}/v1/sources")).call().unwrap().into_json().unwrap();
            listed["sources"].as_array().unwrap().iter().any(|s| s["id"] == "short" && s["state"] == "ended")
        });
        for id in ["short", "live"] {
            assert_eq!(ureq::delete(&format!("{base}/v1/sources/{id}")).call().unwrap().status(), 200);
        }
        let listed: Value = ureq::get(&format!("{base}/v1/sources")).call().unwrap().into_json().unwrap();
        assert_eq!(listed["sources"], json!([]), "round {round}");
        assert!(dshost.0.try_wait().unwrap().is_none(), "dshost exited after its last source was removed");
        assert!(ureq::get(&format!("{base}/healthz")).call().is_ok());
    }
}

#[test]
fn a_live_scrape_passes_promtool_check_metrics() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = format!(
        "sources:\n  - id: a\n    uri: test://ball?width=160&height=120&fps=30\n    detector: motion\n\
         strategies:\n  - path: {}\n    config: {{min_confidence: 0.0}}\n",
        common::strategy("yolo_filter").display()
    );
    let (_dshost, _dir) = start(&config, &["--http", &format!("127.0.0.1:{port}")], &[]);
    // Every family present: frames flowed and the strategy was called.
    wait_for("strategy calls", || {
        ureq::get(&format!("{base}/metrics"))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .is_some_and(|text| text.contains("dshost_strategy_call_duration_seconds_count"))
    });
    let text = ureq::get(&format!("{base}/metrics")).call().unwrap().into_string().unwrap();
    // Prometheus's own checker (Debian's `prometheus` package): parse errors
    // and lint problems (naming, HELP, counters' _total) both fail.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run promtool (scripts/setup.sh --tests installs prometheus)");
    use std::io::Write;
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\non:\n{text}");
}

#[test]
fn completions_load_in_bash_and_the_man_page_renders() {
    let run = |args: &[&str]| {
        let output = Command::new(common::dshost_bin()).args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let bash = dir.path().join("dshost.bash");
    std::fs::write(&bash, run(&["completions", "bash"])).unwrap();
    // bash itself loads the script and registers the completion.
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p dshost", bash.display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("dshost"));
    // COMP_WORDS for `dshost valid<TAB>` completes the subcommand.
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && COMP_WORDS=(dshost valid) COMP_CWORD=1 COMP_LINE='dshost valid' COMP_POINT=12 && _dshost dshost valid dshost && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "validate-config", "{output:?}");
    assert!(run(&["completions", "zsh"]).starts_with("#compdef dshost"));
    assert!(run(&["completions", "fish"]).contains("complete -c dshost"));

    let page = dir.path().join("dshost.1");
    std::fs::write(&page, run(&["man"])).unwrap();
    let output =
        Command::new("man").arg("-l").arg(&page).env("MANWIDTH", "100").env("MANPAGER", "cat").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for needle in ["NAME", "dshost", "validate-config", "completions"] {
        assert!(text.contains(needle), "the rendered man page lacks {needle}:\n{text}");
    }
}
