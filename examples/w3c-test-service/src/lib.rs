//! The router of the W3C Trace Context test service; `main.rs` serves it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use tracelink_core::dependency::DependencyConfig;
use tracelink_core::model::Telemetry;
use tracelink_core::{Propagation, PropagationMode, TelemetrySink};
use tracelink_reqwest::DependencyMiddleware;
use tracelink_tower::server::CorrelationLayer;

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
        eprintln!("{}", tracelink_core::envelope::to_json(&item, ""));
    }
}

/// The service: `POST /test`.
pub fn app(sink: Arc<dyn TelemetrySink>) -> Router {
    let propagation = Propagation::default().mode(PropagationMode::W3c);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(DependencyMiddleware::with_config(
            DependencyConfig::new(sink.clone()).propagation(propagation.clone()),
        ))
        .build();
    Router::new()
        .route("/test", post(run))
        .with_state(client)
        .layer(
            CorrelationLayer::new(sink)
                .propagation(propagation)
                .cloud_role("w3c-test-service"),
        )
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
