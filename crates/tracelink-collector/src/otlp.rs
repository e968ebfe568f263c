//! OTLP/HTTP ingestion: `POST /v1/traces`, `/v1/logs` and `/v1/metrics` on the collector's
//! port, as the OpenTelemetry Protocol specification defines them for HTTP.
//!
//! - Bodies are `Export{Trace,Logs,Metrics}ServiceRequest` messages, binary protobuf
//!   (`Content-Type: application/x-protobuf`) or JSON (`application/json`, with hex ids and
//!   lowerCamelCase keys), plain or `Content-Encoding: gzip`; decoded with the
//!   `opentelemetry-proto` types (`prost` and its serde support).
//! - 200 with an `Export*ServiceResponse` in the request's encoding; when some spans, log
//!   records or data points cannot be mapped, its `partial_success` counts them and says why.
//!   400 with a `google.rpc.Status` when the body cannot be decoded, or when nothing in it
//!   can be mapped; 413 over the body limit (compressed or not); 415 for any other content
//!   type; 503 when the database cannot store (retry). Every refusal is counted
//!   ([`Stats`](crate::Stats)) and nothing already stored is affected.
//! - An item is refused when its trace or span id has the wrong length, or when one of its
//!   attribute lists holds more than [`MAX_ATTRIBUTES`] entries. Text longer than the
//!   Application Insights limits is cut when stored.
//!
//! The mapping onto the Application Insights data model is the Azure Monitor exporters'
//! (see the `semconv` module): resource `service.name` (with `service.namespace.` before it;
//! a Kubernetes workload name instead of the default `unknown_service…`) is the cloud role,
//! `k8s.pod.name`, else `service.instance.id`, else `host.name` the role instance,
//! `service.version` the application version; attributes named `ai.*` are tags; span ids are the item ids, the parent span id
//! the `operation_ParentId`, the trace id the `operation_Id`, so that spans link with items
//! of the Application Insights SDKs and tracelink whose ids are the same W3C ids. Items of a
//! trace carry the name of its server span in the same request as `operation_Name`. Log
//! records take their span as parent; metric data points become Metric items (sums and
//! gauges their value; histograms and summaries their sum, count, min and max).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Gauge, Sum, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use prost::Message;
use tracelink_core::model::{Telemetry, links_json, tags};
use tracelink_core::resource::{MetricPoint, metric_item, resource_tags};

use crate::semconv::{self, Attributes, Kind, SpanView, Value};

/// The most entries an attribute list of one span, event, link, log record or data point may
/// hold; an item with more is refused.
pub const MAX_ATTRIBUTES: usize = 1000;

/// The body encodings of OTLP/HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names, parameters aside.
    pub(crate) fn of(content_type: Option<&str>) -> Option<Self> {
        let mime = content_type?.split(';').next()?.trim();
        if mime.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Self::Protobuf)
        } else if mime.eq_ignore_ascii_case("application/json") {
            Some(Self::Json)
        } else {
            None
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// The three OTLP signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Logs,
    Metrics,
}

/// What a request held: the items to store, how many spans, records or points it had and
/// how many were refused, and why the first was.
#[derive(Debug, Default)]
pub(crate) struct Mapped {
    pub(crate) items: Vec<Telemetry>,
    pub(crate) received: usize,
    pub(crate) rejected: usize,
    pub(crate) reason: Option<String>,
}

impl Mapped {
    fn reject(&mut self, why: impl Into<String>) {
        self.rejected += 1;
        if self.reason.is_none() {
            self.reason = Some(why.into());
        }
    }
}

fn decode<M: Message + Default + serde::de::DeserializeOwned>(
    body: &[u8],
    encoding: Encoding,
) -> Result<M, String> {
    match encoding {
        Encoding::Protobuf => M::decode(body).map_err(|e| format!("invalid protobuf: {e}")),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}")),
    }
}

/// Decodes and maps a request body of `signal`.
pub(crate) fn map(signal: Signal, body: &[u8], encoding: Encoding) -> Result<Mapped, String> {
    Ok(match signal {
        Signal::Traces => map_traces(decode(body, encoding)?),
        Signal::Logs => map_logs(decode(body, encoding)?),
        Signal::Metrics => map_metrics(decode(body, encoding)?),
    })
}

/// The answer to a request of `signal`: its `Export*ServiceResponse`, with `partial_success`
/// when items were refused.
pub(crate) fn response(signal: Signal, encoding: Encoding, m: &Mapped) -> Vec<u8> {
    let rejected = m.rejected as i64;
    let message = m.reason.clone().unwrap_or_default();
    let partial = m.rejected > 0;
    fn encode<M: Message + serde::Serialize>(m: &M, encoding: Encoding) -> Vec<u8> {
        match encoding {
            Encoding::Protobuf => m.encode_to_vec(),
            Encoding::Json => serde_json::to_vec(m).unwrap_or_default(),
        }
    }
    match signal {
        Signal::Traces => encode(
            &ExportTraceServiceResponse {
                partial_success: partial.then_some(ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: message,
                }),
            },
            encoding,
        ),
        Signal::Logs => encode(
            &ExportLogsServiceResponse {
                partial_success: partial.then_some(ExportLogsPartialSuccess {
                    rejected_log_records: rejected,
                    error_message: message,
                }),
            },
            encoding,
        ),
        Signal::Metrics => encode(
            &ExportMetricsServiceResponse {
                partial_success: partial.then_some(ExportMetricsPartialSuccess {
                    rejected_data_points: rejected,
                    error_message: message,
                }),
            },
            encoding,
        ),
    }
}

/// `google.rpc.Status`, the body of an OTLP error answer.
#[derive(Clone, PartialEq, Message, serde::Serialize)]
pub(crate) struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub(crate) code: i32,
    #[prost(string, tag = "2")]
    pub(crate) message: String,
}

/// An error answer's body: `google.rpc.Status` with `code` (3: invalid argument, 8: resource
/// exhausted, 14: unavailable) in the request's encoding.
pub(crate) fn status_body(encoding: Encoding, code: i32, message: String) -> Vec<u8> {
    let s = RpcStatus { code, message };
    match encoding {
        Encoding::Protobuf => s.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&s).unwrap_or_default(),
    }
}

/// OTLP attributes, as the mapping reads them.
struct Attrs<'a>(&'a [KeyValue]);

fn json(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.value {
        None => J::Null,
        Some(any_value::Value::StringValue(s)) => J::from(s.as_str()),
        Some(any_value::Value::BoolValue(b)) => J::from(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => J::from(*d),
        Some(any_value::Value::ArrayValue(a)) => J::Array(a.values.iter().map(json).collect()),
        Some(any_value::Value::KvlistValue(l)) => J::Object(
            l.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(J::Null, json)))
                .collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => J::from(hex(b)),
        Some(any_value::Value::StringValueStrindex(i)) => J::from(*i),
    }
}

fn value(v: &AnyValue) -> Option<Value<'_>> {
    Some(match v.value.as_ref()? {
        any_value::Value::StringValue(s) => Value::Str(s),
        any_value::Value::BoolValue(b) => Value::Bool(*b),
        any_value::Value::IntValue(i) => Value::Int(*i),
        any_value::Value::DoubleValue(d) => Value::Double(*d),
        _ => Value::Text(json(v).to_string()),
    })
}

/// An `AnyValue` as text: a string as it is, anything else as JSON.
fn text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(_) => v.map(|v| json(v).to_string()).unwrap_or_default(),
    }
}

impl Attributes for Attrs<'_> {
    fn get(&self, key: &str) -> Option<Value<'_>> {
        self.0
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| value(kv.value.as_ref()?))
    }

    fn each(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        for kv in self.0 {
            if let Some(v) = kv.value.as_ref().and_then(value) {
                f(&kv.key, v);
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(HEX[usize::from(x >> 4)] as char);
        s.push(HEX[usize::from(x & 15)] as char);
    }
    s
}

/// A W3C id as hex: `len` bytes, not all zero; `Ok(None)` when empty.
fn id(b: &[u8], len: usize, what: &str) -> Result<Option<String>, String> {
    if b.is_empty() {
        return Ok(None);
    }
    if b.len() != len || b.iter().all(|x| *x == 0) {
        return Err(format!("invalid {what}"));
    }
    Ok(Some(hex(b)))
}

fn time(nanos: u64) -> Option<SystemTime> {
    (nanos > 0).then(|| UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// The tags every item of a resource carries.
#[derive(Default)]
struct ResourceTags(Vec<(&'static str, String)>);

impl ResourceTags {
    /// Role, instance and version as [`tracelink_core::resource::resource_tags`] maps them
    /// (shared with the OpenTelemetry bridge), then the SDK that sent the data.
    fn of(resource: Option<&Resource>) -> Self {
        let attrs = Attrs(resource.map_or(&[][..], |r| &r.attributes));
        let get = |k: &str| attrs.get(k).map(|v| v.text().into_owned());
        let mut out = resource_tags(get);
        let get = |k: &str| get(k).filter(|s| !s.is_empty());
        let sdk = [
            get("telemetry.sdk.name"),
            get("telemetry.sdk.language"),
            get("telemetry.sdk.version"),
        ];
        let sdk: Vec<String> = sdk.into_iter().flatten().collect();
        out.push((
            tags::INTERNAL_SDK_VERSION,
            if sdk.is_empty() {
                "otlp".into()
            } else {
                format!("otlp:{}", sdk.join(":"))
            },
        ));
        Self(out)
    }

    fn apply(&self, t: &mut Telemetry) {
        for (k, v) in &self.0 {
            t.tags.insert(*k, v.clone());
        }
    }
}

/// Attributes whose key starts with `ai.` are Application Insights tags, not properties
/// (`ai.operation.name`, `ai.user.id`, ...), as in the Azure Monitor exporters.
fn ai_tags(t: &mut Telemetry) {
    let keys: Vec<String> = t
        .properties
        .keys()
        .filter(|k| k.starts_with("ai."))
        .cloned()
        .collect();
    for k in keys {
        if let Some(v) = t.properties.remove(&k) {
            t.tags.insert(k, v);
        }
    }
}

/// User, session and client address tags from span or record attributes.
fn user_tags(t: &mut Telemetry, a: &dyn Attributes, server: bool) {
    let get = |k: &str| {
        a.get(k)
            .map(|v| v.text().into_owned())
            .filter(|s| !s.is_empty())
    };
    if let Some(u) = get("enduser.pseudo.id").or_else(|| get("user.id")) {
        t.tags.insert(tags::USER_ID, u);
    }
    if let Some(u) = get("enduser.id") {
        t.tags.insert(tags::USER_AUTH_USER_ID, u);
    }
    if let Some(s) = get("session.id") {
        t.tags.insert(tags::SESSION_ID, s);
    }
    if server && let Some(ip) = get("client.address").or_else(|| get("http.client_ip")) {
        t.tags.insert(tags::LOCATION_IP, ip);
    }
}

fn too_many(lists: &[&[KeyValue]]) -> bool {
    lists.iter().any(|l| l.len() > MAX_ATTRIBUTES)
}

fn kind(k: i32) -> Kind {
    match span::SpanKind::try_from(k) {
        Ok(span::SpanKind::Server) => Kind::Server,
        Ok(span::SpanKind::Client) => Kind::Client,
        Ok(span::SpanKind::Producer) => Kind::Producer,
        Ok(span::SpanKind::Consumer) => Kind::Consumer,
        _ => Kind::Internal,
    }
}

/// The items of one span: its Request or Dependency, then its events.
fn span_items(
    s: &Span,
    resource: &ResourceTags,
    names: &HashMap<String, String>,
) -> Result<Vec<Telemetry>, String> {
    let mut lists: Vec<&[KeyValue]> = vec![&s.attributes];
    lists.extend(s.events.iter().map(|e| &e.attributes[..]));
    lists.extend(s.links.iter().map(|l| &l.attributes[..]));
    if too_many(&lists) {
        return Err(format!("more than {MAX_ATTRIBUTES} attributes"));
    }
    let trace_id = id(&s.trace_id, 16, "trace id")?.ok_or("missing trace id")?;
    let span_id = id(&s.span_id, 8, "span id")?.ok_or("missing span id")?;
    // An all-zero parent is no parent.
    let parent_id = match id(&s.parent_span_id, 8, "parent span id") {
        Ok(p) => p,
        Err(_) if s.parent_span_id.iter().all(|x| *x == 0) && s.parent_span_id.len() == 8 => None,
        Err(e) => return Err(e),
    };
    let attrs = Attrs(&s.attributes);
    let start = time(s.start_time_unix_nano).unwrap_or_else(SystemTime::now);
    let view = SpanView {
        span_id: span_id.clone(),
        name: &s.name,
        kind: kind(s.kind),
        start,
        end: time(s.end_time_unix_nano).unwrap_or(start),
        error: s
            .status
            .as_ref()
            .is_some_and(|st| st.code == status::StatusCode::Error as i32),
        attributes: &attrs,
    };
    let server = matches!(view.kind, Kind::Server | Kind::Consumer);
    let op_name = if server {
        Some(semconv::request_name(&view))
    } else {
        names.get(&trace_id).cloned()
    };
    let annotate = |t: &mut Telemetry, parent: Option<&String>| {
        resource.apply(t);
        t.tags.insert(tags::OPERATION_ID, trace_id.clone());
        if let Some(p) = parent {
            t.tags.insert(tags::OPERATION_PARENT_ID, p.clone());
        }
        if let Some(n) = &op_name {
            t.tags.insert(tags::OPERATION_NAME, n.clone());
        }
    };
    let mut item = semconv::span_item(&view);
    annotate(&mut item, parent_id.as_ref());
    user_tags(&mut item, &attrs, server);
    ai_tags(&mut item);
    let mut links = Vec::new();
    for l in &s.links {
        if let (Ok(Some(t)), Ok(Some(i))) = (id(&l.trace_id, 16, "link"), id(&l.span_id, 8, "link"))
        {
            links.push((t, i));
        }
    }
    if !links.is_empty() {
        item.properties.insert(
            tracelink_core::model::LINKS_PROPERTY.to_owned(),
            links_json(links.iter().map(|(t, i)| (t.as_str(), i.as_str()))),
        );
    }
    let mut out = vec![item];
    for e in &s.events {
        let mut t = semconv::event_item(
            &e.name,
            time(e.time_unix_nano).unwrap_or(start),
            &Attrs(&e.attributes),
        );
        annotate(&mut t, Some(&span_id));
        out.push(t);
    }
    Ok(out)
}

fn map_traces(req: ExportTraceServiceRequest) -> Mapped {
    let mut m = Mapped::default();
    // The name of each trace's server span in this request, for its other spans.
    let mut names: HashMap<String, String> = HashMap::new();
    for s in req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        let k = kind(s.kind);
        if matches!(k, Kind::Server | Kind::Consumer)
            && let Ok(Some(t)) = id(&s.trace_id, 16, "trace id")
        {
            let attrs = Attrs(&s.attributes);
            let view = SpanView {
                span_id: String::new(),
                name: &s.name,
                kind: k,
                start: UNIX_EPOCH,
                end: UNIX_EPOCH,
                error: false,
                attributes: &attrs,
            };
            // A root server span names its trace before any other.
            if s.parent_span_id.is_empty() || !names.contains_key(&t) {
                names.insert(t, semconv::request_name(&view));
            }
        }
    }
    for rs in &req.resource_spans {
        let resource = ResourceTags::of(rs.resource.as_ref());
        for s in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            m.received += 1;
            match span_items(s, &resource, &names) {
                Ok(items) => m.items.extend(items),
                Err(e) => m.reject(format!("span {:?}: {e}", s.name)),
            }
        }
    }
    m
}

/// A severity from its text when the number is unspecified.
fn severity_text(t: &str) -> Option<tracelink_core::model::SeverityLevel> {
    use tracelink_core::model::SeverityLevel as L;
    let t = t.trim().to_ascii_uppercase();
    Some(match t.as_str() {
        s if s.starts_with("TRACE") || s.starts_with("DEBUG") => L::Verbose,
        s if s.starts_with("INFO") => L::Information,
        s if s.starts_with("WARN") => L::Warning,
        s if s.starts_with("ERR") => L::Error,
        s if s.starts_with("FATAL") || s.starts_with("CRIT") => L::Critical,
        _ => return None,
    })
}

fn map_logs(req: ExportLogsServiceRequest) -> Mapped {
    let mut m = Mapped::default();
    for rl in &req.resource_logs {
        let resource = ResourceTags::of(rl.resource.as_ref());
        for r in rl.scope_logs.iter().flat_map(|s| &s.log_records) {
            m.received += 1;
            if too_many(&[&r.attributes]) {
                m.reject(format!("log record: more than {MAX_ATTRIBUTES} attributes"));
                continue;
            }
            let (trace, span) = match (
                id(&r.trace_id, 16, "trace id"),
                id(&r.span_id, 8, "span id"),
            ) {
                (Ok(t), Ok(s)) => (t, s),
                (Err(e), _) | (_, Err(e)) => {
                    m.reject(format!("log record: {e}"));
                    continue;
                }
            };
            let attrs = Attrs(&r.attributes);
            let severity =
                semconv::severity(r.severity_number).or_else(|| severity_text(&r.severity_text));
            let when = time(r.time_unix_nano)
                .or_else(|| time(r.observed_time_unix_nano))
                .unwrap_or_else(SystemTime::now);
            let mut t = semconv::log_item(text(r.body.as_ref()), severity, when, &attrs);
            resource.apply(&mut t);
            if let Some(trace) = trace {
                t.tags.insert(tags::OPERATION_ID, trace);
                if let Some(span) = span {
                    t.tags.insert(tags::OPERATION_PARENT_ID, span);
                }
            }
            user_tags(&mut t, &attrs, false);
            ai_tags(&mut t);
            m.items.push(t);
        }
    }
    m
}

fn map_metrics(req: ExportMetricsServiceRequest) -> Mapped {
    let mut m = Mapped::default();
    for rm in &req.resource_metrics {
        let resource = ResourceTags::of(rm.resource.as_ref());
        for metric in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            // (attributes, time, point) of each data point; `None`: no value.
            let mut points: Vec<(&[KeyValue], u64, Option<MetricPoint>)> = Vec::new();
            let distribution = |sum, count, min, max| {
                Some(MetricPoint::Distribution {
                    sum,
                    count,
                    min,
                    max,
                })
            };
            match &metric.data {
                Some(metric::Data::Gauge(Gauge { data_points, .. }))
                | Some(metric::Data::Sum(Sum { data_points, .. })) => {
                    points.extend(data_points.iter().map(|p| {
                        let value = number(p.value).map(MetricPoint::Number);
                        (&p.attributes[..], p.time_unix_nano, value)
                    }));
                }
                Some(metric::Data::Histogram(h)) => {
                    points.extend(h.data_points.iter().map(|p| {
                        let d = distribution(p.sum.unwrap_or(0.0), p.count, p.min, p.max);
                        (&p.attributes[..], p.time_unix_nano, d)
                    }));
                }
                Some(metric::Data::ExponentialHistogram(h)) => {
                    points.extend(h.data_points.iter().map(|p| {
                        let d = distribution(p.sum.unwrap_or(0.0), p.count, p.min, p.max);
                        (&p.attributes[..], p.time_unix_nano, d)
                    }));
                }
                Some(metric::Data::Summary(s)) => {
                    points.extend(s.data_points.iter().map(|p| {
                        let d = distribution(p.sum, p.count, None, None);
                        (&p.attributes[..], p.time_unix_nano, d)
                    }));
                }
                None => {}
            }
            for (attrs, when, p) in points {
                m.received += 1;
                let when = time(when).unwrap_or_else(SystemTime::now);
                // A point without a value is refused for that before its attributes count.
                let none: [(String, String); 0] = [];
                let Some(mut t) = p.and_then(|p| metric_item(&metric.name, p, when, none)) else {
                    m.reject(format!(
                        "metric {:?}: a data point without a value",
                        metric.name
                    ));
                    continue;
                };
                if too_many(&[attrs]) {
                    m.reject(format!(
                        "metric {:?}: more than {MAX_ATTRIBUTES} attributes",
                        metric.name
                    ));
                    continue;
                }
                resource.apply(&mut t);
                Attrs(attrs).each(&mut |k, v| {
                    t.properties.insert(k.to_owned(), v.text().into_owned());
                });
                m.items.push(t);
            }
        }
    }
    m
}

fn number(v: Option<number_data_point::Value>) -> Option<f64> {
    match v? {
        number_data_point::Value::AsDouble(d) => Some(d),
        number_data_point::Value::AsInt(i) => Some(i as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracelink_core::model::TelemetryData;

    const TRACES_JSON: &[u8] =
        include_bytes!("../../../tests/data/otlp/otel-js-2.12.1-traces.json");
    const TRACES_PB: &[u8] = include_bytes!("../../../tests/data/otlp/otel-js-2.12.1-traces.pb");
    const LOGS_PB: &[u8] = include_bytes!("../../../tests/data/otlp/otel-js-2.12.1-logs.pb");
    const METRICS_JSON: &[u8] =
        include_bytes!("../../../tests/data/otlp/otel-js-2.12.1-metrics.json");

    fn kinds(m: &Mapped) -> Vec<String> {
        let mut k: Vec<String> = m.items.iter().map(|t| format!("{:?}", t.kind())).collect();
        k.sort();
        k
    }

    #[test]
    fn js_sdk_bodies_in_both_encodings_map_alike() {
        let json = map(Signal::Traces, TRACES_JSON, Encoding::Json).unwrap();
        let pb = map(Signal::Traces, TRACES_PB, Encoding::Protobuf).unwrap();
        assert_eq!((json.received, json.rejected), (5, 0));
        assert_eq!((pb.received, pb.rejected), (5, 0));
        assert_eq!(kinds(&json), kinds(&pb));
        assert_eq!(
            kinds(&json),
            [
                "Dependency",
                "Dependency",
                "Dependency",
                "Dependency",
                "Exception",
                "Request",
                "Trace"
            ]
        );
        let request = json
            .items
            .iter()
            .find(|t| matches!(t.data, TelemetryData::Request(_)))
            .unwrap();
        assert_eq!(request.tags.get(tags::CLOUD_ROLE), Some("shop.checkout"));
        assert_eq!(
            request.tags.get(tags::CLOUD_ROLE_INSTANCE),
            Some("checkout-1")
        );
        assert_eq!(
            request.tags.get(tags::OPERATION_NAME),
            Some("POST /checkout")
        );
        let op = request.tags.get(tags::OPERATION_ID).unwrap();
        let id = request.id().unwrap();
        // Every other item is in the request's operation, under the request or its spans.
        for t in &json.items {
            assert_eq!(t.tags.get(tags::OPERATION_ID), Some(op));
            assert_eq!(t.tags.get(tags::OPERATION_NAME), Some("POST /checkout"));
        }
        let producer = json
            .items
            .iter()
            .find(|t| matches!(&t.data, TelemetryData::Dependency(d) if d.dependency_type == "Queue Message | kafka"))
            .unwrap();
        assert_eq!(producer.operation_parent_id(), Some(id));
        let links: serde_json::Value =
            serde_json::from_str(&producer.properties[tracelink_core::model::LINKS_PROPERTY])
                .unwrap();
        assert_eq!(links[0]["operation_Id"], "0af7651916cd43dd8448eb211c80319c");

        let logs = map(Signal::Logs, LOGS_PB, Encoding::Protobuf).unwrap();
        assert_eq!((logs.received, logs.rejected), (3, 0));
        let declined = logs
            .items
            .iter()
            .find(|t| matches!(&t.data, TelemetryData::Trace(m) if m.message == "payment declined"))
            .unwrap();
        assert_eq!(declined.operation_parent_id().map(str::len), Some(16));
        let metrics = map(Signal::Metrics, METRICS_JSON, Encoding::Json).unwrap();
        assert_eq!((metrics.received, metrics.rejected), (3, 0));
    }

    #[test]
    fn resource_names_and_ai_attributes() {
        let mut req = ExportTraceServiceRequest::decode(TRACES_PB).unwrap();
        let kv = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..KeyValue::default()
        };
        req.resource_spans[0].resource = Some(Resource {
            attributes: vec![
                kv("service.name", "unknown_service:node"),
                kv("k8s.deployment.name", "checkout-deploy"),
                kv("k8s.pod.name", "checkout-7f9c"),
            ],
            ..Resource::default()
        });
        req.resource_spans[0].scope_spans[0].spans[0]
            .attributes
            .push(kv("ai.user.id", "u-9"));
        let m = map_traces(req);
        let first = &m.items[0];
        assert_eq!(first.tags.get(tags::CLOUD_ROLE), Some("checkout-deploy"));
        assert_eq!(
            first.tags.get(tags::CLOUD_ROLE_INSTANCE),
            Some("checkout-7f9c")
        );
        assert_eq!(first.tags.get(tags::USER_ID), Some("u-9"));
        assert!(!first.properties.contains_key("ai.user.id"));
    }

    #[test]
    fn metric_points_and_resources_edge_cases() {
        use opentelemetry_proto::tonic::metrics::v1::{
            ExponentialHistogram, ExponentialHistogramDataPoint, Histogram, HistogramDataPoint,
            Metric as OtlpMetric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Summary,
            SummaryDataPoint,
        };
        use tracelink_core::model::DataPoint;

        let any = |v: any_value::Value| Some(AnyValue { value: Some(v) });
        let kv = |k: &str, v: any_value::Value| KeyValue {
            key: k.into(),
            value: any(v),
            ..KeyValue::default()
        };
        let s = |v: &str| any_value::Value::StringValue(v.into());
        let number =
            |v: Option<number_data_point::Value>, attributes: Vec<KeyValue>| NumberDataPoint {
                value: v,
                attributes,
                time_unix_nano: 1_000_000_000,
                ..NumberDataPoint::default()
            };
        let many: Vec<KeyValue> = (0..=MAX_ATTRIBUTES)
            .map(|i| kv(&format!("k{i}"), s("v")))
            .collect();
        let metric = |name: &str, data: metric::Data| OtlpMetric {
            name: name.into(),
            data: Some(data),
            ..OtlpMetric::default()
        };
        let metrics = vec![
            metric(
                "gauge",
                metric::Data::Gauge(Gauge {
                    data_points: vec![
                        number(
                            Some(number_data_point::Value::AsInt(3)),
                            vec![
                                kv("region", s("north")),
                                kv("n", any_value::Value::IntValue(2)),
                            ],
                        ),
                        number(None, vec![]),
                        number(
                            Some(number_data_point::Value::AsDouble(f64::NAN)),
                            many.clone(),
                        ),
                    ],
                }),
            ),
            metric(
                "sum",
                metric::Data::Sum(Sum {
                    data_points: vec![
                        number(Some(number_data_point::Value::AsDouble(1.5)), vec![]),
                        number(Some(number_data_point::Value::AsDouble(2.0)), many),
                    ],
                    ..Sum::default()
                }),
            ),
            metric(
                "histogram",
                metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        count: 4,
                        sum: None,
                        min: Some(1.0),
                        max: Some(9.0),
                        ..HistogramDataPoint::default()
                    }],
                    ..Histogram::default()
                }),
            ),
            metric(
                "exponential",
                metric::Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint {
                        count: 2,
                        sum: Some(f64::INFINITY),
                        ..ExponentialHistogramDataPoint::default()
                    }],
                    ..ExponentialHistogram::default()
                }),
            ),
            metric(
                "summary",
                metric::Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        count: 5,
                        sum: 10.0,
                        ..SummaryDataPoint::default()
                    }],
                }),
            ),
        ];
        let resource = Resource {
            attributes: vec![
                kv("service.name", any_value::Value::IntValue(7)),
                kv("service.namespace", s("")),
                kv("service.instance.id", s("")),
                kv("host.name", s("h1")),
                kv("telemetry.sdk.name", s("opentelemetry")),
                kv("telemetry.sdk.version", s("1.0")),
            ],
            ..Resource::default()
        };
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![
                ResourceMetrics {
                    resource: Some(resource),
                    scope_metrics: vec![ScopeMetrics {
                        metrics,
                        ..ScopeMetrics::default()
                    }],
                    ..ResourceMetrics::default()
                },
                ResourceMetrics {
                    scope_metrics: vec![ScopeMetrics {
                        metrics: vec![metric(
                            "bare",
                            metric::Data::Gauge(Gauge {
                                data_points: vec![NumberDataPoint {
                                    value: Some(number_data_point::Value::AsInt(-1)),
                                    ..NumberDataPoint::default()
                                }],
                            }),
                        )],
                        ..ScopeMetrics::default()
                    }],
                    ..ResourceMetrics::default()
                },
            ],
        };
        let m = map_metrics(req);
        assert_eq!((m.received, m.rejected), (9, 4));
        assert_eq!(
            m.reason.as_deref(),
            Some("metric \"gauge\": a data point without a value")
        );
        let point = |t: &Telemetry| -> DataPoint {
            let TelemetryData::Metric(metric) = &t.data else {
                panic!("{t:?}")
            };
            metric.metrics[0].clone()
        };
        let got: Vec<_> = m
            .items
            .iter()
            .map(|t| {
                let p = point(t);
                (p.name.clone(), p.value, p.count, p.min, p.max)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("gauge".to_string(), 3.0, None, None, None),
                ("sum".to_string(), 1.5, None, None, None),
                ("histogram".to_string(), 0.0, Some(4), Some(1.0), Some(9.0)),
                ("summary".to_string(), 10.0, Some(5), None, None),
                ("bare".to_string(), -1.0, None, None, None),
            ]
        );
        let gauge = &m.items[0];
        assert_eq!(gauge.time, UNIX_EPOCH + Duration::from_secs(1));
        assert_eq!(gauge.properties["region"], "north");
        assert_eq!(gauge.properties["n"], "2");
        assert_eq!(gauge.tags.get(tags::CLOUD_ROLE), Some("7"));
        assert_eq!(gauge.tags.get(tags::CLOUD_ROLE_INSTANCE), Some("h1"));
        assert_eq!(gauge.tags.get(tags::APPLICATION_VERSION), None);
        assert_eq!(
            gauge.tags.get(tags::INTERNAL_SDK_VERSION),
            Some("otlp:opentelemetry:1.0")
        );
        let bare = &m.items[4];
        assert_eq!(bare.tags.get(tags::CLOUD_ROLE), None);
        assert_eq!(bare.tags.get(tags::INTERNAL_SDK_VERSION), Some("otlp"));
        assert!(bare.time > UNIX_EPOCH + Duration::from_secs(1));
    }

    #[test]
    fn bad_bodies_and_items() {
        for body in [&TRACES_PB[..TRACES_PB.len() / 2], b"\xff\xff\xff\xff\x0f"] {
            assert!(map(Signal::Traces, body, Encoding::Protobuf).is_err());
        }
        assert!(
            map(
                Signal::Traces,
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":42}]}]}]}"#,
                Encoding::Json
            )
            .is_err()
        );
        assert!(map(Signal::Traces, b"[", Encoding::Json).is_err());
        let mut req = ExportTraceServiceRequest::decode(TRACES_PB).unwrap();
        let spans = &mut req.resource_spans[0].scope_spans[0].spans;
        spans[0].trace_id = vec![1, 2, 3];
        spans[1].attributes = (0..10_000)
            .map(|i| KeyValue {
                key: format!("k{i}"),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("v".into())),
                }),
                ..KeyValue::default()
            })
            .collect();
        let m = map(Signal::Traces, &req.encode_to_vec(), Encoding::Protobuf).unwrap();
        assert_eq!((m.received, m.rejected), (5, 2));
        assert!(m.reason.unwrap().contains("invalid trace id"));
        let answer = response(
            Signal::Traces,
            Encoding::Json,
            &map(Signal::Traces, &req.encode_to_vec(), Encoding::Protobuf).unwrap(),
        );
        let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(v["partialSuccess"]["rejectedSpans"], 2);
    }
}
