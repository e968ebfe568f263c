//! [`ResponseFuture`]: runs the inner future in the request's context, then completes the
//! Request item from the response head and answers the correlation headers.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;
use tracelink_core::TraceParent;
use tracelink_core::scope::Scoped;

use super::body::ResponseBody;
use super::config::Config;
use super::recorder::Report;
use super::span::{Fallback, RequestSpan, enter};
use super::strategy::ClassifySuccess;
use super::{headers, user_tracking};

/// What the response head completes; `None` in a future that passes the request through.
pub(super) struct State<C> {
    pub(super) recorder: Option<Report>,
    pub(super) classify: C,
    pub(super) config: Arc<Config>,
    /// The request's own traceparent, when `traceresponse` is answered.
    pub(super) traceresponse: Option<Box<TraceParent>>,
    pub(super) set_cookies: Vec<String>,
}

pin_project! {
    /// The response future of [`CorrelationService`](crate::server::CorrelationService).
    ///
    /// The inner future is polled with the request's [`tracelink_core::Correlation`] current
    /// (and, with an id source, its `tracing` span entered, or when a filter disabled that
    /// span, the request made current in the other tracing system by its ids). A panic in it
    /// is recorded as `responseCode=500` and resumed; an error as `500`; dropping this future
    /// before the response head exists as `499`.
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: Scoped<F>,
        state: Option<State<C>>,
        span: RequestSpan,
        fallback: Option<Box<Fallback>>,
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(super) fn new(
        inner: Scoped<F>,
        state: Option<State<C>>,
        span: RequestSpan,
        fallback: Option<Box<Fallback>>,
    ) -> Self {
        Self {
            inner,
            state,
            span,
            fallback,
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResB, E, C> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: Body,
    C: ClassifySuccess,
{
    type Output = Result<Response<ResponseBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let polled = {
            let _entered = enter(this.span);
            let _fallback = this.fallback.as_deref().map(Fallback::enter);
            catch_unwind(AssertUnwindSafe(|| this.inner.as_mut().poll(cx)))
        };
        let result = match polled {
            Ok(p) => ready!(p),
            Err(panic) => {
                if let Some(rec) = this.state.as_mut().and_then(|s| s.recorder.take()) {
                    rec.fail("500", Some("panic"));
                }
                resume_unwind(panic)
            }
        };
        let Some(mut state) = this.state.take() else {
            return Poll::Ready(result.map(|res| res.map(|b| ResponseBody::new(b, None, None))));
        };
        let res = match result {
            Ok(res) => res,
            Err(e) => {
                if let Some(rec) = state.recorder.take() {
                    rec.fail("500", Some("inner service error"));
                }
                return Poll::Ready(Err(e));
            }
        };
        let (mut parts, body) = res.into_parts();
        headers::answer(
            &mut parts.headers,
            state.config.request_context.as_ref(),
            state.traceresponse.as_deref(),
        );
        user_tracking::append_set_cookies(&mut parts.headers, &state.set_cookies);
        let mut recorder = state.recorder.take();
        if let Some(rec) = &mut recorder {
            rec.response(
                &parts,
                state.classify.is_success(parts.status),
                &state.config,
            );
        }
        let span = this.span.take();
        Poll::Ready(Ok(Response::from_parts(
            parts,
            ResponseBody::new(body, recorder, span),
        )))
    }
}
