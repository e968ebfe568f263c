//! The correlation context of one request, dependency or in-process span.
//!
//! A [`Correlation`] knows its operation (trace-id, flags, tracestate, baggage, operation
//! name, sampling decision), its own [`ItemId`] and its parent's. It is immutable and cheap
//! to clone (one reference count), so it can sit in request extensions, in the current scope
//! ([`crate::scope`]) and in every child without copying strings.
//!
//! ```
//! use tracelink_core::{Correlation, Propagation, SamplingDecision};
//! use tracelink_core::model::{Dependency, tags};
//!
//! let root = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
//! let call = root.new_child();
//! assert_eq!(call.trace_id(), root.trace_id());
//! assert_eq!(call.parent_id(), Some(root.id()));
//!
//! let item = call.to_item(Dependency::new("GET /", "Http"));
//! assert_eq!(item.id(), Some(call.id().to_string().as_str()));
//! assert_eq!(item.tags.get(tags::OPERATION_PARENT_ID), Some(root.id().to_string().as_str()));
//! ```

use core::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::baggage::Baggage;
use crate::id::{SpanId, TraceId};
use crate::model::tags::TagValue;
use crate::model::{Telemetry, TelemetryData, tags};
use crate::propagation::{Propagation, PropagationMode};
use crate::request_id;
use crate::sampling::SamplingDecision;
use crate::traceparent::{TraceFlags, TraceParent};
use crate::tracestate::TraceState;
use crate::user::{UserCell, UserContext};

/// Property holding the root of a legacy caller's Request-Id (SPEC 2.3, 10.1).
pub const LEGACY_ROOT_ID_PROPERTY: &str = "ai_legacyRootId";

/// The id of a request, dependency or span: a W3C span-id (SPEC 1.2), or a Request-Id
/// string (a legacy caller's id, or an id of hierarchical mode, SPEC 3.6).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ItemId(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Span(SpanId),
    Text(Arc<str>),
}

impl ItemId {
    /// The id of a span.
    pub fn span(id: SpanId) -> Self {
        Self(Repr::Span(id))
    }

    /// A Request-Id-style id.
    pub fn text(id: &str) -> Self {
        Self(Repr::Text(id.into()))
    }

    /// The span-id, when this is one.
    pub fn span_id(&self) -> Option<SpanId> {
        match &self.0 {
            Repr::Span(s) => Some(*s),
            Repr::Text(_) => None,
        }
    }

    /// The Request-Id-style text, when this is one.
    pub fn as_text(&self) -> Option<&str> {
        match &self.0 {
            Repr::Span(_) => None,
            Repr::Text(t) => Some(t),
        }
    }

    /// The id as an item's `id` field: the text made directly, not through `fmt`.
    fn to_id_string(&self) -> String {
        match &self.0 {
            Repr::Span(s) => s.to_hex().as_str().to_owned(),
            Repr::Text(t) => t.to_string(),
        }
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Span(s) => f.write_str(&s.to_hex()),
            Repr::Text(t) => f.write_str(t),
        }
    }
}

impl fmt::Debug for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ItemId({self})")
    }
}

impl From<SpanId> for ItemId {
    fn from(s: SpanId) -> Self {
        Self::span(s)
    }
}

#[derive(Debug)]
pub(crate) struct Operation {
    pub(crate) trace_id: TraceId,
    pub(crate) flags: TraceFlags,
    pub(crate) trace_state: Option<TraceState>,
    pub(crate) carried: Option<Box<Carried>>,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) sampling: SamplingDecision,
    pub(crate) user: UserCell,
}

/// What only some operations carry: baggage (SPEC 2.8) and a legacy caller's root id
/// (SPEC 2.3). Kept apart, and only when there is any, so that an operation is small to
/// make and to move.
#[derive(Clone, Debug, Default)]
pub(crate) struct Carried {
    pub(crate) baggage: Baggage,
    pub(crate) legacy_root_id: Option<Box<str>>,
}

impl Carried {
    /// Boxed, or `None` when there is nothing to carry.
    pub(crate) fn boxed(self) -> Option<Box<Self>> {
        (!self.baggage.is_empty() || self.legacy_root_id.is_some()).then(|| Box::new(self))
    }

    /// The baggage of what may be carried.
    pub(crate) fn baggage(carried: &Option<Box<Self>>) -> &Baggage {
        static NONE: Baggage = Baggage::new();
        carried.as_ref().map_or(&NONE, |c| &c.baggage)
    }

    /// The legacy root id of what may be carried.
    pub(crate) fn legacy_root_id(carried: &Option<Box<Self>>) -> Option<&str> {
        carried.as_ref()?.legacy_root_id.as_deref()
    }
}

/// The correlation context of one request, dependency or in-process span.
#[derive(Clone)]
pub struct Correlation {
    op: Arc<Operation>,
    id: ItemId,
    parent: Option<ItemId>,
    /// Hierarchical ids only: how many children have been made (SPEC 3.6).
    children: Option<Arc<AtomicU32>>,
}

impl Correlation {
    #[inline]
    pub(crate) fn from_parts(op: Operation, id: ItemId, parent: Option<ItemId>) -> Self {
        let children = id.as_text().map(|_| Arc::new(AtomicU32::new(0)));
        Self {
            op: Arc::new(op),
            id,
            parent,
            children,
        }
    }

    /// Starts a new operation with no parent: a background job, or a call made outside of
    /// any request (SPEC 2.4). New traces have flags `01` (SPEC 2.7).
    pub fn new_root(config: &Propagation, sampling: SamplingDecision) -> Self {
        Self::new_root_named(config, sampling, None)
    }

    /// Like [`Correlation::new_root`], with an operation name (`ai.operation.name`).
    pub fn new_root_named(
        config: &Propagation,
        sampling: SamplingDecision,
        operation_name: Option<&str>,
    ) -> Self {
        Self::root(TraceId::random(), config, sampling, operation_name)
    }

    /// A new operation with a given trace-id, e.g. one made first so that a sink can decide
    /// its sampling (SPEC 8.5) before the context exists.
    pub fn root(
        trace_id: TraceId,
        config: &Propagation,
        sampling: SamplingDecision,
        operation_name: Option<&str>,
    ) -> Self {
        let id = match config.propagation_mode() {
            PropagationMode::Hierarchical => ItemId::text(&request_id::new_root(trace_id)),
            _ => ItemId::span(SpanId::random()),
        };
        let op = Operation {
            trace_id,
            flags: TraceFlags::NEW_TRACE,
            trace_state: None,
            carried: None,
            name: operation_name.map(Into::into),
            sampling,
            user: UserCell::default(),
        };
        Self::from_parts(op, id, None)
    }

    /// A child of this context in the same operation: a dependency call or an in-process
    /// span, whose parent is this context's id (SPEC 1.4). Its id is a new span-id, or in
    /// hierarchical mode this id + a counter + `.` (SPEC 3.6).
    pub fn new_child(&self) -> Self {
        let id = match (&self.children, self.id.as_text()) {
            (Some(n), Some(parent)) => {
                let n = n.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
                ItemId::text(&request_id::child(parent, n, self.op.trace_id))
            }
            _ => ItemId::span(SpanId::random()),
        };
        let children = id.as_text().map(|_| Arc::new(AtomicU32::new(0)));
        Self {
            op: Arc::clone(&self.op),
            id,
            parent: Some(self.id.clone()),
            children,
        }
    }

    /// A child of this context with a given id, e.g. an OpenTelemetry span's.
    pub fn new_child_with_id(&self, id: SpanId) -> Self {
        Self {
            op: Arc::clone(&self.op),
            id: ItemId::span(id),
            parent: Some(self.id.clone()),
            children: None,
        }
    }

    /// The trace-id, which is the `operation_Id` (SPEC 1.1).
    pub fn trace_id(&self) -> TraceId {
        self.op.trace_id
    }

    /// This request's, dependency's or span's id.
    pub fn id(&self) -> &ItemId {
        &self.id
    }

    /// The parent's id: the `operation_ParentId` of this item (SPEC 1.4). `None` for a root.
    pub fn parent_id(&self) -> Option<&ItemId> {
        self.parent.as_ref()
    }

    /// The trace flags carried to outgoing calls (SPEC 2.7).
    pub fn flags(&self) -> TraceFlags {
        self.op.flags
    }

    /// The incoming tracestate, forwarded on outgoing calls.
    pub fn trace_state(&self) -> Option<&TraceState> {
        self.op.trace_state.as_ref()
    }

    /// The operation's baggage (SPEC 2.8).
    pub fn baggage(&self) -> &Baggage {
        Carried::baggage(&self.op.carried)
    }

    /// The root of a legacy caller's Request-Id, when the operation id is not a trace-id
    /// from the caller (SPEC 2.3).
    pub fn legacy_root_id(&self) -> Option<&str> {
        Carried::legacy_root_id(&self.op.carried)
    }

    /// The operation name (`ai.operation.name`): the name of the request this operation
    /// entered the service with.
    pub fn operation_name(&self) -> Option<&str> {
        self.op.name.as_deref()
    }

    /// The sampling decision made when the operation started (SPEC 8.5).
    pub fn sampling(&self) -> SamplingDecision {
        self.op.sampling
    }

    /// Whether the operation's telemetry is kept.
    pub fn is_sampled(&self) -> bool {
        self.op.sampling.is_sampled()
    }

    /// The operation's user context (SPEC 6.4), shared by all its contexts; see
    /// [`crate::user`].
    pub fn user(&self) -> Option<Arc<UserContext>> {
        self.op.user.get()
    }

    /// Sets the operation's user context: every item of the operation annotated from now on
    /// carries it, whichever of the operation's contexts annotates it.
    pub fn set_user(&self, user: UserContext) {
        self.op.user.update(|_| user);
    }

    /// Sets the authenticated user (`ai.user.authUserId`) and, when given, the account
    /// (`ai.user.accountId`) of the operation, keeping its user and session ids: call it from
    /// a handler once authentication is done. Items recorded from then on carry it, the
    /// Request item included.
    ///
    /// ```
    /// use tracelink_core::model::{Trace, SeverityLevel, tags};
    /// use tracelink_core::{Correlation, Propagation, SamplingDecision};
    ///
    /// let request = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
    /// request.set_authenticated_user("alice", Some("contoso"));
    /// let log = request.child_item(Trace::new("signed in", SeverityLevel::Information));
    /// assert_eq!(log.tags.get(tags::USER_AUTH_USER_ID), Some("alice"));
    /// assert_eq!(log.tags.get(tags::USER_ACCOUNT_ID), Some("contoso"));
    /// ```
    pub fn set_authenticated_user(&self, auth_user_id: &str, account_id: Option<&str>) {
        self.op
            .user
            .update(|u| u.authenticated_user(auth_user_id, account_id));
    }

    /// The `traceparent` naming this context as the parent: `00-<trace>-<id>-<flags & 03>`.
    /// `None` when this id is not a span-id (hierarchical mode).
    pub fn traceparent(&self) -> Option<TraceParent> {
        self.id
            .span_id()
            .map(|s| TraceParent::new(self.op.trace_id, s, self.op.flags))
    }

    /// The item that describes this context itself: a Request for a server request, a
    /// Dependency for a call or span. Sets the data's `id` (when empty) to this id, the
    /// operation tags with `ai.operation.parentId` = the parent's id, the baggage and
    /// `ai_legacyRootId` properties, and the sample rate.
    pub fn to_item(&self, data: impl Into<TelemetryData>) -> Telemetry {
        let mut item = Telemetry::new(data);
        match &mut item.data {
            TelemetryData::Request(r) if r.id.is_empty() => r.id = self.id.to_id_string(),
            TelemetryData::Dependency(d) if d.id.is_empty() => d.id = self.id.to_id_string(),
            _ => {}
        }
        self.annotate(&mut item, self.parent.as_ref());
        item
    }

    /// An item emitted while this context is current (a log line, event, exception): its
    /// `ai.operation.parentId` is this context's id (SPEC 6.3).
    pub fn child_item(&self, data: impl Into<TelemetryData>) -> Telemetry {
        let mut item = Telemetry::new(data);
        self.annotate(&mut item, Some(&self.id));
        item
    }

    /// Adds this context's operation tags, properties and sample rate to an item made
    /// elsewhere, never replacing what the item already has (SPEC 2.8).
    pub fn annotate(&self, item: &mut Telemetry, parent: Option<&ItemId>) {
        // Typical items carry about eight tags: one allocation for all of them.
        item.tags.reserve(8);
        item.tags
            .insert_if_absent(tags::OPERATION_ID, TagValue::id(self.op.trace_id.to_hex()));
        if let Some(p) = parent {
            let value = match p.span_id() {
                Some(s) => TagValue::id(s.to_hex()),
                None => TagValue::from(p.to_string()),
            };
            item.tags.insert_if_absent(tags::OPERATION_PARENT_ID, value);
        }
        if let Some(name) = &self.op.name {
            item.tags.insert_if_absent(tags::OPERATION_NAME, name);
        }
        if let Some(user) = self.op.user.get() {
            user.annotate(item);
        }
        for (k, v) in self.baggage().iter() {
            if !item.properties.contains_key(k) {
                item.properties.insert(k.to_owned(), v.to_owned());
            }
        }
        if let Some(root) = self.legacy_root_id() {
            item.properties
                .entry(LEGACY_ROOT_ID_PROPERTY.to_owned())
                .or_insert_with(|| root.to_string());
        }
        if item.sample_rate.is_none() {
            item.sample_rate = Some(self.op.sampling.percentage());
        }
    }
}

impl fmt::Debug for Correlation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Correlation")
            .field("trace_id", &self.op.trace_id)
            .field("id", &self.id)
            .field("parent", &self.parent)
            .field("flags", &self.op.flags)
            .field("sampled", &self.op.sampling.is_sampled())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Request, SeverityLevel, Trace};
    use std::time::Duration;

    #[test]
    fn spec_1_4_parent_relations() {
        let cfg = Propagation::default();
        let req = Correlation::new_root_named(&cfg, SamplingDecision::kept(50.0), Some("GET /x"));
        let r = req.to_item(Request::new("GET /x", "200", Duration::ZERO));
        assert_eq!(r.id(), Some(req.id().to_string().as_str()));
        assert_eq!(r.operation_parent_id(), None);
        assert_eq!(r.sample_rate, Some(50.0));
        let log = req.child_item(Trace::new("hi", SeverityLevel::Information));
        assert_eq!(
            log.operation_parent_id(),
            Some(req.id().to_string().as_str())
        );
        assert_eq!(log.tags.get(tags::OPERATION_NAME), Some("GET /x"));
        assert_eq!(log.operation_id(), Some(req.trace_id().to_hex().as_str()));
    }

    #[test]
    fn spec_3_6_hierarchical_children_count_up() {
        let cfg = Propagation::default().mode(PropagationMode::Hierarchical);
        let root = Correlation::new_root(&cfg, SamplingDecision::KEEP_ALL);
        let t = root.trace_id().to_hex();
        assert_eq!(root.id().to_string(), format!("|{t}."));
        let a = root.new_child();
        let b = root.new_child();
        assert_eq!(a.id().to_string(), format!("|{t}.1."));
        assert_eq!(b.id().to_string(), format!("|{t}.2."));
        assert_eq!(a.new_child().id().to_string(), format!("|{t}.1.1."));
        assert!(a.traceparent().is_none());
    }
}
