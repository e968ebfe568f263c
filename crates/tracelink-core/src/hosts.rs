//! Which hosts receive correlation headers (SPEC 5.6).
//!
//! A host matches a pattern `example.com` when it is `example.com` or ends with
//! `.example.com`; a pattern `*.example.com` matches only the subdomains. Matching ignores
//! case, a trailing `.` and any port. A host gets headers unless it matches an excluded pattern
//! and no allowed pattern. The default exclusions are Azure Storage's domains, which reject
//! unknown headers in signed requests.
//!
//! ```
//! use tracelink_core::hosts::HostFilter;
//!
//! let f = HostFilter::default().allow("logs.blob.core.windows.net");
//! assert!(f.is_excluded("acct.blob.core.windows.net"));
//! assert!(!f.is_excluded("LOGS.blob.core.windows.net."));
//! assert!(!f.is_excluded("example.com"));
//! ```

/// Azure Storage domains, excluded by default (SPEC 5.6).
pub const DEFAULT_EXCLUDED: [&str; 4] = [
    "core.windows.net",
    "core.chinacloudapi.cn",
    "core.cloudapi.de",
    "core.usgovcloudapi.net",
];

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    domain: String,
    subdomains_only: bool,
}

impl Pattern {
    fn new(p: &str) -> Self {
        let p = p.trim().trim_end_matches('.').to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(d) => Self {
                domain: d.to_owned(),
                subdomains_only: true,
            },
            None => Self {
                domain: p,
                subdomains_only: false,
            },
        }
    }

    /// Whether `host` (lower or upper case, without port or trailing dot) matches.
    fn matches(&self, host: &[u8]) -> bool {
        // Bytes, not `str` slices: a cut inside a multi-byte char must not panic.
        let d = self.domain.as_bytes();
        let Some(split) = host.len().checked_sub(d.len()) else {
            return false;
        };
        let (rest, tail) = host.split_at(split);
        tail.eq_ignore_ascii_case(d)
            && ((rest.is_empty() && !self.subdomains_only) || rest.ends_with(b"."))
    }
}

/// The excluded and allowed host patterns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFilter {
    excluded: Vec<Pattern>,
    allowed: Vec<Pattern>,
    /// The last byte of every excluded domain (lower case), as a bit set: a host that ends
    /// in another byte matches no exclusion, which most hosts are decided by.
    endings: [u64; 4],
}

impl Default for HostFilter {
    /// Excludes [`DEFAULT_EXCLUDED`], allows nothing extra.
    fn default() -> Self {
        DEFAULT_EXCLUDED
            .iter()
            .fold(Self::none(), |f, p| f.exclude(p))
    }
}

impl HostFilter {
    /// A filter that excludes nothing.
    pub fn none() -> Self {
        Self {
            excluded: Vec::new(),
            allowed: Vec::new(),
            endings: [0; 4],
        }
    }

    /// Also exclude hosts matching `pattern`.
    pub fn exclude(mut self, pattern: &str) -> Self {
        let p = Pattern::new(pattern);
        match p.domain.as_bytes().last() {
            Some(&c) => self.endings[usize::from(c / 64)] |= 1 << (c % 64),
            // Only an empty host can match an empty domain: no ending to go by.
            None => self.endings = [u64::MAX; 4],
        }
        self.excluded.push(p);
        self
    }

    /// Send headers to hosts matching `pattern` even when they match an exclusion.
    pub fn allow(mut self, pattern: &str) -> Self {
        self.allowed.push(Pattern::new(pattern));
        self
    }

    /// Whether `host` (a host name, optionally with `:port`) must get no correlation header.
    pub fn is_excluded(&self, host: &str) -> bool {
        if self.excluded.is_empty() {
            return false;
        }
        let host = bare_host(host.as_bytes());
        if let Some(&c) = host.last() {
            let c = c.to_ascii_lowercase();
            if self.endings[usize::from(c / 64)] & (1 << (c % 64)) == 0 {
                return false;
            }
        }
        self.excluded.iter().any(|p| p.matches(host))
            && !self.allowed.iter().any(|p| p.matches(host))
    }
}

/// The host without its port and trailing dots: `[v6]:port`, `name:port` or `name.`.
fn bare_host(host: &[u8]) -> &[u8] {
    let host = match host {
        [b'[', v6 @ ..] => v6.split(|&c| c == b']').next().unwrap_or(v6),
        _ => match host.iter().rposition(|&c| c == b':') {
            Some(colon)
                if !host[..colon].contains(&b':')
                    && host[colon + 1..].iter().all(u8::is_ascii_digit) =>
            {
                &host[..colon]
            }
            _ => host,
        },
    };
    let dots = host.iter().rev().take_while(|&&c| c == b'.').count();
    &host[..host.len() - dots]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_5_6_default_list_is_domain_suffix() {
        let f = HostFilter::default();
        for h in [
            "core.windows.net",
            "acct.blob.core.windows.net",
            "acct.queue.core.chinacloudapi.cn:443",
            "x.core.cloudapi.de",
            "X.CORE.USGOVCLOUDAPI.NET.",
        ] {
            assert!(f.is_excluded(h), "{h}");
        }
        for h in [
            "xcore.windows.net",
            "windows.net",
            "127.0.0.1:8080",
            "[::1]:80",
            "core.windows.net.evil.com",
        ] {
            assert!(!f.is_excluded(h), "{h}");
        }
    }

    #[test]
    fn spec_5_6_patterns_and_allow_list() {
        let f = HostFilter::none()
            .exclude("*.example.com")
            .exclude("localhost");
        assert!(f.is_excluded("a.example.com"));
        assert!(!f.is_excluded("example.com"));
        assert!(f.is_excluded("localhost:3000"));
        let f = f.allow("ok.example.com");
        assert!(!f.is_excluded("ok.example.com"));
        assert!(!f.is_excluded("deep.ok.example.com"));
        assert!(f.is_excluded("other.example.com"));
    }

    #[test]
    fn multi_byte_hosts_do_not_panic() {
        let f = HostFilter::default().exclude("é.example");
        assert!(!f.is_excluded("aé"));
        assert!(!f.is_excluded("ü.core.windows.ne"));
        assert!(f.is_excluded("ü.core.windows.net"));
        assert!(f.is_excluded("x.é.example"));
    }

    proptest::proptest! {
        #[test]
        fn the_ending_filter_only_skips_hosts_no_exclusion_matches(
            host in "[a-cA-C.]{0,8}(:[0-9]{1,3})?",
            excluded in proptest::collection::vec("(\\*\\.)?[a-c.]{0,4}", 0..4),
        ) {
            let f = excluded.iter().fold(HostFilter::none(), |f, p| f.exclude(p));
            let bare = bare_host(host.as_bytes());
            proptest::prop_assert_eq!(f.is_excluded(&host), f.excluded.iter().any(|p| p.matches(bare)));
        }

        #[test]
        fn never_panics(host in "\\PC{0,40}", pattern in "\\PC{0,20}") {
            let _ = HostFilter::default().exclude(&pattern).allow(&pattern).is_excluded(&host);
        }
    }
}
