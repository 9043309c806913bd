//! The HTTP surface: Prometheus metrics, health, and the control API under
//! `/v1` (sources and strategies). Described in `docs/openapi.yaml`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::config::{DetectorKind, SourceConfig};
use crate::pipeline::{Runtime, RuntimeError, SourceSpec, SourceState};
use crate::strategy::reload::{ReloadOutcome, Reloader};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub runtime: Arc<Runtime>,
    pub reloader: Arc<Mutex<Reloader>>,
    pub default_detector: DetectorKind,
    /// Alert counters (emitted, suppressed by reason).
    pub alerts: Arc<crate::alerts::AlertStats>,
    /// Bearer token required on `/metrics` and `/v1` when set.
    pub token: Option<Arc<str>>,
}

fn error(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> Response {
    let mut body = json!({ "error": message.into() });
    if let Some(field) = field {
        body["field"] = json!(field);
    }
    (status, Json(body)).into_response()
}

fn lock(reloader: &Mutex<Reloader>) -> std::sync::MutexGuard<'_, Reloader> {
    reloader.lock().unwrap_or_else(|p| p.into_inner())
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let text = tokio::task::spawn_blocking(move || {
        let reloader = lock(&state.reloader);
        super::metrics::render(&state.runtime, Some(&reloader), &state.alerts)
    })
    .await
    .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready: at least one source produced a frame in the last 5 s, and no
/// strategy failed to load.
async fn readyz(State(state): State<ApiState>) -> Response {
    let sources = state.runtime.source_metrics();
    let mut problems = Vec::new();
    if sources.is_empty() {
        problems.push("no sources configured".to_string());
    }
    let producing: Vec<&String> = sources
        .iter()
        .filter(|(_, m)| m.last_frame().is_some_and(|at| at.elapsed() < Duration::from_secs(5)))
        .map(|(id, _)| id)
        .collect();
    if !sources.is_empty() && producing.is_empty() {
        problems.push("no source has produced a frame in the last 5 s".to_string());
    }
    for (id, m) in &sources {
        if m.state() == SourceState::Failed {
            problems.push(format!("source `{id}` failed"));
        }
    }
    let strategies = state.runtime.plans().len();
    let body = json!({
        "ready": problems.is_empty(),
        "sources": sources.len(),
        "producing": producing,
        "strategies": strategies,
        "problems": problems,
    });
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

async fn list_sources(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({ "sources": state.runtime.summaries() }))
}

async fn add_source(State(state): State<ApiState>, body: axum::body::Bytes) -> Response {
    let config: SourceConfig = match serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body))
    {
        Ok(config) => config,
        Err(e) => {
            let field = e.path().to_string();
            let field = (field != ".").then_some(field);
            return error(StatusCode::BAD_REQUEST, e.into_inner().to_string(), field.as_deref());
        }
    };
    if config.id.is_empty()
        || config.id.len() > 64
        || !config.id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "ids are 1-64 characters of letters, digits, `-`, `_` and `.`",
            Some("id"),
        );
    }
    let spec = match SourceSpec::from_config(&config, state.default_detector) {
        Ok(spec) => spec,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string(), Some("uri")),
    };
    let runtime = state.runtime.clone();
    let id = config.id.clone();
    let added = tokio::task::spawn_blocking(move || runtime.add_source(spec)).await;
    match added {
        Ok(Ok(())) => {
            tracing::info!(source = %id, "source added through the API");
            (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
        }
        Ok(Err(RuntimeError::DuplicateSource(id))) => {
            error(StatusCode::CONFLICT, format!("a source with the id `{id}` is already running"), Some("id"))
        }
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), None),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}

async fn remove_source(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    let runtime = state.runtime.clone();
    let removed = tokio::task::spawn_blocking(move || runtime.remove_source(&id)).await;
    match removed {
        Ok(Ok(summary)) => {
            tracing::info!(source = %summary.id, "source removed through the API");
            Json(json!({ "removed": summary })).into_response()
        }
        Ok(Err(e)) => error(StatusCode::NOT_FOUND, e.to_string(), Some("id")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}

async fn list_strategies(State(state): State<ApiState>) -> Json<Value> {
    let reloader = state.reloader.clone();
    let plans = state.runtime.plans();
    let metrics = state.runtime.strategy_metrics();
    let list: Vec<Value> = plans
        .into_iter()
        .map(|plan| {
            let stats = lock(&reloader).stats(&plan.name);
            let quarantined = metrics
                .iter()
                .filter(|(_, name, m)| name == &plan.name && m.quarantines.load(Ordering::Relaxed) > 0)
                .count();
            json!({
                "name": plan.name,
                "version": plan.component.version,
                "world": plan.component.world.as_str(),
                "path": lock(&reloader).specs().into_iter().find(|s| s.name == plan.name).map(|s| s.path.display().to_string()),
                "sources": plan.sources,
                "state": if quarantined > 0 { "degraded" } else { "running" },
                "reloads_ok": stats.as_ref().map(|s| s.succeeded.load(Ordering::Relaxed)),
                "reloads_failed": stats.as_ref().map(|s| s.failed.load(Ordering::Relaxed)),
                "last_reload_error": stats.as_ref().and_then(|s| s.last_error.lock().ok().and_then(|e| e.clone())),
            })
        })
        .collect();
    Json(json!({ "strategies": list }))
}

async fn reload_strategy(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    let reloader = state.reloader.clone();
    let target = name.clone();
    let result = tokio::task::spawn_blocking(move || lock(&reloader).reload(&target, true)).await;
    match result {
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no strategy is named `{name}`"), Some("name")),
        Ok(Some(Ok(ReloadOutcome::Installed { version, previous, elapsed, kept_old }))) => Json(json!({
            "name": name,
            "version": version,
            "previous": previous,
            "elapsed_ms": elapsed.as_secs_f64() * 1e3,
            "sources_keeping_previous": kept_old.into_iter().map(|(s, r)| json!({"source": s, "reason": r})).collect::<Vec<_>>(),
        }))
        .into_response(),
        Ok(Some(Ok(ReloadOutcome::Unchanged))) => Json(json!({ "name": name, "unchanged": true })).into_response(),
        Ok(Some(Err(e))) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), None),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let presented = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if !super::token::BearerToken::new(token).accepts_header(presented) {
            return error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
                None,
            );
        }
    }
    next.run(request).await
}

pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/sources", get(list_sources).post(add_source))
        .route("/v1/sources/{id}", delete(remove_source))
        .route("/v1/strategies", get(list_strategies))
        .route("/v1/strategies/{name}/reload", post(reload_strategy))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).merge(protected).with_state(state)
}

/// Why the HTTP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
    #[error("refusing to listen on {0} without a bearer token: set `monitoring.http.token` (or DSHOST_MONITORING__HTTP__TOKEN) or bind to 127.0.0.1")]
    TokenRequired(SocketAddr),
    #[error("cannot start the HTTP runtime: {0}")]
    Runtime(std::io::Error),
    #[error("refusing to send the bearer token in clear text on {0}: set `monitoring.http.tls` (cert and key), bind to 127.0.0.1, or set `monitoring.http.allow_plaintext_token: true`")]
    PlaintextToken(SocketAddr),
    #[error("monitoring.http.tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// How the server is exposed beyond its address.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<crate::tls::ServerTlsConfig>,
    /// Off loopback, allow a token without TLS (logged).
    pub allow_plaintext_token: bool,
}

/// A running HTTP server; dropping it stops the server.
pub struct HttpServer {
    pub address: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds and serves on a thread of its own (a small tokio runtime), so
    /// nothing here competes with the pipeline's or strategies' threads.
    pub fn start(address: SocketAddr, state: ApiState) -> Result<HttpServer, HttpError> {
        HttpServer::start_with(address, state, HttpOptions::default())
    }

    /// [`HttpServer::start`] with HTTPS and the plaintext-token rule.
    pub fn start_with(address: SocketAddr, state: ApiState, options: HttpOptions) -> Result<HttpServer, HttpError> {
        let exposure = super::tls::Exposure {
            address,
            token: state.token.is_some(),
            tls: options.tls.is_some(),
            allow_plaintext_token: options.allow_plaintext_token,
        };
        match exposure.check() {
            Ok(()) => {}
            Err(super::tls::Refusal::TokenRequired) => return Err(HttpError::TokenRequired(address)),
            Err(super::tls::Refusal::PlaintextToken) => return Err(HttpError::PlaintextToken(address)),
        }
        let tls = options.tls.as_ref().map(|tls| tls.server_config().map(Arc::new)).transpose()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dshost-http")
            .enable_all()
            .build()
            .map_err(HttpError::Runtime)?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(address))
            .map_err(|source| HttpError::Bind { address, source })?;
        let bound = listener.local_addr().map_err(|source| HttpError::Bind { address, source })?;
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let app = router(state);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let thread = std::thread::Builder::new()
            .name("dshost-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let stopped = async {
                        let _ = stop.await;
                    };
                    let served = match tls {
                        Some(config) => match super::tls::TlsListener::new(listener, config) {
                            Ok(listener) => axum::serve(listener, app).with_graceful_shutdown(stopped).await,
                            Err(e) => Err(e),
                        },
                        None => axum::serve(listener, app).with_graceful_shutdown(stopped).await,
                    };
                    if let Err(e) = served {
                        tracing::error!(error = %e, "HTTP server stopped");
                    }
                });
            })
            .map_err(HttpError::Runtime)?;
        tracing::info!(address = %bound, scheme, "HTTP server listening (metrics, health, control API)");
        Ok(HttpServer { address: bound, shutdown: Some(shutdown), thread: Some(thread) })
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
