//! [`DependencyLayer`].

use std::sync::Arc;

use tower_layer::Layer;
use tracelink_core::TelemetrySink;
use tracelink_core::dependency::DependencyConfig;

use super::classify::{ClassifyError, DefaultClassifyError};
use super::service::DependencyService;

/// The client layer: injects the headers of a new dependency into each request and records
/// one Dependency item per call; see the [`client` module docs](crate::client).
///
/// ```
/// use tower::ServiceBuilder;
/// use tracelink_core::dependency::DependencyConfig;
/// use tracelink_core::{MemorySink, Propagation};
/// use tracelink_tower::client::DependencyLayer;
///
/// let config = DependencyConfig::new(MemorySink::new())
///     .propagation(Propagation::default())
///     .cloud_role("orders-api");
/// let layer = DependencyLayer::from_config(config);
/// # let _ = ServiceBuilder::new().layer(layer);
/// ```
#[derive(Clone, Debug)]
pub struct DependencyLayer<K = DefaultClassifyError> {
    config: Arc<DependencyConfig>,
    classify: K,
}

impl DependencyLayer {
    /// A layer recording into `sink` with the default configuration.
    pub fn new(sink: impl TelemetrySink) -> Self {
        Self::from_config(DependencyConfig::new(sink))
    }

    /// A layer with a full configuration (propagation mode, own appId, excluded hosts,
    /// redaction, cloud role).
    pub fn from_config(config: DependencyConfig) -> Self {
        Self {
            config: Arc::new(config),
            classify: DefaultClassifyError,
        }
    }
}

impl<K> DependencyLayer<K> {
    /// Classifies failed calls with `classify` instead of [`DefaultClassifyError`]; see
    /// [`ClassifyError`].
    pub fn classify_error<L: ClassifyError>(self, classify: L) -> DependencyLayer<L> {
        DependencyLayer {
            config: self.config,
            classify,
        }
    }
}

impl<S, K: Clone> Layer<S> for DependencyLayer<K> {
    type Service = DependencyService<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        DependencyService::new(inner, Arc::clone(&self.config), self.classify.clone())
    }
}
