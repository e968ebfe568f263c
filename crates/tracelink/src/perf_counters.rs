//! The performance counters the SDKs' collectors send every interval, under the names the
//! Node SDK 2.9.8 sends (`tests/data/captures/standard-metrics`), which the backend maps
//! onto the portal's performance counters: processor time, process CPU, private bytes,
//! available memory, request rate and request execution time.
//!
//! Linux: the machine's CPU from `/proc/stat`, the process's from `/proc/self/stat`, its
//! memory from `/proc/self/status` (`VmRSS`), available memory from `/proc/meminfo`
//! (`MemAvailable`, at most what the cgroup v2 limit leaves). Elsewhere the CPU and memory
//! counters are left out. The request counters come from the standard metrics, and are left
//! out without them.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracelink_core::metrics::{RequestTotals, StandardMetrics};
use tracelink_core::model::{Metric, Telemetry};

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
    cpus: f64,
    last: Reading,
}

impl PerfCounters {
    /// Starts the first interval now.
    pub(crate) fn new(standard: Option<Arc<StandardMetrics>>) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
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
            machine: os::machine_cpu(),
            process: os::process_cpu(),
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
            && secs > 0.0
        {
            let busy = p1.saturating_sub(p0).as_secs_f64();
            values.push((
                PROCESS_TIME,
                (busy / secs / self.cpus * 100.0).clamp(0.0, 100.0),
            ));
        }
        if let Some(b) = os::private_bytes() {
            values.push((PRIVATE_BYTES, b));
        }
        if let Some(b) = os::available_bytes() {
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

#[cfg(target_os = "linux")]
mod os {
    use std::time::Duration;

    pub(super) fn machine_cpu() -> Option<(u64, u64)> {
        parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    pub(super) fn process_cpu() -> Option<Duration> {
        parse_self_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    pub(super) fn private_bytes() -> Option<f64> {
        kb_field(
            &std::fs::read_to_string("/proc/self/status").ok()?,
            "VmRSS:",
        )
    }

    pub(super) fn available_bytes() -> Option<f64> {
        let host = kb_field(
            &std::fs::read_to_string("/proc/meminfo").ok()?,
            "MemAvailable:",
        )?;
        let cgroup = cgroup_available(
            std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok(),
            std::fs::read_to_string("/sys/fs/cgroup/memory.current").ok(),
        );
        Some(cgroup.map_or(host, |c| c.min(host)))
    }

    /// Busy and total ticks of the `cpu` line: busy is all but `idle` and `iowait`.
    pub(super) fn parse_proc_stat(stat: &str) -> Option<(u64, u64)> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|t| t.parse().ok())
            .collect::<Option<_>>()?;
        let total: u64 = ticks.iter().sum();
        let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
        Some((total.saturating_sub(idle), total))
    }

    /// `utime` + `stime`, in ticks of 1/100 s (Linux's `USER_HZ`).
    pub(super) fn parse_self_stat(stat: &str) -> Option<Duration> {
        // The command name (field 2) is in parentheses and may hold spaces and parentheses.
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace().skip(11);
        let utime: u64 = fields.next()?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        Some(Duration::from_millis(
            utime.saturating_add(stime).saturating_mul(10),
        ))
    }

    /// A `Name:   1234 kB` line, in bytes.
    pub(super) fn kb_field(text: &str, name: &str) -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb as f64 * 1024.0)
    }

    /// What a cgroup v2 memory limit leaves, when there is one.
    pub(super) fn cgroup_available(max: Option<String>, current: Option<String>) -> Option<f64> {
        let max: u64 = max?.trim().parse().ok()?; // "max": no limit
        let current: u64 = current?.trim().parse().ok()?;
        Some(max.saturating_sub(current) as f64)
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use std::time::Duration;

    pub(super) fn machine_cpu() -> Option<(u64, u64)> {
        None
    }
    pub(super) fn process_cpu() -> Option<Duration> {
        None
    }
    pub(super) fn private_bytes() -> Option<f64> {
        None
    }
    pub(super) fn available_bytes() -> Option<f64> {
        None
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

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_files_parse() {
        let stat = "cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n";
        assert_eq!(os::parse_proc_stat(stat), Some((160, 980)));
        let own = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 1380 0 0 0 150 25 0 0 20";
        assert_eq!(os::parse_self_stat(own), Some(Duration::from_millis(1750)));
        let status = "Name:\tx\nVmRSS:\t    1536 kB\n";
        assert_eq!(os::kb_field(status, "VmRSS:"), Some(1536.0 * 1024.0));
        assert_eq!(
            os::cgroup_available(Some("1000\n".into()), Some("400\n".into())),
            Some(600.0)
        );
        assert_eq!(
            os::cgroup_available(Some("max\n".into()), Some("400".into())),
            None
        );
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
