//! Eight bytes at a time ("SIMD within a register"): whole-word tests that let the hot text
//! scans (tracestate values, JSON escaping) skip plain bytes quickly. Each test is exact for
//! the word as a whole (a borrow or carry only ever crosses from a byte that already matched);
//! callers find the matching byte itself one byte at a time.

const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte.
pub(crate) const HIGH: u64 = 0x8080_8080_8080_8080;

/// The words of `b` from its start, as long as `plain` holds for them: how many bytes they
/// cover (a multiple of eight).
pub(crate) fn plain_prefix(b: &[u8], plain: impl Fn(u64) -> bool) -> usize {
    let mut n = 0;
    for chunk in b.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        if !plain(u64::from_le_bytes(w)) {
            break;
        }
        n += 8;
    }
    n
}

/// Whether a byte of `w` equals `c`.
pub(crate) fn has_byte(w: u64, c: u8) -> bool {
    let v = w ^ (ONES * u64::from(c));
    v.wrapping_sub(ONES) & !v & HIGH != 0
}

/// The high bit of every byte of `w` in `lo..=hi` (`hi` below 0x80), and no other bit; exact
/// per byte (no carry crosses bytes).
pub(crate) fn bytes_in(w: u64, lo: u8, hi: u8) -> u64 {
    debug_assert!(lo <= hi && hi < 0x80);
    let low7 = w & !HIGH;
    // Below 0x80, adding 0x80 - c sets a byte's high bit iff it is at least c, and never
    // carries out of it; bytes of 0x80 and more are removed by `!w`.
    let at_least = |c: u8| low7 + ONES * (0x80 - u64::from(c));
    at_least(lo) & !at_least(hi + 1) & !w & HIGH
}

/// Whether a byte of `w` is below `n` (`n` at most 0x80).
pub(crate) fn has_below(w: u64, n: u8) -> bool {
    w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH != 0
}

/// Whether a byte of `w` is 0x7F or above.
pub(crate) fn has_del_or_high(w: u64) -> bool {
    (w | w.wrapping_add(ONES)) & HIGH != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn word_tests_match_byte_tests(b: [u8; 8], c: u8, n in 0u8..=0x80) {
            let w = u64::from_le_bytes(b);
            prop_assert_eq!(has_byte(w, c), b.contains(&c));
            let mask = |f: &dyn Fn(u8) -> bool| {
                (0..8).filter(|&i| f(b[i])).map(|i| 0x80u64 << (8 * i)).sum::<u64>()
            };
            let (lo, hi) = (n.min(c & 0x7f), n.max(c & 0x7f).min(0x7f));
            prop_assert_eq!(bytes_in(w, lo, hi), mask(&|x| (lo..=hi).contains(&x)));
            prop_assert_eq!(has_below(w, n), b.iter().any(|&x| x < n));
            prop_assert_eq!(has_del_or_high(w), b.iter().any(|&x| x >= 0x7f));
        }
    }
}
