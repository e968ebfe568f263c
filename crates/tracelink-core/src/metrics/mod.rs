//! Pre-aggregated metrics: values tracked per name and dimension values, sent once per
//! interval as one `MetricData` item with count, sum, min, max and standard deviation, as
//! the Application Insights SDKs' `GetMetric` does; and the standard metrics the portal's
//! charts read (`requests/duration`, `dependencies/duration`, `exceptions/count`,
//! `traces/count`), extracted from every item before sampling.
//!
//! Nothing here runs on its own: whoever owns an aggregator calls `collect` once per
//! interval (the `tracelink` facade does, every [`DEFAULT_INTERVAL`]) and sends the items it
//! returns.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use tracelink_core::metrics::{AGGREGATION_INTERVAL_PROPERTY, MetricAggregator};
//! use tracelink_core::model::TelemetryData;
//!
//! let metrics = MetricAggregator::new();
//! let start = SystemTime::now();
//! metrics.collect(start); // the interval starts
//! let depth = metrics.metric("queue.depth").dimension("queue", "orders");
//! for v in [3.0, 5.0, 4.0] {
//!     assert!(depth.track(v));
//! }
//! let items = metrics.collect(start + Duration::from_secs(60));
//! assert_eq!(items.len(), 1);
//! let TelemetryData::Metric(m) = &items[0].data else { unreachable!() };
//! let p = &m.metrics[0];
//! assert_eq!((p.name.as_str(), p.value, p.count), ("queue.depth", 12.0, Some(3)));
//! assert_eq!((p.min, p.max), (Some(3.0), Some(5.0)));
//! assert_eq!(items[0].properties["queue"], "orders");
//! assert_eq!(items[0].properties[AGGREGATION_INTERVAL_PROPERTY], "60000");
//! ```
//!
//! ## Cost
//!
//! [`MetricTracker::track`] never allocates once its series exists, and takes no lock that
//! other threads usually hold: each thread keeps the series it tracked last in a small cache
//! of its own (a hash and a comparison of the name and dimensions find it), and each series
//! keeps its running aggregate in stripes, one per group of threads, each on its own cache
//! line. A [`MetricSeries`] skips the hash and the comparison. The first value of a series
//! takes a lock shared by a sixteenth of the series, and allocates the series.
//!
//! ## Caps
//!
//! A metric has at most [`MetricLimits::series_per_metric`] dimension combinations (default
//! [`DEFAULT_SERIES_PER_METRIC`], as the .NET SDK's `SeriesCountLimit`), and an aggregator at
//! most [`MetricLimits::max_series`] in all (default [`DEFAULT_MAX_SERIES`]). A value for a
//! combination beyond a cap is not recorded: `track` returns `false`, and the value is
//! counted in [`MetricStats::values_over_cap`]. A series that received no value for a whole
//! interval is removed when the interval is collected, which frees its place; it comes back
//! with its next value. Values that are not finite are not recorded either
//! ([`MetricStats::values_invalid`]). The standard metrics fold combinations beyond the cap
//! into `Other` instead (see [`StandardMetrics`]).

mod aggregator;
mod standard;

use std::time::Duration;

pub use crate::unsampled::Unsampled;
pub use aggregator::{
    DEFAULT_MAX_SERIES, DEFAULT_SERIES_PER_METRIC, MAX_DIMENSIONS, MetricAggregator, MetricLimits,
    MetricSeries, MetricStats, MetricTracker,
};
pub use standard::{
    OTHER, RequestTotals, StandardMetrics, StandardMetricsSink, dimension, extractor, metric_id,
    metric_name,
};

/// How long values are aggregated before they are sent, as in every Application Insights
/// SDK: 60 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// The property holding the length of the interval an aggregate covers, in milliseconds.
pub const AGGREGATION_INTERVAL_PROPERTY: &str = "_MS.AggregationIntervalMs";

/// The property naming the standard metric an item is (`requests/duration`, ...).
pub const METRIC_ID_PROPERTY: &str = "_MS.MetricId";

/// The property marking a standard metric as collected by the SDK (`True`).
pub const IS_AUTOCOLLECTED_PROPERTY: &str = "_MS.IsAutocollected";

/// The property marking an item that was counted into the standard metrics, so that the
/// backend does not count it again: `(Name:'Requests', Ver:'1.1')` and the like.
pub const PROCESSED_BY_METRIC_EXTRACTORS_PROPERTY: &str = "_MS.ProcessedByMetricExtractors";
