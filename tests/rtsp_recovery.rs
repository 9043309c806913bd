//! A real RTSP server on 127.0.0.1 (gstreamer-rtsp-server, in this test
//! process) is killed and restarted while dshost reads it next to a second
//! source: the camera's frames resume and the other source never stops.
//! The test waits on dshost's output, never on fixed sleeps.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;
use serde_json::Value;

/// An RTSP server serving a live moving ball at rtsp://127.0.0.1:PORT/cam,
/// only to a client that logs in as `viewer` with password `secret` (basic
/// auth): frames flow only if dshost hands the URI's credentials on.
struct Server {
    server: rtsp::RTSPServer,
    source: Option<gst::glib::SourceId>,
}

impl Server {
    fn start(port: u16) -> Server {
        let server = rtsp::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let factory = rtsp::RTSPMediaFactory::new();
        factory.set_launch(
            "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! rtph264pay name=pay0 pt=96 )",
        );
        factory.set_shared(true);
        let auth = rtsp::RTSPAuth::new();
        let token = rtsp::RTSPToken::builder().field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer").build();
        auth.add_basic(rtsp::RTSPAuth::make_basic("viewer", "secret").as_str(), &token);
        server.set_auth(Some(&auth));
        factory.add_role_from_structure(
            &gst::Structure::builder("viewer")
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
        server.mount_points().expect("mount points").add_factory("/cam", factory);
        let source = server.attach(None).expect("cannot attach the RTSP server");
        Server { server, source: Some(source) }
    }

    /// Stops listening and drops every client: the camera is gone.
    fn kill(mut self) {
        if let Some(source) = self.source.take() {
            source.remove();
        }
        self.server.client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Alerts written so far, as (source, frame).
fn alerts(path: &Path) -> Vec<(String, u64)> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .map(|a| (a["source"].as_str().unwrap_or_default().to_string(), a["frame"].as_u64().unwrap_or(0)))
        .collect()
}

fn last_frame(alerts: &[(String, u64)], source: &str) -> Option<u64> {
    alerts.iter().filter(|(s, _)| s == source).map(|(_, f)| *f).max()
}

fn count(alerts: &[(String, u64)], source: &str) -> usize {
    alerts.iter().filter(|(s, _)| s == source).count()
}

/// Polls `condition` every 50 ms until it holds or `limit` passes.
fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Dshost(Child);

impl Drop for Dshost {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn camera_killed_and_restarted_resumes_while_other_source_continues() {
    gst::init().unwrap();
    let main_loop = gst::glib::MainLoop::new(None, false);
    let loop_thread = {
        let main_loop = main_loop.clone();
        std::thread::spawn(move || main_loop.run())
    };
    let port = free_port();
    let server = Server::start(port);

    let dir = tempfile::tempdir().unwrap();
    let alerts_path = dir.path().join("alerts.jsonl");
    let summary_path = dir.path().join("summary.json");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "sources:\n\
             \x20 - id: cam\n\
             \x20   uri: rtsp://viewer:secret@127.0.0.1:{port}/cam\n\
             \x20   detector: motion\n\
             \x20   rtsp: {{transport: tcp, latency_ms: 100}}\n\
             \x20 - id: street\n\
             \x20   uri: scene://?seed=2&width=640&height=360&fps=30\n\
             strategies:\n\
             \x20 - path: {}\n\
             \x20   config: {{min_confidence: 0.0}}\n\
             recovery:\n\
             \x20 initial_backoff_ms: 200\n\
             \x20 max_backoff_ms: 1000\n\
             \x20 watchdog_seconds: 3\n",
            common::strategy("yolo_filter").display()
        ),
    )
    .unwrap();
    let mut dshost = Dshost(
        Command::new(common::dshost_bin())
            .arg("--data-dir")
            .arg(common::repo_root().join("target/test-cache/rtsp-data"))
            .env("DSHOST_ALERTS__JOURNAL__PATH", common::unique_journal())
            .args(["run", "--config"])
            .arg(&config)
            .arg("--alerts-jsonl")
            .arg(&alerts_path)
            .arg("--summary-json")
            .arg(&summary_path)
            // Debug level: the password must not show even there.
            .env("RUST_LOG", "info,dshost=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("dshost.log")).unwrap()))
            .spawn()
            .expect("cannot start dshost"),
    );

    wait_for("alerts from both sources", Duration::from_secs(60), || {
        let seen = alerts(&alerts_path);
        count(&seen, "cam") > 10 && count(&seen, "street") > 10
    });

    server.kill();
    let killed_at = Instant::now();
    // The camera's alerts stop...
    let mut last_cam = last_frame(&alerts(&alerts_path), "cam");
    let mut quiet_since = Instant::now();
    wait_for("the camera's frames to stop", Duration::from_secs(30), || {
        let now = last_frame(&alerts(&alerts_path), "cam");
        if now != last_cam {
            last_cam = now;
            quiet_since = Instant::now();
        }
        quiet_since.elapsed() > Duration::from_millis(1500)
    });
    let cam_before = last_cam.unwrap_or(0);
    // ...while the other source keeps going.
    let street_at_kill = count(&alerts(&alerts_path), "street");
    wait_for("the other source to continue during the outage", Duration::from_secs(10), || {
        count(&alerts(&alerts_path), "street") > street_at_kill + 30
    });

    let server = Server::start(port);
    let restarted_at = Instant::now();
    wait_for("the camera's frames to resume", Duration::from_secs(30), || {
        last_frame(&alerts(&alerts_path), "cam").is_some_and(|f| f > cam_before)
    });
    eprintln!(
        "camera down for {:.1} s; frames resumed {:.2} s after the server came back",
        (restarted_at - killed_at).as_secs_f64(),
        restarted_at.elapsed().as_secs_f64()
    );

    let status = Command::new("kill").args(["-INT", &dshost.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = dshost.0.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("dshost.log")).unwrap();
    assert!(exit.success(), "dshost exit {exit:?}: {log}");
    assert!(!log.contains("secret"), "the camera password leaked into the log: {log}");
    assert!(log.contains("restarting source"), "{log}");

    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    let source = |id: &str| summary["sources"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap().clone();
    assert!(source("cam")["restarts"].as_u64().unwrap() >= 1, "{summary}");
    assert_eq!(source("street")["restarts"], 0, "{summary}");
    assert_eq!(source("street")["frames_dropped"]["strategy_backlog"], 0, "{summary}");
    assert_eq!(source("cam")["uri"], format!("rtsp://viewer:***@127.0.0.1:{port}/cam"));

    server.kill();
    main_loop.quit();
    let _ = loop_thread.join();
}
