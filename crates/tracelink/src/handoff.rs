//! Items on their way to the exporter's thread, handed over in bunches.
//!
//! The exporter's queue wakes its worker for every item that finds it waiting. When the worker
//! runs on a thread of its own, each such wake is a cross-thread wake-up: a system call, and
//! on a loaded core a context switch that preempts the thread handling requests. A request
//! with spans, logs and a call records several items at different moments, so nearly every
//! item paid one (about 39,000 switches per second at 9,000 requests per second in the load
//! benchmark's realistic handler, BENCHMARKS.md).
//!
//! Here the request path only pushes the item under an uncontended lock. The exporter's
//! thread is woken by the first item after it emptied the hand-off, or when [`WAKE_AT`]
//! items wait; it then gathers for at most [`GATHER`] and moves everything to the exporter
//! at once, on its own thread. Items reach the exporter's batches (which wait up to 5 s
//! anyway) at most [`GATHER`] later; flushing, shutting down and reading the counters move
//! what is waiting first. Beyond [`MAX_WAITING`] items (the exporter's thread is not keeping
//! up) items go to the exporter directly, which bounds and counts them as it always does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tracelink_core::metrics::Unsampled;
use tracelink_core::model::Telemetry;
use tracelink_core::{SamplingDecision, TelemetrySink, TraceId};

/// How long the exporter's thread lets items gather after the first one woke it.
pub(crate) const GATHER: Duration = Duration::from_millis(10);
/// This many waiting items wake the exporter's thread at once.
pub(crate) const WAKE_AT: usize = 256;
/// Most items waiting; more go to the exporter directly.
pub(crate) const MAX_WAITING: usize = 8192;

/// The sink the setup's parts send to when the exporter runs on its own thread.
pub(crate) struct Handoff {
    waiting: Mutex<Vec<Telemetry>>,
    /// Held while items are moved on: a drain returns only once the items that an earlier
    /// drain took have reached the exporter too (flush and shutdown count on it, and the
    /// standard metrics must have seen every item before they are collected).
    moving: Mutex<()>,
    wake: Notify,
    /// Set when the exporter shuts down: items go to it directly (which counts them as
    /// dropped at shutdown), none waits for a thread that is gone.
    closed: AtomicBool,
    /// The exporter's sink (behind Live Metrics' counting when it is on).
    exporter: Arc<dyn TelemetrySink>,
}

impl Handoff {
    pub(crate) fn new(exporter: Arc<dyn TelemetrySink>) -> Self {
        Self {
            waiting: Mutex::new(Vec::new()),
            moving: Mutex::new(()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            exporter,
        }
    }

    fn waiting(&self) -> MutexGuard<'_, Vec<Telemetry>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves every waiting item to the exporter, on the calling thread. `spare` is an empty
    /// vector that takes the waiting items' place (its capacity is reused).
    pub(crate) fn drain_with(&self, spare: &mut Vec<Telemetry>) {
        let _moving = self.moving.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *self.waiting(), spare);
        for item in spare.drain(..) {
            self.exporter.send(item);
        }
    }

    /// Moves every waiting item to the exporter now (flush, shutdown, counters).
    pub(crate) fn drain(&self) {
        self.drain_with(&mut Vec::new());
    }

    /// Moves every waiting item to the exporter, and sends later ones straight to it.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.drain();
    }

    /// The exporter's thread: waits for items, lets them gather, hands them over.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut spare = Vec::new();
        loop {
            self.wake.notified().await;
            if self.waiting().len() < WAKE_AT {
                // Until the gathering time is over, or the hand-off is full.
                let _ = tokio::time::timeout(GATHER, self.wake.notified()).await;
            }
            self.drain_with(&mut spare);
        }
    }
}

impl TelemetrySink for Handoff {
    fn send(&self, item: Telemetry) {
        let mut waiting = self.waiting();
        let before = waiting.len();
        if before >= MAX_WAITING || self.closed.load(Ordering::Acquire) {
            drop(waiting);
            self.exporter.send(item);
            return;
        }
        waiting.push(item);
        drop(waiting);
        if before == 0 || before + 1 == WAKE_AT {
            self.wake.notify_one();
        }
    }

    fn sampling(&self, operation_id: TraceId) -> SamplingDecision {
        self.exporter.sampling(operation_id)
    }

    fn counts_unsampled(&self) -> bool {
        self.exporter.counts_unsampled()
    }

    /// Counted on the calling thread: the standard metrics' aggregation is shared by threads
    /// and allocates nothing once a combination exists, so nothing needs handing over.
    fn count_unsampled(&self, what: &Unsampled<'_>) {
        self.exporter.count_unsampled(what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracelink_core::MemorySink;
    use tracelink_core::model::{Event, Telemetry};

    fn item() -> Telemetry {
        Telemetry::new(Event::new("e"))
    }

    #[tokio::test]
    async fn items_reach_the_exporter_in_bunches_and_on_drain() {
        let sink = Arc::new(MemorySink::new());
        let handoff = Arc::new(Handoff::new(sink.clone()));
        handoff.send(item());
        handoff.send(item());
        assert_eq!(sink.len(), 0, "waiting");
        handoff.drain();
        assert_eq!(sink.len(), 2);

        let task = tokio::spawn(handoff.clone().run());
        handoff.send(item());
        tokio::time::sleep(GATHER * 5).await;
        assert_eq!(
            sink.len(),
            3,
            "the exporter's thread took it within the gathering time"
        );
        for _ in 0..WAKE_AT {
            handoff.send(item());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(
            sink.len() >= 3 + WAKE_AT - 1,
            "a full hand-off goes at once"
        );
        task.abort();
    }

    #[test]
    fn beyond_the_bound_items_go_to_the_exporter_directly() {
        let sink = Arc::new(MemorySink::new());
        let handoff = Handoff::new(sink.clone());
        for _ in 0..MAX_WAITING + 3 {
            handoff.send(item());
        }
        assert_eq!((handoff.waiting().len(), sink.len()), (MAX_WAITING, 3));
        handoff.close();
        handoff.send(item());
        assert_eq!((handoff.waiting().len(), sink.len()), (0, MAX_WAITING + 4));
    }
}
