//! Who may use the HTTP surface when a token is set: API clients send it as
//! `Authorization: Bearer <token>`; a browser logs in once through the
//! console's form (the token in a POST body, never in a URL) and gets a
//! session cookie (`HttpOnly`, `SameSite=Strict`), so the token is neither
//! in the page, nor in a URL, nor in a log. Without a token (loopback only,
//! see [`super::http::HttpServer::start`]) everything is open.
//!
//! Tokens are compared in constant time ([`super::token::BearerToken`]).
//! Session ids are 32
//! random bytes from the OS; only their digests are kept, in memory (a
//! restart logs everyone out).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

use super::token::BearerToken;

/// The console's session cookie.
pub const COOKIE: &str = "dshost_session";
/// A session's lifetime from login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; logging in beyond it ends the oldest.
const MAX_SESSIONS: usize = 256;
/// Longest token a login form may carry (a longer one is wrong anyway).
pub const MAX_TOKEN_BYTES: usize = 4096;

type Digest32 = [u8; 32];

fn digest(bytes: &[u8]) -> Digest32 {
    Sha256::digest(bytes).into()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoginError {
    #[error("wrong token")]
    WrongToken,
    #[error("cannot make a session id: the operating system gave no random bytes ({0})")]
    Random(String),
}

/// Live sessions by the digest of their id: when each expires, and the
/// order they were made in (for the cap).
#[derive(Default)]
struct Sessions {
    live: HashMap<Digest32, (Instant, u64)>,
    made: u64,
}

/// The token rule and the console's sessions.
pub struct Auth {
    token: Option<BearerToken>,
    sessions: Mutex<Sessions>,
    /// Add `Secure` to the cookie (when served over HTTPS).
    secure_cookie: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("token", &self.token.as_ref().map(|_| "***")).finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(token: Option<&str>, secure_cookie: bool) -> Auth {
        Auth {
            token: token.filter(|t| !t.is_empty()).map(BearerToken::new),
            sessions: Mutex::new(Sessions::default()),
            secure_cookie,
        }
    }

    /// No token: everything is open (loopback).
    pub fn is_open(&self) -> bool {
        self.token.is_none()
    }

    /// The request may use `/metrics` and `/v1`: no token is set, or it
    /// carries the bearer token or a live session cookie.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token else { return true };
        let bearer =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if let Some(presented) = bearer {
            return expected.matches(presented);
        }
        self.has_session(headers)
    }

    fn has_session(&self, headers: &HeaderMap) -> bool {
        let Some(id) = session_cookie(headers) else { return false };
        let key = digest(id.as_bytes());
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.live.get(&key).is_some_and(|(expires, _)| *expires > Instant::now())
    }

    /// Checks a token from the login form; on success returns the
    /// `Set-Cookie` value of a new session.
    pub fn login(&self, presented: &str) -> Result<String, LoginError> {
        let Some(expected) = &self.token else { return Err(LoginError::WrongToken) };
        if presented.len() > MAX_TOKEN_BYTES || !expected.matches(presented) {
            return Err(LoginError::WrongToken);
        }
        let mut id = [0u8; 32];
        getrandom::getrandom(&mut id).map_err(|e| LoginError::Random(e.to_string()))?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.live.retain(|_, (expires, _)| *expires > now);
        if sessions.live.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions.live.iter().min_by_key(|(_, (_, made))| *made).map(|(k, _)| *k) {
                sessions.live.remove(&oldest);
            }
        }
        sessions.made += 1;
        let made = sessions.made;
        sessions.live.insert(digest(id.as_bytes()), (now + SESSION_LIFETIME, made));
        Ok(self.cookie(&id, SESSION_LIFETIME.as_secs()))
    }

    /// Ends the request's session; returns the `Set-Cookie` value that
    /// clears the cookie.
    pub fn logout(&self, headers: &HeaderMap) -> String {
        if let Some(id) = session_cookie(headers) {
            self.sessions.lock().unwrap_or_else(|p| p.into_inner()).live.remove(&digest(id.as_bytes()));
        }
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }
}

/// The value of the session cookie, from any `Cookie` header.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn cookie_value(set_cookie: &str) -> &str {
        set_cookie.split(';').next().unwrap().split_once('=').unwrap().1
    }

    #[test]
    fn without_a_token_everything_is_open_and_nobody_logs_in() {
        let auth = Auth::new(None, false);
        assert!(auth.is_open());
        assert!(auth.allows(&HeaderMap::new()));
        assert_eq!(auth.login("anything"), Err(LoginError::WrongToken));
        assert!(Auth::new(Some(""), false).is_open());
    }

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let auth = Auth::new(Some("s3cret"), false);
        assert!(auth.allows(&headers(&[(header::AUTHORIZATION, "Bearer s3cret")])));
        for wrong in ["s3cret", "Bearer s3cre", "Bearer s3cret ", "bearer s3cret", "Bearer ", "Basic s3cret"] {
            assert!(!auth.allows(&headers(&[(header::AUTHORIZATION, wrong)])), "{wrong}");
        }
        assert!(!auth.allows(&HeaderMap::new()));
        assert!(!format!("{auth:?}").contains("s3cret"));
    }

    #[test]
    fn a_login_gives_a_strict_http_only_cookie_that_does_not_hold_the_token() {
        let auth = Auth::new(Some("s3cret"), false);
        assert_eq!(auth.login("wrong"), Err(LoginError::WrongToken));
        assert_eq!(auth.login(&"s".repeat(MAX_TOKEN_BYTES + 1)), Err(LoginError::WrongToken));
        let set_cookie = auth.login("s3cret").unwrap();
        assert!(set_cookie.starts_with("dshost_session="), "{set_cookie}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(set_cookie.contains(attribute), "{set_cookie} lacks {attribute}");
        }
        assert!(!set_cookie.contains("Secure"));
        assert!(!set_cookie.contains("s3cret"));
        let id = cookie_value(&set_cookie);
        assert_eq!(id.len(), 64);
        // Another login is another session.
        assert_ne!(cookie_value(&auth.login("s3cret").unwrap()), id);

        let with_cookie = headers(&[(header::COOKIE, &format!("theme=dark; {COOKIE}={id}"))]);
        assert!(auth.allows(&with_cookie));
        assert!(!auth.allows(&headers(&[(header::COOKIE, &format!("{COOKIE}={}", "0".repeat(64)))])));
        assert!(!auth.allows(&headers(&[(header::COOKIE, &format!("{COOKIE}="))])));
        // A wrong bearer header is refused even beside a live session.
        let mut both = with_cookie.clone();
        both.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer nope"));
        assert!(!auth.allows(&both));

        let cleared = auth.logout(&with_cookie);
        assert!(cleared.starts_with("dshost_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
        assert!(!auth.allows(&with_cookie));
        assert!(Auth::new(Some("s3cret"), true).login("s3cret").unwrap().ends_with("; Secure"));
    }

    #[test]
    fn sessions_are_capped_oldest_first() {
        let auth = Auth::new(Some("t"), false);
        let first = auth.login("t").unwrap();
        let first = headers(&[(header::COOKIE, &format!("{COOKIE}={}", cookie_value(&first)))]);
        for _ in 0..MAX_SESSIONS {
            auth.login("t").unwrap();
        }
        assert!(!auth.allows(&first));
        assert_eq!(auth.sessions.lock().unwrap().live.len(), MAX_SESSIONS);
    }
}
