//! Readings of this process and its machine, for the performance counters and Live
//! Metrics: CPU time, resident memory, the machine's CPU ticks and available memory.
//!
//! Linux: the process's CPU from `/proc/self/stat`, its memory from `/proc/self/status`
//! (`VmRSS`), the machine's CPU from `/proc/stat`, available memory from `/proc/meminfo`
//! (`MemAvailable`, at most what the cgroup v2 limit leaves). Elsewhere every reading is
//! `None`, and callers leave the counter out.
//!
//! ```
//! use std::time::Duration;
//! use tracelink_core::process;
//!
//! // One busy CPU second over two seconds of wall time on four CPUs: 12.5 %.
//! assert_eq!(process::cpu_percent(Duration::from_secs(1), Duration::from_secs(2), 4), Some(12.5));
//! if cfg!(target_os = "linux") {
//!     assert!(process::resident_bytes().unwrap() > 0.0);
//! }
//! ```

use std::time::Duration;

/// The user and system CPU time of this process so far.
pub fn cpu_time() -> Option<Duration> {
    os::read("/proc/self/stat").and_then(|s| parse_self_stat(&s))
}

/// The resident memory of this process, in bytes.
pub fn resident_bytes() -> Option<f64> {
    os::read("/proc/self/status").and_then(|s| kb_field(&s, "VmRSS:"))
}

/// The machine's busy and total CPU time so far, in clock ticks (busy is all but `idle`
/// and `iowait`).
pub fn machine_cpu_ticks() -> Option<(u64, u64)> {
    os::read("/proc/stat").and_then(|s| parse_proc_stat(&s))
}

/// The memory available to this process, in bytes: the machine's, at most what a cgroup v2
/// memory limit leaves.
pub fn available_bytes() -> Option<f64> {
    let host = kb_field(&os::read("/proc/meminfo")?, "MemAvailable:")?;
    let cgroup = cgroup_available(
        os::read("/sys/fs/cgroup/memory.max"),
        os::read("/sys/fs/cgroup/memory.current"),
    );
    Some(cgroup.map_or(host, |c| c.min(host)))
}

/// `busy` CPU time over `wall` time, in percent of `cpus` CPUs (100 = all of them busy),
/// clamped to 0-100; `None` for no wall time.
pub fn cpu_percent(busy: Duration, wall: Duration, cpus: usize) -> Option<f64> {
    let wall = wall.as_secs_f64();
    if wall <= 0.0 {
        return None;
    }
    let cpus = cpus.max(1) as f64;
    Some((busy.as_secs_f64() / wall / cpus * 100.0).clamp(0.0, 100.0))
}

/// How many CPUs this process may use.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(target_os = "linux")]
mod os {
    pub(super) fn read(path: &str) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    pub(super) fn read(_: &str) -> Option<String> {
        None
    }
}

/// Busy and total ticks of the `cpu` line of `/proc/stat`.
fn parse_proc_stat(stat: &str) -> Option<(u64, u64)> {
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

/// `utime` + `stime` of `/proc/self/stat`, in ticks of 1/100 s (Linux's `USER_HZ`).
fn parse_self_stat(stat: &str) -> Option<Duration> {
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
fn kb_field(text: &str, name: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kb: u64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb as f64 * 1024.0)
}

/// What a cgroup v2 memory limit leaves, when there is one (`max`: none).
fn cgroup_available(max: Option<String>, current: Option<String>) -> Option<f64> {
    let max: u64 = max?.trim().parse().ok()?;
    let current: u64 = current?.trim().parse().ok()?;
    Some(max.saturating_sub(current) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let stat = "cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n";
        assert_eq!(parse_proc_stat(stat), Some((160, 980)));
        let own = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 1380 0 0 0 150 25 0 0 20";
        assert_eq!(parse_self_stat(own), Some(Duration::from_millis(1750)));
        assert_eq!(parse_self_stat("garbage"), None);
        let status = "Name:\tx\nVmPeak:\t  2000 kB\nVmRSS:\t    1536 kB\n";
        assert_eq!(kb_field(status, "VmRSS:"), Some(1536.0 * 1024.0));
        assert_eq!(kb_field("Name:\tx\n", "VmRSS:"), None);
        assert_eq!(
            cgroup_available(Some("1000\n".into()), Some("400\n".into())),
            Some(600.0)
        );
        assert_eq!(
            cgroup_available(Some("max\n".into()), Some("400".into())),
            None
        );
    }

    #[test]
    fn percent_of_all_cpus() {
        let s = Duration::from_secs;
        assert_eq!(cpu_percent(s(1), s(2), 4), Some(12.5));
        assert_eq!(cpu_percent(s(1), Duration::ZERO, 4), None);
        assert_eq!(cpu_percent(s(60), s(2), 1), Some(100.0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_and_machine_have_readings() {
        assert!(cpu_time().is_some());
        assert!(resident_bytes().unwrap() > 1e5);
        let (busy, total) = machine_cpu_ticks().unwrap();
        assert!(busy <= total);
        assert!(available_bytes().unwrap() > 0.0);
    }
}
