//! Self-observability: counters every part of the channel updates,
//! readable as a [`Stats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
            dropped: REASONS
                .iter()
                .zip(&self.dropped)
                .map(|(r, c)| (*r, c.load(Relaxed)))
                .collect(),
        }
    }
}

/// A snapshot of the exporter's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Items accepted into the queue.
    pub enqueued: u64,
    /// Items not kept by sampling (not a loss: sampling is the point).
    pub sampled_out: u64,
    /// Items ingestion accepted.
    pub sent: u64,
    /// Requests that ingestion answered 200 or 206.
    pub batches_sent: u64,
    /// Items that had to be sent again (whole-batch retries and 206 resends).
    pub retried: u64,
    /// Items written to the disk spool.
    pub spooled: u64,
    /// Bytes in the spool now.
    pub spool_bytes: u64,
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
