//! The legacy `Request-Id` header and hierarchical ids (SPEC 3.3-3.6), as the .NET SDK and
//! `System.Diagnostics.Activity` define them.
//!
//! - A valid Request-Id has at most 1024 bytes of `[A-Za-z0-9+/=\-|._#]` (SPEC 3.3).
//! - Its root: drop a leading `|`, cut at the first `.` (SPEC 3.4).
//! - A W3C-compatible one, `|<32 lower hex>.…`, carries a trace-id (SPEC 2.2).
//! - In W3C mode the outgoing value is `|<trace-id>.<span-id>.` (SPEC 3.5).
//! - Hierarchical mode (SPEC 3.6): an incoming request's id is the parent + (`.` unless it
//!   ends in `.` or `_`) + 8 random hex + `_`; a child's is the parent + a decimal counter +
//!   `.`. When the result would be longer than 1024 chars, the parent is cut after its last
//!   `.` or `_` found scanning back from position 1015, and 8 random hex + `#` are appended,
//!   so an id never passes 1024 chars; with no such delimiter a new root `|<trace-id>.` starts.
//!   This is .NET's `Activity.AppendSuffix` to the letter, which SPEC 3.6 describes.
//!
//! ```
//! use tracelink_core::request_id;
//!
//! assert_eq!(request_id::root("|legacy-root-42.1.2."), "legacy-root-42");
//! let t = request_id::w3c_trace_id("|0af7651916cd43dd8448eb211c80319c.b7ad6b7169203331.").unwrap();
//! assert_eq!(t.to_string(), "0af7651916cd43dd8448eb211c80319c");
//! assert_eq!(request_id::child("|abc.1_", 3, t), "|abc.1_3.");
//! ```

use core::fmt::Write as _;

use crate::error::{ParseError, ParseErrorKind};
use crate::id::{AsciiBuf, SpanId, TraceId, parse_lower_hex, write_lower_hex};
use crate::rng;

/// Longest valid Request-Id (SPEC 3.3).
pub const MAX_LEN: usize = 1024;
/// Where the overflow search starts: room for 8 hex and `#` (SPEC 3.6).
const TRIM_POSITION: usize = MAX_LEN - 9;

const NAME: &str = "request-id";

fn is_id_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"+/=-|._#".contains(&c)
}

/// Validates a Request-Id (SPEC 3.3) after trimming white space; returns the trimmed id.
///
/// ```
/// use tracelink_core::request_id;
/// assert_eq!(request_id::parse(" |a.b. ").unwrap(), "|a.b.");
/// assert!(request_id::parse("|a b").is_err());
/// assert!(request_id::parse(&"a".repeat(1025)).is_err());
/// ```
pub fn parse(value: &str) -> Result<&str, ParseError> {
    let s = value.trim_matches([' ', '\t']);
    if s.is_empty() {
        return Err(ParseError::new(NAME, ParseErrorKind::Empty));
    }
    if s.len() > MAX_LEN {
        return Err(ParseError::new(NAME, ParseErrorKind::InvalidLength));
    }
    if !s.bytes().all(is_id_char) {
        return Err(ParseError::new(NAME, ParseErrorKind::InvalidCharacter));
    }
    Ok(s)
}

/// Like [`parse`] over all header lines: exactly one line is accepted.
pub fn parse_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<&'a str, ParseError> {
    let mut it = lines.into_iter();
    let first = it
        .next()
        .ok_or(ParseError::new(NAME, ParseErrorKind::Empty))?;
    if it.next().is_some() {
        return Err(ParseError::new(NAME, ParseErrorKind::Multiple));
    }
    parse(first)
}

/// The root of a Request-Id (SPEC 3.4): without a leading `|`, up to the first `.`.
pub fn root(id: &str) -> &str {
    let s = id.strip_prefix('|').unwrap_or(id);
    s.split('.').next().unwrap_or(s)
}

/// The trace-id of a W3C-compatible Request-Id `|<32 lower hex>.…` (SPEC 2.2).
pub fn w3c_trace_id(id: &str) -> Option<TraceId> {
    let b = id.as_bytes();
    if b.len() < 34 || b[0] != b'|' || b[33] != b'.' {
        return None;
    }
    parse_lower_hex(&b[1..33]).and_then(TraceId::from_u128)
}

/// The back-compat Request-Id sent in W3C mode: `|<trace-id>.<span-id>.` (SPEC 3.5),
/// formatted on the stack.
pub fn w3c_compatible(trace_id: TraceId, span_id: SpanId) -> AsciiBuf<51> {
    let mut b = [b'.'; 51];
    b[0] = b'|';
    write_lower_hex(trace_id.to_u128(), &mut b[1..33]);
    write_lower_hex(u128::from(span_id.to_u64()), &mut b[34..50]);
    AsciiBuf::from_ascii(b)
}

/// A new hierarchical root: `|<trace-id>.` (SPEC 3.6).
pub fn new_root(trace_id: TraceId) -> String {
    let mut s = String::with_capacity(34);
    s.push('|');
    s.push_str(&trace_id.to_hex());
    s.push('.');
    s
}

/// The id of an incoming request whose caller sent `parent` (SPEC 3.6): `parent` (with a
/// leading `|` added when missing, as .NET does) + `.` unless it ends in `.` or `_` + 8
/// random hex + `_`. `trace_id` is used only when the overflow rule needs a new root.
pub fn incoming(parent: &str, trace_id: TraceId) -> String {
    let mut base = String::with_capacity(parent.len() + 11);
    if !parent.starts_with('|') {
        base.push('|');
    }
    base.push_str(parent);
    if !base.ends_with(['.', '_']) {
        base.push('.');
    }
    let suffix = random_hex8();
    append_suffix(base, &suffix, '_', trace_id)
}

/// The id of the `n`-th child of `parent` (SPEC 3.6): `parent` + `n` in decimal + `.`.
pub fn child(parent: &str, n: u32, trace_id: TraceId) -> String {
    let mut digits = String::with_capacity(10);
    let _ = write!(digits, "{n}");
    append_suffix(parent.to_owned(), &digits, '.', trace_id)
}

fn random_hex8() -> String {
    let mut s = String::with_capacity(8);
    let _ = write!(s, "{:08x}", rng::next_u64() as u32);
    s
}

/// .NET's `AppendSuffix`: the result is at most 1024 chars.
fn append_suffix(mut parent: String, suffix: &str, delimiter: char, trace_id: TraceId) -> String {
    if parent.len() + suffix.len() < MAX_LEN {
        parent.push_str(suffix);
        parent.push(delimiter);
        return parent;
    }
    let b = parent.as_bytes();
    let mut trim = TRIM_POSITION.min(b.len());
    while trim > 1 && !matches!(b[trim - 1], b'.' | b'_') {
        trim -= 1;
    }
    if trim <= 1 {
        return new_root(trace_id);
    }
    // Only ASCII delimiters end the kept part, so `trim` is a char boundary.
    parent.truncate(trim);
    parent.push_str(&random_hex8());
    parent.push('#');
    parent
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t() -> TraceId {
        "0af7651916cd43dd8448eb211c80319c".parse().unwrap()
    }

    #[test]
    fn spec_3_3_charset_and_length() {
        assert!(parse("|Ab+/=-_.#9").is_ok());
        assert!(parse(&"a".repeat(1024)).is_ok());
        assert_eq!(
            parse(&"a".repeat(1025)).unwrap_err().kind(),
            ParseErrorKind::InvalidLength
        );
        assert!(parse("|a,b").is_err());
        assert!(parse("").is_err());
        assert!(parse_lines(["|a.", "|b."]).is_err());
    }

    #[test]
    fn spec_3_4_root() {
        assert_eq!(root("|abc.1.2_"), "abc");
        assert_eq!(root("abc"), "abc");
        assert_eq!(root("|abc"), "abc");
        assert_eq!(root("|"), "");
        assert_eq!(root(".x"), "");
    }

    #[test]
    fn spec_2_2_w3c_compatible_ids() {
        assert_eq!(
            w3c_trace_id("|0af7651916cd43dd8448eb211c80319c.b7ad6b7169203331."),
            Some(t())
        );
        assert_eq!(
            w3c_trace_id("|0af7651916cd43dd8448eb211c80319c."),
            Some(t())
        );
        assert_eq!(w3c_trace_id("|0af7651916cd43dd8448eb211c80319c"), None);
        assert_eq!(w3c_trace_id("|0AF7651916CD43DD8448EB211C80319C."), None);
        assert_eq!(w3c_trace_id("|00000000000000000000000000000000."), None);
        assert_eq!(w3c_trace_id("0af7651916cd43dd8448eb211c80319c.x"), None);
    }

    #[test]
    fn spec_3_5_w3c_back_compat_value() {
        let s: SpanId = "533cff2d8cc34f77".parse().unwrap();
        assert_eq!(
            w3c_compatible(t(), s).as_str(),
            "|0af7651916cd43dd8448eb211c80319c.533cff2d8cc34f77."
        );
    }

    #[test]
    fn spec_3_6_incoming_and_child() {
        let id = incoming("|abc.1.", t());
        assert!(
            id.starts_with("|abc.1.") && id.ends_with('_') && id.len() == 16,
            "{id}"
        );
        assert!(id[7..15].bytes().all(|c| c.is_ascii_hexdigit()));
        let id = incoming("|abc.1_", t());
        assert!(id.starts_with("|abc.1_") && id.len() == 16);
        let id = incoming("abc", t());
        assert!(id.starts_with("|abc.") && id.len() == 14);
        assert_eq!(child("|abc.1_0badf00d_", 1, t()), "|abc.1_0badf00d_1.");
        assert_eq!(child("|abc.", 12, t()), "|abc.12.");
    }

    #[test]
    fn spec_3_6_overflow_is_exact() {
        // Fits: parent + suffix < 1024 → result is 1024 chars at most.
        let parent = format!("|{}.", "a".repeat(1020)); // 1022 chars
        assert_eq!(child(&parent, 7, t()).len(), 1024);
        // Overflow: parent + "10" = 1024 → cut after the last delimiter before 1015.
        let parent = format!("|{}.{}.", "a".repeat(900), "b".repeat(120)); // 1023 chars
        let id = child(&parent, 10, t());
        assert_eq!(&id[..902], &parent[..902]);
        assert_eq!(id.len(), 902 + 9);
        assert!(id.ends_with('#'));
        assert!(id[902..910].bytes().all(|c| c.is_ascii_hexdigit()));
        // A delimiter at index 1014 is kept; one at index 1015 is not.
        let mut p: Vec<u8> = vec![b'a'; 1023];
        p[0] = b'|';
        p[1014] = b'.';
        p[1015] = b'.';
        let p = String::from_utf8(p).unwrap();
        let id = child(&p, 99, t());
        assert_eq!(id.len(), 1024);
        assert_eq!(&id[..1015], &p[..1015]);
        // No delimiter at all: a new root.
        let p = format!("|{}", "a".repeat(1022));
        assert_eq!(child(&p, 1, t()), "|0af7651916cd43dd8448eb211c80319c.");
        assert_eq!(incoming(&p, t()), "|0af7651916cd43dd8448eb211c80319c.");
    }

    proptest! {
        #[test]
        fn generated_ids_are_valid(parent in "[A-Za-z0-9|._#-]{1,1100}", n in 0u32..) {
            let c = child(&parent, n, t());
            prop_assert!(c.len() <= MAX_LEN);
            prop_assert!(parse(&c).is_ok() || parent.len() > MAX_LEN, "{}", c);
            let i = incoming(&parent, t());
            prop_assert!(i.len() <= MAX_LEN);
        }

        #[test]
        fn never_panics(s in "\\PC{0,1100}") {
            let _ = parse(&s);
            let _ = root(&s);
            let _ = w3c_trace_id(&s);
        }
    }
}
