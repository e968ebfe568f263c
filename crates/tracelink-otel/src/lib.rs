//! # tracelink-otel
//!
//! Brings users of `tracing` and OpenTelemetry into the same Application Insights tree as the
//! plain middleware users, with their own spans and logs in it.
//!
//! - [`TracelinkLayer`]: a `tracing_subscriber::Layer` that turns `tracing` events inside an
//!   operation into Trace and Exception items, and spans into `InProc` dependencies whose
//!   children are the calls made inside them.
//! - [`TracelinkSpanExporter`]: an OpenTelemetry `SpanExporter` that maps spans (also those
//!   `tracing-opentelemetry` makes from `tracing` spans) onto Requests, Dependencies, Traces and
//!   Exceptions, into the same `TelemetrySink` as the middleware; with [`OperationNames`]
//!   around its span processor, spans that end before their operation's server span get its
//!   name too.
//! - [`OtelIdSource`]: for `tracing-opentelemetry` users, makes each request id the
//!   OpenTelemetry span id of the request's span (`CorrelationLayer::id_source` in
//!   `tracelink-tower` with its `tracing` feature), so spans made with the OpenTelemetry API in
//!   a handler (sqlx, tonic, ...) are children of the Request item: one id tree.
//! - [`LegacyPropagator`]: `Request-Id`, `Correlation-Context` and `Request-Context` as an
//!   OpenTelemetry `TextMapPropagator`, composable with `TraceContextPropagator`.
//!
//! This release follows OpenTelemetry 0.33 (`opentelemetry`, `opentelemetry_sdk`).

mod exporter;
mod id_source;
mod layer;
pub mod operations;
mod propagator;

pub use exporter::{REPORTED_ATTRIBUTE, TracelinkSpanExporter, map_span};
pub use id_source::OtelIdSource;
pub use layer::TracelinkLayer;
pub use operations::{DEFAULT_MAX_HOLD, MAX_HELD, OperationNames};
pub use propagator::{LegacyParent, LegacyPropagator, SourceAppId};
