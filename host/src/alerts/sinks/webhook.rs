//! HTTP POST of each alert, signed with HMAC-SHA256 when a secret is set.
//!
//! Headers: `Content-Type: application/json`, `X-Dshost-Alert-Id`,
//! `X-Dshost-Timestamp` (Unix seconds) and, with a secret,
//! `X-Dshost-Signature: sha256=<hex of HMAC(secret, "<timestamp>.<body>")>`
//! (the timestamp is signed too, so a receiver can refuse replays).
//! 2xx = delivered; 408, 429, 5xx and network errors are retried; any other
//! status is a rejection (retrying a 400 would never succeed).

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
    pub delivery: DeliveryConfig,
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

impl Sink for WebhookSink {
    fn deliver(&mut self, alert: &Alert, payload: &[u8]) -> Result<(), DeliveryError> {
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut request = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json")
            .set("X-Dshost-Alert-Id", &alert.id)
            .set("X-Dshost-Timestamp", &timestamp.to_string());
        for (name, value) in &self.headers {
            request = request.set(name, value);
        }
        if let Some(secret) = &self.secret {
            request = request.set("X-Dshost-Signature", &signature(secret, timestamp, payload));
        }
        match request.send_bytes(payload) {
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
