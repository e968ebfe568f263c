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
pub mod operations;
#[cfg(feature = "opentelemetry")]
mod propagator;

#[cfg(feature = "opentelemetry")]
pub use exporter::{REPORTED_ATTRIBUTE, TracelinkSpanExporter, map_span};
#[cfg(feature = "opentelemetry")]
pub use id_source::OtelIdSource;
pub use layer::{DEFAULT_EXCLUDED_TARGETS, TracelinkLayer};
#[cfg(feature = "opentelemetry")]
pub use operations::{DEFAULT_MAX_HOLD, MAX_HELD, OperationNames};
#[cfg(feature = "opentelemetry")]
pub use propagator::{LegacyParent, LegacyPropagator, SourceAppId};
