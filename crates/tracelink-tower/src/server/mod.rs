//! The server layer: extract the caller's context, assign the request id, make the context
//! current for the handler, answer `Request-Context`, and record one Request item.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use tower::ServiceExt;
//! use tracelink_core::MemorySink;
//! use tracelink_tower::server::CorrelationLayer;
//!
//! let sink = Arc::new(MemorySink::new());
//! let app = Router::new()
//!     .route("/orders/{id}", get(|| async { "ok" }))
//!     .layer(CorrelationLayer::new(sink.clone()).cloud_role("orders-api"));
//!
//! let req = http::Request::get("/orders/7")
//!     .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! let _ = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
//!
//! let item = &sink.items()[0];
//! assert_eq!(item.operation_id(), Some("0af7651916cd43dd8448eb211c80319c"));
//! assert_eq!(item.operation_parent_id(), Some("b7ad6b7169203331"));
//! assert_eq!(item.tags.get("ai.cloud.role"), Some("orders-api"));
//! # }
//! ```
//!
//! ## Ordering
//!
//! Apply it with axum's `Router::layer` so that the route template (`MatchedPath`) is known
//! when the request starts (SPEC 6.1); outside the router the name falls back to the path.
//! Put `CatchPanic` on either side: a panic is recorded as `success=false`,
//! `responseCode=500` either way. If an outer layer already put a [`tracelink_core::Correlation`]
//! in the request extensions, this layer passes the request through and records nothing, so
//! two stacked layers never report a request twice (DESIGN invariant 2).
//!
//! With an OpenTelemetry server middleware (axum-tracing-opentelemetry's `OtelAxumLayer`)
//! and an id source ([`CorrelationLayer::id_source`]), put that middleware outside this
//! layer: this layer then adopts its span, and the request is one Request item whose id is
//! the span's. Inside this layer its span is reported under the Request (see
//! `tracelink-otel`).
//!
//! An unsampled request (SPEC 8.5) is propagated and made current like any other, but nothing
//! is recorded for it and it is not named: its `Correlation::operation_name()` is `None`.
//!
//! ## When the item is recorded
//!
//! Exactly once per sampled request: when the response body ends (its duration covers the
//! whole body), when the body fails (`success=false`, property `error`), or when the body is
//! dropped unfinished (the client went away: property `aborted=true`). A future dropped
//! before the response head exists records `responseCode=499` (client closed request),
//! `success=false`. An inner service error records `500`, `success=false`.
//!
//! ## What the item holds
//!
//! - name: `METHOD <route template>` from axum's `MatchedPath`, else `METHOD <path>`
//!   ([`DefaultMakeName`]; replace it with [`CorrelationLayer::make_name`]);
//! - url: the absolute URL, user-info removed and sensitive query values redacted
//!   ([`CorrelationLayer::redaction`]); its scheme is the request URI's, else the one a
//!   trusted proxy forwarded, else [`CorrelationLayer::default_scheme`];
//! - success: `status < 400` ([`DefaultSuccess`]; replace it with
//!   [`CorrelationLayer::classify`]);
//! - `ai.location.ip`: the client address (see [`ClientAddr`] and [`TrustedProxies`]);
//! - `ai.user.*`, `ai.session.id`: from the browser SDK's cookies, which the layer can also
//!   issue ([`CorrelationLayer::track_users`]);
//! - whatever the [`CorrelationLayer::on_request`] and [`CorrelationLayer::on_response`]
//!   hooks add.
//!
//! ## Response headers
//!
//! With an own appId ([`CorrelationLayer::propagation`]) the response answers
//! `Request-Context: appId=cid-v1:<own>` and exposes it to browsers in
//! `Access-Control-Expose-Headers` (SPEC 5.4). [`CorrelationLayer::traceresponse`] adds the
//! W3C `traceresponse` header; [`CorrelationLayer::track_users`] adds `Set-Cookie`. A header
//! the handler already set is never overwritten.

mod body;
mod client_addr;
mod config;
mod future;
mod headers;
mod layer;
mod recorder;
mod service;
mod span;
mod strategy;
mod url;
mod user_tracking;

pub use body::ResponseBody;
pub use client_addr::{ClientAddr, InvalidTrustedProxies, TrustedProxies};
pub use future::ResponseFuture;
pub use layer::CorrelationLayer;
pub use service::CorrelationService;
pub use strategy::{ClassifySuccess, DefaultMakeName, DefaultSuccess, MakeName};
pub use url::Scheme;
