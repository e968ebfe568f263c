//! [`TracelinkLayer`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tracelink_core::metrics::Unsampled;
use tracelink_core::model::{
    Dependency, Exception, SeverityLevel, TagValue, Telemetry, Trace, tags,
};
use tracelink_core::{Correlation, TelemetrySink, scope};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// Targets whose events and spans the layer ignores by default: the internals of HTTP
/// clients and servers, the async runtime, TLS, and tracelink's own exporter. A target
/// matches when it is the name or starts with the name and `::`.
pub const DEFAULT_EXCLUDED_TARGETS: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "h3",
    "reqwest",
    "tower",
    "tower_http",
    "tokio",
    "tokio_util",
    "mio",
    "rustls",
    "want",
    "tracelink_export",
];

/// Which spans the layer gives ids of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpanIds {
    /// tracelink's: spans at `span_level` become InProc dependencies.
    Tracelink,
    /// OpenTelemetry's (`tracing-opentelemetry` reports the spans).
    #[cfg(feature = "opentelemetry")]
    OpenTelemetry,
}

/// A `tracing_subscriber` layer that puts `tracing` events and spans into the operation they
/// happen in (SPEC 6.2, 6.3).
///
/// - Every event at INFO or more severe ([`TracelinkLayer::event_level`]) inside an
///   operation (a request handled by `tracelink-tower`, or a context made current with
///   `tracelink_core::scope`) becomes a Trace item: its message, a severity from its level,
///   its other fields as properties, `ai.operation.id`, `ai.operation.name`, and
///   `ai.operation.parentId` = the id of the span or request it happened in. An event with an
///   `error` field, or `exception.message` / `exception.type` fields, becomes an Exception
///   item.
/// - Spans at INFO or more severe ([`TracelinkLayer::span_level`]) inside an operation become
///   `InProc` dependencies with their own ids. While such a span is entered its context is the
///   current one, so calls made inside an `#[instrument]`ed function are its children, and so
///   are the events in it. An ERROR event inside marks the span failed.
/// - Outside an operation, events and spans are ignored.
/// - Events below INFO are ignored, and so are the events and spans of the HTTP and runtime
///   internals listed in [`DEFAULT_EXCLUDED_TARGETS`] (hyper, h2, reqwest, tower, tokio,
///   rustls and tracelink's own exporter): a request that goes through them records no item
///   for their internals unless asked for ([`TracelinkLayer::include_target`]). These are the
///   layer's own choices, independent of any filter on the subscriber, and other layers still
///   see everything.
///
/// Telemetry of requests and calls never depends on this layer or on log filters: a filter
/// that hides spans or events only hides their items (DESIGN invariant 3).
///
/// With `tracing-opentelemetry`, see [`TracelinkLayer::opentelemetry_ids`]: OpenTelemetry then
/// reports the spans, and this layer the events, each once.
///
/// ```
/// use std::sync::Arc;
/// use tracing_subscriber::prelude::*;
/// use tracelink_core::{Correlation, MemorySink, Propagation, SamplingDecision, scope};
/// use tracelink_otel::TracelinkLayer;
///
/// let sink = Arc::new(MemorySink::new());
/// let subscriber = tracing_subscriber::registry().with(TracelinkLayer::new(sink.clone()));
/// tracing::subscriber::with_default(subscriber, || {
///     let request = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
///     let _g = scope::enter(request.clone());
///     tracing::info!(order = 7, "order placed");
///     let item = &sink.items()[0];
///     assert_eq!(item.operation_parent_id(), Some(request.id().to_string().as_str()));
///     assert_eq!(item.properties["order"], "7");
/// });
/// ```
///
/// The levels and targets are the layer's own:
///
/// ```
/// use std::sync::Arc;
/// use tracing::Level;
/// use tracing_subscriber::prelude::*;
/// use tracelink_core::{Correlation, MemorySink, Propagation, SamplingDecision, scope};
/// use tracelink_otel::TracelinkLayer;
///
/// let sink = Arc::new(MemorySink::new());
/// let layer = TracelinkLayer::new(sink.clone()).event_level(Level::WARN);
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
///     let _g = scope::enter(Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL));
///     tracing::info!("not recorded: below WARN");
///     tracing::warn!(target: "hyper::proto", "not recorded: an internal");
///     tracing::warn!("recorded");
/// });
/// assert_eq!(sink.len(), 1);
/// ```
#[derive(Clone)]
pub struct TracelinkLayer {
    sink: Arc<dyn TelemetrySink>,
    span_level: Option<Level>,
    event_level: Level,
    excluded: Arc<[Box<str>]>,
    cloud_role: Option<Arc<str>>,
    ids: SpanIds,
}

impl fmt::Debug for TracelinkLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracelinkLayer")
            .field("span_level", &self.span_level)
            .field("event_level", &self.event_level)
            .field("excluded", &self.excluded)
            .field("cloud_role", &self.cloud_role)
            .finish_non_exhaustive()
    }
}

impl TracelinkLayer {
    /// Sends items to `sink`; spans at INFO or more severe become `InProc` dependencies.
    pub fn new(sink: impl TelemetrySink) -> Self {
        Self {
            sink: Arc::new(sink),
            span_level: Some(Level::INFO),
            event_level: Level::INFO,
            excluded: DEFAULT_EXCLUDED_TARGETS
                .iter()
                .map(|t| Box::from(*t))
                .collect(),
            cloud_role: None,
            ids: SpanIds::Tracelink,
        }
    }

    /// Events at `level` or more severe become items (default INFO).
    pub fn event_level(mut self, level: Level) -> Self {
        self.event_level = level;
        self
    }

    /// Records the events and spans of `target` (and its submodules) even though it is one of
    /// the [`DEFAULT_EXCLUDED_TARGETS`] or was excluded with
    /// [`TracelinkLayer::exclude_target`].
    ///
    /// ```
    /// use tracelink_core::MemorySink;
    /// use tracelink_otel::TracelinkLayer;
    ///
    /// let layer = TracelinkLayer::new(MemorySink::new()).include_target("hyper");
    /// # let _ = layer;
    /// ```
    pub fn include_target(mut self, target: &str) -> Self {
        self.excluded = self
            .excluded
            .iter()
            .filter(|t| !matches_target(target, t) && !matches_target(t, target))
            .cloned()
            .collect();
        self
    }

    /// Ignores the events and spans of `target` (and its submodules), e.g. a chatty library.
    pub fn exclude_target(mut self, target: &str) -> Self {
        let mut all: Vec<Box<str>> = self.excluded.to_vec();
        all.push(target.into());
        self.excluded = all.into();
        self
    }

    fn is_excluded(&self, target: &str) -> bool {
        // Comparing first bytes rules out most names without a call to compare the rest.
        let first = target.as_bytes().first();
        self.excluded
            .iter()
            .any(|t| (t.is_empty() || t.as_bytes().first() == first) && matches_target(target, t))
    }

    /// For `tracing-opentelemetry` users: OpenTelemetry reports the spans, this layer the
    /// events, each once.
    ///
    /// - Spans take the ids OpenTelemetry gives them, and OpenTelemetry (with
    ///   [`TracelinkSpanExporter`](crate::TracelinkSpanExporter)) reports them, not this
    ///   layer. Calls and logs inside a span are then children of the very span OpenTelemetry
    ///   reports: one id tree (DESIGN invariant 1).
    /// - Events are this layer's: each becomes one item, inside spans and outside them, and
    ///   the exporter skips the copies `tracing-opentelemetry` adds to its spans.
    /// - The current context is the more recent of tracelink's and OpenTelemetry's
    ///   ([`OtelIdSource`](crate::OtelIdSource)): an event in a span made current with the
    ///   OpenTelemetry API is that span's child. Inside an OpenTelemetry span outside any
    ///   tracelink operation (a background job), events are recorded as the span's children,
    ///   kept or dropped with the span's sampled flag.
    ///
    /// Install it with `tracing_opentelemetry`'s layer, in either order.
    #[cfg(feature = "opentelemetry")]
    pub fn opentelemetry_ids(mut self) -> Self {
        self.ids = SpanIds::OpenTelemetry;
        self.span_level = None;
        self
    }

    fn otel_ids(&self) -> bool {
        match self.ids {
            SpanIds::Tracelink => false,
            #[cfg(feature = "opentelemetry")]
            SpanIds::OpenTelemetry => true,
        }
    }

    /// The context events and spans made now belong to, when nothing closer says.
    fn current(&self) -> Option<Correlation> {
        match self.ids {
            SpanIds::Tracelink => scope::current(),
            #[cfg(feature = "opentelemetry")]
            SpanIds::OpenTelemetry => {
                tracelink_core::id_source::current_context(&crate::OtelIdSource)
            }
        }
    }

    /// Spans at `level` or more severe become `InProc` dependencies; `None`: none do (events
    /// are still recorded).
    pub fn span_level(mut self, level: Option<Level>) -> Self {
        self.span_level = level;
        self
    }

    /// `ai.cloud.role` of the items.
    pub fn cloud_role(mut self, role: impl Into<Arc<str>>) -> Self {
        self.cloud_role = Some(role.into());
        self
    }

    fn send(&self, mut item: Telemetry) {
        if let Some(role) = &self.cloud_role {
            item.tags.insert_if_absent(tags::CLOUD_ROLE, role);
        }
        item.tags.insert_if_absent(
            tags::INTERNAL_SDK_VERSION,
            TagValue::from_static(tags::SDK_VERSION),
        );
        self.sink.send(item);
    }
}

impl TracelinkLayer {
    /// Counts an event of an operation that sampling dropped into the standard metrics
    /// (a trace or an exception, and the failure of the span it ends), without formatting
    /// its fields.
    fn count_unsampled<S>(&self, event: &Event<'_>, span: Option<&SpanRef<'_, S>>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if !self.sink.counts_unsampled() {
            return;
        }
        let meta = event.metadata();
        let is_error = meta
            .fields()
            .iter()
            .any(|f| matches!(f.name(), "error" | "exception.type" | "exception.message"));
        let what = match is_error {
            true => Unsampled::exception(),
            false => Unsampled::trace(Some(severity(meta.level()))),
        };
        self.sink
            .count_unsampled(&what.role(self.cloud_role.as_deref()));
        if *meta.level() == Level::ERROR
            && let Some(s) = span.and_then(|s| {
                s.scope().find(|s| {
                    s.extensions()
                        .get::<SpanState>()
                        .is_some_and(|st| st.record)
                })
            })
            && let Some(st) = s.extensions_mut().get_mut::<SpanState>()
        {
            st.failed.get_or_insert_with(String::new);
        }
    }
}

/// Whether `target` is `name` or one of its submodules.
fn matches_target(target: &str, name: &str) -> bool {
    target
        .strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// What the layer keeps in a span's extensions.
struct SpanState {
    correlation: Correlation,
    /// Whether the span is reported as an InProc dependency.
    record: bool,
    time: SystemTime,
    start: Instant,
    fields: BTreeMap<String, String>,
    failed: Option<String>,
    /// Waiting for the span's OpenTelemetry id (taken on first enter).
    otel_pending: bool,
}

thread_local! {
    /// The contexts replaced by entered spans, to put back on exit.
    static ENTERED: RefCell<Vec<(Id, Option<Correlation>)>> = const { RefCell::new(Vec::new()) };
}

/// What a visitor takes from the fields of an event or span: the fields with a meaning of
/// their own, and the rest written straight into the property map the item will carry (a
/// span's state, or the event's item), each name and value an owned `String` because the
/// model's properties are `BTreeMap<String, String>`.
struct Fields<'a> {
    message: Option<String>,
    error: Option<String>,
    exception_type: Option<String>,
    exception_message: Option<String>,
    rest: &'a mut BTreeMap<String, String>,
}

impl<'a> Fields<'a> {
    fn new(rest: &'a mut BTreeMap<String, String>) -> Self {
        Self {
            message: None,
            error: None,
            exception_type: None,
            exception_message: None,
            rest,
        }
    }

    fn put(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = Some(value),
            "error" => self.error = Some(value),
            "exception.type" => self.exception_type = Some(value),
            "exception.message" => self.exception_message = Some(value),
            name => {
                self.rest.insert(name.to_owned(), value);
            }
        }
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }
    // Integers and booleans read as their `Debug` text, written without the formatting
    // machinery.
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, if value { "true" } else { "false" }.to_owned());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string());
    }
}

/// Moves `fields` into an item's properties; a field replaces what the operation's context
/// put there (baggage).
fn add_properties(item: &mut Telemetry, fields: BTreeMap<String, String>) {
    match item.properties.is_empty() {
        true => item.properties = fields,
        false => item.properties.extend(fields),
    }
}

fn severity(level: &Level) -> SeverityLevel {
    match *level {
        Level::ERROR => SeverityLevel::Error,
        Level::WARN => SeverityLevel::Warning,
        Level::INFO => SeverityLevel::Information,
        _ => SeverityLevel::Verbose,
    }
}

impl<S> Layer<S> for TracelinkLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if self.is_excluded(attrs.metadata().target()) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let parent = span
            .parent()
            .and_then(|p| {
                p.extensions()
                    .get::<SpanState>()
                    .map(|s| s.correlation.clone())
            })
            .or_else(|| self.current());
        let Some(parent) = parent else { return };
        let record = !self.otel_ids()
            && self
                .span_level
                .is_some_and(|l| *attrs.metadata().level() <= l);
        // The fields of a span of an operation that sampling dropped are never read.
        let mut fields = BTreeMap::new();
        if parent.is_sampled() {
            attrs.record(&mut Fields::new(&mut fields));
        }
        let correlation = if record { parent.new_child() } else { parent };
        span.extensions_mut().insert(SpanState {
            correlation,
            record,
            time: SystemTime::now(),
            start: Instant::now(),
            fields,
            failed: None,
            otel_pending: self.otel_ids(),
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(state) = ext.get_mut::<SpanState>()
            && state.correlation.is_sampled()
        {
            values.record(&mut Fields::new(&mut state.fields));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // One look at the extensions on every enter but a span's first with OpenTelemetry ids.
        let ready = {
            let ext = span.extensions();
            let Some(state) = ext.get::<SpanState>() else {
                return;
            };
            (!state.otel_pending).then(|| state.correlation.clone())
        };
        let c = match ready {
            Some(c) => c,
            None => {
                #[cfg(feature = "opentelemetry")]
                {
                    // Not holding the extensions: tracing-opentelemetry locks them to build
                    // the span.
                    let otel = tracing::dispatcher::get_default(|d| {
                        tracing_opentelemetry::get_otel_context(id, d)
                    });
                    let span_id = otel.map(|cx| {
                        use opentelemetry::trace::TraceContextExt;
                        cx.span().span_context().span_id().to_bytes()
                    });
                    if let Some(state) = span.extensions_mut().get_mut::<SpanState>() {
                        state.otel_pending = false;
                        if let Some(sid) = span_id.and_then(tracelink_core::SpanId::from_bytes) {
                            state.correlation = state.correlation.new_child_with_id(sid);
                        }
                    }
                }
                let Some(c) = span
                    .extensions()
                    .get::<SpanState>()
                    .map(|s| s.correlation.clone())
                else {
                    return;
                };
                c
            }
        };
        let previous = scope::replace_current(Some(c));
        ENTERED.with(|e| e.borrow_mut().push((id.clone(), previous)));
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        ENTERED.with(|e| {
            let mut e = e.borrow_mut();
            if e.last().is_some_and(|(top, _)| top == id)
                && let Some((_, previous)) = e.pop()
            {
                scope::replace_current(previous);
            }
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(state) = span.extensions_mut().remove::<SpanState>() else {
            return;
        };
        if !state.record {
            return;
        }
        if !state.correlation.is_sampled() {
            // Sampling dropped the operation: counted into the standard metrics, no item.
            if self.sink.counts_unsampled() {
                let what = Unsampled::dependency(
                    "InProc",
                    "",
                    "",
                    state.failed.is_none(),
                    state.start.elapsed(),
                )
                .role(self.cloud_role.as_deref());
                self.sink.count_unsampled(&what);
            }
            return;
        }
        let mut d = Dependency::new(span.name(), "InProc");
        d.duration = state.start.elapsed();
        d.success = state.failed.is_none();
        let mut item = state.correlation.to_item(d);
        item.time = state.time;
        add_properties(&mut item, state.fields);
        if let Some(e) = state.failed {
            item.properties.insert("error".into(), e);
        }
        self.send(item);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > self.event_level || self.is_excluded(meta.target()) {
            return;
        }
        let span = ctx.event_span(event);
        let from_spans = || {
            span.as_ref().and_then(|s| {
                s.scope().find_map(|s| {
                    s.extensions()
                        .get::<SpanState>()
                        .map(|st| st.correlation.clone())
                })
            })
        };
        // With OpenTelemetry's ids, an event in the current span follows the current context,
        // which an entered span sets: a span made current with the OpenTelemetry API inside it
        // is more recent.
        let correlation = match self.otel_ids() && event.is_contextual() {
            true => self.current().or_else(from_spans),
            false => from_spans().or_else(|| self.current()),
        };
        let Some(correlation) = correlation else {
            return;
        };
        if !correlation.is_sampled() {
            self.count_unsampled(event, span.as_ref());
            return;
        }
        let mut fields = BTreeMap::new();
        let mut f = Fields::new(&mut fields);
        event.record(&mut f);
        let Fields {
            message,
            error,
            exception_type,
            exception_message,
            ..
        } = f;
        let level = meta.level();
        let message = message.unwrap_or_default();
        // What an ERROR event marks its span failed with.
        let failure = (*level == Level::ERROR).then(|| error.clone().unwrap_or(message.clone()));
        let is_error = error.is_some() || exception_message.is_some() || exception_type.is_some();
        let mut item = if is_error {
            let mut x = Exception::new(
                exception_type.unwrap_or_else(|| "error".into()),
                exception_message
                    .or(error)
                    .unwrap_or_else(|| message.clone()),
            );
            x.severity = Some(severity(level));
            let mut item = correlation.child_item(x);
            add_properties(&mut item, fields);
            if !message.is_empty() {
                item.properties.insert("message".into(), message);
            }
            item
        } else {
            let mut item = correlation.child_item(Trace::new(message, severity(level)));
            add_properties(&mut item, fields);
            item
        };
        item.properties
            .insert("target".into(), meta.target().to_owned());
        if let Some(failure) = failure
            && let Some(s) = span.as_ref().and_then(|s| {
                s.scope().find(|s| {
                    s.extensions()
                        .get::<SpanState>()
                        .is_some_and(|st| st.record)
                })
            })
            && let Some(st) = s.extensions_mut().get_mut::<SpanState>()
        {
            st.failed.get_or_insert(failure);
        }
        self.send(item);
    }
}
