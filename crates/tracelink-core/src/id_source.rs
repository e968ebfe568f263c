//! Where ids can come from besides tracelink's own generator: another tracing system
//! (OpenTelemetry, through `tracelink-otel`) whose spans must share one id tree with
//! tracelink's items (DESIGN invariant 1).
//!
//! An [`IdSource`] is the bridge between the two. It is passed as a value to the layers that
//! need it (the server layer, the client middleware, the `tracing` layer), and this crate
//! stays free of the other system's types: spans are passed as `&dyn Any` and described by
//! their ids ([`ForeignSpan`]).
//!
//! - **Request ids.** The server middleware creates a span for the request (with its
//!   `tracing` feature) and, before the span is ever entered, hands it to
//!   [`IdSource::adopt`] with the extracted incoming context. The source links the span to
//!   that context and returns the span's id, which the request then uses.
//! - **A server span made by another middleware.** When an OpenTelemetry server middleware
//!   runs outside the server layer, its span is already current when the request arrives:
//!   [`IdSource::adopt_current`] hands it over, and the request is recorded once, under that
//!   span's ids ([`ForeignSpan::into_request`]).
//! - **When the span is filtered out.** A `tracing` filter may disable the request's span;
//!   the server layer then makes the request current in the other system with
//!   [`IdSource::enter`] and [`IdSource::exit`] around each poll, so spans made with its API
//!   still join the request (DESIGN invariant 3).
//! - **The current context.** Code may make a span current with the other system's API.
//!   [`current_context`] picks the more recent of that span and tracelink's current context,
//!   so a call made inside such a span is its child.
//!
//! ```
//! use tracelink_core::id_source::{self, ForeignSpan, IdSource, SpanParent};
//! use tracelink_core::{scope, Correlation, Propagation, SamplingDecision, SpanId, TraceFlags};
//!
//! /// A source whose current span is fixed.
//! struct Fixed(ForeignSpan);
//! impl IdSource for Fixed {
//!     fn adopt(&self, _: &dyn std::any::Any, _: SpanParent) -> Option<SpanId> { None }
//!     fn current_span(&self) -> Option<ForeignSpan> { Some(self.0) }
//! }
//!
//! let request = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
//! let _g = scope::enter(request.clone());
//! // A span made inside the request with the other system's API is current:
//! let inner = SpanId::random();
//! let source = Fixed(ForeignSpan::new(request.trace_id(), inner, TraceFlags::SAMPLED));
//! let current = id_source::current_context(&source).unwrap();
//! assert_eq!(current.id().span_id(), Some(inner));
//! assert_eq!(current.new_child().parent_id().and_then(|p| p.span_id()), Some(inner));
//! ```

use std::any::Any;

use crate::correlation::{Carried, Correlation, ItemId, Operation};
use crate::extract::Incoming;
use crate::id::{SpanId, TraceId};
use crate::propagation::{Propagation, PropagationMode};
use crate::sampling::SamplingDecision;
use crate::scope;
use crate::traceparent::TraceFlags;
use crate::user::UserCell;

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

/// A span of another tracing system, by its ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForeignSpan {
    /// The span's trace-id: its operation id.
    pub trace_id: TraceId,
    /// The span's own id.
    pub span_id: SpanId,
    /// The span's trace flags.
    pub flags: TraceFlags,
}

impl ForeignSpan {
    /// A span with these ids.
    pub fn new(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> Self {
        Self {
            trace_id,
            span_id,
            flags,
        }
    }

    /// The context of a request whose server span is this span (made by another
    /// middleware): the request's id is the span's id and its operation is the span's trace.
    ///
    /// - When the span is in the incoming trace (both read the same `traceparent`), this is
    ///   [`Incoming::into_request_with_id`].
    /// - Otherwise the other middleware started a trace of its own (there was no usable
    ///   header, or it did not read the one there was). The request joins the span's trace,
    ///   keeps the caller as its parent and the incoming baggage, and records the caller's
    ///   operation id as `ai_legacyRootId` (SPEC 2.3) so the caller's transaction still finds
    ///   it (SPEC 10.1). Flags come from the span; a `tracestate` of the other trace is
    ///   dropped.
    ///
    /// In hierarchical mode ids are Request-Ids (SPEC 3.6) and the span is not adopted.
    pub fn into_request(
        self,
        incoming: Incoming,
        config: &Propagation,
        sampling: SamplingDecision,
        operation_name: Option<&str>,
    ) -> Correlation {
        if config.propagation_mode() == PropagationMode::Hierarchical {
            return incoming.into_request(config, sampling, operation_name);
        }
        if incoming.trace_id() == self.trace_id {
            return incoming.into_request_with_id(config, sampling, operation_name, self.span_id);
        }
        let legacy_root_id = match incoming.legacy_root_id() {
            Some(root) => Some(root.into()),
            None => incoming
                .parent_id()
                .map(|_| incoming.trace_id().to_hex().as_str().into()),
        };
        let carried = Carried {
            baggage: incoming.baggage().clone(),
            legacy_root_id,
        };
        let op = Operation {
            trace_id: self.trace_id,
            flags: self.flags.outgoing(),
            trace_state: None,
            carried: carried.boxed(),
            name: operation_name.map(Into::into),
            sampling,
            user: UserCell::default(),
        };
        Correlation::from_parts(
            op,
            ItemId::span(self.span_id),
            incoming.parent_id().cloned(),
        )
    }

    /// A context standing for this span when tracelink has none: a call made in it is the
    /// span's child. Its operation is the span's trace, kept or dropped with the span's
    /// sampled flag, as the spans around it are.
    fn into_context(self) -> Correlation {
        let sampling = if self.flags.is_sampled() {
            SamplingDecision::KEEP_ALL
        } else {
            SamplingDecision::dropped(100.0)
        };
        let op = Operation {
            trace_id: self.trace_id,
            flags: self.flags.outgoing(),
            trace_state: None,
            carried: None,
            name: None,
            sampling,
            user: UserCell::default(),
        };
        Correlation::from_parts(op, ItemId::span(self.span_id), None)
    }
}

/// The bridge to another tracing system's ids (see the [module docs](self)). Only
/// [`IdSource::adopt`] is required; every other method does nothing by default, so a
/// source that only names request spans keeps working.
pub trait IdSource: Send + Sync + 'static {
    /// Links `span`, a new request span that was never entered, to `parent` and returns its
    /// id, which the request then uses. `None` when it cannot (another kind of span, no
    /// bridge installed, the span was disabled by a filter): the request then gets an id of
    /// tracelink's own, and correlation is unchanged.
    fn adopt(&self, span: &dyn Any, parent: SpanParent) -> Option<SpanId>;

    /// The server span another middleware made for the request arriving now, when one is
    /// current on this thread (an OpenTelemetry HTTP server middleware placed outside the
    /// server layer). The server layer then records the request under the span's ids and
    /// makes no span of its own; the source makes sure the span is not reported a second
    /// time. `None` by default.
    fn adopt_current(&self) -> Option<ForeignSpan> {
        None
    }

    /// The span that is current in the other system on this thread, if any; see
    /// [`current_context`]. `None` by default.
    fn current_span(&self) -> Option<ForeignSpan> {
        None
    }

    /// Makes `span` current in the other system on this thread until the matching
    /// [`IdSource::exit`]. The server layer calls it around each poll of a request whose own
    /// span could not be adopted (a `tracing` filter disabled it), with the request's ids.
    /// Calls nest, and each is matched by one `exit` on the same thread. Does nothing by
    /// default.
    fn enter(&self, span: ForeignSpan) {
        let _ = span;
    }

    /// Ends the most recent [`IdSource::enter`] on this thread. Does nothing by default.
    fn exit(&self) {}
}

/// The context that calls, logs and spans made now on this thread belong to: the more recent
/// of tracelink's current context ([`crate::scope`]) and the span `source` reports current
/// ([`IdSource::current_span`]).
///
/// - No span from `source`: tracelink's context.
/// - No context of tracelink's: a context standing for the span, in the span's trace and
///   kept or dropped with its sampled flag; a call made in it is the span's child.
/// - The span is tracelink's context itself or its parent, or belongs to another trace:
///   tracelink's context is the more recent one.
/// - Otherwise the span was made inside tracelink's context (a span made current with the
///   other system's API inside a request): a child of tracelink's context with the span's
///   id, whose own children are the span's.
pub fn current_context(source: &dyn IdSource) -> Option<Correlation> {
    let ours = scope::current();
    let Some(theirs) = source.current_span() else {
        return ours;
    };
    let Some(ours) = ours else {
        return Some(theirs.into_context());
    };
    Some(more_recent(ours, theirs))
}

/// The more recent of tracelink's context and a span current in the other system.
fn more_recent(ours: Correlation, theirs: ForeignSpan) -> Correlation {
    let same = |id: Option<&ItemId>| id.and_then(ItemId::span_id) == Some(theirs.span_id);
    if ours.trace_id() != theirs.trace_id || same(Some(ours.id())) || same(ours.parent_id()) {
        ours
    } else {
        ours.new_child_with_id(theirs.span_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract;
    use std::collections::HashMap;

    struct Current(Option<ForeignSpan>);

    impl IdSource for Current {
        fn adopt(&self, _: &dyn Any, _: SpanParent) -> Option<SpanId> {
            None
        }
        fn current_span(&self) -> Option<ForeignSpan> {
            self.0
        }
    }

    fn root() -> Correlation {
        Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL)
    }

    #[test]
    fn the_more_recent_context_wins() {
        let request = root();
        let _g = scope::enter(request.clone());
        let t = request.trace_id();
        let span = |id| Current(Some(ForeignSpan::new(t, id, TraceFlags::SAMPLED)));
        let ours = |c: Option<Correlation>| c.map(|c| c.id().clone());
        assert_eq!(
            ours(current_context(&Current(None))),
            Some(request.id().clone())
        );
        let own = request.id().span_id().unwrap();
        assert_eq!(
            ours(current_context(&span(own))),
            Some(request.id().clone())
        );
        // A span made inside the request.
        let inner = SpanId::random();
        let c = current_context(&span(inner)).unwrap();
        assert_eq!(c.id().span_id(), Some(inner));
        assert_eq!(c.trace_id(), t);
        // tracelink's context made inside the span: the span is its parent.
        let child = c.new_child();
        let _g2 = scope::enter(child.clone());
        assert_eq!(
            ours(current_context(&span(inner))),
            Some(child.id().clone())
        );
        // Another trace: tracelink's.
        let other = Current(Some(ForeignSpan::new(
            TraceId::random(),
            inner,
            TraceFlags::SAMPLED,
        )));
        assert_eq!(ours(current_context(&other)), Some(child.id().clone()));
    }

    #[test]
    fn without_tracelink_the_span_is_the_context() {
        let (t, s) = (TraceId::random(), SpanId::random());
        for (flags, sampled) in [
            (TraceFlags::SAMPLED, true),
            (TraceFlags::from_byte(0), false),
        ] {
            let c = current_context(&Current(Some(ForeignSpan::new(t, s, flags)))).unwrap();
            assert_eq!((c.trace_id(), c.id().span_id()), (t, Some(s)));
            assert_eq!(c.parent_id(), None);
            assert_eq!(c.is_sampled(), sampled);
        }
        assert!(current_context(&Current(None)).is_none());
    }

    #[test]
    fn a_foreign_server_span_becomes_the_request() {
        let cfg = Propagation::default();
        let (t, p, s) = (TraceId::random(), SpanId::random(), SpanId::random());
        let headers: HashMap<String, String> =
            [("traceparent".to_owned(), format!("00-{t}-{p}-01"))].into();
        let incoming = extract::extract(&headers, &cfg);
        let span = ForeignSpan::new(t, s, TraceFlags::SAMPLED);
        let r = span.into_request(incoming, &cfg, SamplingDecision::KEEP_ALL, Some("GET /"));
        assert_eq!((r.trace_id(), r.id().span_id()), (t, Some(s)));
        assert_eq!(r.parent_id().and_then(ItemId::span_id), Some(p));
        assert_eq!(r.legacy_root_id(), None);

        // The other middleware started its own trace: the caller stays the parent, and its
        // operation id is kept as the legacy root.
        let other = ForeignSpan::new(TraceId::random(), s, TraceFlags::SAMPLED);
        let incoming = extract::extract(&headers, &cfg);
        let r = other.into_request(incoming, &cfg, SamplingDecision::KEEP_ALL, None);
        assert_eq!(r.trace_id(), other.trace_id);
        assert_eq!(r.parent_id().and_then(ItemId::span_id), Some(p));
        assert_eq!(r.legacy_root_id(), Some(t.to_hex().as_str()));

        // No usable header: the span's trace, no parent.
        let incoming = extract::extract(&HashMap::new(), &cfg);
        let r = other.into_request(incoming, &cfg, SamplingDecision::KEEP_ALL, None);
        assert_eq!((r.trace_id(), r.parent_id()), (other.trace_id, None));
        assert_eq!(r.legacy_root_id(), None);
    }
}
