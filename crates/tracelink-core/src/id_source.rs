//! Where request ids can come from besides tracelink's own generator: an OpenTelemetry bridge
//! makes our request ids *its* span ids, so that spans made with the OpenTelemetry API inside a
//! handler are children of our Request item (DESIGN invariant 1).
//!
//! The server middleware creates a span for the request (with its `tracing` feature) and,
//! before the span is ever entered, hands it to the [`IdSource`] with the extracted incoming
//! context. The source links the span to that context and returns the span's id, which the
//! request then uses. The span is passed as `&dyn Any` so that this crate depends on no span
//! library; `tracelink-otel`'s source expects a `tracing::Span`.

use std::any::Any;

use crate::id::{SpanId, TraceId};
use crate::traceparent::TraceFlags;

/// The incoming context a request span is linked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpanParent {
    /// The operation id.
    pub trace_id: TraceId,
    /// The caller's span, when it is a W3C span-id.
    pub parent_id: Option<SpanId>,
    /// The incoming flags.
    pub flags: TraceFlags,
}

impl SpanParent {
    /// A parent with these fields.
    pub fn new(trace_id: TraceId, parent_id: Option<SpanId>, flags: TraceFlags) -> Self {
        Self {
            trace_id,
            parent_id,
            flags,
        }
    }
}

/// Adopts a new, not yet entered span into the incoming context and returns its span id, or
/// `None` when it cannot (another kind of span, no bridge installed, the span was disabled by
/// a filter): the request then gets an id of tracelink's own, and correlation is unchanged.
pub trait IdSource: Send + Sync + 'static {
    /// Links `span` to `parent`; returns the id the request must use.
    fn adopt(&self, span: &dyn Any, parent: SpanParent) -> Option<SpanId>;
}
