//! Serves the W3C Trace Context test service on 127.0.0.1:$PORT (default 5000).

use std::sync::Arc;
use std::time::Duration;

use tracelink_core::TelemetrySink;
use tracelink_export::Exporter;
use tracelink_w3c_test_service::{StderrSink, app};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    // With APPLICATIONINSIGHTS_CONNECTION_STRING set, telemetry goes to ingestion.
    let exporter = match std::env::var_os(tracelink_core::connection_string::ENV_VAR) {
        Some(_) => Some(
            Exporter::builder_from_env()
                .cloud_role("w3c-test-service")
                .build()?,
        ),
        None => None,
    };
    let sink: Arc<dyn TelemetrySink> = match &exporter {
        Some(e) => e.sink(),
        None => Arc::new(StderrSink),
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!(
        "w3c-test-service listening on http://{}/test",
        listener.local_addr()?
    );
    axum::serve(listener, app(sink))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    if let Some(e) = exporter {
        e.shutdown(Duration::from_secs(5)).await?;
    }
    Ok(())
}
