//! The server layer's strategies: how a request is named ([`MakeName`]) and which responses
//! are successful ([`ClassifySuccess`]).

use http::StatusCode;
use http::request::Parts;

/// Names a request (SPEC 6.1): the Request item's `name` and `ai.operation.name`, for
/// sampled requests only.
///
/// [`DefaultMakeName`] by default. A closure `FnMut(&Parts) -> String` is one; so is a type of
/// your own. [`CorrelationLayer::make_name`](crate::server::CorrelationLayer::make_name)
/// swaps it, which changes the layer's type (no boxing).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Arc;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tracelink_core::MemorySink;
/// use tracelink_tower::server::CorrelationLayer;
///
/// fn by_host(parts: &http::request::Parts) -> String {
///     format!("{} {}", parts.method, parts.uri.host().unwrap_or("?"))
/// }
///
/// let sink = Arc::new(MemorySink::new());
/// let svc = ServiceBuilder::new()
///     .layer(CorrelationLayer::new(sink.clone()).make_name(by_host))
///     .service(service_fn(|_req| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     }));
/// svc.oneshot(http::Request::get("http://shop.example/x").body(()).unwrap()).await.unwrap();
/// assert_eq!(sink.items()[0].tags.get("ai.operation.name"), Some("GET shop.example"));
/// # }
/// ```
pub trait MakeName {
    /// The request name, `METHOD <something>`. Never with a trailing space.
    fn make_name(&mut self, parts: &Parts) -> String;
}

impl<F: FnMut(&Parts) -> String> MakeName for F {
    fn make_name(&mut self, parts: &Parts) -> String {
        self(parts)
    }
}

/// `METHOD <route template>` from axum's `MatchedPath` (feature `axum`), else
/// `METHOD <path>` without the query (SPEC 6.1).
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultMakeName;

impl MakeName for DefaultMakeName {
    fn make_name(&mut self, parts: &Parts) -> String {
        #[cfg(feature = "axum")]
        if let Some(route) = parts.extensions.get::<axum::extract::MatchedPath>() {
            return join(parts.method.as_str(), route.as_str());
        }
        join(parts.method.as_str(), parts.uri.path())
    }
}

/// `METHOD path`, `/` for an empty path.
fn join(method: &str, path: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let mut s = String::with_capacity(method.len() + 1 + path.len());
    s.push_str(method);
    s.push(' ');
    s.push_str(path);
    s
}

/// Decides whether a response status is a success: the Request item's `success`.
///
/// [`DefaultSuccess`] by default. A closure `Fn(StatusCode) -> bool` is one; so is a type of
/// your own. [`CorrelationLayer::classify`](crate::server::CorrelationLayer::classify) swaps
/// it, which changes the layer's type (no boxing). Failures without a status (an inner
/// service error, a panic, a failed body) are never a success.
///
/// ```
/// use http::StatusCode;
/// use tracelink_core::MemorySink;
/// use tracelink_tower::server::{ClassifySuccess, CorrelationLayer};
///
/// // A 404 is an answer, not a failure, for this API.
/// let classify = |s: StatusCode| s.as_u16() < 400 || s == StatusCode::NOT_FOUND;
/// assert!(classify.is_success(StatusCode::NOT_FOUND));
/// let layer = CorrelationLayer::new(MemorySink::new()).classify(classify);
/// ```
pub trait ClassifySuccess {
    /// Whether a response with `status` is a successful request.
    fn is_success(&self, status: StatusCode) -> bool;
}

impl<F: Fn(StatusCode) -> bool> ClassifySuccess for F {
    fn is_success(&self, status: StatusCode) -> bool {
        self(status)
    }
}

/// `status < 400`, optionally counting 401 as a success (SPEC 6.1).
///
/// ```
/// use http::StatusCode;
/// use tracelink_tower::server::{ClassifySuccess, DefaultSuccess};
///
/// assert!(!DefaultSuccess::default().is_success(StatusCode::UNAUTHORIZED));
/// assert!(DefaultSuccess::default().unauthorized_is_success().is_success(StatusCode::UNAUTHORIZED));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultSuccess {
    unauthorized_is_success: bool,
}

impl DefaultSuccess {
    /// Counts `401 Unauthorized` as a success (an auth challenge is part of normal flow).
    pub fn unauthorized_is_success(mut self) -> Self {
        self.unauthorized_is_success = true;
        self
    }
}

impl ClassifySuccess for DefaultSuccess {
    fn is_success(&self, status: StatusCode) -> bool {
        status.as_u16() < 400
            || (self.unauthorized_is_success && status == StatusCode::UNAUTHORIZED)
    }
}
