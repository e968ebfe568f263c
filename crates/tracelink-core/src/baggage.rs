//! Baggage: the key/value pairs an operation carries to every service it reaches, and the
//! W3C `baggage` header codec (SPEC 4.2). The legacy `Correlation-Context` codec is in
//! [`crate::correlation_context`]; both read and write the same [`Baggage`].
//!
//! W3C rules followed: members `key=value[;property]` separated by `,`, optional white space
//! around keys and values; the key is an RFC 7230 token; the value is percent-decoded
//! (`%XX` to bytes, then UTF-8, invalid sequences replaced by U+FFFD); properties after `;`
//! are ignored. At most 64 members and 8192 bytes are read. tracelink is lenient where the
//! recommendation lets a receiver choose: an invalid member is skipped, not the whole header.
//!
//! ## Caps on what callers can add
//!
//! Incoming baggage is untrusted: it becomes a property of every item of the operation
//! (SPEC 2.8) and is forwarded on every outgoing call. Whatever the headers hold, baggage
//! filled from them (W3C `baggage` and `Correlation-Context` together, through
//! [`Baggage::merge_w3c_lines`] and [`correlation_context::merge_lines`](crate::correlation_context::merge_lines))
//! holds at most [`MAX_INCOMING_ITEMS`] (64) items and [`MAX_INCOMING_BYTES`] (8192) bytes
//! of keys and values, counted in UTF-8 as kept (after percent-decoding and the key cut of
//! SPEC 4.1). These are the W3C recommendation's own propagation limits, so a conforming
//! `baggage` header passes whole; what they stop is the two headers adding up (a
//! `Correlation-Context` of short items alone could give 300 properties to every item).
//! Reading stops at the first member that does not fit.
//!
//! Members left out by a limit (this cap, or the per-header limits of SPEC 4.1 and 4.2),
//! from the first that does not fit to the end of the headers, are counted: the merge
//! functions return the number, [`Incoming::baggage_truncated`](crate::extract::Incoming::baggage_truncated)
//! has it for one request, and [`truncated_items`] is the total of the process (the exporter
//! shows it in its stats). Invalid members and repeated keys are skipped, not counted.
//!
//! ```
//! use tracelink_core::Baggage;
//!
//! let b = Baggage::parse_w3c_lines(["userId=alice%20smith;prop=1, tenant = contoso"]);
//! assert_eq!(b.get("userId"), Some("alice smith"));
//! assert_eq!(b.get("tenant"), Some("contoso"));
//! assert_eq!(b.to_w3c_header(), "userId=alice%20smith,tenant=contoso");
//! ```

use core::fmt::Write as _;
use core::sync::atomic::{AtomicU64, Ordering};

/// Most members read from a W3C `baggage` header (SPEC 4.2).
pub const MAX_W3C_MEMBERS: usize = 64;
/// Most bytes read from a W3C `baggage` header (SPEC 4.2).
pub const MAX_W3C_BYTES: usize = 8192;
/// Most items that incoming headers (W3C `baggage` and `Correlation-Context` together) give
/// an operation's baggage, and so add to each of its items as properties.
pub const MAX_INCOMING_ITEMS: usize = 64;
/// Most bytes of keys and values (UTF-8, as kept) that incoming headers give an operation's
/// baggage.
pub const MAX_INCOMING_BYTES: usize = 8192;

/// Incoming members left out by a limit, in this process.
static TRUNCATED: AtomicU64 = AtomicU64::new(0);

/// How many incoming baggage members this process has left out because of a limit: the
/// caps [`MAX_INCOMING_ITEMS`] and [`MAX_INCOMING_BYTES`], or the per-header limits of
/// SPEC 4.1 and 4.2. Only grows.
pub fn truncated_items() -> u64 {
    TRUNCATED.load(Ordering::Relaxed)
}

/// Counts the members left out from `first` on: `first`, the rest of its line and every
/// later line (blank members are not members).
pub(crate) fn count_truncated<'a>(
    first: &str,
    rest: impl Iterator<Item = &'a str>,
    lines: impl Iterator<Item = &'a str>,
) -> usize {
    let is_member = |m: &str| !m.trim_matches([' ', '\t']).is_empty();
    let n = usize::from(is_member(first))
        + rest.filter(|m| is_member(m)).count()
        + lines
            .map(|l| l.split(',').filter(|m| is_member(m)).count())
            .sum::<usize>();
    if n > 0 {
        TRUNCATED.fetch_add(n as u64, Ordering::Relaxed);
    }
    n
}

/// The room incoming headers still have in a baggage (see the module docs).
#[derive(Debug)]
pub(crate) struct Budget {
    items: usize,
    bytes: usize,
}

impl Budget {
    /// The room left in `baggage`: what it holds already counts.
    pub(crate) fn of(baggage: &Baggage) -> Self {
        let used: usize = baggage.iter().map(|(k, v)| k.len() + v.len()).sum();
        Self {
            items: MAX_INCOMING_ITEMS.saturating_sub(baggage.len()),
            bytes: MAX_INCOMING_BYTES.saturating_sub(used),
        }
    }

    /// Takes room for one item; `false` when it does not fit.
    pub(crate) fn take(&mut self, key: &str, value: &str) -> bool {
        let size = key.len() + value.len();
        if self.items == 0 || size > self.bytes {
            return false;
        }
        self.items -= 1;
        self.bytes -= size;
        true
    }
}

/// Ordered key/value pairs, keys unique. Empty baggage never allocates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Baggage {
    items: Vec<(String, String)>,
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    if !b.contains(&b'%') {
        return v.to_owned();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

impl Baggage {
    /// Empty baggage.
    pub const fn new() -> Self {
        Self { items: Vec::new() }
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The items in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds an item unless `key` is already present (SPEC 2.8: never overwrite).
    /// Returns whether it was added.
    pub fn insert_if_absent(&mut self, key: impl Into<String>, value: impl Into<String>) -> bool {
        let key = key.into();
        if self.get(&key).is_some() {
            return false;
        }
        self.items.push((key, value.into()));
        true
    }

    /// Sets `key` to `value`, replacing an existing value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.items.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.items.push((key, value)),
        }
    }

    /// Reads W3C `baggage` header lines (SPEC 4.2) into new baggage.
    pub fn parse_w3c_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut b = Self::new();
        b.merge_w3c_lines(lines);
        b
    }

    /// Adds the members of W3C `baggage` header lines whose keys are not present yet, within
    /// the limits of SPEC 4.2 and the caps on incoming baggage (module docs). Returns how
    /// many members were left out by a limit.
    pub fn merge_w3c_lines<'a>(&mut self, lines: impl IntoIterator<Item = &'a str>) -> usize {
        let mut budget = Budget::of(self);
        let mut bytes = 0usize;
        let mut members = 0usize;
        let mut lines = lines.into_iter();
        while let Some(line) = lines.next() {
            let mut rest = line.split(',');
            while let Some(member) = rest.next() {
                bytes += member.len() + 1;
                if bytes > MAX_W3C_BYTES + 1 || members == MAX_W3C_MEMBERS {
                    return count_truncated(member, rest, lines);
                }
                let kv = member.split(';').next().unwrap_or_default();
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let (k, v) = (k.trim_matches([' ', '\t']), v.trim_matches([' ', '\t']));
                if k.is_empty()
                    || !k.bytes().all(is_tchar)
                    || !v.bytes().all(|c| is_baggage_octet(c) || c == b'%')
                {
                    continue;
                }
                members += 1;
                if self.get(k).is_some() {
                    continue;
                }
                let v = percent_decode(v);
                if !budget.take(k, &v) {
                    return count_truncated(member, rest, lines);
                }
                self.items.push((k.to_owned(), v));
            }
        }
        0
    }

    /// The W3C `baggage` header value: values percent-encoded, members joined by `,`. Items
    /// whose key is not a token are left out.
    pub fn to_w3c_header(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.iter() {
            if k.is_empty() || !k.bytes().all(is_tchar) {
                continue;
            }
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            for c in v.bytes() {
                if is_baggage_octet(c) && c != b'%' {
                    out.push(c as char);
                } else {
                    let _ = write!(out, "%{c:02X}");
                }
            }
        }
        out
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Baggage {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut b = Self::new();
        for (k, v) in iter {
            b.insert_if_absent(k, v);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_4_2_parses_members_and_skips_invalid_ones() {
        let b = Baggage::parse_w3c_lines([
            "a=1, b = two ;p=q, bad key=x, noeq, c=%E6%97%A5%zz",
            "a=again,d=4",
        ]);
        assert_eq!(
            b.iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "two"), ("c", "日%zz"), ("d", "4")]
        );
    }

    #[test]
    fn spec_4_2_limits_64_members_and_8192_bytes() {
        let many: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            Baggage::parse_w3c_lines([many.join(",").as_str()]).len(),
            64
        );
        let big = format!("a={},b=1", "x".repeat(8190));
        let b = Baggage::parse_w3c_lines([big.as_str()]);
        assert_eq!(b.get("b"), None);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn limits_count_what_they_leave_out() {
        let many: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
        let mut b = Baggage::new();
        assert_eq!(
            b.merge_w3c_lines([many.join(", ").as_str(), "x=1,,y=2"]),
            38
        );
        assert_eq!(b.len(), 64);
        // Nothing to leave out: nothing counted, even with invalid members and repeats.
        let mut b = Baggage::new();
        assert_eq!(b.merge_w3c_lines(["a=1,bad key=2,a=3,noeq"]), 0);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn incoming_caps_hold_for_what_is_kept() {
        // Percent-decoding can only shrink a value, so a conforming header never meets the
        // byte cap alone; items already present do count.
        let mut b: Baggage = (0..60).map(|i| (format!("app{i}"), "x")).collect();
        let before = truncated_items();
        assert_eq!(b.merge_w3c_lines(["a=1,b=2,c=3,d=4,e=5,f=6"]), 2);
        assert_eq!(b.len(), MAX_INCOMING_ITEMS);
        assert!(truncated_items() >= before + 2, "counted for the process");
        let mut b: Baggage = [("big", "v".repeat(8000))].into_iter().collect();
        let cut = b.merge_w3c_lines([format!("k={}", "w".repeat(200)).as_str(), "k2=1"]);
        assert_eq!((cut, b.len()), (2, 1));
    }

    #[test]
    fn spec_4_2_encodes_what_needs_encoding() {
        let b: Baggage = [("k", "a b,c;d%é")].into_iter().collect();
        let h = b.to_w3c_header();
        assert_eq!(h, "k=a%20b%2Cc%3Bd%25%C3%A9");
        assert_eq!(Baggage::parse_w3c_lines([h.as_str()]), b);
    }

    proptest! {
        #[test]
        fn never_panics(lines in proptest::collection::vec("\\PC{0,200}", 0..3)) {
            let _ = Baggage::parse_w3c_lines(lines.iter().map(String::as_str));
        }

        #[test]
        fn w3c_round_trips(items in proptest::collection::btree_map("[A-Za-z0-9_.-]{1,16}", "\\PC{0,30}", 0..10)) {
            let b: Baggage = items.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(Baggage::parse_w3c_lines([b.to_w3c_header().as_str()]), b);
        }
    }
}
