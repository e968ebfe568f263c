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

mod client_addr;
mod strategy;
mod user_tracking;

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Instant, SystemTime};

use http::header::{ACCESS_CONTROL_EXPOSE_HEADERS, HOST, SET_COOKIE};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracelink_core::model::{Request as RequestData, TagValue, Telemetry, TelemetryData, tags};
use tracelink_core::scope::Scoped;
use tracelink_core::{Correlation, Propagation, SamplingDecision, TelemetrySink, TraceParent, extract};

pub use client_addr::{ClientAddr, TrustedProxies};
pub use strategy::{ClassifySuccess, DefaultMakeName, DefaultSuccess, MakeName};

use tracelink_core::url::{Redaction, clean_host};

const REQUEST_CONTEXT: HeaderName = HeaderName::from_static("request-context");
const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");

/// The `tracing` span of a request, when an id source is configured (feature `tracing`).
#[cfg(feature = "tracing")]
type RequestSpan = Option<tracing::Span>;
#[cfg(not(feature = "tracing"))]
type RequestSpan = Option<std::convert::Infallible>;

#[cfg(feature = "tracing")]
fn enter(span: &RequestSpan) -> Option<tracing::span::Entered<'_>> {
    span.as_ref().map(tracing::Span::enter)
}

/// Without the `tracing` feature there is no span to enter.
#[cfg(not(feature = "tracing"))]
struct NoSpan;

#[cfg(not(feature = "tracing"))]
fn enter(_: &RequestSpan) -> NoSpan {
    NoSpan
}

type PartsHook = Arc<dyn Fn(&Parts, &mut Telemetry) + Send + Sync>;
type ResponseHook = Arc<dyn Fn(&http::response::Parts, &mut Telemetry) + Send + Sync>;
type Filter = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

struct Config {
    sink: Arc<dyn TelemetrySink>,
    propagation: Propagation,
    request_context: Option<HeaderValue>,
    cloud_role: Option<Arc<str>>,
    role_instance: Option<Arc<str>>,
    default_scheme: &'static str,
    trusted: TrustedProxies,
    redaction: Redaction,
    traceresponse: bool,
    track_users: bool,
    on_request: Option<PartsHook>,
    on_response: Option<ResponseHook>,
    filter: Option<Filter>,
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    id_source: Option<Arc<dyn tracelink_core::IdSource>>,
}

/// The server layer; see the [module docs](self).
#[derive(Clone)]
pub struct CorrelationLayer<M = DefaultMakeName, C = DefaultSuccess> {
    config: Arc<Config>,
    make_name: M,
    classify: C,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("propagation", &self.propagation)
            .field("cloud_role", &self.cloud_role)
            .field("role_instance", &self.role_instance)
            .field("traceresponse", &self.traceresponse)
            .field("track_users", &self.track_users)
            .finish_non_exhaustive()
    }
}

impl<M: fmt::Debug, C: fmt::Debug> fmt::Debug for CorrelationLayer<M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorrelationLayer")
            .field("config", &self.config)
            .field("make_name", &self.make_name)
            .field("classify", &self.classify)
            .finish()
    }
}

impl CorrelationLayer {
    /// A layer that sends Request items to `sink` and asks it for sampling decisions.
    pub fn new(sink: impl TelemetrySink) -> Self {
        Self {
            config: Arc::new(Config {
                sink: Arc::new(sink),
                propagation: Propagation::default(),
                request_context: None,
                cloud_role: None,
                role_instance: None,
                default_scheme: "http",
                trusted: TrustedProxies::default(),
                redaction: Redaction::default(),
                traceresponse: false,
                track_users: false,
                on_request: None,
                on_response: None,
                filter: None,
                id_source: None,
            }),
            make_name: DefaultMakeName,
            classify: DefaultSuccess::default(),
        }
    }
}

impl<M, C> CorrelationLayer<M, C> {
    fn config_mut(&mut self) -> &mut Config {
        // Builders run before the layer is shared; a clone only happens if it already was.
        Arc::get_mut(&mut self.config).expect("configure the layer before cloning it")
    }

    /// The propagation configuration (mode, baggage, own appId, excluded hosts). The own appId
    /// is also answered in `Request-Context` (SPEC 5.4).
    pub fn propagation(mut self, propagation: Propagation) -> Self {
        let c = self.config_mut();
        c.request_context = propagation.own_app_id().map(|a| a.http_value().clone());
        c.propagation = propagation;
        self
    }

    /// `ai.cloud.role`: the service's name on the application map.
    pub fn cloud_role(mut self, role: impl Into<String>) -> Self {
        self.config_mut().cloud_role = Some(Arc::from(role.into()));
        self
    }

    /// `ai.cloud.roleInstance`: this instance (host name, pod name).
    pub fn role_instance(mut self, instance: impl Into<String>) -> Self {
        self.config_mut().role_instance = Some(Arc::from(instance.into()));
        self
    }

    /// The scheme of URLs whose request did not say (HTTP/1 behind no trusted proxy):
    /// `"http"` (the default) or `"https"` for a server that terminates TLS itself.
    pub fn default_scheme_https(mut self) -> Self {
        self.config_mut().default_scheme = "https";
        self
    }

    /// Trusts `Forwarded` / `X-Forwarded-*` from peers in this network (`10.0.0.0/8`, an
    /// address). Text that is neither is ignored.
    pub fn trusted_proxy(mut self, net: &str) -> Self {
        if let Some(n) = TrustedProxies::parse_net(net) {
            self.config_mut().trusted.push(n);
        }
        self
    }

    /// Which query values are redacted in URLs.
    pub fn redaction(mut self, redaction: Redaction) -> Self {
        self.config_mut().redaction = redaction;
        self
    }

    /// Also answer the W3C Level 2 `traceresponse` header (off by default).
    pub fn with_traceresponse(mut self) -> Self {
        self.config_mut().traceresponse = true;
        self
    }

    /// Issue `ai_user` / `ai_session` cookies in the browser SDK's format when absent
    /// (off by default); see `user_tracking` in the crate docs.
    pub fn track_users(mut self) -> Self {
        self.config_mut().track_users = true;
        self
    }

    /// A hook that enriches the Request item when the request starts (a telemetry
    /// initializer): set properties or tags from the request's headers and extensions.
    pub fn on_request(
        mut self,
        f: impl Fn(&Parts, &mut Telemetry) + Send + Sync + 'static,
    ) -> Self {
        self.config_mut().on_request = Some(Arc::new(f));
        self
    }

    /// A hook that enriches the Request item when the response head is ready, e.g. from
    /// response extensions set by the handler (the authenticated user).
    pub fn on_response(
        mut self,
        f: impl Fn(&http::response::Parts, &mut Telemetry) + Send + Sync + 'static,
    ) -> Self {
        self.config_mut().on_response = Some(Arc::new(f));
        self
    }

    /// Records only requests for which `f` is true (skip health checks). Skipped requests
    /// are still propagated, and their operation is unsampled, so calls they make are not
    /// recorded either.
    pub fn filter(mut self, f: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.config_mut().filter = Some(Arc::new(f));
        self
    }

    /// Makes each request's id the id of a `tracing` span this layer creates for it
    /// (`tracelink_tower` target, INFO, `otel.kind = "server"`, `tracelink.reported = true`),
    /// linked by `source` to the incoming context before it is entered. With
    /// `tracelink-otel`'s `OtelIdSource`, spans made with the OpenTelemetry API inside the
    /// handler are then children of the Request item (DESIGN invariant 1). The span is
    /// current while the handler runs and ends with the response body.
    #[cfg(feature = "tracing")]
    pub fn id_source(mut self, source: impl tracelink_core::IdSource) -> Self {
        self.config_mut().id_source = Some(Arc::new(source));
        self
    }

    /// Names requests with `make_name` when no route template is known.
    pub fn make_name<N: MakeName>(self, make_name: N) -> CorrelationLayer<N, C> {
        CorrelationLayer {
            config: self.config,
            make_name,
            classify: self.classify,
        }
    }

    /// Decides success with `classify`.
    pub fn classify<K: ClassifySuccess>(self, classify: K) -> CorrelationLayer<M, K> {
        CorrelationLayer {
            config: self.config,
            make_name: self.make_name,
            classify,
        }
    }
}

impl<S, M: Clone, C: Clone> Layer<S> for CorrelationLayer<M, C> {
    type Service = CorrelationService<S, M, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CorrelationService {
            inner,
            config: Arc::clone(&self.config),
            make_name: self.make_name.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// The server middleware made by [`CorrelationLayer`].
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
            return ResponseFuture {
                inner: Scoped::new(self.inner.call(req), None),
                state: None,
                span: None,
            };
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
        let sampling = if record {
            cfg.sink.sampling(incoming.trace_id())
        } else {
            SamplingDecision::new(100.0, false)
        };
        // DESIGN invariant 4: an unsampled request costs propagation only. It records no item,
        // nor do its children, so it needs no name, no clock and no look at its head (unless
        // a span is made for it or users are tracked).
        let full = sampling.is_sampled() || cfg.id_source.is_some() || cfg.track_users;
        let prepared = if full {
            let (r, prepared) = with_head(req, |parts| {
                prepare(cfg, &mut self.make_name, parts, incoming, sampling)
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
            }
        };
        let inner = {
            let _entered = enter(&prepared.span);
            self.inner.call(req)
        };
        // Taken now: the handler may change the current context (`scope::replace_current`).
        // Boxed: off by default, and the future stays small (a `TraceParent` is 16-aligned).
        let traceresponse = self
            .config
            .traceresponse
            .then(|| prepared.correlation.traceparent().map(Box::new))
            .flatten();
        ResponseFuture {
            inner: Scoped::new(inner, Some(prepared.correlation)),
            state: Some(State {
                recorder: prepared.recorder,
                classify: self.classify.clone(),
                config: Arc::clone(&self.config),
                traceresponse,
                set_cookies: prepared.set_cookies,
            }),
            span: prepared.span,
        }
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
    recorder: Option<Box<Recorder>>,
    set_cookies: Vec<String>,
    span: RequestSpan,
}

/// The context, span, user tracking and Request item of a request that needs its head.
fn prepare<M: MakeName>(
    cfg: &Config,
    make_name: &mut M,
    parts: &mut Parts,
    incoming: extract::Incoming,
    sampling: SamplingDecision,
) -> Prepared {
    // The duration starts here, once the layer has decided to record (a few hundred
    // nanoseconds after the request reached it).
    let start = Instant::now();
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
    let (span, id) = request_span(cfg, &name, &incoming);
    let correlation = match id {
        Some(id) => incoming.into_request_with_id(&cfg.propagation, sampling, op_name, id),
        None => incoming.into_request(&cfg.propagation, sampling, op_name),
    };
    parts.extensions.insert(correlation.clone());
    let scheme = parts
        .uri
        .scheme_str()
        .and_then(|s| match s {
            "https" => Some("https"),
            "http" => Some("http"),
            _ => None,
        })
        .or_else(|| client_addr::forwarded_proto(parts, &cfg.trusted))
        .unwrap_or(cfg.default_scheme);
    // Read once: for tracking, and for the item's user and session ids.
    let cookies = if cfg.track_users || correlation.is_sampled() {
        user_tracking::request_cookies(&parts.headers)
    } else {
        tracelink_core::cookie::UserCookies::default()
    };
    let tracked = cfg
        .track_users
        .then(|| user_tracking::track(&cookies, scheme == "https", SystemTime::now()));
    // Boxed: the futures and bodies that carry it are moved several times per request, and
    // an unsampled request should not move a Request item's worth of empty bytes.
    let recorder = correlation.is_sampled().then(|| {
        Box::new(Recorder::start(
            cfg,
            &correlation,
            parts,
            name,
            source,
            scheme,
            tracked.as_ref(),
            cookies,
            start,
        ))
    });
    Prepared {
        correlation,
        recorder,
        set_cookies: tracked.map(|t| t.set_cookies).unwrap_or_default(),
        span,
    }
}

/// The request's span and its id, when an id source adopted it.
#[cfg(feature = "tracing")]
fn request_span(
    cfg: &Config,
    name: &str,
    incoming: &extract::Incoming,
) -> (RequestSpan, Option<tracelink_core::SpanId>) {
    let Some(source) = &cfg.id_source else {
        return (None, None);
    };
    let span = tracing::info_span!(
        target: "tracelink_tower",
        "request",
        otel.name = name,
        otel.kind = "server",
        "tracelink.reported" = true
    );
    let id = source.adopt(&span, incoming.span_parent());
    (Some(span), id)
}

#[cfg(not(feature = "tracing"))]
fn request_span(
    _: &Config,
    _: &str,
    _: &extract::Incoming,
) -> (RequestSpan, Option<tracelink_core::SpanId>) {
    (None, None)
}

struct State<C> {
    recorder: Option<Box<Recorder>>,
    classify: C,
    config: Arc<Config>,
    /// The request's own traceparent, when `traceresponse` is answered.
    traceresponse: Option<Box<TraceParent>>,
    set_cookies: Vec<String>,
}

pin_project! {
    /// The response future of [`CorrelationService`].
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: Scoped<F>,
        state: Option<State<C>>,
        span: RequestSpan,
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
        answer_headers(&mut parts.headers, &state);
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

/// SPEC 5.4: `Request-Context` and `Access-Control-Expose-Headers`; `traceresponse`; cookies.
fn answer_headers<C>(h: &mut HeaderMap, state: &State<C>) {
    if let Some(rc) = &state.config.request_context {
        h.entry(REQUEST_CONTEXT).or_insert_with(|| rc.clone());
        let exposed = h
            .get_all(ACCESS_CONTROL_EXPOSE_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|n| n.trim().eq_ignore_ascii_case("request-context") || n.trim() == "*");
        if !exposed {
            h.append(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("Request-Context"),
            );
        }
    }
    if let Some(tp) = &state.traceresponse
        && let Ok(v) = HeaderValue::from_bytes(tp.to_header().as_bytes())
    {
        h.entry(TRACERESPONSE).or_insert(v);
    }
    for c in &state.set_cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(SET_COOKIE, v);
        }
    }
}

/// Builds the Request item at the start and sends it exactly once.
struct Recorder {
    sink: Arc<dyn TelemetrySink>,
    /// `None` once sent.
    item: Option<Telemetry>,
    start: Instant,
    responded: bool,
}

impl Recorder {
    #[allow(clippy::too_many_arguments)]
    fn start(
        cfg: &Config,
        correlation: &Correlation,
        parts: &Parts,
        name: String,
        source: Option<String>,
        scheme: &str,
        tracked: Option<&user_tracking::Tracked>,
        cookies: tracelink_core::cookie::UserCookies,
        start: Instant,
    ) -> Self {
        let mut data = RequestData::default();
        data.name = name;
        data.source = source.unwrap_or_default();
        data.url = request_url(parts, scheme, &cfg.redaction);
        let mut item = correlation.to_item(data);
        let t = &mut item.tags;
        if let Some(role) = &cfg.cloud_role {
            t.insert(tags::CLOUD_ROLE, role);
        }
        if let Some(instance) = &cfg.role_instance {
            t.insert(tags::CLOUD_ROLE_INSTANCE, instance);
        }
        t.insert(
            tags::INTERNAL_SDK_VERSION,
            TagValue::from_static(tags::SDK_VERSION),
        );
        let user = tracked.and_then(|t| t.user_id.clone()).or(cookies.user_id);
        let session = tracked
            .and_then(|t| t.session_id.clone())
            .or(cookies.session_id);
        for (key, value) in [
            (tags::USER_ID, user),
            (tags::SESSION_ID, session),
            (tags::USER_AUTH_USER_ID, cookies.auth_user_id),
            (tags::USER_ACCOUNT_ID, cookies.account_id),
            (
                tags::LOCATION_IP,
                client_addr::client_ip(parts, &cfg.trusted).map(|ip| ip.to_string()),
            ),
        ] {
            if let Some(v) = value {
                t.insert(key, v);
            }
        }
        if let Some(hook) = &cfg.on_request {
            hook(parts, &mut item);
        }
        Self {
            sink: Arc::clone(&cfg.sink),
            item: Some(item),
            start,
            responded: false,
        }
    }

    fn request(&mut self) -> Option<&mut RequestData> {
        match self.item.as_mut().map(|i| &mut i.data) {
            Some(TelemetryData::Request(r)) => Some(r),
            _ => None,
        }
    }

    /// Sets a custom property of the item (unless sent).
    fn property(&mut self, key: &str, value: String) {
        if let Some(item) = &mut self.item {
            item.properties.insert(key.to_owned(), value);
        }
    }

    fn response(&mut self, parts: &http::response::Parts, success: bool, cfg: &Config) {
        if let Some(r) = self.request() {
            r.response_code = tracelink_core::model::status_code(parts.status.as_u16());
            r.success = success;
        }
        self.responded = true;
        if let (Some(hook), Some(item)) = (&cfg.on_response, &mut self.item) {
            hook(parts, item);
        }
    }

    fn fail(mut self, code: &'static str, error: Option<&str>) {
        if let Some(r) = self.request() {
            r.response_code = code.into();
            r.success = false;
        }
        if let Some(e) = error {
            self.property("error", e.to_owned());
        }
        self.send();
    }

    fn send(&mut self) {
        let Some(mut item) = self.item.take() else {
            return;
        };
        if let TelemetryData::Request(r) = &mut item.data {
            r.duration = self.start.elapsed();
        }
        self.sink.send(item);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.item.is_none() {
            return;
        }
        if self.responded {
            // The body was dropped before its end: the client went away.
            self.property("aborted", "true".into());
        } else if let Some(r) = self.request() {
            // No response head: the client closed the request (nginx's 499).
            r.response_code = "499".into();
            r.success = false;
        }
        self.send();
    }
}

/// The absolute request URL (SPEC 6.1).
fn request_url(parts: &Parts, scheme: &str, redaction: &Redaction) -> String {
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(HOST).and_then(|h| h.to_str().ok()))
        .map(|a| a.rsplit('@').next().unwrap_or(a))
        .and_then(clean_host)
        .unwrap_or("localhost");
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    redaction.absolute(scheme, authority, pq)
}

pin_project! {
    /// The response body of [`CorrelationService`]: the inner body, and the recorder that
    /// sends the Request item when the body ends, fails or is dropped.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        recorder: Option<Box<Recorder>>,
        // Ends with the body, like the Request item.
        span: RequestSpan,
    }
}

impl<B: Body> ResponseBody<B> {
    fn new(inner: B, mut recorder: Option<Box<Recorder>>, span: RequestSpan) -> Self {
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
                    if let Some(r) = rec.request() {
                        r.success = false;
                    }
                    rec.property("error", e.to_string());
                    rec.send();
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
