//! [`TracelinkSpanExporter`].

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};
use tracelink_core::TelemetrySink;
use tracelink_core::model::Telemetry;

use crate::mapping::map_span_with;
use crate::operations::{OperationNames, Shared, lock, trace_of};

/// An OpenTelemetry [`SpanExporter`] that maps spans onto the Application Insights data
/// model and sends the items into a tracelink [`TelemetrySink`] (the exporter channel of
/// `tracelink-export`, or a `MemorySink` in tests), next to the middleware's.
///
/// | span kind | item |
/// |---|---|
/// | Server, Consumer | Request |
/// | Server started inside a request tracelink handles | Dependency of type `InProc` under the Request (one Request per request) |
/// | Client, Producer | Dependency (`Http` for HTTP, else the `db.system` / `messaging.system` / `rpc.system`) |
/// | Internal | Dependency of type `InProc` |
/// | event `exception` | Exception (`exception.type`, `exception.message`, `exception.stacktrace`) |
/// | other events | Trace (severity from a `level` attribute) |
///
/// - HTTP attributes are read under their current and their old semantic-convention names
///   (`http.request.method`/`http.method`, `http.response.status_code`/`http.status_code`,
///   `url.full`/`http.url`, `url.scheme`/`http.scheme`, `server.address`/`net.host.name`/
///   `http.host`, `url.path`+`url.query`/`http.target`, ...).
/// - With an HTTP status, success is `status < 400` for requests and `0 < status < 400` for
///   dependencies (a 404 is a failed request), whatever the span status; without one, success
///   is a span status other than `Error`.
/// - URLs are always absolute: a missing or empty scheme is `http`, never `://host`.
/// - Attributes become properties, except those whose key starts with `ai.`, which are tags
///   (`ai.user.id`, ...), as in the Azure Monitor exporters.
/// - `ai.operation.name` is set on every item of an operation: the name of its server span,
///   remembered per trace (server spans of a batch are read first), or the name a span
///   carries from the request it started in. Spans that end before their server span is
///   exported (children, in an earlier batch) get it too when the span processor that feeds
///   the exporter is wrapped in [`OperationNames`]: they wait for it.
/// - The provider's Resource gives every item its role and version, as the Azure Monitor
///   exporters map them: `service.namespace` + `.` + `service.name` is `ai.cloud.role`
///   (not the SDK's default `unknown_service…`: a Kubernetes workload name then, if any),
///   `k8s.pod.name`, `service.instance.id` or `host.name` is `ai.cloud.roleInstance`, and
///   `service.version` is `ai.application.ver`.
/// - Spans with the attribute [`REPORTED_ATTRIBUTE`](crate::REPORTED_ATTRIBUTE) `= true`
///   were reported by tracelink's own layers (the request span of `CorrelationLayer`, or the
///   server span it adopted) and have no item of their own, so nothing is reported twice;
///   their events are mapped as those of any span.
/// - Span events that `tracing-opentelemetry` made from `tracing` events (they carry the
///   event's `level` and `target`) are skipped: [`TracelinkLayer`](crate::TracelinkLayer)
///   records each `tracing` event itself, inside spans and outside them, so each log is one
///   item. Without `TracelinkLayer`, map them here with
///   [`TracelinkSpanExporter::tracing_events`] (also those of the request's span); only
///   events inside a span reach OpenTelemetry then. Events added with the OpenTelemetry API
///   are always mapped.
/// - Field limits are applied when items are serialized (multi-byte text never panics).
///
/// The SDK decided the sampling of the spans it exports: their items are kept at 100 %.
#[derive(Clone)]
pub struct TracelinkSpanExporter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TracelinkSpanExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracelinkSpanExporter")
            .field("config", &self.shared.config())
            .finish_non_exhaustive()
    }
}

impl TracelinkSpanExporter {
    /// Sends the items of exported spans to `sink`.
    pub fn new(sink: impl TelemetrySink) -> Self {
        Self {
            shared: Arc::new(Shared::new(Arc::new(sink))),
        }
    }

    /// Wraps the span processor that feeds this exporter so that spans that end before their
    /// operation's server span get its name, and spans that start inside a request tracelink
    /// handles get its name and user context (see [`OperationNames`]); register what it
    /// returns instead of `processor`.
    ///
    /// ```
    /// use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor};
    /// use tracelink_core::MemorySink;
    /// use tracelink_otel::TracelinkSpanExporter;
    ///
    /// let exporter = TracelinkSpanExporter::new(MemorySink::new());
    /// let simple = SimpleSpanProcessor::new(exporter.clone());
    /// let provider = SdkTracerProvider::builder()
    ///     .with_span_processor(exporter.operation_names(simple))
    ///     .build();
    /// # let _ = provider.shutdown();
    /// ```
    pub fn operation_names<P: SpanProcessor>(&self, processor: P) -> OperationNames<P> {
        OperationNames::new(processor, Arc::clone(&self.shared))
    }

    /// How long a span may wait for its operation's name (default
    /// [`DEFAULT_MAX_HOLD`](crate::DEFAULT_MAX_HOLD)); after that it is sent without it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tracelink_core::MemorySink;
    /// use tracelink_otel::TracelinkSpanExporter;
    ///
    /// let exporter = TracelinkSpanExporter::new(MemorySink::new()).max_hold(Duration::from_secs(5));
    /// # let _ = exporter;
    /// ```
    pub fn max_hold(self, max_hold: Duration) -> Self {
        lock(&self.shared.ops).set_max_hold(max_hold);
        self
    }

    /// Also maps the span events `tracing-opentelemetry` makes from `tracing` events, for a
    /// setup without [`TracelinkLayer`](crate::TracelinkLayer). With it, leave this off:
    /// `TracelinkLayer` records those events, and each would be reported twice.
    ///
    /// ```
    /// use tracelink_core::MemorySink;
    /// use tracelink_otel::TracelinkSpanExporter;
    ///
    /// let exporter = TracelinkSpanExporter::new(MemorySink::new()).tracing_events();
    /// # let _ = exporter;
    /// ```
    pub fn tracing_events(self) -> Self {
        self.shared.configure(|c| c.tracing_events = true);
        self
    }

    /// The items of one span: its Request or Dependency, then its events.
    pub fn items(&self, span: &SpanData) -> Vec<Telemetry> {
        let name = lock(&self.shared.ops).name(trace_of(span));
        map_span_with(span, name, &self.shared.config())
    }
}

impl SpanExporter for TracelinkSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let ready = self.shared.ready(batch, false);
        self.shared.send(ready);
        Ok(())
    }

    /// Sends the spans held for their operation's name (with it when known).
    fn force_flush(&self) -> OTelSdkResult {
        let ready = self.shared.ready(Vec::new(), true);
        self.shared.send(ready);
        Ok(())
    }

    /// Sends the spans held for their operation's name (with it when known).
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.force_flush()
    }

    /// Role, instance and version of every item from now on (see the mapping above).
    fn set_resource(&mut self, resource: &Resource) {
        self.shared.configure(|c| c.set_resource(resource));
    }
}
