//! The W3C `tracestate` header (SPEC 3.2).
//!
//! - members `key=value` separated by `,` with optional spaces and tabs; empty members are
//!   skipped;
//! - key: `[a-z0-9][a-z0-9_\-*/@]{0,255}`; value: 1-256 chars of 0x20-0x7E except `,` and `=`,
//!   not ending in a space;
//! - several header lines are joined with `,`; at most 32 members; a duplicated key or an
//!   invalid member makes the whole header invalid (drop it);
//! - when propagating, a value longer than 512 chars is shortened by removing whole members,
//!   largest first ([`TraceState::for_propagation`]); an empty tracestate is never sent.
//!
//! ```
//! use tracelink::TraceState;
//!
//! let ts = TraceState::parse_lines(["congo=t61rcWkgMzE", " rojo=00f067aa0ba902b7 "]).unwrap();
//! assert_eq!(ts.as_str(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
//! assert_eq!(ts.get("rojo"), Some("00f067aa0ba902b7"));
//! assert!(TraceState::parse_lines(["a=1,a=2"]).is_err()); // duplicate key
//! ```

use core::fmt;
use core::str::FromStr;
use std::borrow::Cow;

use crate::error::{ParseError, ParseErrorKind};

const NAME: &str = "tracestate";
/// Most members a tracestate may have.
pub const MAX_MEMBERS: usize = 32;
/// Longest tracestate tracelink sends; longer ones are shortened (SPEC 3.2).
pub const MAX_PROPAGATED_LEN: usize = 512;

fn err(kind: ParseErrorKind) -> ParseError {
    ParseError::new(NAME, kind)
}

/// A valid tracestate, normalized to its members joined by `,`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceState(Box<str>);

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

impl TraceState {
    /// Parses one header line. Allocates once, for the result.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        Self::parse_into([value].into_iter(), String::with_capacity(value.len()))
    }

    /// Parses all header lines, joined with `,` (SPEC 3.2). Allocates once, for the result.
    pub fn parse_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Self, ParseError> {
        let lines = lines.into_iter();
        Self::parse_into(lines, String::new())
    }

    /// One pass over the bytes of each line: validates, finds duplicates, and appends the
    /// normalized members to `out`.
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
                if n == MAX_MEMBERS {
                    return Err(err(ParseErrorKind::TooManyMembers));
                }
                let key = &b[key_start..key_end];
                if keys[..n]
                    .iter()
                    .any(|&(s, e)| &out.as_bytes()[s as usize..e as usize] == key)
                {
                    return Err(err(ParseErrorKind::DuplicateKey));
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
        Ok(Self(out.into_boxed_str()))
    }

    /// The members joined by `,`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The members in order, as `(key, value)`.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.split(',').filter_map(|m| m.split_once('='))
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
    /// use tracelink::TraceState;
    ///
    /// let x = "x".repeat(256);
    /// let ts = TraceState::parse(&format!("a=1,big={x},b=2,big2={x},c=3")).unwrap();
    /// // 534 chars: dropping the largest member, big2, is enough.
    /// assert_eq!(ts.for_propagation().unwrap(), format!("a=1,big={x},b=2,c=3"));
    /// ```
    pub fn for_propagation(&self) -> Option<Cow<'_, str>> {
        if self.0.len() <= MAX_PROPAGATED_LEN {
            return Some(Cow::Borrowed(&self.0));
        }
        let mut members: Vec<&str> = self.0.split(',').collect();
        let mut len = self.0.len();
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

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({:?})", &*self.0)
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
        assert_eq!(kind("a=1,b=2,a=3"), Some(ParseErrorKind::DuplicateKey));
        // Duplicates across lines count too.
        assert!(TraceState::parse_lines(["a=1", "a=2"]).is_err());
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

    proptest! {
        #[test]
        fn never_panics(lines in proptest::collection::vec("\\PC{0,300}", 0..4)) {
            let _ = TraceState::parse_lines(lines.iter().map(String::as_str));
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
