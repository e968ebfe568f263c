//! The W3C `tracestate` header (SPEC 3.2).
//!
//! - members `key=value` separated by `,` with optional spaces and tabs; empty members are
//!   skipped;
//! - key: `[a-z0-9][a-z0-9_\-*/@]{0,255}`; value: 1-256 chars of 0x20-0x7E except `,` and `=`,
//!   not ending in a space;
//! - several header lines are joined with `,`; an invalid member makes the whole header
//!   invalid (drop it); a key that occurs again keeps its first (left-most, most recent)
//!   member and the later ones are dropped; more than 32 distinct keys make the header
//!   invalid;
//! - when propagating, a value longer than 512 chars is shortened by removing whole members,
//!   largest first ([`TraceState::for_propagation`]); an empty tracestate is never sent.
//!
//! ```
//! use tracelink_core::TraceState;
//!
//! let ts = TraceState::parse_lines(["congo=t61rcWkgMzE", " rojo=00f067aa0ba902b7 "]).unwrap();
//! assert_eq!(ts.as_str(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
//! assert_eq!(ts.get("rojo"), Some("00f067aa0ba902b7"));
//! // A duplicated key keeps its first member.
//! assert_eq!(TraceState::parse_lines(["a=1,b=2", "a=3"]).unwrap().as_str(), "a=1,b=2");
//! ```

use core::fmt;
use core::str::FromStr;
use std::borrow::Cow;

use crate::error::{ParseError, ParseErrorKind};
use crate::received::Received;
use crate::swar;

const NAME: &str = "tracestate";
/// Most members a tracestate may have.
pub const MAX_MEMBERS: usize = 32;
/// Longest tracestate tracelink sends; longer ones are shortened (SPEC 3.2).
pub const MAX_PROPAGATED_LEN: usize = 512;

fn err(kind: ParseErrorKind) -> ParseError {
    ParseError::new(NAME, kind)
}

/// A valid tracestate, normalized to its members joined by `,`.
///
/// With the `http` feature, a header line that arrives already normalized (the common case)
/// is kept as the [`http::HeaderValue`] it came in, sharing its bytes: extraction copies
/// nothing and injection sends the same value ([`TraceState::from_header_value`]). The
/// bytes are shared with the buffer the server read the request head into (hyper slices
/// header values out of it), so a context kept long after its request, say by a background
/// job, keeps that buffer (a few kilobytes) alive with it. [`TraceState::parse`] of the
/// text makes a value that owns its bytes.
#[derive(Clone)]
pub struct TraceState(Received);

const KEY: u8 = 1;
const VALUE: u8 = 2;
/// Byte classes: `KEY` for `[a-z0-9_\-*/@]`, `VALUE` for 0x20-0x7E except `,` and `=`.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0x20;
    while c <= 0x7e {
        if c != b',' as usize && c != b'=' as usize {
            t[c] = VALUE;
        }
        let k = c as u8;
        if k.is_ascii_lowercase()
            || k.is_ascii_digit()
            || matches!(k, b'_' | b'-' | b'*' | b'/' | b'@')
        {
            t[c] |= KEY;
        }
        c += 1;
    }
    t
};

fn is_key_char(c: u8) -> bool {
    CLASS[c as usize] & KEY != 0
}

/// Length of the run of value bytes (SPEC 3.2: 0x20-0x7E except `,` and `=`) at the start of
/// `b`. Eight bytes at a time while they are all value bytes, then one at a time.
fn value_run(b: &[u8]) -> usize {
    let plain = |w| {
        !(swar::has_below(w, 0x20)
            || swar::has_del_or_high(w)
            || swar::has_byte(w, b',')
            || swar::has_byte(w, b'='))
    };
    let i = swar::plain_prefix(b, plain);
    i + run(&b[i..], VALUE)
}

/// Length of the run of bytes of `class` at the start of `b`.
fn run(b: &[u8], class: u8) -> usize {
    b.iter()
        .position(|&c| CLASS[c as usize] & class == 0)
        .unwrap_or(b.len())
}

/// Whether `b` is a valid tracestate in normalized form: members `key=value` joined by `,`,
/// no white space around them, no empty member (SPEC 3.2). `false` is no verdict: the full
/// parser decides (it normalizes white space and reports what is wrong).
fn is_normalized(b: &[u8]) -> bool {
    // (start, end) of each key in `b`; at most 32 members of at most 514 bytes: fits u16.
    let mut keys = [(0u16, 0u16); MAX_MEMBERS];
    let mut n = 0usize;
    let mut i = 0usize;
    loop {
        let key_start = i;
        match b.get(i) {
            Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() => i += 1,
            _ => return false,
        }
        i += run(&b[i..], KEY);
        let key_end = i;
        if key_end - key_start > 256 || b.get(i) != Some(&b'=') {
            return false;
        }
        i += 1;
        let value_start = i;
        i += value_run(&b[i..]);
        let value_len = i - value_start;
        if value_len == 0 || value_len > 256 || b[i - 1] == b' ' || n == MAX_MEMBERS {
            return false;
        }
        let key = &b[key_start..key_end];
        if keys[..n]
            .iter()
            .any(|&(s, e)| &b[s as usize..e as usize] == key)
        {
            return false;
        }
        keys[n] = (key_start as u16, key_end as u16);
        n += 1;
        match b.get(i) {
            None => return true,
            Some(b',') => i += 1,
            Some(_) => return false,
        }
    }
}

impl TraceState {
    /// Parses one header line. Allocates once, for the result.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        if is_normalized(value.as_bytes()) {
            return Ok(Self(Received::owned(value)));
        }
        Self::parse_into([value].into_iter(), String::with_capacity(value.len()))
    }

    /// Parses one header line held as an [`http::HeaderValue`]. A line that is normalized
    /// already is kept as that value, sharing its bytes (no copy, and injection sends it as
    /// is); others are normalized like [`TraceState::parse`] does.
    ///
    /// ```
    /// use http::HeaderValue;
    /// use tracelink_core::TraceState;
    ///
    /// let v = HeaderValue::from_static("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    /// let ts = TraceState::from_header_value(&v).unwrap();
    /// assert_eq!(ts.to_header_value().unwrap(), v);
    /// let spaced = HeaderValue::from_static("congo=t61rcWkgMzE , rojo=00f067aa0ba902b7");
    /// assert_eq!(TraceState::from_header_value(&spaced).unwrap(), ts);
    /// ```
    #[cfg(feature = "http")]
    pub fn from_header_value(value: &http::HeaderValue) -> Result<Self, ParseError> {
        if is_normalized(value.as_bytes()) {
            return Ok(Self(Received::shared(value, 0..value.len())));
        }
        let text = value
            .to_str()
            .map_err(|_| err(ParseErrorKind::InvalidCharacter))?;
        Self::parse_into([text].into_iter(), String::with_capacity(text.len()))
    }

    /// The value to send as an [`http::HeaderValue`] ([`TraceState::for_propagation`]): the
    /// received value itself when it is sent unchanged, else a new one.
    ///
    /// ```
    /// use tracelink_core::TraceState;
    ///
    /// let ts = TraceState::parse(" a=1 , b=2").unwrap();
    /// assert_eq!(ts.to_header_value().unwrap(), "a=1,b=2");
    /// ```
    #[cfg(feature = "http")]
    pub fn to_header_value(&self) -> Option<http::HeaderValue> {
        match self.shared_header_value() {
            Some(v) => Some(v.clone()),
            None => http::HeaderValue::from_str(&self.for_propagation()?).ok(),
        }
    }

    /// The received header value, when it is sent unchanged: shared instead of copied.
    #[cfg(feature = "http")]
    pub(crate) fn shared_header_value(&self) -> Option<&http::HeaderValue> {
        self.0
            .whole_value()
            .filter(|v| v.len() <= MAX_PROPAGATED_LEN)
    }

    /// Parses all header lines, joined with `,` (SPEC 3.2). Allocates once, for the result.
    pub fn parse_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Self, ParseError> {
        let lines = lines.into_iter();
        Self::parse_into(lines, String::new())
    }

    /// One pass over the bytes of each line: validates, skips later members of a key seen
    /// before, and appends the normalized members to `out`.
    fn parse_into<'a>(
        lines: impl Iterator<Item = &'a str>,
        mut out: String,
    ) -> Result<Self, ParseError> {
        // (start, key_end) of each member in `out`, to find duplicates without allocating more.
        let mut keys: [(u16, u16); MAX_MEMBERS] = [(0, 0); MAX_MEMBERS];
        let mut n = 0usize;
        for line in lines {
            let b = line.as_bytes();
            let mut i = 0;
            while i < b.len() {
                // Optional white space and empty members.
                if matches!(b[i], b' ' | b'\t' | b',') {
                    i += 1;
                    continue;
                }
                let key_start = i;
                if !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
                    return Err(err(ParseErrorKind::InvalidKey));
                }
                i += 1;
                while i < b.len() && is_key_char(b[i]) {
                    i += 1;
                }
                let key_end = i;
                if key_end - key_start > 256 {
                    return Err(err(ParseErrorKind::InvalidKey));
                }
                match b.get(i) {
                    Some(b'=') => i += 1,
                    None | Some(b',') => return Err(err(ParseErrorKind::InvalidValue)),
                    Some(_) => return Err(err(ParseErrorKind::InvalidKey)),
                }
                let value_start = i;
                while i < b.len() && b[i] != b',' {
                    if CLASS[b[i] as usize] & VALUE == 0 {
                        // A tab may only be trailing white space.
                        if b[i] != b'\t'
                            || !b[i..]
                                .iter()
                                .take_while(|&&c| c != b',')
                                .all(|&c| c == b' ' || c == b'\t')
                        {
                            return Err(err(ParseErrorKind::InvalidValue));
                        }
                        break;
                    }
                    i += 1;
                }
                let mut value_end = i;
                while value_end > value_start && b[value_end - 1] == b' ' {
                    value_end -= 1;
                }
                while i < b.len() && b[i] != b',' {
                    i += 1; // trailing white space, checked above
                }
                let value_len = value_end - value_start;
                if value_len == 0 || value_len > 256 {
                    return Err(err(ParseErrorKind::InvalidValue));
                }
                let key = &b[key_start..key_end];
                if keys[..n]
                    .iter()
                    .any(|&(s, e)| &out.as_bytes()[s as usize..e as usize] == key)
                {
                    // The left-most member of a key is the most recent: keep it (SPEC 3.2).
                    continue;
                }
                if n == MAX_MEMBERS {
                    return Err(err(ParseErrorKind::TooManyMembers));
                }
                if n > 0 {
                    out.push(',');
                }
                // 32 members of at most 513 bytes each fit in u16.
                let at = out.len() as u16;
                keys[n] = (at, at + key.len() as u16);
                n += 1;
                // Every byte in this range was checked to be ASCII: a char boundary.
                out.push_str(&line[key_start..value_end]);
            }
        }
        if n == 0 {
            return Err(err(ParseErrorKind::Empty));
        }
        Ok(Self(Received::Owned(out.into_boxed_str())))
    }

    /// The members joined by `,`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The members in order, as `(key, value)`.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.as_str().split(',').filter_map(|m| m.split_once('='))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The value to send: unchanged when at most 512 chars, else with whole members removed,
    /// largest first, until it fits (SPEC 3.2). `None` when nothing is left: never send an
    /// empty tracestate.
    ///
    /// ```
    /// use tracelink_core::TraceState;
    ///
    /// let x = "x".repeat(256);
    /// let ts = TraceState::parse(&format!("a=1,big={x},b=2,big2={x},c=3")).unwrap();
    /// // 534 chars: dropping the largest member, big2, is enough.
    /// assert_eq!(ts.for_propagation().unwrap(), format!("a=1,big={x},b=2,c=3"));
    /// ```
    pub fn for_propagation(&self) -> Option<Cow<'_, str>> {
        let all = self.as_str();
        if all.len() <= MAX_PROPAGATED_LEN {
            return Some(Cow::Borrowed(all));
        }
        let mut members: Vec<&str> = all.split(',').collect();
        let mut len = all.len();
        while len > MAX_PROPAGATED_LEN {
            let (i, m) = members
                .iter()
                .enumerate()
                .max_by_key(|(i, m)| (m.len(), *i))
                .map(|(i, m)| (i, *m))?;
            // Removing a member removes its text and one separator.
            len -= m.len() + usize::from(members.len() > 1);
            members.remove(i);
        }
        (!members.is_empty()).then(|| Cow::Owned(members.join(",")))
    }
}

impl FromStr for TraceState {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl PartialEq for TraceState {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TraceState {}

impl core::hash::Hash for TraceState {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({:?})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind(s: &str) -> Option<ParseErrorKind> {
        TraceState::parse(s).err().map(|e| e.kind())
    }

    #[test]
    fn spec_3_2_key_grammar() {
        for ok in [
            "foo=1",
            "foo@=1",
            "foo@@bar=1",
            "0foo=1",
            "a_-*/@b=1",
            &format!("{}@{}=1", "t".repeat(241), "v".repeat(14)),
            &format!("{}=1", "k".repeat(256)),
        ] {
            assert!(TraceState::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "@foo=1",
            "Foo=1",
            "_foo=1",
            "fo o=1",
            "=1",
            &format!("{}=1", "k".repeat(257)),
        ] {
            assert_eq!(kind(bad), Some(ParseErrorKind::InvalidKey), "{bad}");
        }
    }

    #[test]
    fn spec_3_2_value_grammar() {
        assert!(TraceState::parse("k= leading space ok").is_ok());
        assert!(TraceState::parse(&format!("k={}", "v".repeat(256))).is_ok());
        for bad in [
            "k=",
            "k=a=b",
            "k=tab\there",
            "k=é",
            "k",
            &format!("k={}", "v".repeat(257)),
        ] {
            assert!(TraceState::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spec_3_2_ows_and_empty_members() {
        let ts = TraceState::parse(" a=1 ,\t,b=2\t, ").unwrap();
        assert_eq!(ts.as_str(), "a=1,b=2");
        assert_eq!(kind(" , "), Some(ParseErrorKind::Empty));
    }

    #[test]
    fn spec_3_2_32_members_and_duplicates() {
        let m32: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert!(TraceState::parse(&m32.join(",")).is_ok());
        let m33: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(kind(&m33.join(",")), Some(ParseErrorKind::TooManyMembers));
    }

    #[test]
    fn spec_3_2_duplicated_keys_keep_the_first_member() {
        // The W3C suite's test_tracestate_duplicated_keys sends both of these.
        assert_eq!(TraceState::parse("foo=1,foo=1").unwrap().as_str(), "foo=1");
        assert_eq!(TraceState::parse("foo=1,foo=2").unwrap().as_str(), "foo=1");
        let ts = TraceState::parse("a=1, b=2 ,a=3,c=4").unwrap();
        assert_eq!(ts.as_str(), "a=1,b=2,c=4");
        assert_eq!(ts.get("a"), Some("1"));
        // Across lines too; the first line is the left-most.
        let ts = TraceState::parse_lines(["a=1", "b=2,a=2"]).unwrap();
        assert_eq!(ts.as_str(), "a=1,b=2");
        // A duplicate does not count towards the 32 members, an invalid one still spoils all.
        let mut m: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        m.push("k0=again".into());
        assert_eq!(
            TraceState::parse(&m.join(",")).unwrap().members().count(),
            32
        );
        assert_eq!(kind("a=1,a=2,B=3"), Some(ParseErrorKind::InvalidKey));
    }

    #[test]
    fn spec_3_2_shortening_keeps_whole_members() {
        let members: Vec<String> = (0..10)
            .map(|i| format!("k{i}={}", "v".repeat(100)))
            .collect();
        let ts = TraceState::parse(&members.join(",")).unwrap();
        let out = ts.for_propagation().unwrap();
        assert!(out.len() <= 512);
        // Equal sizes: the later members go first, so the first ones survive.
        assert!(out.starts_with("k0="));
        assert!(out.split(',').all(|m| members.contains(&m.to_string())));
    }

    #[cfg(feature = "http")]
    #[test]
    fn spec_3_2_header_values_are_shared_when_normalized() {
        use http::HeaderValue;
        let v = HeaderValue::from_static("a=1,b=2");
        let ts = TraceState::from_header_value(&v).unwrap();
        assert!(ts.shared_header_value().is_some());
        assert_eq!(ts.get("b"), Some("2"));
        // White space is normalized away, invalid bytes and grammar are errors.
        let ts = TraceState::from_header_value(&HeaderValue::from_static(" a=1 ,b=2")).unwrap();
        assert!(ts.shared_header_value().is_none());
        assert_eq!(ts.to_header_value().unwrap(), "a=1,b=2");
        assert!(
            TraceState::from_header_value(&HeaderValue::from_bytes(b"a=\xff").unwrap()).is_err()
        );
        // A duplicated key is not normalized: the later member is dropped, not shared.
        let ts = TraceState::from_header_value(&HeaderValue::from_static("a=1,a=2")).unwrap();
        assert!(ts.shared_header_value().is_none());
        assert_eq!(ts.to_header_value().unwrap(), "a=1");
        // Longer than 512: shortened, not shared.
        let x = "x".repeat(256);
        let long = HeaderValue::from_str(&format!("a=1,big={x},b=2,big2={x}")).unwrap();
        let ts = TraceState::from_header_value(&long).unwrap();
        assert_eq!(
            ts.to_header_value().unwrap(),
            format!("a=1,big={x},b=2").as_str()
        );
        assert!(ts.shared_header_value().is_none());
    }

    proptest! {
        #[test]
        fn never_panics(lines in proptest::collection::vec("\\PC{0,300}", 0..4)) {
            let _ = TraceState::parse_lines(lines.iter().map(String::as_str));
        }

        #[test]
        fn value_run_agrees_with_the_class_table(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let want = b.iter().take_while(|&&c| CLASS[c as usize] & VALUE != 0).count();
            prop_assert_eq!(value_run(&b), want);
        }

        #[test]
        fn fast_path_agrees_with_full_parser(line in "[a-z0-9=, \t@*/_-]{0,40}|[ -~]{0,40}|([a-c]{1,2}=[ a~]{1,3},){0,12}[ a-c]{0,2}=[ a=~]{0,3}") {
            let full = TraceState::parse_into([line.as_str()].into_iter(), String::new());
            // Normalized exactly when the full parser leaves the line as it is.
            let unchanged = full.as_ref().is_ok_and(|t| t.as_str() == line);
            prop_assert_eq!(is_normalized(line.as_bytes()), unchanged, "{:?}", line);
            prop_assert_eq!(TraceState::parse(&line), full);
        }

        #[test]
        fn round_trips(members in proptest::collection::btree_map("[a-z][a-z0-9_@]{0,20}", "[!-+--<>-~]{1,40}", 1..32)) {
            let joined: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let ts = TraceState::parse(&joined.join(", ")).unwrap();
            prop_assert_eq!(ts.as_str(), joined.join(","));
            let again = TraceState::parse(ts.as_str()).unwrap();
            prop_assert_eq!(&again, &ts);
            let out = ts.for_propagation().unwrap();
            prop_assert!(out.len() <= 512);
            prop_assert!(TraceState::parse(&out).is_ok());
        }
    }
}
