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
//!
//! Features (none by default; each is additive):
//! - `axum`: the [`Correlation`] extractor, route-template names from `MatchedPath`, and
//!   client addresses from `ConnectInfo`.
//! - `tracing`: `CorrelationLayer::id_source`, a `tracing` span per request whose
//!   OpenTelemetry span id becomes the request id (with `tracelink-otel`'s `OtelIdSource`).
//! - `timeout`: the client layer's [`DefaultClassifyError`](client::DefaultClassifyError)
//!   recognises tower's `Timeout` middleware's error (`tower::timeout::error::Elapsed`) as a
//!   timeout. It adds a dependency on `tower` with only its `timeout` feature, which is why it
//!   is not on by default.
//!
//! Builders follow tower-http's naming: a method per setting, named after the setting, with no
//! `with_`/`set_` prefix; a setting that is off by default is turned on by a method without
//! arguments (`traceresponse()`, `track_users()`); a choice between named values takes that
//! value (`default_scheme(Scheme::Https)`); text that is kept (`cloud_role`,
//! `role_instance`) is taken as `impl Into<Arc<str>>`; a strategy (`make_name`, `classify`,
//! `classify_error`) takes a closure or a type of your own and changes the layer's type.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod client;
#[cfg(feature = "axum")]
mod extractor;
pub mod server;

/// A type-erased error, as tower's middleware return (`tower::BoxError`): the error of the
/// client layer's service.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[cfg(feature = "axum")]
pub use extractor::{Correlation, MissingCorrelation};
