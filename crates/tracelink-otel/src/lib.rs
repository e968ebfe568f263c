//! # tracelink-otel
//!
//! Brings users of `tracing` and OpenTelemetry into the same Application Insights tree as the
//! plain middleware users, with their own spans and logs in it: one id tree across tracelink's
//! middleware and OpenTelemetry's spans, each item reported once, and telemetry that log
//! filters do not change.
//!
//! - [`TracelinkLayer`]: a `tracing_subscriber` layer that turns `tracing` events inside an
//!   operation into Trace and Exception items, and spans into `InProc` dependencies whose
//!   children are the calls made inside them.
//! - [`TracelinkSpanExporter`]: an OpenTelemetry `SpanExporter` that maps spans (also those
//!   `tracing-opentelemetry` makes from `tracing` spans) onto Requests, Dependencies, Traces and
//!   Exceptions, into the same `TelemetrySink` as the middleware; with [`OperationNames`]
//!   around its span processor, every span gets its operation's name and user context.
//! - [`OtelIdSource`]: makes tracelink's ids OpenTelemetry's: each request id is the
//!   OpenTelemetry span id of the request's span (or of the server span an OpenTelemetry
//!   middleware made for it), spans made with the OpenTelemetry API in a handler (sqlx, tonic,
//!   ...) are children of the Request item, and calls made inside such a span are its
//!   children.
//! - [`LegacyPropagator`]: `Request-Id`, `Correlation-Context` and `Request-Context` as an
//!   OpenTelemetry `TextMapPropagator`, composable with `TraceContextPropagator`.
//!
//! This release follows OpenTelemetry 0.33 (`opentelemetry`, `opentelemetry_sdk`) and
//! `tracing-opentelemetry` 0.34.
//!
//! ## Setup for OpenTelemetry users
//!
//! A service with an OpenTelemetry pipeline (a tracer provider, `tracing-opentelemetry`,
//! axum-tracing-opentelemetry's `OtelAxumLayer`) adds tracelink like this. The `tracelink`
//! facade does all of it in one call with its `opentelemetry` feature
//! (`tracelink::builder().opentelemetry()`); `examples/otel` in the repository runs this
//! setup.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use axum_tracing_opentelemetry::middleware::OtelAxumLayer;
//! use opentelemetry::global;
//! use opentelemetry::propagation::TextMapCompositePropagator;
//! use opentelemetry::trace::TracerProvider as _;
//! use opentelemetry_sdk::Resource;
//! use opentelemetry_sdk::propagation::TraceContextPropagator;
//! use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
//! use tracelink_core::dependency::DependencyConfig;
//! use tracelink_otel::{LegacyPropagator, OtelIdSource, TracelinkLayer, TracelinkSpanExporter};
//! use tracelink_reqwest::DependencyMiddleware;
//! use tracelink_tower::server::CorrelationLayer;
//! use tracing_subscriber::prelude::*;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Where items go: `tracelink::init()?.sink()`, or tracelink-export's exporter.
//!     let sink = std::sync::Arc::new(tracelink_core::MemorySink::new());
//!
//!     // 1. The tracer provider. Spans go to tracelink's exporter through a batch span
//!     //    processor wrapped in `OperationNames`; the Resource names the role.
//!     let exporter = TracelinkSpanExporter::new(sink.clone());
//!     let batch = BatchSpanProcessor::builder(exporter.clone()).build();
//!     let provider = SdkTracerProvider::builder()
//!         .with_span_processor(exporter.operation_names(batch))
//!         .with_resource(Resource::builder().with_service_name("orders").build())
//!         .build();
//!     // Libraries that call `global::tracer`, and OtelAxumLayer's extraction, use the
//!     // globals.
//!     global::set_tracer_provider(provider.clone());
//!     global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
//!         Box::new(TraceContextPropagator::new()),
//!         Box::new(LegacyPropagator::new()),
//!     ]));
//!
//!     // 2. The subscriber: OpenTelemetry reports the spans, TracelinkLayer the logs.
//!     tracing_subscriber::registry()
//!         .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("orders")))
//!         .with(TracelinkLayer::new(sink.clone()).opentelemetry_ids())
//!         .init();
//!
//!     // 3. The layers: the server layer and the client middleware share OpenTelemetry's
//!     //    ids. OtelAxumLayer goes outside: the server layer adopts its span.
//!     let client = DependencyConfig::new(sink.clone()).id_source(OtelIdSource::new());
//!     let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!         .with(DependencyMiddleware::from_config(client))
//!         .build();
//!     let app = Router::new()
//!         .route("/", get(move || async move {
//!             tracing::info!("calling the backend"); // one Trace item
//!             http.get("http://127.0.0.1:9000/").send().await.map(|_| "ok").unwrap_or("down")
//!         }))
//!         .layer(CorrelationLayer::new(sink.clone()).id_source(OtelIdSource::new()))
//!         .layer(OtelAxumLayer::default());
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     axum::serve(listener, app).await?;
//!
//!     // Sends the spans still in the batch processor.
//!     provider.shutdown()?;
//!     Ok(())
//! }
//! ```
//!
//! Which span processor: a `BatchSpanProcessor` (its own thread, no runtime needed) keeps the
//! mapping off the request path; a `SimpleSpanProcessor` exports each span as it ends, which
//! suits tests. Wrap either in [`OperationNames`]
//! ([`TracelinkSpanExporter::operation_names`]) and register only the wrapper.
//!
//! OtelAxumLayer makes its span at `TRACE` under the target `otel::tracing`: a filter that
//! hides it (`RUST_LOG=info`) leaves the request to the server layer, which then works as
//! without it. A filter changes no Request, Dependency or correlation header either way.
//!
//! ## Supported combinations
//!
//! | setup | spans | logs | Request |
//! |---|---|---|---|
//! | [`TracelinkLayer`] without OpenTelemetry | `InProc` items of the layer | the layer | the server layer |
//! | the setup above: `tracing-opentelemetry` + [`TracelinkSpanExporter`] + [`TracelinkLayer::opentelemetry_ids`] + [`OtelIdSource`] on the server layer and the client middleware | OpenTelemetry, through the exporter | the layer, once each | the server layer, under its span's OpenTelemetry id |
//! | the above with an OpenTelemetry server middleware (`OtelAxumLayer`) outside the server layer | same | same | the server layer, under the middleware's span (adopted) |
//! | the above with that middleware inside the server layer | same, the middleware's span as an `InProc` dependency under the Request | same | the server layer |
//! | [`TracelinkSpanExporter`] without [`TracelinkLayer`] | OpenTelemetry | OpenTelemetry, with [`TracelinkSpanExporter::tracing_events`] | the exporter (server spans) |
//!
//! Anything else reports some items twice or in two trees: `TracelinkLayer` without
//! `opentelemetry_ids` next to `tracing-opentelemetry` (spans twice), `tracing_events` next to
//! `TracelinkLayer` (logs twice), or an OpenTelemetry server middleware exporting to
//! `TracelinkSpanExporter` next to a server layer without `OtelIdSource` (two Requests).
//!
//! ## Features
//!
//! - `opentelemetry` (default): everything OpenTelemetry ([`TracelinkSpanExporter`],
//!   [`OperationNames`], [`OtelIdSource`], [`LegacyPropagator`],
//!   [`TracelinkLayer::opentelemetry_ids`]). Without it the crate is [`TracelinkLayer`] alone
//!   and depends on neither `opentelemetry_sdk` nor `tracing-opentelemetry`.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "opentelemetry")]
mod exporter;
#[cfg(feature = "opentelemetry")]
mod id_source;
mod layer;
#[cfg(feature = "opentelemetry")]
mod mapping;
#[cfg(feature = "opentelemetry")]
mod metrics;
#[cfg(feature = "opentelemetry")]
mod operations;
#[cfg(feature = "opentelemetry")]
mod propagator;

#[cfg(feature = "opentelemetry")]
pub use exporter::TracelinkSpanExporter;
#[cfg(feature = "opentelemetry")]
pub use id_source::OtelIdSource;
pub use layer::{DEFAULT_EXCLUDED_TARGETS, TracelinkLayer};
#[cfg(feature = "opentelemetry")]
pub use mapping::{PARENT_ATTRIBUTE, REPORTED_ATTRIBUTE, map_span};
#[cfg(feature = "opentelemetry")]
pub use metrics::TracelinkMetricExporter;
#[cfg(feature = "opentelemetry")]
pub use operations::{DEFAULT_MAX_HOLD, MAX_HELD, OperationNames};
#[cfg(feature = "opentelemetry")]
pub use propagator::{LegacyParent, LegacyPropagator, SourceAppId};
