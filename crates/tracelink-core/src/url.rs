//! URLs as telemetry records them (SPEC 6.1 `url`, SPEC 6.2 `data`): absolute, user-info
//! always removed, the values of sensitive query keys replaced by `REDACTED`.
//!
//! ```
//! use tracelink_core::url::Redaction;
//!
//! let r = Redaction::default();
//! let url = r.absolute("https", "user:pw@shop.example:8443", "/pay?sig=abc&id=7");
//! assert_eq!(url, "https://shop.example:8443/pay?sig=REDACTED&id=7");
//! ```

/// Query keys whose values are replaced by default (compared case-insensitively): Azure
/// Storage SAS signatures, OAuth codes and tokens, passwords.
pub const DEFAULT_SENSITIVE_KEYS: [&str; 8] = [
    "sig",
    "signature",
    "code",
    "token",
    "access_token",
    "refresh_token",
    "client_secret",
    "password",
];

/// What replaces a sensitive value.
pub const REDACTED: &str = "REDACTED";

/// Which query values are sensitive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redaction {
    keys: Vec<Box<str>>,
}

impl Default for Redaction {
    /// Redacts [`DEFAULT_SENSITIVE_KEYS`].
    fn default() -> Self {
        Self {
            keys: DEFAULT_SENSITIVE_KEYS.iter().map(|k| (*k).into()).collect(),
        }
    }
}

impl Redaction {
    /// Redacts nothing.
    pub fn none() -> Self {
        Self { keys: Vec::new() }
    }

    /// Also redact the values of `key`.
    pub fn key(mut self, key: &str) -> Self {
        self.keys.push(key.into());
        self
    }

    fn is_sensitive(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k.eq_ignore_ascii_case(key))
    }

    /// `scheme://host[:port]path[?query]` with user-info removed from `authority` and
    /// sensitive query values replaced.
    pub fn absolute(&self, scheme: &str, authority: &str, path_and_query: &str) -> String {
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        let mut out =
            String::with_capacity(scheme.len() + 3 + host.len() + path_and_query.len() + 8);
        out.push_str(scheme);
        out.push_str("://");
        out.push_str(host);
        out.push_str(path);
        if let Some(q) = query {
            out.push('?');
            self.push_query(&mut out, q);
        }
        out
    }

    /// An absolute URI as telemetry records it; `None` when it has no scheme or host.
    #[cfg(feature = "http")]
    pub fn uri(&self, uri: &http::Uri) -> Option<String> {
        let scheme = uri.scheme_str()?;
        let authority = uri.authority()?.as_str();
        let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
        Some(self.absolute(scheme, authority, pq))
    }

    fn push_query(&self, out: &mut String, query: &str) {
        if self.keys.is_empty() {
            out.push_str(query);
            return;
        }
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, _)) if self.is_sensitive(k) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
    }
}

/// A host as it may appear in a URL: `[A-Za-z0-9.-_:[]]` only, else `None` (a hostile
/// `Host` header is not copied into telemetry).
///
/// ```
/// assert_eq!(tracelink_core::url::clean_host("shop:8080"), Some("shop:8080"));
/// assert_eq!(tracelink_core::url::clean_host("x/<script>"), None);
/// ```
pub fn clean_host(host: &str) -> Option<&str> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".-_:[]".contains(&c));
    ok.then_some(host)
}

/// The pieces of an absolute URL, borrowed: `scheme://[user-info@]authority[path][?query][#fragment]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Parts<'a> {
    /// `http`, `https`, ...
    pub scheme: &'a str,
    /// `host[:port]`, without user-info.
    pub authority: &'a str,
    /// The host (an IPv6 address keeps its brackets).
    pub host: &'a str,
    /// The explicit port.
    pub port: Option<u16>,
    /// The path and query, without the fragment; may be empty.
    pub path_and_query: &'a str,
}

impl<'a> Parts<'a> {
    /// Splits an absolute URL; `None` without a scheme or host.
    pub fn parse(url: &'a str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = rest[..end].rsplit('@').next().unwrap_or_default();
        let tail = &rest[end..];
        let path_and_query = tail.split('#').next().unwrap_or_default();
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                (&authority[..i], authority[i + 1..].parse::<u16>().ok())
            }
            _ => (authority, None),
        };
        if scheme.is_empty() || host.is_empty() {
            return None;
        }
        Some(Self {
            scheme,
            authority,
            host,
            port,
            path_and_query,
        })
    }

    /// `host` plus `:port` unless the port is absent, 80 or 443 (SPEC 5.5).
    pub fn host_port(&self) -> String {
        match self.port {
            Some(p) if p != 80 && p != 443 => {
                use core::fmt::Write as _;
                // One allocation: `format!` would grow the string on the way.
                let mut s = String::with_capacity(self.host.len() + 6);
                s.push_str(self.host);
                let _ = write!(s, ":{p}");
                s
            }
            _ => self.host.to_owned(),
        }
    }

    /// The path without the query, `/` when empty.
    pub fn path(&self) -> &'a str {
        let p = self.path_and_query.split('?').next().unwrap_or_default();
        if p.is_empty() { "/" } else { p }
    }
}

/// Decodes `%XX` escapes (as `decodeURIComponent` and `OTEL_RESOURCE_ATTRIBUTES` values use
/// them); `None` when an escape is malformed or the result is not UTF-8.
///
/// ```
/// use tracelink_core::url::percent_decode;
///
/// assert_eq!(percent_decode("alice%40contoso.com").as_deref(), Some("alice@contoso.com"));
/// assert_eq!(percent_decode("bad%4"), None);
/// ```
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = core::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_absolute_urls() {
        let p = Parts::parse("https://u:p@[::1]:8443/a/b?x=1#frag").unwrap();
        assert_eq!(
            (p.scheme, p.authority, p.host, p.port, p.path_and_query),
            ("https", "[::1]:8443", "[::1]", Some(8443), "/a/b?x=1")
        );
        let p = Parts::parse("http://h").unwrap();
        assert_eq!((p.host, p.port, p.path_and_query), ("h", None, ""));
        assert_eq!(p.host_port(), "h");
        assert_eq!(Parts::parse("http://h:80/x").unwrap().host_port(), "h");
        assert_eq!(
            Parts::parse("http://h:8080/x").unwrap().host_port(),
            "h:8080"
        );
        assert!(Parts::parse("/relative").is_none());
        assert!(Parts::parse("http://").is_none());
    }

    #[cfg(feature = "http")]
    #[test]
    fn spec_6_1_url_rules() {
        let r = Redaction::default().key("apikey");
        assert_eq!(r.absolute("http", "h", ""), "http://h/");
        assert_eq!(r.absolute("http", "a@b@h:1", "/x"), "http://h:1/x");
        assert_eq!(
            r.absolute("http", "h", "/x?Code=1&a=2&APIKEY=3&flag&sig"),
            "http://h/x?Code=REDACTED&a=2&APIKEY=REDACTED&flag&sig"
        );
        let uri: http::Uri = "https://u:p@example.com/a?token=t".parse().unwrap();
        assert_eq!(r.uri(&uri).unwrap(), "https://example.com/a?token=REDACTED");
        assert_eq!(r.uri(&"/relative".parse().unwrap()), None);
    }

    #[test]
    fn hostile_hosts_are_refused() {
        assert_eq!(clean_host("example.com:80"), Some("example.com:80"));
        assert_eq!(clean_host("[::1]:80"), Some("[::1]:80"));
        assert_eq!(clean_host("evil.com/<script>"), None);
        assert_eq!(clean_host(""), None);
    }
}
