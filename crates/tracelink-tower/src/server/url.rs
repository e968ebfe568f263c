//! The request URL of the Request item (SPEC 6.1) and its scheme.

use http::header::HOST;
use http::request::Parts;
use tracelink_core::url::{Redaction, clean_host};

use super::client_addr::{self, TrustedProxies};

/// The scheme of a request URL, for requests that do not carry one; see
/// [`CorrelationLayer::default_scheme`](crate::server::CorrelationLayer::default_scheme).
///
/// ```
/// use tracelink_tower::server::Scheme;
///
/// assert_eq!(Scheme::default(), Scheme::Http);
/// assert_eq!(Scheme::Https.as_str(), "https");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http`, the default.
    #[default]
    Http,
    /// `https`, for a server that terminates TLS itself.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    /// `http` or `https`, in any case.
    pub(super) fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("https") {
            Some(Self::Https)
        } else if s.eq_ignore_ascii_case("http") {
            Some(Self::Http)
        } else {
            None
        }
    }
}

/// The request URI's scheme, else the one a trusted proxy forwarded, else `default`.
pub(super) fn request_scheme(parts: &Parts, trusted: &TrustedProxies, default: Scheme) -> Scheme {
    parts
        .uri
        .scheme_str()
        .and_then(|s| match s {
            "https" => Some(Scheme::Https),
            "http" => Some(Scheme::Http),
            _ => None,
        })
        .or_else(|| client_addr::forwarded_proto(parts, trusted).and_then(|p| Scheme::parse(&p)))
        .unwrap_or(default)
}

/// The absolute request URL (SPEC 6.1): the URI's authority, else `Host`, without user-info;
/// `localhost` when neither is a valid host.
pub(super) fn request_url(parts: &Parts, scheme: Scheme, redaction: &Redaction) -> String {
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(HOST).and_then(|h| h.to_str().ok()))
        .map(|a| a.rsplit('@').next().unwrap_or(a))
        .and_then(clean_host)
        .unwrap_or("localhost");
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    redaction.absolute(scheme.as_str(), authority, pq)
}
