//! The process's CPU use between two samples, for `\Processor(_Total)\% Processor Time`,
//! from [`tracelink_core::process`] (`None` where it has no readings).

use std::time::{Duration, Instant};

use tracelink_core::process;

pub(crate) use tracelink_core::process::resident_bytes as memory_bytes;

/// Samples the process's CPU use between two calls.
#[derive(Debug)]
pub(crate) struct ProcessSampler {
    last: Option<(Instant, Duration)>,
    cpus: usize,
}

impl ProcessSampler {
    pub(crate) fn new() -> Self {
        Self {
            last: None,
            cpus: process::available_cpus(),
        }
    }

    /// Starts a new interval now.
    pub(crate) fn reset(&mut self) {
        self.last = process::cpu_time().map(|t| (Instant::now(), t));
    }

    /// The process's CPU use since the last call (or reset) in percent of all the CPUs it may
    /// use (100 = every one of them busy), and starts a new interval.
    pub(crate) fn cpu_percent(&mut self) -> Option<f64> {
        let now = (Instant::now(), process::cpu_time()?);
        let last = self.last.replace(now)?;
        let wall = now.0.checked_duration_since(last.0)?;
        process::cpu_percent(now.1.saturating_sub(last.1), wall, self.cpus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
