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
//! use tracelink_core::envelope;
//! use tracelink_core::model::{Request, Telemetry};
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
use std::time::Duration;

use serde_json::{Map, Value};

use crate::model::limits::{self, truncate};
use crate::model::{
    DataPoint, Dependency, Event, Exception, ExceptionDetails, Metric, OtherData, PageView,
    Request, SeverityLevel, Tags, Telemetry, TelemetryData, TelemetryKind, Trace,
};
use crate::swar;
use crate::wire_time;

/// The item as one line of JSON (no trailing newline).
pub fn to_json(item: &Telemetry, ikey: &str) -> String {
    let mut out = Vec::with_capacity(768);
    write_envelope(&mut out, item, ikey);
    // Only UTF-8 is written: text is cut on char boundaries and escapes are ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the item as one line of JSON and a `\n` (the body format of SPEC 7.4).
pub fn write_line(out: &mut Vec<u8>, item: &Telemetry, ikey: &str) {
    write_envelope(out, item, ikey);
    out.push(b'\n');
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

/// Bytes that need escaping in a JSON string: `"`, `\` and the control characters.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Whether no byte of `w` needs escaping.
fn plain_word(w: u64) -> bool {
    !(swar::has_below(w, 0x20) || swar::has_byte(w, b'"') || swar::has_byte(w, b'\\'))
}

/// Appends JSON string contents (no quotes): `"`, `\` and control characters escaped.
/// `b` is UTF-8 (or ASCII).
fn escape_into(out: &mut Vec<u8>, b: &[u8]) {
    // Most text needs no escaping: check it eight bytes at a time, the bytes after the last
    // whole word as the text's last eight bytes (overlapping), and copy it at once.
    let clean = swar::plain_prefix(b, plain_word);
    let tail_clean = || {
        let last: Option<[u8; 8]> = b
            .get(b.len().wrapping_sub(8)..)
            .and_then(|t| t.try_into().ok());
        last.is_some_and(|w| plain_word(u64::from_le_bytes(w)))
    };
    if clean == b.len() || (clean + 8 > b.len() && tail_clean()) {
        out.extend_from_slice(b);
        return;
    }
    escape_from(out, b, clean);
}

/// [`escape_into`] for text whose first `clean` bytes need no escaping.
fn escape_from(out: &mut Vec<u8>, b: &[u8], clean: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &c) in b.iter().enumerate().skip(clean) {
        if !NEEDS_ESCAPE[usize::from(c)] {
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 0xf)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

/// A JSON string of `s` cut to `max` chars.
fn json_string(out: &mut Vec<u8>, s: &str, max: usize) {
    json_bytes(out, truncate(s, max).as_bytes());
}

/// A JSON string of UTF-8 (or ASCII) bytes, not cut.
fn json_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(b.len() + 2);
    out.push(b'"');
    escape_into(out, b);
    out.push(b'"');
}

/// `fmt::Write` into a byte buffer, for floats.
struct Bytes<'a>(&'a mut Vec<u8>);

impl fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A JSON object being written; each key adds the separator it needs.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    fn comma(&mut self) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
    }

    /// A key from telemetry: escaped.
    fn key(&mut self, k: &str) -> &mut Vec<u8> {
        self.comma();
        json_string(self.out, k, usize::MAX);
        self.out.push(b':');
        self.out
    }

    /// One of our own keys: plain ASCII, written as is.
    fn lit(&mut self, k: &'static str) -> &mut Vec<u8> {
        self.plain_key(k)
    }

    /// A key known to need no escaping or cutting, written as is.
    fn plain_key(&mut self, k: &str) -> &mut Vec<u8> {
        // `,"k":` appended at once from the stack for the short keys every item has.
        let mut buf = [0u8; 40];
        let k = k.as_bytes();
        if k.len() + 4 > buf.len() {
            self.comma();
            self.out.push(b'"');
            self.out.extend_from_slice(k);
            self.out.extend_from_slice(b"\":");
            return self.out;
        }
        let start = usize::from(!self.empty);
        buf[0] = b',';
        buf[1] = b'"';
        buf[2..2 + k.len()].copy_from_slice(k);
        buf[2 + k.len()..4 + k.len()].copy_from_slice(b"\":");
        self.empty = false;
        self.out.extend_from_slice(&buf[1 - start..4 + k.len()]);
        self.out
    }

    fn str(&mut self, k: &'static str, v: &str, max: usize) {
        json_string(self.lit(k), v, max);
    }

    /// Writes `k` only when `v` is non-empty (SPEC 7.3).
    fn opt(&mut self, k: &'static str, v: &str, max: usize) {
        if !v.is_empty() {
            self.str(k, v, max);
        }
    }

    fn bool(&mut self, k: &'static str, v: bool) {
        let s: &[u8] = if v { b"true" } else { b"false" };
        self.lit(k).extend_from_slice(s);
    }

    fn int(&mut self, k: &'static str, v: u64) {
        wire_time::write_u64(self.lit(k), v);
    }

    fn num(out: &mut Vec<u8>, v: f64) {
        // Debug is the shortest text that reads back as the same f64, exponent included.
        let _ = fmt::Write::write_fmt(&mut Bytes(out), format_args!("{v:?}"));
    }

    fn duration(&mut self, k: &'static str, d: Duration) {
        let out = self.lit(k);
        out.push(b'"');
        wire_time::write_duration(out, d);
        out.push(b'"');
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// The instrumentation key without its dashes, escaped, as the envelope name carries it.
fn write_ikey_name(out: &mut Vec<u8>, ikey: &str) {
    // A GUID (the usual key): its 32 hex digits copied at once.
    let mut buf = [0u8; 36];
    let mut n = 0;
    if ikey.len() <= buf.len() && ikey.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        for c in ikey.bytes().filter(|&c| c != b'-') {
            buf[n] = c;
            n += 1;
        }
        out.extend_from_slice(&buf[..n]);
        return;
    }
    for part in ikey.split('-') {
        escape_into(out, part.as_bytes());
    }
}

/// Writes one envelope (SPEC 7.1-7.3).
fn write_envelope(out: &mut Vec<u8>, item: &Telemetry, ikey: &str) {
    let kind = item.kind();
    let mut env = Obj::open(out);
    env.int("ver", 1);
    let type_name = match &item.data {
        TelemetryData::Other(o) => o.base_type.strip_suffix("Data").unwrap_or(&o.base_type),
        _ => kind.envelope_type(),
    };
    let name = env.lit("name");
    name.extend_from_slice(b"\"Microsoft.ApplicationInsights.");
    if !ikey.is_empty() {
        write_ikey_name(name, ikey);
        name.push(b'.');
    }
    escape_into(name, type_name.as_bytes());
    name.push(b'"');
    let time = env.lit("time");
    time.push(b'"');
    wire_time::write_time(time, item.time);
    time.push(b'"');
    if let Some(rate) = item.sample_rate.filter(|r| *r < 100.0 && *r > 0.0) {
        Obj::num(env.lit("sampleRate"), rate);
    }
    env.opt("iKey", ikey, usize::MAX);
    let mut tags = Obj::open(env.lit("tags"));
    for (k, v) in item.tags.entries() {
        let b = v.as_bytes();
        if b.is_empty() {
            continue;
        }
        let (out, max) = match limits::tag(k) {
            // A tag name of SPEC 6.5's table: plain ASCII, written as is.
            Some(max) => (tags.plain_key(k), max),
            None => (
                tags.key(truncate(k, limits::PROPERTY_KEY)),
                limits::PROPERTY_VALUE,
            ),
        };
        // At most `max` bytes are at most `max` chars: nothing to cut.
        match b.len() <= max {
            true => json_bytes(out, b),
            false => json_string(out, v.as_str(), max),
        }
    }
    tags.close();
    let mut data = Obj::open(env.lit("data"));
    match &item.data {
        TelemetryData::Other(o) => {
            data.str("baseType", &o.base_type, usize::MAX);
            // Our own raw JSON, re-checked: anything unreadable becomes null.
            let v: Value = serde_json::from_str(&o.base_data).unwrap_or(Value::Null);
            let _ = serde_json::to_writer(&mut *data.lit("baseData"), &v);
        }
        _ => {
            data.str("baseType", base_type(kind), usize::MAX);
            write_base_data(data.lit("baseData"), item);
        }
    }
    data.close();
    env.close();
}

fn write_base_data(out: &mut Vec<u8>, item: &Telemetry) {
    let mut m = Obj::open(out);
    m.int("ver", 2);
    match &item.data {
        TelemetryData::Request(r) => {
            m.opt("id", &r.id, limits::ID);
            m.opt("name", &r.name, limits::NAME);
            m.duration("duration", r.duration);
            m.bool("success", r.success);
            m.str("responseCode", &r.response_code, limits::RESPONSE_CODE);
            m.opt("source", &r.source, limits::SOURCE);
            m.opt("url", &r.url, limits::URL);
        }
        TelemetryData::Dependency(d) => {
            m.str("name", &d.name, limits::NAME);
            m.opt("id", &d.id, limits::ID);
            m.opt("resultCode", &d.result_code, limits::RESPONSE_CODE);
            m.duration("duration", d.duration);
            m.bool("success", d.success);
            m.opt("data", &d.data, limits::DATA);
            m.opt("target", &d.target, limits::TARGET);
            m.opt("type", &d.dependency_type, limits::TYPE);
        }
        TelemetryData::Trace(t) => {
            m.str("message", &t.message, limits::MESSAGE);
            if let Some(sev) = t.severity {
                m.str("severityLevel", sev.as_str(), usize::MAX);
            }
        }
        TelemetryData::Exception(e) => {
            let list = m.lit("exceptions");
            list.push(b'[');
            for (i, x) in e.exceptions.iter().enumerate() {
                if i > 0 {
                    list.push(b',');
                }
                let mut o = Obj::open(list);
                o.int("id", i as u64);
                if i > 0 {
                    o.int("outerId", (i - 1) as u64);
                }
                o.opt("typeName", &x.type_name, limits::TYPE_NAME);
                o.str("message", &x.message, limits::MESSAGE);
                o.bool("hasFullStack", !x.stack.is_empty());
                o.opt("stack", &x.stack, limits::MESSAGE);
                o.close();
            }
            list.push(b']');
            if let Some(sev) = e.severity {
                m.str("severityLevel", sev.as_str(), usize::MAX);
            }
            m.opt("problemId", &e.problem_id, limits::TYPE_NAME);
        }
        TelemetryData::Event(e) => m.str("name", &e.name, limits::EVENT_NAME),
        TelemetryData::Metric(x) => {
            let list = m.lit("metrics");
            list.push(b'[');
            for (i, p) in x.metrics.iter().filter(|p| p.value.is_finite()).enumerate() {
                if i > 0 {
                    list.push(b',');
                }
                let mut o = Obj::open(list);
                o.opt("ns", &p.namespace, limits::METRIC_NAMESPACE);
                o.str("name", &p.name, limits::TYPE_NAME);
                let kind = if p.count.is_some() {
                    "Aggregation"
                } else {
                    "Measurement"
                };
                o.str("kind", kind, usize::MAX);
                Obj::num(o.lit("value"), p.value);
                if let Some(c) = p.count {
                    o.int("count", c);
                }
                for (k, v) in [("min", p.min), ("max", p.max), ("stdDev", p.std_dev)] {
                    if let Some(v) = v.filter(|v| v.is_finite()) {
                        Obj::num(o.lit(k), v);
                    }
                }
                o.close();
            }
            list.push(b']');
        }
        TelemetryData::PageView(p) => {
            m.str("id", &p.id, limits::ID);
            m.str("name", &p.name, limits::NAME);
            m.opt("url", &p.url, limits::URL);
            if let Some(d) = p.duration {
                m.duration("duration", d);
            }
            m.opt("referredUri", &p.referred_uri, limits::URL);
        }
        TelemetryData::Other(_) => {}
    }
    if !item.properties.is_empty() {
        let mut props = Obj::open(m.lit("properties"));
        for (k, v) in item.properties.iter().filter(|(k, _)| !k.is_empty()) {
            json_string(
                props.key(truncate(k, limits::PROPERTY_KEY)),
                v,
                limits::PROPERTY_VALUE,
            );
        }
        props.close();
    }
    if !matches!(item.data, TelemetryData::Metric(_)) && !item.measurements.is_empty() {
        let mut ms = Obj::open(m.lit("measurements"));
        for (k, v) in item.measurements.iter().filter(|(_, v)| v.is_finite()) {
            Obj::num(ms.key(truncate(k, limits::PROPERTY_KEY)), *v);
        }
        ms.close();
    }
    m.close();
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
/// let err = tracelink_core::envelope::parse(br#"{"name":"x","time":"2026-11-21T05:46:41Z"}"#).unwrap_err();
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
            response_code: required(b, "responseCode", "baseData.responseCode")?.into(),
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
            result_code: text(b, "resultCode").into(),
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

    #[test]
    fn every_special_byte_is_escaped_at_every_position() {
        for c in (0u8..0x20).chain([b'"', b'\\']) {
            for at in 0..17 {
                let mut s = "abcdefghijklmnopq".to_owned().into_bytes();
                s[at] = c;
                let s = String::from_utf8(s).unwrap();
                let mut out = Vec::new();
                json_string(&mut out, &s, usize::MAX);
                assert!(!out[1..out.len() - 1].iter().any(|&b| b < 0x20));
                assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s);
            }
        }
    }

    proptest! {
        #[test]
        fn escaping_round_trips_through_a_json_parser(s in any::<String>(), pad in 0usize..9) {
            // Padding moves the special characters across the eight-byte words.
            let s = format!("{}{s}", "x".repeat(pad));
            let mut out = Vec::new();
            json_string(&mut out, &s, usize::MAX);
            let back: String = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(back, s);
        }

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
