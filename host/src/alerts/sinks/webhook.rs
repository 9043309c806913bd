//! HTTP POST of each alert, signed with HMAC-SHA256 when a secret is set.
//!
//! Headers: `Content-Type: application/json`, `X-Dshost-Alert-Id`,
//! `X-Dshost-Timestamp` (Unix seconds) and, with a secret,
//! `X-Dshost-Signature: sha256=<hex of HMAC(secret, "<timestamp>.<body>")>`
//! (the timestamp is signed too, so a receiver can refuse replays).
//! 2xx = delivered; 408, 429, 5xx and network errors are retried; any other
//! status is a rejection (retrying a 400 would never succeed).
//!
//! The alert's snapshot travels as the sink's `snapshot` says: `none` (the
//! JSON alone, as before), `multipart` (`multipart/form-data` with the parts
//! `alert` (the JSON), `snapshot` and, with crops on, `crop` (JPEGs); the
//! signature covers the `alert` part, whose `snapshot.sha256` binds the
//! picture), or `url` (the JSON, plus `X-Dshost-Snapshot-Url` and
//! `X-Dshost-Crop-Url` headers under `snapshot_base_url`, served by the
//! control API). The picture is read from its file at each attempt, so a
//! retried or journal-replayed alert carries it too (at-least-once for both).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{DeliveryConfig, DeliveryError, PayloadFormat, Sink};
use crate::alerts::alert::Alert;
use crate::redact::redact_text;

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub name: Option<String>,
    pub url: String,
    /// Extra request headers (e.g. `Authorization`).
    pub headers: BTreeMap<String, String>,
    /// Environment variable holding the HMAC secret (preferred over `hmac_secret`).
    pub hmac_secret_env: Option<String>,
    pub hmac_secret: Option<String>,
    pub format: PayloadFormat,
    /// How the alert's snapshot is sent.
    pub snapshot: SnapshotDelivery,
    /// Base URL of this dshost's control API (e.g. `https://dshost.example:9464`)
    /// for `snapshot: url`.
    pub snapshot_base_url: Option<String>,
    pub delivery: DeliveryConfig,
}

/// `snapshot:` of a webhook sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotDelivery {
    /// The alert JSON alone.
    #[default]
    None,
    /// `multipart/form-data`: the alert JSON and its JPEGs.
    Multipart,
    /// The alert JSON, with the pictures' URLs in headers.
    Url,
}

impl WebhookConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        match url::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            Ok(_) => problems.push(("url".into(), "must be an http:// or https:// URL with a host".into())),
            Err(error) => problems.push(("url".into(), format!("not a URL ({error})"))),
        }
        for name in self.headers.keys() {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
                problems.push((format!("headers.{name}"), "not a valid header name".into()));
            }
        }
        match (&self.snapshot, &self.snapshot_base_url) {
            (SnapshotDelivery::Url, None) => problems.push((
                "snapshot_base_url".into(),
                "`snapshot: url` needs the control API's base URL, e.g. https://dshost.example:9464".into(),
            )),
            (_, Some(base)) => match url::Url::parse(base) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                _ => {
                    problems.push(("snapshot_base_url".into(), "must be an http:// or https:// URL with a host".into()))
                }
            },
            _ => {}
        }
        if self.hmac_secret.is_some() && self.hmac_secret_env.is_some() {
            problems.push(("hmac_secret".into(), "set either hmac_secret or hmac_secret_env, not both".into()));
        }
        problems
    }
}

pub struct WebhookSink {
    url: String,
    /// For logs: the URL without a password.
    shown_url: String,
    headers: Vec<(String, String)>,
    secret: Option<Vec<u8>>,
    snapshot: SnapshotDelivery,
    snapshot_base_url: Option<String>,
    agent: ureq::Agent,
}

impl WebhookSink {
    pub fn new(config: &WebhookConfig) -> Result<WebhookSink, String> {
        let secret = super::secret(&config.hmac_secret, &config.hmac_secret_env, "webhook hmac secret")?;
        let timeout = config.delivery.timeout();
        let agent = ureq::AgentBuilder::new().timeout_connect(timeout).timeout(timeout).redirects(0).build();
        Ok(WebhookSink {
            url: config.url.clone(),
            shown_url: redact_text(&config.url),
            headers: config.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            secret: secret.map(String::into_bytes),
            snapshot: config.snapshot,
            snapshot_base_url: config.snapshot_base_url.as_ref().map(|u| u.trim_end_matches('/').to_string()),
            agent,
        })
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>").
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// One part of a `multipart/form-data` body.
pub struct Part<'a> {
    pub name: &'a str,
    pub file_name: Option<String>,
    pub content_type: &'a str,
    pub data: &'a [u8],
}

/// A `multipart/form-data` body (RFC 7578) and its boundary. Written here:
/// ureq 2 has no multipart support, and the format is a few lines; the
/// boundary is 32 random hex digits, so it cannot plausibly occur in a part.
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let mut random = [0u8; 16];
    if getrandom::getrandom(&mut random).is_err() {
        // Still unique enough per body: the time and the parts' sizes.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        random = now.to_le_bytes();
    }
    let boundary: String =
        std::iter::once("dshost-".to_string()).chain(random.iter().map(|b| format!("{b:02x}"))).collect();
    let mut body = Vec::with_capacity(parts.iter().map(|p| p.data.len() + 200).sum());
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let file = part.file_name.as_ref().map(|f| format!("; filename=\"{f}\"")).unwrap_or_default();
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{}\"{file}\r\nContent-Type: {}\r\n\r\n",
                part.name, part.content_type
            )
            .as_bytes(),
        );
        body.extend_from_slice(part.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

/// File names in a multipart body: the source id cleaned to `[A-Za-z0-9_-]`.
fn file_name(alert: &Alert, suffix: &str) -> String {
    let source: String =
        alert.source.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("{source}-{}{suffix}.jpg", alert.id)
}

impl WebhookSink {
    /// The body and its content type for `alert`, as `snapshot:` says.
    fn body(&self, alert: &Alert, payload: &[u8]) -> (String, Vec<u8>) {
        let json = ("application/json".to_string(), payload.to_vec());
        let (SnapshotDelivery::Multipart, Some(snapshot)) = (self.snapshot, &alert.snapshot) else { return json };
        // A picture whose file is gone (retention) leaves the alert alone.
        let Ok(full) = std::fs::read(&snapshot.path) else {
            tracing::debug!(alert = %alert.id, "snapshot file missing; the webhook gets the alert alone");
            return json;
        };
        let crop = snapshot.crop.as_ref().and_then(|path| std::fs::read(path).ok());
        let mut parts = vec![
            Part { name: "alert", file_name: None, content_type: "application/json", data: payload },
            Part { name: "snapshot", file_name: Some(file_name(alert, "")), content_type: "image/jpeg", data: &full },
        ];
        if let Some(crop) = &crop {
            parts.push(Part {
                name: "crop",
                file_name: Some(file_name(alert, "-crop")),
                content_type: "image/jpeg",
                data: crop,
            });
        }
        let (boundary, body) = multipart(&parts);
        (format!("multipart/form-data; boundary={boundary}"), body)
    }
}

impl Sink for WebhookSink {
    fn deliver(&mut self, alert: &Alert, payload: &[u8]) -> Result<(), DeliveryError> {
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let (content_type, body) = self.body(alert, payload);
        let mut request = self
            .agent
            .post(&self.url)
            .set("Content-Type", &content_type)
            .set("X-Dshost-Alert-Id", &alert.id)
            .set("X-Dshost-Timestamp", &timestamp.to_string());
        if let (SnapshotDelivery::Url, Some(base), Some(snapshot)) =
            (self.snapshot, &self.snapshot_base_url, &alert.snapshot)
        {
            request = request.set("X-Dshost-Snapshot-Url", &format!("{base}/v1/alerts/{}/snapshot.jpg", alert.id));
            if snapshot.crop.is_some() {
                request = request.set("X-Dshost-Crop-Url", &format!("{base}/v1/alerts/{}/crop.jpg", alert.id));
            }
        }
        for (name, value) in &self.headers {
            request = request.set(name, value);
        }
        if let Some(secret) = &self.secret {
            // The alert JSON is signed (the `alert` part in a multipart body).
            request = request.set("X-Dshost-Signature", &signature(secret, timestamp, payload));
        }
        match request.send_bytes(&body) {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(status, _)) => {
                let message = format!("{} answered HTTP {status}", self.shown_url);
                if status == 408 || status == 429 || status >= 500 {
                    Err(DeliveryError::Retry(message))
                } else {
                    Err(DeliveryError::Reject(message))
                }
            }
            Err(ureq::Error::Transport(transport)) => {
                // Not the error's Display: it quotes the URL, password included.
                let detail = transport.message().map(|m| format!(": {}", redact_text(m))).unwrap_or_default();
                Err(DeliveryError::Retry(format!("{}: {}{detail}", self.shown_url, transport.kind())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_and_body() {
        // Expected value from Python: hmac.new(b"Jefe", b"1.what do ya want
        // for nothing?", hashlib.sha256).hexdigest()
        let signature = signature(b"Jefe", 1, b"what do ya want for nothing?");
        assert_eq!(signature, "sha256=a9049465ce89cfb8e9aac62333abda66f80e3403f51f57f6bae3c3a4485eca38");
        assert_ne!(signature, super::signature(b"Jefe", 2, b"what do ya want for nothing?"));
    }

    #[test]
    fn multipart_body_parses_back_with_an_independent_parser() {
        // Parsed by Python's email package (the standard library's MIME
        // parser) in tests/alerts.rs; here, the structure RFC 7578 asks for.
        let (boundary, body) = multipart(&[
            Part { name: "alert", file_name: None, content_type: "application/json", data: b"{\"id\":\"1\"}" },
            Part {
                name: "snapshot",
                file_name: Some("gate-1.jpg".into()),
                content_type: "image/jpeg",
                data: b"\xff\xd8\xff",
            },
        ]);
        assert!(boundary.len() > 30 && boundary.starts_with("dshost-"));
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"alert\"\r\n")));
        assert!(text.contains("name=\"snapshot\"; filename=\"gate-1.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
        assert_eq!(text.matches(&format!("--{boundary}\r\n")).count(), 2);
        let (other, _) = multipart(&[]);
        assert_ne!(boundary, other, "a fresh boundary per body");
    }

    #[test]
    fn url_mode_needs_a_base_url() {
        let config = WebhookConfig { url: "http://x/".into(), snapshot: SnapshotDelivery::Url, ..Default::default() };
        assert_eq!(config.validate()[0].0, "snapshot_base_url");
        let config = WebhookConfig { snapshot_base_url: Some("https://dshost:9464".into()), ..config };
        assert!(config.validate().is_empty());
    }

    #[test]
    fn validation_names_bad_urls_and_headers() {
        let config = WebhookConfig {
            url: "ftp://x".into(),
            headers: [("Bad Header".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        let problems = config.validate();
        assert!(problems.iter().any(|(f, _)| f == "url"));
        assert!(problems.iter().any(|(f, _)| f == "headers.Bad Header"));
    }
}
