//! The setup: one configuration, read from the standard environment unless given, and the
//! settings every part of tracelink takes from it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracelink_core::connection_string::{self, ConnectionString};
use tracelink_core::{Propagation, PropagationMode, TelemetrySink};

use crate::error::{InitError, InitErrorKind};
use crate::settings::Settings;

/// The connection string used when none is configured: the local collector
/// (`tracelink-collector`, listening on 127.0.0.1:7421 by default), for ingestion and Live
/// Metrics.
pub const LOCAL_CONNECTION_STRING: &str = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:7421;LiveEndpoint=http://127.0.0.1:7421";

/// Environment variable choosing the propagation mode: `default` (W3C with the legacy
/// headers for back-compat), `w3c` or `hierarchical`.
pub const PROPAGATION_ENV: &str = "TRACELINK_PROPAGATION";

/// How long dropping the [`Tracelink`](crate::Tracelink) handle waits for the last items to be sent.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
const WEBSITE_SITE_NAME: &str = "WEBSITE_SITE_NAME";
const WEBSITE_INSTANCE_ID: &str = "WEBSITE_INSTANCE_ID";

/// Environment variable asking for Entra ID authentication with a managed identity, as the
/// other SDKs read it: `Authorization=AAD`, or `Authorization=AAD;ClientId=<client id>`.
pub const AUTHENTICATION_ENV: &str = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING";

/// Where the environment's values come from.
#[derive(Clone, Debug)]
enum Vars {
    Process,
    Map(HashMap<String, String>),
}

impl Vars {
    /// The value of `key`; an empty value counts as unset. A value that is not Unicode is an
    /// error naming the key.
    fn get(&self, key: &'static str) -> Result<Option<String>, InitError> {
        let value = match self {
            Vars::Process => match std::env::var(key) {
                Ok(v) => Some(v),
                Err(std::env::VarError::NotPresent) => None,
                Err(std::env::VarError::NotUnicode(_)) => return Err(InitError::setting(key)),
            },
            Vars::Map(m) => m.get(key).cloned(),
        };
        Ok(value.filter(|v| !v.trim().is_empty()))
    }
}

/// Configures tracelink; [`Builder::init`] starts it. Every setting left unset is read from
/// the environment as the Application Insights and OpenTelemetry SDKs read it:
///
/// | setting | explicit | else from the environment | else |
/// |---|---|---|---|
/// | connection string | [`Builder::connection_string`] | `APPLICATIONINSIGHTS_CONNECTION_STRING` | [`LOCAL_CONNECTION_STRING`] (the local collector) |
/// | own appId (`Request-Context`) | [`Builder::app_id`] | the connection string's `ApplicationId` | none |
/// | role (`ai.cloud.role`) | [`Builder::role`] | `OTEL_SERVICE_NAME`, `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, `WEBSITE_SITE_NAME` | the executable's name |
/// | role instance | [`Builder::role_instance`] | `service.instance.id` in `OTEL_RESOURCE_ATTRIBUTES`, `WEBSITE_INSTANCE_ID`, `HOSTNAME`/`COMPUTERNAME` | the host name |
/// | application version | [`Builder::application_version`] | `service.version` in `OTEL_RESOURCE_ATTRIBUTES` | none |
/// | sampling | [`Builder::sampling`] | `OTEL_TRACES_SAMPLER` = `microsoft.fixed_percentage`, `traceidratio` or `parentbased_traceidratio` with `OTEL_TRACES_SAMPLER_ARG` a ratio 0-1 | off (everything kept) |
/// | propagation mode | [`Builder::propagation_mode`] | `TRACELINK_PROPAGATION` = `default`, `w3c`, `hierarchical` | `default` |
/// | Entra ID credential (feature `export`) | [`Builder::credential`] | `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` (feature `azure-identity`) | none: the instrumentation key alone |
/// | metrics | [`Builder::metric_interval`], [`Builder::metric_limits`], [`Builder::no_standard_metrics`], [`Builder::no_performance_counters`] | | every 60 s; standard metrics and performance counters on |
/// | Live Metrics (feature `live-metrics`) | [`Builder::live_metrics`], [`Builder::no_live_metrics`] | the connection string's `LiveEndpoint` | on, except with a local ingestion endpoint and no `LiveEndpoint` |
///
/// A value that cannot be used is an [`InitError`] naming the variable (never its value).
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), tracelink::InitError> {
/// let tracelink = tracelink::builder()
///     .role("orders-api")
///     .exclude_host("*.internal.example")
///     .init()?;
/// # Ok(()) }
/// ```
pub struct Builder {
    vars: Vars,
    pub(crate) connection_string: Option<String>,
    pub(crate) app_id: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) role_instance: Option<String>,
    pub(crate) application_version: Option<String>,
    pub(crate) propagation_mode: Option<PropagationMode>,
    pub(crate) excluded_hosts: Vec<String>,
    pub(crate) user_tracking: UserTracking,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) sink: Option<Arc<dyn TelemetrySink>>,
    #[cfg(feature = "opentelemetry")]
    pub(crate) opentelemetry: bool,
    #[cfg(feature = "export")]
    pub(crate) sampling: Option<tracelink_export::Sampling>,
    #[cfg(feature = "export")]
    #[allow(clippy::type_complexity)]
    pub(crate) exporter: Vec<
        Box<
            dyn FnOnce(tracelink_export::ExporterBuilder) -> tracelink_export::ExporterBuilder
                + Send,
        >,
    >,
    #[cfg(feature = "live-metrics")]
    pub(crate) live_metrics: crate::live_setup::LiveChoice,
    /// A credential was given in code: the environment's is not used.
    #[cfg(feature = "export")]
    pub(crate) credential: bool,
    pub(crate) metrics: crate::metrics_setup::MetricsConfig,
}

/// Whether the server layer issues the browser SDK's `ai_user` and `ai_session` cookies to
/// clients that have none (so that server-rendered apps without the browser SDK still count
/// users and sessions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserTracking {
    /// Read the cookies the browser SDK set; issue none (the default).
    #[default]
    ReadCookies,
    /// Read them, and issue them when absent or expired.
    IssueCookies,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field(
                "connection_string",
                &self.connection_string.as_ref().map(|_| "…"),
            )
            .field("role", &self.role)
            .field("role_instance", &self.role_instance)
            .field("application_version", &self.application_version)
            .field("propagation_mode", &self.propagation_mode)
            .field("user_tracking", &self.user_tracking)
            .finish_non_exhaustive()
    }
}

/// A builder reading unset settings from the process environment.
pub fn builder() -> Builder {
    Builder::new(Vars::Process)
}

impl Builder {
    fn new(vars: Vars) -> Self {
        Self {
            vars,
            connection_string: None,
            app_id: None,
            role: None,
            role_instance: None,
            application_version: None,
            propagation_mode: None,
            excluded_hosts: Vec::new(),
            user_tracking: UserTracking::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            sink: None,
            #[cfg(feature = "opentelemetry")]
            opentelemetry: false,
            #[cfg(feature = "export")]
            sampling: None,
            #[cfg(feature = "export")]
            exporter: Vec::new(),
            #[cfg(feature = "live-metrics")]
            live_metrics: crate::live_setup::LiveChoice::default(),
            #[cfg(feature = "export")]
            credential: false,
            metrics: crate::metrics_setup::MetricsConfig::default(),
        }
    }

    /// A builder reading unset settings from `vars` instead of the process environment,
    /// e.g. a configuration file's values or a test's.
    ///
    /// ```
    /// let b = tracelink::Builder::from_vars([("OTEL_SERVICE_NAME", "orders-api")]);
    /// # let _ = b;
    /// ```
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self::new(Vars::Map(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        ))
    }

    /// The connection string (`InstrumentationKey=…;IngestionEndpoint=…`).
    pub fn connection_string(mut self, connection_string: impl Into<String>) -> Self {
        self.connection_string = Some(connection_string.into());
        self
    }

    /// The own appId, answered in `Request-Context` and sent to callees; by default the
    /// connection string's `ApplicationId`.
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// `ai.cloud.role` of every item: the service's name on the application map.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// `ai.cloud.roleInstance` of every item.
    pub fn role_instance(mut self, instance: impl Into<String>) -> Self {
        self.role_instance = Some(instance.into());
        self
    }

    /// `ai.application.ver` of every item.
    pub fn application_version(mut self, version: impl Into<String>) -> Self {
        self.application_version = Some(version.into());
        self
    }

    /// The propagation mode (SPEC 2, 3): W3C with back-compat headers by default.
    pub fn propagation_mode(mut self, mode: PropagationMode) -> Self {
        self.propagation_mode = Some(mode);
        self
    }

    /// Sends no correlation headers to hosts matching `pattern` (`*.example.com` or a host),
    /// in addition to the built-in exclusions (SPEC 5.6).
    pub fn exclude_host(mut self, pattern: impl Into<String>) -> Self {
        self.excluded_hosts.push(pattern.into());
        self
    }

    /// Whether the server layer issues user and session cookies ([`UserTracking`]).
    pub fn user_tracking(mut self, mode: UserTracking) -> Self {
        self.user_tracking = mode;
        self
    }

    /// How long dropping the handle waits for the last items (default
    /// [`DEFAULT_SHUTDOWN_TIMEOUT`]).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Sends every item to `sink` instead of the exporter, e.g. a `MemorySink` in tests.
    /// The role, instance, version and SDK version are still set on every item.
    pub fn sink(mut self, sink: impl TelemetrySink) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// Sets up OpenTelemetry with tracelink, so that OpenTelemetry's spans and tracelink's
    /// items form one tree with nothing reported twice:
    ///
    /// - a tracer provider whose spans go where every item goes (a batch span processor on a
    ///   thread of its own, wrapped in `OperationNames`), with the role, instance and version
    ///   as its Resource (`service.name`, `service.instance.id`, `service.version`);
    /// - installed by [`Builder::init`] as OpenTelemetry's global tracer provider (libraries
    ///   that call `opentelemetry::global::tracer` use it) with a global propagator for
    ///   `traceparent`/`tracestate` and, except in W3C-only mode, `Request-Id`,
    ///   `Correlation-Context` and `Request-Context`;
    /// - the handle's layers share OpenTelemetry's ids: [`Tracelink::layer`] makes request
    ///   ids OpenTelemetry span ids and adopts the span of an OpenTelemetry server middleware
    ///   placed outside it, [`Tracelink::reqwest_middleware`] and [`Tracelink::client_layer`]
    ///   make a call inside a span made current with the OpenTelemetry API that span's child,
    ///   and [`Tracelink::tracing_layer`] leaves spans to OpenTelemetry and records each log
    ///   once;
    /// - [`Tracelink::opentelemetry_layer`] is `tracing-opentelemetry`'s layer for the
    ///   provider;
    /// - a meter provider, installed as OpenTelemetry's global one, whose sums, gauges and
    ///   histograms are sent as `MetricData` items every metric interval
    ///   ([`Tracelink::meter_provider`]);
    /// - [`Tracelink::flush`] and shutdown export the spans that ended first.
    ///
    /// ```no_run
    /// use axum::{Router, routing::get};
    /// use tracing_subscriber::prelude::*;
    ///
    /// #[tokio::main]
    /// async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let tracelink = tracelink::builder().opentelemetry().init()?;
    ///     tracing_subscriber::registry()
    ///         .with(tracelink.opentelemetry_layer())
    ///         .with(tracelink.tracing_layer())
    ///         .init();
    ///     let app: Router = Router::new()
    ///         .route("/", get(|| async { "hello" }))
    ///         .layer(tracelink.layer());
    ///     axum::serve(tokio::net::TcpListener::bind("127.0.0.1:8080").await?, app).await?;
    ///     tracelink.shutdown().await;
    ///     Ok(())
    /// }
    /// ```
    ///
    /// [`Tracelink::layer`]: crate::Tracelink::layer
    /// [`Tracelink::reqwest_middleware`]: crate::Tracelink::reqwest_middleware
    /// [`Tracelink::client_layer`]: crate::Tracelink::client_layer
    /// [`Tracelink::tracing_layer`]: crate::Tracelink::tracing_layer
    /// [`Tracelink::opentelemetry_layer`]: crate::Tracelink::opentelemetry_layer
    /// [`Tracelink::meter_provider`]: crate::Tracelink::meter_provider
    /// [`Tracelink::flush`]: crate::Tracelink::flush
    #[cfg(feature = "opentelemetry")]
    pub fn opentelemetry(mut self) -> Self {
        self.opentelemetry = true;
        self
    }

    /// Sampling of whole operations (SPEC 8), fixed or adaptive.
    #[cfg(feature = "export")]
    pub fn sampling(mut self, sampling: tracelink_export::Sampling) -> Self {
        self.sampling = Some(sampling);
        self
    }

    /// Adjusts the exporter beyond what the setup decides (queue size, batch limits, spool
    /// directory, processors, a transport).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), tracelink::InitError> {
    /// let tracelink = tracelink::builder()
    ///     .exporter(|e| e.queue_capacity(50_000))
    ///     .init()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "export")]
    pub fn exporter(
        mut self,
        f: impl FnOnce(tracelink_export::ExporterBuilder) -> tracelink_export::ExporterBuilder
        + Send
        + 'static,
    ) -> Self {
        self.exporter.push(Box::new(f));
        self
    }

    /// Adjusts Live Metrics beyond what the setup decides (its endpoint, intervals, document
    /// quota). It also switches Live Metrics on where the setup leaves it off: with a local
    /// ingestion endpoint and no `LiveEndpoint` in the connection string.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), tracelink::InitError> {
    /// let tracelink = tracelink::builder()
    ///     .live_metrics(|l| l.max_documents_per_post(10))
    ///     .init()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "live-metrics")]
    pub fn live_metrics(
        mut self,
        f: impl FnOnce(tracelink_live::LiveMetricsBuilder) -> tracelink_live::LiveMetricsBuilder
        + Send
        + 'static,
    ) -> Self {
        self.live_metrics.configure(Box::new(f));
        self
    }

    /// Sends nothing to Live Metrics.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), tracelink::InitError> {
    /// let tracelink = tracelink::builder().no_live_metrics().init()?;
    /// assert!(tracelink.live_metrics().is_none());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "live-metrics")]
    pub fn no_live_metrics(mut self) -> Self {
        self.live_metrics = crate::live_setup::LiveChoice::Off;
        self
    }

    /// How often the pre-aggregated metrics ([`Client::metric`](crate::Client::metric), the
    /// standard metrics) and the performance counters are sent: 60 s by default, as in the
    /// other SDKs. Each item covers one interval (`_MS.AggregationIntervalMs`).
    pub fn metric_interval(mut self, interval: Duration) -> Self {
        self.metrics.interval = interval;
        self
    }

    /// The caps on the dimension combinations of the pre-aggregated metrics: 1000 per metric
    /// and 10,000 in all by default. The standard metrics have the same caps, and record a
    /// combination beyond them under `Other`.
    ///
    /// ```
    /// let mut limits = tracelink::MetricLimits::default();
    /// limits.series_per_metric = 100;
    /// let builder = tracelink::builder().metric_limits(limits);
    /// # let _ = builder;
    /// ```
    pub fn metric_limits(mut self, limits: tracelink_core::metrics::MetricLimits) -> Self {
        self.metrics.limits = limits;
        self
    }

    /// Counts nothing into the standard metrics (`requests/duration`,
    /// `dependencies/duration`, `exceptions/count`, `traces/count`); they are on by default,
    /// as in the other SDKs. Without them, sampling saves the recording of the operations it
    /// drops, and the portal's request and dependency charts count kept items, scaled by
    /// their sample rate.
    pub fn no_standard_metrics(mut self) -> Self {
        self.metrics.standard = false;
        self
    }

    /// Sends no performance counters (processor time, process CPU, private bytes, available
    /// memory, request rate and execution time); they are on by default.
    pub fn no_performance_counters(mut self) -> Self {
        self.metrics.counters = false;
        self
    }

    /// Authenticates the exporter with Entra ID: every post to ingestion carries a bearer
    /// token of `provider` (see `tracelink::export::credential`). With feature
    /// `azure-identity`, `tracelink::export::AzureCredential` gives tokens of a managed
    /// identity, workload identity, the Azure CLI or a service principal. Without this
    /// setting, `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` = `Authorization=AAD` (the
    /// system-assigned managed identity) or `Authorization=AAD;ClientId=<id>` (a
    /// user-assigned one) sets it up, as in the other SDKs (feature `azure-identity`).
    ///
    /// ```no_run
    /// use std::time::{Duration, SystemTime};
    /// use tracelink::export::AccessToken;
    ///
    /// # fn main() -> Result<(), tracelink::InitError> {
    /// let tracelink = tracelink::builder()
    ///     .credential(|_scope: &str| async {
    ///         Ok(AccessToken::new("eyJ0…", SystemTime::now() + Duration::from_secs(3600)))
    ///     })
    ///     .init()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "export")]
    pub fn credential(mut self, provider: impl tracelink_export::TokenProvider) -> Self {
        self.credential = true;
        self.exporter
            .push(Box::new(move |e| e.credential(provider)));
        self
    }

    /// Everything read and checked, before anything starts.
    pub(crate) fn resolve(&self) -> Result<Settings, InitError> {
        let v = &self.vars;
        let (text, key) = match &self.connection_string {
            Some(s) => (s.clone(), "connection_string"),
            None => match v.get(connection_string::ENV_VAR)? {
                Some(s) => (s, connection_string::ENV_VAR),
                None => (
                    LOCAL_CONNECTION_STRING.to_owned(),
                    "LOCAL_CONNECTION_STRING",
                ),
            },
        };
        let connection = ConnectionString::parse(&text)
            .map_err(|e| InitError::new(InitErrorKind::ConnectionString, key, Some(Box::new(e))))?;
        let resource = match v.get(OTEL_RESOURCE_ATTRIBUTES)? {
            Some(s) => resource_attributes(&s),
            None => HashMap::new(),
        };
        let role = match &self.role {
            Some(r) => r.clone(),
            None => v
                .get(OTEL_SERVICE_NAME)?
                .or_else(|| resource.get("service.name").cloned())
                .or(v.get(WEBSITE_SITE_NAME)?)
                .unwrap_or_else(executable_name),
        };
        let instance = match &self.role_instance {
            Some(r) => r.clone(),
            None => match resource.get("service.instance.id").cloned() {
                Some(i) => i,
                None => match v.get(WEBSITE_INSTANCE_ID)? {
                    Some(i) => i,
                    None => host_name(v)?,
                },
            },
        };
        let version = self
            .application_version
            .clone()
            .or_else(|| resource.get("service.version").cloned());
        let mode = match self.propagation_mode {
            Some(m) => m,
            None => match v.get(PROPAGATION_ENV)?.as_deref().map(str::trim) {
                None | Some("default") => PropagationMode::W3cWithBackCompat,
                Some("w3c") => PropagationMode::W3c,
                Some("hierarchical") => PropagationMode::Hierarchical,
                Some(_) => return Err(InitError::setting(PROPAGATION_ENV)),
            },
        };
        let mut propagation = Propagation::default().mode(mode);
        match &self.app_id {
            Some(id) => {
                let id = tracelink_core::AppId::new(id).map_err(|e| {
                    InitError::new(InitErrorKind::InvalidSetting, "app_id", Some(Box::new(e)))
                })?;
                propagation = propagation.app_id(id);
            }
            None => {
                if let Some(id) = connection.application_id() {
                    propagation = propagation.app_id(id.clone());
                }
            }
        }
        for host in &self.excluded_hosts {
            propagation = propagation.exclude_host(host);
        }
        let sampling_percentage = match (
            v.get(OTEL_TRACES_SAMPLER)?.as_deref().map(str::trim),
            v.get(OTEL_TRACES_SAMPLER_ARG)?,
        ) {
            (
                Some("microsoft.fixed_percentage" | "traceidratio" | "parentbased_traceidratio"),
                arg,
            ) => {
                let ratio = match arg {
                    None => 1.0,
                    Some(a) => a
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or_else(|| InitError::setting(OTEL_TRACES_SAMPLER_ARG))?,
                };
                Some(ratio * 100.0)
            }
            (Some("always_on" | "parentbased_always_on") | None, _) => None,
            (Some("always_off" | "parentbased_always_off"), _) => Some(0.0),
            (Some(_), _) => return Err(InitError::setting(OTEL_TRACES_SAMPLER)),
        };
        let authentication = match v.get(AUTHENTICATION_ENV)? {
            Some(s) => Some(
                parse_authentication(&s).ok_or_else(|| InitError::setting(AUTHENTICATION_ENV))?,
            ),
            None => None,
        };
        #[cfg(not(feature = "azure-identity"))]
        if authentication.is_some() {
            return Err(InitError::new(
                InitErrorKind::InvalidSetting,
                AUTHENTICATION_ENV,
                Some(
                    "Entra ID authentication from the environment needs feature `azure-identity`"
                        .into(),
                ),
            ));
        }
        Ok(Settings {
            authentication,
            connection,
            role: role.into(),
            instance: instance.into(),
            version: version.map(Into::into),
            propagation,
            sampling_percentage,
        })
    }
}

/// `Authorization=AAD[;ClientId=<id>]`, keys without regard to case: the client id of a
/// user-assigned managed identity, or none for the system-assigned one.
fn parse_authentication(s: &str) -> Option<Option<String>> {
    let mut aad = false;
    let mut client_id = None;
    for entry in s.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (k, v) = entry.split_once('=')?;
        match k.trim().to_ascii_lowercase().as_str() {
            "authorization" if v.trim().eq_ignore_ascii_case("aad") => aad = true,
            "clientid" if !v.trim().is_empty() => client_id = Some(v.trim().to_owned()),
            _ => return None,
        }
    }
    aad.then_some(client_id)
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs separated by `,`, values percent-encoded.
/// Pairs that do not parse are skipped, as the OpenTelemetry SDKs do.
fn resource_attributes(s: &str) -> HashMap<String, String> {
    s.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let (k, v) = (k.trim(), tracelink_core::url::percent_decode(v.trim())?);
            (!k.is_empty() && !v.is_empty()).then(|| (k.to_owned(), v))
        })
        .collect()
}

fn executable_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown_service".to_owned())
}

fn host_name(v: &Vars) -> Result<String, InitError> {
    for key in ["HOSTNAME", "COMPUTERNAME"] {
        if let Some(h) = v.get(key)? {
            return Ok(h.trim().to_owned());
        }
    }
    for file in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(h) = std::fs::read_to_string(file)
            && !h.trim().is_empty()
        {
            return Ok(h.trim().to_owned());
        }
    }
    Ok("localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(vars: &[(&str, &str)]) -> Result<Settings, InitError> {
        Builder::from_vars(vars.iter().copied()).resolve()
    }

    #[test]
    fn connection_string_app_id_becomes_the_own_app_id() {
        let s = resolve(&[(
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:1;ApplicationId=abc-123",
        )])
        .unwrap();
        assert_eq!(s.propagation.own_app_id().unwrap().as_str(), "abc-123");
        assert_eq!(s.connection.ingestion_endpoint(), "http://127.0.0.1:1");
    }

    #[test]
    fn no_connection_string_means_the_local_collector() {
        let s = resolve(&[]).unwrap();
        assert_eq!(s.connection.ingestion_endpoint(), "http://127.0.0.1:7421");
        assert!(s.propagation.own_app_id().is_none());
    }

    #[test]
    fn role_and_instance_in_order_of_precedence() {
        let s = resolve(&[
            ("OTEL_SERVICE_NAME", "svc"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=res,service.instance.id=pod%2D7,service.version=1.2",
            ),
            ("WEBSITE_SITE_NAME", "site"),
            ("WEBSITE_INSTANCE_ID", "inst"),
        ])
        .unwrap();
        assert_eq!((&*s.role, &*s.instance), ("svc", "pod-7"));
        assert_eq!(s.version.as_deref(), Some("1.2"));
        let s = resolve(&[
            ("WEBSITE_SITE_NAME", "site"),
            ("WEBSITE_INSTANCE_ID", "inst"),
        ])
        .unwrap();
        assert_eq!((&*s.role, &*s.instance), ("site", "inst"));
        let s = resolve(&[("HOSTNAME", "host-1")]).unwrap();
        assert_eq!(&*s.instance, "host-1");
        assert!(!s.role.is_empty()); // the test binary's name
        let s = Builder::from_vars([("OTEL_SERVICE_NAME", "svc")])
            .role("explicit")
            .role_instance("i")
            .resolve()
            .unwrap();
        assert_eq!((&*s.role, &*s.instance), ("explicit", "i"));
    }

    #[test]
    fn bad_values_name_their_key_and_never_their_value() {
        let secret = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=ftp://secret-host";
        let e = resolve(&[("APPLICATIONINSIGHTS_CONNECTION_STRING", secret)]).unwrap_err();
        assert_eq!(e.kind(), InitErrorKind::ConnectionString);
        assert_eq!(e.key(), "APPLICATIONINSIGHTS_CONNECTION_STRING");
        let mut chain = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            chain.push_str(&s.to_string());
            src = s.source();
        }
        assert!(!chain.contains("secret-host"), "{chain}");
        let bad_app_id =
            "InstrumentationKey=00000000-0000-0000-0000-000000000001;ApplicationId=a b";
        let e = resolve(&[("APPLICATIONINSIGHTS_CONNECTION_STRING", bad_app_id)]).unwrap_err();
        assert!(
            std::error::Error::source(&e)
                .unwrap()
                .to_string()
                .contains("ApplicationId")
        );
        for (key, value) in [
            ("TRACELINK_PROPAGATION", "w4c"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ] {
            let mut vars = vec![(key, value)];
            if key == "OTEL_TRACES_SAMPLER_ARG" {
                vars.push(("OTEL_TRACES_SAMPLER", "traceidratio"));
            }
            let e = resolve(&vars).unwrap_err();
            assert_eq!((e.kind(), e.key()), (InitErrorKind::InvalidSetting, key));
            assert_eq!(e.to_string(), format!("invalid value of {key}"));
        }
    }

    #[test]
    fn authentication_string() {
        assert_eq!(parse_authentication("Authorization=AAD"), Some(None));
        assert_eq!(
            parse_authentication(" authorization = aad ; ClientId=abc ;"),
            Some(Some("abc".into()))
        );
        assert_eq!(parse_authentication("ClientId=abc"), None);
        assert_eq!(parse_authentication("Authorization=Key"), None);
        assert_eq!(parse_authentication("Authorization=AAD;Other=1"), None);
        let e = resolve(&[(AUTHENTICATION_ENV, "nonsense")]).unwrap_err();
        assert_eq!(
            (e.kind(), e.key()),
            (InitErrorKind::InvalidSetting, AUTHENTICATION_ENV)
        );
        let r = resolve(&[(AUTHENTICATION_ENV, "Authorization=AAD")]);
        if cfg!(feature = "azure-identity") {
            assert_eq!(r.unwrap().authentication, Some(None));
        } else {
            assert_eq!(r.unwrap_err().key(), AUTHENTICATION_ENV);
        }
    }

    #[test]
    fn propagation_and_sampling_from_the_environment() {
        let s = resolve(&[
            ("TRACELINK_PROPAGATION", "hierarchical"),
            ("OTEL_TRACES_SAMPLER", "microsoft.fixed_percentage"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap();
        assert_eq!(
            s.propagation.propagation_mode(),
            PropagationMode::Hierarchical
        );
        assert_eq!(s.sampling_percentage, Some(25.0));
        let s = resolve(&[("TRACELINK_PROPAGATION", "w3c")]).unwrap();
        assert_eq!(s.propagation.propagation_mode(), PropagationMode::W3c);
        assert_eq!(s.sampling_percentage, None);
    }
}
