//! The OpenTelemetry side of the setup ([`Builder::opentelemetry`](crate::Builder::opentelemetry)).

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::global;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use tracelink_core::{Propagation, PropagationMode, TelemetrySink};
use tracelink_otel::{LegacyPropagator, TracelinkMetricExporter, TracelinkSpanExporter};

use crate::settings::Settings;

/// The tracer provider whose spans go to the setup's sink.
#[derive(Debug)]
pub(crate) struct Otel {
    provider: SdkTracerProvider,
    meters: SdkMeterProvider,
}

impl Otel {
    /// A provider exporting into `sink` through a batch span processor (its own thread)
    /// wrapped in `OperationNames`, with the setup's role, instance and version as its
    /// Resource. `global`: also OpenTelemetry's global tracer provider and propagator.
    pub(crate) fn start(
        sink: Arc<dyn TelemetrySink>,
        settings: &Settings,
        interval: std::time::Duration,
        global: bool,
    ) -> Self {
        let reader = PeriodicReader::builder(TracelinkMetricExporter::new(sink.clone()))
            .with_interval(interval)
            .build();
        let exporter = TracelinkSpanExporter::new(sink);
        let batch = BatchSpanProcessor::builder(exporter.clone()).build();
        let mut attributes = vec![KeyValue::new(
            "service.instance.id",
            settings.instance.to_string(),
        )];
        if let Some(version) = &settings.version {
            attributes.push(KeyValue::new("service.version", version.to_string()));
        }
        let resource = Resource::builder()
            .with_service_name(settings.role.to_string())
            .with_attributes(attributes)
            .build();
        let meters = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(reader)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(exporter.operation_names(batch))
            .with_resource(resource)
            .build();
        if global {
            global::set_tracer_provider(provider.clone());
            global::set_meter_provider(meters.clone());
            global::set_text_map_propagator(propagator(&settings.propagation));
        }
        Self { provider, meters }
    }

    /// The meter provider whose metrics go to the setup's sink.
    pub(crate) fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meters
    }

    /// A tracer of the provider, for `tracing-opentelemetry`'s layer.
    pub(crate) fn tracer(&self) -> SdkTracer {
        self.provider.tracer("tracelink")
    }

    /// Exports the spans that ended.
    pub(crate) fn flush(&self) {
        let _ = self.provider.force_flush();
        let _ = self.meters.force_flush();
    }

    /// Exports the spans that ended, and stops.
    pub(crate) fn shutdown(&self) {
        let _ = self.provider.shutdown();
        let _ = self.meters.shutdown();
    }
}

/// The global propagator: `traceparent` and `tracestate`, and except in W3C-only mode the
/// legacy headers, with the own appId in `Request-Context` (SPEC 3.5, 5.3).
fn propagator(propagation: &Propagation) -> TextMapCompositePropagator {
    let mut all: Vec<Box<dyn TextMapPropagator + Send + Sync>> =
        vec![Box::new(TraceContextPropagator::new())];
    if propagation.propagation_mode() != PropagationMode::W3c {
        all.push(Box::new(match propagation.own_app_id() {
            Some(app) => LegacyPropagator::from_app_id(app.clone()),
            None => LegacyPropagator::new(),
        }));
    }
    TextMapCompositePropagator::new(all)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tracelink_core::MemorySink;
    use tracelink_core::model::{TelemetryData, TelemetryKind};
    use tracing_subscriber::prelude::*;

    /// One call: spans made with `tracing` go through the provider to the sink with the
    /// setup's role, logs come once, from the `tracing` layer.
    #[tokio::test]
    async fn spans_and_logs_reach_the_sink_once_with_the_role() {
        let sink = Arc::new(MemorySink::new());
        let tracelink = crate::Builder::from_vars([("OTEL_SERVICE_NAME", "orders")])
            .role_instance("orders-1")
            .application_version("2.0.1")
            .sink(sink.clone())
            .opentelemetry()
            .init_local()
            .unwrap();
        let subscriber = tracing_subscriber::registry()
            .with(tracelink.opentelemetry_layer())
            .with(tracelink.tracing_layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("nightly job").in_scope(|| tracing::info!("step done"));
        });
        tracelink.flush().await;
        let items = sink.take();
        let job = items
            .iter()
            .find(|i| matches!(&i.data, TelemetryData::Dependency(d) if d.name == "nightly job"))
            .unwrap_or_else(|| panic!("{items:#?}"));
        assert_eq!(job.tags.get("ai.cloud.role"), Some("orders"));
        assert_eq!(job.tags.get("ai.cloud.roleInstance"), Some("orders-1"));
        assert_eq!(job.tags.get("ai.application.ver"), Some("2.0.1"));
        let logs: Vec<_> = items
            .iter()
            .filter(|i| i.kind() == TelemetryKind::Trace)
            .collect();
        assert_eq!(logs.len(), 1, "{items:#?}");
        assert_eq!(logs[0].operation_parent_id(), job.id());
        tracelink.shutdown().await;
    }

    #[test]
    fn without_it_there_is_no_layer() {
        let tracelink = crate::Builder::from_vars([("OTEL_SERVICE_NAME", "orders")])
            .sink(MemorySink::new())
            .init_local()
            .unwrap();
        let layer = tracelink.opentelemetry_layer::<tracing_subscriber::Registry>();
        assert!(layer.is_none());
    }
}
