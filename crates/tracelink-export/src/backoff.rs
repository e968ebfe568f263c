//! Retry timing (SPEC 7.5): exponential backoff with full jitter, honouring `Retry-After`.

use std::time::{Duration, SystemTime};

/// Backoff settings: the first delay and the cap (defaults 1 s and 5 min).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// Backoff starting at `base`, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap: cap.max(base),
        }
    }

    /// The delay before retry number `attempt` (0-based): uniformly random in
    /// `[0, min(cap, base * 2^attempt)]` (full jitter), but never less than `retry_after`.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.cap);
        let jitter = (tracelink_core::SpanId::random().to_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let d = exp.mul_f64(jitter);
        match retry_after {
            Some(r) => d.max(r.min(MAX_RETRY_AFTER)),
            None => d,
        }
    }
}

/// The longest wait between two attempts while ingestion gives no answer at all
/// (connections refused or reset, posts timing out): the backoff grows as usual but is cut
/// to this, so that ingestion's return is noticed within it. Waits that ingestion asks for
/// (`Retry-After`, 429, 503) are not cut.
pub(crate) const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(30);

/// The longest `Retry-After` honoured: a larger value (or a hostile one, `u64::MAX` seconds)
/// waits this long, then probes ingestion again.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Parses `Retry-After`: delay-seconds, or an HTTP date (SPEC 7.5).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = tracelink_core::wire_time::parse_http_date(v)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn full_jitter_within_bounds() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        for attempt in 0..30 {
            let d = b.delay(attempt, None);
            let cap = Duration::from_secs(1u64 << attempt.min(20)).min(Duration::from_secs(300));
            assert!(d <= cap, "{attempt}: {d:?}");
        }
        let spread: std::collections::HashSet<u128> =
            (0..50).map(|_| b.delay(5, None).as_millis()).collect();
        assert!(spread.len() > 10, "jittered");
        assert!(b.delay(0, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
    }

    #[test]
    fn hostile_retry_after_is_capped() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let huge = parse_retry_after("18446744073709551615", SystemTime::now()).unwrap();
        assert_eq!(b.delay(0, Some(huge)), MAX_RETRY_AFTER);
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(600))),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn spec_7_5_retry_after_both_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(
                "Sun, 06 Nov 1994 08:49:30 GMT",
                now + Duration::from_secs(60)
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
