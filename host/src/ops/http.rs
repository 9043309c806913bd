//! The HTTP surface: Prometheus metrics, health, and the control API under
//! `/v1` (sources, strategies, config reload). Described in
//! `docs/openapi.yaml`. Every change goes through the runtime's one apply
//! path ([`Control`]), with the checks a config file gets.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::config::SourceConfig;
use crate::frame::SourceState;
use crate::runtime::control::{lock_reloader as lock, Control, ControlError};
use crate::runtime::strategies::ReloadOutcome;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub control: Arc<Control>,
    /// Where alert snapshots are (`<data-dir>/snapshots`).
    pub snapshot_dir: std::path::PathBuf,
    /// Every source's recent frames (live thumbnails), when snapshots are on.
    pub rings: Option<Arc<crate::frame::ring::Rings>>,
    /// Alert counters (emitted, suppressed by reason).
    pub alerts: Arc<crate::alerts::AlertStats>,
    /// Bearer token required on `/metrics` and `/v1` when set.
    pub token: Option<Arc<str>>,
    /// The token rule with the console's login sessions (made from `token`).
    pub auth: Arc<super::session::Auth>,
    /// The alert journal (the console's backlog); `None` when it is off.
    pub journal_path: Option<std::path::PathBuf>,
    /// How long an event stream waits for an alert's snapshot.
    pub snapshot_wait: Duration,
    /// Ends the event streams when the server stops.
    pub closing: super::events::Closing,
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> Response {
    let mut body = json!({ "error": message.into() });
    if let Some(field) = field {
        body["field"] = json!(field);
    }
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let rendered = tokio::task::spawn_blocking(move || {
        let reloader = lock(state.control.reloader());
        super::metrics::render(state.control.runtime(), Some(&reloader), &state.alerts, Some(&state.control.counters))
    })
    .await;
    match rendered {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        // A panic while gathering: say so, rather than an empty 200 that a
        // scraper would take for "no metrics".
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot gather the metrics: {e}"), None),
    }
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready: at least one source produced a frame in the last 5 s, and no
/// strategy failed to load.
async fn readyz(State(state): State<ApiState>) -> Response {
    let sources = state.control.runtime().source_metrics();
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
    let strategies = state.control.runtime().plans().len();
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
    Json(json!({ "sources": state.control.runtime().summaries() }))
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
    let control = state.control.clone();
    let id = config.id.clone();
    let added = tokio::task::spawn_blocking(move || control.add_source(config)).await;
    match added {
        Ok(Ok(_)) => {
            tracing::info!(source = %id, "source added through the API");
            (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
        }
        Ok(Err(ControlError::Invalid(errors))) => {
            let first = errors.issues.first();
            let message: Vec<String> = errors.issues.iter().map(|i| i.message.clone()).collect();
            error(StatusCode::BAD_REQUEST, message.join("; "), first.map(|i| i.path.as_str()).filter(|p| !p.is_empty()))
        }
        Ok(Err(e @ ControlError::DuplicateSource(_))) => error(StatusCode::CONFLICT, e.to_string(), Some("id")),
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), None),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}

async fn remove_source(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    let control = state.control.clone();
    let removed = tokio::task::spawn_blocking(move || control.remove_source(&id)).await;
    match removed {
        Ok(Ok(summary)) => {
            tracing::info!(source = %summary.id, "source removed through the API");
            Json(json!({ "removed": summary })).into_response()
        }
        Ok(Err(e @ ControlError::UnknownSource(_))) => error(StatusCode::NOT_FOUND, e.to_string(), Some("id")),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}

async fn reload_config(State(state): State<ApiState>) -> Response {
    let control = state.control.clone();
    let reloaded = tokio::task::spawn_blocking(move || control.reload_file()).await;
    match reloaded {
        Ok(Ok(report)) => {
            let failed = !report.failures().is_empty();
            let status = if failed { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
            (status, Json(json!({ "applied": !failed, "changes": report.changes }))).into_response()
        }
        Ok(Err(ControlError::Invalid(errors))) => {
            let issues: Vec<Value> =
                errors.issues.iter().map(|i| json!({ "path": i.path, "line": i.line, "message": i.message })).collect();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(
                    json!({ "error": format!("{} is invalid; nothing was changed", errors.origin), "issues": issues }),
                ),
            )
                .into_response()
        }
        Ok(Err(e @ ControlError::NoConfigFile)) => error(StatusCode::CONFLICT, e.to_string(), None),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}

async fn list_strategies(State(state): State<ApiState>) -> Json<Value> {
    let reloader = state.control.reloader().clone();
    let plans = state.control.runtime().plans();
    let metrics = state.control.runtime().strategy_metrics();
    let list: Vec<Value> = plans
        .into_iter()
        .map(|plan| {
            let stats = lock(&reloader).stats(&plan.name);
            let quarantined = metrics
                .iter()
                .filter(|(_, name, m)| name == &plan.name && m.quarantines.load(Ordering::Relaxed) > 0)
                .count();
            let counters = strategy_counters(&plan.name, &metrics);
            let mut entry = json!({
                "name": plan.name,
                "version": plan.component.version,
                "world": plan.component.world.as_str(),
                "path": lock(&reloader).specs().into_iter().find(|s| s.name == plan.name).map(|s| s.path.display().to_string()),
                "sources": plan.sources,
                "state": if quarantined > 0 { "degraded" } else { "running" },
                "reloads_ok": stats.as_ref().map(|s| s.succeeded.load(Ordering::Relaxed)),
                "reloads_failed": stats.as_ref().map(|s| s.failed.load(Ordering::Relaxed)),
                "last_reload_error": stats.as_ref().and_then(|s| s.last_error.lock().ok().and_then(|e| e.clone())),
            });
            if let (Some(entry), Value::Object(counters)) = (entry.as_object_mut(), counters) {
                entry.extend(counters);
            }
            entry
        })
        .collect();
    Json(json!({ "strategies": list }))
}

/// Calls, detections, errors by kind, restarts and quarantines of strategy
/// `name`, summed over its sources and per source (the counters of the
/// instances running now: a removed source takes its counts with it).
fn strategy_counters(name: &str, metrics: &[(String, String, Arc<crate::strategy::StrategyMetrics>)]) -> Value {
    use crate::strategy::metrics::ErrorKind;
    let mine: Vec<_> = metrics.iter().filter(|(_, n, _)| n == name).collect();
    let sum = |f: &dyn Fn(&crate::strategy::StrategyMetrics) -> u64| mine.iter().map(|(_, _, m)| f(m)).sum::<u64>();
    let errors: serde_json::Map<String, Value> =
        ErrorKind::ALL.iter().map(|kind| (kind.as_str().to_string(), json!(sum(&|m| m.errors(*kind))))).collect();
    let per_source: Vec<Value> = mine
        .iter()
        .map(|(source, _, m)| {
            json!({
                "source": source,
                "calls": m.calls.load(Ordering::Relaxed),
                "detections": m.detections.load(Ordering::Relaxed),
                "errors": m.total_errors(),
                "restarts": m.restarts.load(Ordering::Relaxed),
                "quarantines": m.quarantines.load(Ordering::Relaxed),
            })
        })
        .collect();
    json!({
        "calls": sum(&|m| m.calls.load(Ordering::Relaxed)),
        "detections": sum(&|m| m.detections.load(Ordering::Relaxed)),
        "errors": errors,
        "restarts": sum(&|m| m.restarts.load(Ordering::Relaxed)),
        "quarantines": sum(&|m| m.quarantines.load(Ordering::Relaxed)),
        "per_source": per_source,
    })
}

async fn reload_strategy(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    let control = state.control.clone();
    let target = name.clone();
    let result = tokio::task::spawn_blocking(move || control.reload_strategy(&target, true)).await;
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

fn jpeg(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "no-store")], bytes).into_response()
}

/// `GET /v1/alerts/{id}/snapshot.jpg` and `/crop.jpg`.
async fn alert_picture(State(state): State<ApiState>, Path((id, file)): Path<(String, String)>) -> Response {
    let Some((full, crop)) = crate::alerts::snapshot::paths(&state.snapshot_dir, &id) else {
        return error(StatusCode::NOT_FOUND, format!("`{id}` is not an alert id"), Some("id"));
    };
    let path = match file.as_str() {
        "snapshot.jpg" => full,
        "crop.jpg" => crop,
        _ => return error(StatusCode::NOT_FOUND, "alert pictures are snapshot.jpg and crop.jpg", None),
    };
    match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(bytes)) => jpeg(bytes),
        _ => error(
            StatusCode::NOT_FOUND,
            format!("alert `{id}` has no {file} (no snapshot was taken, or retention removed it)"),
            Some("id"),
        ),
    }
}

/// `GET /v1/sources/{id}/thumbnail.jpg`: the source's newest frame.
async fn thumbnail(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    let Some(rings) = state.rings.clone() else {
        return error(StatusCode::NOT_FOUND, "thumbnails need `alerts.snapshots.enabled: true`", None);
    };
    let frame = rings.get(&id).and_then(|ring| ring.latest());
    let Some(frame) = frame else {
        return error(StatusCode::NOT_FOUND, format!("source `{id}` has no frame yet (or does not exist)"), Some("id"));
    };
    match tokio::task::spawn_blocking(move || crate::alerts::snapshot::thumbnail(&frame, 320, 70)).await {
        Ok(Ok(bytes)) => jpeg(bytes),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if !state.auth.allows(request.headers()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>), or log in at /",
            None,
        );
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
        .route("/v1/config/reload", post(reload_config))
        .route("/v1/alerts", get(super::events::list_alerts))
        .route("/v1/alerts/{id}/{file}", get(alert_picture))
        .route("/v1/events", get(super::events::events))
        .route("/v1/sources/{id}/thumbnail.jpg", get(thumbnail))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(protected)
        .merge(super::console::router())
        .with_state(state)
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
    closing: super::events::Closing,
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
        let closing = state.closing.clone();
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
        Ok(HttpServer { address: bound, closing, shutdown: Some(shutdown), thread: Some(thread) })
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // Open event streams would hold the graceful shutdown forever.
        self.closing.close();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
