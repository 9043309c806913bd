//! Alerts for watchers: `GET /v1/events` streams every alert that passes
//! the throttle as server-sent events, and `GET /v1/alerts?last=N` reads
//! the newest ones back from the journal (the console shows the backlog,
//! then what arrives live).
//!
//! An alert whose snapshot is being encoded is sent once the picture is
//! ready (or after the snapshot wait, `alerts.snapshots.wait_ms`, without
//! it), so a watcher can show it at once. The wait happens here, in the
//! stream of that one watcher, never in the dispatcher.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::future::{select, Either};
use futures_util::stream::Stream;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use super::http::{error, ApiState};
use crate::alerts::feed::FedAlert;
use crate::alerts::journal::{EntryFilter, JournalError, JournalReader};
use crate::alerts::Alert;

/// Longest query string accepted.
const MAX_QUERY: usize = 2048;
/// Longest filter value (ids, names and patterns are short).
const MAX_VALUE: usize = 128;
/// Most alerts one backlog request returns.
pub const MAX_LAST: usize = 1000;
const DEFAULT_LAST: usize = 100;

/// Filters the console and API clients may set.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AlertFilter {
    pub source: Option<String>,
    pub strategy: Option<String>,
    pub pattern: Option<String>,
}

impl AlertFilter {
    pub fn matches(&self, alert: &Alert) -> bool {
        self.source.as_ref().is_none_or(|s| *s == alert.source)
            && self.strategy.as_ref().is_none_or(|s| *s == alert.strategy)
            && self.pattern.as_ref().is_none_or(|p| **p == *alert.pattern)
    }
}

/// A query string that was refused: the parameter at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub field: Option<String>,
    pub message: String,
}

impl QueryError {
    fn new(field: Option<&str>, message: impl Into<String>) -> Self {
        QueryError { field: field.map(str::to_string), message: message.into() }
    }

    fn response(self) -> Response {
        error(StatusCode::BAD_REQUEST, self.message, self.field.as_deref())
    }
}

/// Parses `raw` (URL-encoded), accepting only `allowed` names, each once,
/// with short values.
pub fn parse_query(raw: Option<&str>, allowed: &[&str]) -> Result<BTreeMap<String, String>, QueryError> {
    let raw = raw.unwrap_or("");
    if raw.len() > MAX_QUERY {
        return Err(QueryError::new(None, format!("the query string is longer than {MAX_QUERY} bytes")));
    }
    let mut out = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            return Err(QueryError::new(
                Some(&name),
                format!("unknown query parameter `{name}`; use {}", allowed.join(", ")),
            ));
        }
        if value.len() > MAX_VALUE || value.chars().any(char::is_control) {
            return Err(QueryError::new(
                Some(&name),
                format!("`{name}` must be at most {MAX_VALUE} bytes without control characters"),
            ));
        }
        if out.insert(name.to_string(), value.to_string()).is_some() {
            return Err(QueryError::new(Some(&name), format!("`{name}` is given more than once")));
        }
    }
    Ok(out)
}

/// The filter parameters of a parsed query; empty values mean "any".
fn filter_of(query: &BTreeMap<String, String>) -> AlertFilter {
    let get = |name: &str| query.get(name).filter(|v| !v.is_empty()).cloned();
    AlertFilter { source: get("source"), strategy: get("strategy"), pattern: get("pattern") }
}

/// `last` (1..=MAX_LAST, default DEFAULT_LAST) and `after` (a sequence number).
fn backlog_of(query: &BTreeMap<String, String>) -> Result<(usize, i64), QueryError> {
    let last =
        match query.get("last") {
            None => DEFAULT_LAST,
            Some(value) => value.parse::<usize>().ok().filter(|n| (1..=MAX_LAST).contains(n)).ok_or_else(|| {
                QueryError::new(Some("last"), format!("`last` must be a whole number in 1..={MAX_LAST}"))
            })?,
        };
    let after =
        match query.get("after") {
            None => 0,
            Some(value) => value.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                QueryError::new(Some("after"), "`after` must be a journal sequence number (0 or more)")
            })?,
        };
    Ok((last, after))
}

/// `GET /v1/alerts`: the newest journaled alerts (oldest first), with their
/// delivery state per sink.
pub async fn list_alerts(State(state): State<ApiState>, RawQuery(raw): RawQuery) -> Response {
    let query = match parse_query(raw.as_deref(), &["last", "after", "source", "strategy", "pattern"]) {
        Ok(query) => query,
        Err(e) => return e.response(),
    };
    let (last, after) = match backlog_of(&query) {
        Ok(backlog) => backlog,
        Err(e) => return e.response(),
    };
    let filter = filter_of(&query);
    let Some(path) = state.journal_path.clone() else {
        return error(
            StatusCode::CONFLICT,
            "the alert journal is off (alerts.journal.enabled: false): there is no backlog to read",
            None,
        );
    };
    match tokio::task::spawn_blocking(move || read_backlog(path, filter, last, after)).await {
        Ok(Ok(entries)) => Json(json!({ "alerts": entries })).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the alert journal: {e}"), None),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}

fn read_backlog(
    path: PathBuf,
    filter: AlertFilter,
    last: usize,
    after: i64,
) -> Result<Vec<crate::alerts::journal::JournalEntry>, JournalError> {
    let reader = match JournalReader::open(&path) {
        Ok(reader) => reader,
        // Not written yet: no alerts so far.
        Err(JournalError::Missing(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    reader.entries(&EntryFilter {
        after_seq: after,
        source: filter.source,
        strategy: filter.strategy,
        pattern: filter.pattern,
        last: Some(last),
        ..Default::default()
    })
}

/// Ends every event stream when the server stops (a stream never ends by
/// itself, and the server waits for open responses before it stops).
#[derive(Clone)]
pub struct Closing(Arc<watch::Sender<bool>>);

impl Default for Closing {
    fn default() -> Self {
        Closing(Arc::new(watch::Sender::new(false)))
    }
}

impl Closing {
    pub fn close(&self) {
        self.0.send_replace(true);
    }

    fn watch(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// One watcher's stream.
struct Watcher {
    feed: broadcast::Receiver<FedAlert>,
    closing: watch::Receiver<bool>,
    filter: AlertFilter,
    snapshot_wait: Duration,
    greeted: bool,
}

/// `GET /v1/events`: `ready` once, then an `alert` event per admitted alert
/// (its JSON, with `snapshot` when one was taken) and a `lagged` event
/// (`{"missed": N}`) when this watcher fell behind and lost alerts.
pub async fn events(State(state): State<ApiState>, RawQuery(raw): RawQuery) -> Response {
    let query = match parse_query(raw.as_deref(), &["source", "strategy", "pattern"]) {
        Ok(query) => query,
        Err(e) => return e.response(),
    };
    let watcher = Watcher {
        feed: state.alerts.feed.subscribe(),
        closing: state.closing.watch(),
        filter: filter_of(&query),
        snapshot_wait: state.snapshot_wait,
        greeted: false,
    };
    Sse::new(stream(watcher)).keep_alive(KeepAlive::default()).into_response()
}

fn stream(watcher: Watcher) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(watcher, |mut w| async move {
        let event = next_event(&mut w).await?;
        Some((Ok(event), w))
    })
}

async fn next_event(w: &mut Watcher) -> Option<Event> {
    if !w.greeted {
        w.greeted = true;
        return Some(Event::default().event("ready").data("{}"));
    }
    loop {
        if *w.closing.borrow() {
            return None;
        }
        let received = {
            let recv = std::pin::pin!(w.feed.recv());
            let closed = std::pin::pin!(w.closing.changed());
            match select(recv, closed).await {
                Either::Left((received, _)) => received,
                // Closing (or the server is gone): end the stream.
                Either::Right(_) => return None,
            }
        };
        match received {
            Ok(fed) if w.filter.matches(&fed.alert) => {
                let alert = with_snapshot(fed, w.snapshot_wait).await;
                return Some(Event::default().event("alert").id(alert.id.clone()).data(alert.to_json_line()));
            }
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                return Some(Event::default().event("lagged").data(json!({ "missed": missed }).to_string()));
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

/// The alert with its snapshot, once the encoder is done with it (at most
/// `wait`; the encoders are bounded and skip rather than fall behind).
async fn with_snapshot(fed: FedAlert, wait: Duration) -> Alert {
    let mut alert = (*fed.alert).clone();
    if let Some(slot) = fed.snapshot {
        alert.snapshot = match slot.try_get() {
            Some(done) => done,
            // Still encoding: wait on a blocking thread, not this runtime's one worker.
            None => tokio::task::spawn_blocking(move || slot.wait(wait)).await.ok().flatten(),
        };
    }
    alert
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_take_known_short_parameters_once() {
        let allowed = ["last", "source", "pattern"];
        let query = parse_query(Some("last=5&source=cam%201&pattern="), &allowed).unwrap();
        assert_eq!(query.get("source").map(String::as_str), Some("cam 1"));
        assert_eq!(filter_of(&query), AlertFilter { source: Some("cam 1".into()), ..Default::default() });
        assert_eq!(backlog_of(&query), Ok((5, 0)));
        assert!(parse_query(None, &allowed).unwrap().is_empty());

        let refused = |raw: &str| parse_query(Some(raw), &allowed).unwrap_err();
        assert_eq!(refused("tokens=1").field.as_deref(), Some("tokens"));
        assert!(refused("tokens=1").message.contains("last, source, pattern"));
        assert_eq!(refused("source=a&source=b").field.as_deref(), Some("source"));
        assert_eq!(refused(&format!("source={}", "a".repeat(MAX_VALUE + 1))).field.as_deref(), Some("source"));
        assert_eq!(refused("source=a%0Ab").field.as_deref(), Some("source"));
        assert_eq!(refused(&"x".repeat(MAX_QUERY + 1)).field, None);
    }

    #[test]
    fn backlog_bounds() {
        let of = |raw: &str| backlog_of(&parse_query(Some(raw), &["last", "after"]).unwrap());
        assert_eq!(of(""), Ok((DEFAULT_LAST, 0)));
        assert_eq!(of(&format!("last={MAX_LAST}&after=7")), Ok((MAX_LAST, 7)));
        for bad in ["last=0", "last=1001", "last=-1", "last=ten", "last=99999999999999999999999"] {
            assert_eq!(of(bad).unwrap_err().field.as_deref(), Some("last"), "{bad}");
        }
        assert_eq!(of("after=-3").unwrap_err().field.as_deref(), Some("after"));
    }
}
