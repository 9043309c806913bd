//! Email: alerts mailed through an SMTP server with `lettre`, in batches
//! (one mail per `batch.max_alerts` alerts or per `batch.max_wait_seconds`,
//! so a burst is one mail), with STARTTLS or implicit TLS and SMTP AUTH.
//!
//! A mail is delivered when the server has accepted it (250 after DATA);
//! then every alert in it is marked delivered. Journal, retry and
//! at-least-once rules are those of every sink: a failed mail is sent again
//! whole, so a recipient may see an alert twice, never zero times.
//!
//! Each mail has a plain-text body (one templated line per alert), the
//! alerts as a JSON-lines attachment, and one image per alert that carries a
//! snapshot (its JPEG, read from `alert.snapshot.path`).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Identity, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use serde::Deserialize;

use super::{Batching, DeliveryConfig, DeliveryError, PayloadFormat, Sink};
use crate::alerts::alert::Alert;
use crate::tls::ClientTlsConfig;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (required; port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS at all (port 25): only for a relay on the same host.
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Alerts in one mail at most.
    pub max_alerts: usize,
    /// How long the first alert of a mail waits for others.
    pub max_wait_seconds: f64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { max_alerts: 50, max_wait_seconds: 30.0 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    pub name: Option<String>,
    /// SMTP server host name (the certificate must be valid for it).
    pub server: String,
    /// Default: 587 for starttls, 465 for implicit, 25 for none.
    pub port: Option<u16>,
    pub security: Security,
    /// CA, client certificate, server name, insecure_skip_verify.
    pub tls: ClientTlsConfig,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password: Option<String>,
    /// `dshost <alerts@example.com>`.
    pub from: String,
    pub to: Vec<String>,
    /// Placeholders: {count}, and {source}, {strategy}, {pattern}, {level}
    /// of the first alert in the mail.
    pub subject: String,
    /// One line per alert. Placeholders: {id}, {ts}, {source}, {strategy},
    /// {pattern}, {level}, {confidence}, {frame}, {object_id}.
    pub line: String,
    pub batch: BatchConfig,
    /// Encoding of the JSON-lines attachment.
    pub format: PayloadFormat,
    pub delivery: DeliveryConfig,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            name: None,
            server: String::new(),
            port: None,
            security: Security::default(),
            tls: ClientTlsConfig::default(),
            username: None,
            password_env: None,
            password: None,
            from: String::new(),
            to: Vec::new(),
            subject: "[dshost] {count} alert(s): {pattern} on {source}".into(),
            line: "{ts}  {level}  {source}  {strategy}: {pattern} ({confidence})  id {id}".into(),
            batch: BatchConfig::default(),
            format: PayloadFormat::Dshost,
            delivery: DeliveryConfig { timeout_ms: 30_000, ..DeliveryConfig::default() },
        }
    }
}

const SUBJECT_KEYS: &[&str] = &["count", "source", "strategy", "pattern", "level"];
const LINE_KEYS: &[&str] = &["id", "ts", "source", "strategy", "pattern", "level", "confidence", "frame", "object_id"];

impl EmailConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.server.is_empty() || self.server.contains(['/', ':', ' ']) {
            problems.push(("server".into(), "the SMTP server's host name, e.g. smtp.example.com".into()));
        }
        if let Err(e) = self.from.parse::<Mailbox>() {
            problems.push(("from".into(), format!("not a mail address ({e})")));
        }
        if self.to.is_empty() {
            problems.push(("to".into(), "at least one recipient".into()));
        }
        for (i, to) in self.to.iter().enumerate() {
            if let Err(e) = to.parse::<Mailbox>() {
                problems.push((format!("to[{i}]"), format!("not a mail address ({e})")));
            }
        }
        for (field, template, keys) in [("subject", &self.subject, SUBJECT_KEYS), ("line", &self.line, LINE_KEYS)] {
            for key in placeholders(template) {
                if !keys.contains(&key.as_str()) {
                    problems.push((field.into(), format!("unknown placeholder {{{key}}}; use {}", keys.join(", "))));
                }
            }
        }
        if self.batch.max_alerts == 0 || self.batch.max_alerts > 10_000 {
            problems.push(("batch.max_alerts".into(), "between 1 and 10000".into()));
        }
        if !(self.batch.max_wait_seconds.is_finite() && (0.0..=3600.0).contains(&self.batch.max_wait_seconds)) {
            problems.push(("batch.max_wait_seconds".into(), "between 0 and 3600".into()));
        }
        if self.password.is_some() && self.password_env.is_some() {
            problems.push(("password".into(), "set either password or password_env, not both".into()));
        }
        if self.security == Security::None && (self.password.is_some() || self.password_env.is_some()) {
            problems.push(("security".into(), "a password needs starttls or implicit TLS".into()));
        }
        if self.security != Security::None {
            problems.extend(self.tls.validate());
        }
        problems
    }

    fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Starttls => 587,
            Security::Implicit => 465,
            Security::None => 25,
        })
    }
}

/// An image attached with an alert (its frame snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// File name in the mail, e.g. `gate-north-1234.jpg`.
    pub file_name: String,
    /// e.g. `image/jpeg`.
    pub content_type: String,
    pub data: Vec<u8>,
}

/// One alert in a mail.
pub struct MailItem<'a> {
    pub alert: &'a Alert,
    pub payload: &'a [u8],
    pub snapshot: Option<&'a Snapshot>,
}

pub struct EmailSink {
    config: EmailConfig,
    from: Mailbox,
    to: Vec<Mailbox>,
    transport: SmtpTransport,
    /// For messages.
    shown: String,
}

impl EmailSink {
    pub fn new(config: &EmailConfig) -> Result<EmailSink, String> {
        let from: Mailbox = config.from.parse().map_err(|e| format!("email from: {e}"))?;
        let to = config
            .to
            .iter()
            .map(|to| to.parse::<Mailbox>().map_err(|e| format!("email to `{to}`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let password = super::secret(&config.password, &config.password_env, "email password")?;
        let tls = match config.security {
            Security::None => Tls::None,
            Security::Starttls => Tls::Required(tls_parameters(config)?),
            Security::Implicit => Tls::Wrapper(tls_parameters(config)?),
        };
        let mut builder = SmtpTransport::builder_dangerous(config.server.as_str())
            .port(config.port())
            .timeout(Some(config.delivery.timeout()))
            .tls(tls);
        match (&config.username, password) {
            (Some(user), Some(password)) => builder = builder.credentials(Credentials::new(user.clone(), password)),
            (Some(_), None) => return Err("email username needs password_env (or password)".into()),
            (None, Some(_)) => return Err("email password needs username".into()),
            (None, None) => {}
        }
        Ok(EmailSink {
            config: config.clone(),
            from,
            to,
            transport: builder.build(),
            shown: format!("smtp://{}:{}", config.server, config.port()),
        })
    }

    /// The mail for these alerts.
    pub fn compose(&self, items: &[MailItem<'_>]) -> Result<Message, lettre::error::Error> {
        let first = items.first().map(|i| i.alert);
        let subject = first
            .map(|alert| fill(&self.config.subject, alert, items.len()))
            .unwrap_or_else(|| "[dshost] no alerts".into());
        let mut text = String::new();
        for item in items {
            text.push_str(&fill(&self.config.line, item.alert, items.len()));
            text.push('\n');
        }
        let mut jsonl = Vec::new();
        for item in items {
            jsonl.extend_from_slice(item.payload);
            jsonl.push(b'\n');
        }
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(text)).singlepart(
            Attachment::new("alerts.jsonl".into())
                .body(jsonl, ContentType::parse("application/x-ndjson").unwrap_or(ContentType::TEXT_PLAIN)),
        );
        for snapshot in items.iter().filter_map(|i| i.snapshot) {
            let content_type = ContentType::parse(&snapshot.content_type)
                .unwrap_or_else(|_| ContentType::parse("application/octet-stream").unwrap_or(ContentType::TEXT_PLAIN));
            parts =
                parts.singlepart(Attachment::new(snapshot.file_name.clone()).body(snapshot.data.clone(), content_type));
        }
        let mut builder = Message::builder().from(self.from.clone()).subject(subject);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder.multipart(parts)
    }

    fn send(&self, items: &[MailItem<'_>]) -> Result<(), DeliveryError> {
        let message =
            self.compose(items).map_err(|e| DeliveryError::Reject(format!("email: cannot build the mail: {e}")))?;
        match self.transport.send(&message) {
            Ok(_) => Ok(()),
            // Every failure is retried (auth, TLS and recipients are fixed in
            // the config; the alerts wait in the journal meanwhile).
            Err(error) => Err(DeliveryError::Retry(format!("SMTP server {}: {}", self.shown, describe(&error)))),
        }
    }
}

fn tls_parameters(config: &EmailConfig) -> Result<TlsParameters, String> {
    let domain = config.tls.server_name.clone().unwrap_or_else(|| config.server.clone());
    let mut builder = TlsParameters::builder(domain);
    if let Some(path) = &config.tls.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("email tls.ca_file {}: {e}", path.display()))?;
        let certificate =
            Certificate::from_pem(&pem).map_err(|e| format!("email tls.ca_file {}: {e}", path.display()))?;
        builder = builder.certificate_store(CertificateStore::None).add_root_certificate(certificate);
    }
    if let (Some(cert), Some(key)) = (&config.tls.cert_file, &config.tls.key_file) {
        let cert_pem = std::fs::read(cert).map_err(|e| format!("email tls.cert_file {}: {e}", cert.display()))?;
        let key_pem = std::fs::read(key).map_err(|e| format!("email tls.key_file {}: {e}", key.display()))?;
        builder = builder
            .identify_with(Identity::from_pem(&cert_pem, &key_pem).map_err(|e| format!("email client identity: {e}"))?);
    }
    if config.tls.insecure_skip_verify {
        tracing::error!(
            edge = "email",
            "tls.insecure_skip_verify is on: the SMTP server's certificate is NOT checked; for labs only"
        );
        builder = builder.dangerous_accept_invalid_certs(true);
    }
    builder.build_rustls().map_err(|e| format!("email tls: {e}"))
}

/// An SMTP error with its cause: TLS problems explained, the server's
/// answer otherwise.
fn describe(error: &lettre::transport::smtp::Error) -> String {
    if let Some(tls) = crate::tls::explain(error) {
        return tls;
    }
    match error.status() {
        Some(code) if code.to_string().starts_with("535") => {
            format!("{error} (authentication failed: check username / password_env)")
        }
        _ => {
            let mut text = error.to_string();
            let mut cause = std::error::Error::source(error);
            while let Some(current) = cause {
                text.push_str(&format!(": {current}"));
                cause = current.source();
            }
            text
        }
    }
}

fn placeholders(template: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        keys.push(rest[open + 1..open + close].to_string());
        rest = &rest[open + close + 1..];
    }
    keys
}

/// Fills a subject or line template; unknown placeholders stay as written
/// (validation reports them).
fn fill(template: &str, alert: &Alert, count: usize) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let key = &rest[open + 1..open + close];
        let value = match key {
            "count" => count.to_string(),
            "id" => alert.id.clone(),
            "ts" => alert.ts.clone(),
            "source" => alert.source.clone(),
            "strategy" => alert.strategy.clone(),
            "pattern" => alert.pattern.to_string(),
            "level" => alert.level.as_str().to_string(),
            "confidence" => format!("{:.2}", alert.confidence),
            "frame" => alert.frame.to_string(),
            "object_id" => alert.object_id.map(|id| id.to_string()).unwrap_or_else(|| "-".into()),
            other => format!("{{{other}}}"),
        };
        // Header and line templates stay one line whatever the data holds.
        out.extend(value.chars().map(|c| if c.is_control() { ' ' } else { c }));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// The alert's picture, read from its file (an alert whose snapshot file is
/// gone, e.g. removed by retention, goes without one).
fn picture(alert: &Alert) -> Option<Snapshot> {
    let snapshot = alert.snapshot.as_ref()?;
    let data = std::fs::read(&snapshot.path).ok()?;
    Some(Snapshot { file_name: format!("{}-{}.jpg", alert.source, alert.id), content_type: "image/jpeg".into(), data })
}

impl Sink for EmailSink {
    fn deliver(&mut self, alert: &Alert, payload: &[u8]) -> Result<(), DeliveryError> {
        let snapshot = picture(alert);
        self.send(&[MailItem { alert, payload, snapshot: snapshot.as_ref() }])
    }

    fn batching(&self) -> Batching {
        Batching {
            max_items: self.config.batch.max_alerts.max(1),
            max_wait: Duration::from_secs_f64(self.config.batch.max_wait_seconds.max(0.0)),
        }
    }

    fn deliver_batch(&mut self, batch: &[(&Alert, &[u8])]) -> Result<(), DeliveryError> {
        let pictures: Vec<Option<Snapshot>> = batch.iter().map(|(alert, _)| picture(alert)).collect();
        let items: Vec<MailItem<'_>> = batch
            .iter()
            .zip(&pictures)
            .map(|((alert, payload), snapshot)| MailItem { alert, payload, snapshot: snapshot.as_ref() })
            .collect();
        self.send(&items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EmailConfig {
        EmailConfig {
            server: "smtp.example.com".into(),
            from: "dshost <dshost@example.com>".into(),
            to: vec!["ops@example.com".into()],
            ..Default::default()
        }
    }

    #[test]
    fn validation_names_each_field() {
        assert!(config().validate().is_empty(), "{:?}", config().validate());
        let bad = EmailConfig {
            server: "smtp://x".into(),
            from: "not an address".into(),
            to: vec!["ok@example.com".into(), "nope".into()],
            subject: "{count} {nope}".into(),
            batch: BatchConfig { max_alerts: 0, max_wait_seconds: -1.0 },
            security: Security::None,
            password: Some("x".into()),
            ..config()
        };
        let fields: Vec<String> = bad.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            vec!["server", "from", "to[1]", "subject", "batch.max_alerts", "batch.max_wait_seconds", "security"]
        );
    }

    #[test]
    fn a_mail_lists_every_alert_and_attaches_snapshots() {
        let sink = EmailSink::new(&config()).unwrap();
        let mut second = crate::alerts::sinks::tests::alert();
        second.id = "fedcba9876543210fedcba9876543210".into();
        second.source = "gate\r\nBcc: evil@example.com".into();
        let first = crate::alerts::sinks::tests::alert();
        let snapshot =
            Snapshot { file_name: "gate.jpg".into(), content_type: "image/jpeg".into(), data: vec![0xff, 0xd8, 0xff] };
        let items = [
            MailItem { alert: &first, payload: b"{\"id\":1}", snapshot: Some(&snapshot) },
            MailItem { alert: &second, payload: b"{\"id\":2}", snapshot: None },
        ];
        let mail = String::from_utf8(sink.compose(&items).unwrap().formatted()).unwrap();
        assert!(mail.contains("Subject: [dshost] 2 alert(s): person on gate/north"), "{mail}");
        assert!(mail.contains(&first.id) && mail.contains(&second.id), "{mail}");
        assert!(mail.contains("filename=\"alerts.jsonl\""), "{mail}");
        assert!(mail.contains("filename=\"gate.jpg\"") && mail.contains("Content-Type: image/jpeg"), "{mail}");
        assert!(!mail.contains("\r\nBcc:"), "data cannot add headers: {mail}");
    }
}
