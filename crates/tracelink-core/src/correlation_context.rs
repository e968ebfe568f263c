//! The legacy `Correlation-Context` header (SPEC 4.1), the baggage of the .NET, Node and
//! Java Application Insights SDKs.
//!
//! Read: split on `,`; each item split at its first `=`; key and value trimmed; items without
//! `=` or with an empty key skipped; reading stops at the item that would pass 1024 bytes;
//! keys are cut to 150 chars and values to 8192 (the property limits of SPEC 6.5). The caps
//! on incoming baggage ([`crate::baggage`]: 64 items, 8192 bytes, both headers together)
//! apply too, and what a limit leaves out is counted.
//! Written: `k=v, k2=v2`, the form the Node SDK sends; items the format cannot carry (a key
//! with `=`, `,` or white space, a value with `,` or a control char) are left out.
//!
//! ```
//! use tracelink_core::{Baggage, correlation_context};
//!
//! let b = correlation_context::parse_lines(["userId=alice, tenant=contoso, junk, =x"]);
//! assert_eq!(b.get("tenant"), Some("contoso"));
//! assert_eq!(correlation_context::to_header(&b), "userId=alice, tenant=contoso");
//! ```

use crate::baggage::{Baggage, Budget, count_truncated};
use crate::model::limits::{PROPERTY_KEY, PROPERTY_VALUE, truncate};

/// Most bytes of `Correlation-Context` read (SPEC 4.1).
pub const MAX_BYTES: usize = 1024;

/// Reads `Correlation-Context` header lines into new baggage.
pub fn parse_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Baggage {
    let mut b = Baggage::new();
    merge_lines(&mut b, lines);
    b
}

/// Adds the items of `Correlation-Context` header lines whose keys are not present yet,
/// within the 1024-byte limit and the caps on incoming baggage (see [`crate::baggage`]).
/// Returns how many items were left out by a limit.
pub fn merge_lines<'a>(baggage: &mut Baggage, lines: impl IntoIterator<Item = &'a str>) -> usize {
    let mut budget = Budget::of(baggage);
    let mut used = 0usize;
    let mut lines = lines.into_iter();
    while let Some(line) = lines.next() {
        let mut rest = line.split(',');
        while let Some(item) = rest.next() {
            used += item.len() + 1;
            if used > MAX_BYTES + 1 {
                return count_truncated(item, rest, lines);
            }
            let Some((k, v)) = item.split_once('=') else {
                continue;
            };
            let k = k.trim();
            if k.is_empty() {
                continue;
            }
            let (k, v) = (
                truncate(k, PROPERTY_KEY),
                truncate(v.trim(), PROPERTY_VALUE),
            );
            if baggage.get(k).is_some() {
                continue;
            }
            if !budget.take(k, v) {
                return count_truncated(item, rest, lines);
            }
            baggage.insert_if_absent(k, v);
        }
    }
    0
}

fn writable(k: &str, v: &str) -> bool {
    !k.is_empty()
        && !k
            .chars()
            .any(|c| c == '=' || c == ',' || c.is_whitespace() || c.is_control())
        && !v.chars().any(|c| c == ',' || c.is_control())
}

/// The header value for `baggage`: `k=v, k2=v2`. Empty when nothing can be written (then
/// send no header, SPEC 4.3).
pub fn to_header(baggage: &Baggage) -> String {
    let mut out = String::new();
    for (k, v) in baggage.iter().filter(|(k, v)| writable(k, v)) {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v.trim());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_4_1_split_trim_skip() {
        let b = parse_lines([" a = 1 ,b=x=y,,noeq, =empty,c="]);
        assert_eq!(
            b.iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "x=y"), ("c", "")]
        );
    }

    #[test]
    fn spec_4_1_stops_after_1024_bytes() {
        let items: Vec<String> = (0..200)
            .map(|i| format!("key{i:03}={}", "v".repeat(17)))
            .collect();
        let mut b = Baggage::new();
        let cut = merge_lines(&mut b, [items.join(",").as_str()]);
        // Items are 24 bytes + a separator: item i ends at byte 25i+24, so 41 end within 1024
        // (fewer than the 64-item cap); the other 159 are counted.
        assert_eq!((b.len(), cut), (41, 159));
    }

    #[test]
    fn incoming_caps_and_counts() {
        // 1024 bytes of two-byte items would give 341 properties: 64 are kept.
        let items: Vec<String> = (0..400).map(|i| format!("{i}=")).collect();
        let mut b = Baggage::new();
        let cut = merge_lines(&mut b, [items.join(",").as_str()]);
        assert_eq!(b.len(), 64);
        assert_eq!(cut, 400 - 64);
        // After W3C baggage, only the room it left.
        let w3c: Vec<String> = (0..63).map(|i| format!("w{i}=1")).collect();
        let mut b = Baggage::parse_w3c_lines([w3c.join(",").as_str()]);
        assert_eq!(merge_lines(&mut b, ["a=1, b=2, c=3"]), 2);
        assert_eq!(b.get("a"), Some("1"));
        assert_eq!(merge_lines(&mut Baggage::new(), ["a=1, b=2"]), 0);
    }

    #[test]
    fn spec_4_1_cuts_keys_and_values() {
        let long = format!("{}={}", "k".repeat(200), "v".repeat(200));
        let b = parse_lines([long.as_str()]);
        let (k, v) = b.iter().next().unwrap();
        assert_eq!(k.len(), 150);
        assert_eq!(v.len(), 200);
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,2000}") {
            let b = parse_lines([s.as_str()]);
            let _ = to_header(&b);
        }

        #[test]
        fn round_trips(items in proptest::collection::btree_map("[A-Za-z0-9_.-]{1,20}", "[A-Za-z0-9_.:/=-]{0,20}", 0..8)) {
            let b: Baggage = items.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(parse_lines([to_header(&b).as_str()]), b);
        }
    }
}
