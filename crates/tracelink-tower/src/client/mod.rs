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
//! Errors are classified from the inner service's error chain ([`CallError::classify`]);
//! put timeouts inside this layer to see them as `Timeout`, since a future dropped by an
//! outer timeout is recorded as `Canceled`. The duration ends when the response head arrives.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracelink_core::TelemetrySink;
use tracelink_core::dependency::OutgoingCall;
pub use tracelink_core::dependency::{CallError, DependencyConfig, DependencyName, SkipPropagation};

/// The client layer; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct DependencyLayer {
    config: Arc<DependencyConfig>,
}

impl DependencyLayer {
    /// A layer recording into `sink` with the default configuration.
    pub fn new(sink: impl TelemetrySink) -> Self {
        Self::with_config(DependencyConfig::new(sink))
    }

    /// A layer with a full configuration (propagation mode, own appId, excluded hosts,
    /// redaction, cloud role).
    pub fn with_config(config: DependencyConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for DependencyLayer {
    type Service = DependencyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DependencyService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The client middleware made by [`DependencyLayer`].
#[derive(Clone, Debug)]
pub struct DependencyService<S> {
    inner: S,
    config: Arc<DependencyConfig>,
}

impl<S> DependencyService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for DependencyService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: std::error::Error + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let url = req.uri().to_string();
        let (parts, body) = req.into_parts();
        let mut parts = parts;
        let call = OutgoingCall::start(
            &self.config,
            &parts.method,
            &url,
            &mut parts.headers,
            Some(&parts.extensions),
        );
        req = Request::from_parts(parts, body);
        ResponseFuture {
            inner: self.inner.call(req),
            call: Some(call),
        }
    }
}

pin_project! {
    /// The response future of [`DependencyService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        call: Option<OutgoingCall>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: std::error::Error + 'static,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(call) = this.call.take() {
            match &result {
                Ok(res) => call.finish_response(res.status().as_u16(), res.headers()),
                Err(e) => call.finish_error(CallError::classify(e), &e.to_string()),
            }
        }
        Poll::Ready(result)
    }
}
