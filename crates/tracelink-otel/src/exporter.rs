//! An OpenTelemetry [`SpanExporter`] that maps spans onto the Application Insights data
//! model and sends the items into a tracelink [`TelemetrySink`] (the exporter channel, or a
//! `MemorySink` in tests).
//!
//! | span kind | item |
//! |---|---|
//! | Server, Consumer | Request |
//! | Client, Producer | Dependency (`Http` for HTTP, else the `db.system` / `messaging.system` / `rpc.system`) |
//! | Internal | Dependency of type `InProc` |
//! | event `exception` | Exception (`exception.type`, `exception.message`, `exception.stacktrace`) |
//! | other events | Trace (severity from a `level` attribute, as `tracing-opentelemetry` writes it) |
//!
//! - HTTP attributes are read under their current and their old semantic-convention names
//!   (`http.request.method`/`http.method`, `http.response.status_code`/`http.status_code`,
//!   `url.full`/`http.url`, `url.scheme`/`http.scheme`, `server.address`/`net.host.name`/
//!   `http.host`, `url.path`+`url.query`/`http.target`, ...).
//! - With an HTTP status, success is `status < 400` for requests and `0 < status < 400` for
//!   dependencies (a 404 is a failed request), whatever the span status; without one, success is
//!   a span status other than `Error`.
//! - URLs are always absolute: a missing or empty scheme is `http`, never `://host`.
//! - `ai.operation.name` is set on every item of an operation: the name of its server span,
//!   remembered per trace (server spans of a batch are read first). Spans that end before
//!   their server span is exported (children, in an earlier batch) get it too when the span
//!   processor that feeds the exporter is wrapped in [`OperationNames`]: they wait for it (see
//!   [`crate::operations`]).
//! - Spans with the attribute [`REPORTED_ATTRIBUTE`] `= true` were reported by tracelink's own
//!   layers and are skipped, so nothing is reported twice.
//! - Field limits are applied when items are serialized (multi-byte text never panics).

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};
use tracelink_core::model::{
    Dependency, Exception, ExceptionDetails, Request, SeverityLevel, Telemetry, Trace, tags,
};
use tracelink_core::{SamplingDecision, TelemetrySink};

use crate::operations::{self, OperationNames, Operations, trace_of};

/// The attribute tracelink's layers put on spans they reported themselves.
pub const REPORTED_ATTRIBUTE: &str = "tracelink.reported";

/// The exporter; see the module docs.
#[derive(Clone)]
pub struct TracelinkSpanExporter {
    sink: Arc<dyn TelemetrySink>,
    pub(crate) ops: Arc<Mutex<Operations>>,
}

impl std::fmt::Debug for TracelinkSpanExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracelinkSpanExporter")
            .finish_non_exhaustive()
    }
}

impl TracelinkSpanExporter {
    /// Sends the items of exported spans to `sink`.
    pub fn new(sink: impl TelemetrySink) -> Self {
        Self {
            sink: Arc::new(sink),
            ops: Arc::default(),
        }
    }

    /// Wraps the span processor that feeds this exporter so that spans that end before their
    /// operation's server span get its name (see [`OperationNames`]); register what it
    /// returns instead of `processor`.
    ///
    /// ```
    /// use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor};
    /// use tracelink_core::MemorySink;
    /// use tracelink_otel::TracelinkSpanExporter;
    ///
    /// let exporter = TracelinkSpanExporter::new(MemorySink::new());
    /// let simple = SimpleSpanProcessor::new(exporter.clone());
    /// let provider = SdkTracerProvider::builder()
    ///     .with_span_processor(exporter.operation_names(simple))
    ///     .build();
    /// # let _ = provider.shutdown();
    /// ```
    pub fn operation_names<P: SpanProcessor>(&self, processor: P) -> OperationNames<P> {
        OperationNames::new(processor, self.clone())
    }

    /// How long a span may wait for its operation's name (default
    /// [`DEFAULT_MAX_HOLD`](crate::DEFAULT_MAX_HOLD)); after that it is sent without it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tracelink_core::MemorySink;
    /// use tracelink_otel::TracelinkSpanExporter;
    ///
    /// let exporter = TracelinkSpanExporter::new(MemorySink::new()).max_hold(Duration::from_secs(5));
    /// # let _ = exporter;
    /// ```
    pub fn max_hold(self, max_hold: Duration) -> Self {
        operations::lock(&self.ops).set_max_hold(max_hold);
        self
    }

    /// The items of one span: its Request or Dependency, then its events.
    pub fn items(&self, span: &SpanData) -> Vec<Telemetry> {
        let name = operations::lock(&self.ops).name(trace_of(span));
        map_span(span, name)
    }

    pub(crate) fn sink(&self) -> Arc<dyn TelemetrySink> {
        Arc::clone(&self.sink)
    }

    pub(crate) fn send(&self, spans: Vec<(SpanData, Option<String>)>) {
        send(&*self.sink, spans);
    }

    /// The spans to send now, each with its operation's name; holds the others.
    fn ready(&self, batch: Vec<SpanData>, all: bool) -> Vec<(SpanData, Option<String>)> {
        let mut ops = operations::lock(&self.ops);
        let mut ready = ops.ended(&batch);
        let now = Instant::now();
        let reported = |s: &SpanData| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == REPORTED_ATTRIBUTE && kv.value == Value::Bool(true))
        };
        ready.extend(
            batch
                .into_iter()
                .filter(|s| !reported(s))
                .filter_map(|s| ops.hold_or_pass(s, now)),
        );
        ready.extend(match all {
            true => ops.release_all(),
            false => ops.release_due(now),
        });
        ops.named(ready)
    }
}

/// Maps spans, each with its operation's name, into `sink`.
pub(crate) fn send(sink: &dyn TelemetrySink, spans: Vec<(SpanData, Option<String>)>) {
    for (span, name) in spans {
        for item in map_span(&span, name) {
            sink.send(item);
        }
    }
}

impl SpanExporter for TracelinkSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let ready = self.ready(batch, false);
        self.send(ready);
        Ok(())
    }

    /// Sends the spans held for their operation's name (with it when known).
    fn force_flush(&self) -> OTelSdkResult {
        let ready = self.ready(Vec::new(), true);
        self.send(ready);
        Ok(())
    }

    /// Sends the spans held for their operation's name (with it when known).
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.force_flush()
    }
}

pub(crate) fn is_server(s: &SpanData) -> bool {
    matches!(s.span_kind, SpanKind::Server | SpanKind::Consumer)
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
    tracelink_core::TraceId::from_bytes(b)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn hex8(b: [u8; 8]) -> Option<String> {
    tracelink_core::SpanId::from_bytes(b).map(|s| s.to_string())
}

fn duration(s: &SpanData) -> std::time::Duration {
    s.end_time.duration_since(s.start_time).unwrap_or_default()
}

/// Maps one span (see the module docs). `operation_name` is the name of its operation.
pub fn map_span(s: &SpanData, operation_name: Option<String>) -> Vec<Telemetry> {
    let a = &s.attributes;
    let id = hex8(s.span_context.span_id().to_bytes()).unwrap_or_default();
    let parent = hex8(s.parent_span_id.to_bytes());
    let status = status_code(a);
    let server = is_server(s);
    let op_name = if server {
        Some(request_name(s))
    } else {
        operation_name
    };
    let mut item = if server {
        let mut r = Request::default();
        r.id = id.clone();
        r.name = request_name(s);
        r.url = url(a, true).unwrap_or_default();
        r.duration = duration(s);
        r.response_code = status.map_or(Cow::Borrowed("0"), http_status);
        r.success = success(s, status, true);
        Telemetry::new(r)
    } else {
        let http = method(a).is_some() || status.is_some();
        let mut d = Dependency::default();
        d.id = id.clone();
        d.duration = duration(s);
        d.success = success(s, status, false);
        match s.span_kind {
            SpanKind::Internal => {
                d.name = s.name.to_string();
                d.dependency_type = "InProc".into();
            }
            _ if http => {
                let full = url(a, false);
                let path = full
                    .as_deref()
                    .and_then(tracelink_core::url::Parts::parse)
                    .map(|p| p.path().to_owned());
                d.name = match (method(a), path) {
                    (Some(m), Some(p)) => format!("{m} {p}"),
                    _ => s.name.to_string(),
                };
                d.target = full
                    .as_deref()
                    .and_then(tracelink_core::url::Parts::parse)
                    .map(|p| p.host_port())
                    .unwrap_or_default();
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
                d.data =
                    text(a, &["db.query.text", "db.statement", "rpc.method"]).unwrap_or_default();
                d.target = text(a, &["server.address", "net.peer.name"]).unwrap_or_default();
            }
        }
        Telemetry::new(d)
    };
    item.time = s.start_time;
    let trace = hex16(s.span_context.trace_id().to_bytes());
    let annotate = |t: &mut Telemetry, parent: Option<&String>| {
        t.tags.insert(tags::OPERATION_ID, trace.clone());
        if let Some(p) = parent {
            t.tags.insert(tags::OPERATION_PARENT_ID, p.clone());
        }
        if let Some(n) = &op_name {
            t.tags.insert(tags::OPERATION_NAME, n.clone());
        }
        t.tags.insert(tags::INTERNAL_SDK_VERSION, tags::SDK_VERSION);
        // The SDK sampled the span already: it is kept at 100 % here.
        t.sample_rate = Some(SamplingDecision::KEEP_ALL.percentage());
    };
    annotate(&mut item, parent.as_ref());
    for kv in a.iter().filter(|kv| kv.key.as_str() != REPORTED_ATTRIBUTE) {
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
    let mut out = vec![item];
    for e in s.events.iter() {
        let ea = &e.attributes;
        let mut t = if e.name == "exception" {
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
        };
        t.time = e.timestamp;
        annotate(&mut t, Some(&id));
        for kv in ea
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
