//! [`DependencyService`].

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;
use tracelink_core::dependency::{DependencyConfig, OutgoingCall};

use super::classify::{ClassifyError, DefaultClassifyError};
use super::future::ResponseFuture;
use crate::BoxError;

/// The client middleware made by [`DependencyLayer`](crate::client::DependencyLayer).
///
/// Its error is a [`BoxError`] holding the inner service's error unchanged (downcast it to
/// the inner service's error type).
#[derive(Clone, Debug)]
pub struct DependencyService<S, K = DefaultClassifyError> {
    inner: S,
    config: Arc<DependencyConfig>,
    classify: K,
}

impl<S, K> DependencyService<S, K> {
    pub(super) fn new(inner: S, config: Arc<DependencyConfig>, classify: K) -> Self {
        Self {
            inner,
            config,
            classify,
        }
    }

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

impl<S, ReqB, ResB, K> Service<Request<ReqB>> for DependencyService<S, K>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    K: ClassifyError + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let url = req.uri().to_string();
        let (mut parts, body) = req.into_parts();
        let call = OutgoingCall::start(
            &self.config,
            &parts.method,
            &url,
            &mut parts.headers,
            Some(&parts.extensions),
        );
        let inner = self.inner.call(Request::from_parts(parts, body));
        ResponseFuture::new(inner, call, self.classify.clone())
    }
}
