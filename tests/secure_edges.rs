//! TLS and authentication on every network edge, against real servers on
//! 127.0.0.1 with certificates generated here: mosquitto with TLS listeners
//! (mutual TLS, passwords), nats-server with TLS and users (password, NKey),
//! an SMTP server (aiosmtpd) with STARTTLS, implicit TLS and AUTH, and the
//! HTTPS control API. Each wrong setting (CA, expired certificate, server
//! name, password) must fail with one clear error naming the sink and the
//! cause, keep the alerts pending in the journal, and deliver them once the
//! setting is fixed and dshost restarted.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::alert_path::{delivered, dshost, failures, journal_json, start};
use common::brokers::{free_port, wait_for_line, Mosquitto, NatsServer, SmtpServer};
use common::pki::Ca;
use dshost::alerts::journal::{DeliveryState, EntryFilter, JournalReader};
use dshost::alerts::{Alert, AlertBox, AlertLevel};
use serde_json::Value;

/// One `dshost run` of a short synthetic scene whose alerts go to `sink`
/// (YAML of one sink entry, indented for `alerts.sinks`); returns stderr.
fn run_scene(data_dir: &Path, dir: &Path, seed: u32, sink: &str, env: &[(&str, &str)]) -> String {
    let config = dir.join(format!("config-{seed}.yaml"));
    std::fs::write(
        &config,
        format!(
            "sources:
  - id: street
    uri: scene://?seed={seed}&width=640&height=360&fps=30&realtime=false&frames=30
strategies:
  - name: yolo_filter
    path: {}
    config: {{classes: [person, bicycle, car], min_confidence: 0.5}}
alerts:
  shutdown_grace_seconds: 1
  sinks:
{sink}",
            common::strategy("yolo_filter").display()
        ),
    )
    .unwrap();
    let mut command = dshost(data_dir);
    command.args(["run", "--no-watch", "--config"]).arg(&config).stdout(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "dshost run failed:\n{stderr}");
    stderr
}

/// The one error line a failing sink logs: exactly one, naming the sink and
/// containing `cause`.
fn assert_one_clear_error(stderr: &str, sink: &str, cause: &str) {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("sink unavailable")).collect();
    assert_eq!(errors.len(), 1, "expected one 'sink unavailable' error, got:\n{stderr}");
    assert!(errors[0].contains(&format!("sink={sink}")), "the error must name the sink: {}", errors[0]);
    assert!(errors[0].contains(cause), "the error must say {cause:?}: {}", errors[0]);
}

fn states(entries: &[Value], sink: &str) -> BTreeSet<String> {
    entries.iter().map(|e| e["delivery"][sink]["state"].as_str().unwrap_or("missing").to_string()).collect()
}

fn ids(entries: &[Value]) -> BTreeSet<String> {
    entries.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn mqtt_over_tls_names_each_failure_keeps_alerts_pending_and_delivers_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data_dir = d.join("data");
    let ca = Ca::new("dshost test CA");
    let other_ca = Ca::new("someone else's CA");
    let ca_file = ca.write(d, "ca");
    let other_ca_file = other_ca.write(d, "other-ca");
    let (server_cert, server_key) = ca.server(&["localhost", "127.0.0.1"]).write(d, "server");
    let (expired_cert, expired_key) = ca.expired_server(&["localhost", "127.0.0.1"]).write(d, "expired");
    let (client_cert, client_key) = ca.client("dshost").write(d, "client");
    let passwd = d.join("passwd");
    let made = Command::new("mosquitto_passwd").arg("-c").arg("-b").arg(&passwd).args(["alice", "s3cret"]).status();
    assert!(made.unwrap().success(), "mosquitto_passwd failed");

    let (tls_port, expired_port, plain_port) = (free_port(), free_port(), free_port());
    // Mutual TLS and passwords on the TLS listeners; the test's subscriber
    // reads on a plain loopback listener.
    let _broker = Mosquitto::start_config(
        d,
        &format!(
            "per_listener_settings false
allow_anonymous false
password_file {passwd}
listener {tls_port} 127.0.0.1
cafile {ca}
certfile {server_cert}
keyfile {server_key}
require_certificate true
listener {expired_port} 127.0.0.1
cafile {ca}
certfile {expired_cert}
keyfile {expired_key}
require_certificate true
listener {plain_port} 127.0.0.1
",
            passwd = passwd.display(),
            ca = ca_file.display(),
            server_cert = server_cert.display(),
            server_key = server_key.display(),
            expired_cert = expired_cert.display(),
            expired_key = expired_key.display(),
        ),
        &[tls_port, expired_port, plain_port],
    );
    let received = d.join("received.txt");
    let mut subscriber = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &plain_port.to_string(), "-u", "alice", "-P", "s3cret"])
        .args(["-t", "dshost/#", "-q", "1", "-v", "-i", "dshost-test-sub"])
        .stdout(std::fs::File::create(&received).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub");
    // The broker logs the subscription (log_type all): then it is in place.
    wait_for_line(&d.join("mosquitto.log"), "dshost-test-sub 1 dshost/#", Duration::from_secs(10));

    let sink = |port: u16, ca: &Path, server_name: Option<&str>| {
        format!(
            "    - type: mqtt
      name: broker
      address: mqtts://127.0.0.1:{port}
      topic: dshost/{{source}}/{{pattern}}
      username: alice
      password_env: MQTT_PASSWORD
      tls:
        ca_file: {}
        cert_file: {}
        key_file: {}
{}      delivery: {{retry_initial_ms: 50, retry_max_ms: 200, timeout_ms: 2000}}
",
            ca.display(),
            client_cert.display(),
            client_key.display(),
            server_name.map(|n| format!("        server_name: {n}\n")).unwrap_or_default(),
        )
    };
    let right = [("MQTT_PASSWORD", "s3cret")];
    // (what is wrong, the sink, its environment, the cause the error must name)
    type Case<'a> = (&'a str, String, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        ("wrong CA", sink(tls_port, &other_ca_file, None), &right, "not signed by a trusted CA (check tls.ca_file)"),
        ("expired certificate", sink(expired_port, &ca_file, None), &right, "certificate has expired"),
        (
            "wrong server name",
            sink(tls_port, &ca_file, Some("mqtt.example.org")),
            &right,
            "not valid for the name dshost connected to",
        ),
        (
            "wrong password",
            sink(tls_port, &ca_file, None),
            &[("MQTT_PASSWORD", "wrong")],
            "check username / password_env",
        ),
    ];
    let mut pending = 0;
    for (seed, (what, sink, env, cause)) in cases.iter().enumerate() {
        let stderr = run_scene(&data_dir, d, seed as u32 + 1, sink, env);
        assert_one_clear_error(&stderr, "broker", cause);
        let entries = journal_json(&data_dir);
        assert!(entries.len() > pending, "{what}: the run journaled no new alerts");
        pending = entries.len();
        assert_eq!(states(&entries, "broker"), BTreeSet::from(["pending".to_string()]), "{what}");
    }

    // Fixed: every alert of the failed runs, and this run's, arrives.
    let stderr = run_scene(&data_dir, d, 9, &sink(tls_port, &ca_file, None), &right);
    assert!(!stderr.contains("sink unavailable"), "{stderr}");
    let entries = journal_json(&data_dir);
    assert!(entries.len() > pending);
    assert_eq!(states(&entries, "broker"), BTreeSet::from(["delivered".to_string()]));
    let expected = ids(&entries);
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let got: BTreeSet<String> = std::fs::read_to_string(&received)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("dshost/street/"))
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(_, payload)| serde_json::from_str::<Value>(payload).ok())
            .filter_map(|v| v["id"].as_str().map(str::to_string))
            .collect();
        if got.is_superset(&expected) || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let missing: Vec<&String> = expected.difference(&got).take(5).collect();
    assert!(missing.is_empty(), "{} alerts never reached the subscriber, e.g. {missing:?}", expected.len() - got.len());
    let _ = subscriber.kill();
    let _ = subscriber.wait();
}

fn alert(n: u64) -> Alert {
    Alert {
        id: format!("{n:032x}"),
        ts: "2026-12-01T10:00:00.000Z".into(),
        source: "cam-1".into(),
        frame: n,
        pts_ns: n * 33_333_333,
        strategy: "yolo_filter".into(),
        strategy_version: "0.1.0+sha256:00000000".into(),
        pattern: "person".into(),
        confidence: 0.9,
        bbox: AlertBox { left: 10.0, top: 20.0, width: 30.0, height: 40.0 },
        object_id: Some(n),
        level: AlertLevel::High,
        attributes: Default::default(),
        snapshot: None,
    }
}

fn journal_states(journal: &Path, sink: &str) -> Vec<DeliveryState> {
    JournalReader::open(journal)
        .unwrap()
        .entries(&EntryFilter::default())
        .unwrap()
        .iter()
        .map(|e| e.delivery[sink].state)
        .collect()
}

/// Every alert id in a JetStream stream, read with async-nats on its own
/// connection.
fn stream_ids(url: &str, options: async_nats::ConnectOptions, stream: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = options.connect(url).await.expect("test reader connects");
        let jetstream = async_nats::jetstream::new(client);
        let mut stream = jetstream.get_stream(stream).await.expect("the stream exists");
        let info = stream.info().await.unwrap().clone();
        let mut ids = Vec::new();
        for seq in info.state.first_sequence..=info.state.last_sequence {
            let message = stream.get_raw_message(seq).await.unwrap();
            let value: Value = serde_json::from_slice(&message.payload).unwrap();
            ids.push(value["id"].as_str().unwrap().to_string());
        }
        ids
    })
}

#[test]
fn nats_over_mutual_tls_with_passwords_and_nkeys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("dshost test CA");
    let other_ca = Ca::new("someone else's CA");
    let ca_file = ca.write(d, "ca");
    let other_ca_file = other_ca.write(d, "other-ca");
    let (server_cert, server_key) = ca.server(&["localhost", "127.0.0.1"]).write(d, "server");
    let (client_cert, client_key) = ca.client("dshost").write(d, "client");
    let nkey = nkeys::KeyPair::new_user();
    let seed_file = d.join("user.nk");
    std::fs::write(&seed_file, nkey.seed().unwrap()).unwrap();
    let port = free_port();
    let _server = NatsServer::start_config(
        d,
        &format!(
            "listen: 127.0.0.1:{port}
jetstream {{ store_dir: \"{store}\" }}
tls {{ cert_file: \"{cert}\", key_file: \"{key}\", ca_file: \"{ca}\", verify: true, timeout: 2 }}
authorization {{ users: [ {{user: alice, password: s3cret}}, {{nkey: {nkey}}} ] }}
",
            store = d.join("js").display(),
            cert = server_cert.display(),
            key = server_key.display(),
            ca = ca_file.display(),
            nkey = nkey.public_key(),
        ),
        port,
    );
    let url = format!("tls://127.0.0.1:{port}");
    let sink = |name: &str, ca: &Path, auth: &str| {
        format!(
            "  sinks:
    - type: nats
      name: {name}
      url: {url}
      subject: dshost.alerts.{{source}}.{{pattern}}
      stream: ALERTS
      create_stream: true
{auth}      tls: {{ca_file: {}, cert_file: {}, key_file: {}}}
      delivery: {{retry_initial_ms: 50, retry_max_ms: 200, timeout_ms: 2000}}
  shutdown_grace_seconds: 0.5
",
            ca.display(),
            client_cert.display(),
            client_key.display(),
        )
    };
    std::env::set_var("DSHOST_TEST_NATS_PASSWORD", "s3cret");
    let password = "      user: alice\n      password_env: DSHOST_TEST_NATS_PASSWORD\n";
    let journal = d.join("alerts.db");

    // Wrong CA: nothing delivered, everything pending.
    let path = start(&sink("js", &other_ca_file, password), &journal);
    for n in 0..5 {
        path.sender.send(alert(n)).unwrap();
    }
    path.wait("failed attempts", |p| p.counter("js", failures) >= 2);
    assert_eq!(path.counter("js", delivered), 0);
    path.finish();
    assert!(journal_states(&journal, "js").iter().all(|s| *s == DeliveryState::Pending));

    // Right CA, user and password: the backlog and new alerts arrive.
    let path = start(&sink("js", &ca_file, password), &journal);
    for n in 5..10 {
        path.sender.send(alert(n)).unwrap();
    }
    path.wait("ten deliveries", |p| p.counter("js", delivered) >= 10);
    path.finish();
    assert!(journal_states(&journal, "js").iter().all(|s| *s == DeliveryState::Delivered));

    // NKey user, same stream (a second sink name: its own delivery state).
    let nkey_auth = format!("      nkey_seed_file: {}\n", seed_file.display());
    let path = start(&sink("js_nkey", &ca_file, &nkey_auth), &journal);
    for n in 10..13 {
        path.sender.send(alert(n)).unwrap();
    }
    path.wait("three deliveries by the NKey user", |p| p.counter("js_nkey", delivered) >= 3);
    path.finish();

    let reader = async_nats::ConnectOptions::with_user_and_password("alice".into(), "s3cret".into())
        .require_tls(true)
        .tls_client_config(
            dshost::tls::ClientTlsConfig {
                ca_file: Some(ca_file.clone()),
                cert_file: Some(client_cert.clone()),
                key_file: Some(client_key.clone()),
                ..Default::default()
            }
            .client_config("test reader")
            .unwrap(),
        );
    let stored = stream_ids(&url, reader, "ALERTS");
    let expected: BTreeSet<String> = (0..13).map(|n| alert(n).id).collect();
    assert_eq!(stored.iter().cloned().collect::<BTreeSet<_>>(), expected, "every alert is in the stream");
    assert_eq!(stored.len(), expected.len(), "no duplicates");
}

#[test]
fn email_batches_a_burst_into_one_mail_over_starttls_and_implicit_tls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("dshost test CA");
    let other_ca = Ca::new("someone else's CA");
    let ca_file = ca.write(d, "ca");
    let other_ca_file = other_ca.write(d, "other-ca");
    let (cert, key) = ca.server(&["localhost"]).write(d, "smtp");
    let starttls = SmtpServer::start(d, "starttls", &cert, &key, "alice", "s3cret");
    let implicit = SmtpServer::start(d, "implicit", &cert, &key, "alice", "s3cret");
    std::env::set_var("DSHOST_TEST_SMTP_PASSWORD", "s3cret");
    std::env::set_var("DSHOST_TEST_SMTP_WRONG", "wrong");
    let sink = |name: &str, port: u16, security: &str, ca: &Path, password_env: &str, max_alerts: usize| {
        format!(
            "  sinks:
    - type: email
      name: {name}
      server: localhost
      port: {port}
      security: {security}
      tls: {{ca_file: {}}}
      username: alice
      password_env: {password_env}
      from: dshost <dshost@example.com>
      to: [ops@example.com, oncall@example.com]
      subject: '[dshost] {{count}} alert(s) on {{source}}'
      batch: {{max_alerts: {max_alerts}, max_wait_seconds: 1}}
      delivery: {{retry_initial_ms: 50, retry_max_ms: 200, timeout_ms: 5000}}
  shutdown_grace_seconds: 0.5
",
            ca.display()
        )
    };
    let journal = d.join("alerts.db");

    // A burst of 12 alerts is one mail.
    let path = start(&sink("mail", starttls.port, "starttls", &ca_file, "DSHOST_TEST_SMTP_PASSWORD", 100), &journal);
    for n in 0..12 {
        path.sender.send(alert(n)).unwrap();
    }
    path.wait("12 alerts mailed", |p| p.counter("mail", delivered) >= 12);
    path.finish();
    let mails = starttls.mails();
    assert_eq!(mails.len(), 1, "a burst is one mail: {mails:?}");
    let mail = &mails[0];
    assert_eq!(mail["subject"], "[dshost] 12 alert(s) on cam-1");
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["ops@example.com", "oncall@example.com"]));
    assert_eq!(mail["tls"], true, "STARTTLS was used");
    assert_eq!(mail["authenticated"], true);
    let body = mail["body"].as_str().unwrap();
    assert_eq!(body.lines().count(), 12, "{body}");
    for n in 0..12 {
        assert!(body.contains(&alert(n).id), "alert {n} is listed: {body}");
    }
    let attachment = &mail["attachments"][0];
    assert_eq!(attachment["filename"], "alerts.jsonl");
    use base64::Engine;
    let jsonl = base64::engine::general_purpose::STANDARD.decode(attachment["data"].as_str().unwrap()).unwrap();
    let attached: Vec<String> = String::from_utf8(jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(attached, (0..12).map(|n| alert(n).id).collect::<Vec<_>>());

    // Implicit TLS, wrong CA then wrong password: nothing mailed, all pending.
    let journal = d.join("alerts-implicit.db");
    for (n, ca, password_env) in
        [(100, &other_ca_file, "DSHOST_TEST_SMTP_PASSWORD"), (101, &ca_file, "DSHOST_TEST_SMTP_WRONG")]
    {
        let path = start(&sink("mail", implicit.port, "implicit", ca, password_env, 5), &journal);
        path.sender.send(alert(n)).unwrap();
        path.wait("failed attempts", |p| p.counter("mail", failures) >= 2);
        assert_eq!(path.counter("mail", delivered), 0);
        path.finish();
        assert!(implicit.mails().is_empty());
    }
    assert!(journal_states(&journal, "mail").iter().all(|s| *s == DeliveryState::Pending));
    // Fixed: the backlog of two and 11 more, 5 to a mail.
    let path = start(&sink("mail", implicit.port, "implicit", &ca_file, "DSHOST_TEST_SMTP_PASSWORD", 5), &journal);
    for n in 102..113 {
        path.sender.send(alert(n)).unwrap();
    }
    path.wait("13 alerts mailed", |p| p.counter("mail", delivered) >= 13);
    path.finish();
    let mails = implicit.mails();
    let per_mail: Vec<usize> = mails.iter().map(|m| m["body"].as_str().unwrap().lines().count()).collect();
    assert!(per_mail.iter().all(|n| *n <= 5) && per_mail.iter().sum::<usize>() == 13, "{per_mail:?}");
    let mailed: BTreeSet<String> = mails
        .iter()
        .flat_map(|m| {
            m["body"].as_str().unwrap().lines().map(|l| l.rsplit(' ').next().unwrap().to_string()).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(mailed, (100..113).map(|n| alert(n).id).collect::<BTreeSet<_>>());
    assert!(mails.iter().all(|m| m["tls"] == true && m["authenticated"] == true), "{mails:?}");
    assert!(journal_states(&journal, "mail").iter().all(|s| *s == DeliveryState::Delivered));
}

fn https_agent(ca_file: &Path) -> ureq::Agent {
    let config = dshost::tls::ClientTlsConfig { ca_file: Some(ca_file.to_path_buf()), ..Default::default() }
        .client_config("test client")
        .unwrap();
    ureq::AgentBuilder::new().tls_config(Arc::new(config)).timeout(Duration::from_secs(10)).build()
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_dshost(dir: &Path, config: &str, extra: &[&str], env: &[(&str, &str)], stderr: PathBuf) -> Child {
    let path = dir.join(format!("config-{}.yaml", fastrand::u32(..)));
    std::fs::write(&path, config).unwrap();
    let mut command = dshost(&dir.join("data"));
    command
        .env("DSHOST_ALERTS__JOURNAL__PATH", common::unique_journal())
        .env("RUST_LOG", "info")
        .args(["run", "--no-watch", "--config"])
        .arg(&path)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap());
    for (k, v) in env {
        command.env(k, v);
    }
    Child(command.spawn().unwrap())
}

#[test]
fn https_api_needs_the_token_and_a_plaintext_token_off_loopback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("dshost test CA");
    let ca_file = ca.write(d, "ca");
    let (cert, key) = ca.server(&["localhost", "127.0.0.1"]).write(d, "api");
    let source = "sources:\n  - id: a\n    uri: test://ball?width=160&height=120&fps=30\n";

    // Off loopback with a token but no TLS: refused, with the fix named.
    let output = dshost(&d.join("data"))
        .env("DSHOST_ALERTS__JOURNAL__PATH", common::unique_journal())
        .env("DSHOST_MONITORING__HTTP__TOKEN", "s3cret")
        .args(["run", "--no-watch", "--http", "0.0.0.0:0", "--config"])
        .arg({
            let path = d.join("plain.yaml");
            std::fs::write(&path, format!("{source}monitoring:\n  http: {{address: '127.0.0.1:1'}}\n")).unwrap();
            path
        })
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to send the bearer token in clear text"), "{stderr}");
    assert!(stderr.contains("monitoring.http.tls"), "{stderr}");

    // HTTPS on all interfaces with the token (the test talks to it on loopback).
    let port = free_port();
    let config = format!(
        "{source}monitoring:\n  http:\n    address: 0.0.0.0:{port}\n    tls: {{cert: {}, key: {}}}\n",
        cert.display(),
        key.display()
    );
    let log = d.join("https.log");
    let _dshost = start_dshost(d, &config, &[], &[("DSHOST_MONITORING__HTTP__TOKEN", "s3cret")], log.clone());
    wait_for_line(&log, "HTTP server listening", Duration::from_secs(60));
    let agent = https_agent(&ca_file);
    let base = format!("https://127.0.0.1:{port}");
    let health = agent.get(&format!("{base}/healthz")).call().expect("HTTPS health");
    assert_eq!(health.into_json::<Value>().unwrap()["status"], "ok");
    match agent.get(&format!("{base}/metrics")).call() {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("expected 401 without the token, got {other:?}"),
    }
    match agent.get(&format!("{base}/metrics")).set("Authorization", "Bearer s3cre").call() {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("expected 401 with a wrong token, got {other:?}"),
    }
    let metrics = agent
        .get(&format!("{base}/metrics"))
        .set("Authorization", "Bearer s3cret")
        .call()
        .expect("metrics with the token")
        .into_string()
        .unwrap();
    assert!(metrics.contains("dshost_source_frames_total"), "{metrics}");
    // Plain HTTP to the HTTPS port gets no answer, and a client without
    // the CA refuses the server.
    assert!(ureq::get(&format!("http://127.0.0.1:{port}/healthz")).call().is_err());
    let untrusting = https_agent(&Ca::new("another CA").write(d, "another"));
    let refused = untrusting.get(&format!("{base}/healthz")).call().unwrap_err().to_string();
    assert!(refused.contains("UnknownIssuer") || refused.contains("issuer"), "{refused}");
}

/// A NATS JWT (header.claims.signature), signed with an NKey as nsc does.
fn nats_jwt(signer: &nkeys::KeyPair, subject: &str, name: &str, nats: Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": format!("{:032X}", fastrand::u128(..)),
        "iat": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        "iss": signer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let claims = b64.encode(claims.to_string());
    let signature = signer.sign(format!("{header}.{claims}").as_bytes()).unwrap();
    format!("{header}.{claims}.{}", b64.encode(signature))
}

#[test]
fn nats_with_a_creds_file_in_operator_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Operator -> account (with JetStream) -> user, as `nsc` would make them.
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = nats_jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true, "conn": -1,
        "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
    });
    let account_jwt = nats_jwt(
        &operator,
        &account.public_key(),
        "alerts",
        serde_json::json!({"limits": unlimited, "type": "account", "version": 2}),
    );
    // JetStream needs a system account.
    let system = nkeys::KeyPair::new_account();
    let system_jwt = nats_jwt(
        &operator,
        &system.public_key(),
        "SYS",
        serde_json::json!({"limits": {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true, "conn": -1, "leaf": -1}, "type": "account", "version": 2}),
    );
    let user_jwt = nats_jwt(
        &account,
        &user.public_key(),
        "dshost",
        serde_json::json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}),
    );
    let creds = d.join("dshost.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        ),
    )
    .unwrap();
    // Someone else's user: same shape, signed by an account the server does not know.
    let stranger_account = nkeys::KeyPair::new_account();
    let stranger = nkeys::KeyPair::new_user();
    let stranger_jwt = nats_jwt(
        &stranger_account,
        &stranger.public_key(),
        "stranger",
        serde_json::json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}),
    );
    let stranger_creds = d.join("stranger.creds");
    std::fs::write(
        &stranger_creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{stranger_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            stranger.seed().unwrap()
        ),
    )
    .unwrap();

    let port = free_port();
    let _server = NatsServer::start_config(
        d,
        &format!(
            "listen: 127.0.0.1:{port}
jetstream {{ store_dir: \"{}\" }}
operator: {operator_jwt}
system_account: {system}
resolver: MEMORY
resolver_preload: {{ {account}: {account_jwt}, {system}: {system_jwt} }}
",
            d.join("js").display(),
            account = account.public_key(),
            system = system.public_key(),
        ),
        port,
    );
    let url = format!("nats://127.0.0.1:{port}");
    let sink = |creds: &Path| {
        format!(
            "  sinks:
    - type: nats
      url: {url}
      subject: dshost.alerts.{{source}}.{{pattern}}
      stream: ALERTS
      create_stream: true
      credentials_file: {}
      delivery: {{retry_initial_ms: 50, retry_max_ms: 200, timeout_ms: 2000}}
  shutdown_grace_seconds: 0.5
",
            creds.display()
        )
    };
    let journal = d.join("alerts.db");
    let path = start(&sink(&stranger_creds), &journal);
    path.sender.send(alert(1)).unwrap();
    path.wait("failed attempts", |p| p.counter("nats", failures) >= 2);
    assert_eq!(path.counter("nats", delivered), 0);
    path.finish();
    assert!(journal_states(&journal, "nats").iter().all(|s| *s == DeliveryState::Pending));

    let path = start(&sink(&creds), &journal);
    path.sender.send(alert(2)).unwrap();
    path.wait("two deliveries", |p| p.counter("nats", delivered) >= 2);
    path.finish();
    let reader = async_nats::ConnectOptions::with_credentials(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    let stored = stream_ids(&url, reader, "ALERTS");
    assert_eq!(stored, vec![alert(1).id, alert(2).id]);
}
