//! The server layer's strategies: how a request is named ([`MakeName`]) and which responses
//! are successful ([`ClassifySuccess`]). Each is a trait with a default implementation and a
//! closure implementation; swapping one changes the layer's type, no boxing.

use http::StatusCode;
use http::request::Parts;

/// Names a request when the framework does not know its route (SPEC 6.1).
///
/// ```
/// use tracelink_tower::server::MakeName;
///
/// fn by_host(parts: &http::request::Parts) -> String {
///     format!("{} {}", parts.method, parts.uri.host().unwrap_or("?"))
/// }
/// fn assert_strategy<M: MakeName>(_: M) {}
/// assert_strategy(by_host);
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
pub(crate) fn join(method: &str, path: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let mut s = String::with_capacity(method.len() + 1 + path.len());
    s.push_str(method);
    s.push(' ');
    s.push_str(path);
    s
}

/// Decides whether a response status is a success.
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
