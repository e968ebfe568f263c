//! The process's CPU time and memory, for `\Processor(_Total)\% Processor Time` and
//! `\Memory\Committed Bytes`: read from `/proc/self` on Linux; unknown elsewhere.

use std::time::{Duration, Instant};

/// Samples the process's CPU use between two calls.
#[derive(Debug)]
pub(crate) struct ProcessSampler {
    last: Option<(Instant, Duration)>,
    cpus: f64,
}

impl ProcessSampler {
    pub(crate) fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            last: None,
            cpus: cpus as f64,
        }
    }

    /// Starts a new interval now.
    pub(crate) fn reset(&mut self) {
        self.last = cpu_time().map(|t| (Instant::now(), t));
    }

    /// The process's CPU use since the last call (or reset) in percent of all the CPUs it may
    /// use (100 = every one of them busy), and starts a new interval.
    pub(crate) fn cpu_percent(&mut self) -> Option<f64> {
        let now = (Instant::now(), cpu_time()?);
        let last = self.last.replace(now)?;
        percent(last, now, self.cpus)
    }
}

fn percent(last: (Instant, Duration), now: (Instant, Duration), cpus: f64) -> Option<f64> {
    let wall = now.0.checked_duration_since(last.0)?.as_secs_f64();
    if wall <= 0.0 {
        return None;
    }
    let busy = now.1.saturating_sub(last.1).as_secs_f64();
    Some((busy / wall / cpus * 100.0).clamp(0.0, 100.0))
}

/// The user and system CPU time of the whole process so far.
#[cfg(target_os = "linux")]
fn cpu_time() -> Option<Duration> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

#[cfg(not(target_os = "linux"))]
fn cpu_time() -> Option<Duration> {
    None
}

/// The resident memory of the process, in bytes.
#[cfg(target_os = "linux")]
pub(crate) fn memory_bytes() -> Option<f64> {
    parse_status(&std::fs::read_to_string("/proc/self/status").ok()?)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn memory_bytes() -> Option<f64> {
    None
}

/// `utime` + `stime` of `/proc/self/stat`, in clock ticks of 1/100 s (Linux's `USER_HZ`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        utime.saturating_add(stime).saturating_mul(10),
    ))
}

/// `VmRSS` of `/proc/self/status`, in bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_status(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb as f64 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let stat = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 1380 0 0 0 150 25 0 0 20 0 9 0 3858 1000 100";
        assert_eq!(parse_stat(stat), Some(Duration::from_millis(1750)));
        assert_eq!(parse_stat("garbage"), None);
        let status = "Name:\tx\nVmPeak:\t  2000 kB\nVmRSS:\t    1536 kB\nThreads:\t9\n";
        assert_eq!(parse_status(status), Some(1536.0 * 1024.0));
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn percent_of_all_cpus() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let p = percent((t0, Duration::ZERO), (t1, Duration::from_secs(1)), 4.0);
        assert_eq!(p, Some(12.5));
        assert_eq!(
            percent((t1, Duration::ZERO), (t0, Duration::ZERO), 4.0),
            None
        );
        let over = percent((t0, Duration::ZERO), (t1, Duration::from_secs(60)), 1.0);
        assert_eq!(over, Some(100.0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let mut s = ProcessSampler::new();
        s.reset();
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0);
        }
        let cpu = s.cpu_percent().unwrap();
        assert!((0.0..=100.0).contains(&cpu), "{cpu}");
        assert!(memory_bytes().unwrap() > 1e5);
    }
}
