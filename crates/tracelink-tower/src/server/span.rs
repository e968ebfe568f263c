//! The `tracing` span of a request, made when an id source is configured (feature `tracing`).

use tracelink_core::SpanId;
use tracelink_core::extract::Incoming;

use super::layer::Config;

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
