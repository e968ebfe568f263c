//! [`CorrelationService`]: extracts the context, prepares the Request item and calls the inner
//! service in the request's context.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;
use tracelink_core::id_source::ForeignSpan;
use tracelink_core::scope::{self, Scoped};
use tracelink_core::{Correlation, PropagationMode, SamplingDecision, UserContext, extract};

use super::body::ResponseBody;
use super::config::Config;
use super::future::{ResponseFuture, State};
use super::recorder::{Counter, Recorder, Report, RequestStart};
use super::span::{Fallback, RequestSpan, enter, request_span};
use super::strategy::{ClassifySuccess, DefaultMakeName, DefaultSuccess, MakeName};
use super::url::{Scheme, request_scheme};
use super::user_tracking::{self, Users};

/// The server middleware made by [`CorrelationLayer`](crate::server::CorrelationLayer); see
/// the [`server` module docs](crate::server) for what it does to each request.
#[derive(Clone)]
pub struct CorrelationService<S, M = DefaultMakeName, C = DefaultSuccess> {
    inner: S,
    config: Arc<Config>,
    make_name: M,
    classify: C,
}

impl<S: fmt::Debug, M, C> fmt::Debug for CorrelationService<S, M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorrelationService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, M, C> CorrelationService<S, M, C> {
    pub(super) fn new(inner: S, config: Arc<Config>, make_name: M, classify: C) -> Self {
        Self {
            inner,
            config,
            make_name,
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

impl<S, ReqB, ResB, M, C> Service<Request<ReqB>> for CorrelationService<S, M, C>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
    M: MakeName,
    C: ClassifySuccess + Clone,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        if req.extensions().get::<Correlation>().is_some() {
            // An outer layer owns this request: no second item (DESIGN invariant 2).
            return ResponseFuture::new(Scoped::new(self.inner.call(req), None), None, None, None);
        }
        let cfg = &self.config;
        let incoming = extract::extract(req.headers(), &cfg.propagation);
        let record = match &cfg.filter {
            None => true,
            Some(f) => {
                let (r, keep) = with_head(req, |parts| f(parts));
                req = r;
                keep
            }
        };
        // A server span another middleware made for this request is the request (DESIGN
        // invariants 1 and 2); its trace is the operation.
        let adopted = match &cfg.id_source {
            Some(source) if cfg.propagation.propagation_mode() != PropagationMode::Hierarchical => {
                source.adopt_current()
            }
            _ => None,
        };
        let sampling = if record {
            cfg.sink
                .sampling(adopted.map_or(incoming.trace_id(), |a| a.trace_id))
        } else {
            SamplingDecision::dropped(100.0)
        };
        // DESIGN invariant 4: an unsampled request costs propagation only. It records no item,
        // nor do its children, so it needs no name, no clock and no look at its head (unless
        // a span is made for it or users are tracked).
        let full = sampling.is_sampled() || cfg.id_source.is_some() || cfg.track_users;
        let mut prepared = if full {
            let (r, prepared) = with_head(req, |parts| {
                prepare(cfg, &mut self.make_name, parts, incoming, sampling, adopted)
            });
            req = r;
            prepared
        } else {
            let correlation = incoming.into_request(&cfg.propagation, sampling, None);
            req.extensions_mut().insert(correlation.clone());
            Prepared {
                correlation,
                recorder: None,
                set_cookies: Vec::new(),
                span: None,
                fallback: None,
            }
        };
        // A request of an operation that sampling dropped is counted without an item, when
        // the sink counts them (the standard metrics, SPEC 8.6): its clock only.
        if record && !sampling.is_sampled() && cfg.sink.counts_unsampled() {
            prepared.recorder = Some(Report::Count(Counter::start(&self.config, Instant::now())));
        }
        let inner = {
            let _entered = enter(&prepared.span);
            // Current while the inner service starts the handler, as while it is polled: inner
            // layers that start spans see the request.
            let _current = scope::enter(prepared.correlation.clone());
            let _fallback = prepared.fallback.as_deref().map(Fallback::enter);
            self.inner.call(req)
        };
        // Taken now: the handler may change the current context (`scope::replace_current`).
        // Boxed: off by default, and the future stays small (a `TraceParent` is 16-aligned).
        let traceresponse = self
            .config
            .traceresponse
            .then(|| prepared.correlation.traceparent().map(Box::new))
            .flatten();
        let state = State {
            recorder: prepared.recorder,
            classify: self.classify.clone(),
            config: Arc::clone(&self.config),
            traceresponse,
            set_cookies: prepared.set_cookies,
        };
        ResponseFuture::new(
            Scoped::new(inner, Some(prepared.correlation)),
            Some(state),
            prepared.span,
            prepared.fallback,
        )
    }
}

/// Runs `f` on the request's head (`http` lends `Parts` out only by value).
fn with_head<B, R>(req: Request<B>, f: impl FnOnce(&mut Parts) -> R) -> (Request<B>, R) {
    let (mut parts, body) = req.into_parts();
    let out = f(&mut parts);
    (Request::from_parts(parts, body), out)
}

/// What a recorded (or span-carrying, or user-tracked) request starts with.
struct Prepared {
    correlation: Correlation,
    recorder: Option<Report>,
    set_cookies: Vec<String>,
    span: RequestSpan,
    /// The request made current in the other tracing system instead of its span.
    fallback: Option<Box<Fallback>>,
}

/// The context, span, user tracking and Request item of a request that needs its head.
fn prepare<M: MakeName>(
    cfg: &Config,
    make_name: &mut M,
    parts: &mut Parts,
    incoming: extract::Incoming,
    sampling: SamplingDecision,
    adopted: Option<ForeignSpan>,
) -> Prepared {
    // The duration starts here, once the layer has decided to record (a few hundred
    // nanoseconds after the request reached it).
    let at = Instant::now();
    let named = sampling.is_sampled() || cfg.id_source.is_some();
    let name = if named {
        make_name.make_name(parts)
    } else {
        String::new()
    };
    let op_name = named.then_some(name.as_str());
    let source = if sampling.is_sampled() {
        incoming.source().map(str::to_owned)
    } else {
        None
    };
    let (span, id) = match adopted {
        Some(_) => (None, None),
        None => request_span(cfg, &name, &incoming),
    };
    let correlation = match (adopted, id) {
        (Some(a), _) => a.into_request(incoming, &cfg.propagation, sampling, op_name),
        (None, Some(id)) => incoming.into_request_with_id(&cfg.propagation, sampling, op_name, id),
        (None, None) => incoming.into_request(&cfg.propagation, sampling, op_name),
    };
    // Without a span of its own in the other tracing system, the request is made current
    // there by its ids, whatever a `tracing` filter disabled (DESIGN invariant 3).
    let fallback = match (&cfg.id_source, adopted, id) {
        (Some(source), None, None) => Fallback::new(source, &correlation).map(Box::new),
        _ => None,
    };
    parts.extensions.insert(correlation.clone());
    let scheme = request_scheme(parts, &cfg.trusted, cfg.default_scheme);
    // Read once: for tracking, and for the item's user and session ids.
    let users = if cfg.track_users || correlation.is_sampled() {
        user_tracking::users(&parts.headers, cfg.track_users, scheme == Scheme::Https)
    } else {
        Users::default()
    };
    // The operation's user context: every item recorded in it carries the ids (SPEC 6.4).
    if users.ids.user_id.is_some()
        || users.ids.session_id.is_some()
        || users.ids.auth_user_id.is_some()
    {
        correlation.set_user(UserContext::from_cookies(&users.ids));
    }
    // Boxed: the futures and bodies that carry it are moved several times per request, and
    // an unsampled request should not move a Request item's worth of empty bytes.
    let recorder = correlation.is_sampled().then(|| {
        Report::Item(Box::new(Recorder::start(
            cfg,
            RequestStart {
                correlation: &correlation,
                parts,
                name,
                source,
                scheme,
                at,
            },
        )))
    });
    Prepared {
        correlation,
        recorder,
        set_cookies: users.set_cookies,
        span,
        fallback,
    }
}
