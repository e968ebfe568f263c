//! Breeze v2 envelopes (SPEC 7.1-7.3): items to JSON and back.
//!
//! Writing follows SPEC 7: `{"ver":1,"name":"Microsoft.ApplicationInsights.<ikey without
//! dashes>.<Type>","time":…,"sampleRate":…,"iKey":…,"tags":{…},"data":{"baseType":…,
//! "baseData":{"ver":2,…}}}`; `sampleRate` only below 100; empty strings left out, but
//! `success` and `responseCode` always written for requests; every field cut to its limit
//! (SPEC 6.5); non-finite measurements left out (JSON cannot carry them).
//!
//! Reading accepts what the real SDKs send: any envelope name form
//! (`Microsoft.ApplicationInsights.<ikey>.<Type>`, `Microsoft.ApplicationInsights.<Type>`,
//! `<Type>`: the type comes from `data.baseType`), ids `|T.S.` and `S`, every duration form
//! of [`wire_time::parse_duration`], codes as strings or numbers, severity as a name or a
//! number. It rejects what the Breeze schema requires and is missing.
//!
//! ```
//! use std::time::Duration;
//! use tracelink::envelope;
//! use tracelink::model::{Request, Telemetry};
//!
//! let mut r = Request::new("GET /", "200", Duration::from_millis(5));
//! r.id = "b7ad6b7169203331".into();
//! let item = Telemetry::new(r);
//! let json = envelope::to_json(&item, "00000000-1111-2222-3333-444444444444");
//! assert!(json.contains(r#""name":"Microsoft.ApplicationInsights.00000000111122223333444444444444.Request""#));
//! let back = envelope::parse(json.as_bytes()).unwrap();
//! assert_eq!(back.telemetry.id(), Some("b7ad6b7169203331"));
//! ```

use core::fmt;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::model::limits::{self, truncate};
use crate::model::{
    DataPoint, Dependency, Event, Exception, ExceptionDetails, Metric, OtherData, PageView,
    Request, SeverityLevel, Tags, Telemetry, TelemetryData, TelemetryKind, Trace,
};
use crate::wire_time;

/// The envelope of one item, ready to serialize with serde (to JSON).
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    item: &'a Telemetry,
    ikey: &'a str,
}

impl<'a> Envelope<'a> {
    /// The envelope of `item` for the instrumentation key `ikey` (may be empty).
    pub fn new(item: &'a Telemetry, ikey: &'a str) -> Self {
        Self { item, ikey }
    }
}

/// The item as one line of JSON.
pub fn to_json(item: &Telemetry, ikey: &str) -> String {
    // Serializing our own types into a String cannot fail.
    serde_json::to_string(&Envelope::new(item, ikey)).unwrap_or_default()
}

/// Appends the item as one line of JSON and a `\n` (the body format of SPEC 7.4).
pub fn write_line(out: &mut Vec<u8>, item: &Telemetry, ikey: &str) {
    if serde_json::to_writer(&mut *out, &Envelope::new(item, ikey)).is_ok() {
        out.push(b'\n');
    }
}

fn base_type(kind: TelemetryKind) -> &'static str {
    match kind {
        TelemetryKind::Request => "RequestData",
        TelemetryKind::Dependency => "RemoteDependencyData",
        TelemetryKind::Trace => "MessageData",
        TelemetryKind::Exception => "ExceptionData",
        TelemetryKind::Event => "EventData",
        TelemetryKind::Metric => "MetricData",
        TelemetryKind::PageView => "PageViewData",
        TelemetryKind::Other => "",
    }
}

struct Name<'a>(&'a str, &'a str);
impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Microsoft.ApplicationInsights.")?;
        if !self.0.is_empty() {
            for part in self.0.split('-') {
                f.write_str(part)?;
            }
            f.write_str(".")?;
        }
        f.write_str(self.1)
    }
}

struct Time(SystemTime);
impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        wire_time::write_time(f, self.0)
    }
}

/// Serializes any `Display` wrapper as a string without an intermediate allocation.
macro_rules! serialize_display {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
serialize_display!(Name<'_>, Time, Dur);

struct Dur(Duration);
impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        wire_time::write_duration(f, self.0)
    }
}

impl Serialize for Envelope<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let item = self.item;
        let kind = item.kind();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("ver", &1)?;
        let type_name = match &item.data {
            TelemetryData::Other(o) => o.base_type.strip_suffix("Data").unwrap_or(&o.base_type),
            _ => kind.envelope_type(),
        };
        m.serialize_entry("name", &Name(self.ikey, type_name))?;
        m.serialize_entry("time", &Time(item.time))?;
        if let Some(rate) = item.sample_rate.filter(|r| *r < 100.0 && *r > 0.0) {
            m.serialize_entry("sampleRate", &rate)?;
        }
        if !self.ikey.is_empty() {
            m.serialize_entry("iKey", self.ikey)?;
        }
        m.serialize_entry("tags", &TagsSer(&item.tags))?;
        m.serialize_entry("data", &DataSer(item))?;
        m.end()
    }
}

struct TagsSer<'a>(&'a Tags);
impl Serialize for TagsSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.0.iter().filter(|(_, v)| !v.is_empty()) {
            let max = limits::tag(k).unwrap_or(limits::PROPERTY_VALUE);
            m.serialize_entry(truncate(k, limits::PROPERTY_KEY), truncate(v, max))?;
        }
        m.end()
    }
}

struct DataSer<'a>(&'a Telemetry);
impl Serialize for DataSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let item = self.0;
        let mut m = s.serialize_map(Some(2))?;
        match &item.data {
            TelemetryData::Other(o) => {
                m.serialize_entry("baseType", &o.base_type)?;
                let v: Value = serde_json::from_str(&o.base_data).unwrap_or(Value::Null);
                m.serialize_entry("baseData", &v)?;
            }
            _ => {
                m.serialize_entry("baseType", base_type(item.kind()))?;
                m.serialize_entry("baseData", &BaseDataSer(item))?;
            }
        }
        m.end()
    }
}

struct Props<'a>(&'a BTreeMap<String, String>);
impl Serialize for Props<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.0.iter().filter(|(k, _)| !k.is_empty()) {
            m.serialize_entry(
                truncate(k, limits::PROPERTY_KEY),
                truncate(v, limits::PROPERTY_VALUE),
            )?;
        }
        m.end()
    }
}

struct Measurements<'a>(&'a BTreeMap<String, f64>);
impl Serialize for Measurements<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.0.iter().filter(|(_, v)| v.is_finite()) {
            m.serialize_entry(truncate(k, limits::PROPERTY_KEY), v)?;
        }
        m.end()
    }
}

/// Writes `key` when `value` is non-empty, cut to `max` (SPEC 7.3).
fn opt<M: SerializeMap>(
    m: &mut M,
    key: &'static str,
    value: &str,
    max: usize,
) -> Result<(), M::Error> {
    if value.is_empty() {
        return Ok(());
    }
    m.serialize_entry(key, truncate(value, max))
}

struct BaseDataSer<'a>(&'a Telemetry);
impl Serialize for BaseDataSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let item = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("ver", &2)?;
        match &item.data {
            TelemetryData::Request(r) => {
                opt(&mut m, "id", &r.id, limits::ID)?;
                opt(&mut m, "name", &r.name, limits::NAME)?;
                m.serialize_entry("duration", &Dur(r.duration))?;
                m.serialize_entry("success", &r.success)?;
                m.serialize_entry(
                    "responseCode",
                    truncate(&r.response_code, limits::RESPONSE_CODE),
                )?;
                opt(&mut m, "source", &r.source, limits::SOURCE)?;
                opt(&mut m, "url", &r.url, limits::URL)?;
            }
            TelemetryData::Dependency(d) => {
                m.serialize_entry("name", truncate(&d.name, limits::NAME))?;
                opt(&mut m, "id", &d.id, limits::ID)?;
                opt(&mut m, "resultCode", &d.result_code, limits::RESPONSE_CODE)?;
                m.serialize_entry("duration", &Dur(d.duration))?;
                m.serialize_entry("success", &d.success)?;
                opt(&mut m, "data", &d.data, limits::DATA)?;
                opt(&mut m, "target", &d.target, limits::TARGET)?;
                opt(&mut m, "type", &d.dependency_type, limits::TYPE)?;
            }
            TelemetryData::Trace(t) => {
                m.serialize_entry("message", truncate(&t.message, limits::MESSAGE))?;
                if let Some(sev) = t.severity {
                    m.serialize_entry("severityLevel", sev.as_str())?;
                }
            }
            TelemetryData::Exception(e) => {
                m.serialize_entry("exceptions", &ExceptionsSer(&e.exceptions))?;
                if let Some(sev) = e.severity {
                    m.serialize_entry("severityLevel", sev.as_str())?;
                }
                opt(&mut m, "problemId", &e.problem_id, limits::TYPE_NAME)?;
            }
            TelemetryData::Event(e) => {
                m.serialize_entry("name", truncate(&e.name, limits::EVENT_NAME))?;
            }
            TelemetryData::Metric(x) => {
                m.serialize_entry("metrics", &MetricsSer(&x.metrics))?;
            }
            TelemetryData::PageView(p) => {
                m.serialize_entry("id", truncate(&p.id, limits::ID))?;
                m.serialize_entry("name", truncate(&p.name, limits::NAME))?;
                opt(&mut m, "url", &p.url, limits::URL)?;
                if let Some(d) = p.duration {
                    m.serialize_entry("duration", &Dur(d))?;
                }
                opt(&mut m, "referredUri", &p.referred_uri, limits::URL)?;
            }
            TelemetryData::Other(_) => {}
        }
        if !item.properties.is_empty() {
            m.serialize_entry("properties", &Props(&item.properties))?;
        }
        let has_measurements = !matches!(item.data, TelemetryData::Metric(_));
        if has_measurements && !item.measurements.is_empty() {
            m.serialize_entry("measurements", &Measurements(&item.measurements))?;
        }
        m.end()
    }
}

struct ExceptionsSer<'a>(&'a [ExceptionDetails]);
impl Serialize for ExceptionsSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (i, e) in self.0.iter().enumerate() {
            seq.serialize_element(&ExceptionSer(i, e))?;
        }
        seq.end()
    }
}

struct ExceptionSer<'a>(usize, &'a ExceptionDetails);
impl Serialize for ExceptionSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (i, e) = (self.0, self.1);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &i)?;
        if i > 0 {
            m.serialize_entry("outerId", &(i - 1))?;
        }
        opt(&mut m, "typeName", &e.type_name, limits::TYPE_NAME)?;
        m.serialize_entry("message", truncate(&e.message, limits::MESSAGE))?;
        m.serialize_entry("hasFullStack", &!e.stack.is_empty())?;
        opt(&mut m, "stack", &e.stack, limits::MESSAGE)?;
        m.end()
    }
}

struct MetricsSer<'a>(&'a [DataPoint]);
impl Serialize for MetricsSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for p in self.0.iter().filter(|p| p.value.is_finite()) {
            seq.serialize_element(&PointSer(p))?;
        }
        seq.end()
    }
}

struct PointSer<'a>(&'a DataPoint);
impl Serialize for PointSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut m = s.serialize_map(None)?;
        opt(&mut m, "ns", &p.namespace, limits::METRIC_NAMESPACE)?;
        m.serialize_entry("name", truncate(&p.name, limits::TYPE_NAME))?;
        let aggregate = p.count.is_some();
        m.serialize_entry(
            "kind",
            if aggregate {
                "Aggregation"
            } else {
                "Measurement"
            },
        )?;
        m.serialize_entry("value", &p.value)?;
        if let Some(c) = p.count {
            m.serialize_entry("count", &c)?;
        }
        for (k, v) in [("min", p.min), ("max", p.max), ("stdDev", p.std_dev)] {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                m.serialize_entry(k, &v)?;
            }
        }
        m.end()
    }
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// An envelope read back into an item.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ParsedEnvelope {
    /// The envelope's `name`, as sent.
    pub name: String,
    /// The envelope's `iKey`, when sent.
    pub ikey: Option<String>,
    /// The item.
    pub telemetry: Telemetry,
}

/// Why an envelope could not be read.
///
/// ```
/// let err = tracelink::envelope::parse(br#"{"name":"x","time":"2026-11-21T05:46:41Z"}"#).unwrap_err();
/// assert_eq!(err.to_string(), "invalid envelope: missing field `data.baseType`");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeError {
    kind: EnvelopeErrorKind,
    detail: String,
}

/// What was wrong with an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EnvelopeErrorKind {
    /// Not a JSON object.
    Json,
    /// A field the schema requires is missing.
    MissingField,
    /// A field has the wrong type or format.
    InvalidField,
}

impl EnvelopeError {
    fn missing(field: &str) -> Self {
        Self {
            kind: EnvelopeErrorKind::MissingField,
            detail: format!("missing field `{field}`"),
        }
    }

    fn invalid(field: &str) -> Self {
        Self {
            kind: EnvelopeErrorKind::InvalidField,
            detail: format!("invalid field `{field}`"),
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> EnvelopeErrorKind {
        self.kind
    }
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid envelope: {}", self.detail)
    }
}

impl std::error::Error for EnvelopeError {}

/// Reads one envelope from JSON text.
pub fn parse(json: &[u8]) -> Result<ParsedEnvelope, EnvelopeError> {
    let value: Value = serde_json::from_slice(json).map_err(|e| EnvelopeError {
        kind: EnvelopeErrorKind::Json,
        detail: format!("not JSON: {e}"),
    })?;
    from_value(value)
}

/// Reads one envelope from a parsed JSON value.
pub fn from_value(value: Value) -> Result<ParsedEnvelope, EnvelopeError> {
    let Value::Object(mut env) = value else {
        return Err(EnvelopeError {
            kind: EnvelopeErrorKind::Json,
            detail: "not a JSON object".into(),
        });
    };
    let name = string(&env, "name").ok_or_else(|| EnvelopeError::missing("name"))?;
    let time = string(&env, "time").ok_or_else(|| EnvelopeError::missing("time"))?;
    let time = wire_time::parse_time(&time).ok_or_else(|| EnvelopeError::invalid("time"))?;
    let sample_rate = match env.get("sampleRate") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .ok_or_else(|| EnvelopeError::invalid("sampleRate"))?,
        ),
    };
    let ikey = string(&env, "iKey");
    let mut tags = Tags::new();
    if let Some(Value::Object(t)) = env.get("tags") {
        for (k, v) in t {
            if let Some(v) = scalar(v).filter(|v| !v.is_empty()) {
                tags.insert(k.clone(), v);
            }
        }
    }
    let Some(Value::Object(mut data)) = env.remove("data") else {
        return Err(EnvelopeError::missing("data.baseType"));
    };
    let base_type =
        string(&data, "baseType").ok_or_else(|| EnvelopeError::missing("data.baseType"))?;
    let Some(Value::Object(mut base)) = data.remove("baseData") else {
        return Err(EnvelopeError::missing("data.baseData"));
    };
    let mut properties = BTreeMap::new();
    if let Some(Value::Object(p)) = base.get("properties") {
        for (k, v) in p {
            if let Some(v) = scalar(v) {
                properties.insert(k.clone(), v);
            }
        }
    }
    let mut measurements = BTreeMap::new();
    if let Some(Value::Object(p)) = base.get("measurements") {
        for (k, v) in p {
            if let Some(v) = v.as_f64() {
                measurements.insert(k.clone(), v);
            }
        }
    }
    let data = read_data(&base_type, &mut base)?;
    Ok(ParsedEnvelope {
        name,
        ikey,
        telemetry: Telemetry {
            time,
            sample_rate,
            tags,
            properties,
            measurements,
            data,
        },
    })
}

/// A string, number or bool as text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key).and_then(scalar)
}

fn text(m: &Map<String, Value>, key: &str) -> String {
    string(m, key).unwrap_or_default()
}

fn required(m: &Map<String, Value>, key: &str, field: &str) -> Result<String, EnvelopeError> {
    string(m, key).ok_or_else(|| EnvelopeError::missing(field))
}

fn duration(m: &Map<String, Value>, field: &str) -> Result<Duration, EnvelopeError> {
    let d = required(m, "duration", field)?;
    wire_time::parse_duration(&d).ok_or_else(|| EnvelopeError::invalid(field))
}

fn boolean(m: &Map<String, Value>, key: &str) -> Option<bool> {
    match m.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn severity(m: &Map<String, Value>) -> Option<SeverityLevel> {
    string(m, "severityLevel").and_then(|s| SeverityLevel::parse(&s))
}

fn read_data(base_type: &str, b: &mut Map<String, Value>) -> Result<TelemetryData, EnvelopeError> {
    Ok(match base_type {
        "RequestData" => TelemetryData::Request(Request {
            id: required(b, "id", "baseData.id")?,
            name: text(b, "name"),
            url: text(b, "url"),
            duration: duration(b, "baseData.duration")?,
            response_code: required(b, "responseCode", "baseData.responseCode")?,
            success: boolean(b, "success")
                .ok_or_else(|| EnvelopeError::missing("baseData.success"))?,
            source: text(b, "source"),
        }),
        "RemoteDependencyData" => TelemetryData::Dependency(Dependency {
            id: text(b, "id"),
            name: required(b, "name", "baseData.name")?,
            data: text(b, "data"),
            target: text(b, "target"),
            dependency_type: text(b, "type"),
            duration: duration(b, "baseData.duration")?,
            result_code: text(b, "resultCode"),
            success: boolean(b, "success").unwrap_or(true),
        }),
        "MessageData" => TelemetryData::Trace(Trace {
            message: required(b, "message", "baseData.message")?,
            severity: severity(b),
        }),
        "ExceptionData" => {
            let Some(Value::Array(list)) = b.get("exceptions") else {
                return Err(EnvelopeError::missing("baseData.exceptions"));
            };
            let mut exceptions = Vec::with_capacity(list.len());
            for e in list {
                let Value::Object(e) = e else {
                    return Err(EnvelopeError::invalid("baseData.exceptions"));
                };
                exceptions.push(ExceptionDetails {
                    type_name: text(e, "typeName"),
                    message: required(e, "message", "baseData.exceptions.message")?,
                    stack: text(e, "stack"),
                });
            }
            TelemetryData::Exception(Exception {
                exceptions,
                severity: severity(b),
                problem_id: text(b, "problemId"),
            })
        }
        "EventData" => TelemetryData::Event(Event {
            name: required(b, "name", "baseData.name")?,
        }),
        "MetricData" | "MetricsData" => {
            let Some(Value::Array(list)) = b.get("metrics") else {
                return Err(EnvelopeError::missing("baseData.metrics"));
            };
            let mut metrics = Vec::with_capacity(list.len());
            for p in list {
                let Value::Object(p) = p else {
                    return Err(EnvelopeError::invalid("baseData.metrics"));
                };
                metrics.push(DataPoint {
                    namespace: text(p, "ns"),
                    name: required(p, "name", "baseData.metrics.name")?,
                    value: p
                        .get("value")
                        .and_then(Value::as_f64)
                        .ok_or_else(|| EnvelopeError::missing("baseData.metrics.value"))?,
                    count: p.get("count").and_then(Value::as_f64).map(|c| c as u64),
                    min: p.get("min").and_then(Value::as_f64),
                    max: p.get("max").and_then(Value::as_f64),
                    std_dev: p.get("stdDev").and_then(Value::as_f64),
                });
            }
            TelemetryData::Metric(Metric { metrics })
        }
        "PageViewData" => TelemetryData::PageView(PageView {
            id: required(b, "id", "baseData.id")?,
            name: required(b, "name", "baseData.name")?,
            url: text(b, "url"),
            duration: string(b, "duration").and_then(|d| wire_time::parse_duration(&d)),
            referred_uri: text(b, "referredUri"),
        }),
        other => {
            b.remove("properties");
            b.remove("measurements");
            TelemetryData::Other(OtherData {
                base_type: other.to_owned(),
                base_data: Value::Object(core::mem::take(b)).to_string(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tags;
    use proptest::prelude::*;

    const CAPTURES: [(&str, &str); 3] = [
        (
            "node w3c",
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/data/captures/node-applicationinsights-2.9.8-w3c.ndjson"
            )),
        ),
        (
            "node legacy",
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/data/captures/node-applicationinsights-2.9.8-requestid-legacy.ndjson"
            )),
        ),
        (
            "python",
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/data/captures/python-azure-monitor-exporter-1.0.0b58.ndjson"
            )),
        ),
    ];

    /// Every envelope real SDKs sent parses, keeps its ids, and survives a round trip.
    #[test]
    fn spec_7_parses_every_capture() {
        let mut kinds = std::collections::BTreeSet::new();
        for (what, text) in CAPTURES {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let p = parse(line.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}: {line}"));
                kinds.insert(p.telemetry.kind());
                let json = to_json(&p.telemetry, p.ikey.as_deref().unwrap_or(""));
                let mut again = parse(json.as_bytes()).unwrap().telemetry;
                // sampleRate 100 is not written (SPEC 7.1), so it reads back as undecided.
                again.sample_rate = again
                    .sample_rate
                    .or(p.telemetry.sample_rate.filter(|r| *r >= 100.0));
                assert_eq!(again, p.telemetry, "{what}");
            }
        }
        assert!(kinds.contains(&TelemetryKind::Request));
        assert!(kinds.contains(&TelemetryKind::Dependency));
        assert!(kinds.contains(&TelemetryKind::Metric));
    }

    #[test]
    fn spec_7_node_capture_fields() {
        let line = CAPTURES[0].1.lines().next().unwrap();
        let p = parse(line.as_bytes()).unwrap();
        assert_eq!(
            p.ikey.as_deref(),
            Some("00000000-1111-2222-3333-444444444444")
        );
        let TelemetryData::Dependency(d) = &p.telemetry.data else {
            panic!()
        };
        assert_eq!(d.id, "|0af7651916cd43dd8448eb211c80319c.533cff2d8cc34f77.");
        assert_eq!(d.target, "127.0.0.1:45611 | cid-v1:downstream-app-id");
        assert_eq!(d.duration, Duration::from_millis(3));
        assert_eq!(
            p.telemetry.operation_id(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        // Empty tags are dropped ("ai.device.id": "").
        assert_eq!(p.telemetry.tags.get("ai.device.id"), None);
    }

    fn sample() -> Telemetry {
        let mut r = Request::new("GET /orders/{id}", "404", Duration::from_micros(1500));
        r.id = "b7ad6b7169203331".into();
        r.url = "http://h/orders/1".into();
        let mut t = Telemetry::new(r);
        t.tags
            .insert(tags::OPERATION_ID, "0af7651916cd43dd8448eb211c80319c");
        t.tags.insert(tags::CLOUD_ROLE, "");
        t.properties.insert("k".into(), "v".into());
        t.measurements.insert("nan".into(), f64::NAN);
        t.sample_rate = Some(25.0);
        t
    }

    #[test]
    fn spec_7_1_envelope_shape() {
        let v: Value = serde_json::from_str(&to_json(&sample(), "aaaa-bb")).unwrap();
        assert_eq!(v["ver"], 1);
        assert_eq!(v["name"], "Microsoft.ApplicationInsights.aaaabb.Request");
        assert_eq!(v["iKey"], "aaaa-bb");
        assert_eq!(v["sampleRate"], 25.0);
        assert_eq!(v["data"]["baseType"], "RequestData");
        assert_eq!(v["data"]["baseData"]["ver"], 2);
        assert_eq!(v["data"]["baseData"]["success"], false);
        assert_eq!(v["data"]["baseData"]["responseCode"], "404");
        assert_eq!(v["data"]["baseData"]["duration"], "00:00:00.0015000");
        // SPEC 7.3: empty strings omitted.
        assert!(v["tags"].get(tags::CLOUD_ROLE).is_none());
        assert!(v["data"]["baseData"].get("source").is_none());
        // Non-finite measurements cannot be JSON.
        assert!(
            v["data"]["baseData"]
                .get("measurements")
                .unwrap()
                .as_object()
                .unwrap()
                .is_empty()
        );
        let no_key: Value = serde_json::from_str(&to_json(&sample(), "")).unwrap();
        assert_eq!(no_key["name"], "Microsoft.ApplicationInsights.Request");
        assert!(no_key.get("iKey").is_none());
    }

    #[test]
    fn spec_8_3_sample_rate_only_below_100() {
        let mut t = sample();
        t.sample_rate = Some(100.0);
        let v: Value = serde_json::from_str(&to_json(&t, "")).unwrap();
        assert!(v.get("sampleRate").is_none());
    }

    #[test]
    fn spec_6_5_limits_applied_on_the_wire() {
        let mut t = sample();
        if let TelemetryData::Request(r) = &mut t.data {
            r.name = "名".repeat(3000);
            r.id = "x".repeat(2000);
        }
        t.tags.insert(tags::OPERATION_PARENT_ID, "p".repeat(500));
        t.properties.insert("k".repeat(400), "v".repeat(9000));
        let v: Value = serde_json::from_str(&to_json(&t, "")).unwrap();
        let bd = &v["data"]["baseData"];
        assert_eq!(bd["name"].as_str().unwrap().chars().count(), 1024);
        assert_eq!(bd["id"].as_str().unwrap().len(), 512);
        assert_eq!(
            v["tags"][tags::OPERATION_PARENT_ID].as_str().unwrap().len(),
            128
        );
        let (k, pv) = bd["properties"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.starts_with("kk"))
            .unwrap();
        assert_eq!((k.len(), pv.as_str().unwrap().len()), (150, 8192));
    }

    #[test]
    fn rejects_what_the_schema_requires() {
        let ok = to_json(&sample(), "");
        assert!(parse(ok.as_bytes()).is_ok());
        for (field, broken) in [
            (
                "name",
                ok.replace("\"name\":\"Microsoft", "\"nom\":\"Microsoft"),
            ),
            ("time", ok.replace("\"time\"", "\"tim\"")),
            ("data.baseType", ok.replace("\"baseType\"", "\"base\"")),
            (
                "baseData.responseCode",
                ok.replace("\"responseCode\"", "\"rc\""),
            ),
            ("baseData.success", ok.replace("\"success\"", "\"ok\"")),
        ] {
            let e = parse(broken.as_bytes()).unwrap_err();
            assert_eq!(e.kind(), EnvelopeErrorKind::MissingField, "{field}");
            assert!(e.to_string().contains(field), "{e}");
        }
        assert_eq!(parse(b"[1]").unwrap_err().kind(), EnvelopeErrorKind::Json);
        assert_eq!(parse(b"{").unwrap_err().kind(), EnvelopeErrorKind::Json);
    }

    #[test]
    fn every_type_round_trips() {
        let mut items = vec![
            Telemetry::new(Dependency::new("GET /x", "Http")),
            Telemetry::new(Trace::new("hello", SeverityLevel::Warning)),
            Telemetry::new(Exception::new("io::Error", "boom")),
            Telemetry::new(Event::new("clicked")),
            Telemetry::new(Metric::new("queue", 3.5)),
            Telemetry::new(PageView {
                id: "p1".into(),
                name: "Home".into(),
                duration: Some(Duration::from_millis(20)),
                ..PageView::default()
            }),
            Telemetry::new(OtherData {
                base_type: "AvailabilityData".into(),
                base_data: r#"{"id":"a","ver":2}"#.into(),
            }),
        ];
        for t in &mut items {
            t.time = wire_time::parse_time("2026-11-21T05:46:41.1234567Z").unwrap();
            let back = parse(to_json(t, "k").as_bytes()).unwrap().telemetry;
            assert_eq!(&back, t);
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC{0,300}") {
            let _ = parse(s.as_bytes());
        }

        #[test]
        fn request_round_trips(name in "\\PC{0,50}", code in "[0-9]{3}", props in proptest::collection::btree_map("[a-z]{1,8}", "\\PC{0,20}", 0..4)) {
            let mut r = Request::new(name, code, Duration::from_millis(7));
            r.id = "b7ad6b7169203331".into();
            let mut t = Telemetry::new(r);
            t.time = wire_time::parse_time("2026-11-21T05:46:41Z").unwrap();
            t.properties = props;
            let back = parse(to_json(&t, "").as_bytes()).unwrap().telemetry;
            prop_assert_eq!(back, t);
        }
    }
}
