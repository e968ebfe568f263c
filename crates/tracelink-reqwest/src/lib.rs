//! # tracelink-reqwest
//!
//! A [`reqwest_middleware::Middleware`] that makes every reqwest call a correctly correlated
//! dependency in Application Insights: it injects `traceparent`, `tracestate`, `Request-Id`,
//! `Correlation-Context` (and `baggage` when enabled) and `Request-Context`, and records one
//! Dependency item per call (SPEC 3.5, 4.3, 5.3, 5.5, 5.6, 6.2).
//!
//! ```
//! use std::sync::Arc;
//! use tracelink_core::MemorySink;
//! use tracelink_reqwest::DependencyMiddleware;
//!
//! let sink = Arc::new(MemorySink::new());
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(DependencyMiddleware::new(sink.clone()))
//!     .build();
//! # let _ = client;
//! ```
//!
//! The behaviour is [`tracelink_core::dependency`]'s, shared with `tracelink-tower`'s client
//! layer. The parent of a call is a [`tracelink_core::Correlation`] passed with
//! `RequestBuilder::with_extension`, else the current context (which `tracelink-tower`'s server
//! layer sets for the handler), else a new operation.
//!
//! Per-request options, also with `with_extension`: [`DependencyName`] (name by route template
//! or a fixed name instead of the raw path) and [`SkipPropagation`] (send no correlation
//! header).
//!
//! ## Ordering with retries
//!
//! Add it after `reqwest-retry`'s middleware (`.with(retry).with(DependencyMiddleware::new(..))`)
//! so that every attempt is its own Dependency with the same parent, as the other SDKs report
//! retries.
//!
//! Errors: reqwest's own timeout and connect errors map to `Timeout` and `Connect`; anything
//! else is classified from its error chain. The duration ends when the response head arrives.

use std::sync::Arc;

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next, Result};
use tracelink_core::TelemetrySink;
use tracelink_core::dependency::OutgoingCall;
pub use tracelink_core::dependency::{
    CallError, DependencyConfig, DependencyName, SkipPropagation,
};

/// The middleware; see the crate docs.
#[derive(Clone, Debug)]
pub struct DependencyMiddleware {
    config: Arc<DependencyConfig>,
}

impl DependencyMiddleware {
    /// Records into `sink` with the default configuration.
    pub fn new(sink: impl TelemetrySink) -> Self {
        Self::from_config(DependencyConfig::new(sink))
    }

    /// A full configuration (propagation mode, own appId, excluded hosts, redaction, cloud
    /// role).
    pub fn from_config(config: DependencyConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

fn classify(e: &reqwest_middleware::Error) -> CallError {
    match e {
        reqwest_middleware::Error::Reqwest(r) if r.is_timeout() => CallError::Timeout,
        reqwest_middleware::Error::Reqwest(r) if r.is_connect() => CallError::Connect,
        reqwest_middleware::Error::Reqwest(r) => CallError::classify(r),
        other => CallError::classify(other),
    }
}

#[async_trait::async_trait]
impl Middleware for DependencyMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        // The headers are taken out while the URL and method are read in place (no copy of
        // the URL per call), and put back.
        let mut headers = std::mem::take(req.headers_mut());
        let call = OutgoingCall::start(
            &self.config,
            req.method(),
            req.url().as_str(),
            &mut headers,
            Some(extensions),
        );
        *req.headers_mut() = headers;
        let result = next.run(req, extensions).await;
        match &result {
            Ok(res) => call.finish_response(res.status().as_u16(), res.headers()),
            Err(e) => call.finish_error(classify(e), &e.to_string()),
        }
        result
    }
}
