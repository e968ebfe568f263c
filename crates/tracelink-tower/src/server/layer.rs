//! [`CorrelationLayer`] and its configuration.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use tower_layer::Layer;
#[cfg(feature = "tracing")]
use tracelink_core::IdSource;
use tracelink_core::model::Telemetry;
use tracelink_core::url::Redaction;
use tracelink_core::{Propagation, TelemetrySink};

use super::client_addr::TrustedProxies;
use super::config::Config;
use super::service::CorrelationService;
use super::strategy::{ClassifySuccess, DefaultMakeName, DefaultSuccess, MakeName};
use super::url::Scheme;

/// The server layer: one [`tracelink_core::Correlation`] per request, made current while the
/// handler runs, and one Request item per sampled request. What it records and answers is
/// described in the [`server` module docs](crate::server).
///
/// Every setting is optional and has a method named after it. The layer is cheap to clone
/// (its configuration is shared), and configuring a clone leaves the original unchanged.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Arc;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tracelink_core::MemorySink;
/// use tracelink_tower::server::{CorrelationLayer, Scheme};
///
/// let sink = Arc::new(MemorySink::new());
/// let layer = CorrelationLayer::new(sink.clone())
///     .cloud_role("orders-api")
///     .role_instance("orders-1")
///     .default_scheme(Scheme::Https);
/// let svc = ServiceBuilder::new().layer(layer).service(service_fn(|_req| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// }));
///
/// let req = http::Request::get("/orders/7").header("host", "shop.example").body(()).unwrap();
/// svc.oneshot(req).await.unwrap();
///
/// let item = &sink.items()[0];
/// assert_eq!(item.tags.get("ai.cloud.roleInstance"), Some("orders-1"));
/// let tracelink_core::model::TelemetryData::Request(r) = &item.data else { unreachable!() };
/// assert_eq!(r.name, "GET /orders/7");
/// assert_eq!(r.url, "https://shop.example/orders/7");
/// # }
/// ```
#[derive(Clone)]
pub struct CorrelationLayer<M = DefaultMakeName, C = DefaultSuccess> {
    config: Arc<Config>,
    make_name: M,
    classify: C,
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
                default_scheme: Scheme::Http,
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
    /// The configuration, copied first if a clone of this layer (or a service it made)
    /// shares it.
    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The propagation configuration (mode, baggage, own appId, excluded hosts). The own appId
    /// is also answered in `Request-Context` (SPEC 5.4), and requests whose
    /// `Request-Context` names it have no `source`.
    pub fn propagation(mut self, propagation: Propagation) -> Self {
        let c = self.config_mut();
        c.request_context = propagation.own_app_id().map(|a| a.http_value().clone());
        c.propagation = propagation;
        self
    }

    /// `ai.cloud.role`: the service's name on the application map.
    pub fn cloud_role(mut self, role: impl Into<Arc<str>>) -> Self {
        self.config_mut().cloud_role = Some(role.into());
        self
    }

    /// `ai.cloud.roleInstance`: this instance (host name, pod name).
    pub fn role_instance(mut self, instance: impl Into<Arc<str>>) -> Self {
        self.config_mut().role_instance = Some(instance.into());
        self
    }

    /// The scheme of request URLs when the request does not say: an HTTP/1 request line
    /// carries no scheme, so unless a trusted proxy forwards one
    /// ([`trusted_proxies`](Self::trusted_proxies)), the URL uses this.
    /// [`Scheme::Http`] by default; [`Scheme::Https`] for a server that terminates TLS
    /// itself. With user tracking, the cookies of an `https` request are `Secure`.
    pub fn default_scheme(mut self, scheme: Scheme) -> Self {
        self.config_mut().default_scheme = scheme;
        self
    }

    /// Believes `Forwarded` / `X-Forwarded-For` / `X-Forwarded-Proto` from these proxies (none
    /// by default): the client address and the URL's scheme are then the ones they forward.
    /// See [`TrustedProxies`].
    ///
    /// ```
    /// use tracelink_core::MemorySink;
    /// use tracelink_tower::server::CorrelationLayer;
    ///
    /// # fn main() -> Result<(), tracelink_tower::server::InvalidTrustedProxies> {
    /// let layer = CorrelationLayer::new(MemorySink::new())
    ///     .trusted_proxies("10.0.0.0/8, fd00::/8".parse()?);
    /// # Ok(()) }
    /// ```
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.config_mut().trusted = proxies;
        self
    }

    /// Which query values are redacted in URLs.
    pub fn redaction(mut self, redaction: Redaction) -> Self {
        self.config_mut().redaction = redaction;
        self
    }

    /// Answers the W3C Trace Context Level 2 `traceresponse` header (off by default): the
    /// request's own `traceparent`, so a caller without a trace of its own learns the
    /// operation id. A `traceresponse` the handler set is kept.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    /// use tracelink_core::MemorySink;
    /// use tracelink_tower::server::CorrelationLayer;
    ///
    /// let svc = ServiceBuilder::new()
    ///     .layer(CorrelationLayer::new(MemorySink::new()).traceresponse())
    ///     .service(service_fn(|_req| async {
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    ///     }));
    /// let req = http::Request::get("/")
    ///     .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    ///     .body(())
    ///     .unwrap();
    /// let res = svc.oneshot(req).await.unwrap();
    /// let answer = res.headers()["traceresponse"].to_str().unwrap();
    /// assert!(answer.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
    /// # }
    /// ```
    pub fn traceresponse(mut self) -> Self {
        self.config_mut().traceresponse = true;
        self
    }

    /// Tracks users and sessions for services without the browser SDK (off by default): when
    /// a request has no valid `ai_user` / `ai_session` cookie, the response sets them in the
    /// browser SDK's own formats (SPEC 6.4), so the SDK, if added later, keeps the same ids,
    /// and the Request item carries them as `ai.user.id` / `ai.session.id`:
    ///
    /// - `ai_user=<id>|<ISO date>`, `Max-Age` 365 days;
    /// - `ai_session=<id>|<acquired ms>|<renewed ms>`, renewed (at most once a minute) while
    ///   the session is active; a new session after 30 minutes idle or 24 hours in all (or
    ///   when the cookie's times are more than 5 minutes in the future), `Max-Age` 30 minutes;
    /// - `Path=/`, not `HttpOnly` (the browser SDK must read them), `Secure; SameSite=Lax` on
    ///   https, `SameSite=Lax` otherwise.
    ///
    /// Cookies are set on unsampled and filtered requests too, so a user keeps one id. Without
    /// tracking, the ids of cookies the browser SDK set are still recorded.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    /// use tracelink_core::MemorySink;
    /// use tracelink_tower::server::CorrelationLayer;
    ///
    /// let svc = ServiceBuilder::new()
    ///     .layer(CorrelationLayer::new(MemorySink::new()).track_users())
    ///     .service(service_fn(|_req| async {
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    ///     }));
    /// let res = svc.oneshot(http::Request::get("/").body(()).unwrap()).await.unwrap();
    /// let cookies: Vec<_> = res.headers().get_all("set-cookie").iter().collect();
    /// assert_eq!(cookies.len(), 2);
    /// assert!(cookies[0].to_str().unwrap().starts_with("ai_user="));
    /// assert!(cookies[1].to_str().unwrap().starts_with("ai_session="));
    /// # }
    /// ```
    pub fn track_users(mut self) -> Self {
        self.config_mut().track_users = true;
        self
    }

    /// A hook that enriches the Request item when the request starts (a telemetry
    /// initializer): set properties or tags from the request's headers and extensions.
    ///
    /// ```
    /// use tracelink_core::MemorySink;
    /// use tracelink_tower::server::CorrelationLayer;
    ///
    /// let layer = CorrelationLayer::new(MemorySink::new()).on_request(|parts, item| {
    ///     if let Some(tenant) = parts.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
    ///         item.properties.insert("tenant".into(), tenant.into());
    ///     }
    /// });
    /// ```
    pub fn on_request(
        mut self,
        f: impl Fn(&Parts, &mut Telemetry) + Send + Sync + 'static,
    ) -> Self {
        self.config_mut().on_request = Some(Arc::new(f));
        self
    }

    /// A hook that enriches the Request item when the response head is ready, e.g. from
    /// response extensions set by the handler (the authenticated user).
    ///
    /// ```
    /// use tracelink_core::MemorySink;
    /// use tracelink_tower::server::CorrelationLayer;
    ///
    /// #[derive(Clone)]
    /// struct AuthUser(String);
    ///
    /// let layer = CorrelationLayer::new(MemorySink::new()).on_response(|parts, item| {
    ///     if let Some(AuthUser(user)) = parts.extensions.get::<AuthUser>() {
    ///         item.tags.insert("ai.user.authUserId", user.clone());
    ///     }
    /// });
    /// ```
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
    ///
    /// ```
    /// use tracelink_core::MemorySink;
    /// use tracelink_tower::server::CorrelationLayer;
    ///
    /// let layer = CorrelationLayer::new(MemorySink::new()).filter(|parts| parts.uri.path() != "/health");
    /// ```
    pub fn filter(mut self, f: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.config_mut().filter = Some(Arc::new(f));
        self
    }

    /// Shares ids with another tracing system through `source` (`tracelink-otel`'s
    /// `OtelIdSource` for OpenTelemetry), so that spans made with its API inside the handler
    /// are children of the Request item (DESIGN invariant 1) and each request is reported
    /// once (DESIGN invariant 2):
    ///
    /// - When a server span another middleware made for the request is current (an
    ///   OpenTelemetry server middleware outside this layer, such as
    ///   axum-tracing-opentelemetry's `OtelAxumLayer`), the request adopts it: the Request
    ///   item has that span's id and trace, and the span is not reported a second time.
    /// - Otherwise each request's id is the id of a `tracing` span this layer creates for it
    ///   (`tracelink_tower` target, INFO, `otel.kind = "server"`, `tracelink.reported =
    ///   true`), linked by `source` to the incoming context before it is entered. The span is
    ///   current while the handler runs and ends with the response body.
    /// - When a `tracing` filter disables that span, the request is made current in the other
    ///   system by its ids around each poll of the handler, so its spans still join the
    ///   request (DESIGN invariant 3).
    #[cfg(feature = "tracing")]
    pub fn id_source(mut self, source: impl IdSource) -> Self {
        self.config_mut().id_source = Some(Arc::new(source));
        self
    }

    /// Names requests with `make_name` instead of [`DefaultMakeName`] (which uses the route
    /// template when there is one); see [`MakeName`].
    pub fn make_name<N: MakeName>(self, make_name: N) -> CorrelationLayer<N, C> {
        CorrelationLayer {
            config: self.config,
            make_name,
            classify: self.classify,
        }
    }

    /// Decides success with `classify`; see [`ClassifySuccess`].
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
        CorrelationService::new(
            inner,
            Arc::clone(&self.config),
            self.make_name.clone(),
            self.classify.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracelink_core::MemorySink;

    #[test]
    fn configuring_a_clone_leaves_the_original_unchanged() {
        let sink = Arc::new(MemorySink::new());
        let a = CorrelationLayer::new(sink).cloud_role("a");
        let shared = a.clone();
        let b = shared.cloud_role("b").track_users();
        assert_eq!(a.config.cloud_role.as_deref(), Some("a"));
        assert!(!a.config.track_users);
        assert_eq!(b.config.cloud_role.as_deref(), Some("b"));
        assert!(b.config.track_users);
        // Unshared, a builder changes the configuration in place.
        let before = Arc::as_ptr(&b.config);
        let b = b.traceresponse();
        assert_eq!(Arc::as_ptr(&b.config), before);
    }
}
