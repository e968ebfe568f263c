//! Who may send and read.
//!
//! Bound to a loopback address the collector is open, as a development tool on one machine
//! is. Bound to any other address it is not, because telemetry holds user ids, URLs and
//! messages:
//!
//! - the web pages and the query API need the login token: opening `/login?t=<token>` (the
//!   URL printed at start) keeps it in an `HttpOnly` cookie, and API clients may send
//!   `Authorization: Bearer <token>`;
//! - OTLP ingest needs the API key in the `x-otlp-api-key` header
//!   (`OTEL_EXPORTER_OTLP_HEADERS=x-otlp-api-key=<key>`);
//! - Breeze ingest accepts only envelopes whose `iKey` is one of the configured
//!   instrumentation keys (compared without regard to case), and so do the Live Metrics
//!   endpoints (`/QuickPulseService.svc/ping` and `/post`) with the `ikey` of their query.
//!
//! A token or key that is not configured is generated at start (32 random bytes from the
//! operating system, as hex), and so is an instrumentation key. Refusals are `401` (token or
//! API key) or `403` (instrumentation key) with no detail (a page shows the login form), and
//! are counted. Secrets are
//! compared in constant time. A token or key configured while bound to loopback is required
//! there too. `/health` is always open.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use crate::stats::{self, Counters};

/// The cookie that keeps the login token.
pub(crate) const COOKIE: &str = "tracelink_token";
/// The header that carries the OTLP API key.
pub const OTLP_API_KEY_HEADER: &str = "x-otlp-api-key";

/// What is required of a request, decided when the collector starts. Its `Debug` shows
/// which secrets are set, never their values.
#[derive(Clone, Default)]
pub(crate) struct Access {
    pub(crate) login_token: Option<String>,
    pub(crate) otlp_api_key: Option<String>,
    /// Lowercased; empty: any.
    pub(crate) ikeys: Vec<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("login_token", &self.login_token.as_ref().map(|_| "<set>"))
            .field("otlp_api_key", &self.otlp_api_key.as_ref().map(|_| "<set>"))
            .field("ikeys", &self.ikeys)
            .finish()
    }
}

/// 32 random bytes from the operating system, as hex.
pub(crate) fn secret() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A random instrumentation key (a GUID).
pub(crate) fn ikey() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// Equal, in a time that depends on the length only.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

impl Access {
    /// Whether the request carries the login token (or none is required).
    pub(crate) fn reader(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.login_token else {
            return true;
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        [bearer, cookie(headers, COOKIE)]
            .into_iter()
            .flatten()
            .any(|t| same(t.trim(), token))
    }

    /// Whether the request carries the OTLP API key (or none is required).
    pub(crate) fn otlp_sender(&self, headers: &HeaderMap) -> bool {
        let Some(key) = &self.otlp_api_key else {
            return true;
        };
        headers
            .get(OTLP_API_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| same(v.trim(), key))
    }

    /// Whether an envelope with this `iKey` is accepted.
    pub(crate) fn ikey_accepted(&self, ikey: Option<&str>) -> bool {
        self.ikeys.is_empty()
            || ikey.is_some_and(|k| self.ikeys.iter().any(|a| a.eq_ignore_ascii_case(k.trim())))
    }

    /// Whether anything is required at all.
    pub(crate) fn is_open(&self) -> bool {
        self.login_token.is_none() && self.otlp_api_key.is_none() && self.ikeys.is_empty()
    }
}

/// The state of the access middleware.
#[derive(Clone)]
pub(crate) struct Guard {
    pub(crate) access: std::sync::Arc<Access>,
    pub(crate) counters: std::sync::Arc<Counters>,
}

impl Guard {
    pub(crate) fn refuse(&self, status: StatusCode) -> Response {
        stats::add(&self.counters.requests_refused, 1);
        status.into_response()
    }
}

/// Requires the login token on the pages and the query API (a page answers with the login
/// form, the API with an empty 401); ingestion paths check their own credentials, `/health`
/// and `/login` are open.
pub(crate) async fn require_login(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let open = path == "/health"
        || path == "/login"
        || path.starts_with("/v1/")
        || path.starts_with("/v2/")
        || path.starts_with("/v2.1/")
        || path.starts_with("/QuickPulseService.svc/");
    if open || g.access.reader(req.headers()) {
        return next.run(req).await;
    }
    if path.starts_with("/api/") {
        return g.refuse(StatusCode::UNAUTHORIZED);
    }
    // A page: the form to paste the token into, and nothing else.
    stats::add(&g.counters.requests_refused, 1);
    (StatusCode::UNAUTHORIZED, Html(LOGIN_FORM)).into_response()
}

const LOGIN_FORM: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>tracelink collector</title></head>\
    <body><form method=\"get\" action=\"/login\"><p>The login token was printed when the collector started.</p>\
    <input name=\"t\" type=\"password\" autofocus> <button>Log in</button></form></body></html>";

/// `GET /login?t=<token>`: keeps a valid token in a cookie and goes to the operations list;
/// without one, a form to paste it into.
pub(crate) async fn login(
    State(g): State<Guard>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(given) = q.get("t") else {
        return Html(LOGIN_FORM).into_response();
    };
    match &g.access.login_token {
        None => (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response(),
        Some(token) if same(given.trim(), token) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/".to_owned()),
                (
                    header::SET_COOKIE,
                    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000"),
                ),
            ],
        )
            .into_response(),
        Some(_) => {
            stats::add(&g.counters.requests_refused, 1);
            (StatusCode::UNAUTHORIZED, Html(LOGIN_FORM)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keys_and_ikeys() {
        let a = Access {
            login_token: Some("abc".into()),
            otlp_api_key: Some("k1".into()),
            ikeys: vec!["0000aaaa-0000-0000-0000-000000000000".into()],
        };
        let mut h = HeaderMap::new();
        assert!(!a.reader(&h) && !a.otlp_sender(&h));
        h.insert(header::COOKIE, "x=1; tracelink_token=abc".parse().unwrap());
        h.insert(OTLP_API_KEY_HEADER, "k1".parse().unwrap());
        assert!(a.reader(&h) && a.otlp_sender(&h));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abd".parse().unwrap());
        h.insert(OTLP_API_KEY_HEADER, "k2".parse().unwrap());
        assert!(!a.reader(&h) && !a.otlp_sender(&h));
        assert!(a.ikey_accepted(Some("0000AAAA-0000-0000-0000-000000000000")));
        assert!(!a.ikey_accepted(Some("0000aaaa-0000-0000-0000-000000000001")));
        assert!(!a.ikey_accepted(None));
        assert!(Access::default().is_open() && Access::default().ikey_accepted(None));
        let shown = format!("{a:?}");
        assert!(!shown.contains("abc") && !shown.contains("k1"), "{shown}");
        let (s, k) = (secret().unwrap(), ikey().unwrap());
        assert_eq!((s.len(), k.len()), (64, 36));
        assert_ne!(secret().unwrap(), s);
    }
}
