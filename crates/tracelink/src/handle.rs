//! The handle [`init`](crate::init) returns: where the layers, the middleware and the client
//! come from, and the guard that sends the last items when the program ends.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracelink_core::model::Telemetry;
use tracelink_core::{Propagation, SamplingDecision, TelemetrySink, TraceId};

use crate::InitError;
use crate::client::{self, Client};
use crate::settings::Settings;
use crate::setup::{Builder, UserTracking};
use crate::shared::{Shared, tag};

/// The running setup. The server layer, the client middleware, the `tracing` layer and the
/// telemetry [`Client`] all come from it and share its configuration: a setting given once
/// reaches every item.
///
/// It is also the guard of the exporter: [`Tracelink::shutdown`] sends what is queued
/// within the shutdown timeout; dropping the handle without it does the same, blocking the
/// dropping thread for at most the shutdown timeout (2 s by default). What cannot be sent in
/// time is kept in the disk spool and sent by the next start.
///
/// ```no_run
/// use axum::{Router, routing::get};
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let tracelink = tracelink::init()?;
///     let app: Router = Router::new()
///         .route("/", get(|| async { "hello" }))
///         .layer(tracelink.layer());
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
///     axum::serve(listener, app).await?;
///     tracelink.shutdown().await;
///     Ok(())
/// }
/// ```
pub struct Tracelink {
    shared: Arc<Shared>,
    user_tracking: UserTracking,
    #[cfg_attr(not(feature = "export"), allow(dead_code))]
    shutdown_timeout: Duration,
    #[cfg(feature = "export")]
    export: Option<crate::export_thread::Export>,
    #[cfg(feature = "opentelemetry")]
    otel: Option<crate::otel_pipeline::Otel>,
    metrics: crate::metrics_setup::Metrics,
}

impl fmt::Debug for Tracelink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracelink")
            .field("settings", &self.shared.settings)
            .field("user_tracking", &self.user_tracking)
            .finish_non_exhaustive()
    }
}

/// A sink that adds the setup's tags to items on their way to a sink of the user's (the
/// exporter adds them on its own thread instead).
struct Tagged {
    inner: Arc<dyn TelemetrySink>,
    tags: Vec<(&'static str, Arc<str>)>,
}

impl TelemetrySink for Tagged {
    fn send(&self, mut item: Telemetry) {
        tag(&mut item, &self.tags);
        self.inner.send(item);
    }

    fn sampling(&self, operation_id: TraceId) -> SamplingDecision {
        self.inner.sampling(operation_id)
    }

    fn counts_unsampled(&self) -> bool {
        self.inner.counts_unsampled()
    }

    fn count_unsampled(&self, what: &tracelink_core::metrics::Unsampled<'_>) {
        self.inner.count_unsampled(what);
    }
}

impl Tracelink {
    /// Starts the setup; `global`: also the client of the free functions and the panic
    /// hook (always, except in this crate's unit tests, which run side by side).
    pub(crate) fn start(
        mut builder: Builder,
        settings: Settings,
        global: bool,
    ) -> Result<Self, InitError> {
        #[cfg(feature = "export")]
        let mut export = None;
        // Counted into the standard metrics before anything samples (in front of the
        // exporter's thread's sinks, or of the user's sink).
        let standard = builder.metrics.standard(&settings);
        let sink: Arc<dyn TelemetrySink> = match builder.sink.take() {
            Some(user) => Arc::new(Tagged {
                inner: crate::metrics_setup::in_front(user, &standard),
                tags: settings.item_tags(),
            }),
            #[cfg(feature = "export")]
            None => {
                let e = crate::export_thread::Export::start(&mut builder, &settings, &standard)?;
                let sink = e.sink();
                export = Some(e);
                sink
            }
            #[cfg(not(feature = "export"))]
            None => {
                return Err(InitError::new(
                    crate::InitErrorKind::InvalidSetting,
                    "sink",
                    Some("without the `export` feature, give the setup a sink".into()),
                ));
            }
        };
        #[cfg(feature = "opentelemetry")]
        let otel = builder.opentelemetry.then(|| {
            crate::otel_pipeline::Otel::start(
                sink.clone(),
                &settings,
                builder.metrics.interval,
                global,
            )
        });
        let custom = tracelink_core::metrics::MetricAggregator::with_limits(builder.metrics.limits);
        let metrics = crate::metrics_setup::Metrics::start(
            &builder.metrics,
            custom.clone(),
            standard,
            sink.clone(),
        )?;
        let shared = Arc::new(Shared {
            sink,
            settings,
            metrics: custom,
        });
        if global {
            client::install(Client::new(shared.clone()));
            crate::panic::install();
        }
        Ok(Self {
            shared,
            user_tracking: builder.user_tracking,
            shutdown_timeout: builder.shutdown_timeout,
            #[cfg(feature = "export")]
            export,
            #[cfg(feature = "opentelemetry")]
            otel,
            metrics,
        })
    }

    /// The telemetry client: events, exceptions, traces, metrics, page views, and
    /// operations for work that is not HTTP. The free functions
    /// ([`track_event`](crate::track_event), ...) use the same one.
    pub fn client(&self) -> Client {
        Client::new(self.shared.clone())
    }

    /// The propagation settings (mode, own appId, excluded hosts) every part uses.
    pub fn propagation(&self) -> &Propagation {
        &self.shared.settings.propagation
    }

    /// Where items go: the exporter (or the sink given to the setup), with the setup's tags.
    /// For building blocks configured by hand.
    pub fn sink(&self) -> Arc<dyn TelemetrySink> {
        self.shared.sink.clone()
    }

    /// `ai.cloud.role`, as the setup decided it.
    pub fn role(&self) -> &str {
        &self.shared.settings.role
    }

    /// `ai.cloud.roleInstance`, as the setup decided it.
    pub fn role_instance(&self) -> &str {
        &self.shared.settings.instance
    }

    /// The server layer for axum and hyper services: one Request item per request, the
    /// caller's context made current for the handler, `Request-Context` answered with the
    /// own appId, the user context read from the browser SDK's cookies.
    ///
    /// Apply it with axum's `Router::layer` so that route templates name the requests. With
    /// [`Builder::opentelemetry`], request ids are OpenTelemetry span ids, and an
    /// OpenTelemetry server middleware's span is adopted when that middleware is applied
    /// outside this layer.
    #[cfg(feature = "tower")]
    pub fn layer(&self) -> tracelink_tower::server::CorrelationLayer {
        let layer = tracelink_tower::server::CorrelationLayer::new(self.shared.sink.clone())
            .propagation(self.shared.settings.propagation.clone());
        #[cfg(feature = "opentelemetry")]
        let layer = match self.otel {
            Some(_) => layer.id_source(tracelink_otel::OtelIdSource::new()),
            None => layer,
        };
        match self.user_tracking {
            UserTracking::IssueCookies => layer.track_users(),
            _ => layer,
        }
    }

    /// The client layer for tower HTTP clients (hyper-util's, for instance): one Dependency
    /// item per call, the correlation headers injected.
    #[cfg(feature = "tower")]
    pub fn client_layer(&self) -> tracelink_tower::client::DependencyLayer {
        tracelink_tower::client::DependencyLayer::from_config(self.dependency_config())
    }

    /// The reqwest-middleware middleware: one Dependency item per call, the correlation
    /// headers injected.
    #[cfg(feature = "reqwest")]
    pub fn reqwest_middleware(&self) -> tracelink_reqwest::DependencyMiddleware {
        tracelink_reqwest::DependencyMiddleware::from_config(self.dependency_config())
    }

    /// `client` with [`Tracelink::reqwest_middleware`]: the usual way to call other services.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), tracelink::InitError> {
    /// let tracelink = tracelink::init()?;
    /// let http = tracelink.reqwest_client(reqwest::Client::new());
    /// # let _ = http;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "reqwest")]
    pub fn reqwest_client(
        &self,
        client: reqwest::Client,
    ) -> reqwest_middleware::ClientWithMiddleware {
        reqwest_middleware::ClientBuilder::new(client)
            .with(self.reqwest_middleware())
            .build()
    }

    #[cfg(any(feature = "tower", feature = "reqwest"))]
    fn dependency_config(&self) -> tracelink_core::dependency::DependencyConfig {
        let config = tracelink_core::dependency::DependencyConfig::new(self.shared.sink.clone())
            .propagation(self.shared.settings.propagation.clone());
        #[cfg(feature = "opentelemetry")]
        if self.otel.is_some() {
            return config.id_source(tracelink_otel::OtelIdSource::new());
        }
        config
    }

    /// The `tracing` layer: events at INFO and above inside an operation become Trace (or
    /// Exception) items, spans at INFO and above `InProc` dependencies; the internals of
    /// hyper, h2, reqwest, tower, tokio and rustls never become items unless asked for
    /// (`TracelinkLayer::include_target`).
    ///
    /// ```no_run
    /// use tracing_subscriber::prelude::*;
    /// # fn main() -> Result<(), tracelink::InitError> {
    /// let tracelink = tracelink::init()?;
    /// tracing_subscriber::registry().with(tracelink.tracing_layer()).init();
    /// # Ok(()) }
    /// ```
    ///
    /// With [`Builder::opentelemetry`], spans are OpenTelemetry's to report
    /// ([`TracelinkLayer::opentelemetry_ids`](tracelink_otel::TracelinkLayer::opentelemetry_ids)),
    /// and this layer records each event once.
    #[cfg(feature = "tracing")]
    pub fn tracing_layer(&self) -> tracelink_otel::TracelinkLayer {
        let layer = tracelink_otel::TracelinkLayer::new(self.shared.sink.clone());
        #[cfg(feature = "opentelemetry")]
        if self.otel.is_some() {
            return layer.opentelemetry_ids();
        }
        layer
    }

    /// `tracing-opentelemetry`'s layer for the tracer provider of [`Builder::opentelemetry`]
    /// (`None` without it, which adds nothing to a subscriber): `tracing` spans become
    /// OpenTelemetry spans in the same tree as tracelink's items. Add it to the subscriber
    /// with [`Tracelink::tracing_layer`], in either order.
    #[cfg(feature = "opentelemetry")]
    pub fn opentelemetry_layer<S>(
        &self,
    ) -> Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        let otel = self.otel.as_ref()?;
        Some(tracing_opentelemetry::layer().with_tracer(otel.tracer()))
    }

    /// The OpenTelemetry meter provider of [`Builder::opentelemetry`](crate::Builder::opentelemetry)
    /// (`None` without it): its metrics (sums, gauges, histograms) are sent as `MetricData`
    /// items every metric interval, through
    /// [`TracelinkMetricExporter`](tracelink_otel::TracelinkMetricExporter), with the role and
    /// instance as their Resource. [`Builder::init`](crate::Builder::init) also installs it as
    /// OpenTelemetry's global meter provider.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use opentelemetry::metrics::MeterProvider as _;
    /// use tracelink::core::MemorySink;
    ///
    /// let sink = Arc::new(MemorySink::new());
    /// let tracelink = tracelink::builder().sink(sink.clone()).opentelemetry().init().unwrap();
    /// let meters = tracelink.meter_provider().unwrap();
    /// meters.meter("shop").u64_counter("orders.placed").build().add(1, &[]);
    /// meters.force_flush().unwrap();
    /// assert!(sink.items().iter().any(|i| matches!(&i.data,
    ///     tracelink::core::model::TelemetryData::Metric(m) if m.metrics[0].name == "orders.placed")));
    /// ```
    #[cfg(feature = "opentelemetry")]
    pub fn meter_provider(&self) -> Option<&opentelemetry_sdk::metrics::SdkMeterProvider> {
        self.otel.as_ref().map(|o| o.meter_provider())
    }

    /// The Live Metrics client, when it runs (feature `live-metrics`; see
    /// [`Builder::live_metrics`](crate::Builder::live_metrics)): whether someone watches, and
    /// where it sends.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), tracelink::InitError> {
    /// let tracelink = tracelink::init()?;
    /// if let Some(live) = tracelink.live_metrics() {
    ///     println!("live metrics to {}", live.status().endpoint);
    /// }
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "live-metrics")]
    pub fn live_metrics(&self) -> Option<tracelink_live::LiveMetrics> {
        self.export.as_ref()?.live()
    }

    /// The exporter's counters (items enqueued, sent, retried, spooled, dropped by reason).
    /// `None` when items go to a sink given to the setup.
    #[cfg(feature = "export")]
    pub fn stats(&self) -> Option<tracelink_export::Stats> {
        self.export.as_ref().map(|e| e.stats())
    }

    /// Lets the standard metrics count every item sent so far: the items waiting for the
    /// exporter's thread reach them now.
    fn drain_for_metrics(&self) {
        #[cfg(feature = "export")]
        if let Some(e) = &self.export {
            e.drain();
        }
    }

    /// The counters of the pre-aggregated metrics of [`Client::metric`]: series held, values
    /// over the caps, invalid values.
    ///
    /// ```
    /// # let tracelink = tracelink::builder().sink(tracelink::core::MemorySink::new()).init().unwrap();
    /// tracelink.client().metric("m").track(f64::NAN);
    /// assert_eq!(tracelink.metric_stats().values_invalid, 1);
    /// ```
    pub fn metric_stats(&self) -> tracelink_core::metrics::MetricStats {
        self.shared.metrics.stats()
    }

    /// The standard metrics (unless [`Builder::no_standard_metrics`]): their counters,
    /// and the items counted and then dropped because sampling had dropped their operation
    /// (`StandardMetrics::sampled_out`).
    pub fn standard_metrics(&self) -> Option<Arc<tracelink_core::metrics::StandardMetrics>> {
        self.metrics.standard().cloned()
    }

    /// Sends everything queued now and waits for the answers (with
    /// [`Builder::opentelemetry`], the spans that ended first). The pre-aggregated metrics
    /// go too, with what they gathered so far; their next interval starts now.
    pub async fn flush(&self) {
        self.drain_for_metrics();
        self.metrics.flush();
        #[cfg(feature = "opentelemetry")]
        if let Some(otel) = &self.otel {
            otel.flush();
        }
        #[cfg(feature = "export")]
        if let Some(e) = &self.export {
            e.flush().await;
        }
    }

    /// Sends what is queued within the shutdown timeout, then stops; what could not be sent
    /// is spooled. The free functions do nothing afterwards.
    pub async fn shutdown(self) {
        client::uninstall(&self.shared);
        self.drain_for_metrics();
        self.metrics.stop();
        #[cfg(feature = "opentelemetry")]
        if let Some(otel) = &self.otel {
            otel.shutdown();
        }
        #[cfg(feature = "export")]
        {
            let mut this = self;
            if let Some(e) = this.export.take() {
                e.shutdown(this.shutdown_timeout).await;
            }
        }
    }
}

impl Drop for Tracelink {
    fn drop(&mut self) {
        client::uninstall(&self.shared);
        self.drain_for_metrics();
        self.metrics.stop();
        #[cfg(feature = "opentelemetry")]
        if let Some(otel) = self.otel.take() {
            otel.shutdown();
        }
        #[cfg(feature = "export")]
        if let Some(e) = self.export.take() {
            e.shutdown_blocking(self.shutdown_timeout);
        }
    }
}

/// Starts tracelink configured from the environment alone: `builder().init()`.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), tracelink::InitError> {
/// let tracelink = tracelink::init()?; // APPLICATIONINSIGHTS_CONNECTION_STRING, OTEL_SERVICE_NAME, ...
/// // ... serve with tracelink.layer(), call out with tracelink.reqwest_client(..) ...
/// tracelink.shutdown().await;
/// # Ok(()) }
/// ```
pub fn init() -> Result<Tracelink, InitError> {
    crate::builder().init()
}

impl Builder {
    /// Starts tracelink: the exporter on a thread of its own (it never runs on the
    /// application's runtime, and `init` needs none), and the process-wide client used by the
    /// free functions ([`track_event`](crate::track_event), ...) and the panic hook.
    pub fn init(self) -> Result<Tracelink, InitError> {
        let settings = self.resolve()?;
        Tracelink::start(self, settings, true)
    }

    /// Like [`Builder::init`], without the process-wide client and panic hook.
    #[cfg(test)]
    pub(crate) fn init_local(self) -> Result<Tracelink, InitError> {
        let settings = self.resolve()?;
        Tracelink::start(self, settings, false)
    }
}
