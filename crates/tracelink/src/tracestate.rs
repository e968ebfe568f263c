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

fn valid_key(k: &[u8]) -> bool {
    match k.split_first() {
        Some((first, rest)) if k.len() <= 256 => {
            (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.iter().all(|&c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
                })
        }
        _ => false,
    }
}

fn valid_value(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.last() != Some(&b' ')
        && v
            .iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

/// Trims optional white space (spaces and tabs).
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

impl TraceState {
    /// Parses one header line.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        Self::parse_lines([value])
    }

    /// Parses all header lines, joined with `,` (SPEC 3.2). Allocates once, for the result.
    pub fn parse_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Self, ParseError> {
        let mut out = String::new();
        // (start, key_end) of each member in `out`, to find duplicates without allocating more.
        let mut keys: [(u16, u16); MAX_MEMBERS] = [(0, 0); MAX_MEMBERS];
        let mut n = 0usize;
        for line in lines {
            for member in line.split(',') {
                let member = trim_ows(member);
                if member.is_empty() {
                    continue;
                }
                let (k, v) = member
                    .split_once('=')
                    .ok_or(err(ParseErrorKind::InvalidValue))?;
                if !valid_key(k.as_bytes()) {
                    return Err(err(ParseErrorKind::InvalidKey));
                }
                if !valid_value(v.as_bytes()) {
                    return Err(err(ParseErrorKind::InvalidValue));
                }
                if n == MAX_MEMBERS {
                    return Err(err(ParseErrorKind::TooManyMembers));
                }
                if keys[..n]
                    .iter()
                    .any(|&(s, e)| &out[s as usize..e as usize] == k)
                {
                    return Err(err(ParseErrorKind::DuplicateKey));
                }
                if n > 0 {
                    out.push(',');
                }
                // 32 members of at most 513 bytes each fit in u16.
                let start = out.len() as u16;
                keys[n] = (start, start + k.len() as u16);
                n += 1;
                out.push_str(member);
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
    /// assert_eq!(ts.for_propagation().as_deref(), Some("a=1,b=2,c=3"));
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
        assert_eq!(
            kind(&m33.join(",")),
            Some(ParseErrorKind::TooManyMembers)
        );
        assert_eq!(kind("a=1,b=2,a=3"), Some(ParseErrorKind::DuplicateKey));
        // Duplicates across lines count too.
        assert!(TraceState::parse_lines(["a=1", "a=2"]).is_err());
    }

    #[test]
    fn spec_3_2_shortening_keeps_whole_members() {
        let members: Vec<String> = (0..10).map(|i| format!("k{i}={}", "v".repeat(100))).collect();
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
