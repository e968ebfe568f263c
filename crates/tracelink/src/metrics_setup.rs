//! Metrics in the setup: the aggregator behind [`Client::metric`](crate::Client::metric), the
//! standard metrics counted in front of the exporter, the performance counters, and the
//! thread that sends them once per interval.

use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tracelink_core::TelemetrySink;
use tracelink_core::metrics::{
    DEFAULT_INTERVAL, MetricAggregator, MetricLimits, StandardMetrics, StandardMetricsSink,
};

use crate::error::{InitError, InitErrorKind};
use crate::perf_counters::PerfCounters;
use crate::settings::Settings;

/// What the builder was told about metrics.
#[derive(Clone, Debug)]
pub(crate) struct MetricsConfig {
    pub(crate) interval: Duration,
    pub(crate) limits: MetricLimits,
    pub(crate) standard: bool,
    pub(crate) counters: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
            limits: MetricLimits::default(),
            standard: true,
            counters: true,
        }
    }
}

impl MetricsConfig {
    /// The standard metrics of the setup, unless they are off.
    pub(crate) fn standard(&self, settings: &Settings) -> Option<Arc<StandardMetrics>> {
        self.standard.then(|| {
            Arc::new(StandardMetrics::with_limits(
                settings.role.clone(),
                settings.instance.clone(),
                self.limits,
            ))
        })
    }
}

/// `sink` with the standard metrics counted in front of it, when they are on.
pub(crate) fn in_front(
    sink: Arc<dyn TelemetrySink>,
    standard: &Option<Arc<StandardMetrics>>,
) -> Arc<dyn TelemetrySink> {
    match standard {
        Some(m) => Arc::new(StandardMetricsSink::new(sink, m.clone())),
        None => sink,
    }
}

/// What is sent every interval, and where to.
struct Collector {
    custom: MetricAggregator,
    standard: Option<Arc<StandardMetrics>>,
    counters: Option<Mutex<PerfCounters>>,
    sink: Arc<dyn TelemetrySink>,
    /// Values over the custom metrics' caps already warned about.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    warned_over_cap: AtomicU64,
}

impl Collector {
    /// The aggregates of the interval that ends `now`.
    fn flush(&self, now: SystemTime) {
        for item in self.custom.collect(now) {
            self.sink.send(item);
        }
        if let Some(s) = &self.standard {
            for item in s.collect(now) {
                self.sink.send(item);
            }
        }
    }

    /// The interval's end: aggregates and counters.
    fn tick(&self, now: SystemTime) {
        self.flush(now);
        if let Some(c) = &self.counters {
            let items = c
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .collect(now);
            for item in items {
                self.sink.send(item);
            }
        }
        #[cfg(feature = "tracing")]
        {
            let over = self.custom.stats().values_over_cap;
            let before = self
                .warned_over_cap
                .swap(over, std::sync::atomic::Ordering::Relaxed);
            if over > before {
                tracing::warn!(target: "tracelink", values = over - before, series = self.custom.stats().series,
                    "metric values were not recorded: a metric reached its cap on dimension combinations");
            }
        }
    }
}

/// The metrics of a running setup.
pub(crate) struct Metrics {
    collector: Arc<Collector>,
    stop: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl Metrics {
    /// Starts the thread that sends the metrics every `config.interval` to `sink`.
    pub(crate) fn start(
        config: &MetricsConfig,
        custom: MetricAggregator,
        standard: Option<Arc<StandardMetrics>>,
        sink: Arc<dyn TelemetrySink>,
    ) -> Result<Self, InitError> {
        let counters = config
            .counters
            .then(|| Mutex::new(PerfCounters::new(standard.clone())));
        let collector = Arc::new(Collector {
            custom,
            standard,
            counters,
            sink,
            warned_over_cap: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel::<()>();
        let c = collector.clone();
        let interval = config.interval.max(Duration::from_millis(1));
        let thread = std::thread::Builder::new()
            .name("tracelink-metrics".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                    c.tick(SystemTime::now());
                }
            })
            .map_err(|e| InitError::new(InitErrorKind::Exporter, "metrics", Some(Box::new(e))))?;
        Ok(Self {
            collector,
            stop: Mutex::new(Some((tx, thread))),
        })
    }

    /// Sends the aggregates of the interval so far (the next interval starts now).
    pub(crate) fn flush(&self) {
        self.collector.flush(SystemTime::now());
    }

    /// Stops the thread and sends the aggregates of the last interval.
    pub(crate) fn stop(&self) {
        let stop = self
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((tx, thread)) = stop {
            drop(tx);
            let _ = thread.join();
            self.flush();
        }
    }

    pub(crate) fn standard(&self) -> Option<&Arc<StandardMetrics>> {
        self.collector.standard.as_ref()
    }
}
