//! Sample documents: the items a viewer sees one by one in the portal's sample feed.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tracelink_core::model::{Telemetry, TelemetryData, tags};
use tracelink_core::wire_time::format_duration;

use super::{DOCUMENT_VERSION, null_as_default};

/// Longest text field of a document, in chars (as the .NET SDK cuts them).
pub(crate) const MAX_FIELD_CHARS: usize = 32_768;

/// Most properties of a document (as the .NET SDK keeps them).
pub(crate) const MAX_PROPERTIES: usize = 10;

/// One sample item of a post's `Documents`.
///
/// Written as the Node SDK writes it: `DocumentType`, `__type`, `OperationId`, `Version`,
/// `Properties`, then the type's fields. Read by `__type` (with or without the .NET SDK's
/// `:#namespace` suffix), else by `DocumentType`; a type this crate does not know is kept as
/// [`Document::Other`].
///
/// ```
/// use std::time::Duration;
/// use tracelink_core::model::{Request, Telemetry};
/// use tracelink_live::protocol::Document;
///
/// let mut item = Telemetry::new(Request::new("GET /fail", "500", Duration::from_millis(2)));
/// item.tags.insert("ai.operation.id", "6ded968af5ab4e69adce2f485518a764");
/// let doc = Document::from_telemetry(&item).unwrap();
/// let json = serde_json::to_string(&doc).unwrap();
/// assert!(json.starts_with(r#"{"DocumentType":"Request","__type":"RequestTelemetryDocument","OperationId":"6ded968af5ab4e69adce2f485518a764","Version":"1.0","Properties":[],"Name":"GET /fail","Success":false,"#));
/// assert_eq!(serde_json::from_str::<Document>(&json).unwrap(), doc);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Document {
    /// `RequestTelemetryDocument`.
    Request(RequestDocument),
    /// `DependencyTelemetryDocument`.
    Dependency(DependencyDocument),
    /// `ExceptionTelemetryDocument`.
    Exception(ExceptionDocument),
    /// `TraceTelemetryDocument`.
    Trace(TraceDocument),
    /// `EventTelemetryDocument`.
    Event(EventDocument),
    /// A document of another type, kept as it was read.
    Other {
        /// Its `__type` (or `DocumentType`).
        type_name: String,
        /// The whole document as JSON text.
        json: String,
    },
}

/// A property of a document: `{"key","value"}`; measurements carry numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Property {
    /// The name.
    pub key: String,
    /// The value.
    pub value: PropertyValue,
}

impl Property {
    /// A property.
    ///
    /// ```
    /// use tracelink_live::protocol::{Property, PropertyValue};
    ///
    /// let p = Property::new("amount", PropertyValue::Number(27.0));
    /// assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"key":"amount","value":27.0}"#);
    /// ```
    pub fn new(key: impl Into<String>, value: PropertyValue) -> Self {
        Self {
            key: key.into(),
            value,
        }
    }
}

/// The value of a [`Property`].
///
/// ```
/// use tracelink_live::protocol::PropertyValue;
///
/// let v: PropertyValue = serde_json::from_str("27").unwrap();
/// assert_eq!(v, PropertyValue::Number(27.0));
/// assert_eq!(serde_json::to_string(&PropertyValue::Text("c-2".into())).unwrap(), r#""c-2""#);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PropertyValue {
    /// A custom property's text.
    Text(String),
    /// A measurement's number.
    Number(f64),
}

impl Serialize for PropertyValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(t) => s.serialize_str(t),
            Self::Number(n) => s.serialize_f64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for PropertyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Self::Text(s),
            serde_json::Value::Number(n) => Self::Number(n.as_f64().unwrap_or_default()),
            serde_json::Value::Null => Self::Text(String::new()),
            other => Self::Text(other.to_string()),
        })
    }
}

macro_rules! document_struct {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        #[non_exhaustive]
        pub struct $name {
            /// The `ai.operation.id` of the item.
            #[serde(default, deserialize_with = "null_as_default")]
            pub operation_id: String,
            /// The document contract's version ([`DOCUMENT_VERSION`](super::DOCUMENT_VERSION)).
            #[serde(default, deserialize_with = "null_as_default")]
            pub version: String,
            /// Measurements (numbers) first, then custom properties.
            #[serde(default, deserialize_with = "null_as_default")]
            pub properties: Vec<Property>,
            $(
                $(#[$fmeta])*
                #[serde(default, deserialize_with = "null_as_default")]
                pub $field: $ty,
            )*
        }
    };
}

document_struct! {
    /// A request (`RequestTelemetryDocument`).
    ///
    /// ```
    /// use tracelink_live::protocol::{Document, RequestDocument};
    ///
    /// let mut r = RequestDocument::default();
    /// r.name = "GET /fail".into();
    /// r.response_code = "500".into();
    /// let json = serde_json::to_value(Document::Request(r)).unwrap();
    /// assert_eq!((json["Name"].as_str(), json["Success"].as_bool()), (Some("GET /fail"), Some(false)));
    /// ```
    RequestDocument {
        /// The request's name.
        name: String,
        /// Whether it succeeded.
        success: bool,
        /// Its duration as a .NET `TimeSpan` text (`00:00:00.0020000`).
        duration: String,
        /// The response code.
        response_code: String,
        /// The operation's name.
        operation_name: String,
    }
}

document_struct! {
    /// An outgoing call (`DependencyTelemetryDocument`).
    ///
    /// ```
    /// use tracelink_live::protocol::{Document, DependencyDocument};
    ///
    /// let mut d = DependencyDocument::default();
    /// d.dependency_type_name = "Http".into();
    /// let json = serde_json::to_value(Document::Dependency(d)).unwrap();
    /// assert_eq!(json["DocumentType"], "RemoteDependency");
    /// ```
    DependencyDocument {
        /// The call's name.
        name: String,
        /// Where it went.
        target: String,
        /// Whether it succeeded.
        success: bool,
        /// Its duration as a .NET `TimeSpan` text.
        duration: String,
        /// The result code.
        result_code: String,
        /// The command: the URL of an HTTP call, a query, ... (the item's `data`).
        command_name: String,
        /// The operation's name.
        operation_name: String,
        /// The call's type (`Http`, `SQL`, ...).
        dependency_type_name: String,
    }
}

document_struct! {
    /// An exception (`ExceptionTelemetryDocument`).
    ///
    /// ```
    /// use tracelink_live::protocol::{Document, ExceptionDocument};
    ///
    /// let doc: Document = serde_json::from_str(r#"{"__type":"ExceptionTelemetryDocument","ExceptionType":"TypeError"}"#).unwrap();
    /// assert!(matches!(doc, Document::Exception(ExceptionDocument { ref exception_type, .. }) if exception_type == "TypeError"));
    /// ```
    ExceptionDocument {
        /// The stack of the first error, or its type and message when it has none.
        exception: String,
        /// The messages of the error and its causes, joined by ` <--- `.
        exception_message: String,
        /// The first error's type.
        exception_type: String,
    }
}

document_struct! {
    /// A log line (`TraceTelemetryDocument`).
    ///
    /// ```
    /// use tracelink_live::protocol::{Document, TraceDocument};
    ///
    /// let mut t = TraceDocument::default();
    /// t.message = "handled".into();
    /// assert_eq!(serde_json::to_value(Document::Trace(t)).unwrap()["Message"], "handled");
    /// ```
    TraceDocument {
        /// The text.
        message: String,
        /// The severity's name (`Information`, `Error`, ...).
        severity_level: String,
    }
}

document_struct! {
    /// A custom event (`EventTelemetryDocument`).
    ///
    /// ```
    /// use tracelink_live::protocol::{Document, EventDocument};
    ///
    /// let doc: Document = serde_json::from_str(r#"{"DocumentType":"Event","Name":"OrderPlaced"}"#).unwrap();
    /// assert!(matches!(doc, Document::Event(EventDocument { ref name, .. }) if name == "OrderPlaced"));
    /// ```
    EventDocument {
        /// The event's name.
        name: String,
    }
}

#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    #[serde(rename = "DocumentType")]
    document_type: &'static str,
    #[serde(rename = "__type")]
    type_name: &'static str,
    #[serde(flatten)]
    document: &'a T,
}

impl Serialize for Document {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn tagged<S: Serializer, T: Serialize>(
            s: S,
            document_type: &'static str,
            type_name: &'static str,
            document: &T,
        ) -> Result<S::Ok, S::Error> {
            Tagged {
                document_type,
                type_name,
                document,
            }
            .serialize(s)
        }
        match self {
            Self::Request(d) => tagged(s, "Request", "RequestTelemetryDocument", d),
            Self::Dependency(d) => tagged(s, "RemoteDependency", "DependencyTelemetryDocument", d),
            Self::Exception(d) => tagged(s, "Exception", "ExceptionTelemetryDocument", d),
            Self::Trace(d) => tagged(s, "Trace", "TraceTelemetryDocument", d),
            Self::Event(d) => tagged(s, "Event", "EventTelemetryDocument", d),
            Self::Other { json, .. } => serde_json::from_str::<serde_json::Value>(json)
                .unwrap_or(serde_json::Value::Null)
                .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let text = |key: &str| value.get(key).and_then(|v| v.as_str());
        let type_name = match text("__type") {
            // .NET writes `RequestTelemetryDocument:#Microsoft.ManagementServices...`.
            Some(t) => t.split(":#").next().unwrap_or(t).to_owned(),
            None => match text("DocumentType").unwrap_or_default() {
                "Request" => "RequestTelemetryDocument".to_owned(),
                "RemoteDependency" => "DependencyTelemetryDocument".to_owned(),
                "Exception" => "ExceptionTelemetryDocument".to_owned(),
                "Trace" => "TraceTelemetryDocument".to_owned(),
                "Event" => "EventTelemetryDocument".to_owned(),
                other => other.to_owned(),
            },
        };
        let parse = |v: serde_json::Value| -> Result<Self, D::Error> {
            Ok(match type_name.as_str() {
                "RequestTelemetryDocument" => {
                    Self::Request(serde_json::from_value(v).map_err(D::Error::custom)?)
                }
                "DependencyTelemetryDocument" => {
                    Self::Dependency(serde_json::from_value(v).map_err(D::Error::custom)?)
                }
                "ExceptionTelemetryDocument" => {
                    Self::Exception(serde_json::from_value(v).map_err(D::Error::custom)?)
                }
                "TraceTelemetryDocument" => {
                    Self::Trace(serde_json::from_value(v).map_err(D::Error::custom)?)
                }
                "EventTelemetryDocument" => {
                    Self::Event(serde_json::from_value(v).map_err(D::Error::custom)?)
                }
                _ => Self::Other {
                    type_name: type_name.clone(),
                    json: v.to_string(),
                },
            })
        };
        parse(value)
    }
}

/// `s` cut to [`MAX_FIELD_CHARS`] chars.
fn field(s: &str) -> String {
    match s.char_indices().nth(MAX_FIELD_CHARS) {
        Some((at, _)) => s[..at].to_owned(),
        None => s.to_owned(),
    }
}

impl Document {
    /// The document of a request, dependency, exception, trace or event item, as the SDKs
    /// make it; `None` for other items. Text is cut to 32,768 chars, and at most 10 properties
    /// are kept (measurements first).
    ///
    /// ```
    /// use tracelink_core::model::{SeverityLevel, Telemetry, Trace};
    /// use tracelink_live::protocol::Document;
    ///
    /// let doc = Document::from_telemetry(&Telemetry::new(Trace::new("handled", SeverityLevel::Warning)));
    /// assert!(matches!(doc, Some(Document::Trace(t)) if t.severity_level == "Warning"));
    /// ```
    pub fn from_telemetry(item: &Telemetry) -> Option<Self> {
        let operation_id = field(item.operation_id().unwrap_or_default());
        let operation_name = || field(item.tags.get(tags::OPERATION_NAME).unwrap_or_default());
        let version = DOCUMENT_VERSION.to_owned();
        let properties: Vec<Property> = item
            .measurements
            .iter()
            .map(|(k, v)| Property::new(field(k), PropertyValue::Number(*v)))
            .chain(
                item.properties
                    .iter()
                    .map(|(k, v)| Property::new(field(k), PropertyValue::Text(field(v)))),
            )
            .take(MAX_PROPERTIES)
            .collect();
        Some(match &item.data {
            TelemetryData::Request(r) => Self::Request(RequestDocument {
                operation_id,
                version,
                properties,
                name: field(&r.name),
                success: r.success,
                duration: format_duration(r.duration),
                response_code: field(&r.response_code),
                operation_name: match item.tags.get(tags::OPERATION_NAME) {
                    Some(n) => field(n),
                    None => field(&r.name),
                },
            }),
            TelemetryData::Dependency(d) => Self::Dependency(DependencyDocument {
                operation_id,
                version,
                properties,
                name: field(&d.name),
                target: field(&d.target),
                success: d.success,
                duration: format_duration(d.duration),
                result_code: field(&d.result_code),
                command_name: field(&d.data),
                dependency_type_name: field(&d.dependency_type),
                operation_name: operation_name(),
            }),
            TelemetryData::Exception(e) => {
                let first = e.exceptions.first();
                let mut messages: Vec<&str> = Vec::new();
                for m in e.exceptions.iter().map(|x| x.message.as_str()) {
                    if !messages.contains(&m) {
                        messages.push(m);
                    }
                }
                let exception = match first {
                    Some(x) if !x.stack.is_empty() => field(&x.stack),
                    Some(x) => field(&format!("{}: {}", x.type_name, x.message)),
                    None => String::new(),
                };
                Self::Exception(ExceptionDocument {
                    operation_id,
                    version,
                    properties,
                    exception,
                    exception_message: field(&messages.join(" <--- ")),
                    exception_type: field(first.map(|x| x.type_name.as_str()).unwrap_or_default()),
                })
            }
            TelemetryData::Trace(t) => Self::Trace(TraceDocument {
                operation_id,
                version,
                properties,
                message: field(&t.message),
                severity_level: t.severity.map_or("Information", |s| s.as_str()).to_owned(),
            }),
            TelemetryData::Event(e) => Self::Event(EventDocument {
                operation_id,
                version,
                properties,
                name: field(&e.name),
            }),
            _ => return None,
        })
    }

    /// The document's `__type` (`RequestTelemetryDocument`, ...).
    ///
    /// ```
    /// use tracelink_live::protocol::{Document, EventDocument};
    ///
    /// assert_eq!(Document::Event(EventDocument::default()).type_name(), "EventTelemetryDocument");
    /// ```
    pub fn type_name(&self) -> &str {
        match self {
            Self::Request(_) => "RequestTelemetryDocument",
            Self::Dependency(_) => "DependencyTelemetryDocument",
            Self::Exception(_) => "ExceptionTelemetryDocument",
            Self::Trace(_) => "TraceTelemetryDocument",
            Self::Event(_) => "EventTelemetryDocument",
            Self::Other { type_name, .. } => type_name,
        }
    }
}
