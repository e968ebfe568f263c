//! The per-second counts behind the metrics: atomics striped by thread, so that counting on
//! many request threads at once never contends on one cache line.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tracelink_core::model::{Telemetry, TelemetryData};

use crate::protocol::{MetricPoint, metric};

/// Stripes of counters; a thread always counts into the same one.
const STRIPES: usize = 16;

/// Counts are kept in thousandths of an item, so that an item of an operation kept at a
/// sampling percentage below 100 can stand for the items it represents (100 / percentage).
const ONE: u64 = 1000;

/// The dependency type of in-process spans, which are not calls.
pub(crate) const IN_PROC: &str = "InProc";

#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    requests: AtomicU64,
    requests_failed: AtomicU64,
    request_micros: AtomicU64,
    requests_timed: AtomicU64,
    dependencies: AtomicU64,
    dependencies_failed: AtomicU64,
    dependency_micros: AtomicU64,
    dependencies_timed: AtomicU64,
    exceptions: AtomicU64,
}

/// What was counted since the last [`Counters::take`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) requests: u64,
    pub(crate) requests_failed: u64,
    pub(crate) request_micros: u64,
    pub(crate) requests_timed: u64,
    pub(crate) dependencies: u64,
    pub(crate) dependencies_failed: u64,
    pub(crate) dependency_micros: u64,
    pub(crate) dependencies_timed: u64,
    pub(crate) exceptions: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    stripes: [Stripe; STRIPES],
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<Option<usize>> = const { Cell::new(None) };
}

fn stripe_index() -> usize {
    STRIPE
        .try_with(|s| match s.get() {
            Some(i) => i,
            None => {
                let i = NEXT_STRIPE.fetch_add(1, Relaxed) % STRIPES;
                s.set(Some(i));
                i
            }
        })
        // A thread being torn down still counts, into the first stripe.
        .unwrap_or(0)
}

/// The weight of one item in thousandths: 1000, or 1000 × 100 / percentage for an item of an
/// operation that head sampling kept at a percentage below 100.
fn weight(sample_rate: Option<f64>) -> u64 {
    match sample_rate {
        Some(p) if p > 0.0 && p < 100.0 => (ONE as f64 * 100.0 / p).round() as u64,
        _ => ONE,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Counters {
    /// Counts one item. Returns whether it is one the sample feed shows: a failed request, a
    /// failed call, an exception or a trace.
    pub(crate) fn record(&self, item: &Telemetry) -> bool {
        let s = &self.stripes[stripe_index()];
        let w = weight(item.sample_rate);
        match &item.data {
            TelemetryData::Request(r) => {
                s.requests.fetch_add(w, Relaxed);
                s.request_micros.fetch_add(micros(r.duration), Relaxed);
                s.requests_timed.fetch_add(1, Relaxed);
                if !r.success {
                    s.requests_failed.fetch_add(w, Relaxed);
                }
                !r.success
            }
            TelemetryData::Dependency(d) if d.dependency_type != IN_PROC => {
                s.dependencies.fetch_add(w, Relaxed);
                s.dependency_micros.fetch_add(micros(d.duration), Relaxed);
                s.dependencies_timed.fetch_add(1, Relaxed);
                if !d.success {
                    s.dependencies_failed.fetch_add(w, Relaxed);
                }
                !d.success
            }
            TelemetryData::Exception(_) => {
                s.exceptions.fetch_add(w, Relaxed);
                true
            }
            TelemetryData::Trace(_) => true,
            _ => false,
        }
    }

    /// Takes the counts so far, leaving zeros.
    pub(crate) fn take(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.stripes {
            t.requests += s.requests.swap(0, Relaxed);
            t.requests_failed += s.requests_failed.swap(0, Relaxed);
            t.request_micros = t
                .request_micros
                .saturating_add(s.request_micros.swap(0, Relaxed));
            t.requests_timed += s.requests_timed.swap(0, Relaxed);
            t.dependencies += s.dependencies.swap(0, Relaxed);
            t.dependencies_failed += s.dependencies_failed.swap(0, Relaxed);
            t.dependency_micros = t
                .dependency_micros
                .saturating_add(s.dependency_micros.swap(0, Relaxed));
            t.dependencies_timed += s.dependencies_timed.swap(0, Relaxed);
            t.exceptions += s.exceptions.swap(0, Relaxed);
        }
        t
    }
}

impl Totals {
    /// The metrics of a post, in the Node SDK's order: CPU and memory when known, then the
    /// rates over `elapsed`, with each duration mean right after its rate when there were
    /// calls to average (weighted by their number).
    pub(crate) fn metrics(
        &self,
        elapsed: Duration,
        cpu_percent: Option<f64>,
        memory_bytes: Option<f64>,
    ) -> Vec<MetricPoint> {
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = |milli: u64| milli as f64 / ONE as f64 / secs;
        let mean_ms = |micros: u64, n: u64| micros as f64 / n as f64 / 1000.0;
        let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let mut m = Vec::with_capacity(9);
        if let Some(cpu) = cpu_percent {
            m.push(MetricPoint::new(metric::PROCESSOR_TIME, cpu, 1));
        }
        if let Some(bytes) = memory_bytes {
            m.push(MetricPoint::new(metric::COMMITTED_BYTES, bytes, 1));
        }
        m.push(MetricPoint::new(
            metric::REQUESTS_PER_SECOND,
            rate(self.requests),
            1,
        ));
        if self.requests_timed > 0 {
            m.push(MetricPoint::new(
                metric::REQUEST_DURATION,
                mean_ms(self.request_micros, self.requests_timed),
                count(self.requests_timed),
            ));
        }
        m.push(MetricPoint::new(
            metric::REQUESTS_FAILED_PER_SECOND,
            rate(self.requests_failed),
            1,
        ));
        m.push(MetricPoint::new(
            metric::DEPENDENCY_CALLS_PER_SECOND,
            rate(self.dependencies),
            1,
        ));
        m.push(MetricPoint::new(
            metric::DEPENDENCY_CALLS_FAILED_PER_SECOND,
            rate(self.dependencies_failed),
            1,
        ));
        if self.dependencies_timed > 0 {
            m.push(MetricPoint::new(
                metric::DEPENDENCY_CALL_DURATION,
                mean_ms(self.dependency_micros, self.dependencies_timed),
                count(self.dependencies_timed),
            ));
        }
        m.push(MetricPoint::new(
            metric::EXCEPTIONS_PER_SECOND,
            rate(self.exceptions),
            1,
        ));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracelink_core::model::{Dependency, Event, Exception, Request, SeverityLevel, Trace};

    fn request(ms: u64, code: &'static str) -> Telemetry {
        Telemetry::new(Request::new("GET /", code, Duration::from_millis(ms)))
    }

    #[test]
    fn counts_by_kind_and_outcome() {
        let c = Counters::default();
        assert!(!c.record(&request(10, "200")));
        assert!(c.record(&request(30, "500")));
        let mut call = Dependency::new("GET /x", "Http");
        call.duration = Duration::from_millis(4);
        assert!(!c.record(&Telemetry::new(call.clone())));
        call.success = false;
        assert!(c.record(&Telemetry::new(call)));
        assert!(!c.record(&Telemetry::new(Dependency::new("span", IN_PROC))));
        assert!(c.record(&Telemetry::new(Exception::new("E", "m"))));
        assert!(c.record(&Telemetry::new(Trace::new("t", SeverityLevel::Verbose))));
        assert!(!c.record(&Telemetry::new(Event::new("e"))));
        let t = c.take();
        assert_eq!(
            t,
            Totals {
                requests: 2000,
                requests_failed: 1000,
                request_micros: 40_000,
                requests_timed: 2,
                dependencies: 2000,
                dependencies_failed: 1000,
                dependency_micros: 8_000,
                dependencies_timed: 2,
                exceptions: 1000,
            }
        );
        assert_eq!(c.take(), Totals::default());
        let m = t.metrics(Duration::from_millis(500), Some(12.5), Some(1e6));
        let v: Vec<(&str, f64, u32)> = m
            .iter()
            .map(|p| (p.name.as_str(), p.value, p.weight))
            .collect();
        assert_eq!(
            v,
            [
                (metric::PROCESSOR_TIME, 12.5, 1),
                (metric::COMMITTED_BYTES, 1e6, 1),
                (metric::REQUESTS_PER_SECOND, 4.0, 1),
                (metric::REQUEST_DURATION, 20.0, 2),
                (metric::REQUESTS_FAILED_PER_SECOND, 2.0, 1),
                (metric::DEPENDENCY_CALLS_PER_SECOND, 4.0, 1),
                (metric::DEPENDENCY_CALLS_FAILED_PER_SECOND, 2.0, 1),
                (metric::DEPENDENCY_CALL_DURATION, 4.0, 2),
                (metric::EXCEPTIONS_PER_SECOND, 2.0, 1),
            ]
        );
        // Without calls there is no mean to report, and unknown CPU and memory are left out.
        let names: Vec<String> = Totals::default()
            .metrics(Duration::from_secs(1), None, None)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names.len(), 5);
        assert!(!names.iter().any(|n| n.contains("Duration")));
    }

    #[test]
    fn head_sampled_items_stand_for_the_operations_they_represent() {
        let c = Counters::default();
        let mut kept = request(10, "200");
        kept.sample_rate = Some(25.0);
        c.record(&kept);
        let mut all = request(10, "200");
        all.sample_rate = Some(100.0);
        c.record(&all);
        let mut odd = request(10, "200");
        odd.sample_rate = Some(f64::NAN);
        c.record(&odd);
        let t = c.take();
        assert_eq!(t.requests, 4000 + 1000 + 1000);
        // The mean duration is over the items seen.
        assert_eq!(t.requests_timed, 3);
    }

    #[test]
    fn threads_count_into_stripes_and_nothing_is_lost() {
        let c = Arc::new(Counters::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        c.record(&request(1, "200"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let t = c.take();
        assert_eq!((t.requests, t.requests_timed), (80_000_000, 80_000));
        assert_eq!(std::mem::align_of::<Stripe>(), 128);
    }
}
