//! [`LegacyPropagator`].

use std::sync::OnceLock;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use tracelink_core::carrier::headers;
use tracelink_core::{AppId, Baggage, correlation_context, request_context, request_id};

/// The legacy parent a context was extracted from (SPEC 2.2, 2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyParent {
    /// The Request-Id as received.
    pub request_id: String,
    /// Its root (SPEC 3.4), when it is not the trace-id.
    pub legacy_root_id: Option<String>,
}

/// The caller's application id from `Request-Context` (SPEC 2.9), `cid-v1:` stripped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceAppId(pub String);

/// The legacy Application Insights headers as an OpenTelemetry [`TextMapPropagator`]:
/// `Request-Id`, `Correlation-Context` and `Request-Context`. Register it after
/// `TraceContextPropagator` in a `TextMapCompositePropagator`, so that a valid `traceparent`
/// wins (SPEC 2.5) and callers with older SDKs still join the trace:
///
/// ```
/// use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
/// use opentelemetry::trace::TraceContextExt;
/// use opentelemetry_sdk::propagation::TraceContextPropagator;
/// use std::collections::HashMap;
/// use tracelink_otel::LegacyPropagator;
///
/// let propagator = TextMapCompositePropagator::new(vec![
///     Box::new(TraceContextPropagator::new()),
///     Box::new(LegacyPropagator::new()),
/// ]);
/// let mut headers = HashMap::new();
/// headers.insert("request-id".to_owned(), "|0af7651916cd43dd8448eb211c80319c.b7ad6b7169203331.".to_owned());
/// let cx = propagator.extract(&headers);
/// let span = cx.span().span_context().clone();
/// assert_eq!(span.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
/// assert_eq!(span.span_id().to_string(), "b7ad6b7169203331");
/// ```
///
/// Extraction (only when the context has no valid remote span yet): a W3C-compatible
/// `Request-Id` `|T.S.…` gives trace-id `T` and, when `S` is 16 hex digits, parent `S` (SPEC
/// 2.2); any other valid Request-Id starts a new trace (SPEC 2.3). The raw Request-Id and its
/// root are kept in the context ([`LegacyParent`]) for exporters that want the exact legacy
/// parent. `Correlation-Context` items are added to the context's baggage (existing keys win),
/// and a `Request-Context` `appId` is kept as [`SourceAppId`].
///
/// Injection: `Request-Id: |T.S.` from the context's span (SPEC 3.5), `Correlation-Context`
/// from its baggage (SPEC 4.1), and `Request-Context: appId=cid-v1:<own>` when configured
/// (SPEC 5.3).
#[derive(Clone, Debug, Default)]
pub struct LegacyPropagator {
    app_id: Option<AppId>,
}

fn fields() -> &'static [String; 3] {
    static FIELDS: OnceLock<[String; 3]> = OnceLock::new();
    FIELDS.get_or_init(|| {
        [
            headers::REQUEST_ID,
            headers::CORRELATION_CONTEXT,
            headers::REQUEST_CONTEXT,
        ]
        .map(str::to_owned)
    })
}

/// A stable, non-zero span-id for a Request-Id that carries none (hierarchical ids).
fn derived_span_id(rid: &str) -> SpanId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in rid.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    SpanId::from(h.max(1))
}

impl LegacyPropagator {
    /// A propagator that injects no `Request-Context`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also inject `Request-Context: appId=cid-v1:<app_id>`.
    pub fn from_app_id(app_id: AppId) -> Self {
        Self {
            app_id: Some(app_id),
        }
    }
}

impl TextMapPropagator for LegacyPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let t = tracelink_core::TraceId::from_bytes(sc.trace_id().to_bytes());
            let s = tracelink_core::SpanId::from_bytes(sc.span_id().to_bytes());
            if let (Some(t), Some(s)) = (t, s) {
                injector.set(
                    headers::REQUEST_ID,
                    request_id::w3c_compatible(t, s).to_string(),
                );
            }
        }
        let bag: Baggage = cx
            .baggage()
            .iter()
            .map(|(k, (v, _))| (k.as_str().to_owned(), v.as_str().to_owned()))
            .collect();
        let cc = correlation_context::to_header(&bag);
        if !cc.is_empty() {
            injector.set(headers::CORRELATION_CONTEXT, cc);
        }
        if let Some(app) = &self.app_id {
            injector.set(headers::REQUEST_CONTEXT, app.header_value().to_owned());
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut cx = cx.clone();
        if !cx.span().span_context().is_valid()
            && let Some(rid) = extractor
                .get(headers::REQUEST_ID)
                .and_then(|v| request_id::parse(v).ok())
        {
            let (trace_id, legacy_root_id) = match request_id::w3c_trace_id(rid) {
                Some(t) => (TraceId::from_bytes(t.to_bytes()), None),
                None => {
                    let root = request_id::root(rid);
                    (
                        TraceId::from_bytes(tracelink_core::TraceId::random().to_bytes()),
                        (!root.is_empty()).then(|| root.to_owned()),
                    )
                }
            };
            let span_id = rid
                .split('.')
                .nth(1)
                .and_then(|s| tracelink_core::SpanId::parse_hex(s).ok())
                .filter(|_| legacy_root_id.is_none())
                .map_or_else(
                    || derived_span_id(rid),
                    |s| SpanId::from_bytes(s.to_bytes()),
                );
            let sc = SpanContext::new(
                trace_id,
                span_id,
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            );
            cx = cx.with_remote_span_context(sc).with_value(LegacyParent {
                request_id: rid.to_owned(),
                legacy_root_id,
            });
        }
        if let Some(v) = extractor.get(headers::CORRELATION_CONTEXT) {
            let items = correlation_context::parse_lines([v]);
            let existing = cx.baggage();
            let mut merged: Vec<KeyValue> = existing
                .iter()
                .map(|(k, (v, _))| KeyValue::new(k.clone(), v.to_string()))
                .collect();
            for (k, v) in items.iter() {
                if existing.get(k).is_none() {
                    merged.push(KeyValue::new(k.to_owned(), v.to_owned()));
                }
            }
            cx = cx.with_baggage(merged);
        }
        if let Some(app) = extractor
            .get(headers::REQUEST_CONTEXT)
            .and_then(request_context::app_id)
        {
            cx = cx.with_value(SourceAppId(app.to_owned()));
        }
        cx
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(fields())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn extract(pairs: &[(&str, &str)]) -> Context {
        let h: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LegacyPropagator::new().extract(&h)
    }

    #[test]
    fn spec_2_3_legacy_ids_start_a_trace_and_keep_the_root() {
        let cx = extract(&[("request-id", "|legacy-root-42.1.2.")]);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote());
        let lp = cx.get::<LegacyParent>().unwrap();
        assert_eq!(lp.legacy_root_id.as_deref(), Some("legacy-root-42"));
        assert_eq!(sc.span_id(), derived_span_id("|legacy-root-42.1.2."));
    }

    #[test]
    fn spec_4_1_and_2_9_baggage_and_source() {
        let cx = extract(&[
            ("correlation-context", "tenant=contoso, user=alice"),
            ("request-context", "appId=cid-v1:caller"),
        ]);
        assert_eq!(
            cx.baggage().get("tenant").map(|v| v.to_string()),
            Some("contoso".into())
        );
        assert_eq!(cx.get::<SourceAppId>(), Some(&SourceAppId("caller".into())));
        assert!(
            !cx.span().span_context().is_valid(),
            "no Request-Id, no span"
        );
        // Garbage never panics and adds nothing.
        let cx = extract(&[("request-id", "a b"), ("correlation-context", ",,==,")]);
        assert!(!cx.span().span_context().is_valid());
    }

    #[test]
    fn spec_3_5_injection_round_trips() {
        let sc = SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            SpanId::from_hex("b7ad6b7169203331").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let cx = Context::new()
            .with_remote_span_context(sc)
            .with_baggage(vec![KeyValue::new("tenant", "contoso")]);
        let mut out: HashMap<String, String> = HashMap::new();
        LegacyPropagator::from_app_id(AppId::new("me").unwrap()).inject_context(&cx, &mut out);
        assert_eq!(
            out["request-id"],
            "|0af7651916cd43dd8448eb211c80319c.b7ad6b7169203331."
        );
        assert_eq!(out["correlation-context"], "tenant=contoso");
        assert_eq!(out["request-context"], "appId=cid-v1:me");
        let back = LegacyPropagator::new().extract(&out);
        assert_eq!(
            back.span().span_context().span_id(),
            SpanId::from_hex("b7ad6b7169203331").unwrap()
        );
    }
}
