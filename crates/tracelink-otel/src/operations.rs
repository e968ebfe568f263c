//! What the exporter and its span processor wrapper share: the sink, the mapping
//! configuration, and what is known of the operations seen (their names, the spans held for
//! them).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Span as _, SpanId, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use tracelink_core::model::tags;
use tracelink_core::{ItemId, TelemetrySink, scope};

use crate::mapping::{
    MapConfig, PARENT_ATTRIBUTE, carried_operation_name, is_reported, is_server, map_span_with,
    request_name,
};

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

    /// Holds `span` while its operation is open and unnamed; else gives it back. A span that
    /// carries its operation's name (it started inside a request tracelink handles) is not
    /// held.
    pub(crate) fn hold_or_pass(&mut self, span: SpanData, now: Instant) -> Option<SpanData> {
        let trace = trace_of(&span);
        if self.open.get(&trace).is_none()
            || self.names.get(&trace).is_some()
            || carried_operation_name(&span).is_some()
        {
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

/// Locks a mutex; a panic elsewhere while it was held leaves it usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a [`TracelinkSpanExporter`](crate::TracelinkSpanExporter), its clones and the
/// [`OperationNames`] around its processor share.
pub(crate) struct Shared {
    sink: Arc<dyn TelemetrySink>,
    pub(crate) ops: Mutex<Operations>,
    config: Mutex<Arc<MapConfig>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(sink: Arc<dyn TelemetrySink>) -> Self {
        Self {
            sink,
            ops: Mutex::default(),
            config: Mutex::default(),
        }
    }

    /// The mapping configuration now.
    pub(crate) fn config(&self) -> Arc<MapConfig> {
        Arc::clone(&lock(&self.config))
    }

    /// Changes the mapping configuration.
    pub(crate) fn configure(&self, f: impl FnOnce(&mut MapConfig)) {
        let mut config = lock(&self.config);
        f(Arc::make_mut(&mut config));
    }

    /// Maps spans, each with its operation's name, into the sink.
    pub(crate) fn send(&self, spans: Vec<(SpanData, Option<String>)>) {
        if spans.is_empty() {
            return;
        }
        let config = self.config();
        for (span, name) in spans {
            for item in map_span_with(&span, name, &config) {
                self.sink.send(item);
            }
        }
    }

    /// The spans of an exported batch to send now, each with its operation's name; holds the
    /// others. `all`: also every span held.
    pub(crate) fn ready(&self, batch: Vec<SpanData>, all: bool) -> Vec<(SpanData, Option<String>)> {
        let mut ops = lock(&self.ops);
        let mut ready = ops.ended(&batch);
        let now = Instant::now();
        // A span tracelink reported itself goes on for its events.
        ready.extend(
            batch
                .into_iter()
                .filter(|s| !is_reported(s) || !s.events.is_empty())
                .filter_map(|s| ops.hold_or_pass(s, now)),
        );
        ready.extend(match all {
            true => ops.release_all(),
            false => ops.release_due(now),
        });
        ops.named(ready)
    }
}

/// A `SpanProcessor` around the one that feeds a
/// [`TracelinkSpanExporter`](crate::TracelinkSpanExporter) (a batch or simple span
/// processor), made by [`TracelinkSpanExporter::operation_names`](crate::TracelinkSpanExporter::operation_names):
/// register it instead of the processor it wraps. Spans reach the wrapped processor
/// unchanged, except for the attributes below, and are not copied.
///
/// ## Operation names
///
/// `ai.operation.name` is the name of an operation's server span, which the exporter learns
/// when that span ends. Its children end first, and a batch may be exported while it is still
/// open: their items would go without the name. This processor sees each operation's first
/// span in this process start (a span without a local parent) and end. While that span is
/// open, the exporter holds the operation's spans; when it ends they are sent at once, with
/// its name if it is a server span.
///
/// Nothing held is lost, and nothing waits long:
/// - a span waits at most the exporter's `max_hold` ([`DEFAULT_MAX_HOLD`]); then the
///   operation's held spans go without the name, and its later spans are not held (a timer
///   thread sends them even when no other span ends);
/// - at most [`MAX_HELD`] spans are held at once; past that the operation held longest goes
///   first;
/// - `force_flush` and `shutdown` send everything held.
///
/// ## Spans that start inside a request tracelink handles
///
/// When a span starts while a context of tracelink's in the same trace is current on the
/// thread (a request of `CorrelationLayer`, an operation, a span of `TracelinkLayer`), the
/// processor copies onto it as attributes what the exporter then reports as tags, so its
/// items carry them as every other item of the operation does (DESIGN invariant 7):
///
/// - `ai.operation.name`: the operation's name (such a span is not held for it);
/// - `ai.user.id`, `ai.session.id`, `ai.user.authUserId`, `ai.user.accountId`: the
///   operation's user context as it is when the span starts;
/// - [`PARENT_ATTRIBUTE`](crate::PARENT_ATTRIBUTE): when the span's parent is the remote
///   caller of that context (a middleware inside `CorrelationLayer` took the context from the
///   request's headers), the context itself: the span is reported under it, not as its
///   sibling.
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
    shared: Arc<Shared>,
}

impl<P> OperationNames<P> {
    pub(crate) fn new(inner: P, shared: Arc<Shared>) -> Self {
        start_timer(&shared);
        Self { inner, shared }
    }

    /// Sends what is held, with names where known.
    fn flush_held(&self) {
        let ready = {
            let mut ops = lock(&self.shared.ops);
            let spans = ops.release_all();
            ops.named(spans)
        };
        self.shared.send(ready);
    }
}

/// The attributes a span starting inside tracelink's context `c` gets (see
/// [`OperationNames`]).
fn inside_attributes(
    c: &tracelink_core::Correlation,
    parent: &opentelemetry::trace::SpanContext,
) -> Vec<KeyValue> {
    let mut out = Vec::new();
    if let Some(name) = c.operation_name() {
        out.push(KeyValue::new(tags::OPERATION_NAME, name.to_owned()));
    }
    if let Some(user) = c.user() {
        for (key, value) in [
            (tags::USER_ID, user.user_id()),
            (tags::SESSION_ID, user.session_id()),
            (tags::USER_AUTH_USER_ID, user.auth_user_id()),
            (tags::USER_ACCOUNT_ID, user.account_id()),
        ] {
            if let Some(v) = value {
                out.push(KeyValue::new(key, v.to_owned()));
            }
        }
    }
    let caller = c.parent_id().and_then(ItemId::span_id);
    if parent.is_remote() && caller.is_some_and(|p| p.to_bytes() == parent.span_id().to_bytes()) {
        out.push(KeyValue::new(PARENT_ATTRIBUTE, c.id().to_string()));
    }
    out
}

impl<P: SpanProcessor> SpanProcessor for OperationNames<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        let parent = cx.span();
        let parent = parent.span_context();
        let trace = span.span_context().trace_id().to_bytes();
        if !parent.is_valid() || parent.is_remote() {
            lock(&self.shared.ops).open.insert(trace, ());
        }
        let attributes = scope::with_current(|c| {
            c.filter(|c| c.trace_id().to_bytes() == trace)
                .map(|c| inside_attributes(c, parent))
        });
        if let Some(attributes) = attributes {
            span.set_attributes(attributes);
        }
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        // Only an operation's first span can release what is held for it.
        if is_local_root(&span) || is_server(&span) {
            let ready = {
                let mut ops = lock(&self.shared.ops);
                let spans = ops.ended(std::slice::from_ref(&span));
                ops.named(spans)
            };
            self.shared.send(ready);
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
        self.shared.configure(|c| c.set_resource(resource));
        self.inner.set_resource(resource);
    }
}

/// Starts, once per exporter, the thread that sends spans that waited `max_hold` even when no
/// span ends. It stops when the exporter is gone.
fn start_timer(shared: &Arc<Shared>) {
    {
        let mut ops = lock(&shared.ops);
        if ops.timer {
            return;
        }
        ops.timer = true;
    }
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let spawned = std::thread::Builder::new()
        .name("tracelink-otel-hold".into())
        .spawn(move || {
            loop {
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                let (ready, tick) = {
                    let mut ops = lock(&shared.ops);
                    let spans = ops.release_due(Instant::now());
                    let tick =
                        (ops.max_hold / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    (ops.named(spans), tick)
                };
                shared.send(ready);
                drop(shared);
                std::thread::sleep(tick);
            }
        });
    if spawned.is_err() {
        // Without it, spans that waited long enough go with the next export instead.
        lock(&shared.ops).timer = false;
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
