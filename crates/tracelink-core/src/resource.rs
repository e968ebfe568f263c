//! OpenTelemetry data in the Application Insights data model, without OpenTelemetry's types:
//! the tags a Resource gives every item, and a metric data point as a `MetricData` item.
//! Shared by the bridge's exporters (`tracelink-otel`) and the collector's OTLP ingestion,
//! so that a metric or span is the same item whichever way it arrives.
//!
//! ```
//! use std::time::SystemTime;
//! use tracelink_core::model::{TelemetryData, tags};
//! use tracelink_core::resource::{MetricPoint, metric_item, resource_tags};
//!
//! let resource = [("service.namespace", "shop"), ("service.name", "orders")];
//! let get = |k: &str| resource.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string());
//! let tags = resource_tags(get);
//! assert_eq!(tags, [(tags::CLOUD_ROLE, "shop.orders".to_string())]);
//!
//! let point = MetricPoint::Distribution { sum: 12.0, count: 3, min: Some(2.0), max: Some(7.0) };
//! let item = metric_item("http.server.duration", point, SystemTime::now(), [("route", "/a")])
//!     .unwrap();
//! let TelemetryData::Metric(m) = &item.data else { unreachable!() };
//! assert_eq!((m.metrics[0].value, m.metrics[0].count), (12.0, Some(3)));
//! assert_eq!(item.properties["route"], "/a");
//! ```

use std::time::SystemTime;

use crate::model::{DataPoint, Metric, Telemetry, tags};

/// Kubernetes workload names that stand for the role when the service has no name of its
/// own, in this order (as in the Azure Monitor exporters).
const WORKLOADS: [&str; 6] = [
    "k8s.deployment.name",
    "k8s.replicaset.name",
    "k8s.statefulset.name",
    "k8s.job.name",
    "k8s.cronjob.name",
    "k8s.daemonset.name",
];

/// The tags a Resource gives every item, as the Azure Monitor exporters map them, from
/// `get` (the Resource's attribute of a key, as text):
///
/// - `ai.cloud.role`: `service.namespace` + `.` + `service.name`, or `service.name` alone;
///   the SDKs' default `unknown_service…` names nothing, and a Kubernetes workload name
///   (`k8s.deployment.name`, ...) stands in then;
/// - `ai.cloud.roleInstance`: `k8s.pod.name`, else `service.instance.id`, else `host.name`;
/// - `ai.application.ver`: `service.version`.
///
/// Empty values count as absent.
pub fn resource_tags(get: impl Fn(&str) -> Option<String>) -> Vec<(&'static str, String)> {
    let get = |k: &str| get(k).filter(|v| !v.is_empty());
    let mut out = Vec::new();
    let service = get("service.name").filter(|n| !n.starts_with("unknown_service"));
    let role = match service {
        Some(name) => Some(match get("service.namespace") {
            Some(ns) => format!("{ns}.{name}"),
            None => name,
        }),
        None => WORKLOADS.into_iter().find_map(get),
    };
    if let Some(role) = role {
        out.push((tags::CLOUD_ROLE, role));
    }
    let instance = get("k8s.pod.name")
        .or_else(|| get("service.instance.id"))
        .or_else(|| get("host.name"));
    if let Some(instance) = instance {
        out.push((tags::CLOUD_ROLE_INSTANCE, instance));
    }
    if let Some(version) = get("service.version") {
        out.push((tags::APPLICATION_VERSION, version));
    }
    out
}

/// The value of one data point of an OpenTelemetry metric.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum MetricPoint {
    /// A sum's or a gauge's value.
    Number(f64),
    /// A histogram's (or summary's) sum, count, and smallest and largest value when known.
    Distribution {
        /// The sum of the values.
        sum: f64,
        /// How many values.
        count: u64,
        /// The smallest.
        min: Option<f64>,
        /// The largest.
        max: Option<f64>,
    },
}

/// A data point of the metric `name` as one `MetricData` item at `time`: a sum's or gauge's
/// value as the value; a histogram's sum as the value with its count, min and max; each
/// attribute a property (custom dimension). `None` when the value is not finite.
pub fn metric_item<K: Into<String>, V: Into<String>>(
    name: &str,
    point: MetricPoint,
    time: SystemTime,
    attributes: impl IntoIterator<Item = (K, V)>,
) -> Option<Telemetry> {
    let p = match point {
        MetricPoint::Number(value) => DataPoint::new(name, value),
        MetricPoint::Distribution {
            sum,
            count,
            min,
            max,
        } => {
            let mut p = DataPoint::new(name, sum);
            p.count = Some(count);
            (p.min, p.max) = (min, max);
            p
        }
    };
    if !p.value.is_finite() {
        return None;
    }
    let mut metric = Metric::default();
    metric.metrics.push(p);
    let mut item = Telemetry::new(metric);
    item.time = time;
    for (k, v) in attributes {
        item.properties.insert(k.into(), v.into());
    }
    Some(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags_of(attrs: &[(&str, &str)]) -> Vec<(&'static str, String)> {
        resource_tags(|k| {
            attrs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn role_instance_and_version() {
        assert_eq!(
            tags_of(&[
                ("service.name", "unknown_service:node"),
                ("k8s.statefulset.name", "db"),
                ("service.instance.id", ""),
                ("host.name", "h1"),
                ("service.version", "1.2"),
            ]),
            [
                (tags::CLOUD_ROLE, "db".to_string()),
                (tags::CLOUD_ROLE_INSTANCE, "h1".to_string()),
                (tags::APPLICATION_VERSION, "1.2".to_string()),
            ]
        );
        assert!(tags_of(&[]).is_empty());
    }

    #[test]
    fn values_that_are_not_finite_make_no_item() {
        let none: [(&str, &str); 0] = [];
        let now = SystemTime::now();
        assert!(metric_item("m", MetricPoint::Number(f64::NAN), now, none).is_none());
        assert!(metric_item("m", MetricPoint::Number(1.5), now, none).is_some());
    }
}
