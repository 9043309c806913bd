//! MQTT 3.1.1 publisher, QoS 1 (or 0), over TCP or TLS.
//!
//! Only the publishing side of the protocol, written here rather than taken
//! from a client crate: at-least-once through our journal needs to know that
//! *this* alert was acknowledged (PUBACK for its packet id) before the
//! journal marks it delivered. Compared (2026-12): rumqttc's publish returns
//! no packet id, so an acknowledgement cannot be paired with its publish
//! (its issues #349, #805, #1007, open); paho-mqtt has per-message delivery
//! tokens but wraps the Paho C library (built with cmake, TLS through
//! OpenSSL: a second TLS stack beside rustls and a C build on every
//! machine); the newer pure-Rust clients with acknowledgement tokens are
//! young single-maintainer crates. Our client is small, one alert is in
//! flight at a time (thousands per second on loopback, docs/benchmarks.md),
//! and TLS is rustls through [`crate::tls`].
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{fill_template, DeliveryConfig, DeliveryError, PayloadFormat, Sink};
use crate::alerts::alert::Alert;
use crate::tls::ClientTlsConfig;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    pub name: Option<String>,
    /// Broker `host:port`, `mqtt://host[:port]` or `mqtts://host[:port]`
    /// (TLS, port 8883 by default).
    pub address: String,
    /// TLS settings; present (or `mqtts://`) = TLS on.
    pub tls: Option<ClientTlsConfig>,
    /// Placeholders: {source}, {strategy}, {pattern}, {level}.
    pub topic: String,
    /// 0 or 1.
    pub qos: u8,
    pub retain: bool,
    /// Also publish each alert's JPEG to `<topic>/snapshot`, retained (the
    /// latest per source and pattern, like Frigate's `.../snapshot`), before
    /// the alert itself; off by default, since subscribers of `topic/#`
    /// would otherwise get binary messages among the JSON.
    pub snapshots: bool,
    /// Default: `dshost-<sink name>-<process id>`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password: Option<String>,
    pub keep_alive_seconds: u16,
    pub format: PayloadFormat,
    pub delivery: DeliveryConfig,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            name: None,
            address: "127.0.0.1:1883".into(),
            tls: None,
            topic: "dshost/alerts/{source}/{pattern}".into(),
            qos: 1,
            retain: false,
            snapshots: false,
            client_id: None,
            username: None,
            password_env: None,
            password: None,
            keep_alive_seconds: 30,
            format: PayloadFormat::Dshost,
            delivery: DeliveryConfig::default(),
        }
    }
}

impl MqttConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.endpoint().is_none() {
            problems.push((
                "address".into(),
                "must be host:port, mqtt://host[:port] or mqtts://host[:port], e.g. 127.0.0.1:1883".into(),
            ));
        }
        if let Some(tls) = &self.tls {
            problems.extend(tls.validate());
        }
        if self.qos > 1 {
            problems.push(("qos".into(), "0 or 1 (QoS 2 is not supported; the journal gives at-least-once)".into()));
        }
        if self.topic.is_empty() || self.topic.contains(['+', '#']) {
            problems.push(("topic".into(), "must be non-empty and free of the wildcards + and #".into()));
        }
        for unknown in super::unknown_placeholders(&self.topic) {
            problems.push((
                "topic".into(),
                format!("unknown placeholder {{{unknown}}}; use source, strategy, pattern or level"),
            ));
        }
        if self.password.is_some() && self.password_env.is_some() {
            problems.push(("password".into(), "set either password or password_env, not both".into()));
        }
        problems
    }
}

/// Where to connect: host, port, and whether TLS is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl MqttConfig {
    /// The broker's host and port (no lookup); `None` if malformed.
    pub fn endpoint(&self) -> Option<Endpoint> {
        let (scheme_tls, rest) = match self.address.split_once("://") {
            Some(("mqtt" | "tcp", rest)) => (false, rest),
            Some(("mqtts" | "ssl" | "tls", rest)) => (true, rest),
            Some(_) => return None,
            None => (false, self.address.as_str()),
        };
        let tls = scheme_tls || self.tls.is_some();
        let default_port = if tls { 8883 } else { 1883 };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            // `[::1]:8883`, or `host:port`.
            Some((host, port)) if !host.ends_with(':') || host.starts_with('[') => {
                (host, port.parse::<u16>().ok().filter(|p| *p > 0)?)
            }
            _ if self.address.contains("://") => (rest, default_port),
            _ => return None,
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return None;
        }
        Some(Endpoint { host: host.trim_start_matches('[').trim_end_matches(']').to_string(), port, tls })
    }
}

/// The byte stream under MQTT: plain TCP or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// An I/O error in words: TLS causes explained, others as they are.
fn describe(error: &std::io::Error) -> String {
    crate::tls::explain(error).unwrap_or_else(|| error.to_string())
}

/// Topic levels may not hold `/`, `+` or `#` from data.
fn clean_topic_value(value: &str) -> String {
    value.chars().map(|c| if matches!(c, '/' | '+' | '#') || c.is_control() { '_' } else { c }).collect()
}

struct Connection {
    stream: Stream,
    last_sent: Instant,
}

pub struct MqttSink {
    /// As configured, for messages.
    address: String,
    endpoint: Endpoint,
    /// TLS client settings and the name the certificate must carry.
    tls: Option<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>)>,
    topic: String,
    qos: u8,
    retain: bool,
    snapshots: bool,
    client_id: String,
    username: Option<String>,
    password: Option<String>,
    keep_alive: u16,
    timeout: Duration,
    connection: Option<Connection>,
    next_packet_id: u16,
}

impl MqttSink {
    pub fn new(config: &MqttConfig, sink_name: &str) -> Result<MqttSink, String> {
        let password = super::secret(&config.password, &config.password_env, "mqtt password")?;
        let endpoint = config.endpoint().ok_or_else(|| format!("mqtt address `{}` is malformed", config.address))?;
        let tls = if endpoint.tls {
            let settings = config.tls.clone().unwrap_or_default();
            let client =
                settings.client_config(&format!("mqtt sink {sink_name}")).map_err(|e| format!("mqtt tls: {e}"))?;
            let name = settings.server_name(&endpoint.host).map_err(|e| format!("mqtt tls: {e}"))?;
            Some((Arc::new(client), name))
        } else {
            if password.is_some() {
                tracing::warn!(
                    sink = sink_name,
                    "the MQTT password travels in clear text: use mqtts:// (tls) off loopback"
                );
            }
            None
        };
        Ok(MqttSink {
            address: config.address.clone(),
            endpoint,
            tls,
            topic: config.topic.clone(),
            qos: config.qos.min(1),
            retain: config.retain,
            snapshots: config.snapshots,
            client_id: config.client_id.clone().unwrap_or_else(|| format!("dshost-{sink_name}-{}", std::process::id())),
            username: config.username.clone(),
            password,
            keep_alive: config.keep_alive_seconds,
            timeout: config.delivery.timeout(),
            connection: None,
            next_packet_id: 1,
        })
    }

    fn connect(&mut self) -> Result<(), String> {
        let address = resolve(&format!("{}:{}", self.endpoint.host, self.endpoint.port))?;
        let tcp = TcpStream::connect_timeout(&address, self.timeout)
            .map_err(|e| format!("cannot connect to the MQTT broker at {}: {e}", self.address))?;
        tcp.set_nodelay(true).ok();
        tcp.set_read_timeout(Some(self.timeout)).ok();
        tcp.set_write_timeout(Some(self.timeout)).ok();
        let mut stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some((config, name)) => {
                let mut tcp = tcp;
                let mut connection = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| format!("MQTT broker at {}: TLS: {e}", self.address))?;
                // Finish the handshake here, so a certificate problem is
                // reported as such, not as a failed CONNECT.
                while connection.is_handshaking() {
                    connection
                        .complete_io(&mut tcp)
                        .map_err(|e| format!("MQTT broker at {}: {}", self.address, describe(&e)))?;
                }
                Stream::Tls(Box::new(rustls::StreamOwned::new(connection, tcp)))
            }
        };

        let mut variable = Vec::new();
        put_str(&mut variable, "MQTT");
        variable.push(4); // protocol level 3.1.1
        let mut flags = 0x02; // clean session: our journal, not the broker, keeps what is unsent
        if self.username.is_some() {
            flags |= 0x80;
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        variable.push(flags);
        variable.extend_from_slice(&self.keep_alive.to_be_bytes());
        put_str(&mut variable, &self.client_id);
        if let Some(user) = &self.username {
            put_str(&mut variable, user);
        }
        if let Some(password) = &self.password {
            put_str(&mut variable, password);
        }
        stream
            .write_all(&packet(0x10, &variable))
            .map_err(|e| format!("MQTT connect to {}: {}", self.address, describe(&e)))?;
        let (kind, body) =
            read_packet(&mut stream).map_err(|e| format!("MQTT connect to {}: {}", self.address, describe(&e)))?;
        if kind >> 4 != 2 || body.len() < 2 {
            return Err(format!("the MQTT broker at {} answered CONNECT with packet type {}", self.address, kind >> 4));
        }
        match body[1] {
            0 => {}
            code => {
                return Err(format!(
                    "the MQTT broker at {} refused the connection: {}",
                    self.address,
                    connack_reason(code)
                ))
            }
        }
        self.connection = Some(Connection { stream, last_sent: Instant::now() });
        Ok(())
    }

    fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) -> Result<(), String> {
        let packet_id = self.next_packet_id;
        self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
        let mut body = Vec::with_capacity(topic.len() + payload.len() + 4);
        put_str(&mut body, topic);
        if self.qos == 1 {
            body.extend_from_slice(&packet_id.to_be_bytes());
        }
        body.extend_from_slice(payload);
        let header = 0x30 | (self.qos << 1) | u8::from(retain);
        let address = self.address.clone();
        let qos = self.qos;
        let Some(connection) = self.connection.as_mut() else { return Err("not connected".into()) };
        connection
            .stream
            .write_all(&packet(header, &body))
            .map_err(|e| format!("MQTT publish to {address}: {}", describe(&e)))?;
        connection.last_sent = Instant::now();
        if qos == 0 {
            return Ok(());
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let (kind, body) = read_packet(&mut connection.stream)
                .map_err(|e| format!("MQTT publish to {address}: no PUBACK ({e})"))?;
            if kind >> 4 == 4 && body.len() >= 2 && u16::from_be_bytes([body[0], body[1]]) == packet_id {
                return Ok(());
            }
            // Anything else (a late PINGRESP) is skipped.
            if Instant::now() > deadline {
                return Err(format!("MQTT publish to {address}: no PUBACK within {:?}", self.timeout));
            }
        }
    }
}

impl Sink for MqttSink {
    fn deliver(&mut self, alert: &Alert, payload: &[u8]) -> Result<(), DeliveryError> {
        if self.connection.is_none() {
            self.connect().map_err(DeliveryError::Retry)?;
        }
        let topic = fill_template(&self.topic, alert, clean_topic_value);
        // The picture first, so a consumer woken by the alert finds it; both
        // acknowledged before the alert counts as delivered. A snapshot file
        // already removed by retention leaves the alert alone.
        let picture = match (&alert.snapshot, self.snapshots) {
            (Some(snapshot), true) => std::fs::read(&snapshot.path).ok(),
            _ => None,
        };
        let retain = self.retain;
        let published = match picture {
            Some(jpeg) => self.publish(&format!("{topic}/snapshot"), &jpeg, true),
            None => Ok(()),
        }
        .and_then(|()| self.publish(&topic, payload, retain));
        published.map_err(|error| {
            // The connection state is unknown now; the next attempt starts
            // afresh, and the broker may see this alert twice (at-least-once).
            self.connection = None;
            DeliveryError::Retry(error)
        })
    }

    fn idle(&mut self) {
        let keep_alive = Duration::from_secs(u64::from(self.keep_alive));
        let Some(connection) = self.connection.as_mut() else { return };
        if keep_alive.is_zero() || connection.last_sent.elapsed() < keep_alive / 2 {
            return;
        }
        let alive = connection
            .stream
            .write_all(&[0xC0, 0x00])
            .and_then(|()| read_packet(&mut connection.stream))
            .is_ok_and(|(kind, _)| kind >> 4 == 13);
        if alive {
            connection.last_sent = Instant::now();
        } else {
            self.connection = None;
        }
    }
}

fn resolve(address: &str) -> Result<SocketAddr, String> {
    address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address} resolves to no address"))
}

fn connack_reason(code: u8) -> &'static str {
    match code {
        1 => "unacceptable protocol version",
        2 => "client id rejected (set client_id)",
        3 => "server unavailable",
        4 => "bad user name or password (check username / password_env)",
        5 => "not authorized (check username / password_env, and the broker's ACL)",
        _ => "unknown reason",
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Fixed header (type and flags, variable-length remaining length) + body.
fn packet(header: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(header);
    let mut length = body.len();
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if length == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn read_packet(stream: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 1];
    stream.read_exact(&mut header)?;
    let mut length = 0usize;
    let mut shift = 0;
    loop {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte)?;
        length |= ((byte[0] & 0x7f) as usize) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed MQTT length"));
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok((header[0], body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_length_encoding() {
        assert_eq!(&packet(0x30, &[0; 127])[..2], &[0x30, 127]);
        assert_eq!(&packet(0x30, &[0; 128])[..3], &[0x30, 0x80, 0x01]);
        assert_eq!(&packet(0x30, &[0; 16_383])[..3], &[0x30, 0xff, 0x7f]);
    }

    #[test]
    fn topics_cannot_gain_levels_or_wildcards_from_data() {
        let mut alert = crate::alerts::sinks::tests::alert();
        alert.pattern = "a+b#c".into();
        assert_eq!(fill_template("dshost/{source}/{pattern}", &alert, clean_topic_value), "dshost/gate_north/a_b_c");
    }

    #[test]
    fn validation() {
        let config = MqttConfig { address: "nohost".into(), qos: 2, topic: "a/#".into(), ..Default::default() };
        let fields: Vec<String> = config.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, vec!["address", "qos", "topic"]);
        assert!(MqttConfig::default().validate().is_empty());
    }

    #[test]
    fn addresses_pick_tls_and_its_default_port() {
        let endpoint = |address: &str, tls: Option<ClientTlsConfig>| {
            MqttConfig { address: address.into(), tls, ..Default::default() }.endpoint()
        };
        let e = |host: &str, port, tls| Some(Endpoint { host: host.into(), port, tls });
        assert_eq!(endpoint("127.0.0.1:1883", None), e("127.0.0.1", 1883, false));
        assert_eq!(endpoint("mqtts://broker.example", None), e("broker.example", 8883, true));
        assert_eq!(endpoint("mqtts://broker.example:9000", None), e("broker.example", 9000, true));
        assert_eq!(endpoint("mqtt://broker.example", None), e("broker.example", 1883, false));
        assert_eq!(endpoint("mqtt://broker.example", Some(Default::default())), e("broker.example", 8883, true));
        assert_eq!(endpoint("[::1]:8883", None), e("::1", 8883, false));
        assert_eq!(endpoint("broker.example", None), None);
        assert_eq!(endpoint("http://broker.example", None), None);
        assert_eq!(endpoint("mqtts://user@broker.example", None), None);
    }
}
