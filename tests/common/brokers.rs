//! Real message brokers for the alert tests, started on 127.0.0.1 with free
//! ports (mosquitto and nats-server from Debian; `scripts/setup.sh`
//! installs them), stopped and restarted by the tests.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("no free port")
}

pub fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on 127.0.0.1:{port} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ready_lines(log: &Path, ready: &str) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.contains(ready)).count()
}

/// Spawns a server `what` with its stderr appended to `log` and returns it
/// once the log has one more line containing `ready` than before (logs
/// append across restarts) and `port` accepts connections. A free port can
/// be taken by someone else between `free_port` and the bind, so a server
/// that exits instead is an error carrying its log, never a silent wait on
/// somebody else's listener.
fn spawn_server(mut command: Command, log: &Path, what: &str, ready: &str, port: u16) -> Result<Child, String> {
    let before = ready_lines(log, ready);
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} (scripts/setup.sh installs it): {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready_lines(log, ready) <= before {
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("{what} did not start ({exited:?}); its log {}:\n{text}", log.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_port(port, Duration::from_secs(10));
    Ok(child)
}

/// Runs `start` on a fresh free port until it succeeds (three tries).
fn on_free_port<T>(mut start: impl FnMut(u16) -> Result<T, String>) -> T {
    let mut failures = Vec::new();
    for _ in 0..3 {
        match start(free_port()) {
            Ok(server) => return server,
            Err(e) => failures.push(e),
        }
    }
    panic!("{}", failures.join("\n"));
}

fn stop(child: &mut Option<Child>, signal: &str) {
    if let Some(mut child) = child.take() {
        let _ = Command::new("kill").args([signal, &child.id().to_string()]).status();
        let _ = child.wait();
    }
}

/// mosquitto with on-disk persistence, so a subscriber's persistent session
/// (and the QoS 1 messages queued for it) survives a broker restart.
pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// On a port that turns out to be taken (see `spawn_server`) it tries
    /// the next free one.
    pub fn start(dir: &Path) -> Mosquitto {
        on_free_port(|port| {
            let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "root".into());
            // `user`: as root, mosquitto would otherwise switch to the
            // `mosquitto` user and could not write its database here.
            let config = format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\nuser {user}\n",
                dir.display()
            );
            std::fs::write(dir.join("mosquitto.conf"), config).expect("write mosquitto.conf");
            let mut broker = Mosquitto { port, dir: dir.to_path_buf(), child: None };
            broker.try_restart().map(|()| broker)
        })
    }

    /// Starts mosquitto again with the same config, port and database.
    pub fn restart(&mut self) {
        if let Err(e) = self.try_restart() {
            panic!("{e}");
        }
    }

    fn try_restart(&mut self) -> Result<(), String> {
        let mut command = Command::new("mosquitto");
        command.arg("-c").arg(self.dir.join("mosquitto.conf"));
        self.child = Some(spawn_server(command, &self.dir.join("mosquitto.log"), "mosquitto", "running", self.port)?);
        Ok(())
    }

    /// SIGTERM: mosquitto saves its sessions and queued messages.
    pub fn stop(&mut self) {
        stop(&mut self.child, "-TERM");
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        stop(&mut self.child, "-KILL");
    }
}

/// A `mosquitto_sub` client with a persistent session that prints every
/// message (topic and payload) on its own line.
pub struct MqttSubscriber {
    child: Child,
    port: u16,
    topic: String,
    pub output: PathBuf,
}

impl MqttSubscriber {
    pub fn start(port: u16, topic: &str, output: PathBuf) -> MqttSubscriber {
        let child = Self::spawn(port, topic, &output);
        MqttSubscriber { child, port, topic: topic.to_string(), output }
    }

    /// Output appends, so a respawned client (same id, same persistent
    /// session) adds to what the first one printed.
    fn spawn(port: u16, topic: &str, output: &Path) -> Child {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(output).unwrap();
        let stderr =
            std::fs::OpenOptions::new().create(true).append(true).open(output.with_extension("stderr")).unwrap();
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic, "-q", "1", "-c", "-i"])
            .arg(format!("dshost-test-sub-{}-{port}", std::process::id()))
            .arg("-v")
            .stdout(file)
            .stderr(stderr)
            .spawn()
            .expect("cannot start mosquitto_sub (scripts/setup.sh installs mosquitto-clients)")
    }

    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.output).unwrap_or_default().lines().map(str::to_string).collect()
    }

    /// Returns once the subscription is live: a probe published on
    /// `probe_topic` (which the subscription must match) has arrived. The
    /// probe line stays in the output; it is no alert.
    /// mosquitto_sub gives up when its first connection fails (it only
    /// reconnects once it has been connected), so an exited client is
    /// started again here.
    pub fn wait_subscribed(&mut self, probe_topic: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.child = Self::spawn(self.port, &self.topic, &self.output);
            }
            let published = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", probe_topic, "-q", "1", "-m", "probe"])
                .status()
                .expect("cannot run mosquitto_pub (scripts/setup.sh installs mosquitto-clients)");
            let wanted = format!("{probe_topic} probe");
            if published.success() && self.lines().contains(&wanted) {
                return;
            }
            if std::time::Instant::now() >= deadline {
                let stderr = std::fs::read_to_string(self.output.with_extension("stderr")).unwrap_or_default();
                panic!(
                    "mosquitto_sub never received the probe on {probe_topic}; its stderr: {stderr:?}, its output: {:?}",
                    self.lines()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for MqttSubscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nats-server with JetStream storing under a directory that survives
/// restarts.
pub struct NatsServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Like `Mosquitto::start`, it tries another port if its first one
    /// turns out to be taken.
    pub fn start(dir: &Path) -> NatsServer {
        on_free_port(|port| {
            let mut server = NatsServer { port, dir: dir.to_path_buf(), child: None };
            server.try_restart().map(|()| server)
        })
    }

    pub fn restart(&mut self) {
        if let Err(e) = self.try_restart() {
            panic!("{e}");
        }
    }

    fn try_restart(&mut self) -> Result<(), String> {
        let mut command = Command::new("nats-server");
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"]).arg(self.dir.join("jetstream"));
        self.child =
            Some(spawn_server(command, &self.dir.join("nats.log"), "nats-server", "Server is ready", self.port)?);
        Ok(())
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        stop(&mut self.child, "-KILL");
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        stop(&mut self.child, "-KILL");
    }
}

impl Mosquitto {
    /// mosquitto with a config of the test's own (TLS listeners, password
    /// files); waits until every port in `ports` accepts connections.
    pub fn start_config(dir: &Path, body: &str, ports: &[u16]) -> Mosquitto {
        let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "root".into());
        let config = format!(
            "{body}\npersistence true\npersistence_location {}/\nautosave_interval 1\nuser {user}\nlog_dest stderr\nlog_type all\n",
            dir.display()
        );
        std::fs::write(dir.join("mosquitto.conf"), config).expect("write mosquitto.conf");
        let mut broker = Mosquitto { port: ports[0], dir: dir.to_path_buf(), child: None };
        broker.restart();
        for port in &ports[1..] {
            wait_for_port(*port, Duration::from_secs(10));
        }
        broker
    }
}

/// Waits until `path` holds a line containing `needle` (a log line, a
/// client's acknowledgement), e.g. mosquitto_sub -d's "received SUBACK".
pub fn wait_for_line(path: &Path, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if std::fs::read_to_string(path).unwrap_or_default().lines().any(|l| l.contains(needle)) {
            return;
        }
        assert!(Instant::now() < deadline, "no line with {needle:?} in {} after {timeout:?}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl NatsServer {
    /// nats-server with a config file of the test's own (TLS, users);
    /// `port` must be the one the config listens on.
    pub fn start_config(dir: &Path, config: &str, port: u16) -> NatsServer {
        std::fs::write(dir.join("nats.conf"), config).expect("write nats.conf");
        let mut command = Command::new("nats-server");
        command.arg("-c").arg(dir.join("nats.conf"));
        let child = spawn_server(command, &dir.join("nats.log"), "nats-server", "Server is ready", port)
            .unwrap_or_else(|e| panic!("{e}"));
        NatsServer { port, dir: dir.to_path_buf(), child: Some(child) }
    }
}

/// An SMTP server (aiosmtpd, tests/support/smtp_server.py) with TLS and
/// AUTH; every mail it accepts becomes a JSON file parsed by Python's email
/// package.
pub struct SmtpServer {
    pub port: u16,
    out: PathBuf,
    child: Child,
}

impl SmtpServer {
    /// `mode`: `starttls` or `implicit`.
    pub fn start(dir: &Path, mode: &str, cert: &Path, key: &Path, user: &str, password: &str) -> SmtpServer {
        use std::io::BufRead;
        let port = free_port();
        let out = dir.join(format!("mail-{port}"));
        std::fs::create_dir_all(&out).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/smtp_server.py");
        // Debian's interpreter: python3-aiosmtpd installs for it.
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--mode", mode, "--user", user, "--password", password])
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join(format!("smtp-{port}.log"))).unwrap())
            .spawn()
            .expect("cannot start the SMTP server (scripts/setup.sh installs python3-aiosmtpd)");
        let mut ready = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready", "the SMTP server did not start; see {}", dir.display());
        SmtpServer { port, out, child }
    }

    /// Every mail received so far, oldest first.
    pub fn mails(&self) -> Vec<serde_json::Value> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        paths.retain(|p| p.extension().is_some_and(|e| e == "json"));
        paths.sort();
        paths.iter().map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
