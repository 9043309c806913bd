//! `docs/openapi.yaml` against a live dshost: schemathesis (PyPI, installed
//! by `scripts/setup.sh --tests`) generates requests from the spec, runs every
//! check it has (server errors, status codes, content types, response
//! schemas, negative and positive data, stateful add/remove sequences) and
//! must find nothing. A fixed seed keeps CI runs reproducible.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Dshost(Child);

impl Drop for Dshost {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn schemathesis() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .expect("HOME is set");
    let bin = cache.join("dshost/test-tools/venv/bin/schemathesis");
    assert!(bin.exists(), "{} is missing: run `bash scripts/setup.sh --tests`", bin.display());
    bin
}

#[test]
fn the_openapi_document_matches_the_live_api() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "sources:\n  - {{id: a, uri: 'test://ball?width=64&height=48&fps=10'}}\n\
             strategies:\n  - path: {}\n",
            common::strategy("yolo_filter").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("dshost.log")).unwrap();
    let mut dshost = Dshost(
        Command::new(common::dshost_bin())
            .arg("--data-dir")
            .arg(common::repo_root().join("target/test-cache/openapi-data"))
            .env("DSHOST_ALERTS__JOURNAL__PATH", common::unique_journal())
            .args(["run", "--config"])
            .arg(&config)
            .args(["--http", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(&format!("{base}/healthz")).call().is_err() {
        assert!(Instant::now() < deadline, "dshost did not start serving");
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = Command::new(schemathesis())
        .current_dir(dir.path())
        .arg("--config-file")
        .arg(common::fixture("schemathesis.toml"))
        .arg("run")
        .arg(common::repo_root().join("docs/openapi.yaml"))
        .args(["--url", &base, "--checks", "all", "--max-examples", "30", "--workers", "1"])
        .args(["--seed", "20261201", "--no-color"])
        .output()
        .expect("cannot run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("No issues found"), "{report}");
    assert!(dshost.0.try_wait().unwrap().is_none(), "dshost must still run after the fuzzing");
}
