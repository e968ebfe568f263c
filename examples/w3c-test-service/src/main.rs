//! Serves the W3C Trace Context test service on 127.0.0.1:$PORT (default 5000).

use tracelink_w3c_test_service::{StderrSink, app};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    // With APPLICATIONINSIGHTS_CONNECTION_STRING set, telemetry goes to ingestion; without
    // it, each envelope is written to standard error.
    let mut setup = tracelink::builder().role("w3c-test-service");
    if std::env::var_os(tracelink::core::connection_string::ENV_VAR).is_none() {
        setup = setup.sink(StderrSink);
    }
    let tracelink = setup.init()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!(
        "w3c-test-service listening on http://{}/test",
        listener.local_addr()?
    );
    axum::serve(listener, app(&tracelink))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // Everything queued is sent first, so the counters printed are the final ones.
    tracelink.flush().await;
    if let Some(stats) = tracelink.stats() {
        eprintln!("exporter: {stats:?}");
    }
    tracelink.shutdown().await;
    Ok(())
}
