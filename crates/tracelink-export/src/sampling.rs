//! Sampling before anything else (SPEC 8): fixed-rate by the operation score, or adaptive
//! (SPEC 8.4), over a configurable set of item kinds. Metrics are never sampled; items that
//! already carry a sample rate (the middleware decided at request start) pass untouched.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tracelink_core::model::{Telemetry, TelemetryKind, tags};
use tracelink_core::{SamplingDecision, TraceId};

/// The sampling configuration.
///
/// ```
/// use tracelink_core::model::TelemetryKind;
/// use tracelink_export::Sampling;
///
/// let fixed = Sampling::fixed(25.0);
/// let adaptive = Sampling::adaptive().target_items_per_second(10.0)
///     .excluded_kinds([TelemetryKind::Exception]);
/// # let _ = (fixed, adaptive);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    mode: Mode,
    excluded: Vec<TelemetryKind>,
    included: Option<Vec<TelemetryKind>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Mode {
    Off,
    Fixed(f64),
    Adaptive(Adaptive),
}

/// The parameters of adaptive sampling (SPEC 8.4, with its defaults).
#[derive(Clone, Debug, PartialEq)]
struct Adaptive {
    target: f64,
    evaluation: Duration,
    ema_ratio: f64,
    min_rate: f64,
    max_rate: f64,
    decrease_after: Duration,
    increase_after: Duration,
}

impl Default for Adaptive {
    fn default() -> Self {
        Self {
            target: 5.0,
            evaluation: Duration::from_secs(15),
            ema_ratio: 0.25,
            min_rate: 1.0,
            max_rate: 1000.0,
            decrease_after: Duration::from_secs(120),
            increase_after: Duration::from_secs(15 * 60),
        }
    }
}

impl Default for Sampling {
    /// No sampling: keep everything.
    fn default() -> Self {
        Self::off()
    }
}

impl Sampling {
    /// Keep everything.
    pub fn off() -> Self {
        Self {
            mode: Mode::Off,
            excluded: Vec::new(),
            included: None,
        }
    }

    /// Keep operations whose score is below `percentage` (SPEC 8.1).
    pub fn fixed(percentage: f64) -> Self {
        Self {
            mode: Mode::Fixed(percentage.clamp(0.0, 100.0)),
            ..Self::off()
        }
    }

    /// Adaptive sampling with SPEC 8.4's defaults: 5 items/s, evaluated every 15 s, moving
    /// average ratio 0.25, rate 1..1000, lower after 2 min, higher after 15 min.
    pub fn adaptive() -> Self {
        Self {
            mode: Mode::Adaptive(Adaptive::default()),
            ..Self::off()
        }
    }

    /// Adaptive sampling's target of kept items per second.
    pub fn target_items_per_second(mut self, target: f64) -> Self {
        if let Mode::Adaptive(a) = &mut self.mode {
            a.target = target.max(0.001);
        }
        self
    }

    /// Never sample these kinds.
    pub fn excluded_kinds(mut self, kinds: impl IntoIterator<Item = TelemetryKind>) -> Self {
        self.excluded.extend(kinds);
        self
    }

    /// Sample only these kinds (all kinds but metrics by default).
    pub fn included_kinds(mut self, kinds: impl IntoIterator<Item = TelemetryKind>) -> Self {
        self.included = Some(kinds.into_iter().collect());
        self
    }
}

/// What the sampler does with an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep,
    Drop,
}

#[derive(Debug)]
struct AdaptiveState {
    window_start: Instant,
    ema: Option<f64>,
    last_change: Instant,
}

/// The sampler: the shared decision for the middleware and the filter for items.
#[derive(Debug)]
pub(crate) struct Sampler {
    config: Sampling,
    /// The current percentage, as f64 bits.
    percentage: AtomicU64,
    kept_in_window: AtomicU64,
    state: Mutex<AdaptiveState>,
}

impl Sampler {
    pub(crate) fn new(config: Sampling) -> Self {
        let pct = match config.mode {
            Mode::Fixed(p) => p,
            _ => 100.0,
        };
        let now = Instant::now();
        Self {
            config,
            percentage: AtomicU64::new(pct.to_bits()),
            kept_in_window: AtomicU64::new(0),
            state: Mutex::new(AdaptiveState {
                window_start: now,
                ema: None,
                last_change: now,
            }),
        }
    }

    /// The current percentage.
    pub(crate) fn percentage(&self) -> f64 {
        f64::from_bits(self.percentage.load(Relaxed))
    }

    /// The decision for a new operation (SPEC 8.5).
    pub(crate) fn decide(&self, operation_id: TraceId) -> SamplingDecision {
        match self.config.mode {
            Mode::Off => SamplingDecision::KEEP_ALL,
            _ => SamplingDecision::fixed(self.percentage(), operation_id),
        }
    }

    fn applies_to(&self, kind: TelemetryKind) -> bool {
        kind != TelemetryKind::Metric
            && !self.config.excluded.contains(&kind)
            && self
                .config
                .included
                .as_ref()
                .is_none_or(|i| i.contains(&kind))
    }

    /// Samples one item (SPEC 8.2, 8.3), writing `sample_rate` on kept items.
    pub(crate) fn apply(&self, item: &mut Telemetry) -> Verdict {
        if matches!(self.config.mode, Mode::Off) || !self.applies_to(item.kind()) {
            return Verdict::Keep;
        }
        if item.sample_rate.is_some() {
            // Decided upstream (the middleware at request start): pass untouched.
            self.kept_in_window.fetch_add(1, Relaxed);
            return Verdict::Keep;
        }
        let pct = self.percentage();
        let keep = match item.tags.get(tags::OPERATION_ID) {
            Some(op) => pct >= 100.0 || tracelink_core::sampling::score(op) < pct,
            None => true,
        };
        if keep {
            item.sample_rate = Some(pct);
            self.kept_in_window.fetch_add(1, Relaxed);
            Verdict::Keep
        } else {
            Verdict::Drop
        }
    }

    /// Adaptive sampling's evaluation (SPEC 8.4); call it regularly. Returns the new
    /// percentage when it changed.
    pub(crate) fn evaluate(&self, now: Instant) -> Option<f64> {
        let Mode::Adaptive(a) = &self.config.mode else {
            return None;
        };
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(st.window_start);
        if elapsed < a.evaluation {
            return None;
        }
        let kept = self.kept_in_window.swap(0, Relaxed) as f64;
        st.window_start = now;
        let current = self.percentage();
        let rate_now = 100.0 / current;
        // Items the application produced per second: kept items times the current rate.
        let observed = kept / elapsed.as_secs_f64() * rate_now;
        let ema = match st.ema {
            Some(prev) => a.ema_ratio * observed + (1.0 - a.ema_ratio) * prev,
            None => observed,
        };
        st.ema = Some(ema);
        let suggested = (ema / a.target).ceil().clamp(a.min_rate, a.max_rate);
        let suggested_pct = 100.0 / suggested;
        let since = now.saturating_duration_since(st.last_change);
        let change = (suggested_pct < current && since >= a.decrease_after)
            || (suggested_pct > current && since >= a.increase_after);
        if change {
            self.percentage.store(suggested_pct.to_bits(), Relaxed);
            st.last_change = now;
            return Some(suggested_pct);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracelink_core::model::{Event, Metric};

    fn item(op: &str) -> Telemetry {
        let mut t = Telemetry::new(Event::new("e"));
        t.tags.insert(tags::OPERATION_ID, op);
        t
    }

    #[test]
    fn spec_8_2_whole_operations() {
        let s = Sampler::new(Sampling::fixed(25.0));
        let mut kept = 0;
        for _ in 0..100_000 {
            let op = TraceId::random().to_string();
            let verdicts: Vec<Verdict> = (0..3).map(|_| s.apply(&mut item(&op))).collect();
            assert!(
                verdicts.iter().all(|v| *v == verdicts[0]),
                "all or nothing per operation"
            );
            kept += usize::from(verdicts[0] == Verdict::Keep);
        }
        let frac = kept as f64 / 100_000.0;
        assert!((0.24..0.26).contains(&frac), "{frac}");
    }

    #[test]
    fn spec_8_3_rates_and_exceptions() {
        let s = Sampler::new(Sampling::fixed(50.0).excluded_kinds([TelemetryKind::Trace]));
        let mut kept = item("4bf92f3577b34da6a3ce929d0e0e4736"); // 33.46
        assert_eq!(s.apply(&mut kept), Verdict::Keep);
        assert_eq!(kept.sample_rate, Some(50.0));
        let mut dropped = item("0af7651916cd43dd8448eb211c80319c"); // 52.79
        assert_eq!(s.apply(&mut dropped), Verdict::Drop);
        let mut decided = item("0af7651916cd43dd8448eb211c80319c");
        decided.sample_rate = Some(100.0);
        assert_eq!(s.apply(&mut decided), Verdict::Keep);
        assert_eq!(decided.sample_rate, Some(100.0), "untouched");
        let mut metric = Telemetry::new(Metric::new("m", 1.0));
        metric
            .tags
            .insert(tags::OPERATION_ID, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(s.apply(&mut metric), Verdict::Keep);
        assert_eq!(metric.sample_rate, None, "metrics are never sampled");
    }

    #[test]
    fn spec_8_4_adaptive_converges_toward_the_target() {
        let s = Sampler::new(Sampling::adaptive().target_items_per_second(5.0));
        let start = Instant::now();
        // 500 items/s offered; simulate 30 minutes in 15 s windows.
        for w in 1..=120u32 {
            let pct = s.percentage();
            let offered = 500.0 * 15.0;
            let kept = (offered * pct / 100.0).round() as u64;
            s.kept_in_window.store(kept, Relaxed);
            s.evaluate(start + Duration::from_secs(15 * u64::from(w)));
        }
        // 500/s at 5/s kept: rate 100, 1 %.
        assert!((s.percentage() - 1.0).abs() < 1e-9, "{}", s.percentage());
        // Traffic drops to 5/s: the percentage rises, at most once per 15 minutes.
        let t0 = start + Duration::from_secs(15 * 120);
        let mut increases = Vec::new();
        for w in 1..=120u32 {
            let kept = (5.0 * 15.0 * s.percentage() / 100.0).round() as u64;
            s.kept_in_window.store(kept, Relaxed);
            if s.evaluate(t0 + Duration::from_secs(15 * u64::from(w)))
                .is_some()
            {
                increases.push(w);
            }
        }
        assert!(
            increases.windows(2).all(|p| (p[1] - p[0]) * 15 >= 15 * 60),
            "{increases:?}"
        );
        assert!(s.percentage() >= 50.0, "{}", s.percentage());
    }
}
