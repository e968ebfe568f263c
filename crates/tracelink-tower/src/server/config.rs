//! The configuration a [`CorrelationLayer`](super::CorrelationLayer) shares with every
//! service, future and recorder it makes.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use http::request::Parts;
use tracelink_core::model::Telemetry;
use tracelink_core::url::Redaction;
use tracelink_core::{IdSource, Propagation, TelemetrySink};

use super::client_addr::TrustedProxies;
use super::url::Scheme;

pub(super) type PartsHook = Arc<dyn Fn(&Parts, &mut Telemetry) + Send + Sync>;
pub(super) type ResponseHook = Arc<dyn Fn(&http::response::Parts, &mut Telemetry) + Send + Sync>;
pub(super) type Filter = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

/// The configuration shared by a layer and every service it makes. Builders change a copy
/// when it is already shared (clone-on-write).
#[derive(Clone)]
pub(super) struct Config {
    pub(super) sink: Arc<dyn TelemetrySink>,
    pub(super) propagation: Propagation,
    /// `Request-Context` answered, from the own appId.
    pub(super) request_context: Option<HeaderValue>,
    pub(super) cloud_role: Option<Arc<str>>,
    pub(super) role_instance: Option<Arc<str>>,
    pub(super) default_scheme: Scheme,
    pub(super) trusted: TrustedProxies,
    pub(super) redaction: Redaction,
    pub(super) traceresponse: bool,
    pub(super) track_users: bool,
    pub(super) on_request: Option<PartsHook>,
    pub(super) on_response: Option<ResponseHook>,
    pub(super) filter: Option<Filter>,
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(super) id_source: Option<Arc<dyn IdSource>>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("propagation", &self.propagation)
            .field("cloud_role", &self.cloud_role)
            .field("role_instance", &self.role_instance)
            .field("default_scheme", &self.default_scheme)
            .field("trusted", &self.trusted)
            .field("traceresponse", &self.traceresponse)
            .field("track_users", &self.track_users)
            .finish_non_exhaustive()
    }
}
