//! Trace and span identifiers (SPEC 1): random, never all zero, lower-hex without allocating.

use core::fmt;
use core::num::{NonZeroU64, NonZeroU128};
use core::str::FromStr;

use crate::error::{ParseError, ParseErrorKind};
use crate::{rng, swar};

/// Value of each ASCII byte as a lower-case hex digit, or `0xff`.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
/// The two lower-case hex digits of every byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX_DIGITS[i >> 4], HEX_DIGITS[i & 0xf]];
        i += 1;
    }
    t
};

/// Parses at most 16 lower-case hex digits. `None` on any other byte.
#[inline]
fn parse_lower_hex_u64(s: &[u8]) -> Option<u64> {
    let mut acc: u64 = 0;
    let mut bad = 0u8;
    for &b in s {
        let v = HEX_VALUE[b as usize];
        bad |= v;
        acc = (acc << 4) | u64::from(v & 0x0f);
    }
    // Any invalid byte has its high bit set; valid digits never do.
    (bad & 0x80 == 0).then_some(acc)
}

/// Parses lower-case hex into a number (at most 32 digits). `None` on any other byte.
#[inline]
pub(crate) fn parse_lower_hex(s: &[u8]) -> Option<u128> {
    debug_assert!(s.len() <= 32);
    // Whole ids eight digits at a time; other lengths a digit at a time.
    match s.len() {
        32 => Some((u128::from(hex16(&s[..16])?) << 64) | u128::from(hex16(&s[16..])?)),
        16 => hex16(s).map(u128::from),
        _ => {
            // In 64-bit halves: u128 shifts cost twice as much.
            let (hi, lo) = s.split_at(s.len().saturating_sub(16));
            let shift = 4 * lo.len() as u32;
            let (hi, lo) = (parse_lower_hex_u64(hi)?, parse_lower_hex_u64(lo)?);
            Some((u128::from(hi) << shift) | u128::from(lo))
        }
    }
}

/// Sixteen lower-case hex digits.
#[inline]
fn hex16(s: &[u8]) -> Option<u64> {
    let (hi, lo) = s.split_first_chunk::<8>()?;
    let (hi, lo) = (
        hex8(u64::from_le_bytes(*hi))?,
        hex8(u64::from_le_bytes(*lo.first_chunk::<8>()?))?,
    );
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// Eight lower-case hex digits read as one little-endian word (the first digit in the lowest
/// byte), checked and converted with whole-word arithmetic.
#[inline]
fn hex8(w: u64) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let digits = swar::bytes_in(w, b'0', b'9') | swar::bytes_in(w, b'a', b'f');
    if digits != swar::HIGH {
        return None;
    }
    // Each byte's value: its low nibble, plus 9 for a letter (bit 6 set).
    let n = (w & (ONES * 0x0f)) + ((w >> 6) & ONES) * 9;
    // Pack the eight nibbles, first digit highest: pairs into bytes, bytes into a word.
    let pairs = ((n << 4) | (n >> 8)) & 0x00ff_00ff_00ff_00ff;
    let quads = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    Some(((quads | (quads >> 16)) as u32).swap_bytes())
}

#[inline]
pub(crate) fn write_lower_hex(value: u128, out: &mut [u8]) {
    debug_assert!(out.len() <= 32);
    let bytes = value.to_be_bytes();
    let mut byte = bytes.len();
    // Two digits per byte, from the end; an odd length ends with one nibble.
    let mut pairs = out.rchunks_exact_mut(2);
    for pair in &mut pairs {
        byte -= 1;
        pair.copy_from_slice(&HEX_PAIRS[bytes[byte] as usize]);
    }
    if let [digit] = pairs.into_remainder() {
        *digit = HEX_DIGITS[(bytes[byte - 1] & 0x0f) as usize];
    }
}

/// A fixed-size ASCII string on the stack: what the id and header formatters return, so that
/// formatting never allocates.
///
/// ```
/// let id = tracelink_core::SpanId::from_u64(0xb7ad6b7169203331).unwrap();
/// let hex = id.to_hex();
/// assert_eq!(hex.as_str(), "b7ad6b7169203331");
/// assert_eq!(&*hex, "b7ad6b7169203331"); // derefs to str
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AsciiBuf<const N: usize> {
    buf: [u8; N],
}

impl<const N: usize> AsciiBuf<N> {
    pub(crate) fn from_ascii(buf: [u8; N]) -> Self {
        debug_assert!(buf.is_ascii());
        Self { buf }
    }

    /// The text's bytes.
    ///
    /// ```
    /// let id = tracelink_core::SpanId::from_u64(0xb7ad6b7169203331).unwrap();
    /// assert_eq!(id.to_hex().as_bytes(), b"b7ad6b7169203331");
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ever built from ASCII; the fallback keeps this total without `unsafe`.
        core::str::from_utf8(&self.buf).unwrap_or_default()
    }
}

impl<const N: usize> core::ops::Deref for AsciiBuf<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> AsRef<str> for AsciiBuf<N> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> fmt::Display for AsciiBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for AsciiBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A W3C trace-id, which is also the Application Insights `operation_Id` (SPEC 1.1):
/// 16 bytes, never all zero, written as 32 lower-case hex digits.
///
/// ```
/// use tracelink_core::TraceId;
///
/// let id: TraceId = "0af7651916cd43dd8448eb211c80319c".parse().unwrap();
/// assert_eq!(id.to_string(), "0af7651916cd43dd8448eb211c80319c");
/// assert!("00000000000000000000000000000000".parse::<TraceId>().is_err());
/// assert_ne!(TraceId::random(), TraceId::random());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(NonZeroU128);

impl TraceId {
    /// A new random trace-id (SPEC 1.3).
    pub fn random() -> Self {
        loop {
            let v = (u128::from(rng::next_u64()) << 64) | u128::from(rng::next_u64());
            if let Some(v) = NonZeroU128::new(v) {
                return Self(v);
            }
        }
    }

    /// The id with these big-endian bytes; `None` when all zero.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        Self::from_u128(u128::from_be_bytes(bytes))
    }

    /// The id with this numeric value; `None` when zero.
    pub const fn from_u128(v: u128) -> Option<Self> {
        match NonZeroU128::new(v) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The big-endian bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.get().to_be_bytes()
    }

    /// The numeric value.
    pub fn to_u128(self) -> u128 {
        self.0.get()
    }

    /// 32 lower-case hex digits, on the stack.
    pub fn to_hex(self) -> AsciiBuf<32> {
        let mut buf = [0u8; 32];
        write_lower_hex(self.0.get(), &mut buf);
        AsciiBuf::from_ascii(buf)
    }

    /// Parses exactly 32 lower-case hex digits, not all zero.
    pub fn parse_hex(s: &str) -> Result<Self, ParseError> {
        let err = ParseError::new("trace-id", ParseErrorKind::InvalidTraceId);
        if s.len() != 32 {
            return Err(err);
        }
        parse_lower_hex(s.as_bytes())
            .and_then(Self::from_u128)
            .ok_or(err)
    }
}

impl FromStr for TraceId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse_hex(s)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({})", self.to_hex())
    }
}

/// A W3C span-id (parent-id), which is also the Application Insights request and dependency
/// `id` (SPEC 1.2): 8 bytes, never all zero, written as 16 lower-case hex digits.
///
/// ```
/// use tracelink_core::SpanId;
///
/// let id: SpanId = "b7ad6b7169203331".parse().unwrap();
/// assert_eq!(id.to_hex().as_str(), "b7ad6b7169203331");
/// assert!("B7AD6B7169203331".parse::<SpanId>().is_err()); // upper case is not W3C
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(NonZeroU64);

impl SpanId {
    /// A new random span-id (SPEC 1.3).
    pub fn random() -> Self {
        loop {
            if let Some(v) = NonZeroU64::new(rng::next_u64()) {
                return Self(v);
            }
        }
    }

    /// The id with these big-endian bytes; `None` when all zero.
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        Self::from_u64(u64::from_be_bytes(bytes))
    }

    /// The id with this numeric value; `None` when zero.
    pub const fn from_u64(v: u64) -> Option<Self> {
        match NonZeroU64::new(v) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The big-endian bytes.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.get().to_be_bytes()
    }

    /// The numeric value.
    pub fn to_u64(self) -> u64 {
        self.0.get()
    }

    /// 16 lower-case hex digits, on the stack.
    pub fn to_hex(self) -> AsciiBuf<16> {
        let mut buf = [0u8; 16];
        write_lower_hex(u128::from(self.0.get()), &mut buf);
        AsciiBuf::from_ascii(buf)
    }

    /// Parses exactly 16 lower-case hex digits, not all zero.
    pub fn parse_hex(s: &str) -> Result<Self, ParseError> {
        let err = ParseError::new("span-id", ParseErrorKind::InvalidSpanId);
        if s.len() != 16 {
            return Err(err);
        }
        parse_lower_hex(s.as_bytes())
            .and_then(|v| Self::from_u64(v as u64))
            .ok_or(err)
    }
}

impl FromStr for SpanId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse_hex(s)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_1_1_trace_id_is_32_lower_hex_not_zero() {
        assert!(TraceId::parse_hex("4bf92f3577b34da6a3ce929d0e0e4736").is_ok());
        assert!(TraceId::parse_hex("4BF92F3577B34DA6A3CE929D0E0E4736").is_err());
        assert!(TraceId::parse_hex("4bf92f3577b34da6a3ce929d0e0e473").is_err());
        assert!(TraceId::parse_hex("4bf92f3577b34da6a3ce929d0e0e47360").is_err());
        assert!(TraceId::parse_hex("00000000000000000000000000000000").is_err());
        assert!(TraceId::parse_hex("+bf92f3577b34da6a3ce929d0e0e4736").is_err());
        assert_eq!(
            TraceId::parse_hex("00000000000000000000000000000001")
                .unwrap()
                .to_u128(),
            1
        );
    }

    #[test]
    fn spec_1_2_span_id_is_16_lower_hex_not_zero() {
        assert!(SpanId::parse_hex("00f067aa0ba902b7").is_ok());
        assert!(SpanId::parse_hex("0000000000000000").is_err());
        assert!(SpanId::parse_hex("00f067aa0ba902bg").is_err());
        assert!(SpanId::parse_hex("").is_err());
    }

    #[test]
    fn spec_1_3_random_ids_differ_and_are_valid() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| SpanId::random()).collect();
        assert_eq!(ids.len(), 10_000);
        let t = TraceId::random();
        assert_eq!(TraceId::parse_hex(&t.to_hex()).unwrap(), t);
    }

    proptest! {
        #[test]
        fn trace_id_round_trips(v in 1u128..) {
            let id = TraceId::from_u128(v).unwrap();
            prop_assert_eq!(TraceId::parse_hex(&id.to_hex()).unwrap(), id);
            prop_assert_eq!(TraceId::from_bytes(id.to_bytes()).unwrap(), id);
        }

        #[test]
        fn span_id_round_trips(v in 1u64..) {
            let id = SpanId::from_u64(v).unwrap();
            prop_assert_eq!(SpanId::parse_hex(&id.to_string()).unwrap(), id);
        }

        #[test]
        fn hex_agrees_with_std(v: u128, len in 0usize..=32) {
            let mut out = [0u8; 32];
            write_lower_hex(v, &mut out[..len]);
            let full = format!("{v:032x}");
            let want = &full[32 - len..];
            prop_assert_eq!(core::str::from_utf8(&out[..len]).unwrap(), want);
            let low = if len == 32 { v } else { v & ((1u128 << (4 * len)) - 1) };
            prop_assert_eq!(parse_lower_hex(want.as_bytes()), Some(low));
            let upper = want.to_ascii_uppercase();
            prop_assert_eq!(parse_lower_hex(upper.as_bytes()).is_none(), upper != want);
        }

        #[test]
        fn whole_word_hex_agrees_with_digit_at_a_time(s in "[0-9a-f]{0,32}([/:`g@AFG]|[\\x00-\\x7f\u{80}-\u{ff}])?[0-9a-f]{0,32}") {
            // Both id lengths: valid digits, or one byte of any kind among them.
            for len in [16, 32] {
                let Some(b) = s.as_bytes().get(..len) else { continue };
                let (hi, lo) = b.split_at(len - 16);
                let want = parse_lower_hex_u64(hi)
                    .zip(parse_lower_hex_u64(lo))
                    .map(|(h, l)| (u128::from(h) << 64) | u128::from(l));
                prop_assert_eq!(parse_lower_hex(b), want, "{:?}", b);
            }
        }

        #[test]
        fn id_parsers_never_panic(s in ".{0,40}") {
            let _ = TraceId::parse_hex(&s);
            let _ = SpanId::parse_hex(&s);
        }
    }
}
