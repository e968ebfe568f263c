//! [`OtelIdSource`].

use std::any::Any;
use std::cell::RefCell;

use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::{Context, ContextGuard, KeyValue};
use tracelink_core::id_source::ForeignSpan;
use tracelink_core::{IdSource, SpanId, SpanParent, TraceId};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::REPORTED_ATTRIBUTE;

/// tracelink's ids are OpenTelemetry's (DESIGN invariant 1): the [`IdSource`] for
/// OpenTelemetry with `tracing-opentelemetry`, given to the server layer
/// (`CorrelationLayer::id_source` in `tracelink-tower` with its `tracing` feature) and to the
/// client middleware (`DependencyConfig::id_source` in `tracelink-core`, used by
/// `tracelink-reqwest` and `tracelink-tower`).
///
/// ```
/// use tracelink_core::dependency::DependencyConfig;
/// use tracelink_otel::OtelIdSource;
/// use tracelink_tower::server::CorrelationLayer;
///
/// # let sink = std::sync::Arc::new(tracelink_core::MemorySink::new());
/// let server = CorrelationLayer::new(sink.clone()).id_source(OtelIdSource::new());
/// let client = DependencyConfig::new(sink).id_source(OtelIdSource::new());
/// # let _ = (server, client);
/// ```
///
/// What it does, and where (see the crate docs for the whole setup):
///
/// - **Request ids.** Each request's id is the OpenTelemetry span id of the `tracing` span the
///   server layer makes for it, linked to the caller's context before it starts. Spans made
///   with the OpenTelemetry API in a handler (sqlx, tonic, ...) and `tracing` spans bridged
///   by `tracing-opentelemetry` are then children of the Request item. That span carries
///   `tracelink.reported = true`, so [`TracelinkSpanExporter`](crate::TracelinkSpanExporter)
///   does not report the request again.
/// - **An OpenTelemetry server middleware outside the server layer** (axum-tracing-
///   opentelemetry's `OtelAxumLayer`): its span is current when the request reaches the
///   server layer, which adopts it. The request is one Request item whose id is that span's,
///   and the span is marked `tracelink.reported`. A span is adopted when its OpenTelemetry
///   span is the current one, is local, and its `tracing` span declares the fields of an
///   HTTP server span: `otel.kind`, a method (`http.request.method` or `http.method`), and a
///   route or path (`http.route`, `url.path` or `http.target`).
/// - **Log filters.** When a `tracing` filter disables the request's span (say
///   `RUST_LOG=warn`), the request is made current in OpenTelemetry by its ids (a remote span
///   context) while the handler is polled, so spans made with the OpenTelemetry API still
///   have the request's operation id and parent (DESIGN invariant 3).
/// - **The current context.** A call made inside a span made current with the OpenTelemetry
///   API (`Context::attach`, `FutureExt::with_context`) is that span's child, and the
///   `traceparent` sent names the Dependency whose parent is that span: the client middleware
///   follows the more recent of tracelink's and OpenTelemetry's current context
///   ([`current_context`](tracelink_core::id_source::current_context)).
///
/// ## Ordering
///
/// OpenTelemetry fixes a span's parent when the span starts, which `tracing-opentelemetry`
/// does when it is first entered. That is why the server layer makes the request span itself
/// and links it before entering it. Put `CorrelationLayer` *outside* layers that make
/// internal per-request spans (tower-http's `TraceLayer`): their spans are then children of
/// the request. An OpenTelemetry server middleware may go on either side: outside, its span
/// is adopted; inside, its span is reported as an `InProc` dependency under the Request (see
/// [`OperationNames`](crate::OperationNames) and the exporter's table). Any other span made
/// and entered before `CorrelationLayer` runs cannot be re-parented, and starts a trace of its
/// own.
///
/// `tracing-opentelemetry` must make entered spans current in OpenTelemetry (its default
/// `with_context_activation(true)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OtelIdSource;

impl OtelIdSource {
    /// The source.
    pub fn new() -> Self {
        Self
    }
}

thread_local! {
    /// The contexts made current by [`IdSource::enter`], to end on [`IdSource::exit`].
    static ENTERED: RefCell<Vec<ContextGuard>> = const { RefCell::new(Vec::new()) };
}

fn foreign(sc: &SpanContext) -> Option<ForeignSpan> {
    let trace_id = TraceId::from_bytes(sc.trace_id().to_bytes())?;
    let span_id = SpanId::from_bytes(sc.span_id().to_bytes())?;
    Some(ForeignSpan::new(
        trace_id,
        span_id,
        tracelink_core::TraceFlags::from_byte(sc.trace_flags().to_u8()),
    ))
}

/// Whether a `tracing` span declares the fields of an HTTP server span.
fn is_http_server_span(meta: &tracing::Metadata<'_>) -> bool {
    let fields = meta.fields();
    let has = |names: &[&str]| names.iter().any(|n| fields.field(n).is_some());
    has(&["otel.kind"])
        && has(&["http.request.method", "http.method"])
        && has(&["http.route", "url.path", "http.target"])
        && !has(&[REPORTED_ATTRIBUTE])
}

impl IdSource for OtelIdSource {
    fn adopt(&self, span: &dyn Any, parent: SpanParent) -> Option<SpanId> {
        let span = span.downcast_ref::<tracing::Span>()?;
        if span.is_disabled() {
            return None;
        }
        let trace_id = opentelemetry::trace::TraceId::from_bytes(parent.trace_id.to_bytes());
        // Always a remote parent with our trace-id, so that the OpenTelemetry span joins our
        // operation even when the caller's parent is not a span-id (a new trace, a legacy
        // Request-Id): then the parent span-id is made up and matches nothing.
        let parent_span = parent.parent_id.unwrap_or_else(SpanId::random);
        let sc = SpanContext::new(
            trace_id,
            opentelemetry::trace::SpanId::from_bytes(parent_span.to_bytes()),
            TraceFlags::new(parent.flags.outgoing().to_byte()),
            true,
            TraceState::default(),
        );
        span.set_parent(Context::new().with_remote_span_context(sc))
            .ok()?;
        let started = span.context();
        let own = started.span().span_context().clone();
        (own.is_valid() && own.trace_id() == trace_id)
            .then(|| SpanId::from_bytes(own.span_id().to_bytes()))
            .flatten()
    }

    fn adopt_current(&self) -> Option<ForeignSpan> {
        let span = tracing::Span::current();
        if !span.metadata().is_some_and(|m| is_http_server_span(m)) {
            return None;
        }
        let cx = Context::current();
        let current = cx.span();
        let sc = current.span_context();
        if !sc.is_valid() || sc.is_remote() {
            return None;
        }
        // The OpenTelemetry span current is this `tracing` span's.
        if span.context().span().span_context().span_id() != sc.span_id() {
            return None;
        }
        let adopted = foreign(sc)?;
        current.set_attribute(KeyValue::new(REPORTED_ATTRIBUTE, true));
        Some(adopted)
    }

    fn current_span(&self) -> Option<ForeignSpan> {
        Context::map_current(|cx| {
            let sc = cx.span().span_context().clone();
            sc.is_valid().then(|| foreign(&sc)).flatten()
        })
    }

    fn enter(&self, span: ForeignSpan) {
        let sc = SpanContext::new(
            opentelemetry::trace::TraceId::from_bytes(span.trace_id.to_bytes()),
            opentelemetry::trace::SpanId::from_bytes(span.span_id.to_bytes()),
            TraceFlags::new(span.flags.outgoing().to_byte()),
            true,
            TraceState::default(),
        );
        let guard = Context::current().with_remote_span_context(sc).attach();
        ENTERED.with(|e| e.borrow_mut().push(guard));
    }

    fn exit(&self) {
        let guard = ENTERED.with(|e| e.borrow_mut().pop());
        drop(guard);
    }
}
