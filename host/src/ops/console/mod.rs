//! The web console at `/`: sources with live thumbnails, strategies with
//! their counters and a reload button, alerts arriving live with their
//! snapshots. Plain HTML, CSS and JavaScript modules embedded in the binary
//! (no build step, nothing fetched from elsewhere); the pages use the same
//! `/v1` API as any client.
//!
//! With a token set, `/` is a login form until the browser holds a session
//! (see [`super::session`]); the token travels once, in the form's POST
//! body, and never appears in a URL, in the page or in a log.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::http::ApiState;
use super::session::{LoginError, MAX_TOKEN_BYTES};

const INDEX: &str = include_str!("assets/index.html");
const LOGIN: &str = include_str!("assets/login.html");

/// (name, content type, bytes) of every file under `/console/`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("console.css", "text/css; charset=utf-8", include_bytes!("assets/console.css")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("assets/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_bytes!("assets/api.js")),
    ("sources.js", "text/javascript; charset=utf-8", include_bytes!("assets/sources.js")),
    ("strategies.js", "text/javascript; charset=utf-8", include_bytes!("assets/strategies.js")),
    ("alerts.js", "text/javascript; charset=utf-8", include_bytes!("assets/alerts.js")),
    ("icon.svg", "image/svg+xml", include_bytes!("assets/icon.svg")),
];

/// Only our own files run, nothing is framed, no referrer leaves.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The console's routes (open: the pages themselves hold no data, and every
/// call they make goes through the token rule of `/v1`).
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/", get(index))
        .route("/console/{file}", get(asset))
        .route("/login", post(login))
        .route("/logout", post(logout))
}

fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn login_page(status: StatusCode, message: Option<&str>) -> Response {
    let message = message.map(|m| format!(r#"<p class="error" role="alert">{m}</p>"#)).unwrap_or_default();
    page(status, LOGIN.replace("<!--message-->", &message))
}

/// `/`: the console, or the login form when a token is set and the browser
/// has no session.
async fn index(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if !state.auth.allows(&headers) {
        return login_page(StatusCode::OK, None);
    }
    let mode = if state.auth.is_open() { "open" } else { "session" };
    page(StatusCode::OK, INDEX.replace(r#"data-auth="open""#, &format!(r#"data-auth="{mode}""#)))
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                // Assets change with the binary; revalidate rather than cache stale code.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "no such console file")
            .into_response(),
    }
}

fn see_other(location: &'static str, cookie: Option<String>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The token field of a login form body (`application/x-www-form-urlencoded`);
/// `None` when there is none or it is longer than any token.
fn form_token(body: &[u8]) -> Option<String> {
    // Percent-encoding at most triples a token; anything longer is not one.
    if body.len() > MAX_TOKEN_BYTES * 3 + 16 {
        return None;
    }
    url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .filter(|token| token.len() <= MAX_TOKEN_BYTES)
}

/// `POST /login`: the form's token for a session cookie, then back to `/`.
async fn login(State(state): State<ApiState>, body: axum::body::Bytes) -> Response {
    let Some(token) = form_token(&body) else {
        return login_page(StatusCode::BAD_REQUEST, Some("Enter the access token (at most 4096 bytes)."));
    };
    if state.auth.is_open() {
        // No token is set: there is nothing to log in to.
        return see_other("/", None);
    }
    match state.auth.login(&token) {
        Ok(cookie) => {
            tracing::info!("console login");
            see_other("/", Some(cookie))
        }
        Err(LoginError::WrongToken) => {
            tracing::warn!("console login refused: wrong token");
            login_page(StatusCode::UNAUTHORIZED, Some("That token is wrong."))
        }
        Err(e @ LoginError::Random(_)) => {
            tracing::error!(error = %e, "console login failed");
            login_page(StatusCode::INTERNAL_SERVER_ERROR, Some("The server cannot make a session now; see its log."))
        }
    }
}

/// `POST /logout`: ends the session.
async fn logout(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    see_other("/", Some(state.auth.logout(&headers)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_pages_name_is_embedded() {
        // Each `/console/NAME` referenced by the HTML or imported by a module.
        let mut texts = vec![INDEX.to_string(), LOGIN.to_string()];
        texts.extend(
            ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")).map(|(_, _, b)| String::from_utf8_lossy(b).into()),
        );
        let mut named = Vec::new();
        for text in &texts {
            for part in text.split("/console/").skip(1) {
                named.push(part.split(['"', '\'']).next().unwrap_or_default().to_string());
            }
            for part in text.split("from './").skip(1) {
                named.push(part.split('\'').next().unwrap_or_default().to_string());
            }
        }
        assert!(named.len() >= 6, "{named:?}");
        for name in named {
            assert!(ASSETS.iter().any(|(n, _, _)| *n == name), "`{name}` is referenced but not embedded");
        }
    }

    #[test]
    fn the_login_form_posts_the_token_and_names_its_field() {
        assert!(LOGIN.contains(r#"method="post""#) && LOGIN.contains(r#"action="/login""#));
        assert!(LOGIN.contains(r#"<label for="token""#) && LOGIN.contains(r#"name="token""#));
        assert!(INDEX.contains(r#"data-auth="open""#));
        assert_eq!(form_token(b"token=a%20b%2Bc&x=1").as_deref(), Some("a b+c"));
        assert_eq!(form_token(b"other=1"), None);
        assert_eq!(form_token(&vec![b'a'; MAX_TOKEN_BYTES * 4]), None);
        let longest = format!("token={}", "a".repeat(MAX_TOKEN_BYTES));
        assert_eq!(form_token(longest.as_bytes()).map(|t| t.len()), Some(MAX_TOKEN_BYTES));
        assert_eq!(form_token(format!("{longest}a").as_bytes()), None);
    }
}
