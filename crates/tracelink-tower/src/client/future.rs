//! [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use tracelink_core::dependency::OutgoingCall;

use super::classify::ClassifyError;
use crate::BoxError;

pin_project! {
    /// The response future of [`DependencyService`](crate::client::DependencyService): the
    /// inner future, then the Dependency item, recorded when the response head or an error
    /// arrives, or as `Canceled` when this future is dropped first.
    pub struct ResponseFuture<F, K> {
        #[pin]
        inner: F,
        call: Option<OutgoingCall>,
        classify: K,
    }
}

impl<F, K> ResponseFuture<F, K> {
    pub(super) fn new(inner: F, call: OutgoingCall, classify: K) -> Self {
        Self {
            inner,
            call: Some(call),
            classify,
        }
    }
}

impl<F, K> fmt::Debug for ResponseFuture<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResB, E, K> Future for ResponseFuture<F, K>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: Into<BoxError>,
    K: ClassifyError,
{
    type Output = Result<Response<ResB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        if let Some(call) = this.call.take() {
            match &result {
                Ok(res) => call.finish_response(res.status().as_u16(), res.headers()),
                Err(e) => {
                    let e: &(dyn std::error::Error + 'static) = &**e;
                    call.finish_error(this.classify.classify(e), &e.to_string());
                }
            }
        }
        Poll::Ready(result)
    }
}
