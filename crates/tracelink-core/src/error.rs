//! The error of every header codec: one opaque type with a [`ParseErrorKind`].

use core::fmt;

/// A header value (or id, or cookie) that does not follow its SPEC section.
///
/// Opaque on purpose: branch on [`ParseError::kind`] and [`ParseError::header`].
///
/// ```
/// use tracelink_core::{ParseErrorKind, TraceParent};
///
/// let err = "00-zz".parse::<TraceParent>().unwrap_err();
/// assert_eq!(err.kind(), ParseErrorKind::InvalidLength);
/// assert_eq!(err.header(), "traceparent");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    header: &'static str,
    kind: ParseErrorKind,
}

/// What was wrong with a value; see [`ParseError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The value is empty (after trimming optional white space).
    Empty,
    /// The value is shorter or longer than its format allows.
    InvalidLength,
    /// The version field is not two lower-case hex digits, or is `ff`.
    InvalidVersion,
    /// The trace-id is not 32 lower-case hex digits, or is all zero.
    InvalidTraceId,
    /// The span-id / parent-id is not 16 lower-case hex digits, or is all zero.
    InvalidSpanId,
    /// The flags are not two lower-case hex digits.
    InvalidFlags,
    /// A delimiter is missing or wrong.
    InvalidDelimiter,
    /// More than one value where exactly one is allowed (SPEC 3.1).
    Multiple,
    /// A list member's key breaks the grammar.
    InvalidKey,
    /// A list member's value breaks the grammar.
    InvalidValue,
    /// A list has more members than allowed.
    TooManyMembers,
    /// A character outside the allowed set.
    InvalidCharacter,
}

impl ParseError {
    pub(crate) const fn new(header: &'static str, kind: ParseErrorKind) -> Self {
        Self { header, kind }
    }

    /// What was wrong.
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// The name of the header (or format) being parsed, lower case, e.g. `"traceparent"`.
    pub fn header(&self) -> &'static str {
        self.header
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ParseErrorKind::Empty => "empty value",
            ParseErrorKind::InvalidLength => "wrong length",
            ParseErrorKind::InvalidVersion => "invalid version",
            ParseErrorKind::InvalidTraceId => "invalid trace-id",
            ParseErrorKind::InvalidSpanId => "invalid span-id",
            ParseErrorKind::InvalidFlags => "invalid flags",
            ParseErrorKind::InvalidDelimiter => "invalid delimiter",
            ParseErrorKind::Multiple => "more than one value",
            ParseErrorKind::InvalidKey => "invalid key",
            ParseErrorKind::InvalidValue => "invalid value",
            ParseErrorKind::TooManyMembers => "too many members",
            ParseErrorKind::InvalidCharacter => "invalid character",
        };
        write!(f, "invalid {}: {what}", self.header)
    }
}

impl std::error::Error for ParseError {}
