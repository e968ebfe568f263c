//! [`ResponseBody`]: the response body that sends the Request item when it ends.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::recorder::Report;
use super::span::RequestSpan;

pin_project! {
    /// The response body of [`CorrelationService`](crate::server::CorrelationService): the
    /// inner body's frames, unchanged. The Request item is sent when the body ends, fails
    /// (`success=false`, property `error` with the error's text) or is dropped unfinished
    /// (property `aborted=true`), so its duration covers the whole body.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        recorder: Option<Report>,
        // Ends with the body, like the Request item.
        span: RequestSpan,
    }
}

impl<B: Body> ResponseBody<B> {
    pub(super) fn new(inner: B, mut recorder: Option<Report>, span: RequestSpan) -> Self {
        if inner.is_end_stream()
            && let Some(mut rec) = recorder.take()
        {
            // An empty body ends with the head.
            rec.send();
        }
        Self {
            inner,
            recorder,
            span,
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl<B: Body> Body for ResponseBody<B>
where
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            // The end, or a last frame after which the body says it has ended (servers then
            // stop polling and drop it: that is a complete response, not an abort).
            None => {
                if let Some(mut rec) = this.recorder.take() {
                    rec.send();
                }
            }
            Some(Ok(_)) if this.inner.is_end_stream() => {
                if let Some(mut rec) = this.recorder.take() {
                    rec.send();
                }
            }
            Some(Err(e)) => {
                if let Some(mut rec) = this.recorder.take() {
                    rec.body_failed(e);
                }
            }
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
