//! The client layer for tower HTTP clients (hyper-util's `Client`, or any
//! `tower::Service<http::Request<B>>`): inject the correlation headers of a new dependency and
//! record one Dependency item per call (SPEC 3.5, 4.3, 5.3, 5.5, 5.6, 6.2).
//!
//! The behaviour is [`tracelink_core::dependency`]'s, shared with `tracelink-reqwest`: the parent
//! is a [`tracelink_core::Correlation`] in the request's extensions, else the current context (the
//! server layer makes the request's current), else a new operation. Per-request options are
//! extensions: [`DependencyName`], [`SkipPropagation`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tracelink_core::MemorySink;
//! use tracelink_tower::client::DependencyLayer;
//!
//! let sink = Arc::new(MemorySink::new());
//! // A stand-in for hyper-util's client: answers 200 and shows what it received.
//! let transport = service_fn(|req: http::Request<()>| async move {
//!     assert!(req.headers().contains_key("traceparent"));
//!     Ok::<_, std::io::Error>(http::Response::new(()))
//! });
//! let client = ServiceBuilder::new().layer(DependencyLayer::new(sink.clone())).service(transport);
//! let req = http::Request::get("http://inventory:8080/items/7").body(()).unwrap();
//! client.oneshot(req).await.unwrap();
//! assert_eq!(sink.len(), 1);
//! # }
//! ```
//!
//! ## Errors and timeouts
//!
//! The service's error is a [`BoxError`](crate::BoxError), as with tower's own middleware, so
//! it wraps services whose error is any `Into<BoxError>`: hyper-util's client, or tower's
//! `Timeout` (whose error already is a `BoxError`). A failed call is recorded with
//! `resultCode` `Timeout`, `Connect` or `Faulted` ([`CallError`]) as [`ClassifyError`]
//! decides; [`DefaultClassifyError`] goes by the types in the error's `source()` chain.
//!
//! Put timeouts *inside* this layer (`ServiceBuilder::new().layer(DependencyLayer::new(sink))
//! .layer(TimeoutLayer::new(d))`): the layer then sees the timeout's error. A call whose future
//! is dropped, by a timeout outside the layer or by a caller who gave up, is recorded as
//! `Canceled`.
//!
//! The duration ends when the response head arrives, not when its body has been read.

mod classify;
mod future;
mod layer;
mod service;

pub use classify::{ClassifyError, DefaultClassifyError};
pub use future::ResponseFuture;
pub use layer::DependencyLayer;
pub use service::DependencyService;
pub use tracelink_core::dependency::{
    CallError, DependencyConfig, DependencyName, SkipPropagation,
};
