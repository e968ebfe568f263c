//! The performance counters the SDKs' collectors send every interval, under the names the
//! Node SDK 2.9.8 sends (`tests/data/captures/standard-metrics`), which the backend maps
//! onto the portal's performance counters: processor time, process CPU, private bytes,
//! available memory, request rate and request execution time.
//!
//! CPU and memory come from [`tracelink_core::process`] (Linux's `/proc`); elsewhere those
//! counters are left out. The request counters come from the standard metrics, and are left
//! out without them.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracelink_core::metrics::{RequestTotals, StandardMetrics};
use tracelink_core::model::{Metric, Telemetry};
use tracelink_core::process;

/// `\Processor(_Total)\% Processor Time`: the machine's CPU in use, in percent.
pub(crate) const PROCESSOR_TIME: &str = "\\Processor(_Total)\\% Processor Time";
/// `\Process(??APP_WIN32_PROC??)\% Processor Time`: the process's CPU, in percent of all
/// the CPUs it may use.
pub(crate) const PROCESS_TIME: &str = "\\Process(??APP_WIN32_PROC??)\\% Processor Time";
/// `\Process(??APP_WIN32_PROC??)\Private Bytes`: the process's memory, in bytes.
pub(crate) const PRIVATE_BYTES: &str = "\\Process(??APP_WIN32_PROC??)\\Private Bytes";
/// `\Memory\Available Bytes`.
pub(crate) const AVAILABLE_BYTES: &str = "\\Memory\\Available Bytes";
/// `\ASP.NET Applications(??APP_W3SVC_PROC??)\Requests/Sec`.
pub(crate) const REQUEST_RATE: &str = "\\ASP.NET Applications(??APP_W3SVC_PROC??)\\Requests/Sec";
/// `\ASP.NET Applications(??APP_W3SVC_PROC??)\Request Execution Time`: the mean duration
/// of the interval's requests, in ms.
pub(crate) const REQUEST_EXECUTION_TIME: &str =
    "\\ASP.NET Applications(??APP_W3SVC_PROC??)\\Request Execution Time";

/// One reading of the clocks the counters are differences of.
#[derive(Clone, Copy, Debug)]
struct Reading {
    at: Instant,
    /// The machine's busy and total CPU time, in ticks.
    machine: Option<(u64, u64)>,
    /// The process's CPU time.
    process: Option<Duration>,
    requests: RequestTotals,
}

/// Reads the counters once per interval.
pub(crate) struct PerfCounters {
    standard: Option<Arc<StandardMetrics>>,
    cpus: usize,
    last: Reading,
}

impl PerfCounters {
    /// Starts the first interval now.
    pub(crate) fn new(standard: Option<Arc<StandardMetrics>>) -> Self {
        let cpus = process::available_cpus();
        let mut c = Self {
            standard,
            cpus,
            last: Reading {
                at: Instant::now(),
                machine: None,
                process: None,
                requests: RequestTotals::default(),
            },
        };
        c.last = c.read();
        c
    }

    fn read(&self) -> Reading {
        Reading {
            at: Instant::now(),
            machine: process::machine_cpu_ticks(),
            process: process::cpu_time(),
            requests: self
                .standard
                .as_ref()
                .map(|s| s.request_totals())
                .unwrap_or_default(),
        }
    }

    /// The counters of the interval that ends now, as `Metric` items timed `now`.
    pub(crate) fn collect(&mut self, now: SystemTime) -> Vec<Telemetry> {
        let reading = self.read();
        let last = std::mem::replace(&mut self.last, reading);
        let secs = reading.at.saturating_duration_since(last.at).as_secs_f64();
        let mut values: Vec<(&str, f64)> = Vec::new();
        if let (Some((busy0, total0)), Some((busy1, total1))) = (last.machine, reading.machine)
            && total1 > total0
        {
            let busy = busy1.saturating_sub(busy0) as f64;
            values.push((PROCESSOR_TIME, busy / (total1 - total0) as f64 * 100.0));
        }
        if let (Some(p0), Some(p1)) = (last.process, reading.process)
            && let Some(p) = process::cpu_percent(
                p1.saturating_sub(p0),
                reading.at.saturating_duration_since(last.at),
                self.cpus,
            )
        {
            values.push((PROCESS_TIME, p));
        }
        if let Some(b) = process::resident_bytes() {
            values.push((PRIVATE_BYTES, b));
        }
        if let Some(b) = process::available_bytes() {
            values.push((AVAILABLE_BYTES, b));
        }
        if self.standard.is_some() && secs > 0.0 {
            let n = reading.requests.count.saturating_sub(last.requests.count);
            values.push((REQUEST_RATE, n as f64 / secs));
            if n > 0 {
                let total = reading
                    .requests
                    .duration
                    .saturating_sub(last.requests.duration);
                values.push((
                    REQUEST_EXECUTION_TIME,
                    total.as_secs_f64() * 1000.0 / n as f64,
                ));
            }
        }
        values
            .into_iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(name, v)| {
                let mut item = Telemetry::new(Metric::new(name, v));
                item.time = now;
                item
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracelink_core::model::{Request, TelemetryData};

    fn values(items: &[Telemetry]) -> Vec<(String, f64)> {
        items
            .iter()
            .map(|i| match &i.data {
                TelemetryData::Metric(m) => (m.metrics[0].name.clone(), m.metrics[0].value),
                _ => panic!("not a metric"),
            })
            .collect()
    }

    /// Present and plausible on this machine: percentages within 0-100, memory positive,
    /// and the request rate and mean duration of the interval's requests.
    #[test]
    fn counters_are_present_and_plausible() {
        let standard = Arc::new(StandardMetrics::new("r", "i"));
        let mut counters = PerfCounters::new(Some(standard.clone()));
        // Some CPU, and three requests of 2, 4 and 6 ms.
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert_ne!(x, 1);
        for ms in [2, 4, 6] {
            let mut r = Telemetry::new(Request::new("GET /", "200", Duration::from_millis(ms)));
            standard.observe(&mut r);
        }
        let now = SystemTime::now();
        let items = counters.collect(now);
        assert!(items.iter().all(|i| i.time == now));
        let v = values(&items);
        let get = |name: &str| v.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        let rate = get(REQUEST_RATE).unwrap();
        assert!(rate > 0.0 && rate <= 3.0 / 0.06, "{rate}");
        assert!((get(REQUEST_EXECUTION_TIME).unwrap() - 4.0).abs() < 1e-9);
        if cfg!(target_os = "linux") {
            let cpu = get(PROCESSOR_TIME).unwrap();
            assert!((0.0..=100.0).contains(&cpu), "{cpu}");
            let own = get(PROCESS_TIME).unwrap();
            assert!((0.0..=100.0).contains(&own), "{own}");
            assert!(get(PRIVATE_BYTES).unwrap() > 1024.0 * 1024.0);
            assert!(get(AVAILABLE_BYTES).unwrap() > 0.0);
        }
        // Without requests in the interval: a rate of 0 and no execution time.
        let v = values(&counters.collect(SystemTime::now()));
        assert!(v.iter().any(|(n, r)| n == REQUEST_RATE && *r == 0.0));
        assert!(!v.iter().any(|(n, _)| n == REQUEST_EXECUTION_TIME));
        // Without standard metrics, no request counters.
        let v = values(&PerfCounters::new(None).collect(SystemTime::now()));
        assert!(!v.iter().any(|(n, _)| n == REQUEST_RATE));
    }
}
