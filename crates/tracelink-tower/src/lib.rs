//! # tracelink-tower
//!
//! tower middleware that makes an axum or hyper service a first-class member of an
//! Application Insights estate's distributed traces.
//!
//! - [`server::CorrelationLayer`]: for every incoming request, extract the caller's context
//!   (SPEC 2), assign the request id, put the [`tracelink_core::Correlation`] in request extensions
//!   and make it current while the handler runs, answer `Request-Context` (SPEC 5.4), and
//!   record exactly one Request item (SPEC 6.1) into a [`tracelink_core::TelemetrySink`].
//! - [`client::DependencyLayer`]: for tower HTTP clients (hyper-util's `Client`), inject the
//!   headers of a new dependency and record one Dependency item per call (SPEC 6.2).
//! - With feature `axum`: the [`Correlation`] extractor, route-template names from
//!   `MatchedPath`, and client addresses from `ConnectInfo`.
//! - With feature `tracing`: `CorrelationLayer::id_source`, a `tracing` span per request whose
//!   OpenTelemetry span id becomes the request id (with `tracelink-otel`'s `OtelIdSource`).
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use tracelink_core::MemorySink;
//! use tracelink_tower::server::CorrelationLayer;
//!
//! let sink = Arc::new(MemorySink::new());
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "ok" }))
//!     .layer(CorrelationLayer::new(sink.clone()).cloud_role("orders-api"));
//! ```

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod client;
#[cfg(feature = "axum")]
mod extractor;
pub mod server;

#[cfg(feature = "axum")]
pub use extractor::{Correlation, MissingCorrelation};
