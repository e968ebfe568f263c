//! The telemetry data model (SPEC 6): the items every SDK sends to Application Insights.
//!
//! A [`Telemetry`] is one item: its start time, context [`Tags`], custom properties and
//! measurements, an optional sample rate, and the type-specific [`TelemetryData`]. Fields are
//! public; the [`limits`] of SPEC 6.5 are applied when an item is serialized, so an item
//! built with oversized fields still produces a valid envelope.
//!
//! ```
//! use std::time::Duration;
//! use tracelink_core::model::{Request, Telemetry, TelemetryData, tags};
//!
//! let mut request = Request::new("GET /orders/{id}", "200", Duration::from_millis(12));
//! request.url = "http://localhost/orders/7".into();
//! let mut item = Telemetry::new(request);
//! item.tags.insert(tags::CLOUD_ROLE, "orders-api");
//! item.properties.insert("tenant".into(), "contoso".into());
//! assert!(matches!(&item.data, TelemetryData::Request(r) if r.success));
//! ```

pub mod limits;
pub mod tags;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

pub use tags::{TagValue, Tags};

/// The property linking an item to items of other operations (a consumer of a batch of
/// messages, an OpenTelemetry span's links): a JSON array of
/// `{"operation_Id": <trace-id>, "id": <item id>}`, as the Application Insights SDKs write it.
pub const LINKS_PROPERTY: &str = "_MS.links";

/// The value of [`LINKS_PROPERTY`] for `(operation id, item id)` pairs. Ids that need JSON
/// escaping are escaped.
///
/// ```
/// use tracelink_core::model::links_json;
///
/// let v = links_json([("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")]);
/// assert_eq!(v, r#"[{"operation_Id":"0af7651916cd43dd8448eb211c80319c","id":"b7ad6b7169203331"}]"#);
/// ```
pub fn links_json<'a>(links: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("[");
    for (i, (operation, id)) in links.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"operation_Id\":");
        out.push_str(&serde_json::Value::from(operation).to_string());
        out.push_str(",\"id\":");
        out.push_str(&serde_json::Value::from(id).to_string());
        out.push('}');
    }
    out.push(']');
    out
}

/// One telemetry item.
#[derive(Clone, Debug, PartialEq)]
pub struct Telemetry {
    /// When the operation the item describes started (for a log line: when it was written).
    pub time: SystemTime,
    /// The sampling percentage the item was kept at, once a sampling decision was made
    /// (SPEC 8.3). `None`: not decided yet. `Some(100.0)`: decided, kept at 100 %.
    pub sample_rate: Option<f64>,
    /// Context tags (`ai.operation.id`, `ai.cloud.role`, ...).
    pub tags: Tags,
    /// Custom string properties.
    pub properties: BTreeMap<String, String>,
    /// Custom numeric measurements (not sent for metrics, which have no such field).
    pub measurements: BTreeMap<String, f64>,
    /// The type-specific part.
    pub data: TelemetryData,
}

impl Telemetry {
    /// An item of the given data, timed now, with no tags or properties.
    pub fn new(data: impl Into<TelemetryData>) -> Self {
        Self {
            time: SystemTime::now(),
            sample_rate: None,
            tags: Tags::new(),
            properties: BTreeMap::new(),
            measurements: BTreeMap::new(),
            data: data.into(),
        }
    }

    /// The item's `ai.operation.id` tag.
    pub fn operation_id(&self) -> Option<&str> {
        self.tags.get(tags::OPERATION_ID)
    }

    /// The item's `ai.operation.parentId` tag.
    pub fn operation_parent_id(&self) -> Option<&str> {
        self.tags.get(tags::OPERATION_PARENT_ID)
    }

    /// The kind of item.
    pub fn kind(&self) -> TelemetryKind {
        match &self.data {
            TelemetryData::Request(_) => TelemetryKind::Request,
            TelemetryData::Dependency(_) => TelemetryKind::Dependency,
            TelemetryData::Trace(_) => TelemetryKind::Trace,
            TelemetryData::Exception(_) => TelemetryKind::Exception,
            TelemetryData::Event(_) => TelemetryKind::Event,
            TelemetryData::Metric(_) => TelemetryKind::Metric,
            TelemetryData::PageView(_) => TelemetryKind::PageView,
            TelemetryData::Other(_) => TelemetryKind::Other,
        }
    }

    /// The request or dependency `id`, if the item has one.
    pub fn id(&self) -> Option<&str> {
        match &self.data {
            TelemetryData::Request(r) => Some(&r.id),
            TelemetryData::Dependency(d) => Some(&d.id),
            TelemetryData::PageView(p) => Some(&p.id),
            _ => None,
        }
    }
}

/// The kinds of item, for filters and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TelemetryKind {
    /// [`Request`].
    Request,
    /// [`Dependency`].
    Dependency,
    /// [`Trace`].
    Trace,
    /// [`Exception`].
    Exception,
    /// [`Event`].
    Event,
    /// [`Metric`].
    Metric,
    /// [`PageView`].
    PageView,
    /// [`OtherData`].
    Other,
}

impl TelemetryKind {
    /// The type's name in an envelope name (`Request`, `RemoteDependency`, `Message`, ...).
    pub fn envelope_type(self) -> &'static str {
        match self {
            Self::Request => "Request",
            Self::Dependency => "RemoteDependency",
            Self::Trace => "Message",
            Self::Exception => "Exception",
            Self::Event => "Event",
            Self::Metric => "Metric",
            Self::PageView => "PageView",
            Self::Other => "Other",
        }
    }
}

/// The type-specific part of an item.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TelemetryData {
    /// An incoming request (SPEC 6.1).
    Request(Request),
    /// An outgoing call or in-process span (SPEC 6.2).
    Dependency(Dependency),
    /// A log line (SPEC 6.3).
    Trace(Trace),
    /// An error (SPEC 6.3).
    Exception(Exception),
    /// A custom event (SPEC 6.3).
    Event(Event),
    /// Metric values.
    Metric(Metric),
    /// A browser page view (from the JavaScript SDK; read, never produced by tracelink).
    PageView(PageView),
    /// Any other type, kept as raw JSON so nothing a real SDK sends is lost.
    Other(OtherData),
}

macro_rules! impl_from_data {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for TelemetryData {
            fn from(d: $t) -> Self { TelemetryData::$v(d) }
        }
    )*};
}
impl_from_data!(Request => Request, Dependency => Dependency, Trace => Trace,
    Exception => Exception, Event => Event, Metric => Metric, PageView => PageView,
    OtherData => Other);

/// An incoming request (SPEC 6.1).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Request {
    /// The request's id (SPEC 1.2).
    pub id: String,
    /// `METHOD <route template>` or `METHOD <path>`.
    pub name: String,
    /// Absolute URL without user-info.
    pub url: String,
    /// From the start of the request to the end of the response body. The server layer
    /// starts the clock once it has decided to record the request, right after reading the
    /// correlation headers (well under a microsecond after the head arrived).
    pub duration: Duration,
    /// The HTTP status code ([`status_code`] gives the usual ones without allocating).
    pub response_code: Cow<'static, str>,
    /// Whether the request succeeded.
    pub success: bool,
    /// `cid-v1:<caller appId>` (SPEC 2.9).
    pub source: String,
}

/// The decimal text of every three-digit status code, for [`status_code`].
static STATUS_DIGITS: [[u8; 3]; 900] = {
    let mut t = [[0u8; 3]; 900];
    let mut i = 0;
    while i < 900 {
        let code = i + 100;
        t[i] = [
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
        ];
        i += 1;
    }
    t
};

/// An HTTP status code as the text of a `responseCode`/`resultCode`: borrowed from a static
/// table for 100-999 (no allocation per request), formatted otherwise.
///
/// ```
/// use tracelink_core::model::status_code;
///
/// assert_eq!(status_code(404), "404");
/// assert!(matches!(status_code(200), std::borrow::Cow::Borrowed(_)));
/// assert_eq!(status_code(42), "42");
/// ```
pub fn status_code(code: u16) -> Cow<'static, str> {
    let digits = code
        .checked_sub(100)
        .and_then(|i| STATUS_DIGITS.get(usize::from(i)));
    match digits.map(|d| core::str::from_utf8(d)) {
        Some(Ok(text)) => Cow::Borrowed(text),
        _ => Cow::Owned(code.to_string()),
    }
}

impl Request {
    /// A request with these fields; `success` is `status < 400` when the code is numeric.
    pub fn new(
        name: impl Into<String>,
        response_code: impl Into<Cow<'static, str>>,
        duration: Duration,
    ) -> Self {
        let response_code = response_code.into();
        let success = response_code
            .parse::<u16>()
            .map(|c| c < 400)
            .unwrap_or(false);
        Self {
            name: name.into(),
            response_code,
            duration,
            success,
            ..Self::default()
        }
    }
}

/// An outgoing call, or an in-process span (SPEC 6.2).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Dependency {
    /// The dependency's id (SPEC 1.2), the parent id its callee sees.
    pub id: String,
    /// `METHOD <path>` or a configured name.
    pub name: String,
    /// The full URL (or command) without user-info.
    pub data: String,
    /// `host[:port]` or `host | cid-v1:<appId>` (SPEC 5.5).
    pub target: String,
    /// `Http`, `Http (tracked component)`, `InProc`, ...
    pub dependency_type: String,
    /// Time until the response head arrived (or the span ended).
    pub duration: Duration,
    /// The status code ([`status_code`] gives the usual ones without allocating), or an
    /// error kind (`Timeout`, `Connect`, `Faulted`).
    pub result_code: Cow<'static, str>,
    /// Whether the call succeeded.
    pub success: bool,
}

impl Dependency {
    /// A dependency with a name and type, successful, zero duration.
    pub fn new(name: impl Into<String>, dependency_type: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            dependency_type: dependency_type.into(),
            success: true,
            ..Self::default()
        }
    }
}

/// Severity of a trace or exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeverityLevel {
    /// Verbose (trace, debug).
    Verbose,
    /// Information.
    Information,
    /// Warning.
    Warning,
    /// Error.
    Error,
    /// Critical.
    Critical,
}

impl SeverityLevel {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verbose => "Verbose",
            Self::Information => "Information",
            Self::Warning => "Warning",
            Self::Error => "Error",
            Self::Critical => "Critical",
        }
    }

    /// Parses a wire name, or the numeric form (0-4) some SDKs send.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Verbose" | "0" => Self::Verbose,
            "Information" | "1" => Self::Information,
            "Warning" | "2" => Self::Warning,
            "Error" | "3" => Self::Error,
            "Critical" | "4" => Self::Critical,
            _ => return None,
        })
    }
}

/// A log line (SPEC 6.3).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Trace {
    /// The text.
    pub message: String,
    /// Its severity.
    pub severity: Option<SeverityLevel>,
}

impl Trace {
    /// A trace with a message and severity.
    pub fn new(message: impl Into<String>, severity: SeverityLevel) -> Self {
        Self {
            message: message.into(),
            severity: Some(severity),
        }
    }
}

/// An error with its chain of causes (SPEC 6.3).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Exception {
    /// The error first, then its causes.
    pub exceptions: Vec<ExceptionDetails>,
    /// Its severity.
    pub severity: Option<SeverityLevel>,
    /// An id grouping equal problems.
    pub problem_id: String,
}

impl Exception {
    /// An exception of one error.
    pub fn new(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            exceptions: vec![ExceptionDetails {
                type_name: type_name.into(),
                message: message.into(),
                ..ExceptionDetails::default()
            }],
            severity: Some(SeverityLevel::Error),
            problem_id: String::new(),
        }
    }
}

/// One error of an [`Exception`].
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ExceptionDetails {
    /// The error's type.
    pub type_name: String,
    /// Its message.
    pub message: String,
    /// The stack (or backtrace) as text.
    pub stack: String,
}

/// A custom event (SPEC 6.3).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Event {
    /// The event's name.
    pub name: String,
}

impl Event {
    /// An event with a name.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

/// Metric values.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Metric {
    /// The values.
    pub metrics: Vec<DataPoint>,
}

impl Metric {
    /// A metric of one value.
    pub fn new(name: impl Into<String>, value: f64) -> Self {
        Self {
            metrics: vec![DataPoint::new(name, value)],
        }
    }
}

/// One metric value, or an aggregate of several.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct DataPoint {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The value (the sum for an aggregate).
    pub value: f64,
    /// How many values were aggregated.
    pub count: Option<u64>,
    /// The smallest.
    pub min: Option<f64>,
    /// The largest.
    pub max: Option<f64>,
    /// The standard deviation.
    pub std_dev: Option<f64>,
}

impl DataPoint {
    /// A single measurement.
    pub fn new(name: impl Into<String>, value: f64) -> Self {
        Self {
            name: name.into(),
            value,
            ..Self::default()
        }
    }
}

/// A browser page view.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct PageView {
    /// Its id.
    pub id: String,
    /// The page name.
    pub name: String,
    /// The page URL.
    pub url: String,
    /// How long the page took to load.
    pub duration: Option<Duration>,
    /// The referring URL.
    pub referred_uri: String,
}

/// An item of a type tracelink does not model, kept as raw JSON.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct OtherData {
    /// The `baseType`, e.g. `AvailabilityData`.
    pub base_type: String,
    /// The `baseData` object, as JSON text.
    pub base_data: String,
}
