//! What the setup decided: the settings every part of the setup starts from.

use std::sync::Arc;

use tracelink_core::Propagation;
use tracelink_core::connection_string::ConnectionString;

/// What the setup decided.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// From `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`: a managed identity's tokens, the
    /// user-assigned one with this client id or the system-assigned one.
    #[cfg_attr(not(feature = "azure-identity"), allow(dead_code))]
    pub(crate) authentication: Option<Option<String>>,
    #[cfg_attr(not(feature = "export"), allow(dead_code))]
    pub(crate) connection: ConnectionString,
    pub(crate) role: Arc<str>,
    pub(crate) instance: Arc<str>,
    pub(crate) version: Option<Arc<str>>,
    pub(crate) propagation: Propagation,
    /// From `OTEL_TRACES_SAMPLER`; an explicit [`Builder::sampling`](crate::Builder::sampling) wins.
    #[cfg_attr(not(feature = "export"), allow(dead_code))]
    pub(crate) sampling_percentage: Option<f64>,
}
