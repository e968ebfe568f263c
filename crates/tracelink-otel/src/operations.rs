//! Operation names for spans that end before their operation's server span.
//!
//! `ai.operation.name` is the name of an operation's server span, which the exporter learns
//! when that span ends. Its children end first, and a batch may be exported while it is still
//! open: their items would go without the name. [`OperationNames`] wraps the span processor
//! that feeds the exporter: it sees each operation's first span in this process start (a span
//! without a local parent) and end. While that span is open, the exporter holds the
//! operation's spans; when it ends they are sent at once, with its name if it is a server
//! span.
//!
//! Nothing held is lost, and nothing waits long:
//! - a span waits at most the exporter's `max_hold` ([`DEFAULT_MAX_HOLD`]); then the
//!   operation's held spans go without the name, and its later spans are not held (a timer
//!   thread sends them even when no other span ends);
//! - at most [`MAX_HELD`] spans are held at once; past that the operation held longest goes
//!   first;
//! - `force_flush` and `shutdown` send everything held.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry::trace::{Span as _, SpanId, TraceContextExt};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::TracelinkSpanExporter;
use crate::exporter::{is_server, request_name};

/// Most operation names, and most open operations, remembered (oldest forgotten first).
pub(crate) const REMEMBERED: usize = 10_000;
/// Most spans held at once, waiting for their operation's name (the batch span processor's
/// default queue size).
pub const MAX_HELD: usize = 2048;
/// How long a span waits for its operation's name by default.
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(30);

type TraceKey = [u8; 16];

/// A map that forgets its oldest keys past [`REMEMBERED`].
#[derive(Debug)]
struct Recent<V> {
    /// Each value with the number of the insert that made it.
    by_trace: HashMap<TraceKey, (u64, V)>,
    /// Keys by insert number; an entry whose number is not the key's current one is stale.
    order: VecDeque<(u64, TraceKey)>,
    inserts: u64,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Self {
            by_trace: HashMap::new(),
            order: VecDeque::new(),
            inserts: 0,
        }
    }
}

impl<V> Recent<V> {
    fn insert(&mut self, trace: TraceKey, value: V) {
        self.inserts += 1;
        self.by_trace.insert(trace, (self.inserts, value));
        self.order.push_back((self.inserts, trace));
        while self.by_trace.len() > REMEMBERED || self.order.len() > 2 * REMEMBERED {
            let Some((n, old)) = self.order.pop_front() else {
                break;
            };
            if self
                .by_trace
                .get(&old)
                .is_some_and(|(current, _)| *current == n)
            {
                self.by_trace.remove(&old);
            }
        }
    }

    fn get(&self, trace: &TraceKey) -> Option<&V> {
        self.by_trace.get(trace).map(|(_, v)| v)
    }

    fn remove(&mut self, trace: &TraceKey) {
        self.by_trace.remove(trace);
    }
}

/// The spans held for one operation, and since when.
#[derive(Debug)]
struct Held {
    since: Instant,
    spans: Vec<SpanData>,
}

/// What the exporter knows of the operations it has seen.
#[derive(Debug)]
pub(crate) struct Operations {
    /// The name of each operation whose server span ended.
    names: Recent<String>,
    /// Operations whose first local span started and has not ended.
    open: Recent<()>,
    /// Spans waiting for their operation's name.
    held: HashMap<TraceKey, Held>,
    /// Operations with held spans, in the order their first span was held.
    held_order: VecDeque<(Instant, TraceKey)>,
    held_count: usize,
    max_hold: Duration,
    /// Whether the timer thread runs.
    timer: bool,
}

impl Default for Operations {
    fn default() -> Self {
        Self {
            names: Recent::default(),
            open: Recent::default(),
            held: HashMap::new(),
            held_order: VecDeque::new(),
            held_count: 0,
            max_hold: DEFAULT_MAX_HOLD,
            timer: false,
        }
    }
}

/// The operation (trace-id) of a span.
pub(crate) fn trace_of(s: &SpanData) -> TraceKey {
    s.span_context.trace_id().to_bytes()
}

/// Whether a span is the first of its operation in this process: it has no local parent.
fn is_local_root(s: &SpanData) -> bool {
    s.parent_span_id == SpanId::INVALID || s.parent_span_is_remote
}

impl Operations {
    pub(crate) fn set_max_hold(&mut self, max_hold: Duration) {
        self.max_hold = max_hold;
    }

    pub(crate) fn name(&self, trace: TraceKey) -> Option<String> {
        self.names.get(&trace).cloned()
    }

    /// Learns from spans that ended: a server span names its operation, and an operation's
    /// first local span closes it. Returns the spans held for the operations named or closed.
    pub(crate) fn ended(&mut self, spans: &[SpanData]) -> Vec<SpanData> {
        let mut out = Vec::new();
        for s in spans {
            let (server, root) = (is_server(s), is_local_root(s));
            if server {
                self.names.insert(trace_of(s), request_name(s));
            }
            if server || root {
                self.open.remove(&trace_of(s));
                out.extend(self.take(&trace_of(s)));
            }
        }
        out
    }

    /// Holds `span` while its operation is open and unnamed; else gives it back.
    pub(crate) fn hold_or_pass(&mut self, span: SpanData, now: Instant) -> Option<SpanData> {
        let trace = trace_of(&span);
        if self.open.get(&trace).is_none() || self.names.get(&trace).is_some() {
            return Some(span);
        }
        let order = &mut self.held_order;
        let held = self.held.entry(trace).or_insert_with(|| {
            order.push_back((now, trace));
            Held {
                since: now,
                spans: Vec::new(),
            }
        });
        held.spans.push(span);
        self.held_count += 1;
        None
    }

    fn take(&mut self, trace: &TraceKey) -> Vec<SpanData> {
        let spans = self.held.remove(trace).map(|h| h.spans).unwrap_or_default();
        self.held_count -= spans.len();
        spans
    }

    /// The spans of the operations that waited `max_hold`, and of those held longest while
    /// more than [`MAX_HELD`] are held. Their operations are not waited for again.
    pub(crate) fn release_due(&mut self, now: Instant) -> Vec<SpanData> {
        let mut out = Vec::new();
        while let Some(&(since, trace)) = self.held_order.front() {
            let waited = now.saturating_duration_since(since) >= self.max_hold;
            if !waited && self.held_count <= MAX_HELD {
                break;
            }
            self.held_order.pop_front();
            // Only the entry that made the operation's current hold counts.
            if self.held.get(&trace).is_some_and(|h| h.since == since) {
                self.open.remove(&trace);
                out.extend(self.take(&trace));
            }
        }
        out
    }

    /// Every held span.
    pub(crate) fn release_all(&mut self) -> Vec<SpanData> {
        self.held_order.clear();
        self.held_count = 0;
        self.held.drain().flat_map(|(_, h)| h.spans).collect()
    }

    /// The spans, each with its operation's name when known.
    pub(crate) fn named(&self, spans: Vec<SpanData>) -> Vec<(SpanData, Option<String>)> {
        spans
            .into_iter()
            .map(|s| {
                let name = self.name(trace_of(&s));
                (s, name)
            })
            .collect()
    }
}

/// Locks the shared state; a panic elsewhere while it was held leaves it usable.
pub(crate) fn lock(ops: &Mutex<Operations>) -> MutexGuard<'_, Operations> {
    ops.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `SpanProcessor` around the one that feeds a [`TracelinkSpanExporter`] (a batch or simple
/// span processor), so that the spans that end before their operation's server span get its
/// `ai.operation.name` (see the [module docs](self)). Made by
/// [`TracelinkSpanExporter::operation_names`]; register it instead of the processor it wraps.
/// Spans reach the wrapped processor unchanged, and are not copied.
///
/// ```
/// use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
/// use tracelink_core::MemorySink;
/// use tracelink_otel::TracelinkSpanExporter;
///
/// let exporter = TracelinkSpanExporter::new(MemorySink::new());
/// let batch = BatchSpanProcessor::builder(exporter.clone()).build();
/// let provider = SdkTracerProvider::builder()
///     .with_span_processor(exporter.operation_names(batch))
///     .build();
/// # let _ = provider.shutdown();
/// ```
#[derive(Debug)]
pub struct OperationNames<P> {
    inner: P,
    exporter: TracelinkSpanExporter,
}

impl<P> OperationNames<P> {
    pub(crate) fn new(inner: P, exporter: TracelinkSpanExporter) -> Self {
        start_timer(&exporter);
        Self { inner, exporter }
    }

    /// Sends what is held, with names where known.
    fn flush_held(&self) {
        let ready = {
            let mut ops = lock(&self.exporter.ops);
            let spans = ops.release_all();
            ops.named(spans)
        };
        self.exporter.send(ready);
    }
}

impl<P: SpanProcessor> SpanProcessor for OperationNames<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        let parent = cx.span();
        let parent = parent.span_context();
        if !parent.is_valid() || parent.is_remote() {
            let trace = span.span_context().trace_id().to_bytes();
            lock(&self.exporter.ops).open.insert(trace, ());
        }
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        // Only an operation's first span can release what is held for it.
        if is_local_root(&span) || is_server(&span) {
            let ready = {
                let mut ops = lock(&self.exporter.ops);
                let spans = ops.ended(std::slice::from_ref(&span));
                ops.named(spans)
            };
            self.exporter.send(ready);
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        let result = self.inner.force_flush();
        self.flush_held();
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.inner.shutdown_with_timeout(timeout);
        self.flush_held();
        result
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Starts, once per exporter, the thread that sends spans that waited `max_hold` even when no
/// span ends. It stops when the exporter is gone.
fn start_timer(exporter: &TracelinkSpanExporter) {
    {
        let mut ops = lock(&exporter.ops);
        if ops.timer {
            return;
        }
        ops.timer = true;
    }
    let ops: Weak<Mutex<Operations>> = Arc::downgrade(&exporter.ops);
    let ops_again = ops.clone();
    let sink = exporter.sink();
    let spawned = std::thread::Builder::new()
        .name("tracelink-otel-hold".into())
        .spawn(move || {
            loop {
                let Some(strong) = ops.upgrade() else {
                    return;
                };
                let (ready, tick) = {
                    let mut ops = lock(&strong);
                    let spans = ops.release_due(Instant::now());
                    let tick =
                        (ops.max_hold / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    (ops.named(spans), tick)
                };
                drop(strong);
                crate::exporter::send(&*sink, ready);
                std::thread::sleep(tick);
            }
        });
    if spawned.is_err() {
        // Without it, spans that waited long enough go with the next export instead.
        if let Some(ops) = ops_again.upgrade() {
            lock(&ops).timer = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_forgets_the_oldest_and_never_a_key_inserted_again() {
        let key = |i: u32| {
            let mut k = [0u8; 16];
            k[..4].copy_from_slice(&i.to_le_bytes());
            k
        };
        let mut r = Recent::default();
        // Inserted first, removed, and inserted again as the newest: its first entry in the
        // order is stale and must not evict it.
        r.insert(key(0), 0);
        for i in 1..REMEMBERED as u32 {
            r.insert(key(i), i);
        }
        r.remove(&key(0));
        r.insert(key(0), 1);
        r.insert(key(REMEMBERED as u32), 2);
        assert_eq!(r.get(&key(0)), Some(&1));
        assert_eq!(r.get(&key(1)), None, "the oldest live key goes");
        assert_eq!(r.by_trace.len(), REMEMBERED);
        for i in 0..3 * REMEMBERED as u32 {
            r.insert(key(i % 5), i);
            if i % 2 == 0 {
                r.remove(&key(i % 5));
            }
        }
        assert!(r.by_trace.len() <= REMEMBERED);
        assert!(r.order.len() <= 2 * REMEMBERED);
    }
}
