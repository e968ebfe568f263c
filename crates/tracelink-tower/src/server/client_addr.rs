//! The client's address and scheme (`ai.location.ip`, the request URL's scheme), documented
//! on [`ClientAddr`] and [`TrustedProxies`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;
use http::request::Parts;

/// The peer address of a connection, for `ai.location.ip`.
///
/// The layer reads the peer address from this request extension, or with the `axum` feature
/// from axum's `ConnectInfo<SocketAddr>` (serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`). A hyper server inserts it itself.
/// Without either, the item has no `ai.location.ip`.
///
/// When the peer is one of the [`TrustedProxies`], the client is the right-most address of
/// `Forwarded: for=` (else `X-Forwarded-For`) that is not itself a trusted proxy.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Arc;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tracelink_core::MemorySink;
/// use tracelink_tower::server::{ClientAddr, CorrelationLayer};
///
/// let sink = Arc::new(MemorySink::new());
/// let svc = ServiceBuilder::new()
///     .layer(CorrelationLayer::new(sink.clone()))
///     .service(service_fn(|_req| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     }));
///
/// let mut req = http::Request::get("/").body(()).unwrap();
/// req.extensions_mut().insert(ClientAddr("203.0.113.9:50123".parse().unwrap()));
/// svc.oneshot(req).await.unwrap();
/// assert_eq!(sink.items()[0].tags.get("ai.location.ip"), Some("203.0.113.9"));
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The proxies whose `Forwarded` / `X-Forwarded-For` / `X-Forwarded-Proto` headers the
/// server layer believes; see
/// [`CorrelationLayer::trusted_proxies`](crate::server::CorrelationLayer::trusted_proxies).
///
/// None by default: forwarding headers are ignored, the client is the peer ([`ClientAddr`])
/// and the URL's scheme is the request's own. When the peer is in one of these networks, the
/// client is the right-most forwarded address that is not, and the scheme is the forwarded
/// `proto` (`http` or `https`).
///
/// Parsed from a comma-separated list of addresses and CIDR networks; an IPv4-mapped IPv6
/// address matches its IPv4 network.
///
/// ```
/// use tracelink_tower::server::TrustedProxies;
///
/// let proxies: TrustedProxies = "10.0.0.0/8, ::1".parse().unwrap();
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(proxies.contains("::ffff:10.1.2.3".parse().unwrap()));
/// assert!(!proxies.contains("203.0.113.9".parse().unwrap()));
/// assert!(TrustedProxies::default().is_empty());
/// assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
/// assert!("proxy.internal".parse::<TrustedProxies>().is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Whether `ip` is in a trusted network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|&(net, len)| in_net(ip, net, len))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// An address or a CIDR network (`10.0.0.0/8`, `::1`).
fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip.parse::<IpAddr>().ok()?, len.parse::<u8>().ok()?),
        None => {
            let ip = s.parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

impl FromStr for TrustedProxies {
    type Err = InvalidTrustedProxies;

    /// Comma-separated addresses and CIDR networks; empty entries are skipped.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let nets = s
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| parse_net(n).ok_or(InvalidTrustedProxies { _priv: () }))
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }
}

/// The error of parsing [`TrustedProxies`]: an entry is neither an IP address nor a CIDR
/// network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTrustedProxies {
    _priv: (),
}

impl fmt::Display for InvalidTrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid trusted proxy network")
    }
}

impl std::error::Error for InvalidTrustedProxies {}

fn to_bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
        IpAddr::V6(v) => match v.to_ipv4_mapped() {
            Some(v4) => (u128::from(u32::from(v4)), 32),
            None => (u128::from(v), 128),
        },
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    let ((a, wa), (b, wb)) = (to_bits(ip), to_bits(net));
    if wa != wb {
        return false;
    }
    let shift = u32::from(wa - len.min(wa));
    if shift >= 128 {
        return true;
    }
    (a >> shift) == (b >> shift)
}

fn peer(parts: &Parts) -> Option<IpAddr> {
    if let Some(ClientAddr(a)) = parts.extensions.get::<ClientAddr>() {
        return Some(a.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(a)) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(a.ip());
    }
    None
}

/// Parses a node of `X-Forwarded-For` or `Forwarded: for=`: `1.2.3.4`, `1.2.3.4:80`,
/// `"[::1]:80"`, `::1`.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .and_then(|r| r.parse().ok())
}

fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for v in headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for element in v.split(',') {
            for pair in element.split(';') {
                if let Some((k, val)) = pair.split_once('=')
                    && k.trim().eq_ignore_ascii_case("for")
                    && let Some(ip) = parse_node(val)
                {
                    out.push(ip);
                }
            }
        }
    }
    if out.is_empty() {
        for v in headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            out.extend(v.split(',').filter_map(parse_node));
        }
    }
    out
}

/// The client address: the peer, or behind trusted proxies the right-most forwarded address
/// that is not a trusted proxy.
pub(super) fn client_ip(parts: &Parts, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = peer(parts)?;
    if trusted.is_empty() || !trusted.contains(peer) {
        return Some(peer);
    }
    let chain = forwarded_for(&parts.headers);
    Some(
        chain
            .iter()
            .rev()
            .copied()
            .find(|ip| !trusted.contains(*ip))
            .or_else(|| chain.first().copied())
            .unwrap_or(peer),
    )
}

/// The scheme a trusted proxy says the client used, as the proxy wrote it (the URL module
/// parses it).
pub(super) fn forwarded_proto(parts: &Parts, trusted: &TrustedProxies) -> Option<String> {
    let peer = peer(parts)?;
    if trusted.is_empty() || !trusted.contains(peer) {
        return None;
    }
    let h = &parts.headers;
    h.get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("proto"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .or_else(|| {
            h.get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(',').next().unwrap_or_default().trim().to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(peer: &str, headers: &[(&'static str, &str)]) -> Parts {
        let mut b = Request::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (mut p, ()) = b.body(()).unwrap().into_parts();
        p.extensions.insert(ClientAddr(peer.parse().unwrap()));
        p
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        nets.join(",").parse().unwrap()
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let p = parts(
            "203.0.113.9:5000",
            &[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-proto", "https"),
            ],
        );
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(client_ip(&p, &t), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(forwarded_proto(&p, &t), None);
    }

    #[test]
    fn trusted_chain_yields_rightmost_untrusted() {
        let p = parts(
            "10.0.0.2:5000",
            &[
                ("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.9"),
                ("x-forwarded-proto", "https"),
            ],
        );
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(client_ip(&p, &t), Some("198.51.100.7".parse().unwrap()));
        assert_eq!(forwarded_proto(&p, &t), Some("https".to_owned()));
        let p = parts(
            "10.0.0.2:1",
            &[("forwarded", "for=\"[2001:db8::1]:443\";proto=https")],
        );
        assert_eq!(client_ip(&p, &t), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(forwarded_proto(&p, &t), Some("https".to_owned()));
        let p = parts("10.0.0.2:1", &[("x-forwarded-for", "garbage, <script>")]);
        assert_eq!(client_ip(&p, &t), Some("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn cidr_matching() {
        let t = trusted(&["192.168.0.0/16", "::1", "0.0.0.0/0"]);
        assert!(t.contains("8.8.8.8".parse().unwrap()));
        let t = trusted(&["192.168.0.0/16", "::1"]);
        assert!(t.contains("192.168.4.4".parse().unwrap()));
        assert!(t.contains("::ffff:192.168.1.1".parse().unwrap()));
        assert!(!t.contains("192.169.0.1".parse().unwrap()));
        assert!(t.contains("::1".parse().unwrap()));
        assert!(parse_net("10.0.0.0/33").is_none());
        assert!(parse_net("nope").is_none());
        assert_eq!(" 10.0.0.0/8 ,, ".parse(), Ok(trusted(&["10.0.0.0/8"])));
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        assert!("10.0.0.0/8, nope".parse::<TrustedProxies>().is_err());
    }
}
