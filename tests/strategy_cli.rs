//! `dshost strategy check` and `dshost strategy test` as a user runs them:
//! the real binary, real components, fixture frames, exact expected output.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

fn dshost(args: &[&str]) -> Output {
    let data_dir = common::repo_root().join("target/test-cache/cli-data");
    Command::new(common::dshost_bin())
        .arg("--data-dir")
        .arg(&data_dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("cannot run dshost")
}

fn path(p: std::path::PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

/// Output lines without the fields that differ per run (`id` is stable per
/// strategy build, `ts` is the wall clock).
fn comparable(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| {
            let mut value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line}: {e}"));
            let object = value.as_object_mut().unwrap();
            assert_eq!(object.remove("id").unwrap().as_str().unwrap().len(), 32);
            assert!(object.remove("ts").unwrap().as_str().unwrap().ends_with('Z'));
            let version = object.remove("strategy_version").unwrap();
            assert!(version.as_str().unwrap().starts_with("0.1.0+sha256:"));
            value
        })
        .collect()
}

fn expected(name: &str) -> Vec<Value> {
    std::fs::read_to_string(common::fixture(&format!("expected/{name}")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn replay(config: &str) -> Output {
    dshost(&[
        "strategy",
        "test",
        &path(common::strategy("yolo_filter")),
        "--frames",
        &path(common::fixture("frames/street.jsonl")),
        "--config",
        &path(common::fixture(&format!("configs/{config}"))),
    ])
}

/// Replays the street fixture through `strategy` with `config` as its config file.
fn replay_inline(strategy: &str, config: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config).unwrap();
    dshost(&[
        "strategy",
        "test",
        &path(common::strategy(strategy)),
        "--frames",
        &path(common::fixture("frames/street.jsonl")),
        "--config",
        &path(config_path),
    ])
}

#[test]
fn strategy_test_prints_the_expected_detections() {
    for (config, expect) in [
        ("yolo_person.yaml", "yolo_person_street.jsonl"),
        ("yolo_vehicles_zone.yaml", "yolo_vehicles_zone_street.jsonl"),
    ] {
        let output = replay(config);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(comparable(&output.stdout), expected(expect), "config {config}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("replayed 4 frames"), "{stderr}");
    }
}

#[test]
fn strategy_test_reports_a_bad_config_and_exits_non_zero() {
    let output = replay_inline("yolo_filter", "classes: [unicorn]\n");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown label `unicorn`"), "{stderr}");
}

#[test]
fn strategy_test_exits_3_when_the_strategy_fails() {
    let output = replay_inline("hostile", "mode: bad_numbers\n");
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 4, "one valid detection per frame");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("20 invalid detections dropped"), "{stderr}");
}

#[test]
fn strategy_check_describes_components() {
    let output = dshost(&["strategy", "check", "--json", &path(common::strategy("line_crossing"))]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["name"], "line_crossing");
    assert_eq!(report["world"], "stateful-strategy");
    // scripts/build-strategies.sh builds the examples against wit/ (0.2.0).
    assert_eq!(report["interface"], "dshost:strategy@0.2.0");
    assert_eq!(report["needs_tracking"], true);

    let human = dshost(&["strategy", "check", &path(common::strategy("yolo_filter"))]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("valid strategy component") && text.contains("world:       strategy"), "{text}");
    assert!(text.contains("contract:    0.2.0 (packed detections)"), "{text}");

    // ...and yolo_filter once more against wit/0.1.0/.
    let old = dshost(&["strategy", "check", "--json", &path(common::strategy("yolo_filter_v0_1"))]);
    assert!(old.status.success(), "{}", String::from_utf8_lossy(&old.stderr));
    let report: Value = serde_json::from_slice(&old.stdout).unwrap();
    assert_eq!(report["interface"], "dshost:strategy@0.1.0");
    let human = dshost(&["strategy", "check", &path(common::strategy("yolo_filter_v0_1"))]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("contract:    0.1.0 (one record per detection)"), "{text}");
}

#[test]
fn strategy_check_refuses_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.wasm");
    let bytes = common::strategy_bytes("yolo_filter");
    std::fs::write(&truncated, &bytes[..1000]).unwrap();
    let output = dshost(&["strategy", "check", &path(truncated.clone())]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("truncated.wasm is not a usable strategy"), "{stderr}");

    let missing = dshost(&["strategy", "check", "/nonexistent/x.wasm"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /nonexistent/x.wasm"));
}
