//! The client's address and scheme (`ai.location.ip`, the request URL's scheme): from the
//! peer address, and from `Forwarded` / `X-Forwarded-For` / `X-Forwarded-Proto` only when the
//! peer is a trusted proxy.
//!
//! The peer address is read from a [`ClientAddr`] request extension, or with the `axum`
//! feature from axum's `ConnectInfo<SocketAddr>`. With trusted proxies, the client is the
//! right-most forwarded address that is not itself a trusted proxy.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use http::request::Parts;

/// The peer address of a connection, put in request extensions by the server (axum users get
/// it from `into_make_service_with_connect_info::<SocketAddr>()` instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// A set of trusted proxy networks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Trusts an address or a CIDR network (`10.0.0.0/8`, `::1`). Returns `None` for text that
    /// is neither.
    pub fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
        let (ip, len) = match s.trim().split_once('/') {
            Some((ip, len)) => (ip.parse::<IpAddr>().ok()?, len.parse::<u8>().ok()?),
            None => {
                let ip = s.trim().parse::<IpAddr>().ok()?;
                (ip, if ip.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some((ip, len))
    }

    /// Adds a network.
    pub(crate) fn push(&mut self, net: (IpAddr, u8)) {
        self.nets.push(net);
    }

    /// Whether `ip` is in a trusted network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|&(net, len)| in_net(ip, net, len))
    }

    fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

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

pub(crate) fn peer(parts: &Parts) -> Option<IpAddr> {
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
pub(crate) fn client_ip(parts: &Parts, trusted: &TrustedProxies) -> Option<IpAddr> {
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

/// The scheme a trusted proxy says the client used.
pub(crate) fn forwarded_proto(parts: &Parts, trusted: &TrustedProxies) -> Option<&'static str> {
    let peer = peer(parts)?;
    if trusted.is_empty() || !trusted.contains(peer) {
        return None;
    }
    let h = &parts.headers;
    let proto = h
        .get_all("forwarded")
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
        })?;
    match proto.to_ascii_lowercase().as_str() {
        "https" => Some("https"),
        "http" => Some("http"),
        _ => None,
    }
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
        let mut t = TrustedProxies::default();
        for n in nets {
            t.push(TrustedProxies::parse_net(n).unwrap());
        }
        t
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
        assert_eq!(forwarded_proto(&p, &t), Some("https"));
        let p = parts(
            "10.0.0.2:1",
            &[("forwarded", "for=\"[2001:db8::1]:443\";proto=https")],
        );
        assert_eq!(client_ip(&p, &t), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(forwarded_proto(&p, &t), Some("https"));
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
        assert!(TrustedProxies::parse_net("10.0.0.0/33").is_none());
        assert!(TrustedProxies::parse_net("nope").is_none());
    }
}
