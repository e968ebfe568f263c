//! Where items go: the [`TelemetrySink`] trait, and [`MemorySink`] for tests.
//!
//! The middleware crates send every item to a sink and ask it for the sampling decision of a
//! new operation, so that all items of an operation agree (SPEC 8.2, 8.5). The exporter
//! crate's channel is the production sink.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::id::TraceId;
use crate::model::Telemetry;
use crate::sampling::SamplingDecision;
use crate::unsampled::Unsampled;

/// Receives telemetry. `send` must not block: it is called on the request path.
pub trait TelemetrySink: Send + Sync + 'static {
    /// Takes one item. Must return quickly and never panic; an item that cannot be kept is
    /// dropped and counted by the sink (SPEC 9.3).
    fn send(&self, item: Telemetry);

    /// The sampling decision for a new operation (SPEC 8.5). The default keeps everything.
    fn sampling(&self, operation_id: TraceId) -> SamplingDecision {
        let _ = operation_id;
        SamplingDecision::KEEP_ALL
    }

    /// Whether the sink counts what operations that sampling dropped do
    /// ([`TelemetrySink::count_unsampled`]). Asked when such an operation's request or call
    /// starts: when it answers `false` (the default), the operation costs propagation only
    /// (DESIGN invariant 4), with no clock read.
    fn counts_unsampled(&self) -> bool {
        false
    }

    /// Counts a request, call, exception or log line of an operation that sampling dropped,
    /// which records no item (the standard metrics count every operation, SPEC 8.6). Called
    /// only when [`TelemetrySink::counts_unsampled`] says so; must not block. The default
    /// does nothing.
    fn count_unsampled(&self, what: &Unsampled<'_>) {
        let _ = what;
    }
}

impl<T: TelemetrySink + ?Sized> TelemetrySink for Arc<T> {
    fn send(&self, item: Telemetry) {
        (**self).send(item)
    }
    fn sampling(&self, operation_id: TraceId) -> SamplingDecision {
        (**self).sampling(operation_id)
    }
    fn counts_unsampled(&self) -> bool {
        (**self).counts_unsampled()
    }
    fn count_unsampled(&self, what: &Unsampled<'_>) {
        (**self).count_unsampled(what)
    }
}

impl<T: TelemetrySink + ?Sized> TelemetrySink for Box<T> {
    fn send(&self, item: Telemetry) {
        (**self).send(item)
    }
    fn sampling(&self, operation_id: TraceId) -> SamplingDecision {
        (**self).sampling(operation_id)
    }
    fn counts_unsampled(&self) -> bool {
        (**self).counts_unsampled()
    }
    fn count_unsampled(&self, what: &Unsampled<'_>) {
        (**self).count_unsampled(what)
    }
}

/// A sink that keeps items in memory, for tests and examples. Optionally samples at a fixed
/// percentage.
///
/// ```
/// use std::sync::Arc;
/// use tracelink_core::model::{Event, Telemetry};
/// use tracelink_core::{MemorySink, TelemetrySink};
///
/// let sink = Arc::new(MemorySink::new());
/// let shared: Arc<dyn TelemetrySink> = sink.clone();
/// shared.send(Telemetry::new(Event::new("hello")));
/// assert_eq!(sink.len(), 1);
/// assert_eq!(sink.take().len(), 1);
/// assert!(sink.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct MemorySink {
    items: Mutex<Vec<Telemetry>>,
    added: Condvar,
    percentage: Option<f64>,
}

impl MemorySink {
    /// An empty sink that keeps every operation.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty sink that keeps operations at a fixed percentage (SPEC 8.1).
    pub fn with_sampling(percentage: f64) -> Self {
        Self {
            percentage: Some(percentage),
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Telemetry>> {
        // A panic while holding the lock cannot leave the Vec invalid.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the items received so far.
    pub fn items(&self) -> Vec<Telemetry> {
        self.lock().clone()
    }

    /// Takes the items received so far.
    pub fn take(&self) -> Vec<Telemetry> {
        std::mem::take(&mut *self.lock())
    }

    /// How many items are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no item is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks until at least `n` items are held or `timeout` passes; returns whether they
    /// arrived. For tests: call it from a blocking context (e.g. `spawn_blocking`).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut items = self.lock();
        while items.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            items = match self.added.wait_timeout(items, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

impl TelemetrySink for MemorySink {
    fn send(&self, item: Telemetry) {
        self.lock().push(item);
        self.added.notify_all();
    }

    fn sampling(&self, operation_id: TraceId) -> SamplingDecision {
        match self.percentage {
            Some(p) => SamplingDecision::fixed(p, operation_id),
            None => SamplingDecision::KEEP_ALL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Event;

    #[test]
    fn wait_for_sees_items_from_other_threads() {
        let sink = Arc::new(MemorySink::new());
        let s2 = sink.clone();
        let t = std::thread::spawn(move || {
            for _ in 0..3 {
                s2.send(Telemetry::new(Event::new("e")));
            }
        });
        assert!(sink.wait_for(3, Duration::from_secs(10)));
        t.join().unwrap();
        assert!(!sink.wait_for(4, Duration::from_millis(10)));
    }

    #[test]
    fn sampling_sink_decides_by_score() {
        let sink = MemorySink::with_sampling(50.0);
        let kept: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap(); // 33.46
        let dropped: TraceId = "0af7651916cd43dd8448eb211c80319c".parse().unwrap(); // 52.79
        assert!(sink.sampling(kept).is_sampled());
        assert!(!sink.sampling(dropped).is_sampled());
    }
}
