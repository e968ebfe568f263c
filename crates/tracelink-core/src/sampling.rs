//! The sampling score and keep decision (SPEC 8.1-8.3), identical to every Application
//! Insights SDK so that all tiers of a system keep the same operations.
//!
//! ```
//! use tracelink_core::sampling::{SamplingDecision, score};
//! use tracelink_core::TraceId;
//!
//! assert!((score("4bf92f3577b34da6a3ce929d0e0e4736") - 33.46135385030012).abs() < 1e-9);
//! let op: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap();
//! assert!(SamplingDecision::fixed(50.0, op).is_sampled());   // 33.46 < 50
//! assert!(!SamplingDecision::fixed(25.0, op).is_sampled());  // 33.46 >= 25
//! ```

use crate::id::TraceId;

/// The score of a string in `[0, 100]` (SPEC 8.1): the djb2-style hash over UTF-16 code units
/// of the string repeated until it has at least 8 units.
pub fn score(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let units = s.encode_utf16().count();
    let mut copies = 1usize;
    while units * copies < 8 {
        copies *= 2;
    }
    let mut h: i32 = 5381;
    for _ in 0..copies {
        for c in s.encode_utf16() {
            h = h.wrapping_mul(33).wrapping_add(i32::from(c));
        }
    }
    finish(h)
}

fn finish(h: i32) -> f64 {
    let h = if h == i32::MIN { i32::MAX } else { h.abs() };
    f64::from(h) / f64::from(i32::MAX) * 100.0
}

/// `33^i` in wrapping `i32` arithmetic, for `i` in `0..=8`.
const POW33: [i32; 9] = {
    let mut t = [1i32; 9];
    let mut i = 1;
    while i < 9 {
        t[i] = t[i - 1].wrapping_mul(33);
        i += 1;
    }
    t
};

/// The score of an operation id, computed over its 32-digit hex form without allocating.
///
/// The same hash as [`score`], eight digits per step: `h·33⁸ + Σ cᵢ·33⁷⁻ⁱ` equals eight steps
/// of `h·33 + c` in wrapping arithmetic, and its eight products are independent, so the
/// chain of dependent multiplications is four long instead of thirty-two.
pub fn score_trace_id(id: TraceId) -> f64 {
    let hex = id.to_hex();
    let mut h: i32 = 5381;
    for chunk in hex.as_bytes().chunks_exact(8) {
        let mut sum = 0i32;
        for (i, &c) in chunk.iter().enumerate() {
            sum = sum.wrapping_add(i32::from(c).wrapping_mul(POW33[7 - i]));
        }
        h = h.wrapping_mul(POW33[8]).wrapping_add(sum);
    }
    finish(h)
}

impl core::fmt::Debug for SamplingDecision {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SamplingDecision")
            .field("percentage", &self.percentage())
            .field("sampled", &self.is_sampled())
            .finish()
    }
}

/// A sampling decision for an operation (SPEC 8.2-8.5): whether its items are kept, and the
/// percentage they were kept at (written as `sampleRate`).
///
/// Eight bytes: the percentage's bits, with the (always clear) sign bit meaning "dropped", so
/// that every operation context stays small to make and move.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SamplingDecision {
    bits: u64,
}

const DROPPED: u64 = 1 << 63;

impl SamplingDecision {
    /// Keep everything: 100 %.
    pub const KEEP_ALL: Self = Self::new(100.0, true);

    /// The decision; the percentage's sign is ignored.
    const fn new(percentage: f64, sampled: bool) -> Self {
        let magnitude = percentage.to_bits() & !DROPPED;
        Self {
            bits: if sampled {
                magnitude
            } else {
                magnitude | DROPPED
            },
        }
    }

    /// The decision of fixed-rate sampling at `percentage` for operation `id`: kept when
    /// the score is below the percentage (SPEC 8.1); 100 % or more keeps everything.
    pub fn fixed(percentage: f64, id: TraceId) -> Self {
        let percentage = if percentage.is_nan() {
            100.0
        } else {
            percentage.clamp(0.0, 100.0)
        };
        // Scores are in [0, 100]: 0 % keeps nothing and 100 % everything, without hashing.
        let sampled = match percentage {
            p if p >= 100.0 => true,
            p if p <= 0.0 => false,
            p => score_trace_id(id) < p,
        };
        Self::new(percentage, sampled)
    }

    /// A decision made elsewhere to keep the operation, at `percentage`.
    ///
    /// ```
    /// use tracelink_core::SamplingDecision;
    ///
    /// assert!(SamplingDecision::kept(25.0).is_sampled());
    /// assert!(!SamplingDecision::dropped(25.0).is_sampled());
    /// ```
    pub const fn kept(percentage: f64) -> Self {
        Self::new(percentage, true)
    }

    /// A decision made elsewhere to drop the operation, sampled at `percentage`.
    pub const fn dropped(percentage: f64) -> Self {
        Self::new(percentage, false)
    }

    /// Whether the operation's items are kept.
    pub const fn is_sampled(&self) -> bool {
        self.bits & DROPPED == 0
    }

    /// The percentage in `[0, 100]`.
    pub const fn percentage(&self) -> f64 {
        f64::from_bits(self.bits & !DROPPED)
    }
}

impl Default for SamplingDecision {
    fn default() -> Self {
        Self::KEEP_ALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vectors {
        cases: Vec<Case>,
    }
    #[derive(serde::Deserialize)]
    struct Case {
        input: String,
        score: f64,
    }

    /// SPEC 8.1: the scores of a shipping SDK, to 1e-9.
    #[test]
    fn spec_8_1_vectors() {
        let v: Vectors = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/vectors/sampling-score.json"
        )))
        .unwrap();
        assert!(v.cases.len() >= 30);
        for c in &v.cases {
            let got = score(&c.input);
            assert!(
                (got - c.score).abs() < 1e-9,
                "{:?}: {got} != {}",
                c.input,
                c.score
            );
            if let Ok(id) = c.input.parse::<TraceId>() {
                assert_eq!(score_trace_id(id), got);
            }
        }
    }

    #[test]
    fn spec_8_2_decision_is_per_operation() {
        let id: TraceId = "47eaa0992cb6916d86dc283cf0480ff9".parse().unwrap(); // 98.57
        assert!(!SamplingDecision::fixed(98.0, id).is_sampled());
        assert!(SamplingDecision::fixed(99.0, id).is_sampled());
        assert!(SamplingDecision::fixed(100.0, id).is_sampled());
        assert!(!SamplingDecision::fixed(0.0, id).is_sampled());
        assert_eq!(SamplingDecision::fixed(250.0, id).percentage(), 100.0);
    }

    proptest::proptest! {
        /// SPEC 8.1: the eight-digits-per-step hash is the plain one, for every id.
        #[test]
        fn trace_id_score_is_the_string_score(v in 1u128..) {
            let id = TraceId::from_u128(v).unwrap();
            proptest::prop_assert_eq!(score_trace_id(id), score(&id.to_hex()));
        }
    }

    #[test]
    fn kept_fraction_matches_percentage() {
        let kept = (0..20_000)
            .filter(|_| SamplingDecision::fixed(25.0, TraceId::random()).is_sampled())
            .count();
        let frac = kept as f64 / 20_000.0;
        assert!((0.23..0.27).contains(&frac), "{frac}");
    }
}
