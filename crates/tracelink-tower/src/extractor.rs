//! The axum extractor for the request's correlation context.

use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

/// The correlation context of the current request, for axum handlers: operation id, request
/// id, baggage. Requires [`CorrelationLayer`](crate::server::CorrelationLayer).
///
/// ```
/// use tracelink_tower::Correlation;
///
/// async fn handler(c: Correlation) -> String {
///     format!("operation {} request {}", c.trace_id(), c.id())
/// }
/// # let _ = axum::Router::<()>::new().route("/", axum::routing::get(handler));
/// ```
#[derive(Clone, Debug)]
pub struct Correlation(pub tracelink_core::Correlation);

impl Deref for Correlation {
    type Target = tracelink_core::Correlation;
    fn deref(&self) -> &tracelink_core::Correlation {
        &self.0
    }
}

/// The rejection when no `CorrelationLayer` ran: a 500, since it is a wiring mistake.
#[derive(Clone, Copy, Debug)]
pub struct MissingCorrelation;

impl IntoResponse for MissingCorrelation {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "tracelink: CorrelationLayer is not installed on this route",
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Correlation {
    type Rejection = MissingCorrelation;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<tracelink_core::Correlation>()
            .cloned()
            .map(Correlation)
            .ok_or(MissingCorrelation)
    }
}
