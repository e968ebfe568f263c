//! The browser SDK's user and session cookies (SPEC 6.4), read only.
//!
//! - `ai_user=<id>|<ISO date>`: `ai.user.id` is the part before `|` (at most 128 chars);
//! - `ai_session=<id>|<acquired ms>|<renewed ms>`: `ai.session.id` is the first part (at most
//!   64 chars);
//! - `ai_authUser=<URI-encoded authId>[|<accountId>]`: `ai.user.authUserId` and
//!   `ai.user.accountId`.
//!
//! User and session ids may contain only `A-Za-z0-9+/=-_`; a cookie with anything else, or an
//! id over its limit, is ignored. Decoded authenticated ids must be free of control
//! characters, `,`, `;`, `=` and `|` (what the browser SDK's `setAuthenticatedUserContext`
//! accepts) and at most 1024 chars.
//!
//! ```
//! use tracelink_core::cookie::UserCookies;
//!
//! let c = UserCookies::parse_lines(["ai_user=Xb3|2026-11-21T05:46:41.000Z; ai_session=s1|1|2; ai_authUser=alice%40contoso.com|acct"]);
//! assert_eq!(c.user_id.as_deref(), Some("Xb3"));
//! assert_eq!(c.session_id.as_deref(), Some("s1"));
//! assert_eq!(c.session_times_ms, Some((1, 2)));
//! assert_eq!(c.auth_user_id.as_deref(), Some("alice@contoso.com"));
//! assert_eq!(c.account_id.as_deref(), Some("acct"));
//! ```

/// The ids read from the cookies of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserCookies {
    /// From `ai_user`.
    pub user_id: Option<String>,
    /// From `ai_session`.
    pub session_id: Option<String>,
    /// From `ai_authUser`.
    pub auth_user_id: Option<String>,
    /// From `ai_authUser`, after `|`.
    pub account_id: Option<String>,
    /// From the `ai_session` cookie the session id came from: when the session was acquired
    /// and last renewed, in milliseconds since the Unix epoch, when both are numbers.
    pub session_times_ms: Option<(u64, u64)>,
}

/// Name of the browser SDK's user cookie.
pub const USER_COOKIE: &str = "ai_user";
/// Name of the browser SDK's session cookie.
pub const SESSION_COOKIE: &str = "ai_session";
/// Name of the browser SDK's authenticated-user cookie.
pub const AUTH_USER_COOKIE: &str = "ai_authUser";

pub(crate) fn valid_id(s: &str, max: usize) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+/=-_".contains(&c));
    ok.then(|| s.to_owned())
}

pub(crate) fn valid_auth(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.chars().count() <= 1024
        && !s.chars().any(|c| c.is_control() || ",;=|".contains(c));
    ok.then(|| s.to_owned())
}

impl UserCookies {
    /// Reads the `Cookie` header lines of a request (HTTP/2 may send several).
    pub fn parse_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Self::default();
        for line in lines {
            for pair in line.split(';') {
                let Some((name, value)) = pair.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match name.trim() {
                    USER_COOKIE if out.user_id.is_none() => {
                        out.user_id = valid_id(value.split('|').next().unwrap_or_default(), 128);
                    }
                    SESSION_COOKIE if out.session_id.is_none() => {
                        let mut parts = value.split('|');
                        out.session_id = valid_id(parts.next().unwrap_or_default(), 64);
                        let mut time = || parts.next()?.parse::<u64>().ok();
                        out.session_times_ms = out
                            .session_id
                            .as_ref()
                            .and_then(|_| Some((time()?, time()?)));
                    }
                    AUTH_USER_COOKIE if out.auth_user_id.is_none() => {
                        if let Some(decoded) = crate::url::percent_decode(value) {
                            let mut parts = decoded.splitn(2, '|');
                            out.auth_user_id = parts.next().and_then(valid_auth);
                            if out.auth_user_id.is_some() {
                                out.account_id = parts.next().and_then(valid_auth);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_6_4_ids_from_cookies() {
        let c = UserCookies::parse_lines([
            "a=b; ai_user=u+/=-_9|2026",
            "ai_session=sess|1700000000000|1700000000001",
        ]);
        assert_eq!(c.user_id.as_deref(), Some("u+/=-_9"));
        assert_eq!(c.session_id.as_deref(), Some("sess"));
        assert_eq!(c.session_times_ms, Some((1700000000000, 1700000000001)));
        assert_eq!(c.auth_user_id, None);
        // The times come from the cookie the id came from: the first valid one.
        let c = UserCookies::parse_lines(["ai_session=a b|1|2; ai_session=s2|3|4"]);
        assert_eq!(c.session_id.as_deref(), Some("s2"));
        assert_eq!(c.session_times_ms, Some((3, 4)));
        let c = UserCookies::parse_lines(["ai_session=s|x|4"]);
        assert_eq!(
            (c.session_id.as_deref(), c.session_times_ms),
            (Some("s"), None)
        );
    }

    #[test]
    fn spec_6_4_bad_cookies_are_ignored() {
        let long = "a".repeat(129);
        for bad in [
            "ai_user=<script>|x".to_owned(),
            "ai_user=|2026".to_owned(),
            format!("ai_user={long}|x"),
            "ai_session=a b|1|2".to_owned(),
            format!("ai_session={}|1|2", "s".repeat(65)),
            "ai_authUser=%ZZ".to_owned(),
            "ai_authUser=%C3%28".to_owned(),
            "ai_authUser=a%3Bb".to_owned(),
            "ai_user".to_owned(),
        ] {
            assert_eq!(
                UserCookies::parse_lines([bad.as_str()]),
                UserCookies::default(),
                "{bad}"
            );
        }
        assert_eq!(
            UserCookies::parse_lines([format!("ai_user={}|x", "a".repeat(128)).as_str()])
                .user_id
                .unwrap()
                .len(),
            128
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = UserCookies::parse_lines([s.as_str()]);
            let _ = UserCookies::parse_lines([format!("ai_authUser={s}").as_str()]);
        }
    }
}
