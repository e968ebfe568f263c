//! What to do with ingestion's answer (SPEC 7.5).

use std::time::{Duration, SystemTime};

use crate::backoff::parse_retry_after;
use crate::transport::{MAX_ANSWER_BYTES, TransportResponse};

/// Statuses worth retrying, for a whole batch (SPEC 7.5).
const RETRY_BATCH: [u16; 6] = [408, 429, 500, 502, 503, 504];
/// Per-item statuses worth resending from a 206 (SPEC 7.5).
const RETRY_ITEM: [u16; 4] = [408, 429, 500, 503];

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// All accepted.
    Done,
    /// Some accepted: resend `retry` (item indices); `rejected` items are dropped.
    Partial {
        accepted: u64,
        retry: Vec<usize>,
        rejected: u64,
    },
    /// Retry the whole batch, not before `after` when given.
    Retry { after: Option<Duration> },
    /// No answer (a network error or the timeout): retry the whole batch, probing for
    /// ingestion's return at least every [`crate::backoff::MAX_PROBE_INTERVAL`].
    Unreachable,
    /// Send again to this URL (307/308).
    Redirect(String),
    /// Drop the batch: ingestion refused it.
    Rejected(u16),
    /// Ingestion refused the credential's token (401, 403): keep the batch, retry with a
    /// new token.
    Unauthorized,
    /// No valid token to send with: keep the batch, retry.
    NoToken,
}

/// Whether the body of an answer cannot be used: read in part only, or too long.
pub(crate) fn unreadable(res: &TransportResponse) -> bool {
    res.incomplete || res.body.len() > MAX_ANSWER_BYTES
}

pub(crate) fn classify(res: &TransportResponse, batch_len: u32, now: SystemTime) -> Outcome {
    let after = res
        .retry_after
        .as_deref()
        .and_then(|v| parse_retry_after(v, now));
    match res.status {
        // Whatever follows the status: the batch was taken, and sending it again would
        // duplicate it.
        200 => Outcome::Done,
        // A 206 whose body cannot be read is a retry of the whole batch (SPEC 7.5).
        206 if unreadable(res) => Outcome::Retry { after },
        206 => partial(res, batch_len).unwrap_or(Outcome::Retry { after }),
        307 | 308 => match &res.location {
            Some(l) if !l.is_empty() => Outcome::Redirect(l.clone()),
            _ => Outcome::Rejected(res.status),
        },
        s if RETRY_BATCH.contains(&s) => Outcome::Retry { after },
        s => Outcome::Rejected(s),
    }
}

fn partial(res: &TransportResponse, batch_len: u32) -> Option<Outcome> {
    let v: serde_json::Value = serde_json::from_slice(&res.body).ok()?;
    let errors = v.get("errors")?.as_array()?;
    let mut retry = Vec::new();
    let mut rejected = 0u64;
    for e in errors {
        let index = e.get("index")?.as_u64()?;
        if index >= u64::from(batch_len) {
            continue;
        }
        let index = index as usize; // below batch_len, a u32
        // Not a status code (say 65944, which `as u16` would make a retriable 408): rejected.
        let status = e
            .get("statusCode")
            .and_then(|s| s.as_u64())
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(0);
        if RETRY_ITEM.contains(&status) {
            retry.push(index);
        } else {
            rejected += 1;
        }
    }
    retry.sort_unstable();
    retry.dedup();
    let accepted = u64::from(batch_len).saturating_sub(retry.len() as u64 + rejected);
    Some(Outcome::Partial {
        accepted,
        retry,
        rejected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(status: u16, body: &str) -> TransportResponse {
        TransportResponse::new(status, body.to_owned())
    }

    #[test]
    fn spec_7_5_statuses() {
        let now = SystemTime::now();
        assert_eq!(classify(&res(200, ""), 3, now), Outcome::Done);
        for s in RETRY_BATCH {
            assert_eq!(
                classify(&res(s, ""), 3, now),
                Outcome::Retry { after: None }
            );
        }
        for s in [400, 402, 439, 404, 301] {
            assert_eq!(classify(&res(s, ""), 3, now), Outcome::Rejected(s));
        }
        let mut r = res(503, "");
        r.retry_after = Some("7".into());
        assert_eq!(
            classify(&r, 3, now),
            Outcome::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
        let mut r = res(308, "");
        r.location = Some("http://new/v2.1/track".into());
        assert_eq!(
            classify(&r, 3, now),
            Outcome::Redirect("http://new/v2.1/track".into())
        );
    }

    /// An answer whose body was cut (too long, too slow, broken off) is decided by its
    /// status: a 200 is done, a 206 is retried whole, the rest as usual.
    #[test]
    fn unreadable_bodies_leave_the_status_to_decide() {
        let now = SystemTime::now();
        let partial =
            r#"{"itemsReceived":2,"itemsAccepted":1,"errors":[{"index":0,"statusCode":400}]}"#;
        for (status, want) in [
            (200, Outcome::Done),
            (206, Outcome::Retry { after: None }),
            (503, Outcome::Retry { after: None }),
            (400, Outcome::Rejected(400)),
        ] {
            let mut r = res(status, partial);
            r.incomplete = true;
            assert_eq!(classify(&r, 2, now), want, "{status}");
        }
        // Over the limit whatever the transport says.
        let mut long = partial.to_owned();
        long.push_str(&" ".repeat(MAX_ANSWER_BYTES));
        assert_eq!(
            classify(&res(206, &long), 2, now),
            Outcome::Retry { after: None }
        );
        assert!(matches!(
            classify(&res(206, partial), 2, now),
            Outcome::Partial { rejected: 1, .. }
        ));
    }

    #[test]
    fn spec_7_5_partial_resends_only_retriable_items() {
        let body = r#"{"itemsReceived":5,"itemsAccepted":2,"errors":[{"index":1,"statusCode":429,"message":"x"},{"index":2,"statusCode":400,"message":"bad"},{"index":4,"statusCode":500},{"index":99,"statusCode":500}]}"#;
        assert_eq!(
            classify(&res(206, body), 5, SystemTime::now()),
            Outcome::Partial {
                accepted: 2,
                retry: vec![1, 4],
                rejected: 1
            }
        );
        assert_eq!(
            classify(&res(206, "garbage"), 5, SystemTime::now()),
            Outcome::Retry { after: None }
        );
        // 65944 is no status code (as u16 it would be a retriable 408): rejected.
        let body =
            r#"{"itemsReceived":2,"itemsAccepted":1,"errors":[{"index":0,"statusCode":65944}]}"#;
        assert_eq!(
            classify(&res(206, body), 2, SystemTime::now()),
            Outcome::Partial {
                accepted: 1,
                retry: vec![],
                rejected: 1
            }
        );
    }
}
