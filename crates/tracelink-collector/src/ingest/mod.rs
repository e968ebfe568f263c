//! The ingestion protocol (Breeze v2): `POST /v2/track` and `/v2.1/track`, a JSON array or
//! newline-delimited JSON, gzip or plain, answered with
//! `{"itemsReceived","itemsAccepted","errors":[{"index","statusCode","message"}]}`.
//!
//! - 200: every item accepted; 206: some items invalid (each listed with status 400 and why);
//!   400: the body is unreadable (bad gzip, not JSON) or no item is valid; 413: the body, or
//!   its decompressed form, is larger than the limit.
//! - An item is valid when it has `name`, `time`, `data.baseType` and the fields the Breeze
//!   schema requires of its type (see `tracelink_core::envelope::parse`).
//! - `baseType` is matched without regard to case, and under every spelling the shipping SDKs
//!   use: the JavaScript SDK sends page views as `PageviewData` and page load timings as
//!   `PageviewPerformanceData` (the schema's `PageViewPerfData`). Page load timings are
//!   stored as `browserTiming` items (name, URL, total time; the network, send, receive and
//!   DOM processing times in the envelope). A type the collector does not model is stored
//!   under its own name (`baseType` without `Data`) and named by its `name` or `message`.
//! - The envelope is stored as received.

mod fast;

use std::io::Read;

use serde::Serialize;
use serde_json::Value;
use tracelink_core::envelope;

use crate::store::{Raw, Row};

/// One rejected item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemError {
    /// Its position in the request.
    pub index: usize,
    /// Its own status (400).
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    /// Why.
    pub message: String,
}

/// The answer to a track request, as Breeze writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TrackResponse {
    /// Items in the request.
    #[serde(rename = "itemsReceived")]
    pub items_received: usize,
    /// Items stored.
    #[serde(rename = "itemsAccepted")]
    pub items_accepted: usize,
    /// The items refused.
    pub errors: Vec<ItemError>,
}

/// A body that could not be read at all.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// 400, with the reason.
    Unreadable(String),
    /// 413.
    TooLarge,
}

/// Decompresses when the body is gzip (by header or magic bytes), never past `limit` bytes.
pub(crate) fn decode(body: &[u8], gzip_header: bool, limit: usize) -> Result<Vec<u8>, BodyError> {
    let is_gzip = gzip_header || body.starts_with(&[0x1f, 0x8b]);
    if !is_gzip {
        return Ok(body.to_vec());
    }
    let mut out = Vec::with_capacity(body.len() * 4);
    let mut dec = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| BodyError::Unreadable(format!("unreadable gzip body: {e}")))?;
    if out.len() > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(out)
}

/// Reads one envelope into its row and `iKey`: the fast path for the usual requests and
/// dependencies, the full reader for everything else (and for its error message).
fn item(text: &str) -> Result<(Row, Option<String>), String> {
    if let Some(row) = fast::row(text) {
        return Ok(row);
    }
    let mut v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    canonical_base_type(&mut v);
    let e = envelope::from_value(v).map_err(|e| e.to_string())?;
    Ok((Row::from_item(&e.telemetry, Raw::default()), e.ikey))
}

/// Reads a body (a JSON array, or one JSON document per line) into the rows to store and the
/// response to send; `Ok(None)` when an item names an instrumentation key that `accept_ikey`
/// refuses (the whole request is refused). Each row's envelope stays in the body, which is
/// stored with the rows ([`Raw::Body`]: where it is in `body`).
pub(crate) fn read(
    body: &[u8],
    accept_ikey: &dyn Fn(Option<&str>) -> bool,
) -> Result<Option<(Vec<Row>, TrackResponse)>, BodyError> {
    let text =
        std::str::from_utf8(body).map_err(|_| BodyError::Unreadable("body is not UTF-8".into()))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(BodyError::Unreadable("empty body".into()));
    }
    let array: Vec<&serde_json::value::RawValue>;
    let items: Box<dyn Iterator<Item = &str>> = if trimmed.starts_with('[') {
        array = serde_json::from_str(trimmed)
            .map_err(|e| BodyError::Unreadable(format!("body is not a JSON array: {e}")))?;
        Box::new(array.iter().map(|r| r.get()))
    } else {
        Box::new(text.lines().filter(|l| !l.trim().is_empty()))
    };
    let mut response = TrackResponse::default();
    let mut rows = Vec::new();
    for (index, text) in items.enumerate() {
        response.items_received += 1;
        match item(text) {
            Ok((mut row, ikey)) => {
                if !accept_ikey(ikey.as_deref()) {
                    return Ok(None);
                }
                row.raw = Raw::Body {
                    at: text.as_ptr() as usize - body.as_ptr() as usize,
                    len: text.len(),
                };
                rows.push(row);
            }
            Err(message) => response.errors.push(ItemError {
                index,
                status_code: 400,
                message,
            }),
        }
    }
    response.items_accepted = rows.len();
    Ok(Some((rows, response)))
}

/// Every `baseType` spelling the shipping SDKs send, lowercased, and the one the envelope
/// reader knows.
const BASE_TYPES: [(&str, &str); 11] = [
    ("requestdata", "RequestData"),
    ("remotedependencydata", "RemoteDependencyData"),
    ("messagedata", "MessageData"),
    ("exceptiondata", "ExceptionData"),
    ("eventdata", "EventData"),
    ("metricdata", "MetricData"),
    ("metricsdata", "MetricData"),
    ("pageviewdata", "PageViewData"),
    ("pageviewperfdata", crate::store::PAGE_VIEW_PERFORMANCE),
    (
        "pageviewperformancedata",
        crate::store::PAGE_VIEW_PERFORMANCE,
    ),
    ("availabilitydata", "AvailabilityData"),
];

/// Rewrites `data.baseType` to the spelling the envelope reader knows, when it is one of
/// [`BASE_TYPES`] in any case.
pub(crate) fn canonical_base_type(v: &mut Value) {
    let Some(base_type) = v.get_mut("data").and_then(|d| d.get_mut("baseType")) else {
        return;
    };
    let Some(sent) = base_type.as_str() else {
        return;
    };
    if let Some((_, known)) = BASE_TYPES
        .iter()
        .find(|(lower, _)| sent.eq_ignore_ascii_case(lower))
        && sent != *known
    {
        *base_type = Value::from(*known);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_lines_and_errors() {
        let good = r#"{"name":"x","time":"2026-11-21T05:46:41Z","data":{"baseType":"EventData","baseData":{"ver":2,"name":"e"}}}"#;
        let arr = format!("[{good},{{\"time\":\"x\"}}]");
        let any = |_: Option<&str>| true;
        let (ok, res) = read(arr.as_bytes(), &any).unwrap().unwrap();
        assert_eq!(
            (ok.len(), res.items_received, res.items_accepted),
            (1, 2, 1)
        );
        assert_eq!(res.errors[0].index, 1);
        assert!(res.errors[0].message.contains("name"));
        let lines = format!("{good}\nnot json\n\n{good}\n");
        let (ok, res) = read(lines.as_bytes(), &any).unwrap().unwrap();
        assert_eq!((ok.len(), res.errors.len(), res.errors[0].index), (2, 1, 1));
        assert!(matches!(read(b"[1,", &any), Err(BodyError::Unreadable(_))));
        assert!(matches!(read(b"  ", &any), Err(BodyError::Unreadable(_))));
    }

    #[test]
    fn base_types_in_any_spelling() {
        let any = |_: Option<&str>| true;
        let item = |t: &str, base: &str| {
            format!(
                r#"{{"name":"x","time":"2026-11-21T05:46:41Z","iKey":"k","data":{{"baseType":"{t}","baseData":{base}}}}}"#
            )
        };
        let body = [
            item("PageviewData", r#"{"ver":2,"id":"p1","name":"Home","url":"http://h/"}"#),
            item("pageviewperformancedata", r#"{"ver":2,"name":"Home","perfTotal":"00:00:00.250","networkConnect":"00:00:00.010"}"#),
            item("PageViewPerfData", r#"{"ver":2,"name":"Home","duration":"00:00:00.100"}"#),
            item("REQUESTDATA", r#"{"ver":2,"id":"r","name":"GET /","duration":"00:00:00.001","responseCode":"200","success":true}"#),
            item("AvailabilityData", r#"{"ver":2,"id":"a","name":"ping","duration":"00:00:01","success":false,"runLocation":"west"}"#),
            item("SnapshotData", r#"{"ver":2,"message":"taken"}"#),
            item("OddData", r#"{"ver":2}"#),
        ]
        .join("\n");
        let (rows, res) = read(body.as_bytes(), &any).unwrap().unwrap();
        assert!(res.errors.is_empty(), "{res:?}");
        let got: Vec<(&str, Option<&str>, Option<f64>)> = rows
            .iter()
            .map(|r| (r.item_type.as_str(), r.name.as_deref(), r.duration_ms))
            .collect();
        assert_eq!(
            got,
            [
                ("pageView", Some("Home"), None),
                ("browserTiming", Some("Home"), Some(250.0)),
                ("browserTiming", Some("Home"), Some(100.0)),
                ("request", Some("GET /"), Some(1.0)),
                ("availabilityResult", Some("ping"), Some(1000.0)),
                ("Snapshot", Some("taken"), None),
                ("Odd", Some("Odd"), None),
            ]
        );
        assert_eq!(rows[0].id.as_deref(), Some("p1"));
        // Stored as received: where each envelope is in the body.
        let Raw::Body { at, len } = rows[1].raw else {
            panic!("{:?}", rows[1].raw)
        };
        assert!(body[at..at + len].contains("pageviewperformancedata"));
        assert_eq!(rows[4].success, Some(false));
        // An instrumentation key that is not accepted refuses the whole request.
        let only = |k: Option<&str>| k == Some("other");
        assert!(read(body.as_bytes(), &only).unwrap().is_none());
    }

    #[test]
    fn gzip_bombs_and_truncation() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b'a'; 10_000_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(decode(&gz, true, 1_000_000), Err(BodyError::TooLarge));
        assert_eq!(decode(&gz, true, 20_000_000).unwrap().len(), 10_000_000);
        assert!(matches!(
            decode(&gz[..gz.len() / 2], true, 20_000_000),
            Err(BodyError::Unreadable(_))
        ));
        assert_eq!(decode(b"plain", false, 10).unwrap(), b"plain");
    }
}
