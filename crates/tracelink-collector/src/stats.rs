//! What the collector counts: items accepted and refused, bodies refused, and items deleted
//! by retention, each by reason (nothing is dropped without being counted).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A snapshot of the collector's counters since it started ([`Collector::stats`],
/// `GET /api/stats`).
///
/// [`Collector::stats`]: crate::Collector::stats
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Items stored (committed), from every protocol.
    pub items_accepted: u64,
    /// Items refused one by one: invalid envelopes, OTLP spans, log records or data points
    /// that cannot be mapped.
    pub items_rejected: u64,
    /// Request bodies refused whole as unreadable (bad gzip, not JSON, malformed protobuf).
    pub bodies_rejected: u64,
    /// Request bodies refused as larger than the limit (compressed or not).
    pub bodies_too_large: u64,
    /// Requests refused for a missing or wrong login token, API key or instrumentation key.
    pub requests_refused: u64,
    /// Items deleted because they were older than the retention's days.
    pub deleted_by_age: u64,
    /// Items deleted, oldest first, to keep the retention's item count.
    pub deleted_by_count: u64,
    /// Items deleted, oldest first, to keep the database within the retention's bytes.
    pub deleted_by_size: u64,
    /// Times the writer checkpointed and restarted the WAL because it reached its limit.
    pub wal_restarts: u64,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) items_accepted: AtomicU64,
    pub(crate) items_rejected: AtomicU64,
    pub(crate) bodies_rejected: AtomicU64,
    pub(crate) bodies_too_large: AtomicU64,
    pub(crate) requests_refused: AtomicU64,
    pub(crate) deleted_by_age: AtomicU64,
    pub(crate) deleted_by_count: AtomicU64,
    pub(crate) deleted_by_size: AtomicU64,
    pub(crate) wal_restarts: AtomicU64,
}

/// Adds `n` to a counter.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            items_accepted: get(&self.items_accepted),
            items_rejected: get(&self.items_rejected),
            bodies_rejected: get(&self.bodies_rejected),
            bodies_too_large: get(&self.bodies_too_large),
            requests_refused: get(&self.requests_refused),
            deleted_by_age: get(&self.deleted_by_age),
            deleted_by_count: get(&self.deleted_by_count),
            deleted_by_size: get(&self.deleted_by_size),
            wal_restarts: get(&self.wal_restarts),
        }
    }
}
