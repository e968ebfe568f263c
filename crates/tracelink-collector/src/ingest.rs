//! The ingestion protocol (Breeze v2): `POST /v2/track` and `/v2.1/track`, a JSON array or
//! newline-delimited JSON, gzip or plain, answered with
//! `{"itemsReceived","itemsAccepted","errors":[{"index","statusCode","message"}]}`.
//!
//! - 200: every item accepted; 206: some items invalid (each listed with status 400 and why);
//!   400: the body is unreadable (bad gzip, not JSON) or no item is valid; 413: the body, or
//!   its decompressed form, is larger than the limit.
//! - An item is valid when it has `name`, `time`, `data.baseType` and the fields the Breeze
//!   schema requires of its type (see `tracelink_core::envelope::parse`).

use std::io::Read;

use serde::Serialize;
use serde_json::Value;
use tracelink_core::envelope::{self, ParsedEnvelope};

/// One item to store: the parsed envelope and its JSON as received.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) envelope: ParsedEnvelope,
    pub(crate) raw: String,
}

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

/// One item of a body: its JSON and raw text, or why it is not JSON.
pub(crate) type RawItem = Result<(Value, String), String>;

/// Splits a body into items: a JSON array, or one JSON document per line.
pub(crate) fn items(body: &[u8]) -> Result<Vec<RawItem>, BodyError> {
    let text =
        std::str::from_utf8(body).map_err(|_| BodyError::Unreadable("body is not UTF-8".into()))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(BodyError::Unreadable("empty body".into()));
    }
    if trimmed.starts_with('[') {
        let values: Vec<Value> = serde_json::from_str(trimmed)
            .map_err(|e| BodyError::Unreadable(format!("body is not a JSON array: {e}")))?;
        return Ok(values
            .into_iter()
            .map(|v| {
                let raw = v.to_string();
                Ok((v, raw))
            })
            .collect());
    }
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(v) => Ok((v, line.to_owned())),
            Err(e) => Err(format!("not JSON: {e}")),
        })
        .collect())
}

/// Validates every item: the accepted ones, and the response to send.
pub(crate) fn validate(
    items: Vec<Result<(Value, String), String>>,
) -> (Vec<Accepted>, TrackResponse) {
    let mut response = TrackResponse {
        items_received: items.len(),
        ..TrackResponse::default()
    };
    let mut accepted = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let parsed = item.and_then(|(v, raw)| {
            envelope::from_value(v)
                .map(|envelope| Accepted { envelope, raw })
                .map_err(|e| e.to_string())
        });
        match parsed {
            Ok(a) => accepted.push(a),
            Err(message) => response.errors.push(ItemError {
                index,
                status_code: 400,
                message,
            }),
        }
    }
    response.items_accepted = accepted.len();
    (accepted, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_lines_and_errors() {
        let good = r#"{"name":"x","time":"2026-11-21T05:46:41Z","data":{"baseType":"EventData","baseData":{"ver":2,"name":"e"}}}"#;
        let arr = format!("[{good},{{\"time\":\"x\"}}]");
        let (ok, res) = validate(items(arr.as_bytes()).unwrap());
        assert_eq!(
            (ok.len(), res.items_received, res.items_accepted),
            (1, 2, 1)
        );
        assert_eq!(res.errors[0].index, 1);
        assert!(res.errors[0].message.contains("name"));
        let lines = format!("{good}\nnot json\n\n{good}\n");
        let (ok, res) = validate(items(lines.as_bytes()).unwrap());
        assert_eq!((ok.len(), res.errors.len(), res.errors[0].index), (2, 1, 1));
        assert!(matches!(items(b"[1,"), Err(BodyError::Unreadable(_))));
        assert!(matches!(items(b"  "), Err(BodyError::Unreadable(_))));
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
