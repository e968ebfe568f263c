//! Incoming request: which context wins (SPEC 2).
//!
//! | # | incoming headers | operation_Id | operation_ParentId | extra |
//! |---|---|---|---|---|
//! | 2.1 | valid `traceparent` (tracestate may follow) | its trace-id | its parent-id | |
//! | 2.2 | no valid `traceparent`; `Request-Id` = `\|<32 lower hex>.…` | those 32 hex | the Request-Id | |
//! | 2.3 | no valid `traceparent`; any other valid `Request-Id` | new | the Request-Id | `ai_legacyRootId` = its root |
//! | 2.4 | nothing usable | new | none | |
//!
//! A valid `traceparent` wins and `Request-Id` is then ignored (2.5); an invalid one is
//! ignored together with its `tracestate`, and the Request-Id rows apply (2.6). Flags are
//! carried unchanged; a new trace has flags `01` (2.7). W3C `baggage` and then
//! `Correlation-Context` are read into the baggage, the first value of a key winning (2.8).
//! A `Request-Context` `appId=cid-v1:X` from another application is the request's source
//! (2.9). Extraction never fails: bad input degrades to a new trace (SPEC 9.1).
//!
//! ```
//! use http::HeaderMap;
//! use tracelink_core::{Propagation, SamplingDecision, extract};
//!
//! let mut h = HeaderMap::new();
//! h.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap());
//! h.insert("request-context", "appId=cid-v1:caller".parse().unwrap());
//! let cfg = Propagation::default();
//! let incoming = extract::extract(&h, &cfg);
//! assert_eq!(incoming.source(), Some("cid-v1:caller"));
//! let request = incoming.into_request(&cfg, SamplingDecision::KEEP_ALL, Some("GET /"));
//! assert_eq!(request.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
//! assert_eq!(request.parent_id().unwrap().to_string(), "b7ad6b7169203331");
//! ```

use crate::baggage::Baggage;
use crate::carrier::{self, Extractor, Line, Lines, headers};
use crate::correlation::{Carried, Correlation, ItemId, Operation};
use crate::correlation_context;
use crate::id::{SpanId, TraceId};
use crate::propagation::{Propagation, PropagationMode};
use crate::received::{self, Received, offset_in};
use crate::request_context::{self, CID_PREFIX};
use crate::request_id;
use crate::sampling::SamplingDecision;
use crate::traceparent::{TraceFlags, TraceParent};
use crate::tracestate::TraceState;

/// Which row of the SPEC 2 table applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// 2.1: a valid `traceparent`.
    TraceParent,
    /// 2.2: a W3C-compatible `Request-Id`.
    RequestIdW3c,
    /// 2.3: another valid `Request-Id`.
    RequestIdLegacy,
    /// 2.4: nothing usable: a new operation.
    New,
}

/// What an incoming request carried, after SPEC 2 was applied.
#[derive(Clone, Debug)]
pub struct Incoming {
    trace_id: TraceId,
    parent: Option<ItemId>,
    flags: TraceFlags,
    trace_state: Option<TraceState>,
    carried: Option<Box<Carried>>,
    source: Option<Received>,
    origin: Origin,
    baggage_truncated: u32,
}

/// Applies SPEC 2 to the headers of an incoming request.
pub fn extract<E: Extractor + ?Sized>(carrier: &E, config: &Propagation) -> Incoming {
    let h = carrier::correlation_headers(carrier);
    let lines = |l, name| each_line(carrier, l, name);
    let traceparent = h
        .traceparent
        .single()
        .and_then(|line| TraceParent::parse_bytes(line.as_bytes()).ok());
    let (caller, trace_state) = match traceparent {
        Some(tp) => {
            // An absent or invalid tracestate is simply not forwarded.
            let trace_state = match (h.tracestate.first, h.tracestate.more) {
                (None, _) => None,
                (Some(line), false) => trace_state(line),
                (Some(_), true) => {
                    TraceState::parse_lines(lines(h.tracestate, headers::TRACESTATE)).ok()
                }
            };
            (Caller::traceparent(&tp), trace_state)
        }
        None => (Caller::request_id(h.request_id), None),
    };
    let mut carried = Carried {
        baggage: Baggage::new(),
        legacy_root_id: caller.legacy_root_id,
    };
    // Both headers fill one baggage, within the caps on incoming baggage (crate::baggage).
    let mut baggage_truncated = 0;
    if !h.baggage.is_empty() {
        let all = lines(h.baggage, headers::BAGGAGE);
        baggage_truncated += carried.baggage.merge_w3c_lines(all);
    }
    if !h.correlation_context.is_empty() {
        let all = lines(h.correlation_context, headers::CORRELATION_CONTEXT);
        baggage_truncated += correlation_context::merge_lines(&mut carried.baggage, all);
    }
    let source = h.request_context.first.and_then(|first| {
        let own = config.own_app_id().map(|a| a.as_str());
        #[cfg(feature = "http")]
        if let Some(v) = first.value().filter(|_| !h.request_context.more)
            && let Some(x) = request_context::sole_app_id(v.as_bytes())
        {
            // Nothing but `appId=cid-v1:X`: the value from `cid-v1:` on is the source.
            return (Some(x) != own.map(str::as_bytes))
                .then(|| Received::shared(v, request_context::CID_AT..v.len()));
        }
        let found = if h.request_context.more {
            lines(h.request_context, headers::REQUEST_CONTEXT)
                .find_map(|line| Some((line, request_context::app_id(line)?, None)))
        } else {
            let line = first.text();
            request_context::app_id(line).map(|x| (line, x, first.value()))
        };
        found
            .filter(|(_, x, _)| Some(*x) != own)
            .map(|(line, x, value)| source(line, x, value))
    });
    // Built once, at the end: parts written earlier and read back cost more than they seem.
    Incoming {
        trace_id: caller.trace_id,
        parent: caller.parent,
        flags: caller.flags,
        trace_state,
        carried: carried.boxed(),
        source,
        origin: caller.origin,
        baggage_truncated: u32::try_from(baggage_truncated).unwrap_or(u32::MAX),
    }
}

/// Who called, by the SPEC 2 row that applied.
struct Caller {
    trace_id: TraceId,
    parent: Option<ItemId>,
    flags: TraceFlags,
    legacy_root_id: Option<Box<str>>,
    origin: Origin,
}

impl Caller {
    /// 2.1: a valid `traceparent`.
    fn traceparent(tp: &TraceParent) -> Self {
        Self {
            trace_id: tp.trace_id(),
            parent: Some(ItemId::span(tp.parent_id())),
            flags: tp.flags(),
            legacy_root_id: None,
            origin: Origin::TraceParent,
        }
    }

    /// 2.2-2.4: the `Request-Id`, if any is valid.
    fn request_id(lines: Lines<'_>) -> Self {
        let mut caller = Self {
            trace_id: TraceId::random(),
            parent: None,
            flags: TraceFlags::NEW_TRACE,
            legacy_root_id: None,
            origin: Origin::New,
        };
        let rid = lines
            .single()
            .and_then(|line| request_id::parse(line.text()).ok());
        if let Some(rid) = rid {
            caller.parent = Some(ItemId::text(rid));
            match request_id::w3c_trace_id(rid) {
                Some(t) => {
                    caller.trace_id = t;
                    caller.origin = Origin::RequestIdW3c;
                }
                None => {
                    let root = request_id::root(rid);
                    caller.legacy_root_id = (!root.is_empty()).then(|| root.into());
                    caller.origin = Origin::RequestIdLegacy;
                }
            }
        }
        caller
    }
}

/// Every line of a header: the single one as it was collected, or all of them, asked for
/// again (several lines are rare).
fn each_line<'a, E: Extractor + ?Sized>(
    carrier: &'a E,
    lines: Lines<'a>,
    name: &str,
) -> impl Iterator<Item = &'a str> {
    let all: Vec<&'a str> = match lines.more {
        true => carrier.get_all(name).collect(),
        false => Vec::new(),
    };
    lines.single().map(|l| l.text()).into_iter().chain(all)
}

/// `cid-v1:<id>` for an id found in a `Request-Context` line: shared with the received value
/// when it is written that way there (as every SDK writes it), else built.
#[inline]
fn source(line: &str, id: &str, value: Option<&received::Value>) -> Received {
    let cid = offset_in(line.as_bytes(), id.as_bytes())
        .and_then(|at| line.get(at.checked_sub(CID_PREFIX.len())?..at + id.len()))
        .filter(|cid| cid.starts_with(CID_PREFIX));
    match cid {
        Some(cid) => Received::within(value, cid),
        None => Received::Owned(format!("{CID_PREFIX}{id}").into_boxed_str()),
    }
}

/// A single `tracestate` line, shared with the carrier when it holds a `HeaderValue`.
fn trace_state(line: Line<'_>) -> Option<TraceState> {
    #[cfg(feature = "http")]
    if let Some(v) = line.value() {
        return TraceState::from_header_value(v).ok();
    }
    TraceState::parse(line.text()).ok()
}

impl Incoming {
    /// The operation id: the caller's trace-id, or a new one.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The caller's id: the `operation_ParentId` of the request.
    pub fn parent_id(&self) -> Option<&ItemId> {
        self.parent.as_ref()
    }

    /// The flags to carry on (SPEC 2.7).
    pub fn flags(&self) -> TraceFlags {
        self.flags
    }

    /// The valid tracestate that came with a valid traceparent.
    pub fn trace_state(&self) -> Option<&TraceState> {
        self.trace_state.as_ref()
    }

    /// The baggage from `baggage` and `Correlation-Context` (SPEC 2.8).
    pub fn baggage(&self) -> &Baggage {
        Carried::baggage(&self.carried)
    }

    /// How many members of the incoming `baggage` and `Correlation-Context` headers were
    /// left out by a limit (the caps of [`crate::baggage`] and the per-header limits of
    /// SPEC 4.1 and 4.2). Also counted for the whole process in
    /// [`baggage::truncated_items`](crate::baggage::truncated_items).
    pub fn baggage_truncated(&self) -> usize {
        self.baggage_truncated as usize
    }

    /// The root of a legacy Request-Id (SPEC 2.3).
    pub fn legacy_root_id(&self) -> Option<&str> {
        Carried::legacy_root_id(&self.carried)
    }

    /// `cid-v1:<caller appId>` when the caller is another application (SPEC 2.9).
    pub fn source(&self) -> Option<&str> {
        self.source.as_ref().map(Received::as_str)
    }

    /// Which SPEC 2 row applied.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The incoming context as an [`IdSource`](crate::IdSource) parent.
    pub fn span_parent(&self) -> crate::SpanParent {
        crate::SpanParent::new(
            self.trace_id,
            self.parent.as_ref().and_then(ItemId::span_id),
            self.flags,
        )
    }

    /// Like [`Incoming::into_request`], with the request id given (an OpenTelemetry span's,
    /// see [`crate::id_source`]). In hierarchical mode the id is ignored: ids are Request-Ids.
    pub fn into_request_with_id(
        self,
        config: &Propagation,
        sampling: SamplingDecision,
        operation_name: Option<&str>,
        id: SpanId,
    ) -> Correlation {
        if config.propagation_mode() == PropagationMode::Hierarchical {
            return self.into_request(config, sampling, operation_name);
        }
        self.finish(ItemId::span(id), sampling, operation_name)
    }

    /// The context of the request: a new id (SPEC 1.2, or 3.6 in hierarchical mode), the
    /// caller as parent, the sampling decision made now (SPEC 8.5) and the operation name.
    pub fn into_request(
        self,
        config: &Propagation,
        sampling: SamplingDecision,
        operation_name: Option<&str>,
    ) -> Correlation {
        let id = match config.propagation_mode() {
            PropagationMode::Hierarchical => ItemId::text(&self.incoming_request_id()),
            _ => ItemId::span(SpanId::random()),
        };
        self.finish(id, sampling, operation_name)
    }

    /// The request's hierarchical id under the caller's (SPEC 3.6).
    fn incoming_request_id(&self) -> String {
        let t = self.trace_id;
        match &self.parent {
            Some(p) => match (p.as_text(), p.span_id()) {
                (Some(text), _) => request_id::incoming(text, t),
                (None, Some(span)) => request_id::incoming(&request_id::w3c_compatible(t, span), t),
                (None, None) => request_id::new_root(t),
            },
            None => request_id::new_root(t),
        }
    }

    #[inline]
    fn finish(
        self,
        id: ItemId,
        sampling: SamplingDecision,
        operation_name: Option<&str>,
    ) -> Correlation {
        // Field by field: moving the whole value would copy it first.
        let Self {
            trace_id,
            parent,
            flags,
            trace_state,
            carried,
            ..
        } = self;
        let op = Operation {
            trace_id,
            flags,
            trace_state,
            carried,
            name: operation_name.map(Into::into),
            sampling,
            user: Default::default(),
        };
        Correlation::from_parts(op, id, parent)
    }
}

#[cfg(all(test, feature = "http"))]
mod tests {
    use super::*;
    use crate::AppId;
    use http::{HeaderMap, HeaderValue};

    const T: &str = "0af7651916cd43dd8448eb211c80319c";
    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ex(pairs: &[(&'static str, &str)]) -> Incoming {
        extract(&headers(pairs), &Propagation::default())
    }

    /// SPEC 3.1: what a later version adds after the 56th char is not read, whatever bytes
    /// the header value holds there.
    #[test]
    fn spec_3_1_a_later_version_is_read_whatever_follows() {
        let v = format!("01-{T}-b7ad6b7169203331-01-");
        let mut h = HeaderMap::new();
        let mut bytes = v.clone().into_bytes();
        bytes.extend_from_slice(b"\xff\x80 x");
        h.insert(
            headers::TRACEPARENT,
            HeaderValue::from_bytes(&bytes).unwrap(),
        );
        let i = extract(&h, &Propagation::default());
        assert_eq!(i.origin(), Origin::TraceParent);
        assert_eq!(i.trace_id().to_string(), T);
        let text = ex(&[(headers::TRACEPARENT, &format!("{v}é x"))]);
        assert_eq!(text.origin(), Origin::TraceParent);
        assert_eq!(text.trace_id(), i.trace_id());
    }

    #[test]
    fn spec_2_1_traceparent() {
        let i = ex(&[
            (headers::TRACEPARENT, TP),
            (headers::TRACESTATE, "congo=t61rcWkgMzE"),
        ]);
        assert_eq!(i.origin(), Origin::TraceParent);
        assert_eq!(i.trace_id().to_string(), T);
        assert_eq!(i.parent_id().unwrap().to_string(), "b7ad6b7169203331");
        assert_eq!(i.trace_state().unwrap().as_str(), "congo=t61rcWkgMzE");
    }

    #[test]
    fn spec_2_2_w3c_request_id() {
        let rid = "|0af7651916cd43dd8448eb211c80319c.b7ad6b7169203331.";
        let i = ex(&[(headers::REQUEST_ID, rid)]);
        assert_eq!(i.origin(), Origin::RequestIdW3c);
        assert_eq!(i.trace_id().to_string(), T);
        assert_eq!(i.parent_id().unwrap().to_string(), rid);
        assert_eq!(i.legacy_root_id(), None);
    }

    #[test]
    fn spec_2_3_legacy_request_id() {
        let i = ex(&[(headers::REQUEST_ID, "|legacy-root-42.1.2.")]);
        assert_eq!(i.origin(), Origin::RequestIdLegacy);
        assert_ne!(i.trace_id().to_string(), T);
        assert_eq!(i.parent_id().unwrap().to_string(), "|legacy-root-42.1.2.");
        assert_eq!(i.legacy_root_id(), Some("legacy-root-42"));
        let req = i.into_request(&Propagation::default(), SamplingDecision::KEEP_ALL, None);
        let item = req.to_item(crate::model::Request::default());
        assert_eq!(
            item.properties.get("ai_legacyRootId").map(String::as_str),
            Some("legacy-root-42")
        );
    }

    #[test]
    fn spec_2_4_nothing_usable() {
        let i = ex(&[(headers::REQUEST_ID, "bad id with spaces")]);
        assert_eq!(i.origin(), Origin::New);
        assert!(i.parent_id().is_none());
        assert_eq!(i.flags(), TraceFlags::NEW_TRACE);
    }

    #[test]
    fn spec_2_5_traceparent_wins() {
        let i = ex(&[
            (headers::TRACEPARENT, TP),
            (headers::REQUEST_ID, "|legacy.1."),
        ]);
        assert_eq!(i.origin(), Origin::TraceParent);
        assert_eq!(i.legacy_root_id(), None);
    }

    #[test]
    fn spec_2_6_invalid_traceparent_falls_back_and_drops_tracestate() {
        let i = ex(&[
            (
                headers::TRACEPARENT,
                "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            ),
            (headers::TRACESTATE, "a=1"),
            (headers::REQUEST_ID, "|legacy.1."),
        ]);
        assert_eq!(i.origin(), Origin::RequestIdLegacy);
        assert!(i.trace_state().is_none());
        // Two traceparent lines are invalid too.
        let i = ex(&[(headers::TRACEPARENT, TP), (headers::TRACEPARENT, TP)]);
        assert_eq!(i.origin(), Origin::New);
    }

    #[test]
    fn spec_2_7_flags_carried() {
        let i = ex(&[(
            headers::TRACEPARENT,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        )]);
        assert!(!i.flags().is_sampled());
        let req = i.into_request(&Propagation::default(), SamplingDecision::KEEP_ALL, None);
        assert!(
            req.new_child()
                .traceparent()
                .unwrap()
                .to_header()
                .ends_with("-00")
        );
    }

    #[test]
    fn spec_2_8_baggage_from_both_headers() {
        let i = ex(&[
            (headers::BAGGAGE, "userId=w3c,region=eu"),
            (
                headers::CORRELATION_CONTEXT,
                "userId=legacy, tenant=contoso",
            ),
        ]);
        let b: Vec<_> = i.baggage().iter().collect();
        assert_eq!(
            b,
            [("userId", "w3c"), ("region", "eu"), ("tenant", "contoso")]
        );
    }

    /// Both headers together give an operation at most 64 properties and 8192 bytes of
    /// them, whatever they hold; what is cut is counted.
    #[test]
    fn incoming_baggage_is_capped_and_counted() {
        let w3c: Vec<String> = (0..64).map(|i| format!("w{i}=1")).collect();
        let legacy: Vec<String> = (0..124).map(|i| format!("c{i}=1")).collect();
        let before = crate::baggage::truncated_items();
        let i = ex(&[
            (headers::BAGGAGE, &w3c.join(",")),
            (headers::CORRELATION_CONTEXT, &legacy.join(",")),
        ]);
        assert_eq!(i.baggage().len(), crate::baggage::MAX_INCOMING_ITEMS);
        assert_eq!(i.baggage_truncated(), 124);
        assert!(crate::baggage::truncated_items() >= before + 124);
        let req = i.into_request(&Propagation::default(), SamplingDecision::KEEP_ALL, None);
        let item = req.to_item(crate::model::Request::default());
        assert_eq!(item.properties.len(), 64);
        // Bytes: a few large values fill the cap.
        let big = format!(
            "a={},b={},c={}",
            "x".repeat(4000),
            "y".repeat(4000),
            "z".repeat(100)
        );
        let more = format!("d={}, e=1", "w".repeat(100));
        let i = ex(&[
            (headers::BAGGAGE, &big),
            (headers::CORRELATION_CONTEXT, &more),
        ]);
        let kept: usize = i.baggage().iter().map(|(k, v)| k.len() + v.len()).sum();
        assert_eq!(kept, 8103);
        assert_eq!((i.baggage().len(), i.baggage_truncated()), (3, 2));
        assert_eq!(ex(&[(headers::BAGGAGE, "a=1")]).baggage_truncated(), 0);
    }

    #[test]
    fn spec_2_9_source_unless_own() {
        let i = ex(&[(headers::REQUEST_CONTEXT, "appId=cid-v1:caller")]);
        assert_eq!(i.source(), Some("cid-v1:caller"));
        let own = Propagation::default().app_id(AppId::new("me").unwrap());
        let h = headers(&[(headers::REQUEST_CONTEXT, "appId=cid-v1:me")]);
        assert_eq!(extract(&h, &own).source(), None);
        assert_eq!(
            ex(&[(headers::REQUEST_CONTEXT, "appId=cid-v1:")]).source(),
            None
        );
        // Shared with the received value or built: the same text either way, in every form.
        for (line, want) in [
            ("roleName=a, appId = cid-v1:caller ", "cid-v1:caller"),
            ("appId=cid-v1:  spaced", "cid-v1:spaced"),
            ("appId=cid-v1:caller-app", "cid-v1:caller-app"),
            ("appId=cid-v1:a=b", "cid-v1:a=b"),
            (" APPID=cid-v1:x,appId=cid-v1:y", "cid-v1:x"),
        ] {
            assert_eq!(ex(&[(headers::REQUEST_CONTEXT, line)]).source(), Some(want));
            let mut map = std::collections::HashMap::new();
            map.insert(headers::REQUEST_CONTEXT.to_owned(), line.to_owned());
            assert_eq!(extract(&map, &Propagation::default()).source(), Some(want));
        }
        // Several lines: the first appId wins, from whichever line holds it.
        let mut h = HeaderMap::new();
        h.append(
            headers::REQUEST_CONTEXT,
            HeaderValue::from_static("roleName=a"),
        );
        h.append(
            headers::REQUEST_CONTEXT,
            HeaderValue::from_static("appId=cid-v1:second"),
        );
        assert_eq!(
            extract(&h, &Propagation::default()).source(),
            Some("cid-v1:second")
        );
    }

    #[test]
    fn spec_3_6_hierarchical_request_ids() {
        let cfg = Propagation::default().mode(PropagationMode::Hierarchical);
        let h = headers(&[(headers::REQUEST_ID, "|legacy.1.")]);
        let req = extract(&h, &cfg).into_request(&cfg, SamplingDecision::KEEP_ALL, None);
        let id = req.id().to_string();
        assert!(
            id.starts_with("|legacy.1.") && id.ends_with('_') && id.len() == 19,
            "{id}"
        );
        assert_eq!(req.new_child().id().to_string(), format!("{id}1."));
        let h = headers(&[(headers::TRACEPARENT, TP)]);
        let req = extract(&h, &cfg).into_request(&cfg, SamplingDecision::KEEP_ALL, None);
        assert!(
            req.id()
                .to_string()
                .starts_with(&format!("|{T}.b7ad6b7169203331."))
        );
        let req =
            extract(&HeaderMap::new(), &cfg).into_request(&cfg, SamplingDecision::KEEP_ALL, None);
        assert_eq!(req.id().to_string(), format!("|{}.", req.trace_id()));
    }
}
