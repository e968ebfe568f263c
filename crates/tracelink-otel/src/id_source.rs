//! [`OtelIdSource`]: our request ids are the OpenTelemetry span ids of the request spans
//! (DESIGN invariant 1).
//!
//! ```
//! use tracelink_otel::OtelIdSource;
//! use tracelink_tower::server::CorrelationLayer;
//!
//! # let sink = std::sync::Arc::new(tracelink_core::MemorySink::new());
//! let layer = CorrelationLayer::new(sink).id_source(OtelIdSource::new());
//! # let _ = layer;
//! ```
//!
//! Install `tracing-opentelemetry`'s layer with a tracer whose spans go to
//! [`TracelinkSpanExporter`](crate::TracelinkSpanExporter) (the request span itself carries
//! `tracelink.reported = true` and is not exported twice), and after it
//! [`TracelinkLayer::opentelemetry_ids`](crate::TracelinkLayer::opentelemetry_ids),
//! so that calls and logs inside your `tracing` spans hang under the spans OpenTelemetry
//! reports.
//!
//! ## Ordering
//!
//! OpenTelemetry fixes a span's parent when the span starts, which `tracing-opentelemetry`
//! does when it is first entered. That is why the server layer makes the request span itself
//! and links it before entering it. Put `CorrelationLayer` *outside* other layers that make
//! per-request spans (tower-http's `TraceLayer`): their spans are then children of the request.
//! A span made and entered before `CorrelationLayer` runs cannot be re-parented, and starts a
//! trace of its own.

use std::any::Any;

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use tracelink_core::{IdSource, SpanId, SpanParent};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The id source for `tracing-opentelemetry`; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct OtelIdSource;

impl OtelIdSource {
    /// The source.
    pub fn new() -> Self {
        Self
    }
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
}
