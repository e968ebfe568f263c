//! `tracelink-load-peer serve <variant> <backend>`: the peer stack of the load benchmark
//! (axum-tracing-opentelemetry + tracing-opentelemetry + the batch span processor +
//! opentelemetry-application-insights with an HttpClient that discards the request) whose
//! handler calls the backend once through reqwest with `reqwest-tracing`. On OpenTelemetry 0.32,
//! the newest reqwest-tracing supports. Same protocol as `tracelink-load serve`: prints
//! `listening <addr>`, serves `GET /hello/{id}` and `GET /__alloc`.
//!
//! Variants:
//! - `peer-forward`: a handler that only calls the backend;
//! - `peer-real`: the realistic handler of `benches/load/src/real.rs` (the same file, compiled
//!   here), with a `tracing` filter at INFO plus `otel::tracing=TRACE` for
//!   axum-tracing-opentelemetry's server span.

#[allow(dead_code)]
#[path = "../../load/src/real.rs"]
mod real;

use std::alloc::System;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tracing_subscriber::prelude::*;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const CONN: &str =
    "InstrumentationKey=00000000-1111-2222-3333-444444444444;IngestionEndpoint=http://127.0.0.1:9";

#[derive(Debug)]
struct NullClient;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for NullClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        std::hint::black_box(request.body().len());
        Ok(http::Response::builder().status(200).body(Bytes::new())?)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: tracelink-load-peer serve peer-forward|peer-real <backend>";
    let variant = args.get(2).cloned().expect(usage);
    let backend = args.get(3).cloned().expect(usage);
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let ai =
        opentelemetry_application_insights::Exporter::new_from_connection_string(CONN, NullClient)
            .expect("exporter");
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(ai)
        .build();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(reqwest_tracing::TracingMiddleware::default())
        .build();
    let tracer = provider.tracer("load");
    if variant == "peer-real" {
        let filter = tracing_subscriber::filter::Targets::new()
            .with_default(tracing::Level::INFO)
            .with_target("otel::tracing", tracing::Level::TRACE);
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::set_global_default(subscriber).expect("subscriber");
        let app = real::router(real::Http::Middleware(client), &backend)
            .route(
                "/__alloc",
                get(|| async { GLOBAL.stats().allocations.to_string() }),
            )
            .layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default());
        return serve(app, provider).await;
    }
    assert_eq!(variant, "peer-forward", "{usage}");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::set_global_default(subscriber).expect("subscriber");
    let url = format!("http://{backend}/hello/1");
    let app = Router::new()
        .route(
            "/hello/{id}",
            get(move || {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    client
                        .get(&url)
                        .send()
                        .await
                        .map(|_| "forwarded")
                        .unwrap_or("failed")
                }
            }),
        )
        .route(
            "/__alloc",
            get(|| async { GLOBAL.stats().allocations.to_string() }),
        )
        .layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default());
    serve(app, provider).await;
}

async fn serve(app: Router, provider: opentelemetry_sdk::trace::SdkTracerProvider) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("listening {}", listener.local_addr().expect("addr"));
    axum::serve(listener, app).await.expect("serve");
    drop(provider);
}
