//! NATS publisher, with JetStream publish acknowledgements.
//!
//! The client side of the text protocol that publishing needs (INFO,
//! CONNECT, PING/PONG, SUB, PUB/HPUB, MSG/HMSG), written here for the same
//! reason as the MQTT sink: the journal may mark an alert delivered only
//! when JetStream has acknowledged *that* message. Each alert carries its id
//! as `Nats-Msg-Id`, so JetStream drops a redelivery inside the stream's
//! duplicate window. With `jetstream: false` the alert is a core NATS
//! publish, confirmed by a PING/PONG round trip (the server has read it; no
//! storage guarantee). Plain TCP only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{fill_template, DeliveryConfig, DeliveryError, PayloadFormat, Sink};
use crate::alerts::alert::Alert;
use crate::redact::redact_text;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    pub name: Option<String>,
    /// `nats://host:port` (user:password@ or token@ allowed, but prefer
    /// `password_env` / `token_env`).
    pub url: String,
    /// Placeholders: {source}, {strategy}, {pattern}, {level}.
    pub subject: String,
    /// Publish through JetStream and wait for its acknowledgement.
    pub jetstream: bool,
    /// Stream to create when missing (needs `create_stream`); its subjects
    /// are the subject template with each placeholder as `*`.
    pub stream: Option<String>,
    pub create_stream: bool,
    pub user: Option<String>,
    pub password_env: Option<String>,
    pub token_env: Option<String>,
    pub format: PayloadFormat,
    pub delivery: DeliveryConfig,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            name: None,
            url: "nats://127.0.0.1:4222".into(),
            subject: "dshost.alerts.{source}.{pattern}".into(),
            jetstream: true,
            stream: None,
            create_stream: false,
            user: None,
            password_env: None,
            token_env: None,
            format: PayloadFormat::Dshost,
            delivery: DeliveryConfig::default(),
        }
    }
}

impl NatsConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        match url::Url::parse(&self.url) {
            Ok(url) if url.scheme() == "nats" && url.host().is_some() => {}
            _ => problems.push(("url".into(), "must look like nats://host:4222".into())),
        }
        if self.subject.is_empty() || self.subject.contains([' ', '*', '>']) {
            problems.push(("subject".into(), "must be non-empty, without spaces or the wildcards * and >".into()));
        }
        for unknown in super::unknown_placeholders(&self.subject) {
            problems.push((
                "subject".into(),
                format!("unknown placeholder {{{unknown}}}; use source, strategy, pattern or level"),
            ));
        }
        if self.create_stream && self.stream.is_none() {
            problems.push(("create_stream".into(), "needs `stream` (the stream's name)".into()));
        }
        if let Some(stream) = &self.stream {
            if stream.is_empty() || stream.contains(['.', ' ', '*', '>']) {
                problems.push(("stream".into(), "a stream name has no dots, spaces or wildcards".into()));
            }
        }
        if !self.jetstream && self.stream.is_some() {
            problems.push(("stream".into(), "only used with jetstream: true".into()));
        }
        problems
    }

    /// The stream's subject filter: each placeholder becomes `*`.
    fn stream_subjects(&self) -> String {
        let mut out = String::new();
        let mut rest = self.subject.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else { break };
            out.push_str(&rest[..open]);
            out.push('*');
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Subject tokens may not hold `.`, `*`, `>` or spaces from data.
fn clean_subject_value(value: &str) -> String {
    value
        .chars()
        .map(|c| if matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control() { '_' } else { c })
        .collect()
}

enum Incoming {
    Msg { subject: String, headers: Vec<u8>, payload: Vec<u8> },
    Ping,
    Pong,
    Other,
    Err(String),
}

struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    inbox: String,
    next_reply: u64,
    last_io: Instant,
}

impl Connection {
    fn read(&mut self) -> std::io::Result<Incoming> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        self.last_io = Instant::now();
        let line = line.trim_end();
        let mut parts = line.split_ascii_whitespace();
        let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unexpected NATS line: {line}"));
        Ok(match parts.next().unwrap_or("") {
            "PING" => Incoming::Ping,
            "PONG" => Incoming::Pong,
            "-ERR" => Incoming::Err(line[4..].trim().trim_matches('\'').to_string()),
            verb @ ("MSG" | "HMSG") => {
                let fields: Vec<&str> = parts.collect();
                let subject = fields.first().ok_or_else(invalid)?.to_string();
                let number = |s: Option<&&str>| s.and_then(|v| v.parse::<usize>().ok()).ok_or_else(invalid);
                let (header_len, total) = if verb == "HMSG" {
                    (number(fields.get(fields.len().wrapping_sub(2)))?, number(fields.last())?)
                } else {
                    (0, number(fields.last())?)
                };
                if header_len > total || total > 64 * 1024 * 1024 {
                    return Err(invalid());
                }
                let mut data = vec![0u8; total + 2];
                self.reader.read_exact(&mut data)?;
                data.truncate(total);
                let payload = data.split_off(header_len);
                Incoming::Msg { subject, headers: data, payload }
            }
            _ => Incoming::Other,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)?;
        self.last_io = Instant::now();
        Ok(())
    }

    /// Reads until the reply on `subject`, answering the server's PINGs.
    fn await_reply(&mut self, subject: &str, timeout: Duration) -> Result<(Vec<u8>, Vec<u8>), String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read().map_err(|e| e.to_string())? {
                Incoming::Msg { subject: s, headers, payload } if s == subject => return Ok((headers, payload)),
                Incoming::Ping => self.write(b"PONG\r\n").map_err(|e| e.to_string())?,
                Incoming::Err(message) => return Err(format!("server error: {message}")),
                _ => {}
            }
            if Instant::now() > deadline {
                return Err(format!("no reply within {timeout:?}"));
            }
        }
    }

    fn await_pong(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read().map_err(|e| e.to_string())? {
                Incoming::Pong => return Ok(()),
                Incoming::Ping => self.write(b"PONG\r\n").map_err(|e| e.to_string())?,
                Incoming::Err(message) => return Err(format!("server error: {message}")),
                _ => {}
            }
            if Instant::now() > deadline {
                return Err(format!("no PONG within {timeout:?}"));
            }
        }
    }

    /// Request/reply; `msg_id` becomes the `Nats-Msg-Id` header.
    fn request(
        &mut self,
        subject: &str,
        payload: &[u8],
        msg_id: Option<&str>,
        timeout: Duration,
    ) -> Result<(Vec<u8>, Vec<u8>), String> {
        self.next_reply += 1;
        let reply = format!("{}.{}", self.inbox, self.next_reply);
        let mut out = Vec::with_capacity(payload.len() + 128);
        match msg_id {
            Some(id) => {
                let headers = format!("NATS/1.0\r\nNats-Msg-Id: {id}\r\n\r\n");
                out.extend_from_slice(
                    format!("HPUB {subject} {reply} {} {}\r\n", headers.len(), headers.len() + payload.len())
                        .as_bytes(),
                );
                out.extend_from_slice(headers.as_bytes());
            }
            None => out.extend_from_slice(format!("PUB {subject} {reply} {}\r\n", payload.len()).as_bytes()),
        }
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        self.write(&out).map_err(|e| e.to_string())?;
        self.await_reply(&reply, timeout)
    }
}

pub struct NatsSink {
    config: NatsConfig,
    shown_url: String,
    address: String,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
    timeout: Duration,
    connection: Option<Connection>,
}

impl NatsSink {
    pub fn new(config: &NatsConfig) -> Result<NatsSink, String> {
        let url = url::Url::parse(&config.url).map_err(|e| format!("nats url: {e}"))?;
        let host = url.host_str().ok_or("nats url: no host")?;
        let address = format!("{host}:{}", url.port().unwrap_or(4222));
        let (mut user, mut password, mut token) = (config.user.clone(), None, None);
        if !url.username().is_empty() {
            match url.password() {
                Some(p) => (user, password) = (Some(url.username().to_string()), Some(p.to_string())),
                None => token = Some(url.username().to_string()),
            }
        }
        if let Some(p) = super::secret(&None, &config.password_env, "nats password")? {
            password = Some(p);
        }
        if let Some(t) = super::secret(&None, &config.token_env, "nats token")? {
            token = Some(t);
        }
        Ok(NatsSink {
            config: config.clone(),
            shown_url: redact_text(&config.url),
            address,
            user,
            password,
            token,
            timeout: config.delivery.timeout(),
            connection: None,
        })
    }

    fn connect(&mut self) -> Result<(), String> {
        let fail = |e: String| format!("NATS at {}: {e}", self.shown_url);
        let address = std::net::ToSocketAddrs::to_socket_addrs(&self.address)
            .map_err(|e| fail(e.to_string()))?
            .next()
            .ok_or_else(|| fail("no address".into()))?;
        let stream =
            TcpStream::connect_timeout(&address, self.timeout).map_err(|e| fail(format!("cannot connect: {e}")))?;
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(self.timeout)).ok();
        stream.set_write_timeout(Some(self.timeout)).ok();
        let writer = stream.try_clone().map_err(|e| fail(e.to_string()))?;
        let inbox = format!("_INBOX.dshost.{}.{:x}", std::process::id(), fastrand::u64(..));
        let mut connection =
            Connection { reader: BufReader::new(stream), writer, inbox, next_reply: 0, last_io: Instant::now() };
        let mut info = String::new();
        connection.reader.read_line(&mut info).map_err(|e| fail(e.to_string()))?;
        if !info.starts_with("INFO ") {
            return Err(fail(format!("not a NATS server (it said {:?})", info.trim_end())));
        }
        let mut options = serde_json::json!({
            "verbose": false, "pedantic": false, "lang": "rust", "name": "dshost",
            "version": env!("CARGO_PKG_VERSION"), "protocol": 1, "headers": true, "no_responders": true,
        });
        if let Some(user) = &self.user {
            options["user"] = user.clone().into();
        }
        if let Some(password) = &self.password {
            options["pass"] = password.clone().into();
        }
        if let Some(token) = &self.token {
            options["auth_token"] = token.clone().into();
        }
        let hello = format!("CONNECT {options}\r\nPING\r\nSUB {}.* 1\r\n", connection.inbox);
        connection.write(hello.as_bytes()).map_err(|e| fail(e.to_string()))?;
        connection.await_pong(self.timeout).map_err(fail)?;
        if let (true, Some(stream)) = (self.config.create_stream, self.config.stream.clone()) {
            self.ensure_stream(&mut connection, &stream).map_err(fail)?;
        }
        self.connection = Some(connection);
        Ok(())
    }

    fn ensure_stream(&self, connection: &mut Connection, stream: &str) -> Result<(), String> {
        let (_, info) = connection.request(&format!("$JS.API.STREAM.INFO.{stream}"), b"", None, self.timeout)?;
        let info: serde_json::Value = serde_json::from_slice(&info).unwrap_or_default();
        if info.get("error").is_none() {
            return Ok(());
        }
        if info["error"]["code"] != 404 {
            return Err(format!("JetStream: {}", info["error"]["description"]));
        }
        let create = serde_json::json!({
            "name": stream,
            "subjects": [self.config.stream_subjects()],
            "storage": "file",
            // Two minutes of de-duplication by Nats-Msg-Id (the alert id).
            "duplicate_window": 120_000_000_000u64,
        });
        let (_, answer) = connection.request(
            &format!("$JS.API.STREAM.CREATE.{stream}"),
            create.to_string().as_bytes(),
            None,
            self.timeout,
        )?;
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
        match answer.get("error") {
            Some(error) => Err(format!("cannot create JetStream stream {stream}: {}", error["description"])),
            None => {
                tracing::info!(stream, subjects = %self.config.stream_subjects(), "created the JetStream stream");
                Ok(())
            }
        }
    }

    fn publish(&mut self, subject: &str, alert: &Alert, payload: &[u8]) -> Result<(), DeliveryError> {
        let timeout = self.timeout;
        let shown = self.shown_url.clone();
        let jetstream = self.config.jetstream;
        let Some(connection) = self.connection.as_mut() else {
            return Err(DeliveryError::Retry("not connected".into()));
        };
        if !jetstream {
            let mut out = format!("PUB {subject} {}\r\n", payload.len()).into_bytes();
            out.extend_from_slice(payload);
            out.extend_from_slice(b"\r\nPING\r\n");
            connection.write(&out).map_err(|e| DeliveryError::Retry(format!("NATS at {shown}: {e}")))?;
            return connection.await_pong(timeout).map_err(|e| DeliveryError::Retry(format!("NATS at {shown}: {e}")));
        }
        let (headers, answer) = connection
            .request(subject, payload, Some(&alert.id), timeout)
            .map_err(|e| DeliveryError::Retry(format!("NATS at {shown}: {e}")))?;
        if headers.starts_with(b"NATS/1.0 503") {
            return Err(DeliveryError::Retry(format!(
                "NATS at {shown}: no JetStream stream takes subject {subject} (create one, or set stream + create_stream)"
            )));
        }
        let answer: serde_json::Value = serde_json::from_slice(&answer)
            .map_err(|_| DeliveryError::Retry(format!("NATS at {shown}: unreadable JetStream acknowledgement")))?;
        if let Some(error) = answer.get("error") {
            return Err(DeliveryError::Retry(format!("NATS at {shown}: JetStream refused: {}", error["description"])));
        }
        if answer.get("seq").is_none() {
            return Err(DeliveryError::Retry(format!("NATS at {shown}: JetStream answered without a sequence")));
        }
        Ok(())
    }
}

/// One request/reply on a fresh core-NATS connection (for tools and tests,
/// e.g. reading a stream through the JetStream API).
pub fn request_once(url: &str, subject: &str, payload: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let config = NatsConfig {
        url: url.to_string(),
        jetstream: false,
        delivery: DeliveryConfig { timeout_ms: timeout.as_millis() as u64, ..Default::default() },
        ..Default::default()
    };
    let mut sink = NatsSink::new(&config)?;
    sink.connect()?;
    let connection = sink.connection.as_mut().ok_or("not connected")?;
    connection.request(subject, payload, None, timeout).map(|(_, payload)| payload)
}

impl Sink for NatsSink {
    fn deliver(&mut self, alert: &Alert, payload: &[u8]) -> Result<(), DeliveryError> {
        if self.connection.is_none() {
            self.connect().map_err(DeliveryError::Retry)?;
        }
        let subject = fill_template(&self.config.subject, alert, clean_subject_value);
        let result = self.publish(&subject, alert, payload);
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    fn idle(&mut self) {
        let timeout = self.timeout;
        let Some(connection) = self.connection.as_mut() else { return };
        if connection.last_io.elapsed() < Duration::from_secs(30) {
            return;
        }
        // Our PING also drains the server's PINGs, which it otherwise counts
        // as unanswered and closes the connection over.
        if connection.write(b"PING\r\n").is_err() || connection.await_pong(timeout).is_err() {
            self.connection = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_subjects_and_clean_values() {
        let config = NatsConfig::default();
        assert_eq!(config.stream_subjects(), "dshost.alerts.*.*");
        let mut alert = crate::alerts::sinks::tests::alert();
        alert.source = "gate.north 1".into();
        assert_eq!(fill_template(&config.subject, &alert, clean_subject_value), "dshost.alerts.gate_north_1.person");
    }

    #[test]
    fn validation() {
        assert!(NatsConfig::default().validate().is_empty());
        let config =
            NatsConfig { url: "http://x".into(), subject: "a.>".into(), create_stream: true, ..Default::default() };
        let fields: Vec<String> = config.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, vec!["url", "subject", "create_stream"]);
    }

    #[test]
    fn credentials_from_the_url_are_used_but_never_shown() {
        let config = NatsConfig { url: "nats://alice:s3cret@127.0.0.1:4333".into(), ..Default::default() };
        let sink = NatsSink::new(&config).unwrap();
        assert_eq!(sink.address, "127.0.0.1:4333");
        assert_eq!(sink.password.as_deref(), Some("s3cret"));
        assert!(!sink.shown_url.contains("s3cret"));
    }
}
