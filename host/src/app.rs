//! A whole running dshost: the service (sources, strategies, alerts; see
//! `runtime`) and, when configured, its HTTP surface (metrics, health,
//! control API). What `dshost run` starts, and what the end-to-end tests
//! start the same way.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::ops::http::{ApiState, HttpError, HttpOptions, HttpServer};
use crate::ops::session::Auth;
use crate::runtime::{RunSummary, Service, ServiceError, ServiceOptions};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("`{0}` is not a listen address like 127.0.0.1:9464")]
    Address(String),
}

/// Where and how to serve HTTP.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub address: SocketAddr,
    pub token: Option<String>,
    /// HTTPS and the plaintext-token rule (`monitoring.http.tls`, ...).
    pub options: HttpOptions,
}

/// Where to serve HTTP, if anywhere: `override_address` (`--http`) wins over
/// `monitoring.http.address`; the token and TLS settings come from the config.
pub fn http_settings(config: &Config, override_address: Option<&str>) -> Result<Option<HttpSettings>, AppError> {
    let configured = config.monitoring.http.as_ref();
    let address = match (override_address, configured) {
        (Some(address), _) => address.to_string(),
        (None, Some(http)) => http.address.clone(),
        (None, None) => return Ok(None),
    };
    let parsed = address.parse().map_err(|_| AppError::Address(address.clone()))?;
    let token = configured.and_then(|h| h.token.clone()).filter(|t| !t.is_empty());
    let options = HttpOptions {
        tls: configured.and_then(|h| h.tls.clone()),
        allow_plaintext_token: configured.is_some_and(|h| h.allow_plaintext_token),
    };
    Ok(Some(HttpSettings { address: parsed, token, options }))
}

pub struct App {
    service: Service,
    http: Option<HttpServer>,
}

impl App {
    /// Starts the service, then the HTTP server when `http` says where.
    pub fn start(config: Config, options: ServiceOptions, http: Option<HttpSettings>) -> Result<App, AppError> {
        let service = Service::start(config, options)?;
        let http = match http {
            None => None,
            Some(HttpSettings { address, token, options }) => {
                let token: Option<Arc<str>> = token.map(Arc::from);
                let state = ApiState {
                    control: service.control().clone(),
                    snapshot_dir: service.snapshot_dir().to_path_buf(),
                    rings: service.rings().cloned(),
                    alerts: service.alert_stats().clone(),
                    // Over plain HTTP a `Secure` cookie would not come back.
                    auth: Arc::new(Auth::new(token.as_deref(), options.tls.is_some())),
                    token,
                    journal_path: service.journal_path().map(Path::to_path_buf),
                    snapshot_wait: service.snapshot_wait(),
                    closing: Default::default(),
                };
                match HttpServer::start_with(address, state, options) {
                    Ok(server) => Some(server),
                    Err(error) => {
                        service.shutdown();
                        return Err(error.into());
                    }
                }
            }
        };
        Ok(App { service, http })
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The HTTP server's bound address (with the port a `:0` got).
    pub fn http_address(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.address)
    }

    /// Whether the control API is on: then dshost keeps serving when every
    /// source has ended (sources can be added again).
    pub fn serves_api(&self) -> bool {
        self.http.is_some()
    }

    /// Stops the HTTP server, then the service; what the run did.
    pub fn shutdown(mut self) -> RunSummary {
        drop(self.http.take());
        self.service.shutdown()
    }
}
