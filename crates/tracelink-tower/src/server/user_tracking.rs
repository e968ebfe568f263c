//! User and session tracking: the ids of a request's user and the `Set-Cookie` values that
//! keep them, documented on
//! [`CorrelationLayer::track_users`](crate::server::CorrelationLayer::track_users).

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};
use tracelink_core::SpanId;
use tracelink_core::cookie::{SESSION_COOKIE, USER_COOKIE, UserCookies};

const SESSION_IDLE_MS: u64 = 30 * 60 * 1000;
const SESSION_MAX_MS: u64 = 24 * 60 * 60 * 1000;
const RENEW_EVERY_MS: u64 = 60 * 1000;
/// How far in the future a session cookie's times may be (clocks of servers differ).
const MAX_SKEW_MS: u64 = 5 * 60 * 1000;
const USER_MAX_AGE_S: u64 = 365 * 24 * 60 * 60;

/// The ids tracking keeps or issues, and the cookies to set for them.
#[derive(Debug, Default)]
struct Tracked {
    user_id: Option<String>,
    session_id: Option<String>,
    set_cookies: Vec<String>,
}

/// A 22-char id from the base64 alphabet, as the browser SDK makes them.
fn new_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = [
        SpanId::random().to_u64(),
        SpanId::random().to_u64(),
        SpanId::random().to_u64(),
    ];
    (0..22)
        .map(|i| {
            let word = &mut bits[i / 10];
            let c = ALPHABET[(*word & 63) as usize] as char;
            *word >>= 6;
            c
        })
        .collect()
}

/// The user of one request and the cookies to set on its response.
#[derive(Debug, Default)]
pub(super) struct Users {
    /// The ids for the item: the cookies', with tracking the ones tracking keeps or issues.
    pub(super) ids: UserCookies,
    /// `Set-Cookie` values, with tracking.
    pub(super) set_cookies: Vec<String>,
}

/// Reads the browser SDK's cookies of a request (SPEC 6.4) once, for tracking and the item,
/// and with `track` decides which cookies to set (`secure` on https).
pub(super) fn users(headers: &HeaderMap, track: bool, secure: bool) -> Users {
    let mut ids = request_cookies(headers);
    if !track {
        return Users {
            ids,
            set_cookies: Vec::new(),
        };
    }
    let tracked = self::track(&ids, secure, SystemTime::now());
    ids.user_id = tracked.user_id;
    ids.session_id = tracked.session_id;
    Users {
        ids,
        set_cookies: tracked.set_cookies,
    }
}

/// Appends the cookies to the response's headers (one `Set-Cookie` each).
pub(super) fn append_set_cookies(headers: &mut HeaderMap, cookies: &[String]) {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            headers.append(SET_COOKIE, v);
        }
    }
}

/// The browser SDK's cookies of a request (SPEC 6.4).
fn request_cookies(headers: &HeaderMap) -> UserCookies {
    UserCookies::parse_lines(
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

fn attributes(secure: bool, max_age: u64) -> String {
    let tail = if secure {
        "; Secure; SameSite=Lax"
    } else {
        "; SameSite=Lax"
    };
    format!("; Max-Age={max_age}; Path=/{tail}")
}

fn track(cookies: &UserCookies, secure: bool, now: SystemTime) -> Tracked {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut out = Tracked {
        user_id: cookies.user_id.clone(),
        ..Tracked::default()
    };
    if out.user_id.is_none() {
        let id = new_id();
        out.set_cookies.push(format!(
            "{USER_COOKIE}={id}|{}{}",
            tracelink_core::wire_time::format_time(now),
            attributes(secure, USER_MAX_AGE_S)
        ));
        out.user_id = Some(id);
    }
    // Keep a session that is valid, not idle and not too old.
    let times = cookies.session_times_ms;
    match (cookies.session_id.clone(), times) {
        // Times in the future (beyond clock skew between servers) would keep a session
        // forever: such a cookie starts a new session.
        (Some(id), Some((acq, renew)))
            if acq <= now_ms.saturating_add(MAX_SKEW_MS)
                && renew <= now_ms.saturating_add(MAX_SKEW_MS)
                && now_ms.saturating_sub(renew) < SESSION_IDLE_MS
                && now_ms.saturating_sub(acq) < SESSION_MAX_MS =>
        {
            if now_ms.saturating_sub(renew) >= RENEW_EVERY_MS {
                out.set_cookies.push(format!(
                    "{SESSION_COOKIE}={id}|{acq}|{now_ms}{}",
                    attributes(secure, SESSION_IDLE_MS / 1000)
                ));
            }
            out.session_id = Some(id);
        }
        _ => {
            let id = new_id();
            out.set_cookies.push(format!(
                "{SESSION_COOKIE}={id}|{now_ms}|{now_ms}{}",
                attributes(secure, SESSION_IDLE_MS / 1000)
            ));
            out.session_id = Some(id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn headers(cookie: &str) -> UserCookies {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, cookie.parse().unwrap());
        request_cookies(&h)
    }

    #[test]
    fn spec_6_4_issues_cookies_in_the_browser_sdk_format() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let t = track(&request_cookies(&HeaderMap::new()), true, now);
        let user = t.user_id.unwrap();
        assert_eq!(user.len(), 22);
        assert_eq!(t.set_cookies.len(), 2);
        assert!(t.set_cookies[0].starts_with(&format!("ai_user={user}|2027-01-15T08:00:00.0000000Z; Max-Age=31536000; Path=/; Secure; SameSite=Lax")), "{}", t.set_cookies[0]);
        let s = t.session_id.unwrap();
        assert!(t.set_cookies[1].starts_with(&format!(
            "ai_session={s}|1800000000000|1800000000000; Max-Age=1800"
        )));
        // What we issue reads back with the core's cookie parser.
        let back =
            UserCookies::parse_lines([format!("ai_user={user}|x; ai_session={s}|1|2").as_str()]);
        assert_eq!(back.user_id.as_deref(), Some(user.as_str()));
        assert_eq!(back.session_id.as_deref(), Some(s.as_str()));
    }

    #[test]
    fn sessions_renew_expire_and_persist() {
        let ms = 1_800_000_000_000u64;
        let now = UNIX_EPOCH + Duration::from_millis(ms);
        // Active, renewed 10 s ago: kept, no cookie.
        let t = track(
            &headers(&format!(
                "ai_user=u1|x; ai_session=s1|{}|{}",
                ms - 5000,
                ms - 10_000
            )),
            false,
            now,
        );
        assert_eq!(
            (t.user_id.as_deref(), t.session_id.as_deref()),
            (Some("u1"), Some("s1"))
        );
        assert!(t.set_cookies.is_empty());
        // Renewed 2 min ago: kept and renewed.
        let t = track(
            &headers(&format!(
                "ai_user=u1|x; ai_session=s1|{}|{}",
                ms - 200_000,
                ms - 120_000
            )),
            false,
            now,
        );
        assert_eq!(t.session_id.as_deref(), Some("s1"));
        assert_eq!(
            t.set_cookies,
            [format!(
                "ai_session=s1|{}|{ms}; Max-Age=1800; Path=/; SameSite=Lax",
                ms - 200_000
            )]
        );
        // Idle 31 min: new session.
        let t = track(
            &headers(&format!(
                "ai_user=u1|x; ai_session=s1|{}|{}",
                ms - 2_000_000,
                ms - 31 * 60_000
            )),
            false,
            now,
        );
        assert_ne!(t.session_id.as_deref(), Some("s1"));
        // Times far in the future would never expire: new session; a little skew is fine.
        let t = track(
            &headers(&format!(
                "ai_session=s1|{}|{}",
                ms + 3_600_000,
                ms + 3_600_000
            )),
            false,
            now,
        );
        assert_ne!(t.session_id.as_deref(), Some("s1"));
        let t = track(
            &headers(&format!("ai_session=s1|{}|{}", ms - 1000, ms + 2000)),
            false,
            now,
        );
        assert_eq!(t.session_id.as_deref(), Some("s1"));
        // Older than 24 h: new session. Broken cookie: new session.
        let t = track(
            &headers(&format!("ai_session=s1|{}|{}", ms - 25 * 3_600_000, ms)),
            false,
            now,
        );
        assert_ne!(t.session_id.as_deref(), Some("s1"));
        let t = track(&headers("ai_session=s1|garbage"), false, now);
        assert_ne!(t.session_id.as_deref(), Some("s1"));
    }
}
