//! The `tracing` span of a request, made when an id source is configured (feature `tracing`),
//! and the request made current in the other tracing system when that span is filtered out.

use std::sync::Arc;

use tracelink_core::extract::Incoming;
use tracelink_core::id_source::ForeignSpan;
use tracelink_core::{Correlation, IdSource, SpanId};

use super::config::Config;

/// The span of a request, if one was made.
#[cfg(feature = "tracing")]
pub(super) type RequestSpan = Option<tracing::Span>;
/// Without the `tracing` feature no span is made.
#[cfg(not(feature = "tracing"))]
pub(super) type RequestSpan = Option<std::convert::Infallible>;

/// Enters the span, if any, until the guard is dropped.
#[cfg(feature = "tracing")]
pub(super) fn enter(span: &RequestSpan) -> Option<tracing::span::Entered<'_>> {
    span.as_ref().map(tracing::Span::enter)
}

/// Without the `tracing` feature there is no span to enter.
#[cfg(not(feature = "tracing"))]
pub(super) struct NoSpan;

#[cfg(not(feature = "tracing"))]
pub(super) fn enter(_: &RequestSpan) -> NoSpan {
    NoSpan
}

/// The request's span and its id, when an id source adopted it.
#[cfg(feature = "tracing")]
pub(super) fn request_span(
    cfg: &Config,
    name: &str,
    incoming: &Incoming,
) -> (RequestSpan, Option<SpanId>) {
    let Some(source) = &cfg.id_source else {
        return (None, None);
    };
    let span = tracing::info_span!(
        target: "tracelink_tower",
        "request",
        otel.name = name,
        otel.kind = "server",
        "tracelink.reported" = true
    );
    let id = source.adopt(&span, incoming.span_parent());
    (Some(span), id)
}

#[cfg(not(feature = "tracing"))]
pub(super) fn request_span(_: &Config, _: &str, _: &Incoming) -> (RequestSpan, Option<SpanId>) {
    (None, None)
}

/// A request whose span the id source could not adopt (a `tracing` filter disabled it, or no
/// bridge is installed): the id source makes it current by its ids around each poll instead.
pub(super) struct Fallback {
    source: Arc<dyn IdSource>,
    span: ForeignSpan,
}

impl Fallback {
    /// `None` when the request's id is not a span-id (hierarchical mode).
    pub(super) fn new(source: &Arc<dyn IdSource>, request: &Correlation) -> Option<Self> {
        let span_id = request.id().span_id()?;
        Some(Self {
            source: Arc::clone(source),
            span: ForeignSpan::new(request.trace_id(), span_id, request.flags()),
        })
    }

    /// Makes the request current in the other tracing system until the guard is dropped.
    pub(super) fn enter(&self) -> FallbackGuard<'_> {
        self.source.enter(self.span);
        FallbackGuard(self)
    }
}

/// Ends [`Fallback::enter`] when dropped.
pub(super) struct FallbackGuard<'a>(&'a Fallback);

impl Drop for FallbackGuard<'_> {
    fn drop(&mut self) {
        self.0.source.exit();
    }
}
