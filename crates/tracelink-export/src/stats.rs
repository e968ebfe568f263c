//! Self-observability: counters every part of the channel updates, readable as a [`Stats`]
//! snapshot, and the warning logged while drops grow.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Why items were dropped. Every drop is counted under one of these (SPEC 9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// The in-memory queue was full.
    QueueFull,
    /// The exporter was shut down or dropped, and the spool is off or could not take them.
    Shutdown,
    /// Ingestion refused them (400, 402, 439, any other non-retriable status, or a
    /// non-retriable per-item status in a 206).
    Rejected,
    /// The spool was over its size cap; the oldest batches went first.
    SpoolFull,
    /// A spooled batch was older than 48 hours (ingestion rejects those).
    Expired,
    /// A spool file could not be read back.
    Corrupt,
    /// A telemetry processor dropped them.
    Processor,
}

const REASONS: [DropReason; 7] = [
    DropReason::QueueFull,
    DropReason::Shutdown,
    DropReason::Rejected,
    DropReason::SpoolFull,
    DropReason::Expired,
    DropReason::Corrupt,
    DropReason::Processor,
];

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) enqueued: AtomicU64,
    pub(crate) sampled_out: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) batches_sent: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) spooled: AtomicU64,
    pub(crate) spool_bytes: AtomicU64,
    pub(crate) recovered: AtomicU64,
    pub(crate) malformed_answers: AtomicU64,
    pub(crate) auth_refused: AtomicU64,
    pub(crate) token_failures: AtomicU64,
    dropped: [AtomicU64; 7],
}

impl Counters {
    pub(crate) fn drop_items(&self, reason: DropReason, n: u64) {
        let i = REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        self.dropped[i].fetch_add(n, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            enqueued: self.enqueued.load(Relaxed),
            sampled_out: self.sampled_out.load(Relaxed),
            sent: self.sent.load(Relaxed),
            batches_sent: self.batches_sent.load(Relaxed),
            retried: self.retried.load(Relaxed),
            spooled: self.spooled.load(Relaxed),
            spool_bytes: self.spool_bytes.load(Relaxed),
            recovered: self.recovered.load(Relaxed),
            malformed_answers: self.malformed_answers.load(Relaxed),
            auth_refused: self.auth_refused.load(Relaxed),
            token_failures: self.token_failures.load(Relaxed),
            baggage_truncated: tracelink_core::baggage::truncated_items(),
            dropped: REASONS
                .iter()
                .zip(&self.dropped)
                .map(|(r, c)| (*r, c.load(Relaxed)))
                .collect(),
        }
    }
}

/// A snapshot of the exporter's counters. Every count only grows, except `spool_bytes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Items taken into the queue.
    pub enqueued: u64,
    /// Items not kept by sampling (not a loss: sampling is the point).
    pub sampled_out: u64,
    /// Items ingestion accepted.
    pub sent: u64,
    /// Requests that ingestion answered 200 or 206.
    pub batches_sent: u64,
    /// Items that had to be sent again (whole-batch retries and 206 resends).
    pub retried: u64,
    /// Items written to the spool: waiting out an outage, or for a free send slot.
    pub spooled: u64,
    /// Bytes in the spool directory now (or in the memory store, without a spool).
    pub spool_bytes: u64,
    /// Spooled batches taken over from the claims of a process that stopped while sending
    /// them (see the crate docs on sharing a spool).
    pub recovered: u64,
    /// Answers whose body could not be read: over [`MAX_ANSWER_BYTES`], not finished
    /// within the body deadline, or broken off. Their status decides alone (crate docs).
    ///
    /// [`MAX_ANSWER_BYTES`]: crate::transport::MAX_ANSWER_BYTES
    pub malformed_answers: u64,
    /// Answers 401 or 403 to posts that carried an Entra ID token: each batch was kept and
    /// sent again with a new token (see [`credential`](crate::credential)).
    pub auth_refused: u64,
    /// Times the credential gave no usable token (an error, a minute without an answer, or
    /// an expired token).
    pub token_failures: u64,
    /// Members of incoming `baggage` and `Correlation-Context` headers left out by the caps
    /// on incoming baggage, in the whole process (every exporter shows the same number):
    /// [`tracelink_core::baggage::truncated_items`].
    pub baggage_truncated: u64,
    /// Items dropped, by reason.
    pub dropped: Vec<(DropReason, u64)>,
}

impl Stats {
    /// Items dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// Items dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum()
    }
}

/// The longest a growing drop count goes without a warning, and the least time between two.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Logs a WARN event when items were dropped since the last one, at most once per
/// [`WARN_INTERVAL`]: a steady loss is one line a minute, not one per batch.
#[derive(Debug, Default)]
pub(crate) struct DropWarner {
    last: Option<Instant>,
    reported: u64,
}

impl DropWarner {
    /// Warns when due; returns whether it did.
    pub(crate) fn check(&mut self, stats: &Stats, now: Instant) -> bool {
        let total = stats.dropped_total();
        let due = self
            .last
            .is_none_or(|at| now.saturating_duration_since(at) >= WARN_INTERVAL);
        if total <= self.reported || !due {
            return false;
        }
        tracing::warn!(
            target: "tracelink_export",
            dropped = total,
            since_last_warning = total - self.reported,
            queue_full = stats.dropped(DropReason::QueueFull),
            rejected = stats.dropped(DropReason::Rejected),
            spool_full = stats.dropped(DropReason::SpoolFull),
            expired = stats.dropped(DropReason::Expired),
            corrupt = stats.dropped(DropReason::Corrupt),
            shutdown = stats.dropped(DropReason::Shutdown),
            processor = stats.dropped(DropReason::Processor),
            "telemetry items were dropped"
        );
        self.reported = total;
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_at_most_once_a_minute_while_drops_grow() {
        let counters = Counters::default();
        let mut warner = DropWarner::default();
        let t0 = Instant::now();
        assert!(!warner.check(&counters.snapshot(), t0), "nothing dropped");
        counters.drop_items(DropReason::QueueFull, 3);
        assert!(
            warner.check(&counters.snapshot(), t0),
            "the first drop warns at once"
        );
        counters.drop_items(DropReason::SpoolFull, 1);
        let s = counters.snapshot();
        assert!(!warner.check(&s, t0 + Duration::from_secs(1)));
        assert!(!warner.check(&s, t0 + Duration::from_secs(59)));
        assert!(
            warner.check(&s, t0 + Duration::from_secs(60)),
            "a minute on"
        );
        // No growth, no warning, however long it is.
        assert!(!warner.check(&s, t0 + Duration::from_secs(600)));
        counters.drop_items(DropReason::Rejected, 1);
        assert!(warner.check(&counters.snapshot(), t0 + Duration::from_secs(601)));
    }
}
