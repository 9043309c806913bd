//! NATS publisher, with JetStream publish acknowledgements, through
//! `async-nats` (the NATS maintainers' client).
//!
//! The journal may mark an alert delivered only when JetStream has
//! acknowledged *that* message: every publish gets its own
//! `PublishAckFuture`. Each alert carries its id as `Nats-Msg-Id`, so
//! JetStream drops a redelivery inside the stream's duplicate window. With
//! `jetstream: false` the alert is a core NATS publish confirmed by a flush
//! (a PING/PONG round trip: the server has read it; no storage guarantee).
//! TLS (`tls://` or `tls:`), tokens, user/password, NKey seeds and `.creds`
//! files (JWT) are async-nats's. It replaced a hand-written client of the
//! text protocol: docs/benchmarks.md compares the two.
//!
//! The sink's thread drives its own small tokio runtime (one worker, so the
//! client answers the server's PINGs between alerts).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{fill_template, DeliveryConfig, DeliveryError, PayloadFormat, Sink};
use crate::alerts::alert::Alert;
use crate::redact::redact_text;
use crate::tls::ClientTlsConfig;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    pub name: Option<String>,
    /// `nats://host:port`, or `tls://host:port` for TLS (user:password@ or
    /// token@ allowed, but prefer `password_env` / `token_env`).
    pub url: String,
    /// TLS settings; present (or `tls://`) = TLS required.
    pub tls: Option<ClientTlsConfig>,
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
    /// File holding an NKey user seed (`SU...`).
    pub nkey_seed_file: Option<PathBuf>,
    /// A `.creds` file (user JWT and NKey seed) for decentralized auth.
    pub credentials_file: Option<PathBuf>,
    /// Put each alert's JPEGs into this JetStream object store bucket
    /// (created when missing) as `<alert id>.jpg` and `<alert id>-crop.jpg`,
    /// before the alert, which names them in its headers
    /// (`Dshost-Snapshot-Bucket`, `Dshost-Snapshot`, `Dshost-Crop`). Off
    /// when absent; needs `jetstream: true`.
    pub snapshot_bucket: Option<String>,
    pub format: PayloadFormat,
    pub delivery: DeliveryConfig,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            name: None,
            url: "nats://127.0.0.1:4222".into(),
            tls: None,
            subject: "dshost.alerts.{source}.{pattern}".into(),
            jetstream: true,
            stream: None,
            create_stream: false,
            user: None,
            password_env: None,
            token_env: None,
            nkey_seed_file: None,
            credentials_file: None,
            snapshot_bucket: None,
            format: PayloadFormat::Dshost,
            delivery: DeliveryConfig::default(),
        }
    }
}

impl NatsConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        match url::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "nats" | "tls") && url.host().is_some() => {}
            _ => problems.push(("url".into(), "must look like nats://host:4222 or tls://host:4222".into())),
        }
        if let Some(tls) = &self.tls {
            problems.extend(tls.validate());
            if tls.server_name.is_some() {
                problems.push((
                    "tls.server_name".into(),
                    "not supported for NATS: the certificate is checked against the url's host".into(),
                ));
            }
        }
        let methods = [
            self.token_env.is_some(),
            self.password_env.is_some() || self.user.is_some(),
            self.nkey_seed_file.is_some(),
            self.credentials_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            problems.push((
                "credentials_file".into(),
                "use one authentication method: token_env, user + password_env, nkey_seed_file or credentials_file"
                    .into(),
            ));
        }
        for (field, path) in [("nkey_seed_file", &self.nkey_seed_file), ("credentials_file", &self.credentials_file)] {
            if let Some(path) = path {
                if !path.is_file() {
                    problems.push((field.into(), format!("{} does not exist or is not a file", path.display())));
                }
            }
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
        if let Some(bucket) = &self.snapshot_bucket {
            if !self.jetstream {
                problems.push(("snapshot_bucket".into(), "an object store needs jetstream: true".into()));
            }
            if bucket.is_empty() || !bucket.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
                problems.push(("snapshot_bucket".into(), "a bucket name is letters, digits, - and _".into()));
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

/// How the sink authenticates (secrets resolved at start).
#[derive(Clone)]
enum Auth {
    None,
    Token(String),
    UserPassword(String, String),
    NKey(String),
    Credentials(PathBuf),
}

pub struct NatsSink {
    config: NatsConfig,
    /// The url without credentials, for logs.
    shown_url: String,
    /// The url without credentials, to connect to.
    server: String,
    auth: Auth,
    tls: Option<async_nats::rustls::ClientConfig>,
    timeout: Duration,
    runtime: tokio::runtime::Runtime,
    connection: Option<(async_nats::Client, async_nats::jetstream::Context)>,
    /// The snapshot bucket, once opened on this connection.
    bucket: Option<async_nats::jetstream::object_store::ObjectStore>,
}

impl NatsSink {
    pub fn new(config: &NatsConfig) -> Result<NatsSink, String> {
        let mut url = url::Url::parse(&config.url).map_err(|e| format!("nats url: {e}"))?;
        if url.host_str().is_none() {
            return Err("nats url: no host".into());
        }
        let mut auth = Auth::None;
        if !url.username().is_empty() {
            let user = url.username().to_string();
            auth = match url.password() {
                Some(password) => Auth::UserPassword(user, password.to_string()),
                None => Auth::Token(user),
            };
        }
        let _ = url.set_username("");
        let _ = url.set_password(None);
        if let Some(password) = super::secret(&None, &config.password_env, "nats password")? {
            let user = config.user.clone().or_else(|| match &auth {
                Auth::UserPassword(user, _) => Some(user.clone()),
                _ => None,
            });
            auth = Auth::UserPassword(user.ok_or("nats password_env needs `user`")?, password);
        }
        if let Some(token) = super::secret(&None, &config.token_env, "nats token")? {
            auth = Auth::Token(token);
        }
        if let Some(path) = &config.nkey_seed_file {
            let seed = std::fs::read_to_string(path)
                .map_err(|e| format!("nats nkey_seed_file {}: {e}", path.display()))?
                .trim()
                .to_string();
            auth = Auth::NKey(seed);
        }
        if let Some(path) = &config.credentials_file {
            auth = Auth::Credentials(path.clone());
        }
        let tls_on = url.scheme() == "tls" || config.tls.is_some();
        let tls = if tls_on {
            let settings = config.tls.clone().unwrap_or_default();
            let what = format!("nats sink {}", config.name.as_deref().unwrap_or("nats"));
            Some(settings.client_config(&what).map_err(|e| format!("nats tls: {e}"))?)
        } else {
            if !matches!(auth, Auth::None | Auth::NKey(_) | Auth::Credentials(_)) {
                tracing::warn!(url = %redact_text(&config.url), "the NATS password or token travels in clear text: use tls:// off loopback");
            }
            None
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dshost-nats")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the NATS client runtime: {e}"))?;
        Ok(NatsSink {
            config: config.clone(),
            shown_url: redact_text(&config.url),
            server: url.to_string(),
            auth,
            tls,
            timeout: config.delivery.timeout(),
            runtime,
            connection: None,
            bucket: None,
        })
    }

    fn options(&self) -> Result<async_nats::ConnectOptions, String> {
        let options = match &self.auth {
            Auth::None => async_nats::ConnectOptions::new(),
            Auth::Token(token) => async_nats::ConnectOptions::with_token(token.clone()),
            Auth::UserPassword(user, password) => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            Auth::NKey(seed) => async_nats::ConnectOptions::with_nkey(seed.clone()),
            Auth::Credentials(path) => self
                .runtime
                .block_on(async_nats::ConnectOptions::with_credentials_file(path))
                .map_err(|e| format!("nats credentials_file {}: {e}", path.display()))?,
        };
        let mut options = options
            .name("dshost")
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            // Our worker retries with backoff; the client itself keeps
            // reconnecting an established connection in the background.
            .max_reconnects(None);
        if let Some(tls) = &self.tls {
            options = options.require_tls(true).tls_client_config(tls.clone());
        }
        Ok(options)
    }

    fn connect(&mut self) -> Result<(), String> {
        let options = self.options()?;
        let shown = self.shown_url.clone();
        let client = self
            .runtime
            .block_on(options.connect(self.server.as_str()))
            .map_err(|e| format!("NATS at {shown}: {}", describe_connect(&e)))?;
        // The JetStream context spawns its acknowledgement task on our runtime.
        let _runtime = self.runtime.enter();
        let mut jetstream = async_nats::jetstream::new(client.clone());
        jetstream.set_timeout(self.timeout);
        if let (true, Some(stream)) = (self.config.create_stream, self.config.stream.clone()) {
            self.ensure_stream(&jetstream, &stream).map_err(|e| format!("NATS at {shown}: {e}"))?;
        }
        self.connection = Some((client, jetstream));
        self.bucket = None;
        Ok(())
    }

    fn ensure_stream(&self, jetstream: &async_nats::jetstream::Context, stream: &str) -> Result<(), String> {
        let config = async_nats::jetstream::stream::Config {
            name: stream.to_string(),
            subjects: vec![self.config.stream_subjects()],
            storage: async_nats::jetstream::stream::StorageType::File,
            // Two minutes of de-duplication by Nats-Msg-Id (the alert id).
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        match self.runtime.block_on(jetstream.get_stream(stream)) {
            Ok(_) => Ok(()),
            Err(error)
                if matches!(error.kind(), async_nats::jetstream::context::GetStreamErrorKind::JetStream(e)
                    if e.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                self.runtime
                    .block_on(jetstream.create_stream(config))
                    .map_err(|e| format!("cannot create JetStream stream {stream}: {e}"))?;
                tracing::info!(stream, subjects = %self.config.stream_subjects(), "created the JetStream stream");
                Ok(())
            }
            Err(error) => Err(format!("JetStream: {error}")),
        }
    }

    fn publish(&mut self, subject: String, alert: &Alert, payload: &[u8]) -> Result<(), DeliveryError> {
        let shown = self.shown_url.clone();
        let timeout = self.timeout;
        let Some((client, _)) = &self.connection else {
            return Err(DeliveryError::Retry("not connected".into()));
        };
        if !self.config.jetstream {
            return self.runtime.block_on(async {
                client
                    .publish(subject, payload.to_vec().into())
                    .await
                    .map_err(|e| DeliveryError::Retry(format!("NATS at {shown}: {e}")))?;
                match tokio::time::timeout(timeout, client.flush()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(DeliveryError::Retry(format!("NATS at {shown}: {e}"))),
                    Err(_) => Err(DeliveryError::Retry(format!("NATS at {shown}: no PONG within {timeout:?}"))),
                }
            });
        }
        let mut headers = async_nats::HeaderMap::new();
        if let Some(names) = self.put_snapshot(alert)? {
            let bucket = self.config.snapshot_bucket.clone().unwrap_or_default();
            headers.insert("Dshost-Snapshot-Bucket", bucket.as_str());
            headers.insert("Dshost-Snapshot", names.0.as_str());
            if let Some(crop) = &names.1 {
                headers.insert("Dshost-Crop", crop.as_str());
            }
        }
        let Some((_, jetstream)) = &self.connection else {
            return Err(DeliveryError::Retry("not connected".into()));
        };
        let message = async_nats::jetstream::message::PublishMessage::build()
            .payload(payload.to_vec().into())
            .headers(headers)
            .message_id(&alert.id);
        let acknowledged = self.runtime.block_on(async {
            let pending = jetstream.send_publish(subject.clone(), message).await?;
            pending.await
        });
        match acknowledged {
            Ok(_) => Ok(()),
            Err(error) => Err(DeliveryError::Retry(match error.kind() {
                async_nats::jetstream::context::PublishErrorKind::StreamNotFound => format!(
                    "NATS at {shown}: no JetStream stream takes subject {subject} (create one, or set stream + create_stream)"
                ),
                _ => format!("NATS at {shown}: JetStream publish: {error}"),
            })),
        }
    }
}

impl NatsSink {
    /// Puts the alert's JPEGs into the snapshot bucket (each put waits for
    /// JetStream's acknowledgements of its chunks); returns their object
    /// names. `None` when no bucket is configured or the alert has no
    /// picture (or its file is gone).
    fn put_snapshot(&mut self, alert: &Alert) -> Result<Option<(String, Option<String>)>, DeliveryError> {
        let (Some(bucket_name), Some(snapshot)) = (self.config.snapshot_bucket.clone(), &alert.snapshot) else {
            return Ok(None);
        };
        let Ok(full) = std::fs::read(&snapshot.path) else { return Ok(None) };
        let crop = snapshot.crop.as_ref().and_then(|path| std::fs::read(path).ok());
        let shown = self.shown_url.clone();
        let Some((_, jetstream)) = &self.connection else {
            return Err(DeliveryError::Retry("not connected".into()));
        };
        let retry = |what: &str, error: &dyn std::fmt::Display| {
            DeliveryError::Retry(format!("NATS at {shown}: snapshot bucket `{bucket_name}`: {what}: {error}"))
        };
        let bucket = match &self.bucket {
            Some(bucket) => bucket.clone(),
            None => {
                let opened = self.runtime.block_on(async {
                    match jetstream.get_object_store(&bucket_name).await {
                        Ok(bucket) => Ok(bucket),
                        Err(_) => jetstream
                            .create_object_store(async_nats::jetstream::object_store::Config {
                                bucket: bucket_name.clone(),
                                description: Some("dshost alert snapshots".into()),
                                ..Default::default()
                            })
                            .await
                            .map_err(|e| e.to_string()),
                    }
                });
                let bucket = opened.map_err(|e| {
                    retry("cannot open or create it (does this account have JetStream and may it create streams?)", &e)
                })?;
                self.bucket = Some(bucket.clone());
                bucket
            }
        };
        let full_name = format!("{}.jpg", alert.id);
        let crop_name = crop.as_ref().map(|_| format!("{}-crop.jpg", alert.id));
        let put = self.runtime.block_on(async {
            bucket.put(full_name.as_str(), &mut full.as_slice()).await?;
            if let (Some(name), Some(data)) = (&crop_name, &crop) {
                bucket.put(name.as_str(), &mut data.as_slice()).await?;
            }
            Ok::<_, async_nats::jetstream::object_store::PutError>(())
        });
        put.map_err(|e| {
            // The bucket may have gone; open it again next time.
            self.bucket = None;
            retry("put", &e)
        })?;
        Ok(Some((full_name, crop_name)))
    }
}

/// A connection error with its cause: TLS problems explained, and a hint
/// for authentication.
fn describe_connect(error: &async_nats::ConnectError) -> String {
    use async_nats::ConnectErrorKind;
    if let Some(tls) = crate::tls::explain(error) {
        return tls;
    }
    match error.kind() {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
            format!("{error} (check token_env, user + password_env, nkey_seed_file or credentials_file)")
        }
        _ => error.to_string(),
    }
}

impl Sink for NatsSink {
    fn deliver(&mut self, alert: &Alert, payload: &[u8]) -> Result<(), DeliveryError> {
        if self.connection.is_none() {
            self.connect().map_err(DeliveryError::Retry)?;
        }
        let subject = fill_template(&self.config.subject, alert, clean_subject_value);
        self.publish(subject, alert, payload)
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
        assert_eq!(sink.server, "nats://127.0.0.1:4333");
        assert!(matches!(&sink.auth, Auth::UserPassword(user, password) if user == "alice" && password == "s3cret"));
        assert!(!sink.shown_url.contains("s3cret"));
        let token = NatsSink::new(&NatsConfig { url: "tls://t0ken@127.0.0.1".into(), ..Default::default() }).unwrap();
        assert!(matches!(&token.auth, Auth::Token(t) if t == "t0ken"));
        assert!(token.tls.is_some(), "tls:// turns TLS on");
    }

    #[test]
    fn one_authentication_method_at_a_time() {
        let config = NatsConfig {
            token_env: Some("T".into()),
            nkey_seed_file: Some("/nonexistent/seed".into()),
            ..Default::default()
        };
        let fields: Vec<String> = config.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, vec!["credentials_file", "nkey_seed_file"]);
    }
}
