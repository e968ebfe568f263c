//! What every part of a running setup shares: where items go, the settings, and the tags
//! every item gets.

use std::fmt;
use std::sync::Arc;

use tracelink_core::TelemetrySink;
use tracelink_core::metrics::MetricAggregator;
use tracelink_core::model::{TagValue, Telemetry, tags};

use crate::settings::Settings;

/// What every part of tracelink shares: where items go, the settings, and the aggregator of
/// the custom metrics.
pub(crate) struct Shared {
    pub(crate) sink: Arc<dyn TelemetrySink>,
    pub(crate) settings: Settings,
    pub(crate) metrics: MetricAggregator,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Sets each tag the item lacks, and the SDK version.
pub(crate) fn tag(item: &mut Telemetry, tags: &[(&'static str, Arc<str>)]) {
    for (key, value) in tags {
        item.tags.insert_if_absent(*key, value);
    }
    item.tags.insert_if_absent(
        tags::INTERNAL_SDK_VERSION,
        TagValue::from_static(tags::SDK_VERSION),
    );
}

impl Settings {
    /// The tags every item gets: role, instance, version.
    pub(crate) fn item_tags(&self) -> Vec<(&'static str, Arc<str>)> {
        let mut t = vec![
            (tags::CLOUD_ROLE, self.role.clone()),
            (tags::CLOUD_ROLE_INSTANCE, self.instance.clone()),
        ];
        if let Some(v) = &self.version {
            t.push((tags::APPLICATION_VERSION, v.clone()));
        }
        t
    }
}
