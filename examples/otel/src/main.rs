//! tracelink next to an OpenTelemetry pipeline, set up piece by piece (the setup of
//! `tracelink-otel`'s crate docs). See the README beside this file.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use axum_tracing_opentelemetry::middleware::OtelAxumLayer;
use opentelemetry::context::FutureExt as _;
use opentelemetry::global;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use reqwest_middleware::ClientWithMiddleware;
use tracelink::core::dependency::DependencyConfig;
use tracelink::otel::{LegacyPropagator, OtelIdSource, TracelinkLayer, TracelinkSpanExporter};
use tracelink::reqwest::DependencyMiddleware;
use tracelink::tower::server::CorrelationLayer;
use tracing_subscriber::prelude::*;

#[derive(Clone)]
struct App {
    http: ClientWithMiddleware,
    base: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    // Where items go, and the role, instance and version: from the environment
    // (APPLICATIONINSIGHTS_CONNECTION_STRING, OTEL_SERVICE_NAME, ...). Without a connection
    // string, the local collector.
    let tracelink = tracelink::init()?;
    let sink = tracelink.sink();

    // 1. The tracer provider: spans go to tracelink's exporter through a batch span processor
    //    wrapped in `OperationNames`. The Resource names the role, as OpenTelemetry does.
    let exporter = TracelinkSpanExporter::new(sink.clone());
    let batch = BatchSpanProcessor::builder(exporter.clone()).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(exporter.operation_names(batch))
        .with_resource(
            Resource::builder()
                .with_service_name(tracelink.role().to_owned())
                .with_attribute(KeyValue::new(
                    "service.instance.id",
                    tracelink.role_instance().to_owned(),
                ))
                .build(),
        )
        .build();
    // Libraries calling `global::tracer`, and OtelAxumLayer's extraction, use the globals.
    global::set_tracer_provider(provider.clone());
    global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(LegacyPropagator::new()),
    ]));

    // 2. The subscriber: OpenTelemetry reports the spans, TracelinkLayer the logs, each once.
    //    OtelAxumLayer makes its span at TRACE under `otel::tracing`.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,otel::tracing=trace".into());
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("orders")))
        .with(TracelinkLayer::new(sink.clone()).opentelemetry_ids())
        .init();

    // 3. The layers: the server layer and the client middleware share OpenTelemetry's ids.
    //    OtelAxumLayer goes outside the server layer, which adopts its span.
    let client = DependencyConfig::new(sink.clone())
        .propagation(tracelink.propagation().clone())
        .id_source(OtelIdSource::new());
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(DependencyMiddleware::from_config(client))
        .build();
    let server = CorrelationLayer::new(sink.clone())
        .propagation(tracelink.propagation().clone())
        .id_source(OtelIdSource::new());

    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = Router::new()
        .route("/orders/{id}", get(order))
        .route("/inventory/{id}", get(inventory))
        .with_state(App {
            http,
            base: base.clone(),
        })
        .layer(server)
        .layer(OtelAxumLayer::default());
    println!("otel example listening on {base}");
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });

    if once {
        let res = reqwest::get(format!("{base}/orders/7")).await?;
        println!("GET /orders/7: {} {}", res.status(), res.text().await?);
        // Let the request's body end and its items be recorded.
        tokio::time::sleep(Duration::from_millis(200)).await;
    } else {
        tokio::signal::ctrl_c().await?;
    }
    serving.abort();
    // The spans still in the batch processor first, then tracelink's queue.
    provider.shutdown()?;
    tracelink.shutdown().await;
    Ok(())
}

/// A log, a span made with `global::tracer`, a span made current with the OpenTelemetry API
/// with a call inside, and an `#[instrument]`ed function.
async fn order(State(app): State<App>, Path(id): Path<u32>) -> Json<serde_json::Value> {
    tracing::info!(order = id, "order requested");
    // A library instrumented with the OpenTelemetry API (a database client).
    let tracer = global::tracer("orders-db");
    let mut query = tracer.start("SELECT orders");
    query.set_attribute(KeyValue::new("db.system.name", "postgresql"));
    query.end();
    // A span made current with the OpenTelemetry API (a gRPC client): the call inside is its
    // child.
    let grpc = Context::current_with_span(tracer.start("inventory.Check"));
    let stock: Option<serde_json::Value> = async {
        tracing::info!("checking stock");
        let url = format!("{}/inventory/{id}", app.base);
        match app.http.get(url).send().await {
            Ok(res) => res
                .text()
                .await
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok()),
            Err(_) => None,
        }
    }
    .with_context(grpc.clone())
    .await;
    grpc.span().end();
    let price = price(id).await;
    Json(serde_json::json!({ "order": id, "stock": stock, "price": price }))
}

#[tracing::instrument]
async fn price(id: u32) -> f64 {
    tracing::info!("pricing");
    f64::from(id) * 2.5
}

async fn inventory(Path(id): Path<u32>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "item": id, "stock": 3 }))
}
