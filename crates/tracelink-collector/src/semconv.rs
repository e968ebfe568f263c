//! OpenTelemetry spans, span events and log records onto the Application Insights data model,
//! following the Azure Monitor OpenTelemetry exporters: over a neutral view of a span
//! ([`SpanView`]) and of attributes ([`Attributes`]), so that any representation (an OTLP
//! message here, the SDK's `SpanData` elsewhere) maps the same way. It depends on
//! `tracelink-core` and `std` only.
//!
//! | span kind | item |
//! |---|---|
//! | `SERVER`, `CONSUMER` | Request: name `METHOD route` for HTTP, else the span name; `responseCode` the HTTP status, the gRPC status, else `0` |
//! | `CLIENT`, `PRODUCER` | Dependency: type `Http` (HTTP attributes), the database system (`db.system.name`, `db.system`; `SQL` for SQL Server), `Queue Message \| <messaging.system>`, the RPC system (`GRPC` for gRPC), else the kind |
//! | `INTERNAL` | Dependency of type `InProc` |
//! | event `exception` | Exception (`exception.type`, `exception.message`, `exception.stacktrace`), parent = the span |
//! | other events | Trace (the event name), parent = the span |
//! | log record | Trace (body; severity number → level), or Exception with `exception.*` attributes, or Event with `microsoft.custom_event.name`; parent = its span |
//!
//! - HTTP attributes are read under their current and their old names (`http.request.method`
//!   or `http.method`, `http.response.status_code` or `http.status_code`, `url.full` or
//!   `http.url`, ...). With a status code, success is `status < 400` for requests and
//!   `0 < status < 400` for dependencies; without one, a span status other than `ERROR`.
//! - Dependency targets: `host[:port]` for HTTP and RPC, `host[:port] | db.namespace` for
//!   databases, `host/destination` for messaging.
//! - Span attributes become properties; span links become [`LINKS_PROPERTY`].
//!
//! [`LINKS_PROPERTY`]: tracelink_core::model::LINKS_PROPERTY

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use tracelink_core::model::{
    Dependency, Event, Exception, ExceptionDetails, Request, SeverityLevel, Telemetry, Trace,
    status_code,
};

/// One attribute value as the mapping reads it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Arrays, maps and bytes, already as text.
    Text(String),
}

impl Value<'_> {
    /// The value as text.
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self {
            Value::Str(s) => Cow::Borrowed(s),
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Double(d) => Cow::Owned(d.to_string()),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Value::Text(s) => Cow::Borrowed(s),
        }
    }

    fn int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Double(d) if d.fract() == 0.0 => Some(*d as i64),
            other => other.text().trim().parse().ok(),
        }
    }
}

/// Attributes, looked up by key and listed.
pub(crate) trait Attributes {
    /// The value of `key`.
    fn get(&self, key: &str) -> Option<Value<'_>>;
    /// Every attribute, in order.
    fn each(&self, f: &mut dyn FnMut(&str, Value<'_>));
}

/// The value of the first of `keys` present.
fn first<'a>(a: &'a dyn Attributes, keys: &[&str]) -> Option<Value<'a>> {
    keys.iter().find_map(|k| a.get(k))
}

/// The text of the first of `keys` present, when not empty.
fn text(a: &dyn Attributes, keys: &[&str]) -> Option<String> {
    first(a, keys)
        .map(|v| v.text().into_owned())
        .filter(|s| !s.is_empty())
}

fn int(a: &dyn Attributes, keys: &[&str]) -> Option<i64> {
    first(a, keys).and_then(|v| v.int())
}

/// The kind of a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

/// What the mapping needs of one span.
pub(crate) struct SpanView<'a> {
    /// 16 hex digits: the item's id. Its trace and parent are tags the caller sets.
    pub(crate) span_id: String,
    pub(crate) name: &'a str,
    pub(crate) kind: Kind,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    /// The span status is `ERROR`.
    pub(crate) error: bool,
    pub(crate) attributes: &'a dyn Attributes,
}

impl SpanView<'_> {
    fn duration(&self) -> Duration {
        self.end.duration_since(self.start).unwrap_or_default()
    }

    fn server(&self) -> bool {
        matches!(self.kind, Kind::Server | Kind::Consumer)
    }
}

fn method(a: &dyn Attributes) -> Option<String> {
    text(a, &["http.request.method", "http.method"])
}

fn http_status(a: &dyn Attributes) -> Option<i64> {
    int(a, &["http.response.status_code", "http.status_code"])
}

/// `host[:port]` from `server.address`/`server.port` (or their old names).
fn host_port(a: &dyn Attributes) -> Option<String> {
    let host = text(a, &["server.address", "net.peer.name", "net.host.name"])?;
    match int(a, &["server.port", "net.peer.port", "net.host.port"]) {
        Some(p) if p != 80 && p != 443 && !host.contains(':') => Some(format!("{host}:{p}")),
        _ => Some(host),
    }
}

/// An absolute URL from whichever attributes are there; `None` without a host.
fn url(a: &dyn Attributes, server: bool) -> Option<String> {
    if let Some(full) = text(a, &["url.full", "http.url"])
        && full.contains("://")
        && !full.starts_with("://")
    {
        return Some(full);
    }
    let scheme = text(a, &["url.scheme", "http.scheme"]).unwrap_or_else(|| "http".into());
    let authority = if server {
        text(a, &["http.host"]).or_else(|| host_port(a))
    } else {
        host_port(a).or_else(|| text(a, &["http.host"]))
    }?;
    let path = match text(a, &["url.path"]) {
        Some(p) => match text(a, &["url.query"]) {
            Some(q) => format!("{p}?{q}"),
            None => p,
        },
        None => text(a, &["http.target"]).unwrap_or_else(|| "/".into()),
    };
    Some(format!("{scheme}://{authority}{path}"))
}

fn code_text(code: i64) -> Cow<'static, str> {
    u16::try_from(code).map_or_else(|_| code.to_string().into(), status_code)
}

/// The name of a server span's Request: `METHOD route` for HTTP with a route, else the span
/// name.
pub(crate) fn request_name(s: &SpanView<'_>) -> String {
    let a = s.attributes;
    match (method(a), text(a, &["http.route"])) {
        (Some(m), Some(route)) => format!("{m} {route}"),
        _ => s.name.to_owned(),
    }
}

/// The Request or Dependency of a span, with its attributes as properties (ids and tags are
/// the caller's).
pub(crate) fn span_item(s: &SpanView<'_>) -> Telemetry {
    let a = s.attributes;
    let status = http_status(a);
    let mut item = if s.server() {
        let mut r = Request::default();
        r.id = s.span_id.clone();
        r.name = request_name(s);
        r.url = url(a, true).unwrap_or_default();
        r.duration = s.duration();
        r.response_code = match status.or_else(|| int(a, &["rpc.grpc.status_code"])) {
            Some(c) => code_text(c),
            None => Cow::Borrowed("0"),
        };
        r.success = match status {
            Some(c) => c < 400,
            None => !s.error,
        };
        if s.kind == Kind::Consumer {
            r.source = messaging_target(a).unwrap_or_default();
        }
        Telemetry::new(r)
    } else {
        Telemetry::new(dependency(s, status))
    };
    item.time = s.start;
    a.each(&mut |k, v| {
        item.properties.insert(k.to_owned(), v.text().into_owned());
    });
    item
}

fn messaging_target(a: &dyn Attributes) -> Option<String> {
    let destination = text(a, &["messaging.destination.name", "messaging.destination"]);
    match (host_port(a), destination) {
        (Some(h), Some(d)) => Some(format!("{h}/{d}")),
        (h, d) => h.or(d),
    }
}

fn dependency(s: &SpanView<'_>, status: Option<i64>) -> Dependency {
    let a = s.attributes;
    let mut d = Dependency::default();
    d.id = s.span_id.clone();
    d.duration = s.duration();
    d.name = s.name.to_owned();
    d.success = match status {
        Some(c) => c > 0 && c < 400,
        None => !s.error,
    };
    if s.kind == Kind::Internal {
        d.dependency_type = "InProc".into();
        return d;
    }
    if method(a).is_some() || status.is_some() {
        let full = url(a, false);
        let parts = full.as_deref().and_then(tracelink_core::url::Parts::parse);
        if let (Some(m), Some(p)) = (method(a), &parts) {
            d.name = format!("{m} {}", p.path());
        }
        d.target = parts.as_ref().map(|p| p.host_port()).unwrap_or_default();
        d.data = full.unwrap_or_default();
        d.dependency_type = "Http".into();
        d.result_code = status.map_or(Cow::Borrowed(""), code_text);
    } else if let Some(system) = text(a, &["db.system.name", "db.system"]) {
        d.dependency_type = match system.as_str() {
            "mssql" | "microsoft.sql_server" => "SQL".into(),
            _ => system,
        };
        d.data = text(a, &["db.query.text", "db.statement"]).unwrap_or_default();
        let db = text(a, &["db.namespace", "db.name"]);
        d.target = match (host_port(a), db) {
            (Some(h), Some(db)) => format!("{h} | {db}"),
            (h, db) => h.or(db).unwrap_or_default(),
        };
    } else if let Some(system) = text(a, &["messaging.system"]) {
        d.dependency_type = format!("Queue Message | {system}");
        d.target = messaging_target(a).unwrap_or_default();
    } else if let Some(system) = text(a, &["rpc.system"]) {
        d.dependency_type = match system.as_str() {
            "grpc" => "GRPC".into(),
            _ => system,
        };
        d.data = text(a, &["rpc.method"]).unwrap_or_default();
        d.target = host_port(a)
            .or_else(|| text(a, &["rpc.service"]))
            .unwrap_or_default();
        if let Some(c) = int(a, &["rpc.grpc.status_code"]) {
            d.result_code = code_text(c);
        }
    } else {
        d.dependency_type = match s.kind {
            Kind::Producer => "Producer".into(),
            _ => "Client".into(),
        };
        d.target = host_port(a).unwrap_or_default();
    }
    d
}

/// An Exception item from `exception.*` attributes, when there are any.
fn exception(a: &dyn Attributes) -> Option<Exception> {
    let type_name = text(a, &["exception.type"]);
    let message = text(a, &["exception.message"]);
    if type_name.is_none() && message.is_none() {
        return None;
    }
    let mut x = Exception::default();
    let mut d = ExceptionDetails::default();
    d.type_name = type_name.unwrap_or_else(|| "Error".into());
    d.message = message.unwrap_or_default();
    d.stack = text(a, &["exception.stacktrace"]).unwrap_or_default();
    x.exceptions.push(d);
    x.severity = Some(SeverityLevel::Error);
    Some(x)
}

/// Properties from attributes, leaving out the `exception.*` ones an Exception already holds.
fn properties_into(t: &mut Telemetry, a: &dyn Attributes, skip_exception: bool) {
    a.each(&mut |k, v| {
        if !(skip_exception && k.starts_with("exception.")) {
            t.properties.insert(k.to_owned(), v.text().into_owned());
        }
    });
}

/// The item of a span event: an Exception for `exception`, else a Trace of its name.
pub(crate) fn event_item(name: &str, time: SystemTime, a: &dyn Attributes) -> Telemetry {
    let (mut t, skip) = match (name == "exception").then(|| exception(a)).flatten() {
        Some(x) => (Telemetry::new(x), true),
        None => (
            Telemetry::new(Trace::new(name, SeverityLevel::Information)),
            false,
        ),
    };
    t.time = time;
    properties_into(&mut t, a, skip);
    t
}

/// The severity of an OpenTelemetry severity number (1-24), `None` when unspecified.
pub(crate) fn severity(number: i32) -> Option<SeverityLevel> {
    Some(match number {
        1..=8 => SeverityLevel::Verbose,
        9..=12 => SeverityLevel::Information,
        13..=16 => SeverityLevel::Warning,
        17..=20 => SeverityLevel::Error,
        21..=24 => SeverityLevel::Critical,
        _ => return None,
    })
}

/// The item of a log record: an Event when it names a custom event, an Exception when it
/// carries `exception.*` attributes, else a Trace of its body.
pub(crate) fn log_item(
    body: String,
    severity: Option<SeverityLevel>,
    time: SystemTime,
    a: &dyn Attributes,
) -> Telemetry {
    let mut t = if let Some(name) = text(a, &["microsoft.custom_event.name"]) {
        let mut t = Telemetry::new(Event::new(name));
        properties_into(&mut t, a, false);
        t.properties.remove("microsoft.custom_event.name");
        t
    } else if let Some(mut x) = exception(a) {
        x.severity = severity.or(x.severity);
        let mut t = Telemetry::new(x);
        properties_into(&mut t, a, true);
        t
    } else {
        let mut trace = Trace::default();
        trace.message = body;
        trace.severity = severity;
        let mut t = Telemetry::new(trace);
        properties_into(&mut t, a, false);
        t
    };
    t.time = time;
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracelink_core::model::TelemetryData;

    struct Attrs(Vec<(&'static str, Value<'static>)>);

    impl Attributes for Attrs {
        fn get(&self, key: &str) -> Option<Value<'_>> {
            self.0
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        }
        fn each(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
            for (k, v) in &self.0 {
                f(k, v.clone());
            }
        }
    }

    fn span<'a>(kind: Kind, a: &'a Attrs) -> SpanView<'a> {
        SpanView {
            span_id: "b7ad6b7169203331".into(),
            name: "op",
            kind,
            start: SystemTime::UNIX_EPOCH,
            end: SystemTime::UNIX_EPOCH + Duration::from_millis(5),
            error: false,
            attributes: a,
        }
    }

    fn dep(t: &Telemetry) -> &Dependency {
        match &t.data {
            TelemetryData::Dependency(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kinds_and_semantic_conventions() {
        let http = Attrs(vec![
            ("http.request.method", Value::Str("GET")),
            (
                "url.full",
                Value::Str("http://inv.example:9090/items/7?x=1"),
            ),
            ("http.response.status_code", Value::Int(404)),
        ]);
        let t = span_item(&span(Kind::Client, &http));
        let d = dep(&t);
        assert_eq!(
            (
                d.name.as_str(),
                d.dependency_type.as_str(),
                d.target.as_str()
            ),
            ("GET /items/7", "Http", "inv.example:9090")
        );
        assert_eq!((d.result_code.as_ref(), d.success), ("404", false));
        assert_eq!(t.properties["http.response.status_code"], "404");

        let db = Attrs(vec![
            ("db.system.name", Value::Str("postgresql")),
            ("db.namespace", Value::Str("shop")),
            ("db.query.text", Value::Str("SELECT 1")),
            ("server.address", Value::Str("db")),
            ("server.port", Value::Int(5432)),
        ]);
        let t = span_item(&span(Kind::Client, &db));
        let d = dep(&t);
        assert_eq!(
            (
                d.dependency_type.as_str(),
                d.target.as_str(),
                d.data.as_str()
            ),
            ("postgresql", "db:5432 | shop", "SELECT 1")
        );

        let mq = Attrs(vec![
            ("messaging.system", Value::Str("kafka")),
            ("messaging.destination.name", Value::Str("orders")),
        ]);
        let d = span_item(&span(Kind::Producer, &mq));
        assert_eq!(dep(&d).dependency_type, "Queue Message | kafka");
        assert_eq!(dep(&d).target, "orders");
        let rpc = Attrs(vec![
            ("rpc.system", Value::Str("grpc")),
            ("rpc.service", Value::Str("Greeter")),
            ("rpc.grpc.status_code", Value::Int(0)),
        ]);
        let d = span_item(&span(Kind::Client, &rpc));
        assert_eq!(
            (dep(&d).dependency_type.as_str(), dep(&d).target.as_str()),
            ("GRPC", "Greeter")
        );
        let none = Attrs(vec![]);
        assert_eq!(
            dep(&span_item(&span(Kind::Internal, &none))).dependency_type,
            "InProc"
        );

        let server = Attrs(vec![
            ("http.request.method", Value::Str("POST")),
            ("http.route", Value::Str("/checkout")),
            ("url.path", Value::Str("/checkout")),
            ("server.address", Value::Str("shop")),
            ("server.port", Value::Int(8080)),
            ("http.response.status_code", Value::Int(201)),
        ]);
        let t = span_item(&span(Kind::Server, &server));
        let TelemetryData::Request(r) = &t.data else {
            panic!()
        };
        assert_eq!(
            (
                r.name.as_str(),
                r.url.as_str(),
                r.response_code.as_ref(),
                r.success
            ),
            ("POST /checkout", "http://shop:8080/checkout", "201", true)
        );
        let mut failed = span(Kind::Consumer, &mq);
        failed.error = true;
        let t = span_item(&failed);
        let TelemetryData::Request(r) = &t.data else {
            panic!()
        };
        assert_eq!(
            (r.response_code.as_ref(), r.success, r.source.as_str()),
            ("0", false, "orders")
        );
    }

    #[test]
    fn events_and_logs() {
        let a = Attrs(vec![
            ("exception.type", Value::Str("RangeError")),
            ("exception.message", Value::Str("below zero")),
            ("exception.stacktrace", Value::Str("at x")),
        ]);
        let t = event_item("exception", SystemTime::UNIX_EPOCH, &a);
        let TelemetryData::Exception(x) = &t.data else {
            panic!()
        };
        assert_eq!(x.exceptions[0].type_name, "RangeError");
        assert!(t.properties.is_empty());
        let t = event_item("cache miss", SystemTime::UNIX_EPOCH, &Attrs(vec![]));
        assert!(matches!(&t.data, TelemetryData::Trace(m) if m.message == "cache miss"));
        let t = log_item(
            "declined".into(),
            severity(17),
            SystemTime::UNIX_EPOCH,
            &Attrs(vec![("k", Value::Int(1))]),
        );
        assert!(
            matches!(&t.data, TelemetryData::Trace(m) if m.severity == Some(SeverityLevel::Error))
        );
        assert_eq!(t.properties["k"], "1");
        for (n, s) in [
            (0, None),
            (1, Some(SeverityLevel::Verbose)),
            (5, Some(SeverityLevel::Verbose)),
            (9, Some(SeverityLevel::Information)),
            (13, Some(SeverityLevel::Warning)),
            (21, Some(SeverityLevel::Critical)),
            (25, None),
        ] {
            assert_eq!(severity(n), s, "{n}");
        }
        let t = log_item(
            String::new(),
            None,
            SystemTime::UNIX_EPOCH,
            &Attrs(vec![(
                "microsoft.custom_event.name",
                Value::Str("checkout"),
            )]),
        );
        assert!(matches!(&t.data, TelemetryData::Event(e) if e.name == "checkout"));
        assert!(t.properties.is_empty());
    }
}
