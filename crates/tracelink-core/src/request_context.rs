//! The `Request-Context` header and application ids (SPEC 5.1-5.2).
//!
//! `Request-Context` carries `key=value` items separated by `,`; tracelink trims spaces (ASCII
//! white space) around items, keys and values (the Node and JS SDKs do not; trimming only accepts more) and
//! matches the `appId` key case-insensitively. An application id is sent as `cid-v1:<appId>`,
//! cut to 50 chars, printable ASCII only.
//!
//! ```
//! use tracelink_core::{AppId, request_context};
//!
//! assert_eq!(request_context::app_id(" roleName=x , appId = cid-v1:abc "), Some("abc"));
//! assert_eq!(request_context::app_id("appId=cid-v1:"), None);
//! let own = AppId::new("f0e1d2c3").unwrap();
//! assert_eq!(own.header_value(), "appId=cid-v1:f0e1d2c3");
//! ```

use core::fmt;

use crate::error::{ParseError, ParseErrorKind};

/// The prefix of an application id on the wire.
pub const CID_PREFIX: &str = "cid-v1:";
/// Longest `cid-v1:<appId>` (SPEC 5.2).
pub const MAX_CID_LEN: usize = 50;

/// The items of a `Request-Context` value, trimmed.
pub fn items(value: &str) -> impl Iterator<Item = (&str, &str)> {
    value
        .split(',')
        .filter_map(|i| i.split_once('='))
        .map(|(k, v)| (k.trim_ascii(), v.trim_ascii()))
}

/// The raw `appId` item, e.g. `cid-v1:abc`.
pub fn app_id_item(value: &str) -> Option<&str> {
    items(value)
        .find(|(k, _)| k.eq_ignore_ascii_case("appId"))
        .map(|(_, v)| v)
}

/// The application id `X` of an `appId=cid-v1:X` item, when `X` is non-empty.
pub fn app_id(value: &str) -> Option<&str> {
    // Fast path: the form every SDK sends, the appId item first and untrimmed. An `=` in
    // the id, or white space or a control byte in it, is left to the general path.
    if let Some(rest) = value.strip_prefix(HEADER_PREFIX) {
        let end = rest
            .bytes()
            .position(|b| matches!(b, b',' | b'=') || b <= b' ');
        let id = &rest[..end.unwrap_or(rest.len())];
        if !id.is_empty() && end.is_none_or(|e| rest.as_bytes()[e] == b',') {
            return Some(id);
        }
    }
    app_id_in_items(value)
}

/// The id `X` of a value that is an `appId=cid-v1:X` item and nothing else, the form every
/// SDK sends, read from the bytes: `X` is visible ASCII without `,` or `=` (so also its text;
/// not checked a second time as UTF-8). Other values are left to [`app_id`] (`None`).
#[cfg(feature = "http")]
pub(crate) fn sole_app_id(value: &[u8]) -> Option<&[u8]> {
    let id = value.strip_prefix(HEADER_PREFIX.as_bytes())?;
    let plain = |b: &u8| (b'!'..=b'~').contains(b) && *b != b',' && *b != b'=';
    (!id.is_empty() && id.iter().all(plain)).then_some(id)
}

/// [`app_id`] from the trimmed items.
fn app_id_in_items(value: &str) -> Option<&str> {
    app_id_item(value)
        .and_then(|v| v.strip_prefix(CID_PREFIX))
        .map(str::trim_ascii)
        .filter(|x| !x.is_empty())
}

/// An application's id, as Application Insights assigns it (`ApplicationId=` in a connection
/// string): printable ASCII, at most 43 chars so that `cid-v1:<id>` fits in 50 (SPEC 5.2).
///
/// Longer input is cut to fit; anything but printable ASCII, or an empty id, is an error.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AppId {
    /// `appId=cid-v1:<id>`; the id starts at byte 13.
    header: Box<str>,
    /// The same, ready to be shared by every outgoing call and response.
    #[cfg(feature = "http")]
    value: http::HeaderValue,
}

const HEADER_PREFIX: &str = "appId=cid-v1:";
/// Where the `cid-v1:` value starts in `HEADER_PREFIX`.
#[cfg(feature = "http")]
pub(crate) const CID_AT: usize = "appId=".len();

impl AppId {
    /// Validates and stores an application id (without the `cid-v1:` prefix).
    pub fn new(id: &str) -> Result<Self, ParseError> {
        let id = id.trim();
        let id = id.strip_prefix(CID_PREFIX).unwrap_or(id);
        if id.is_empty() {
            return Err(ParseError::new("appId", ParseErrorKind::Empty));
        }
        if !id
            .bytes()
            .all(|c| c.is_ascii_graphic() && c != b',' && c != b'=')
        {
            return Err(ParseError::new("appId", ParseErrorKind::InvalidCharacter));
        }
        let id = &id[..id.len().min(MAX_CID_LEN - CID_PREFIX.len())];
        let header = format!("{HEADER_PREFIX}{id}").into_boxed_str();
        Ok(Self {
            // Printable ASCII, checked above: always a valid header value.
            #[cfg(feature = "http")]
            value: http::HeaderValue::from_str(&header)
                .map_err(|_| ParseError::new("appId", ParseErrorKind::InvalidCharacter))?,
            header,
        })
    }

    /// The id, e.g. `f0e1d2c3`.
    pub fn as_str(&self) -> &str {
        &self.header[HEADER_PREFIX.len()..]
    }

    /// `cid-v1:<id>`, the form used in `source` and `target` (SPEC 2.9, 5.5).
    pub fn cid(&self) -> &str {
        &self.header["appId=".len()..]
    }

    /// `appId=cid-v1:<id>`, the `Request-Context` value to send (SPEC 5.3, 5.4).
    pub fn header_value(&self) -> &str {
        &self.header
    }

    /// [`AppId::header_value`] as an [`http::HeaderValue`], built once: cloning it shares
    /// the bytes.
    ///
    /// ```
    /// let own = tracelink_core::AppId::new("f0e1d2c3").unwrap();
    /// assert_eq!(own.http_value(), "appId=cid-v1:f0e1d2c3");
    /// ```
    #[cfg(feature = "http")]
    pub fn http_value(&self) -> &http::HeaderValue {
        &self.value
    }
}

impl fmt::Debug for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppId({:?})", self.as_str())
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_5_1_items_are_trimmed() {
        assert_eq!(app_id("appId=cid-v1:x"), Some("x"));
        assert_eq!(app_id("appId=cid-v1:x ,roleName=y"), Some("x"));
        // The first appId item decides, even when empty.
        assert_eq!(app_id("appId=cid-v1:, appId=cid-v1:later"), None);
        assert_eq!(app_id(" appId = cid-v1:x ,roleName=y"), Some("x"));
        assert_eq!(app_id("APPID=cid-v1:x"), Some("x"));
        assert_eq!(app_id("appId=x"), None);
        assert_eq!(app_id("roleName=y"), None);
        assert_eq!(app_id(""), None);
    }

    #[test]
    fn spec_5_2_app_id_format() {
        let long = "a".repeat(60);
        let id = AppId::new(&long).unwrap();
        assert_eq!(id.cid().len(), 50);
        assert_eq!(AppId::new("cid-v1:abc").unwrap().as_str(), "abc");
        assert!(AppId::new("").is_err());
        assert!(AppId::new("a b").is_err());
        assert!(AppId::new("é").is_err());
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_the_items(s in "(appId=cid-v1:)?[a-c=, \t\n\u{a0}]{0,12}") {
            prop_assert_eq!(app_id(&s), app_id_in_items(&s), "{:?}", s);
        }

        #[cfg(feature = "http")]
        #[test]
        fn the_sole_item_is_read_as_app_id_reads_it(s in "(appId=cid-v1:)?[a-c=, \t\u{7f}\u{a0}-]{0,8}") {
            if let Some(x) = sole_app_id(s.as_bytes()) {
                let x = core::str::from_utf8(x).unwrap();
                prop_assert_eq!(app_id(&s), Some(x));
                prop_assert_eq!(&s[CID_AT..], format!("{CID_PREFIX}{x}"));
            }
        }

        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = app_id(&s);
            if let Ok(id) = AppId::new(&s) {
                prop_assert_eq!(app_id(id.header_value()), Some(id.as_str()));
            }
        }
    }
}
