//! Operation names for spans that end before their operation's server span.
//!
//! `ai.operation.name` is the name of an operation's server span, which the exporter learns
//! when that span is exported. Its children end first, and a batch may be exported while it is
//! still open: their items would go without the name. [`OperationStarts`], a `SpanProcessor`,
//! sees each operation's first span in this process start (a span without a local parent);
//! from then on the exporter holds the spans of that operation until the first span is
//! exported, and maps them with its name if it is a server span. A span is held at most the
//! exporter's `max_hold` (then it goes without the name, as it would have), and at most
//! [`MAX_HELD`] spans are held at once (the oldest go first). Nothing held is lost:
//! `force_flush` and `shutdown` send what is held.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry::trace::{Span as _, SpanId, TraceContextExt};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter as _, SpanProcessor};

use crate::TracelinkSpanExporter;

/// Most operation names, and most open operations, remembered (oldest forgotten first).
pub(crate) const REMEMBERED: usize = 10_000;
/// Most spans held at once, waiting for their operation's name.
pub const MAX_HELD: usize = 10_000;
/// How long a span waits for its operation's name by default.
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(30);

type TraceKey = [u8; 16];

/// A map that forgets its oldest keys past [`REMEMBERED`].
#[derive(Debug)]
struct Recent<V> {
    by_trace: HashMap<TraceKey, V>,
    order: VecDeque<TraceKey>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Self {
            by_trace: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<V> Recent<V> {
    fn insert(&mut self, trace: TraceKey, value: V) {
        if self.by_trace.insert(trace, value).is_none() {
            self.order.push_back(trace);
        }
        while self.by_trace.len() > REMEMBERED {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.by_trace.remove(&old);
        }
        // Keys taken out by `remove` stay in `order` until they come up: not too many.
        if self.order.len() > 2 * REMEMBERED {
            let by_trace = &self.by_trace;
            self.order.retain(|k| by_trace.contains_key(k));
        }
    }

    fn remove(&mut self, trace: &TraceKey) {
        self.by_trace.remove(trace);
    }
}

/// What the exporter knows of the operations it has seen.
#[derive(Debug)]
pub(crate) struct Operations {
    /// The name of each operation whose server span was exported.
    names: Recent<String>,
    /// Operations whose first local span started and was not exported yet.
    open: Recent<()>,
    /// Spans waiting for their operation's name, oldest first, with when they came.
    held: VecDeque<(Instant, SpanData)>,
    max_hold: Duration,
}

impl Default for Operations {
    fn default() -> Self {
        Self {
            names: Recent::default(),
            open: Recent::default(),
            held: VecDeque::new(),
            max_hold: DEFAULT_MAX_HOLD,
        }
    }
}

/// The operation (trace-id) of a span.
pub(crate) fn trace_of(s: &SpanData) -> TraceKey {
    s.span_context.trace_id().to_bytes()
}

/// Whether a span is the first of its operation in this process: it has no local parent.
pub(crate) fn is_local_root(s: &SpanData) -> bool {
    s.parent_span_id == SpanId::INVALID || s.parent_span_is_remote
}

impl Operations {
    pub(crate) fn set_max_hold(&mut self, max_hold: Duration) {
        self.max_hold = max_hold;
    }

    pub(crate) fn remember_name(&mut self, trace: TraceKey, name: String) {
        self.names.insert(trace, name);
    }

    pub(crate) fn name(&self, trace: TraceKey) -> Option<String> {
        self.names.by_trace.get(&trace).cloned()
    }

    fn open(&mut self, trace: TraceKey) {
        self.open.insert(trace, ());
    }

    pub(crate) fn close(&mut self, trace: TraceKey) {
        self.open.remove(&trace);
    }

    /// Holds `span` if its operation is open and unnamed; else gives it back.
    pub(crate) fn hold_or_pass(&mut self, span: SpanData, now: Instant) -> Option<SpanData> {
        let trace = trace_of(&span);
        if !self.open.by_trace.contains_key(&trace) || self.names.by_trace.contains_key(&trace) {
            return Some(span);
        }
        self.held.push_back((now, span));
        None
    }

    /// The held spans that wait no longer: their operation was closed or named, they waited
    /// `max_hold`, or they are the oldest past [`MAX_HELD`]; with `all`, every one.
    pub(crate) fn release(&mut self, now: Instant, all: bool) -> Vec<SpanData> {
        let mut out = Vec::new();
        let mut kept = VecDeque::with_capacity(self.held.len());
        let excess = self.held.len().saturating_sub(MAX_HELD);
        for (i, (since, span)) in std::mem::take(&mut self.held).into_iter().enumerate() {
            let trace = trace_of(&span);
            let waits = !all
                && i >= excess
                && now.saturating_duration_since(since) < self.max_hold
                && self.open.by_trace.contains_key(&trace)
                && !self.names.by_trace.contains_key(&trace);
            if waits {
                kept.push_back((since, span));
            } else {
                out.push(span);
            }
        }
        self.held = kept;
        out
    }
}

/// Locks the shared state; a panic elsewhere while it was held leaves it usable.
pub(crate) fn lock(ops: &Mutex<Operations>) -> MutexGuard<'_, Operations> {
    ops.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `SpanProcessor` that tells its [`TracelinkSpanExporter`] when an operation starts, so
/// that the spans of the operation that end before its server span get its
/// `ai.operation.name` (see the [module docs](self)). Made by
/// [`TracelinkSpanExporter::operation_starts`]. Register it on the same tracer provider as the
/// exporter, after it: a provider's `force_flush` then first exports what the exporter's
/// processor has queued (the names in it included), and this processor's `force_flush` sends
/// what is still held.
///
/// ```
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// use tracelink::MemorySink;
/// use tracelink_otel::TracelinkSpanExporter;
///
/// let exporter = TracelinkSpanExporter::new(MemorySink::new());
/// let starts = exporter.operation_starts();
/// let provider = SdkTracerProvider::builder()
///     .with_batch_exporter(exporter)
///     .with_span_processor(starts)
///     .build();
/// # let _ = provider.shutdown();
/// ```
#[derive(Clone, Debug)]
pub struct OperationStarts {
    pub(crate) exporter: TracelinkSpanExporter,
}

impl SpanProcessor for OperationStarts {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        let parent = cx.span();
        let parent = parent.span_context();
        if parent.is_valid() && !parent.is_remote() {
            return;
        }
        lock(&self.exporter.ops).open(span.span_context().trace_id().to_bytes());
    }

    fn on_end(&self, _span: SpanData) {}

    /// Sends the spans still held, with their operation's name when it is known.
    fn force_flush(&self) -> OTelSdkResult {
        self.exporter.force_flush()
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.exporter.force_flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_forgets_the_oldest_and_skips_removed_keys() {
        let mut r = Recent::default();
        for i in 0..REMEMBERED as u32 + 5 {
            let mut k = [0u8; 16];
            k[..4].copy_from_slice(&i.to_le_bytes());
            r.insert(k, i);
            if i % 3 == 0 {
                r.remove(&k);
            }
        }
        assert!(r.by_trace.len() <= REMEMBERED);
        assert!(r.order.len() <= 2 * REMEMBERED);
        let mut newest = [0u8; 16];
        newest[..4].copy_from_slice(&(REMEMBERED as u32 + 4).to_le_bytes());
        assert_eq!(r.by_trace.get(&newest), Some(&(REMEMBERED as u32 + 4)));
    }
}
