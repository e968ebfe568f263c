//! One server variant of the load benchmark, on 127.0.0.1 (the driver runs it as
//! `tracelink-load serve <variant> [backend-addr]`). It prints `listening <addr>` and serves:
//! - `GET /hello/{id}`: the same small JSON for every variant;
//! - `GET /__alloc`: heap allocations so far (a counting global allocator), for the driver.
//!
//! Variants: `bare` (axum alone), `tracelink` (server layer + exporter at 100 %, real batching,
//! serialization and gzip into a transport that discards the bytes), `tracelink10` (the same,
//! sampling 10 %), `tracelink0` (sampling 0 %: propagation only), `peer` (axum-tracing-opentelemetry 0.42 + tracing-opentelemetry 0.34 +
//! the opentelemetry_sdk 0.33 batch span processor + opentelemetry-application-insights 0.46
//! with an HttpClient that discards the request), `tracelink-forward` (like `tracelink`, and the
//! handler calls the backend once through reqwest with tracelink's middleware).
//!
//! The `-real` variants serve the realistic handler of [`crate::real`] (spans, events, one
//! backend call), each set up the way its users set it up:
//! - `bare-real`: reqwest alone, and a `tracing` subscriber that drops everything (what the
//!   instrumentation macros cost by themselves);
//! - `tracelink-real`, `tracelink10-real`, `tracelink0-real`: the facade
//!   (`tracelink::builder()` with a transport that discards the bytes), its server layer,
//!   reqwest client and `tracing` layer behind an INFO filter, at 100 %, 10 % and 0 %;
//! - `tracelink-otel-real`: the facade with OpenTelemetry (`Builder::opentelemetry`:
//!   `tracing-opentelemetry`, `TracelinkSpanExporter` behind a batch span processor,
//!   `OtelIdSource` on the layers), the same INFO filter;
//! - `tracelink-live-real`: `tracelink-real` with Live Metrics and a viewer watching (an
//!   endpoint on 127.0.0.1 answers every ping and post as subscribed): every item counted
//!   for Live Metrics, a post every second; `tracelink-liveidle-real`: the same with nobody
//!   watching (a ping every 5 s, nothing counted);
//! - `tracelink-metrics-real`: `tracelink-real` and ten custom metric values per request
//!   (`tracelink::metric`, two dimensions each, five names) from an axum middleware;
//!   `tracelink-metrics0-real`: the same middleware tracking none (what the middleware itself
//!   costs);
//! - `peer-real` lives in `benches/load-peer` (reqwest-tracing needs OpenTelemetry 0.32).
use std::alloc::System;
use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use bytes::Bytes;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tracelink_core::TelemetrySink;
use tracelink_export::transport::{
    BoxFuture, Transport, TransportError, TransportRequest, TransportResponse,
};
use tracelink_export::{Exporter, Sampling};
use tracelink_tower::server::CorrelationLayer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

use crate::real::{self, Http};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const CONN: &str =
    "InstrumentationKey=00000000-1111-2222-3333-444444444444;IngestionEndpoint=http://127.0.0.1:9";

#[derive(serde::Serialize)]
struct Hello {
    id: u32,
    message: &'static str,
    ok: bool,
}

async fn hello(Path(id): Path<u32>) -> axum::Json<Hello> {
    axum::Json(Hello {
        id,
        message: "hello, world",
        ok: true,
    })
}

/// Accepts every batch and drops the bytes (after the exporter serialized and gzipped them).
struct Discard;

impl Transport for Discard {
    fn send(
        &self,
        request: TransportRequest,
    ) -> BoxFuture<'_, Result<TransportResponse, TransportError>> {
        std::hint::black_box(request.body.len());
        Box::pin(async { Ok(TransportResponse::new(200, Bytes::new())) })
    }
}

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

fn exporter(sampling: Sampling) -> Exporter {
    Exporter::builder(CONN)
        .transport(Discard)
        .no_spool()
        .sampling(sampling)
        .cloud_role("load")
        .build()
        .expect("exporter")
}

fn base() -> Router {
    with_alloc(Router::new().route("/hello/{id}", get(hello)))
}

/// Adds `GET /__alloc`: heap allocations so far.
fn with_alloc(router: Router) -> Router {
    router.route(
        "/__alloc",
        get(|| async { GLOBAL.stats().allocations.to_string() }),
    )
}

/// The facade set up as its users do, exporting into [`Discard`] (no spool), sampling
/// `percentage`; with OpenTelemetry when `otel`; with Live Metrics when `live` names an
/// endpoint.
fn facade(percentage: f64, otel: bool, live: Option<&str>) -> tracelink::Tracelink {
    let conn = match live {
        Some(endpoint) => format!("{CONN};LiveEndpoint={endpoint}"),
        None => CONN.to_owned(),
    };
    let sampling = if percentage >= 100.0 {
        Sampling::off()
    } else {
        Sampling::fixed(percentage)
    };
    let builder = tracelink::builder()
        .connection_string(conn)
        .role("load")
        .role_instance("load-0")
        .sampling(sampling)
        .exporter(|e| e.transport(Discard).no_spool());
    let builder = if otel {
        builder.opentelemetry()
    } else {
        builder
    };
    // `TRACELINK_LOAD_STANDARD_METRICS=0`: without the standard metrics, which are on by
    // default and record the operations that sampling drops too.
    let builder = match std::env::var("TRACELINK_LOAD_STANDARD_METRICS").as_deref() {
        Ok("0") => builder.no_standard_metrics(),
        _ => builder,
    };
    builder.init().expect("tracelink")
}

/// A Live Metrics endpoint on 127.0.0.1. When `watching`, someone always watches: every ping
/// and post is answered `x-ms-qps-subscribed: true`, so the client counts every item and posts
/// every second (the cost of a viewer in the portal's Live Metrics pane); otherwise nobody
/// does, and the client pings every 5 s. `TRACELINK_LOAD_SHOW_LIVE=1` prints each request.
async fn live_endpoint(watching: bool) -> String {
    // Watching: posts every second. Not: no polling hint, so pings every 5 s.
    let (subscribed, hint) = if watching {
        ("true", "1000")
    } else {
        ("false", "5000")
    };
    let answer = move || async move {
        if std::env::var_os("TRACELINK_LOAD_SHOW_LIVE").is_some() {
            eprintln!("live metrics: ping or post received");
        }
        (
            [
                ("x-ms-qps-subscribed", subscribed),
                ("x-ms-qps-service-polling-interval-hint", hint),
            ],
            "",
        )
    };
    let app = Router::new()
        .route("/QuickPulseService.svc/ping", axum::routing::post(answer))
        .route("/QuickPulseService.svc/post", axum::routing::post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// `calls` custom metric values per request, each looked up by name and dimensions as an
/// application writes them (`tracelink::metric(..).dimension(..).track(..)`).
async fn metrics(
    axum::extract::State(calls): axum::extract::State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    const NAMES: [&str; 5] = [
        "orders.value",
        "orders.items",
        "cart.size",
        "stock.latency",
        "queue.depth",
    ];
    for (i, name) in NAMES.iter().cycle().take(calls).enumerate() {
        tracelink::metric(name)
            .dimension("channel", if i % 2 == 0 { "web" } else { "app" })
            .dimension("region", "eu-west")
            .track(i as f64);
    }
    next.run(request).await
}

/// Serves `variant` until killed, on one thread (the driver pins it to one core).
pub(crate) fn run(variant: &str, backend: Option<String>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(serve(variant, backend));
}

async fn serve(variant: &str, backend: Option<String>) {
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    let app = match variant {
        "bare" => base(),
        "tracelink" | "tracelink10" | "tracelink0" => {
            let e = exporter(match variant {
                "tracelink10" => Sampling::fixed(10.0),
                "tracelink0" => Sampling::fixed(0.0),
                _ => Sampling::off(),
            });
            let app = base().layer(CorrelationLayer::new(e.sink()).cloud_role("load"));
            keep.push(Box::new(e));
            app
        }
        "tracelink-forward" => {
            let e = exporter(Sampling::off());
            let sink: Arc<dyn TelemetrySink> = e.sink();
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(tracelink_reqwest::DependencyMiddleware::new(sink.clone()))
                .build();
            let url = format!("http://{}/hello/1", backend.expect("backend address"));
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
                .layer(CorrelationLayer::new(sink).cloud_role("load"));
            keep.push(Box::new(e));
            app
        }
        "bare-real" => {
            tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::new())
                .expect("subscriber");
            let http = Http::Plain(reqwest::Client::new());
            with_alloc(real::router(http, &backend.expect("backend address")))
        }
        "tracelink-real"
        | "tracelink10-real"
        | "tracelink0-real"
        | "tracelink-otel-real"
        | "tracelink-live-real"
        | "tracelink-liveidle-real"
        | "tracelink-metrics-real"
        | "tracelink-metrics0-real" => {
            let percentage = match variant {
                "tracelink10-real" => 10.0,
                "tracelink0-real" => 0.0,
                _ => 100.0,
            };
            let otel = variant == "tracelink-otel-real";
            let live = match variant {
                "tracelink-live-real" => Some(live_endpoint(true).await),
                "tracelink-liveidle-real" => Some(live_endpoint(false).await),
                _ => None,
            };
            let tl = facade(percentage, otel, live.as_deref());
            tracing_subscriber::registry()
                .with(LevelFilter::INFO)
                .with(tl.opentelemetry_layer())
                .with(tl.tracing_layer())
                .init();
            let http = Http::Middleware(tl.reqwest_client(reqwest::Client::new()));
            let mut app = with_alloc(real::router(http, &backend.expect("backend address")));
            let calls = match variant {
                "tracelink-metrics-real" => Some(10),
                "tracelink-metrics0-real" => Some(0),
                _ => None,
            };
            if let Some(calls) = calls {
                app = app.layer(axum::middleware::from_fn_with_state(calls, metrics));
            }
            let app = app.layer(tl.layer());
            keep.push(Box::new(tl));
            app
        }
        "peer" => {
            use opentelemetry::trace::TracerProvider as _;
            use tracing_subscriber::prelude::*;
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            let ai = opentelemetry_application_insights::Exporter::new_from_connection_string(
                CONN, NullClient,
            )
            .expect("exporter");
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(ai)
                .build();
            let subscriber = tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("load")));
            tracing::subscriber::set_global_default(subscriber).expect("subscriber");
            keep.push(Box::new(provider));
            base().layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default())
        }
        other => panic!("unknown variant {other}"),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("listening {}", listener.local_addr().expect("addr"));
    axum::serve(listener, app).await.expect("serve");
    drop(keep);
}
