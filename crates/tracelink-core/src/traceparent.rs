//! The W3C `traceparent` header (SPEC 3.1).
//!
//! Parsing never allocates. Rules, all from SPEC 3.1:
//! - spaces and tabs around the value are trimmed first;
//! - version `00` is exactly 55 chars; `ff` is invalid; a higher version is parsed as `00` over
//!   its first 55 chars, and when longer its 56th char must be `-` (what follows is not
//!   read: a value held as bytes, as an `http::HeaderValue` may hold it, can have any bytes
//!   there);
//! - trace-id and parent-id are lower-case hex and not all zero; flags are two lower-case hex
//!   digits, and unknown flag bits are accepted (`03`, `09`, `ff` are valid);
//! - several header lines, or a comma in one line, make the header invalid (see
//!   [`TraceParent::parse_lines`]);
//! - outgoing values are always version `00` with flags `& 03`.
//!
//! ```
//! use tracelink_core::{TraceFlags, TraceParent};
//!
//! let tp: TraceParent = " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09 ".parse().unwrap();
//! assert!(tp.flags().is_sampled());
//! // Unknown flag bits are ignored on receipt and sent as zero.
//! assert_eq!(
//!     tp.to_header().as_str(),
//!     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
//! );
//! ```

use core::fmt;
use core::str::FromStr;

use crate::error::{ParseError, ParseErrorKind};
use crate::id::{AsciiBuf, SpanId, TraceId, parse_lower_hex, write_lower_hex};

const NAME: &str = "traceparent";
/// Length of a version-00 `traceparent` value.
pub const TRACEPARENT_LEN: usize = 55;

fn err(kind: ParseErrorKind) -> ParseError {
    ParseError::new(NAME, kind)
}

/// The W3C trace flags byte (SPEC 3.1, 2.7).
///
/// ```
/// use tracelink_core::TraceFlags;
///
/// let f = TraceFlags::from_byte(0xff);
/// assert!(f.is_sampled() && f.is_random());
/// assert_eq!(f.outgoing().to_byte(), 0x03);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// Bit 0: the caller may have recorded this trace.
    pub const SAMPLED: Self = Self(0x01);
    /// Bit 1 (Level 2): the trace-id's right 7 bytes are random.
    pub const RANDOM: Self = Self(0x02);
    /// Flags of a trace that tracelink starts itself (SPEC 2.7): `01`.
    pub const NEW_TRACE: Self = Self(0x01);

    /// Flags from the raw byte, keeping every bit as received.
    pub const fn from_byte(b: u8) -> Self {
        Self(b)
    }

    /// The raw byte.
    pub const fn to_byte(self) -> u8 {
        self.0
    }

    /// Whether bit 0 (sampled) is set.
    pub const fn is_sampled(self) -> bool {
        self.0 & 0x01 != 0
    }

    /// Whether bit 1 (random trace-id) is set.
    pub const fn is_random(self) -> bool {
        self.0 & 0x02 != 0
    }

    /// The flags as sent on an outgoing call: only the sampled and random bits (SPEC 3.1).
    pub const fn outgoing(self) -> Self {
        Self(self.0 & 0x03)
    }

    /// These flags with the sampled bit set or cleared.
    pub const fn with_sampled(self, sampled: bool) -> Self {
        if sampled {
            Self(self.0 | 0x01)
        } else {
            Self(self.0 & !0x01)
        }
    }
}

impl fmt::Debug for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceFlags({:02x})", self.0)
    }
}

/// A parsed `traceparent` value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TraceParent {
    version: u8,
    trace_id: TraceId,
    parent_id: SpanId,
    flags: TraceFlags,
}

impl TraceParent {
    /// A version-00 value.
    pub const fn new(trace_id: TraceId, parent_id: SpanId, flags: TraceFlags) -> Self {
        Self {
            version: 0,
            trace_id,
            parent_id,
            flags,
        }
    }

    /// Parses one header line (SPEC 3.1). Never allocates.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        Self::parse_bytes(value.as_bytes())
    }

    /// Parses one header line given as bytes, as an [`http::HeaderValue`] holds it: every
    /// byte is checked here, so it need not be checked as text first.
    pub(crate) fn parse_bytes(b: &[u8]) -> Result<Self, ParseError> {
        // Optional white space around the value (byte-wise: cheaper than a char pattern).
        let not_ows = |c: &u8| *c != b' ' && *c != b'\t';
        let start = b.iter().position(not_ows).unwrap_or(b.len());
        let end = b.iter().rposition(not_ows).map_or(start, |i| i + 1);
        let s = &b[start..end];
        if s.is_empty() {
            return Err(err(ParseErrorKind::Empty));
        }
        if s.len() < TRACEPARENT_LEN {
            return Err(err(ParseErrorKind::InvalidLength));
        }
        let version = match parse_lower_hex(&s[0..2]) {
            Some(v) if v != 0xff => v as u8,
            _ => return Err(err(ParseErrorKind::InvalidVersion)),
        };
        if s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
            return Err(err(ParseErrorKind::InvalidDelimiter));
        }
        if s.len() > TRACEPARENT_LEN {
            if version == 0 {
                return Err(err(ParseErrorKind::InvalidLength));
            }
            if s[TRACEPARENT_LEN] != b'-' {
                return Err(err(ParseErrorKind::InvalidDelimiter));
            }
            // A comma means two values were folded into one line.
            if s.contains(&b',') {
                return Err(err(ParseErrorKind::Multiple));
            }
        }
        let trace_id = parse_lower_hex(&s[3..35])
            .and_then(TraceId::from_u128)
            .ok_or(err(ParseErrorKind::InvalidTraceId))?;
        let parent_id = parse_lower_hex(&s[36..52])
            .and_then(|v| SpanId::from_u64(v as u64))
            .ok_or(err(ParseErrorKind::InvalidSpanId))?;
        let flags = parse_lower_hex(&s[53..55]).ok_or(err(ParseErrorKind::InvalidFlags))?;
        Ok(Self {
            version,
            trace_id,
            parent_id,
            flags: TraceFlags(flags as u8),
        })
    }

    /// Parses all lines of the header as a carrier holds them: exactly one line is allowed
    /// (SPEC 3.1: several lines are invalid).
    ///
    /// ```
    /// use tracelink_core::{ParseErrorKind, TraceParent};
    ///
    /// let v = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    /// assert!(TraceParent::parse_lines([v]).is_ok());
    /// assert_eq!(TraceParent::parse_lines([v, v]).unwrap_err().kind(), ParseErrorKind::Multiple);
    /// assert_eq!(TraceParent::parse_lines([]).unwrap_err().kind(), ParseErrorKind::Empty);
    /// ```
    pub fn parse_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Self, ParseError> {
        let mut lines = lines.into_iter();
        let first = lines.next().ok_or(err(ParseErrorKind::Empty))?;
        if lines.next().is_some() {
            return Err(err(ParseErrorKind::Multiple));
        }
        Self::parse(first)
    }

    /// The version received (`0` for values made here).
    pub const fn version(&self) -> u8 {
        self.version
    }

    /// The trace-id (the operation id).
    pub const fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The caller's span-id.
    pub const fn parent_id(&self) -> SpanId {
        self.parent_id
    }

    /// The flags as received.
    pub const fn flags(&self) -> TraceFlags {
        self.flags
    }

    /// The outgoing header value: version `00`, flags `& 03` (SPEC 3.1). Never allocates.
    pub fn to_header(&self) -> AsciiBuf<TRACEPARENT_LEN> {
        let mut b = [b'-'; TRACEPARENT_LEN];
        b[0] = b'0';
        b[1] = b'0';
        write_lower_hex(self.trace_id.to_u128(), &mut b[3..35]);
        write_lower_hex(u128::from(self.parent_id.to_u64()), &mut b[36..52]);
        write_lower_hex(u128::from(self.flags.outgoing().0), &mut b[53..55]);
        AsciiBuf::from_ascii(b)
    }
}

impl FromStr for TraceParent {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(serde::Deserialize)]
    struct Vectors {
        cases: Vec<Case>,
    }
    #[derive(serde::Deserialize)]
    struct Case {
        value: String,
        valid: bool,
        why: String,
    }

    /// SPEC 3.1: every case of the shared traceparent vectors.
    #[test]
    fn spec_3_1_vectors() {
        let v: Vectors = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/vectors/traceparent.json"
        )))
        .unwrap();
        assert!(v.cases.len() >= 30);
        for c in &v.cases {
            // The vectors' "two values" case stands for a comma line or two header lines.
            let single = TraceParent::parse(&c.value).is_ok();
            assert_eq!(single, c.valid, "{:?}: {}", c.value, c.why);
        }
    }

    #[test]
    fn spec_3_1_outgoing_is_version_00_flags_masked() {
        let tp = TraceParent::parse(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff-future-stuff",
        )
        .unwrap();
        assert_eq!(tp.version(), 0xcc);
        assert_eq!(tp.flags().to_byte(), 0xff);
        assert_eq!(
            tp.to_header().as_str(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"
        );
    }

    #[test]
    fn spec_3_1_future_version_with_comma_is_two_values() {
        let two = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x,01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            TraceParent::parse(two).unwrap_err().kind(),
            ParseErrorKind::Multiple
        );
    }

    #[test]
    fn spec_3_1_multibyte_input_does_not_panic() {
        // 55 bytes whose slices would cut a char: must be an error, not a panic.
        let s = "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01";
        assert!(TraceParent::parse(s).is_err());
        let s = "é".repeat(40);
        assert!(TraceParent::parse(&s).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(t in 1u128.., p in 1u64.., f in 0u8..4) {
            let tp = TraceParent::new(TraceId::from_u128(t).unwrap(), SpanId::from_u64(p).unwrap(), TraceFlags::from_byte(f));
            prop_assert_eq!(TraceParent::parse(&tp.to_header()).unwrap(), tp);
        }

        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = TraceParent::parse(&s);
        }

        #[test]
        fn never_panics_on_near_valid(prefix in "[0-9a-f-]{0,60}", tail in ".{0,10}") {
            let _ = TraceParent::parse(&format!("{prefix}{tail}"));
        }
    }
}
