//! How one OpenTelemetry span becomes items (the table is on `TracelinkSpanExporter`): span
//! kinds, semantic-convention attributes, events, links, and the Resource.

use std::borrow::Cow;

use opentelemetry::trace::{Event, SpanKind, Status};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use tracelink_core::model::{
    Dependency, Exception, ExceptionDetails, Request, SeverityLevel, Telemetry, Trace, tags,
};
use tracelink_core::{SamplingDecision, SpanId, TraceId};

/// The attribute tracelink's layers put on spans they reported themselves: the exporter
/// skips a span whose `tracelink.reported` is `true`.
pub const REPORTED_ATTRIBUTE: &str = "tracelink.reported";

/// The attribute naming the item a span is reported under when that is not its
/// OpenTelemetry parent: [`OperationNames`](crate::OperationNames) sets it on spans that
/// start inside a request tracelink handles but took the caller's context from the request's
/// headers (an OpenTelemetry server middleware placed inside `CorrelationLayer`, or the
/// remote context it makes current). Its value is the request's id.
pub const PARENT_ATTRIBUTE: &str = "tracelink.parent_id";

/// Attributes whose key starts with this are Application Insights tags, not properties
/// (`ai.operation.name`, `ai.user.id`, ...), as in the Azure Monitor exporters.
const TAG_PREFIX: &str = "ai.";

/// What the exporter adds to or leaves out of the items of every span.
#[derive(Clone, Debug, Default)]
pub(crate) struct MapConfig {
    /// Whether span events that `tracing-opentelemetry` made from `tracing` events are
    /// mapped too (without `TracelinkLayer`, which records them itself).
    pub(crate) tracing_events: bool,
    /// Tags from the provider's Resource.
    pub(crate) resource: Vec<(&'static str, String)>,
}

impl MapConfig {
    /// The tags the Resource gives every item, as the Azure Monitor exporters map them:
    /// `service.namespace` + `.` + `service.name` is `ai.cloud.role` (the SDK's default
    /// `unknown_service…` names none: a Kubernetes workload name is used then, if any),
    /// `k8s.pod.name`, `service.instance.id` or `host.name` is `ai.cloud.roleInstance`, and
    /// `service.version` is `ai.application.ver` ([`tracelink_core::resource::resource_tags`],
    /// shared with the collector).
    pub(crate) fn set_resource(&mut self, resource: &Resource) {
        let out = tracelink_core::resource::resource_tags(|key| {
            resource
                .get(&opentelemetry::Key::new(key.to_owned()))
                .map(|v| v.as_str().into_owned())
        });
        self.resource = out;
    }
}

/// Whether a span is reported as a Request.
pub(crate) fn is_server(s: &SpanData) -> bool {
    matches!(s.span_kind, SpanKind::Server | SpanKind::Consumer)
}

/// Whether a span was reported by tracelink's own layers.
pub(crate) fn is_reported(s: &SpanData) -> bool {
    s.attributes
        .iter()
        .any(|kv| kv.key.as_str() == REPORTED_ATTRIBUTE && kv.value == Value::Bool(true))
}

/// A server span that started inside a request tracelink handles (an OpenTelemetry server
/// middleware inside `CorrelationLayer`): reported as an `InProc` dependency of the request,
/// so that a request is one Request item. It started under the request's span (a local
/// parent, and the request's name copied onto it by `OperationNames`), or under the request's
/// caller ([`PARENT_ATTRIBUTE`]).
fn is_nested_server(s: &SpanData) -> bool {
    let local_parent =
        s.parent_span_id != opentelemetry::trace::SpanId::INVALID && !s.parent_span_is_remote;
    s.span_kind == SpanKind::Server
        && (attr(&s.attributes, &[PARENT_ATTRIBUTE]).is_some()
            || (local_parent && attr(&s.attributes, &[tags::OPERATION_NAME]).is_some()))
}

/// The operation name a span carries as an attribute (set when it started inside a request).
pub(crate) fn carried_operation_name(s: &SpanData) -> Option<String> {
    text(&s.attributes, &[tags::OPERATION_NAME])
}

/// Whether a span event is one `tracing-opentelemetry` made from a `tracing` event: it
/// carries the event's `level` and `target`.
fn is_tracing_event(e: &Event) -> bool {
    let level = attr(&e.attributes, &["level"]).is_some_and(|v| {
        matches!(
            v.as_str().as_ref(),
            "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR"
        )
    });
    level && attr(&e.attributes, &["target"]).is_some()
}

/// An attribute by its first present name.
fn attr<'a>(attrs: &'a [KeyValue], names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| {
        attrs
            .iter()
            .find(|kv| kv.key.as_str() == *n)
            .map(|kv| &kv.value)
    })
}

fn text(attrs: &[KeyValue], names: &[&str]) -> Option<String> {
    attr(attrs, names)
        .map(|v| v.as_str().into_owned())
        .filter(|s| !s.is_empty())
}

/// A status code attribute as `responseCode`/`resultCode` text (no allocation for 100-999).
fn http_status(code: i64) -> Cow<'static, str> {
    u16::try_from(code).map_or_else(
        |_| code.to_string().into(),
        tracelink_core::model::status_code,
    )
}

fn status_code(attrs: &[KeyValue]) -> Option<i64> {
    match attr(attrs, &["http.response.status_code", "http.status_code"])? {
        Value::I64(i) => Some(*i),
        v => v.as_str().parse().ok(),
    }
}

fn method(attrs: &[KeyValue]) -> Option<String> {
    text(attrs, &["http.request.method", "http.method"])
}

/// An absolute URL from whichever attributes are there; `None` without a host.
fn url(attrs: &[KeyValue], server: bool) -> Option<String> {
    if let Some(full) = text(attrs, &["url.full", "http.url"])
        && full.contains("://")
        && !full.starts_with("://")
    {
        return Some(full);
    }
    let scheme = text(attrs, &["url.scheme", "http.scheme"]).unwrap_or_else(|| "http".into());
    let host = if server {
        text(attrs, &["server.address", "http.host", "net.host.name"])
    } else {
        text(attrs, &["server.address", "net.peer.name", "http.host"])
    }?;
    let port =
        attr(attrs, &["server.port", "net.host.port", "net.peer.port"]).and_then(|v| match v {
            Value::I64(p) => Some(*p),
            v => v.as_str().parse().ok(),
        });
    let path = match text(attrs, &["url.path"]) {
        Some(p) => match text(attrs, &["url.query"]) {
            Some(q) => format!("{p}?{q}"),
            None => p,
        },
        None => text(attrs, &["http.target"]).unwrap_or_else(|| "/".into()),
    };
    let authority = match port {
        Some(p) if p != 80 && p != 443 && !host.contains(':') => format!("{host}:{p}"),
        _ => host,
    };
    Some(format!("{scheme}://{authority}{path}"))
}

/// `METHOD <route>` for an HTTP server span, else the span's name.
pub(crate) fn request_name(s: &SpanData) -> String {
    match (method(&s.attributes), text(&s.attributes, &["http.route"])) {
        (Some(m), Some(route)) => format!("{m} {route}"),
        _ => s.name.to_string(),
    }
}

fn success(s: &SpanData, status: Option<i64>, server: bool) -> bool {
    match status {
        Some(c) if server => c < 400,
        Some(c) => c > 0 && c < 400,
        None => !matches!(s.status, Status::Error { .. }),
    }
}

fn hex16(b: [u8; 16]) -> String {
    TraceId::from_bytes(b)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn hex8(b: [u8; 8]) -> Option<String> {
    SpanId::from_bytes(b).map(|s| s.to_string())
}

fn duration(s: &SpanData) -> std::time::Duration {
    s.end_time.duration_since(s.start_time).unwrap_or_default()
}

/// The Request of a server span.
fn request(s: &SpanData, id: String, status: Option<i64>) -> Telemetry {
    let mut r = Request::default();
    r.id = id;
    r.name = request_name(s);
    r.url = url(&s.attributes, true).unwrap_or_default();
    r.duration = duration(s);
    r.response_code = status.map_or(Cow::Borrowed("0"), http_status);
    r.success = success(s, status, true);
    Telemetry::new(r)
}

/// The Dependency of any other span.
fn dependency(s: &SpanData, id: String, status: Option<i64>, nested: bool) -> Telemetry {
    let a = &s.attributes;
    let http = method(a).is_some() || status.is_some();
    let mut d = Dependency::default();
    d.id = id;
    d.duration = duration(s);
    d.success = success(s, status, nested);
    match s.span_kind {
        SpanKind::Internal => {
            d.name = s.name.to_string();
            d.dependency_type = "InProc".into();
        }
        SpanKind::Server => {
            d.name = request_name(s);
            d.dependency_type = "InProc".into();
            d.data = url(a, true).unwrap_or_default();
            d.result_code = status.map_or(Cow::Borrowed(""), http_status);
        }
        _ if http => {
            let full = url(a, false);
            let parts = full.as_deref().and_then(tracelink_core::url::Parts::parse);
            d.name = match (method(a), parts.map(|p| p.path().to_owned())) {
                (Some(m), Some(p)) => format!("{m} {p}"),
                _ => s.name.to_string(),
            };
            d.target = parts.map(|p| p.host_port()).unwrap_or_default();
            d.data = full.unwrap_or_default();
            d.dependency_type = "Http".into();
            d.result_code = status.map_or(Cow::Borrowed(""), http_status);
        }
        _ => {
            d.name = s.name.to_string();
            d.dependency_type = text(
                a,
                &[
                    "db.system.name",
                    "db.system",
                    "messaging.system",
                    "rpc.system",
                ],
            )
            .unwrap_or_else(|| format!("{:?}", s.span_kind));
            d.data = text(a, &["db.query.text", "db.statement", "rpc.method"]).unwrap_or_default();
            d.target = text(a, &["server.address", "net.peer.name"]).unwrap_or_default();
        }
    }
    Telemetry::new(d)
}

/// The Exception or Trace of one span event.
fn event_item(e: &Event) -> Telemetry {
    let ea = &e.attributes;
    if e.name == "exception" {
        let mut x = Exception::default();
        x.exceptions.push({
            let mut d = ExceptionDetails::default();
            d.type_name = text(ea, &["exception.type"]).unwrap_or_else(|| "Error".into());
            d.message = text(ea, &["exception.message"]).unwrap_or_default();
            d.stack = text(ea, &["exception.stacktrace"]).unwrap_or_default();
            d
        });
        x.severity = Some(SeverityLevel::Error);
        Telemetry::new(x)
    } else {
        let severity = match text(ea, &["level"]).as_deref() {
            Some("ERROR") => SeverityLevel::Error,
            Some("WARN") => SeverityLevel::Warning,
            Some("DEBUG" | "TRACE") => SeverityLevel::Verbose,
            _ => SeverityLevel::Information,
        };
        Telemetry::new(Trace::new(e.name.to_string(), severity))
    }
}

/// The items of one span, with the default configuration: its Request or Dependency, then
/// its events (see [`TracelinkSpanExporter`](crate::TracelinkSpanExporter) for the mapping).
/// A span carrying [`REPORTED_ATTRIBUTE`] has no item of its own. `operation_name` is the
/// name of its operation (its server span's), when known.
pub fn map_span(s: &SpanData, operation_name: Option<String>) -> Vec<Telemetry> {
    map_span_with(s, operation_name, &MapConfig::default())
}

/// The items of one span.
pub(crate) fn map_span_with(
    s: &SpanData,
    operation_name: Option<String>,
    config: &MapConfig,
) -> Vec<Telemetry> {
    let a = &s.attributes;
    let id = hex8(s.span_context.span_id().to_bytes()).unwrap_or_default();
    let parent = text(a, &[PARENT_ATTRIBUTE]).or_else(|| hex8(s.parent_span_id.to_bytes()));
    let status = status_code(a);
    let nested = is_nested_server(s);
    let request_item = is_server(s) && !nested;
    let op_name = if request_item {
        Some(request_name(s))
    } else {
        carried_operation_name(s).or(operation_name)
    };
    let mut item = match request_item {
        true => request(s, id.clone(), status),
        false => dependency(s, id.clone(), status, nested),
    };
    item.time = s.start_time;
    let trace = hex16(s.span_context.trace_id().to_bytes());
    // Tags every item of the span gets: operation, Resource, and the span's `ai.*` attributes
    // (the operation's user context, copied when the span started).
    let carried: Vec<(&KeyValue, &str)> = a
        .iter()
        .filter_map(|kv| {
            let key = kv.key.as_str();
            (key.starts_with(TAG_PREFIX) && key != tags::OPERATION_NAME).then_some((kv, key))
        })
        .collect();
    let annotate = |t: &mut Telemetry, parent: Option<&String>| {
        t.tags.insert(tags::OPERATION_ID, trace.clone());
        if let Some(p) = parent {
            t.tags.insert(tags::OPERATION_PARENT_ID, p.clone());
        }
        if let Some(n) = &op_name {
            t.tags.insert(tags::OPERATION_NAME, n.clone());
        }
        for (key, value) in &config.resource {
            t.tags.insert(*key, value.clone());
        }
        for (kv, key) in &carried {
            t.tags
                .insert(key.to_string(), kv.value.as_str().into_owned());
        }
        t.tags.insert(tags::INTERNAL_SDK_VERSION, tags::SDK_VERSION);
        // The SDK sampled the span already: it is kept at 100 % here.
        t.sample_rate = Some(SamplingDecision::KEEP_ALL.percentage());
    };
    annotate(&mut item, parent.as_ref());
    for kv in a.iter().filter(|kv| {
        let key = kv.key.as_str();
        key != REPORTED_ATTRIBUTE && key != PARENT_ATTRIBUTE && !key.starts_with(TAG_PREFIX)
    }) {
        item.properties
            .insert(kv.key.to_string(), kv.value.as_str().into_owned());
    }
    if !s.links.is_empty() {
        let links: Vec<(String, String)> = s
            .links
            .iter()
            .map(|l| {
                let c = &l.span_context;
                (
                    hex16(c.trace_id().to_bytes()),
                    hex8(c.span_id().to_bytes()).unwrap_or_default(),
                )
            })
            .collect();
        item.properties.insert(
            tracelink_core::model::LINKS_PROPERTY.to_owned(),
            tracelink_core::model::links_json(links.iter().map(|(o, i)| (o.as_str(), i.as_str()))),
        );
    }
    // A span tracelink reported itself (its request) has only its events mapped.
    let mut out = match is_reported(s) {
        true => Vec::new(),
        false => vec![item],
    };
    for e in s
        .events
        .iter()
        .filter(|e| config.tracing_events || !is_tracing_event(e))
    {
        let mut t = event_item(e);
        t.time = e.timestamp;
        annotate(&mut t, Some(&id));
        for kv in e
            .attributes
            .iter()
            .filter(|kv| !kv.key.as_str().starts_with("exception."))
        {
            t.properties
                .insert(kv.key.to_string(), kv.value.as_str().into_owned());
        }
        out.push(t);
    }
    out
}
