//! The router of the W3C Trace Context test service; `main.rs` serves it.
//!
//! It runs what users get by default from `tracelink::init()`: W3C with back-compat
//! (`Request-Id` and `Request-Context` on outgoing calls, `Request-Context` with
//! `Access-Control-Expose-Headers` on responses) and the own appId from the connection
//! string's `ApplicationId`. `TRACELINK_PROPAGATION=w3c|default|hierarchical` switches mode.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use tracelink::Tracelink;
use tracelink::core::TelemetrySink;
use tracelink::core::model::Telemetry;

/// One call the test harness asks for.
#[derive(Debug, Deserialize)]
pub struct Call {
    /// Where to POST.
    pub url: String,
    /// The JSON body to POST.
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// A sink that writes each item as an envelope line to standard error.
#[derive(Debug, Default)]
pub struct StderrSink;

impl TelemetrySink for StderrSink {
    fn send(&self, item: Telemetry) {
        eprintln!("{}", tracelink::core::envelope::to_json(&item, ""));
    }
}

/// The service: `POST /test`, with the layer and the client of `tracelink`.
pub fn app(tracelink: &Tracelink) -> Router {
    let client = tracelink.reqwest_client(reqwest::Client::new());
    Router::new()
        .route("/test", post(run))
        .with_state(client)
        .layer(tracelink.layer())
}

async fn run(
    State(client): State<reqwest_middleware::ClientWithMiddleware>,
    Json(calls): Json<Vec<Call>>,
) -> StatusCode {
    for call in calls {
        // The suite's harness answers every call; a failed one is still "returned".
        let _ = client.post(&call.url).json(&call.arguments).send().await;
    }
    StatusCode::OK
}
