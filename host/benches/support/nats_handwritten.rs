//! The hand-written NATS client that `async-nats` replaced (dshost before
//! issue 17), kept here only as the benchmark's baseline for the comparison
//! in docs/benchmarks.md: the text protocol's publishing side, JetStream
//! acknowledgements paired by reply subject. Plain TCP, no auth.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use dshost::alerts::sinks::{DeliveryError, Sink};
use dshost::alerts::Alert;

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

pub struct HandWrittenNats {
    address: String,
    subject: String,
    timeout: Duration,
    connection: Option<Connection>,
}

impl HandWrittenNats {
    /// `address`: host:port; every alert goes to `subject` through JetStream.
    pub fn new(address: &str, subject: &str) -> HandWrittenNats {
        HandWrittenNats {
            address: address.into(),
            subject: subject.into(),
            timeout: Duration::from_secs(5),
            connection: None,
        }
    }

    fn connect(&mut self) -> Result<(), String> {
        let stream = TcpStream::connect(&self.address).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(self.timeout)).ok();
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let inbox = format!("_INBOX.bench.{}.{:x}", std::process::id(), fastrand::u64(..));
        let mut connection =
            Connection { reader: BufReader::new(stream), writer, inbox, next_reply: 0, last_io: Instant::now() };
        let mut info = String::new();
        connection.reader.read_line(&mut info).map_err(|e| e.to_string())?;
        let hello = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,\"protocol\":1}}\r\nPING\r\nSUB {}.* 1\r\n",
            connection.inbox
        );
        connection.write(hello.as_bytes()).map_err(|e| e.to_string())?;
        connection.await_pong(self.timeout)?;
        self.connection = Some(connection);
        Ok(())
    }
}

impl Sink for HandWrittenNats {
    fn deliver(&mut self, alert: &Alert, payload: &[u8]) -> Result<(), DeliveryError> {
        if self.connection.is_none() {
            self.connect().map_err(DeliveryError::Retry)?;
        }
        let (subject, timeout) = (self.subject.clone(), self.timeout);
        let Some(connection) = self.connection.as_mut() else {
            return Err(DeliveryError::Retry("no connection".into()));
        };
        let result = connection.request(&subject, payload, Some(&alert.id), timeout);
        match result {
            Ok((_, answer))
                if serde_json::from_slice::<serde_json::Value>(&answer).is_ok_and(|a| a.get("seq").is_some()) =>
            {
                Ok(())
            }
            Ok((_, answer)) => Err(DeliveryError::Retry(String::from_utf8_lossy(&answer).into_owned())),
            Err(error) => {
                self.connection = None;
                Err(DeliveryError::Retry(error))
            }
        }
    }
}
