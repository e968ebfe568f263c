//! The standard metrics: requests, dependencies, exceptions and traces counted into the
//! pre-aggregated `MetricData` items the portal's charts read, before sampling.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use super::aggregator::{MetricAggregator, MetricLimits, MetricStats, Refused};
use super::{
    IS_AUTOCOLLECTED_PROPERTY, METRIC_ID_PROPERTY, PROCESSED_BY_METRIC_EXTRACTORS_PROPERTY,
};
use crate::id::TraceId;
use crate::model::{Telemetry, TelemetryData};
use crate::sampling::SamplingDecision;
use crate::sink::TelemetrySink;
use crate::unsampled::{Kind, Unsampled};

/// The `_MS.MetricId` of each standard metric.
pub mod metric_id {
    /// Requests: count, duration (ms) and failures (by `Request.Success`).
    pub const REQUESTS_DURATION: &str = "requests/duration";
    /// Dependencies: count, duration (ms) and failures (by `Dependency.Success`).
    pub const DEPENDENCIES_DURATION: &str = "dependencies/duration";
    /// Exceptions: count.
    pub const EXCEPTIONS_COUNT: &str = "exceptions/count";
    /// Traces (log lines): count.
    pub const TRACES_COUNT: &str = "traces/count";
}

/// The metric name of each standard metric, as the SDKs send it.
pub mod metric_name {
    /// Of `requests/duration`.
    pub const REQUESTS: &str = "Server response time";
    /// Of `dependencies/duration`.
    pub const DEPENDENCIES: &str = "Dependency duration";
    /// Of `exceptions/count`.
    pub const EXCEPTIONS: &str = "Exceptions";
    /// Of `traces/count`.
    pub const TRACES: &str = "Traces";
}

/// The dimensions (properties) of the standard metrics.
pub mod dimension {
    /// The item's `ai.cloud.roleInstance`. All standard metrics.
    pub const CLOUD_ROLE_INSTANCE: &str = "cloud/roleInstance";
    /// The item's `ai.cloud.role`. All standard metrics.
    pub const CLOUD_ROLE_NAME: &str = "cloud/roleName";
    /// `True` when the item has an `ai.operation.syntheticSource`, else `False`. Requests
    /// and dependencies.
    pub const OPERATION_SYNTHETIC: &str = "operation/synthetic";
    /// `True` or `False`.
    pub const REQUEST_SUCCESS: &str = "Request.Success";
    /// The response code.
    pub const REQUEST_RESULT_CODE: &str = "request/resultCode";
    /// `Http`, `SQL`, `InProc`, ...
    pub const DEPENDENCY_TYPE: &str = "Dependency.Type";
    /// The dependency's target.
    pub const DEPENDENCY_TARGET: &str = "dependency/target";
    /// `True` or `False`.
    pub const DEPENDENCY_SUCCESS: &str = "Dependency.Success";
    /// The result code.
    pub const DEPENDENCY_RESULT_CODE: &str = "dependency/resultCode";
    /// The severity (`Information`, ...). Traces.
    pub const TRACE_SEVERITY_LEVEL: &str = "trace/severityLevel";
}

/// The values of `_MS.ProcessedByMetricExtractors` on counted items.
pub mod extractor {
    /// On requests.
    pub const REQUESTS: &str = "(Name:'Requests', Ver:'1.1')";
    /// On dependencies.
    pub const DEPENDENCIES: &str = "(Name:'Dependencies', Ver:'1.1')";
    /// On exceptions.
    pub const EXCEPTIONS: &str = "(Name:'Exceptions', Ver:'1.1')";
    /// On traces.
    pub const TRACES: &str = "(Name:'Traces', Ver:'1.1')";
}

/// The value that stands for result codes and targets beyond the cap on combinations.
pub const OTHER: &str = "Other";

/// Requests counted since the start, for the request rate and execution time counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestTotals {
    /// Requests counted.
    pub count: u64,
    /// Their durations, added up.
    pub duration: Duration,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Counts requests, dependencies, exceptions and traces into the standard metrics, as the
/// Application Insights SDKs' metric extractors do. Every item is counted once, whether
/// sampling keeps it or not, and is marked with [`PROCESSED_BY_METRIC_EXTRACTORS_PROPERTY`]
/// so that the backend does not count it again; an item that carries the mark already is not
/// counted.
///
/// | metric (`_MS.MetricId`) | name | value | dimensions |
/// |---|---|---|---|
/// | `requests/duration` | `Server response time` | duration in ms: count, sum, min, max, std dev | role, instance, `operation/synthetic`, `Request.Success`, `request/resultCode` |
/// | `dependencies/duration` | `Dependency duration` | the same | role, instance, `operation/synthetic`, `Dependency.Success`, `Dependency.Type`, `dependency/target`, `dependency/resultCode` |
/// | `exceptions/count` | `Exceptions` | 1 per exception | role, instance |
/// | `traces/count` | `Traces` | 1 per trace | role, instance, `trace/severityLevel` |
///
/// Each item also has `_MS.IsAutocollected` = `True` and `_MS.AggregationIntervalMs`. The
/// role and instance are the item's tags, else those given here. Beyond the cap on
/// combinations (1000 per metric by default), the result code and target of a new
/// combination become [`OTHER`], so that the counts stay whole; such values are counted in
/// [`MetricStats::values_over_cap`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tracelink_core::metrics::{StandardMetrics, METRIC_ID_PROPERTY};
/// use tracelink_core::model::{Request, Telemetry};
///
/// let metrics = StandardMetrics::new("orders-api", "pod-7");
/// let mut request = Telemetry::new(Request::new("GET /", "200", Duration::from_millis(8)));
/// assert!(metrics.observe(&mut request));
/// assert!(!metrics.observe(&mut request), "counted once");
/// let items = metrics.collect(SystemTime::now());
/// assert_eq!(items[0].properties[METRIC_ID_PROPERTY], "requests/duration");
/// assert_eq!(items[0].properties["Request.Success"], "True");
/// assert_eq!(items[0].properties["cloud/roleName"], "orders-api");
/// ```
pub struct StandardMetrics {
    role: Arc<str>,
    instance: Arc<str>,
    aggregator: MetricAggregator,
    requests: AtomicU64,
    request_nanos: AtomicU64,
    sampled_out: AtomicU64,
}

impl fmt::Debug for StandardMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardMetrics")
            .field("role", &self.role)
            .field("instance", &self.instance)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

impl StandardMetrics {
    /// Standard metrics for items of `role` and `instance` (used when an item lacks the
    /// tags), with the default caps.
    pub fn new(role: impl Into<Arc<str>>, instance: impl Into<Arc<str>>) -> Self {
        Self::with_limits(role, instance, MetricLimits::default())
    }

    /// With these caps.
    pub fn with_limits(
        role: impl Into<Arc<str>>,
        instance: impl Into<Arc<str>>,
        limits: MetricLimits,
    ) -> Self {
        Self {
            role: role.into(),
            instance: instance.into(),
            aggregator: MetricAggregator::with_limits(limits),
            requests: AtomicU64::new(0),
            request_nanos: AtomicU64::new(0),
            sampled_out: AtomicU64::new(0),
        }
    }

    /// Counts `item` if it is a request, dependency, exception or trace not counted before,
    /// and marks it. Returns whether it was counted.
    pub fn observe(&self, item: &mut Telemetry) -> bool {
        let marker = match &item.data {
            TelemetryData::Request(_) => extractor::REQUESTS,
            TelemetryData::Dependency(_) => extractor::DEPENDENCIES,
            TelemetryData::Exception(_) => extractor::EXCEPTIONS,
            TelemetryData::Trace(_) => extractor::TRACES,
            _ => return false,
        };
        if item
            .properties
            .contains_key(PROCESSED_BY_METRIC_EXTRACTORS_PROPERTY)
        {
            return false;
        }
        if let Some(what) = Unsampled::of(item) {
            self.count(&what);
        }
        item.properties.insert(
            PROCESSED_BY_METRIC_EXTRACTORS_PROPERTY.into(),
            marker.into(),
        );
        true
    }

    /// Counts a request, dependency, exception or trace that has no item (an operation that
    /// sampling dropped records none). It allocates nothing once its combination of
    /// dimensions has been counted in the interval.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use tracelink_core::metrics::{StandardMetrics, Unsampled};
    /// use tracelink_core::model::TelemetryData;
    ///
    /// let metrics = StandardMetrics::new("orders-api", "pod-7");
    /// let ms = Duration::from_millis(4);
    /// metrics.count(&Unsampled::request("200", true, ms));
    /// metrics.count(&Unsampled::request("200", true, ms));
    /// let items = metrics.collect(SystemTime::now());
    /// let TelemetryData::Metric(m) = &items[0].data else { unreachable!() };
    /// assert_eq!((m.metrics[0].count, m.metrics[0].value), (Some(2), 8.0));
    /// assert_eq!(items[0].properties["request/resultCode"], "200");
    /// ```
    pub fn count(&self, what: &Unsampled<'_>) {
        let role = what.role.unwrap_or(&self.role);
        let instance = what.instance.unwrap_or(&self.instance);
        let synthetic = yes_no(what.synthetic);
        let cloud = [
            (dimension::CLOUD_ROLE_INSTANCE, instance),
            (dimension::CLOUD_ROLE_NAME, role),
        ];
        match what.kind {
            Kind::Request {
                response_code,
                success,
                duration,
            } => {
                let dims = [
                    cloud[0],
                    cloud[1],
                    (dimension::OPERATION_SYNTHETIC, synthetic),
                    (dimension::REQUEST_SUCCESS, yes_no(success)),
                    (dimension::REQUEST_RESULT_CODE, response_code),
                ];
                self.record(metric_name::REQUESTS, dims, millis(duration));
                self.requests.fetch_add(1, Relaxed);
                let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
                self.request_nanos.fetch_add(nanos, Relaxed);
            }
            Kind::Dependency {
                dependency_type,
                target,
                result_code,
                success,
                duration,
            } => {
                let dims = [
                    cloud[0],
                    cloud[1],
                    (dimension::OPERATION_SYNTHETIC, synthetic),
                    (dimension::DEPENDENCY_SUCCESS, yes_no(success)),
                    (dimension::DEPENDENCY_TYPE, dependency_type),
                    (dimension::DEPENDENCY_TARGET, target),
                    (dimension::DEPENDENCY_RESULT_CODE, result_code),
                ];
                self.record(metric_name::DEPENDENCIES, dims, millis(duration));
            }
            Kind::Exception => self.record(metric_name::EXCEPTIONS, cloud, 1.0),
            Kind::Trace { severity } => {
                let severity = severity.map_or("", |s| s.as_str());
                let dims = [
                    cloud[0],
                    cloud[1],
                    (dimension::TRACE_SEVERITY_LEVEL, severity),
                ];
                self.record(metric_name::TRACES, dims, 1.0);
            }
        }
    }

    /// Records under `dims`, or with the result code and target as [`OTHER`] beyond the cap.
    fn record<const N: usize>(&self, name: &str, mut dims: [(&str, &str); N], value: f64) {
        dims.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if self.aggregator.record(name, &dims, value, false) != Err(Refused::OverCap) {
            return;
        }
        for (k, v) in &mut dims {
            if matches!(
                *k,
                dimension::REQUEST_RESULT_CODE
                    | dimension::DEPENDENCY_RESULT_CODE
                    | dimension::DEPENDENCY_TARGET
            ) {
                *v = OTHER;
            }
        }
        let _ = self.aggregator.record(name, &dims, value, true);
    }

    /// Ends the current interval at `now`: the standard metric items of every combination
    /// that was counted (see [`MetricAggregator::collect`]).
    pub fn collect(&self, now: SystemTime) -> Vec<Telemetry> {
        let mut items = self.aggregator.collect(now);
        for item in &mut items {
            let id = match &item.data {
                TelemetryData::Metric(m) => match m.metrics.first().map(|p| p.name.as_str()) {
                    Some(metric_name::REQUESTS) => metric_id::REQUESTS_DURATION,
                    Some(metric_name::DEPENDENCIES) => metric_id::DEPENDENCIES_DURATION,
                    Some(metric_name::EXCEPTIONS) => metric_id::EXCEPTIONS_COUNT,
                    _ => metric_id::TRACES_COUNT,
                },
                _ => continue,
            };
            item.properties.insert(METRIC_ID_PROPERTY.into(), id.into());
            item.properties
                .insert(IS_AUTOCOLLECTED_PROPERTY.into(), "True".into());
        }
        items
    }

    /// Requests counted since the start.
    pub fn request_totals(&self) -> RequestTotals {
        RequestTotals {
            count: self.requests.load(Relaxed),
            duration: Duration::from_nanos(self.request_nanos.load(Relaxed)),
        }
    }

    /// The counters of the aggregation.
    pub fn stats(&self) -> MetricStats {
        self.aggregator.stats()
    }

    /// Requests, calls, exceptions and traces a [`StandardMetricsSink`] counted without an
    /// item, because sampling had dropped their operation.
    pub fn sampled_out(&self) -> u64 {
        self.sampled_out.load(Relaxed)
    }
}

/// A sink that counts every item into the [`StandardMetrics`] before the sink behind it
/// samples, so that the standard metrics count every operation, whatever the sampling.
///
/// Sampling drops whole operations when they start (SPEC 8.5), and the middleware then
/// records no item of them. It reports what they do instead: this sink answers
/// [`TelemetrySink::counts_unsampled`] with `true`, and counts each request, call, exception
/// and log line given to [`TelemetrySink::count_unsampled`] (the name, role, result code,
/// success and duration of an [`Unsampled`]: no item is made, and nothing is allocated once
/// the combination exists). [`TelemetrySink::send`] counts each item that was not counted
/// before, marks it with [`PROCESSED_BY_METRIC_EXTRACTORS_PROPERTY`] and passes it on. The
/// sampling decisions are the inner sink's, unchanged: the items that go on are the ones the
/// inner sink would have received without this sink, and each operation is counted once.
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
/// use tracelink_core::metrics::{StandardMetrics, StandardMetricsSink, Unsampled};
/// use tracelink_core::model::{Request, TelemetryData};
/// use tracelink_core::{Correlation, MemorySink, Propagation, TelemetrySink, TraceId};
///
/// let metrics = Arc::new(StandardMetrics::new("api", "pod-1"));
/// let kept = Arc::new(MemorySink::with_sampling(10.0));
/// let sink = StandardMetricsSink::new(kept.clone(), metrics.clone());
/// let cfg = Propagation::default();
/// let ms = Duration::from_millis(1);
/// for _ in 0..100 {
///     let id = TraceId::random();
///     let decision = sink.sampling(id);
///     if decision.is_sampled() {
///         let op = Correlation::root(id, &cfg, decision, None);
///         sink.send(op.to_item(Request::new("GET /", "200", ms)));
///     } else if sink.counts_unsampled() {
///         sink.count_unsampled(&Unsampled::request("200", true, ms));
///     }
/// }
/// let items = metrics.collect(SystemTime::now());
/// let TelemetryData::Metric(m) = &items[0].data else { unreachable!() };
/// assert_eq!(m.metrics[0].count, Some(100)); // every request
/// assert_eq!(kept.len() as u64 + metrics.sampled_out(), 100); // about 10 kept
/// ```
pub struct StandardMetricsSink<S> {
    inner: S,
    metrics: Arc<StandardMetrics>,
}

impl<S: fmt::Debug> fmt::Debug for StandardMetricsSink<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardMetricsSink")
            .field("inner", &self.inner)
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl<S> StandardMetricsSink<S> {
    /// Counts into `metrics` in front of `inner`.
    pub fn new(inner: S, metrics: Arc<StandardMetrics>) -> Self {
        Self { inner, metrics }
    }

    /// The metrics counted into.
    pub fn metrics(&self) -> &Arc<StandardMetrics> {
        &self.metrics
    }

    /// The sink behind.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The sink behind, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The sink behind.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: TelemetrySink> TelemetrySink for StandardMetricsSink<S> {
    fn send(&self, mut item: Telemetry) {
        self.metrics.observe(&mut item);
        self.inner.send(item);
    }

    fn sampling(&self, operation_id: TraceId) -> SamplingDecision {
        self.inner.sampling(operation_id)
    }

    fn counts_unsampled(&self) -> bool {
        true
    }

    fn count_unsampled(&self, what: &Unsampled<'_>) {
        self.metrics.count(what);
        self.metrics.sampled_out.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemorySink;
    use crate::metrics::AGGREGATION_INTERVAL_PROPERTY;
    use crate::model::tags;
    use crate::model::{Dependency, Event, Exception, Request, SeverityLevel, Trace};
    use std::collections::BTreeMap;

    fn props(item: &Telemetry) -> BTreeMap<&str, &str> {
        item.properties
            .iter()
            .filter(|(k, _)| k.as_str() != AGGREGATION_INTERVAL_PROPERTY)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn point(item: &Telemetry) -> &crate::model::DataPoint {
        match &item.data {
            TelemetryData::Metric(m) => &m.metrics[0],
            _ => panic!("not a metric"),
        }
    }

    /// The names, ids and dimensions the Node SDK 2.9.8 sends (the capture in
    /// `tests/data/captures/standard-metrics`), with .NET's `True`/`False`.
    #[test]
    fn dimensions_and_properties_as_the_sdks_send_them() {
        let m = StandardMetrics::new("role", "instance");
        let mut r = Telemetry::new(Request::new("GET /", "500", Duration::from_millis(3)));
        r.tags
            .insert(tags::OPERATION_SYNTHETIC_SOURCE, "Availability");
        let mut d = Dependency::new("GET /x", "Http");
        d.target = "127.0.0.1:47103".into();
        d.result_code = "200".into();
        d.duration = Duration::from_micros(1500);
        let mut d = Telemetry::new(d);
        d.tags.insert(tags::CLOUD_ROLE, "other-role");
        let mut e = Telemetry::new(Exception::new("E", "boom"));
        let mut t = Telemetry::new(Trace::new("hi", SeverityLevel::Warning));
        let mut ev = Telemetry::new(Event::new("e"));
        for item in [&mut r, &mut d, &mut e, &mut t] {
            assert!(m.observe(item));
        }
        assert!(!m.observe(&mut ev), "events are not counted");
        assert!(ev.properties.is_empty());
        assert_eq!(
            r.properties[PROCESSED_BY_METRIC_EXTRACTORS_PROPERTY],
            "(Name:'Requests', Ver:'1.1')"
        );
        assert_eq!(
            d.properties[PROCESSED_BY_METRIC_EXTRACTORS_PROPERTY],
            "(Name:'Dependencies', Ver:'1.1')"
        );
        let mut items = m.collect(SystemTime::now());
        items.sort_by(|a, b| point(a).name.cmp(&point(b).name));
        let names: Vec<_> = items.iter().map(|i| point(i).name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Dependency duration",
                "Exceptions",
                "Server response time",
                "Traces"
            ]
        );
        assert_eq!(
            props(&items[0]),
            BTreeMap::from([
                ("Dependency.Success", "True"),
                ("Dependency.Type", "Http"),
                ("_MS.IsAutocollected", "True"),
                ("_MS.MetricId", "dependencies/duration"),
                ("cloud/roleInstance", "instance"),
                ("cloud/roleName", "other-role"),
                ("dependency/resultCode", "200"),
                ("dependency/target", "127.0.0.1:47103"),
                ("operation/synthetic", "False"),
            ])
        );
        assert_eq!(point(&items[0]).value, 1.5);
        assert_eq!(
            props(&items[1]),
            BTreeMap::from([
                ("_MS.IsAutocollected", "True"),
                ("_MS.MetricId", "exceptions/count"),
                ("cloud/roleInstance", "instance"),
                ("cloud/roleName", "role"),
            ])
        );
        assert_eq!(
            props(&items[2]),
            BTreeMap::from([
                ("Request.Success", "False"),
                ("_MS.IsAutocollected", "True"),
                ("_MS.MetricId", "requests/duration"),
                ("cloud/roleInstance", "instance"),
                ("cloud/roleName", "role"),
                ("operation/synthetic", "True"),
                ("request/resultCode", "500"),
            ])
        );
        assert_eq!(props(&items[3])["trace/severityLevel"], "Warning");
        assert_eq!(props(&items[3])["_MS.MetricId"], "traces/count");
        assert_eq!(
            m.request_totals(),
            RequestTotals {
                count: 1,
                duration: Duration::from_millis(3)
            }
        );
    }

    #[test]
    fn beyond_the_cap_codes_and_targets_become_other_and_nothing_is_lost() {
        let limits = MetricLimits {
            series_per_metric: 3,
            ..MetricLimits::default()
        };
        let m = StandardMetrics::with_limits("r", "i", limits);
        for code in 0..10u16 {
            let code = (400 + code).to_string();
            let mut r = Telemetry::new(Request::new("GET /", code, Duration::from_millis(2)));
            m.observe(&mut r);
        }
        let items = m.collect(SystemTime::now());
        let total: u64 = items.iter().map(|i| point(i).count.unwrap()).sum();
        assert_eq!(total, 10);
        let other = items
            .iter()
            .find(|i| i.properties["request/resultCode"] == OTHER)
            .unwrap();
        assert_eq!(point(other).count, Some(7));
        assert_eq!(m.stats().values_over_cap, 7);
    }

    /// Sampling at 10 %: every request and exception is counted once, the dropped ones
    /// without an item; only the kept ones go on, with their sample rate and the mark.
    #[test]
    fn every_operation_counts_while_sampling_keeps_a_tenth() {
        let metrics = Arc::new(StandardMetrics::new("r", "i"));
        let inner = Arc::new(MemorySink::with_sampling(10.0));
        let sink = StandardMetricsSink::new(inner.clone(), metrics.clone());
        let cfg = crate::Propagation::default();
        let ms = Duration::from_millis(1);
        let mut expected_kept = 0;
        for _ in 0..2000 {
            let id = TraceId::random();
            let decision = sink.sampling(id);
            assert_eq!(decision, inner.sampling(id), "the inner sink's decision");
            if decision.is_sampled() {
                expected_kept += 1;
                let op = crate::Correlation::root(id, &cfg, decision, None);
                sink.send(op.to_item(Request::new("GET /", "200", ms)));
                sink.send(op.to_item(Exception::new("E", "x")));
            } else {
                assert!(sink.counts_unsampled());
                sink.count_unsampled(&Unsampled::request("200", true, ms));
                sink.count_unsampled(&Unsampled::exception());
            }
        }
        let kept = inner.take();
        assert_eq!(kept.len(), expected_kept * 2);
        assert!((100..300).contains(&expected_kept), "{expected_kept}");
        assert!(kept.iter().all(|i| i.sample_rate == Some(10.0)));
        assert!(kept.iter().all(|i| {
            i.properties
                .contains_key(PROCESSED_BY_METRIC_EXTRACTORS_PROPERTY)
        }));
        assert_eq!(metrics.sampled_out() as usize, 4000 - kept.len());
        let items = metrics.collect(SystemTime::now());
        let count = |name: &str| {
            items
                .iter()
                .filter(|i| point(i).name == name)
                .map(|i| point(i).count.unwrap())
                .sum::<u64>()
        };
        assert_eq!(count(metric_name::REQUESTS), 2000);
        assert_eq!(count(metric_name::EXCEPTIONS), 2000);
        assert_eq!(metrics.request_totals().count, 2000);
        // A kept item sent again (or by a second sink) is not counted twice.
        let mut again = kept[0].clone();
        assert!(!metrics.observe(&mut again));
    }

    /// Counted without an item or from the item: the same series, the same values.
    #[test]
    fn unsampled_counts_match_the_items() {
        let m = StandardMetrics::new("r", "i");
        let mut d = Dependency::new("GET /x", "Http");
        d.target = "api:8080".into();
        d.result_code = "503".into();
        d.success = false;
        d.duration = Duration::from_millis(2);
        let mut item = Telemetry::new(d);
        item.tags.insert(tags::CLOUD_ROLE, "front");
        assert!(m.observe(&mut item));
        let ms2 = Duration::from_millis(2);
        m.count(&Unsampled::dependency("Http", "api:8080", "503", false, ms2).role(Some("front")));
        m.count(&Unsampled::trace(Some(SeverityLevel::Error)));
        let items = m.collect(SystemTime::now());
        assert_eq!(items.len(), 2);
        let dep = items
            .iter()
            .find(|i| point(i).name == metric_name::DEPENDENCIES)
            .unwrap();
        assert_eq!((point(dep).count, point(dep).value), (Some(2), 4.0));
        assert_eq!(dep.properties[dimension::CLOUD_ROLE_NAME], "front");
        assert_eq!(dep.properties[dimension::DEPENDENCY_SUCCESS], "False");
    }

    #[test]
    fn decisions_are_the_inner_sinks() {
        struct Refuse;
        impl TelemetrySink for Refuse {
            fn send(&self, _: Telemetry) {}
            fn sampling(&self, _: TraceId) -> SamplingDecision {
                SamplingDecision::dropped(100.0)
            }
        }
        let sink = StandardMetricsSink::new(Refuse, Arc::new(StandardMetrics::new("r", "i")));
        assert!(!sink.sampling(TraceId::random()).is_sampled());
        assert!(
            !Refuse.counts_unsampled(),
            "a sink counts nothing by default"
        );
        let keep_all =
            StandardMetricsSink::new(MemorySink::new(), Arc::new(StandardMetrics::new("r", "i")));
        assert_eq!(
            keep_all.sampling(TraceId::random()),
            SamplingDecision::KEEP_ALL
        );
    }
}
