//! The operations surface against the real binary: Prometheus metrics parsed
//! with a real exposition parser, health, the control API adding and removing
//! sources while another runs, and bearer-token auth off loopback.

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

fn start(config: &str, extra: &[&str], env: &[(&str, &str)]) -> (Dshost, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(common::dshost_bin());
    command
        .arg("--data-dir")
        .arg(common::repo_root().join("target/test-cache/ops-data"))
        .env("DSHOST_ALERTS__JOURNAL__PATH", common::unique_journal())
        .args(["run", "--config"])
        .arg(&path)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
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

    // Add a source with a password in its URI while `a` runs.
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
    // Off loopback without a token: refused at start.
    let (mut open, _dir) = start(config, &["--http", "0.0.0.0:0"], &[]);
    let status = open.0.wait().unwrap();
    assert_eq!(status.code(), Some(1), "binding off loopback without a token must fail");

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
