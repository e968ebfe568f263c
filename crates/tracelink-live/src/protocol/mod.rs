//! The Live Metrics (QuickPulse) protocol on the wire, version 1 as the Node SDK speaks it:
//! the paths, the headers both sides send, the bodies ([`MonitoringDataPoint`] with its
//! [`MetricPoint`]s and [`Document`]s), the time encodings, and the answer's directives
//! ([`Answer`]).
//!
//! Runtime-free and usable from both sides: the client in this crate builds requests and reads
//! answers with it, and a service that plays the other side (a local collector) reads requests
//! and writes answers with the same types.
//!
//! ```
//! use tracelink_live::protocol::{self, Answer, MonitoringDataPoint};
//!
//! // The service side: decode what a client sent (a ping's single object or a post's array) ...
//! let body = br#"{"Documents":null,"InstrumentationKey":"11111111-2222-3333-4444-555555555555",
//!     "Metrics":null,"InvariantVersion":1,"Timestamp":"/Date(1795999126076)/",
//!     "Version":"ulm_node:2.9.8","StreamId":"7ca421d2c03940f799dcddce34b37d8b",
//!     "MachineName":"vm","Instance":"livecap-instance-1","RoleName":"livecap-node-app"}"#;
//! let points: Vec<MonitoringDataPoint> = protocol::decode(body).unwrap();
//! assert_eq!(points[0].instance, "livecap-instance-1");
//! assert_eq!(points[0].time().unwrap(), std::time::UNIX_EPOCH + std::time::Duration::from_millis(1795999126076));
//!
//! // ... and answer that someone is watching.
//! let mut headers = http::HeaderMap::new();
//! Answer::subscribed().write_headers(&mut headers);
//! assert_eq!(headers["x-ms-qps-subscribed"], "true");
//! assert!(Answer::from_headers(&headers).subscribed);
//! ```

mod document;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize};

pub use document::{
    DependencyDocument, Document, EventDocument, ExceptionDocument, Property, PropertyValue,
    RequestDocument, TraceDocument,
};

/// The path of a ping: `POST <endpoint>/QuickPulseService.svc/ping?ikey=<instrumentation key>`,
/// sent while nobody watches.
///
/// ```
/// let url = format!("http://127.0.0.1:7421{}?ikey={}", tracelink_live::protocol::PING_PATH, "<key>");
/// assert_eq!(url, "http://127.0.0.1:7421/QuickPulseService.svc/ping?ikey=<key>");
/// ```
pub const PING_PATH: &str = "/QuickPulseService.svc/ping";

/// The path of a post: `POST <endpoint>/QuickPulseService.svc/post?ikey=<instrumentation key>`,
/// sent every second while someone watches.
///
/// ```
/// let path = "/QuickPulseService.svc/post?ikey=11111111-2222-3333-4444-555555555555";
/// assert!(path.starts_with(tracelink_live::protocol::POST_PATH));
/// ```
pub const POST_PATH: &str = "/QuickPulseService.svc/post";

/// The protocol version this crate speaks, in bodies (`InvariantVersion`) and in the ping's
/// `x-ms-qps-invariant-version` header: 1, as the Node SDK.
///
/// ```
/// assert_eq!(tracelink_live::protocol::INVARIANT_VERSION, 1);
/// ```
pub const INVARIANT_VERSION: u32 = 1;

/// `Version` of the documents, as the Node SDK writes it.
///
/// ```
/// use tracelink_live::protocol::{DOCUMENT_VERSION, EventDocument};
///
/// let mut doc = EventDocument::default();
/// doc.version = DOCUMENT_VERSION.to_owned();
/// assert_eq!(doc.version, "1.0");
/// ```
pub const DOCUMENT_VERSION: &str = "1.0";

/// Header names, lower case as on the wire.
///
/// ```
/// use tracelink_live::protocol::header;
///
/// let mut answer = http::HeaderMap::new();
/// answer.insert(header::SUBSCRIBED, http::HeaderValue::from_static("true"));
/// assert_eq!(answer["x-ms-qps-subscribed"], "true");
/// ```
pub mod header {
    /// Request: when the request was sent, in .NET ticks ([`transmission_time`](super::transmission_time)).
    pub const TRANSMISSION_TIME: &str = "x-ms-qps-transmission-time";
    /// Ping request: the body's `StreamId`.
    pub const STREAM_ID: &str = "x-ms-qps-stream-id";
    /// Ping request: the body's `MachineName`.
    pub const MACHINE_NAME: &str = "x-ms-qps-machine-name";
    /// Ping request: the body's `RoleName` (sent only when there is one).
    pub const ROLE_NAME: &str = "x-ms-qps-role-name";
    /// Ping request: the body's `Instance`.
    pub const INSTANCE_NAME: &str = "x-ms-qps-instance-name";
    /// Ping request: [`INVARIANT_VERSION`](super::INVARIANT_VERSION).
    pub const INVARIANT_VERSION: &str = "x-ms-qps-invariant-version";
    /// Answer: `true` when someone watches, so the client posts; anything else means ping.
    /// Request: the ETag of the configuration the client was last given.
    pub const CONFIGURATION_ETAG: &str = "x-ms-qps-configuration-etag";
    /// Answer: `true` when someone watches.
    pub const SUBSCRIBED: &str = "x-ms-qps-subscribed";
    /// Answer: the interval between pings, in milliseconds.
    pub const POLLING_INTERVAL_HINT: &str = "x-ms-qps-service-polling-interval-hint";
    /// Answer: the endpoint to use from now on.
    pub const ENDPOINT_REDIRECT: &str = "x-ms-qps-service-endpoint-redirect-v2";
}

/// The metric names the SDKs send, and the portal charts.
///
/// ```
/// use tracelink_live::protocol::{MetricPoint, metric};
///
/// let m = MetricPoint::new(metric::EXCEPTIONS_PER_SECOND, 0.0, 1);
/// assert_eq!(m.name, "\\ApplicationInsights\\Exceptions/Sec");
/// ```
pub mod metric {
    /// CPU busy, in percent.
    pub const PROCESSOR_TIME: &str = "\\Processor(_Total)\\% Processor Time";
    /// Memory in use, in bytes.
    pub const COMMITTED_BYTES: &str = "\\Memory\\Committed Bytes";
    /// Incoming requests per second.
    pub const REQUESTS_PER_SECOND: &str = "\\ApplicationInsights\\Requests/Sec";
    /// Mean duration of the second's requests, in milliseconds.
    pub const REQUEST_DURATION: &str = "\\ApplicationInsights\\Request Duration";
    /// Failed incoming requests per second.
    pub const REQUESTS_FAILED_PER_SECOND: &str = "\\ApplicationInsights\\Requests Failed/Sec";
    /// Outgoing calls per second.
    pub const DEPENDENCY_CALLS_PER_SECOND: &str = "\\ApplicationInsights\\Dependency Calls/Sec";
    /// Failed outgoing calls per second.
    pub const DEPENDENCY_CALLS_FAILED_PER_SECOND: &str =
        "\\ApplicationInsights\\Dependency Calls Failed/Sec";
    /// Mean duration of the second's outgoing calls, in milliseconds.
    pub const DEPENDENCY_CALL_DURATION: &str = "\\ApplicationInsights\\Dependency Call Duration";
    /// Exceptions per second.
    pub const EXCEPTIONS_PER_SECOND: &str = "\\ApplicationInsights\\Exceptions/Sec";
}

/// .NET ticks (100 ns) from 0001-01-01 to the Unix epoch.
const TICKS_AT_UNIX_EPOCH: u64 = 621_355_968_000_000_000;

/// The `x-ms-qps-transmission-time` value of `t`: 100-nanosecond ticks since 0001-01-01 UTC,
/// as .NET's `DateTimeOffset.Ticks`. Times before the Unix epoch count as the epoch.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use tracelink_live::protocol::transmission_time;
///
/// // The capture: body Timestamp /Date(1795998431275)/ next to 639315952312760000.
/// let t = UNIX_EPOCH + Duration::from_millis(1_795_998_431_276);
/// assert_eq!(transmission_time(t), 639_315_952_312_760_000);
/// ```
pub fn transmission_time(t: SystemTime) -> u64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let ticks = since.as_nanos() / 100;
    TICKS_AT_UNIX_EPOCH.saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX))
}

/// Reads an `x-ms-qps-transmission-time` value; `None` when it is not a number of ticks at or
/// after the Unix epoch.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use tracelink_live::protocol::parse_transmission_time;
///
/// let t = parse_transmission_time("639315952312760000").unwrap();
/// assert_eq!(t, UNIX_EPOCH + Duration::from_millis(1_795_998_431_276));
/// assert_eq!(parse_transmission_time("soon"), None);
/// ```
pub fn parse_transmission_time(value: &str) -> Option<SystemTime> {
    let ticks: u64 = value.trim().parse().ok()?;
    let since = ticks.checked_sub(TICKS_AT_UNIX_EPOCH)?;
    UNIX_EPOCH.checked_add(Duration::from_nanos(since.checked_mul(100)?))
}

/// The body's `Timestamp` for `t`: `/Date(<ms since the Unix epoch>)/`, the WCF JSON date
/// (JSON-decoded; .NET escapes the slashes on the wire, which decodes to the same string).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use tracelink_live::protocol::format_date;
///
/// assert_eq!(format_date(UNIX_EPOCH + Duration::from_millis(1795999126076)), "/Date(1795999126076)/");
/// ```
pub fn format_date(t: SystemTime) -> String {
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    format!("/Date({ms})/")
}

/// Reads a `/Date(<ms>)/` timestamp, with or without a time-zone offset (`/Date(<ms>+0100)/`,
/// which does not change the instant) and with or without escaped slashes.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use tracelink_live::protocol::parse_date;
///
/// let t = UNIX_EPOCH + Duration::from_millis(1795999126076);
/// assert_eq!(parse_date("/Date(1795999126076)/"), Some(t));
/// assert_eq!(parse_date(r"\/Date(1795999126076+0000)\/"), Some(t));
/// assert_eq!(parse_date("2026-11-30"), None);
/// ```
pub fn parse_date(value: &str) -> Option<SystemTime> {
    let v = value.trim();
    let v = v.strip_prefix('\\').unwrap_or(v);
    let inner = v
        .strip_prefix("/Date(")?
        .strip_suffix(")/")
        .or_else(|| v.strip_prefix("/Date(")?.strip_suffix(")\\/"))?;
    // An offset follows the milliseconds: +hhmm or -hhmm (not a leading minus).
    let end = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map_or(inner.len(), |(i, _)| i);
    let ms: i64 = inner[..end].parse().ok()?;
    let ms = u64::try_from(ms).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// One metric value of a [`MonitoringDataPoint`]: `{"Name","Value","Weight"}`.
///
/// `Weight` says how many samples the value stands for when the service averages values:
/// this crate's client writes 1 for rates and the call count for the two duration means
/// (see the crate docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct MetricPoint {
    /// The metric's name, one of [`metric`]'s for the standard charts.
    pub name: String,
    /// The value.
    pub value: f64,
    /// The weight.
    pub weight: u32,
}

impl MetricPoint {
    /// A value with its weight.
    ///
    /// ```
    /// use tracelink_live::protocol::{MetricPoint, metric};
    ///
    /// let m = MetricPoint::new(metric::REQUESTS_PER_SECOND, 12.0, 1);
    /// assert_eq!(serde_json::to_string(&m).unwrap(),
    ///     r#"{"Name":"\\ApplicationInsights\\Requests/Sec","Value":12.0,"Weight":1}"#);
    /// ```
    pub fn new(name: impl Into<String>, value: f64, weight: u32) -> Self {
        Self {
            name: name.into(),
            value,
            weight,
        }
    }
}

/// The body of a ping (alone) or a post (the one element of an array): who sends, when, and
/// while posting the second's metrics and sample documents.
///
/// Serialized in the Node SDK's key order with `null` for empty `Documents`, `Metrics` and
/// `RoleName`; read leniently: absent fields (the Rust `opentelemetry-application-insights`
/// crate leaves several out) count as `null`, and fields of later versions (the .NET SDK's
/// `IsWebApp`, `ProcessorCount`, ...) are ignored.
///
/// ```
/// use tracelink_live::protocol::{MonitoringDataPoint, encode_ping};
///
/// let mut p = MonitoringDataPoint::default();
/// p.invariant_version = 1;
/// p.instance = "pod-7".into();
/// let json = String::from_utf8(encode_ping(&p)).unwrap();
/// assert!(json.contains(r#""Instance":"pod-7","RoleName":null"#));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct MonitoringDataPoint {
    /// Sample items of the second; `None` (`null`) when there are none, and in pings.
    #[serde(default)]
    pub documents: Option<Vec<Document>>,
    /// The instrumentation key (also in the query).
    #[serde(default)]
    pub instrumentation_key: Option<String>,
    /// The second's metrics; `None` (`null`) in pings.
    #[serde(default)]
    pub metrics: Option<Vec<MetricPoint>>,
    /// [`INVARIANT_VERSION`].
    #[serde(default)]
    pub invariant_version: u32,
    /// When it was sent: [`format_date`].
    #[serde(default, deserialize_with = "null_as_default")]
    pub timestamp: String,
    /// The SDK's version (the `ai.internal.sdkVersion` tag).
    #[serde(default)]
    pub version: Option<String>,
    /// 32 lower-case hex digits, random, the same in every request of one client.
    #[serde(default, deserialize_with = "null_as_default")]
    pub stream_id: String,
    /// The host's name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub machine_name: String,
    /// The instance (`ai.cloud.roleInstance`): one line per instance in the portal.
    #[serde(default, deserialize_with = "null_as_default")]
    pub instance: String,
    /// The role (`ai.cloud.role`).
    #[serde(default)]
    pub role_name: Option<String>,
}

impl MonitoringDataPoint {
    /// The `Timestamp` as a time, if it is a valid `/Date(ms)/`.
    ///
    /// ```
    /// use tracelink_live::protocol::{MonitoringDataPoint, format_date};
    ///
    /// let mut p = MonitoringDataPoint::default();
    /// let now = std::time::SystemTime::now();
    /// p.timestamp = format_date(now);
    /// assert!(p.time().unwrap() <= now);
    /// ```
    pub fn time(&self) -> Option<SystemTime> {
        parse_date(&self.timestamp)
    }
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A ping's body: the data point as one JSON object.
///
/// ```
/// use tracelink_live::protocol::{MonitoringDataPoint, encode_ping};
///
/// let body = encode_ping(&MonitoringDataPoint::default());
/// assert!(body.starts_with(br#"{"Documents":null,"InstrumentationKey":null,"Metrics":null,"#));
/// ```
pub fn encode_ping(point: &MonitoringDataPoint) -> Vec<u8> {
    // Plain strings, numbers and bools with string keys: serializing cannot fail.
    serde_json::to_vec(point).unwrap_or_default()
}

/// A post's body: a JSON array of the data points (the SDKs send exactly one).
///
/// ```
/// use tracelink_live::protocol::{MonitoringDataPoint, encode_post};
///
/// assert!(encode_post(&[MonitoringDataPoint::default()]).starts_with(b"[{\"Documents\":null,"));
/// ```
pub fn encode_post(points: &[MonitoringDataPoint]) -> Vec<u8> {
    serde_json::to_vec(points).unwrap_or_default()
}

/// Reads a ping's or a post's body: one data point, or an array of them.
///
/// ```
/// use tracelink_live::protocol::{decode, DecodeErrorKind};
///
/// assert_eq!(decode(b"[]").unwrap().len(), 0);
/// assert_eq!(decode(b"{\"Instance\":").unwrap_err().kind(), DecodeErrorKind::Syntax);
/// assert_eq!(decode(b"{\"Metrics\":7}").unwrap_err().kind(), DecodeErrorKind::Shape);
/// ```
pub fn decode(body: &[u8]) -> Result<Vec<MonitoringDataPoint>, DecodeError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| DecodeError {
        kind: DecodeErrorKind::Syntax,
        source: e,
    })?;
    let shape = |e| DecodeError {
        kind: DecodeErrorKind::Shape,
        source: e,
    };
    match value {
        serde_json::Value::Array(_) => {
            serde_json::from_value::<Vec<MonitoringDataPoint>>(value).map_err(shape)
        }
        _ => serde_json::from_value::<MonitoringDataPoint>(value)
            .map(|p| vec![p])
            .map_err(shape),
    }
}

/// Why a body could not be read.
///
/// ```
/// let e = tracelink_live::protocol::decode(b"not json").unwrap_err();
/// assert_eq!(e.to_string(), "live metrics body is not json");
/// assert!(std::error::Error::source(&e).is_some());
/// ```
#[derive(Debug)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    source: serde_json::Error,
}

/// What was wrong with a body.
///
/// ```
/// use tracelink_live::protocol::{decode, DecodeErrorKind};
///
/// assert_eq!(decode(b"42").unwrap_err().kind(), DecodeErrorKind::Shape);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// Not JSON.
    Syntax,
    /// JSON, but not a data point or an array of them.
    Shape,
}

impl DecodeError {
    /// What was wrong.
    ///
    /// ```
    /// use tracelink_live::protocol::{decode, DecodeErrorKind};
    ///
    /// assert_eq!(decode(b"").unwrap_err().kind(), DecodeErrorKind::Syntax);
    /// ```
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            DecodeErrorKind::Syntax => "live metrics body is not json",
            DecodeErrorKind::Shape => "live metrics body is not a monitoring data point",
        })
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// What the service's answer to a ping or post tells the client, from its headers.
///
/// The client reads it from a `2xx` answer only; the headers of any other answer are ignored.
///
/// ```
/// use std::time::Duration;
/// use tracelink_live::protocol::Answer;
///
/// let mut h = http::HeaderMap::new();
/// h.insert("x-ms-qps-subscribed", "false".parse().unwrap());
/// h.insert("x-ms-qps-service-polling-interval-hint", "2000".parse().unwrap());
/// assert_eq!(Answer::from_headers(&h), Answer::unsubscribed().polling_interval_hint(Duration::from_secs(2)));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// Someone watches: post every second (`x-ms-qps-subscribed: true`, any case).
    pub subscribed: bool,
    /// The interval between pings from now on (`x-ms-qps-service-polling-interval-hint`,
    /// milliseconds, used when above 0).
    pub polling_interval_hint: Option<Duration>,
    /// Where to send pings and posts from now on (`x-ms-qps-service-endpoint-redirect-v2`):
    /// the value as sent; the client keeps its scheme, host and port.
    pub endpoint_redirect: Option<String>,
    /// The ETag of the configuration the service holds for this client
    /// (`x-ms-qps-configuration-etag`, when not empty).
    pub configuration_etag: Option<String>,
}

impl Answer {
    /// An answer that someone watches.
    ///
    /// ```
    /// assert!(tracelink_live::protocol::Answer::subscribed().subscribed);
    /// ```
    pub fn subscribed() -> Self {
        Self {
            subscribed: true,
            ..Self::default()
        }
    }

    /// An answer that nobody watches.
    ///
    /// ```
    /// assert!(!tracelink_live::protocol::Answer::unsubscribed().subscribed);
    /// ```
    pub fn unsubscribed() -> Self {
        Self::default()
    }

    /// With a polling-interval hint.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tracelink_live::protocol::Answer;
    ///
    /// let mut h = http::HeaderMap::new();
    /// Answer::unsubscribed().polling_interval_hint(Duration::from_secs(2)).write_headers(&mut h);
    /// assert_eq!(h["x-ms-qps-service-polling-interval-hint"], "2000");
    /// ```
    pub fn polling_interval_hint(mut self, interval: Duration) -> Self {
        self.polling_interval_hint = Some(interval);
        self
    }

    /// With an endpoint redirect.
    ///
    /// ```
    /// use tracelink_live::protocol::Answer;
    ///
    /// let mut h = http::HeaderMap::new();
    /// Answer::subscribed().endpoint_redirect("https://live.example").write_headers(&mut h);
    /// assert_eq!(h["x-ms-qps-service-endpoint-redirect-v2"], "https://live.example");
    /// ```
    pub fn endpoint_redirect(mut self, url: impl Into<String>) -> Self {
        self.endpoint_redirect = Some(url.into());
        self
    }

    /// With a configuration ETag.
    ///
    /// ```
    /// use tracelink_live::protocol::Answer;
    ///
    /// let mut h = http::HeaderMap::new();
    /// Answer::subscribed().configuration_etag("etag-1").write_headers(&mut h);
    /// assert_eq!(h["x-ms-qps-configuration-etag"], "etag-1");
    /// ```
    pub fn configuration_etag(mut self, etag: impl Into<String>) -> Self {
        self.configuration_etag = Some(etag.into());
        self
    }

    /// Reads the directives from an answer's headers. Values that do not parse are ignored:
    /// a subscription flag other than `true` means not subscribed, a hint that is not a
    /// positive number of milliseconds is no hint.
    ///
    /// ```
    /// use tracelink_live::protocol::Answer;
    ///
    /// let mut h = http::HeaderMap::new();
    /// h.insert("x-ms-qps-subscribed", "True".parse().unwrap());
    /// h.insert("x-ms-qps-service-polling-interval-hint", "0".parse().unwrap());
    /// let a = Answer::from_headers(&h);
    /// assert!(a.subscribed);
    /// assert_eq!(a.polling_interval_hint, None);
    /// ```
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        Self {
            subscribed: text(header::SUBSCRIBED).is_some_and(|v| v.eq_ignore_ascii_case("true")),
            polling_interval_hint: text(header::POLLING_INTERVAL_HINT)
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
            endpoint_redirect: text(header::ENDPOINT_REDIRECT).map(str::to_owned),
            configuration_etag: text(header::CONFIGURATION_ETAG).map(str::to_owned),
        }
    }

    /// Writes the directives as an answer's headers (`x-ms-qps-subscribed` always). A value
    /// that is not a valid header value is left out.
    ///
    /// ```
    /// use tracelink_live::protocol::Answer;
    ///
    /// let mut h = http::HeaderMap::new();
    /// Answer::unsubscribed().write_headers(&mut h);
    /// assert_eq!(h["x-ms-qps-subscribed"], "false");
    /// assert_eq!(h.len(), 1);
    /// ```
    pub fn write_headers(&self, headers: &mut http::HeaderMap) {
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = http::HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        put(
            header::SUBSCRIBED,
            if self.subscribed { "true" } else { "false" },
        );
        if let Some(hint) = self.polling_interval_hint {
            put(
                header::POLLING_INTERVAL_HINT,
                &hint.as_millis().max(1).to_string(),
            );
        }
        if let Some(url) = &self.endpoint_redirect {
            put(header::ENDPOINT_REDIRECT, url);
        }
        if let Some(etag) = &self.configuration_etag {
            put(header::CONFIGURATION_ETAG, etag);
        }
    }
}

#[cfg(test)]
mod tests;
