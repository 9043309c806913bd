//! The web console in a real browser. Two real dshost binaries: one open on
//! loopback with the synthetic street scene and yolo_filter (people and
//! cars), one with a token; `tests/console/drive.mjs` drives Debian's
//! headless Chromium through playwright-core (both installed by
//! `scripts/setup.sh --tests`) over every page: thumbnails that decode and
//! change, adding and removing a source through the form, alerts arriving
//! live with snapshots that decode, filters, a strategy reload that swaps in
//! another build's bytes, the login form, phone width. Screenshots go to
//! `target/console-screenshots/` (and to `docs/console/` with
//! `DSHOST_UPDATE_SCREENSHOTS=1`).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Dshost {
    child: Child,
    log: PathBuf,
}

impl Dshost {
    fn start(dir: &Path, name: &str, config: &str, http: Option<u16>) -> Dshost {
        let config_path = dir.join(format!("{name}.yaml"));
        std::fs::write(&config_path, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(common::dshost_bin());
        command
            .arg("--data-dir")
            .arg(common::repo_root().join("target/test-cache/console-data"))
            .env("DSHOST_ALERTS__JOURNAL__PATH", common::unique_journal())
            .args(["run", "--no-watch", "--config"])
            .arg(&config_path)
            // Everything dshost logs, to look for the token in it.
            .env("RUST_LOG", "info,dshost=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        if let Some(port) = http {
            command.args(["--http", &format!("127.0.0.1:{port}")]);
        }
        Dshost { child: command.spawn().expect("cannot start dshost"), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_until_serving(&mut self, base: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while ureq::get(&format!("{base}/healthz")).call().is_err() {
            assert!(self.child.try_wait().unwrap().is_none(), "dshost exited: {}", self.log());
            assert!(Instant::now() < deadline, "dshost did not start serving: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dshost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where `npm ci` put playwright-core (scripts/setup.sh --tests).
fn browser_tools() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .expect("HOME is set");
    let tools = cache.join("dshost/test-tools/browser");
    for needed in [tools.join("node_modules/playwright-core/package.json"), PathBuf::from("/usr/bin/chromium")] {
        assert!(needed.exists(), "{} is missing: run `bash scripts/setup.sh --tests`", needed.display());
    }
    tools
}

fn status(url: &str, bearer: Option<&str>) -> u16 {
    let mut request = ureq::get(url);
    if let Some(token) = bearer {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    match request.call() {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{url}: {e}"),
    }
}

#[test]
fn the_console_works_in_a_real_browser() {
    let tools = browser_tools();
    let dir = tempfile::tempdir().unwrap();
    // The running strategy is a copy, so the test can put other bytes in its place.
    let strategy = dir.path().join("yolo_filter.wasm");
    std::fs::copy(common::strategy("yolo_filter"), &strategy).unwrap();
    let (open_port, token_port) = (free_port(), free_port());
    let mut open = Dshost::start(
        dir.path(),
        "open",
        &format!(
            "sources:\n  - {{id: street, uri: 'scene://?seed=5&width=640&height=360&fps=15'}}\n\
             strategies:\n  - path: {}\n    config: {{classes: [person, car], min_confidence: 0.0}}\n\
             alerts:\n  throttle: {{cooldown_seconds: 2}}\n",
            strategy.display()
        ),
        Some(open_port),
    );
    // A token that appears nowhere but in this config and the login form.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let token = format!("console-{}-{nanos:x}", std::process::id());
    let mut guarded = Dshost::start(
        dir.path(),
        "token",
        &format!("monitoring:\n  http: {{address: '127.0.0.1:{token_port}', token: '{token}'}}\n"),
        None,
    );
    let open_url = format!("http://127.0.0.1:{open_port}");
    let token_url = format!("http://127.0.0.1:{token_port}");
    open.wait_until_serving(&open_url);
    guarded.wait_until_serving(&token_url);

    let screenshots = common::repo_root().join("target/console-screenshots");
    let output = Command::new("node")
        .arg(common::repo_root().join("tests/console/drive.mjs"))
        .env("CONSOLE_URL", &open_url)
        .env("LOGIN_URL", &token_url)
        .env("CONSOLE_TOKEN", &token)
        .env("STRATEGY_FILE", &strategy)
        .env("NEXT_STRATEGY", common::strategy("yolo_filter_c"))
        .env("SCREENSHOTS", &screenshots)
        .env("BROWSER_TOOLS", &tools)
        .output()
        .expect("cannot run node (scripts/setup.sh --tests installs it)");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{report}");
    assert!(output.status.success(), "the browser checks failed:\n{report}\n--- dshost log ---\n{}", open.log());
    assert!(report.contains("console: all checks passed"), "{report}");
    if std::env::var_os("DSHOST_UPDATE_SCREENSHOTS").is_some() {
        let docs = common::repo_root().join("docs/console");
        std::fs::create_dir_all(&docs).unwrap();
        for name in ["sources", "strategies", "alerts", "alerts-phone", "login"] {
            std::fs::copy(screenshots.join(format!("{name}.png")), docs.join(format!("{name}.png"))).unwrap();
        }
    }

    // The bearer header keeps working for API clients beside the login.
    assert_eq!(status(&format!("{token_url}/v1/sources"), Some(&token)), 200);
    assert_eq!(status(&format!("{token_url}/v1/sources"), Some("wrong")), 401);
    assert_eq!(status(&format!("{token_url}/v1/events"), None), 401);
    assert_eq!(status(&format!("{token_url}/metrics"), None), 401);
    // The console's page itself is the login form, never data.
    let login = ureq::get(&format!("{token_url}/")).call().unwrap().into_string().unwrap();
    assert!(login.contains(r#"action="/login""#) && !login.contains("alert-list"));
    for dshost in [&open, &guarded] {
        assert!(!dshost.log().contains(&token), "the token is in a log");
    }

    // Stopping with a watcher still connected: the event stream ends, so the
    // graceful shutdown does not wait on it.
    let mut watcher = TcpStream::connect(("127.0.0.1", open_port)).unwrap();
    watcher.write_all(b"GET /v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut head = [0u8; 256];
    let read = watcher.read(&mut head).unwrap();
    assert!(String::from_utf8_lossy(&head[..read]).contains("text/event-stream"));
    let pid = open.child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = open.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "dshost did not stop with an event stream open: {}", open.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "dshost exit {exit:?}: {}", open.log());
    drop(watcher);
}
