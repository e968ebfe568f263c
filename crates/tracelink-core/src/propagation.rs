//! What tracelink propagates: the [`Propagation`] configuration (mode, baggage, own appId,
//! excluded hosts) that extraction ([`crate::extract`]) and injection
//! ([`Propagation::inject`], in [`crate::inject`]) follow.

use crate::hosts::HostFilter;
use crate::request_context::AppId;

/// Which id scheme and headers are used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PropagationMode {
    /// W3C Trace Context only: `traceparent`/`tracestate`, no `Request-Id`.
    W3c,
    /// W3C plus `Request-Id: |T.S.` for callees with older SDKs (SPEC 3.5). The default, as
    /// in the .NET and Node SDKs.
    #[default]
    W3cWithBackCompat,
    /// Hierarchical Request-Ids only (SPEC 3.6), for estates that forced .NET's
    /// hierarchical Activity ids. No `traceparent` is sent.
    Hierarchical,
}

/// The propagation configuration, shared by the server and client middleware.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Propagation {
    pub(crate) mode: PropagationMode,
    pub(crate) w3c_baggage: bool,
    pub(crate) hosts: HostFilter,
    pub(crate) app_id: Option<AppId>,
}

impl Propagation {
    /// The defaults: W3C with back-compat, `Correlation-Context` only, the default excluded
    /// hosts, no own appId.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: PropagationMode) -> Self {
        self.mode = mode;
        self
    }

    /// Also send the W3C `baggage` header besides `Correlation-Context` (SPEC 4.3).
    pub fn w3c_baggage(mut self) -> Self {
        self.w3c_baggage = true;
        self
    }

    /// The own application id (SPEC 5.2), sent in `Request-Context`.
    pub fn app_id(mut self, app_id: AppId) -> Self {
        self.app_id = Some(app_id);
        self
    }

    /// Replaces the host filter (SPEC 5.6).
    pub fn hosts(mut self, hosts: HostFilter) -> Self {
        self.hosts = hosts;
        self
    }

    /// Also exclude hosts matching `pattern` (SPEC 5.6).
    pub fn exclude_host(mut self, pattern: &str) -> Self {
        self.hosts = self.hosts.exclude(pattern);
        self
    }

    /// Send headers to hosts matching `pattern` even when excluded (SPEC 5.6).
    pub fn allow_host(mut self, pattern: &str) -> Self {
        self.hosts = self.hosts.allow(pattern);
        self
    }

    /// The mode.
    pub fn propagation_mode(&self) -> PropagationMode {
        self.mode
    }

    /// The own application id.
    pub fn own_app_id(&self) -> Option<&AppId> {
        self.app_id.as_ref()
    }

    /// The host filter.
    pub fn host_filter(&self) -> &HostFilter {
        &self.hosts
    }

    /// Whether `host` must get no correlation header.
    pub fn is_excluded(&self, host: &str) -> bool {
        self.hosts.is_excluded(host)
    }
}
