//! [`TracelinkMetricExporter`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use tracelink_core::TelemetrySink;
use tracelink_core::model::Telemetry;
use tracelink_core::resource::{MetricPoint, metric_item, resource_tags};

/// An OpenTelemetry [`PushMetricExporter`] that sends each data point of the metrics an
/// `SdkMeterProvider` collects as one `MetricData` item into a tracelink [`TelemetrySink`]
/// (the facade's, where spans and the middleware's items go too), mapped as the collector maps
/// OTLP metrics:
///
/// | OpenTelemetry | `MetricData` item |
/// |---|---|
/// | sum, gauge | the data point's value |
/// | histogram, exponential histogram | value = sum, with count, min and max |
/// | attributes of the data point | properties (custom dimensions) |
/// | Resource | `ai.cloud.role`, `ai.cloud.roleInstance`, `ai.application.ver` ([`tracelink_core::resource::resource_tags`]) |
///
/// Application Insights charts a metric per interval, so the exporter asks for delta
/// temporality by default: a counter's item holds what it counted since the last export
/// ([`TracelinkMetricExporter::temporality`] changes it). A data point whose value is not
/// finite is skipped.
///
/// Install it on an `SdkMeterProvider` behind a periodic reader (the facade's
/// `Builder::opentelemetry` setup does, every metric interval):
///
/// ```
/// use std::sync::Arc;
/// use opentelemetry::metrics::MeterProvider as _;
/// use opentelemetry_sdk::Resource;
/// use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
/// use tracelink_core::MemorySink;
/// use tracelink_core::model::TelemetryData;
/// use tracelink_otel::TracelinkMetricExporter;
///
/// let sink = Arc::new(MemorySink::new());
/// let reader = PeriodicReader::builder(TracelinkMetricExporter::new(sink.clone())).build();
/// let provider = SdkMeterProvider::builder()
///     .with_resource(Resource::builder_empty().with_service_name("orders").build())
///     .with_reader(reader)
///     .build();
/// let orders = provider.meter("shop").u64_counter("orders.placed").build();
/// orders.add(3, &[opentelemetry::KeyValue::new("region", "north")]);
/// provider.force_flush().unwrap();
/// let item = &sink.items()[0];
/// let TelemetryData::Metric(m) = &item.data else { unreachable!() };
/// assert_eq!((m.metrics[0].name.as_str(), m.metrics[0].value), ("orders.placed", 3.0));
/// assert_eq!(item.properties["region"], "north");
/// assert_eq!(item.tags.get("ai.cloud.role"), Some("orders"));
/// provider.shutdown().unwrap();
/// ```
pub struct TracelinkMetricExporter {
    sink: Arc<dyn TelemetrySink>,
    temporality: Temporality,
    shut_down: AtomicBool,
}

impl fmt::Debug for TracelinkMetricExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracelinkMetricExporter")
            .field("temporality", &self.temporality)
            .finish_non_exhaustive()
    }
}

impl TracelinkMetricExporter {
    /// Sends into `sink`, asking for delta temporality.
    pub fn new(sink: impl TelemetrySink) -> Self {
        Self {
            sink: Arc::new(sink),
            temporality: Temporality::Delta,
            shut_down: AtomicBool::new(false),
        }
    }

    /// Asks the readers for `temporality` instead (`Cumulative`: sums grow from the start).
    pub fn temporality(mut self, temporality: Temporality) -> Self {
        self.temporality = temporality;
        self
    }

    /// The items of `metrics`.
    fn items(metrics: &ResourceMetrics) -> Vec<Telemetry> {
        let resource = metrics.resource();
        let tags = resource_tags(|k| {
            resource
                .get(&opentelemetry::Key::new(k.to_owned()))
                .map(|v| v.as_str().into_owned())
        });
        let mut items = Vec::new();
        for metric in metrics.scope_metrics().flat_map(|s| s.metrics()) {
            let name = metric.name();
            match metric.data() {
                AggregatedMetrics::F64(d) => points(name, d, &mut items),
                AggregatedMetrics::U64(d) => points(name, d, &mut items),
                AggregatedMetrics::I64(d) => points(name, d, &mut items),
            }
        }
        for item in &mut items {
            for (k, v) in &tags {
                item.tags.insert(*k, v.clone());
            }
        }
        items
    }
}

/// A data point's number as `f64`.
trait Number: Copy {
    fn to_f64(self) -> f64;
}

impl Number for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

impl Number for u64 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Number for i64 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}

fn attrs<'a>(
    kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>,
) -> impl Iterator<Item = (String, String)> {
    kvs.map(|kv| (kv.key.as_str().to_owned(), kv.value.as_str().into_owned()))
}

fn points<T: Number>(name: &str, data: &MetricData<T>, out: &mut Vec<Telemetry>) {
    let mut push = |point: MetricPoint, time: SystemTime, a: Vec<(String, String)>| {
        if let Some(item) = metric_item(name, point, time, a) {
            out.push(item);
        }
    };
    match data {
        MetricData::Gauge(g) => {
            for p in g.data_points() {
                let a = attrs(p.attributes()).collect();
                push(MetricPoint::Number(p.value().to_f64()), g.time(), a);
            }
        }
        MetricData::Sum(s) => {
            for p in s.data_points() {
                let a = attrs(p.attributes()).collect();
                push(MetricPoint::Number(p.value().to_f64()), s.time(), a);
            }
        }
        MetricData::Histogram(h) => {
            for p in h.data_points() {
                let point = MetricPoint::Distribution {
                    sum: p.sum().to_f64(),
                    count: p.count(),
                    min: p.min().map(Number::to_f64),
                    max: p.max().map(Number::to_f64),
                };
                push(point, h.time(), attrs(p.attributes()).collect());
            }
        }
        MetricData::ExponentialHistogram(h) => {
            for p in h.data_points() {
                let point = MetricPoint::Distribution {
                    sum: p.sum().to_f64(),
                    count: p.count() as u64,
                    min: p.min().map(Number::to_f64),
                    max: p.max().map(Number::to_f64),
                };
                push(point, h.time(), attrs(p.attributes()).collect());
            }
        }
    }
}

impl PushMetricExporter for TracelinkMetricExporter {
    fn export(
        &self,
        metrics: &ResourceMetrics,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let result = if self.shut_down.load(Ordering::Acquire) {
            Err(OTelSdkError::AlreadyShutdown)
        } else {
            for item in Self::items(metrics) {
                self.sink.send(item);
            }
            Ok(())
        };
        std::future::ready(result)
    }

    /// Items are in the sink once exported: nothing is held here.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.shut_down.store(true, Ordering::Release);
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        self.temporality
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
    use tracelink_core::MemorySink;
    use tracelink_core::model::{DataPoint, TelemetryData, tags};

    fn point(item: &Telemetry) -> &DataPoint {
        match &item.data {
            TelemetryData::Metric(m) => &m.metrics[0],
            _ => panic!("not a metric"),
        }
    }

    /// A sum, a gauge and a histogram through a real provider: one item per data point,
    /// attributes as dimensions, the Resource as role and instance; delta sums start again.
    #[test]
    fn sums_gauges_and_histograms_become_metric_items() {
        let sink = Arc::new(MemorySink::new());
        let reader = PeriodicReader::builder(TracelinkMetricExporter::new(sink.clone())).build();
        let resource = Resource::builder_empty()
            .with_attributes([
                KeyValue::new("service.namespace", "shop"),
                KeyValue::new("service.name", "orders"),
                KeyValue::new("service.instance.id", "pod-3"),
            ])
            .build();
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader)
            .build();
        let meter = provider.meter("test");
        let placed = meter.u64_counter("orders.placed").build();
        let depth = meter.i64_gauge("queue.depth").build();
        let latency = meter.f64_histogram("orders.latency").build();
        let north = [KeyValue::new("region", "north")];
        placed.add(2, &north);
        placed.add(5, &[KeyValue::new("region", "south")]);
        depth.record(-4, &[]);
        for v in [3.0, 9.0, 6.0] {
            latency.record(v, &north);
        }
        provider.force_flush().unwrap();
        let items = sink.take();
        assert_eq!(items.len(), 4);
        for item in &items {
            assert_eq!(item.tags.get(tags::CLOUD_ROLE), Some("shop.orders"));
            assert_eq!(item.tags.get(tags::CLOUD_ROLE_INSTANCE), Some("pod-3"));
        }
        let find = |name: &str, region: Option<&str>| {
            items
                .iter()
                .find(|i| {
                    point(i).name == name
                        && i.properties.get("region").map(String::as_str) == region
                })
                .unwrap()
        };
        assert_eq!(point(find("orders.placed", Some("north"))).value, 2.0);
        assert_eq!(point(find("orders.placed", Some("south"))).value, 5.0);
        assert_eq!(point(find("queue.depth", None)).value, -4.0);
        let h = point(find("orders.latency", Some("north")));
        assert_eq!(
            (h.value, h.count, h.min, h.max),
            (18.0, Some(3), Some(3.0), Some(9.0))
        );

        placed.add(1, &north);
        provider.force_flush().unwrap();
        let again = sink.take();
        let placed: Vec<_> = again
            .iter()
            .filter(|i| point(i).name == "orders.placed")
            .collect();
        assert_eq!(placed.len(), 1, "delta: only what changed");
        assert_eq!(point(placed[0]).value, 1.0);
        provider.shutdown().unwrap();
    }
}
