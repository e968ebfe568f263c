//! Serves the W3C Trace Context test service on 127.0.0.1:$PORT (default 5000).

use std::sync::Arc;

use tracelink_w3c_test_service::{StderrSink, app};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!(
        "w3c-test-service listening on http://{}/test",
        listener.local_addr()?
    );
    axum::serve(listener, app(Arc::new(StderrSink)))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
