//! The tracing and OpenTelemetry bridge (DESIGN invariants 1-3,
//! SPEC 6.2-6.3).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::routing::get;
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use serde_json::Value;
use tracelink_core::MemorySink;
use tracelink_core::model::{Telemetry, TelemetryData, TelemetryKind};
use tracelink_otel::{REPORTED_ATTRIBUTE, TracelinkLayer, TracelinkSpanExporter};
use tracelink_reqwest::DependencyMiddleware;
use tracelink_tests::breeze::Schema;
use tracelink_tower::server::CorrelationLayer;
use tracing_subscriber::prelude::*;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tracing::instrument(skip(client))]
async fn load_items(
    client: reqwest_middleware::ClientWithMiddleware,
    backend: SocketAddr,
    order: u32,
) -> String {
    tracing::info!(order, "loading items");
    client
        .get(format!("http://{backend}/items"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// frontend handler → `#[instrument]` fn → reqwest → backend, with the tracing layer installed.
/// With `otel_ids`, the frontend's request ids come from OpenTelemetry (`OtelIdSource`).
async fn scenario(sink: Arc<MemorySink>, otel_ids: bool) -> (Vec<Telemetry>, http::HeaderMap) {
    let seen: Arc<std::sync::Mutex<Option<http::HeaderMap>>> = Arc::default();
    let s2 = seen.clone();
    let backend = serve(
        Router::new()
            .route(
                "/items",
                get(move |h: http::HeaderMap| {
                    *s2.lock().unwrap() = Some(h);
                    async { "items" }
                }),
            )
            .layer(CorrelationLayer::new(sink.clone()).cloud_role("backend")),
    )
    .await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(DependencyMiddleware::new(sink.clone()))
        .build();
    let frontend = serve(
        Router::new()
            .route(
                "/orders/{id}",
                get(move || {
                    let client = client.clone();
                    async move {
                        tracing::warn!("handler started");
                        load_items(client, backend, 7).await
                    }
                }),
            )
            .layer({
                let layer = CorrelationLayer::new(sink.clone()).cloud_role("frontend");
                if otel_ids {
                    layer.id_source(tracelink_otel::OtelIdSource::new())
                } else {
                    layer
                }
            }),
    )
    .await;
    let body = reqwest::get(format!("http://{frontend}/orders/7"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "items");
    for _ in 0..200 {
        if sink
            .items()
            .iter()
            .filter(|i| i.kind() == TelemetryKind::Request)
            .count()
            >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let headers = seen.lock().unwrap().clone().unwrap();
    (sink.take(), headers)
}

fn by_kind(items: &[Telemetry], kind: TelemetryKind) -> Vec<&Telemetry> {
    items.iter().filter(|i| i.kind() == kind).collect()
}

fn role<'a>(items: &'a [Telemetry], kind: TelemetryKind, role: &str) -> &'a Telemetry {
    items
        .iter()
        .find(|i| i.kind() == kind && i.tags.get("ai.cloud.role") == Some(role))
        .unwrap()
}

/// Request(frontend) ← InProc(load_items) ← Dependency ← Request(backend); logs in place.
#[tokio::test]
async fn instrumented_function_is_a_node_of_the_tree() {
    let sink = Arc::new(MemorySink::new());
    let subscriber = tracing_subscriber::registry().with(TracelinkLayer::new(sink.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let (items, _) = scenario(sink, false).await;
    let front = role(&items, TelemetryKind::Request, "frontend");
    let back = role(&items, TelemetryKind::Request, "backend");
    assert_eq!(
        by_kind(&items, TelemetryKind::Request).len(),
        2,
        "no Request twice"
    );
    let deps = by_kind(&items, TelemetryKind::Dependency);
    let inproc = deps
        .iter()
        .find(|d| matches!(&d.data, TelemetryData::Dependency(x) if x.dependency_type == "InProc"))
        .unwrap();
    let http = deps.iter().find(|d| matches!(&d.data, TelemetryData::Dependency(x) if x.dependency_type.starts_with("Http"))).unwrap();
    assert_eq!(deps.len(), 2);
    assert_eq!(
        inproc.operation_parent_id(),
        front.id(),
        "the instrumented fn is under the request"
    );
    assert_eq!(
        http.operation_parent_id(),
        inproc.id(),
        "the call is under the instrumented fn"
    );
    assert_eq!(back.operation_parent_id(), http.id());
    match &inproc.data {
        TelemetryData::Dependency(d) => assert_eq!(d.name, "load_items"),
        _ => unreachable!(),
    }
    assert_eq!(
        inproc.properties["order"], "7",
        "span fields are properties"
    );
    let traces = by_kind(&items, TelemetryKind::Trace);
    let started = traces
        .iter()
        .find(|t| matches!(&t.data, TelemetryData::Trace(m) if m.message == "handler started"))
        .unwrap();
    let loading = traces
        .iter()
        .find(|t| matches!(&t.data, TelemetryData::Trace(m) if m.message == "loading items"))
        .unwrap();
    assert_eq!(
        started.operation_parent_id(),
        front.id(),
        "a log in the handler is under the request"
    );
    assert_eq!(
        loading.operation_parent_id(),
        inproc.id(),
        "a log in the fn is under its span"
    );
    let op = front.operation_id();
    assert!(
        items.iter().all(|i| i.operation_id() == op),
        "one operation"
    );
    assert!(
        traces
            .iter()
            .all(|t| t.tags.get("ai.operation.name") == Some("GET /orders/{id}"))
    );
}

/// DESIGN invariant 3: a filter that hides everything of tracelink's and everything below
/// WARN changes no header and loses no Request or Dependency.
#[tokio::test]
async fn log_filters_do_not_touch_correlation() {
    let sink = Arc::new(MemorySink::new());
    let filter = tracing_subscriber::EnvFilter::new(
        "warn,tracelink=off,tracelink_tower=off,tracelink_reqwest=off",
    );
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(TracelinkLayer::new(sink.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let (items, headers) = scenario(sink, false).await;
    assert_eq!(by_kind(&items, TelemetryKind::Request).len(), 2);
    let deps = by_kind(&items, TelemetryKind::Dependency);
    assert_eq!(
        deps.len(),
        1,
        "the INFO span is filtered out; the HTTP dependency is not"
    );
    let front = role(&items, TelemetryKind::Request, "frontend");
    assert_eq!(deps[0].operation_parent_id(), front.id());
    let t = front.operation_id().unwrap();
    let dep_id = deps[0].id().unwrap();
    assert_eq!(headers["traceparent"], format!("00-{t}-{dep_id}-01"));
    assert_eq!(headers["request-id"], format!("|{t}.{dep_id}."));
    // The WARN event passes the filter and is still correlated.
    assert_eq!(by_kind(&items, TelemetryKind::Trace).len(), 1);
}

// ---------------------------------------------------------------------------------------
// The SpanExporter mapping table
// ---------------------------------------------------------------------------------------

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

fn span(
    kind: SpanKind,
    name: &str,
    id: &str,
    parent: Option<&str>,
    attrs: Vec<KeyValue>,
) -> SpanData {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_hex(TRACE).unwrap(),
            SpanId::from_hex(id).unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: parent.map_or(SpanId::INVALID, |p| SpanId::from_hex(p).unwrap()),
        parent_span_is_remote: false,
        span_kind: kind,
        name: Cow::Owned(name.to_owned()),
        start_time: start,
        end_time: start + Duration::from_millis(12),
        attributes: attrs,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("test").build(),
    }
}

fn export(batch: Vec<SpanData>) -> Vec<Value> {
    let sink = Arc::new(MemorySink::new());
    let exporter = TracelinkSpanExporter::new(sink.clone());
    let mut fut = std::pin::pin!(exporter.export(batch));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_ready());
    let schema = Schema::breeze();
    sink.take()
        .iter()
        .map(|i| {
            let v: Value = serde_json::from_str(&tracelink_core::envelope::to_json(
                i,
                "00000000-1111-2222-3333-444444444444",
            ))
            .unwrap();
            let errors = schema.validate_envelope(&v);
            assert!(errors.is_empty(), "{errors:?}");
            v
        })
        .collect()
}

use std::future::Future;

/// A span's links map to `_MS.links`, as the Application Insights SDKs write it.
#[test]
fn span_links_become_ms_links() {
    let mut consumer = span(
        SpanKind::Consumer,
        "process batch",
        "00f067aa0ba902b7",
        None,
        vec![],
    );
    let linked = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("b7ad6b7169203331").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    consumer
        .links
        .links
        .push(opentelemetry::trace::Link::with_context(linked));
    let items = export(vec![consumer]);
    let links: Value = serde_json::from_str(
        items[0]["data"]["baseData"]["properties"]["_MS.links"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        links,
        serde_json::json!([{"operation_Id": "4bf92f3577b34da6a3ce929d0e0e4736", "id": "b7ad6b7169203331"}])
    );
}

#[test]
fn span_mapping_table() {
    let server = span(
        SpanKind::Server,
        "GET /orders/{id}",
        "00f067aa0ba902b7",
        Some("b7ad6b7169203331"),
        vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", "/orders/{id}"),
            KeyValue::new("url.scheme", ""),
            KeyValue::new("server.address", "shop.example"),
            KeyValue::new("server.port", 8443),
            KeyValue::new("url.path", "/orders/7"),
            KeyValue::new("url.query", "x=1"),
            KeyValue::new("http.response.status_code", 404),
        ],
    );
    let mut client = span(
        SpanKind::Client,
        "GET",
        "1111111111111111",
        Some("00f067aa0ba902b7"),
        vec![
            KeyValue::new("http.method", "GET"),
            KeyValue::new("http.url", "http://inventory:9090/items/7?fields=all"),
            KeyValue::new("http.status_code", 500),
        ],
    );
    client.events = {
        let mut e = SpanEvents::default();
        e.events.push(Event::new(
            "exception",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            vec![
                KeyValue::new("exception.type", "io::Error"),
                KeyValue::new("exception.message", "connection reset"),
            ],
            0,
        ));
        e
    };
    let internal = span(
        SpanKind::Internal,
        &"処理".repeat(700),
        "2222222222222222",
        Some("00f067aa0ba902b7"),
        vec![],
    );
    let db = span(
        SpanKind::Client,
        "SELECT orders",
        "3333333333333333",
        Some("2222222222222222"),
        vec![
            KeyValue::new("db.system", "postgresql"),
            KeyValue::new("db.statement", "SELECT * FROM orders WHERE id = $1"),
            KeyValue::new("server.address", "db"),
        ],
    );
    let reported = span(
        SpanKind::Server,
        "GET /x",
        "4444444444444444",
        None,
        vec![KeyValue::new(REPORTED_ATTRIBUTE, true)],
    );
    // Children end first: they come before their server span in the batch.
    let out = export(vec![client, internal, db, reported, server]);
    let find = |id: &str| {
        out.iter()
            .find(|v| v["data"]["baseData"]["id"] == id)
            .unwrap_or_else(|| panic!("{id}"))
    };

    let r = &find("00f067aa0ba902b7")["data"]["baseData"];
    assert_eq!(r["name"], "GET /orders/{id}");
    assert_eq!(
        r["url"], "http://shop.example:8443/orders/7?x=1",
        "never ://host with an empty scheme"
    );
    assert_eq!(r["responseCode"], "404");
    assert_eq!(r["success"], false, "a 404 is a failed request");

    let c = find("1111111111111111");
    assert_eq!(c["data"]["baseType"], "RemoteDependencyData");
    assert_eq!(c["data"]["baseData"]["name"], "GET /items/7");
    assert_eq!(c["data"]["baseData"]["target"], "inventory:9090");
    assert_eq!(c["data"]["baseData"]["type"], "Http");
    assert_eq!(
        (
            c["data"]["baseData"]["resultCode"].as_str(),
            c["data"]["baseData"]["success"].as_bool()
        ),
        (Some("500"), Some(false))
    );
    assert_eq!(c["tags"]["ai.operation.parentId"], "00f067aa0ba902b7");
    assert_eq!(
        c["tags"]["ai.operation.name"], "GET /orders/{id}",
        "the operation name reaches dependencies"
    );

    let ex = out
        .iter()
        .find(|v| v["data"]["baseType"] == "ExceptionData")
        .unwrap();
    assert_eq!(
        ex["data"]["baseData"]["exceptions"][0]["typeName"],
        "io::Error"
    );
    assert_eq!(ex["tags"]["ai.operation.parentId"], "1111111111111111");

    let i = &find("2222222222222222")["data"]["baseData"];
    assert_eq!(i["type"], "InProc");
    assert_eq!(
        i["name"].as_str().unwrap().chars().count(),
        1024,
        "multi-byte name cut at 1024 chars"
    );

    let d = &find("3333333333333333")["data"]["baseData"];
    assert_eq!(
        (d["type"].as_str(), d["target"].as_str()),
        (Some("postgresql"), Some("db"))
    );
    assert_eq!(d["data"], "SELECT * FROM orders WHERE id = $1");

    assert!(
        out.iter()
            .all(|v| v["data"]["baseData"]["id"] != "4444444444444444"),
        "reported spans are skipped"
    );
    assert!(out.iter().all(|v| v["tags"]["ai.operation.id"] == TRACE));
}

/// DESIGN invariants 1-2 with tracing-opentelemetry: the request id is the OpenTelemetry
/// span id of the request span, spans made with the OpenTelemetry API (and `tracing` spans
/// bridged to it) inside the handler are its children, and the request is reported once.
#[tokio::test]
async fn opentelemetry_spans_hang_under_our_request() {
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use tracelink_otel::OtelIdSource;
    let sink = Arc::new(MemorySink::new());
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(TracelinkSpanExporter::new(sink.clone()))
        .build();
    let tracer = provider.tracer("test");
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer.clone()))
        .with(TracelinkLayer::new(sink.clone()).span_level(None));
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(move || {
                let tracer = tracer.clone();
                async move {
                    // An OpenTelemetry-instrumented library (think sqlx) makes its own span.
                    let mut db = tracer.start("SELECT orders");
                    db.set_attribute(KeyValue::new("db.system", "postgresql"));
                    db.end();
                    // A `tracing` span, bridged to OpenTelemetry.
                    tracing::info_span!("price order").in_scope(|| tracing::info!("priced"));
                    "ok"
                }
            }),
        )
        .layer(
            CorrelationLayer::new(sink.clone())
                .cloud_role("orders")
                .id_source(OtelIdSource::new()),
        );
    let addr = serve(app).await;
    let res = reqwest::Client::new()
        .get(format!("http://{addr}/orders/7"))
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "ok");
    for _ in 0..200 {
        if !by_kind(&sink.items(), TelemetryKind::Request).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = provider.force_flush();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let items = sink.take();
    let requests = by_kind(&items, TelemetryKind::Request);
    assert_eq!(
        requests.len(),
        1,
        "reported once, not again by the exporter: {items:#?}"
    );
    let request = requests[0];
    assert_eq!(request.operation_id(), Some(TRACE));
    assert_eq!(request.operation_parent_id(), Some("b7ad6b7169203331"));
    let deps = by_kind(&items, TelemetryKind::Dependency);
    let name = |d: &&Telemetry| match &d.data {
        TelemetryData::Dependency(x) => x.name.clone(),
        _ => String::new(),
    };
    let db = deps
        .iter()
        .find(|d| name(d) == "SELECT orders")
        .expect("the OpenTelemetry span");
    let price = deps
        .iter()
        .find(|d| name(d) == "price order")
        .expect("the bridged tracing span");
    assert_eq!(
        db.operation_parent_id(),
        request.id(),
        "OTel child's parent is our request id"
    );
    assert_eq!(price.operation_parent_id(), request.id());
    assert!(items.iter().all(|i| i.operation_id() == Some(TRACE)));
}

/// With tracing-opentelemetry, an `#[instrument]`ed function is reported by OpenTelemetry,
/// and the reqwest call inside it is its child: its id is the span's OpenTelemetry id.
#[tokio::test]
async fn instrumented_function_under_opentelemetry_parents_its_calls() {
    use opentelemetry::trace::TracerProvider as _;
    let sink = Arc::new(MemorySink::new());
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(TracelinkSpanExporter::new(sink.clone()))
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(TracelinkLayer::new(sink.clone()).opentelemetry_ids());
    let _guard = tracing::subscriber::set_default(subscriber);
    let (items, _) = scenario(sink, true).await;
    let _ = provider.force_flush();
    assert_eq!(
        by_kind(&items, TelemetryKind::Request).len(),
        2,
        "{items:#?}"
    );
    let front = role(&items, TelemetryKind::Request, "frontend");
    let deps = by_kind(&items, TelemetryKind::Dependency);
    let inproc = deps
        .iter()
        .find(|d| matches!(&d.data, TelemetryData::Dependency(x) if x.name == "load_items"))
        .expect("exported by OpenTelemetry");
    let http = deps.iter().find(|d| matches!(&d.data, TelemetryData::Dependency(x) if x.dependency_type.starts_with("Http"))).unwrap();
    assert_eq!(deps.len(), 2, "the instrumented fn is reported once");
    assert_eq!(inproc.operation_parent_id(), front.id());
    assert_eq!(
        http.operation_parent_id(),
        inproc.id(),
        "the call is under the OpenTelemetry span"
    );
    let log = by_kind(&items, TelemetryKind::Trace)
        .into_iter()
        .find(|t| matches!(&t.data, TelemetryData::Trace(m) if m.message == "loading items"))
        .unwrap();
    assert_eq!(log.operation_parent_id(), inproc.id());
}

/// A tracer provider exporting into `sink` as each span ends, with the exporter's
/// `OperationNames` around its processor when `names`, and spans held at most `max_hold`.
fn provider_into(
    sink: &Arc<MemorySink>,
    names: bool,
    max_hold: Duration,
) -> opentelemetry_sdk::trace::SdkTracerProvider {
    use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor};
    let exporter = TracelinkSpanExporter::new(sink.clone()).max_hold(max_hold);
    let simple = SimpleSpanProcessor::new(exporter.clone());
    match names {
        true => SdkTracerProvider::builder().with_span_processor(exporter.operation_names(simple)),
        false => SdkTracerProvider::builder().with_span_processor(simple),
    }
    .build()
}

fn operation_name(t: &Telemetry) -> Option<&str> {
    t.tags.get(tracelink_core::model::tags::OPERATION_NAME)
}

fn dependency_names(items: &[Telemetry]) -> Vec<String> {
    items
        .iter()
        .filter_map(|t| match &t.data {
            TelemetryData::Dependency(d) => Some(d.name.clone()),
            _ => None,
        })
        .collect()
}

/// `ai.operation.name` is on every item of an operation (SPEC 6.2): a span exported before its
/// server span (here each span is exported as it ends) waits for it with `OperationNames`
/// around the exporter's processor, and gets its name; without it, it goes unnamed.
#[test]
fn spans_exported_before_their_server_span_get_its_name() {
    use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
    for names in [true, false] {
        let sink = Arc::new(MemorySink::new());
        let provider = provider_into(&sink, names, Duration::from_secs(30));
        let tracer = provider.tracer("test");
        let server = tracer
            .span_builder("GET")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/orders/{id}"),
            ])
            .start(&tracer);
        let cx = opentelemetry::Context::current_with_span(server);
        tracer.start_with_context("SELECT orders", &cx).end();
        let held = sink.items().is_empty();
        assert_eq!(held, names, "held while the operation is open");
        cx.span().end();
        let items = sink.take();
        assert_eq!(items.len(), 2, "{items:#?}");
        let request = by_kind(&items, TelemetryKind::Request)[0];
        let query = by_kind(&items, TelemetryKind::Dependency)[0];
        assert_eq!(operation_name(request), Some("GET /orders/{id}"));
        let want = names.then_some("GET /orders/{id}");
        assert_eq!(operation_name(query), want, "with OperationNames: {names}");
        let _ = provider.shutdown();
    }
}

/// The same with a batch span processor whose batch goes out while the request is open: the
/// child, exported first, is sent with the name as soon as the request span ends.
#[test]
fn a_batch_exported_before_the_server_span_ends_gets_its_name() {
    use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
    let sink = Arc::new(MemorySink::new());
    let exporter = TracelinkSpanExporter::new(sink.clone());
    let batch = BatchSpanProcessor::builder(exporter.clone())
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_millis(20))
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(exporter.operation_names(batch))
        .build();
    let tracer = provider.tracer("test");
    let server = tracer
        .span_builder("POST /pay")
        .with_kind(SpanKind::Server)
        .start(&tracer);
    let cx = opentelemetry::Context::current_with_span(server);
    tracer.start_with_context("charge card", &cx).end();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        sink.items().is_empty(),
        "exported and held, or not exported yet"
    );
    cx.span().end();
    for _ in 0..400 {
        if sink.items().len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let items = sink.take();
    assert_eq!(items.len(), 2, "{items:#?}");
    assert!(items.iter().all(|t| operation_name(t) == Some("POST /pay")));
    let _ = provider.shutdown();
}

/// Held spans are never lost, and do not wait long: after `max_hold` they are sent without the
/// name, even when no other span ends, and their operation is not waited for again; a
/// provider's `force_flush` sends what is held. The spans of an operation that is not a
/// request go unnamed, as they would.
#[test]
fn held_spans_are_sent_after_max_hold_and_on_flush() {
    use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
    let sink = Arc::new(MemorySink::new());
    let provider = provider_into(&sink, true, Duration::from_millis(100));
    let tracer = provider.tracer("test");
    // A background operation: its first span is internal, and stays open.
    let job = opentelemetry::Context::current_with_span(tracer.start("nightly job"));
    tracer.start_with_context("step 1", &job).end();
    assert!(sink.items().is_empty(), "held");
    for _ in 0..400 {
        if !sink.items().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        dependency_names(&sink.take()),
        ["step 1"],
        "sent after max_hold"
    );
    tracer.start_with_context("step 2", &job).end();
    assert_eq!(dependency_names(&sink.take()), ["step 2"], "not held again");

    let other = opentelemetry::Context::current_with_span(tracer.start("weekly job"));
    tracer.start_with_context("step A", &other).end();
    assert!(sink.items().is_empty(), "held");
    let _ = provider.force_flush();
    assert_eq!(
        dependency_names(&sink.take()),
        ["step A"],
        "flushed, not lost"
    );
    job.span().end();
    other.span().end();
    let items = sink.take();
    assert_eq!(dependency_names(&items), ["nightly job", "weekly job"]);
    assert!(items.iter().all(|t| operation_name(t).is_none()));
    let _ = provider.shutdown();
}

// ---------------------------------------------------------------------------------------
// The documented OpenTelemetry setups (tracelink-otel's crate docs): two services on
// 127.0.0.1, a frontend with the OpenTelemetry pipeline and a plain backend.
// ---------------------------------------------------------------------------------------

use axum_tracing_opentelemetry::middleware::OtelAxumLayer;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SimpleSpanProcessor};
use reqwest_middleware::ClientWithMiddleware;
use tracelink_core::dependency::DependencyConfig;
use tracelink_otel::OtelIdSource;

/// The caller's span in requests sent with a `traceparent`.
const CALLER: &str = "b7ad6b7169203331";

/// Where axum-tracing-opentelemetry's `OtelAxumLayer` sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OtelAxum {
    Absent,
    OutsideCorrelationLayer,
    InsideCorrelationLayer,
}

/// A frontend setup of the crate docs' table.
#[derive(Clone, Copy, Debug)]
struct Setup {
    /// `TracelinkLayer::opentelemetry_ids` records the logs; without it the exporter maps
    /// them (`TracelinkSpanExporter::tracing_events`).
    tracelink_layer: bool,
    otel_axum: OtelAxum,
    /// The subscriber's filter.
    filter: &'static str,
    /// Whether the request comes with a caller's `traceparent`.
    traceparent: bool,
}

impl Setup {
    /// The setup of the crate docs, filtered as OtelAxumLayer's users filter.
    const DOCUMENTED: Self = Self {
        tracelink_layer: true,
        otel_axum: OtelAxum::Absent,
        filter: "info,otel::tracing=trace",
        traceparent: true,
    };
}

/// What the frontend handler saw.
#[derive(Clone, Debug, Default)]
struct Seen {
    /// The OpenTelemetry span current in the handler.
    handler_span: String,
    /// The span of `grpc.outer`, made current with the OpenTelemetry API.
    outer: String,
}

#[derive(Clone)]
struct Front {
    client: ClientWithMiddleware,
    tracer: SdkTracer,
    backend: SocketAddr,
    seen: Arc<std::sync::Mutex<Seen>>,
}

/// A handler as a user writes it: a log, a span made with the OpenTelemetry API (a database
/// client), a span made current with the OpenTelemetry API with a log and a call inside (a
/// gRPC client), and an `#[instrument]`ed function with a log and a call.
async fn front_handler(f: Front) -> String {
    let handler_span = opentelemetry::Context::current()
        .span()
        .span_context()
        .span_id()
        .to_string();
    tracing::warn!("handler started");
    let mut db = f.tracer.start("db.query");
    db.set_attribute(KeyValue::new("db.system", "postgresql"));
    db.end();
    let outer = opentelemetry::Context::current_with_span(f.tracer.start("grpc.outer"));
    let outer_id = outer.span().span_context().span_id().to_string();
    let client = f.client.clone();
    let url = format!("http://{}/items", f.backend);
    async move {
        tracing::info!("in grpc.outer");
        client.get(url).send().await.unwrap();
    }
    .with_context(outer.clone())
    .await;
    outer.span().end();
    *f.seen.lock().unwrap() = Seen {
        handler_span,
        outer: outer_id,
    };
    load_items(f.client, f.backend, 7).await
}

/// The backend: a plain server layer, keeping the headers of each request.
async fn plain_backend(
    sink: &Arc<MemorySink>,
) -> (SocketAddr, Arc<std::sync::Mutex<Vec<http::HeaderMap>>>) {
    let seen: Arc<std::sync::Mutex<Vec<http::HeaderMap>>> = Arc::default();
    let s2 = seen.clone();
    let addr = serve(
        Router::new()
            .route(
                "/items",
                get(move |h: http::HeaderMap| {
                    s2.lock().unwrap().push(h);
                    async { "items" }
                }),
            )
            .layer(CorrelationLayer::new(sink.clone()).cloud_role("backend")),
    )
    .await;
    (addr, seen)
}

/// The provider of the crate docs, exporting each span as it ends.
fn documented_provider(exporter: TracelinkSpanExporter) -> SdkTracerProvider {
    let simple = SimpleSpanProcessor::new(exporter.clone());
    SdkTracerProvider::builder()
        .with_span_processor(exporter.operation_names(simple))
        .build()
}

/// OpenTelemetry's global propagator, which OtelAxumLayer extracts with, for one test at a
/// time: `traceparent` and the legacy headers while alive, none afterwards.
struct GlobalPropagator(#[allow(dead_code)] tokio::sync::MutexGuard<'static, ()>);

static GLOBALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl GlobalPropagator {
    async fn install() -> Self {
        let guard = GLOBALS.lock().await;
        opentelemetry::global::set_text_map_propagator(
            opentelemetry::propagation::TextMapCompositePropagator::new(vec![
                Box::new(opentelemetry_sdk::propagation::TraceContextPropagator::new()),
                Box::new(tracelink_otel::LegacyPropagator::new()),
            ]),
        );
        Self(guard)
    }
}

impl Drop for GlobalPropagator {
    fn drop(&mut self) {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry::trace::noop::NoopTextMapPropagator::new(),
        );
    }
}

struct Outcome {
    items: Vec<Telemetry>,
    seen: Seen,
    backend_headers: Vec<http::HeaderMap>,
}

/// Runs one request through a frontend set up as `setup` and its backend.
async fn run(setup: Setup) -> Outcome {
    let _globals = match setup.otel_axum {
        OtelAxum::Absent => None,
        _ => Some(GlobalPropagator::install().await),
    };
    let sink = Arc::new(MemorySink::new());
    let exporter = match setup.tracelink_layer {
        true => TracelinkSpanExporter::new(sink.clone()),
        false => TracelinkSpanExporter::new(sink.clone()).tracing_events(),
    };
    let provider = documented_provider(exporter);
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new(setup.filter))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("frontend")))
        .with(
            setup
                .tracelink_layer
                .then(|| TracelinkLayer::new(sink.clone()).opentelemetry_ids()),
        );
    let _guard = tracing::subscriber::set_default(subscriber);
    let (backend, backend_headers) = plain_backend(&sink).await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(DependencyMiddleware::from_config(
            DependencyConfig::new(sink.clone()).id_source(OtelIdSource::new()),
        ))
        .build();
    let front = Front {
        client,
        tracer: provider.tracer("frontend"),
        backend,
        seen: Arc::default(),
    };
    let f2 = front.clone();
    let app = Router::new().route("/orders/{id}", get(move || front_handler(f2.clone())));
    let correlation = CorrelationLayer::new(sink.clone())
        .cloud_role("frontend")
        .id_source(OtelIdSource::new());
    let app = match setup.otel_axum {
        OtelAxum::Absent => app.layer(correlation),
        OtelAxum::OutsideCorrelationLayer => app.layer(correlation).layer(OtelAxumLayer::default()),
        OtelAxum::InsideCorrelationLayer => app.layer(OtelAxumLayer::default()).layer(correlation),
    };
    let addr = serve(app).await;
    let mut request = reqwest::Client::new().get(format!("http://{addr}/orders/7"));
    if setup.traceparent {
        request = request.header("traceparent", format!("00-{TRACE}-{CALLER}-01"));
    }
    let body = request.send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "items");
    // One frontend Request and two backend Requests.
    for _ in 0..400 {
        if by_kind(&sink.items(), TelemetryKind::Request).len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let _ = provider.force_flush();
    let _ = provider.shutdown();
    let seen = front.seen.lock().unwrap().clone();
    let backend_headers = backend_headers.lock().unwrap().clone();
    Outcome {
        items: sink.take(),
        seen,
        backend_headers,
    }
}

fn dependency<'a>(items: &'a [Telemetry], name: &str) -> Option<&'a Telemetry> {
    items
        .iter()
        .find(|t| matches!(&t.data, TelemetryData::Dependency(d) if d.name == name))
}

fn is_backend(t: &Telemetry) -> bool {
    t.tags.get("ai.cloud.role") == Some("backend")
}

/// How many Trace items have this message.
fn logs(items: &[Telemetry], message: &str) -> Vec<Telemetry> {
    items
        .iter()
        .filter(|t| matches!(&t.data, TelemetryData::Trace(m) if m.message == message))
        .cloned()
        .collect()
}

/// One tree (DESIGN invariants 1 and 2): one Request for the frontend, one operation, unique
/// ids, every item under an item of the tree, and the handler's spans, logs and calls where
/// the handler made them.
fn assert_one_tree(out: &Outcome, setup: Setup) {
    let items = &out.items;
    let context = format!("{setup:?}: {items:#?}");
    let front: Vec<_> = by_kind(items, TelemetryKind::Request)
        .into_iter()
        .filter(|t| !is_backend(t))
        .collect();
    assert_eq!(front.len(), 1, "one Request per request, {context}");
    let front = front[0];
    let front_id = front.id().unwrap();
    assert_eq!(
        front.operation_parent_id(),
        setup.traceparent.then_some(CALLER),
        "{context}"
    );
    if setup.traceparent {
        assert_eq!(front.operation_id(), Some(TRACE), "{context}");
    }
    assert!(
        items
            .iter()
            .all(|i| i.operation_id() == front.operation_id()),
        "one operation, {context}"
    );
    let ids: Vec<&str> = items.iter().filter_map(|i| i.id()).collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "ids are unique, {context}");
    for i in items.iter().filter(|i| i.id() != Some(front_id)) {
        let parent = i.operation_parent_id().unwrap_or_else(|| panic!("{i:#?}"));
        assert!(ids.contains(&parent), "{i:#?} is in the tree, {context}");
    }

    // The handler runs in the request: under the Request, or with an OpenTelemetry server
    // middleware inside the server layer, under its span, an InProc dependency of the
    // Request. (When a filter disables that middleware's span, it makes the caller's context
    // current instead; what starts in it is reported under the Request.)
    let handler = match out.seen.handler_span.as_str() {
        CALLER => front_id,
        span => span,
    };
    if handler != front_id {
        let nested = items.iter().find(|i| i.id() == Some(handler)).unwrap();
        assert_eq!(nested.operation_parent_id(), Some(front_id), "{context}");
        assert_eq!(
            setup.otel_axum,
            OtelAxum::InsideCorrelationLayer,
            "{context}"
        );
        assert!(
            matches!(&nested.data, TelemetryData::Dependency(d) if d.dependency_type == "InProc"),
            "{context}"
        );
    }
    let db = dependency(items, "db.query").unwrap();
    assert_eq!(db.operation_parent_id(), Some(handler), "{context}");
    assert_eq!(operation_name(db), Some("GET /orders/{id}"), "{context}");

    // A call inside a span made current with the OpenTelemetry API is its child, and the
    // backend's Request is the call's.
    let outer = dependency(items, "grpc.outer").unwrap();
    assert_eq!(outer.id(), Some(out.seen.outer.as_str()), "{context}");
    assert_eq!(outer.operation_parent_id(), Some(handler), "{context}");
    let call = items
        .iter()
        .find(|i| i.kind() == TelemetryKind::Dependency && i.operation_parent_id() == outer.id())
        .unwrap_or_else(|| panic!("a call under grpc.outer, {context}"));
    let call_id = call.id().unwrap();
    let t = front.operation_id().unwrap();
    assert!(
        out.backend_headers
            .iter()
            .any(|h| h["traceparent"] == format!("00-{t}-{call_id}-01").as_str()),
        "the traceparent sent names the call, {context}"
    );
    assert!(
        by_kind(items, TelemetryKind::Request)
            .iter()
            .any(|r| is_backend(r) && r.operation_parent_id() == Some(call_id)),
        "{context}"
    );
}

/// Each log is one Trace item in each documented setup (the crate docs' table), in the
/// request, in a span made current with the OpenTelemetry API, and in an `#[instrument]`ed
/// function.
#[tokio::test]
async fn logs_are_reported_once_in_each_documented_setup() {
    // TracelinkLayer without OpenTelemetry.
    let sink = Arc::new(MemorySink::new());
    let subscriber = tracing_subscriber::registry().with(TracelinkLayer::new(sink.clone()));
    let guard = tracing::subscriber::set_default(subscriber);
    let (items, _) = scenario(sink, false).await;
    drop(guard);
    for message in ["handler started", "loading items"] {
        assert_eq!(logs(&items, message).len(), 1, "{message}: {items:#?}");
    }

    let setups = [
        Setup::DOCUMENTED,
        Setup {
            otel_axum: OtelAxum::OutsideCorrelationLayer,
            ..Setup::DOCUMENTED
        },
        Setup {
            otel_axum: OtelAxum::InsideCorrelationLayer,
            ..Setup::DOCUMENTED
        },
        Setup {
            tracelink_layer: false,
            ..Setup::DOCUMENTED
        },
    ];
    for setup in setups {
        let out = run(setup).await;
        let items = &out.items;
        for message in ["handler started", "in grpc.outer", "loading items"] {
            let found = logs(items, message);
            assert_eq!(found.len(), 1, "{message} once, {setup:?}: {items:#?}");
        }
        assert_one_tree(&out, setup);
        if setup.tracelink_layer {
            // Where each log was made.
            let parent = |m| logs(items, m)[0].operation_parent_id().map(str::to_owned);
            let load = dependency(items, "load_items").unwrap();
            assert_eq!(parent("loading items").as_deref(), load.id());
            assert_eq!(
                parent("in grpc.outer").as_deref(),
                Some(out.seen.outer.as_str())
            );
            assert_eq!(
                parent("handler started").as_deref(),
                Some(out.seen.handler_span.as_str())
            );
        }
    }
}

/// DESIGN invariant 2 with axum-tracing-opentelemetry: one Request per request with
/// `OtelAxumLayer` outside `CorrelationLayer` (its span is adopted: the Request's id is the
/// span's) or inside it (its span is an InProc dependency of the Request), with and without
/// a caller's `traceparent`.
#[tokio::test]
async fn one_request_per_request_with_otel_axum_layer_in_either_order() {
    for otel_axum in [
        OtelAxum::OutsideCorrelationLayer,
        OtelAxum::InsideCorrelationLayer,
    ] {
        for traceparent in [true, false] {
            let setup = Setup {
                otel_axum,
                traceparent,
                ..Setup::DOCUMENTED
            };
            let out = run(setup).await;
            assert_one_tree(&out, setup);
            let front = by_kind(&out.items, TelemetryKind::Request)
                .into_iter()
                .find(|r| !is_backend(r))
                .unwrap();
            if otel_axum == OtelAxum::OutsideCorrelationLayer {
                assert_eq!(
                    front.id(),
                    Some(out.seen.handler_span.as_str()),
                    "the Request is OtelAxumLayer's span"
                );
            }
            assert_eq!(front.tags.get("ai.cloud.role"), Some("frontend"));
            assert_eq!(operation_name(front), Some("GET /orders/{id}"));
        }
    }
}

/// DESIGN invariant 3: with the subscriber filtered at WARN, the request's span (and
/// OtelAxumLayer's) is filtered out, and spans made with the OpenTelemetry API inside the
/// request still have its operation id, parent and name; a call inside one is still its
/// child.
#[tokio::test]
async fn at_warn_opentelemetry_api_spans_keep_the_request() {
    let cases = [
        OtelAxum::Absent,
        OtelAxum::OutsideCorrelationLayer,
        OtelAxum::InsideCorrelationLayer,
    ]
    .into_iter()
    .flat_map(|a| [(a, true), (a, false)]);
    for (otel_axum, traceparent) in cases {
        let setup = Setup {
            filter: "warn",
            traceparent,
            otel_axum,
            ..Setup::DOCUMENTED
        };
        let out = run(setup).await;
        assert_one_tree(&out, setup);
        let front = by_kind(&out.items, TelemetryKind::Request)
            .into_iter()
            .find(|r| !is_backend(r))
            .unwrap();
        if otel_axum != OtelAxum::InsideCorrelationLayer || !traceparent {
            assert_eq!(
                front.id(),
                Some(out.seen.handler_span.as_str()),
                "the request is current in OpenTelemetry, {setup:?}"
            );
        }
        let outer = dependency(&out.items, "grpc.outer").unwrap();
        assert_eq!(operation_name(outer), Some("GET /orders/{id}"));
        assert!(
            dependency(&out.items, "load_items").is_none(),
            "the INFO span is filtered out"
        );
        assert_eq!(logs(&out.items, "handler started").len(), 1);
        assert!(logs(&out.items, "in grpc.outer").is_empty());
    }
}

/// A call made inside a span made current with the OpenTelemetry API is that span's child:
/// its Dependency's parent is the span, the `traceparent` sent names the Dependency, and the
/// downstream Request's parent is the Dependency.
#[tokio::test]
async fn a_call_inside_an_opentelemetry_span_is_its_child() {
    let out = run(Setup::DOCUMENTED).await;
    assert_one_tree(&out, Setup::DOCUMENTED);
    let items = &out.items;
    let outer = dependency(items, "grpc.outer").unwrap();
    let calls: Vec<_> = items
        .iter()
        .filter(|i| matches!(&i.data, TelemetryData::Dependency(d) if d.dependency_type.starts_with("Http")))
        .collect();
    assert_eq!(calls.len(), 2, "{items:#?}");
    let under_outer = calls
        .iter()
        .find(|c| c.operation_parent_id() == outer.id())
        .expect("the call inside grpc.outer");
    let load = dependency(items, "load_items").unwrap();
    assert!(
        calls.iter().any(|c| c.operation_parent_id() == load.id()),
        "the call in the instrumented fn is its child"
    );
    let backend = by_kind(items, TelemetryKind::Request)
        .into_iter()
        .find(|r| is_backend(r) && r.operation_parent_id() == under_outer.id())
        .expect("the downstream Request under the call");
    assert_eq!(backend.operation_id(), Some(TRACE));
}

/// Without any operation of tracelink's, a log and a call inside a span made current with
/// the OpenTelemetry API (a background job) are the span's children, once each.
#[tokio::test]
async fn logs_and_calls_in_a_background_opentelemetry_span() {
    let sink = Arc::new(MemorySink::new());
    let provider = documented_provider(TracelinkSpanExporter::new(sink.clone()));
    let tracer = provider.tracer("job");
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer.clone()))
        .with(TracelinkLayer::new(sink.clone()).opentelemetry_ids());
    let _guard = tracing::subscriber::set_default(subscriber);
    let (backend, headers) = plain_backend(&sink).await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(DependencyMiddleware::from_config(
            DependencyConfig::new(sink.clone()).id_source(OtelIdSource::new()),
        ))
        .build();
    let job = opentelemetry::Context::current_with_span(tracer.start("nightly job"));
    let job_id = job.span().span_context().span_id().to_string();
    let trace = job.span().span_context().trace_id().to_string();
    async {
        tracing::info!("job step");
        client
            .get(format!("http://{backend}/items"))
            .send()
            .await
            .unwrap();
    }
    .with_context(job.clone())
    .await;
    job.span().end();
    for _ in 0..200 {
        if !by_kind(&sink.items(), TelemetryKind::Request).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = provider.force_flush();
    let items = sink.take();
    let log = logs(&items, "job step");
    assert_eq!(log.len(), 1, "{items:#?}");
    assert_eq!(log[0].operation_parent_id(), Some(job_id.as_str()));
    let call = by_kind(&items, TelemetryKind::Dependency)
        .into_iter()
        .find(|d| {
            d.operation_parent_id() == Some(job_id.as_str()) && d.id() != Some(job_id.as_str())
        })
        .expect("the call under the job's span");
    assert_eq!(call.operation_id(), Some(trace.as_str()));
    let call_id = call.id().unwrap();
    assert_eq!(
        headers.lock().unwrap()[0]["traceparent"],
        format!("00-{trace}-{call_id}-01").as_str()
    );
    assert!(dependency(&items, "nightly job").is_some());
    let _ = provider.shutdown();
}

/// The operation's user context reaches the spans made with the OpenTelemetry API inside the
/// request (DESIGN invariant 7), and so does the authenticated user a handler sets.
#[tokio::test]
async fn opentelemetry_spans_carry_the_user_of_their_request() {
    let sink = Arc::new(MemorySink::new());
    let provider = documented_provider(TracelinkSpanExporter::new(sink.clone()));
    let tracer = provider.tracer("users");
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer.clone()))
        .with(TracelinkLayer::new(sink.clone()).opentelemetry_ids());
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = Router::new()
        .route(
            "/profile",
            get(move |c: tracelink_tower::Correlation| {
                let tracer = tracer.clone();
                async move {
                    tracer.start("before sign-in").end();
                    c.set_authenticated_user("alice", None);
                    tracer.start("after sign-in").end();
                    "ok"
                }
            }),
        )
        .layer(CorrelationLayer::new(sink.clone()).id_source(OtelIdSource::new()));
    let addr = serve(app).await;
    let res = reqwest::Client::new()
        .get(format!("http://{addr}/profile"))
        .header(
            "cookie",
            "ai_user=u-42|2026-11-01T00:00:00.000Z; ai_session=s-7|1764460800000|1764460800000",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "ok");
    for _ in 0..200 {
        if !by_kind(&sink.items(), TelemetryKind::Request).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = provider.force_flush();
    let items = sink.take();
    let before = dependency(&items, "before sign-in").unwrap();
    let after = dependency(&items, "after sign-in").unwrap();
    for span in [before, after] {
        assert_eq!(span.tags.get("ai.user.id"), Some("u-42"), "{span:#?}");
        assert_eq!(span.tags.get("ai.session.id"), Some("s-7"));
        assert_eq!(operation_name(span), Some("GET /profile"));
        assert!(
            !span.properties.contains_key("ai.user.id"),
            "a tag, not a property"
        );
    }
    assert_eq!(before.tags.get("ai.user.authUserId"), None);
    assert_eq!(after.tags.get("ai.user.authUserId"), Some("alice"));
    let _ = provider.shutdown();
}

/// The provider's Resource gives the exported items their role, instance and version, as the
/// Azure Monitor exporters map them; the SDK's default `unknown_service` names no role.
#[test]
fn resource_attributes_become_role_instance_and_version() {
    use opentelemetry_sdk::Resource;
    let export_one = |resource: Resource| {
        let sink = Arc::new(MemorySink::new());
        let exporter = TracelinkSpanExporter::new(sink.clone());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(
                exporter.operation_names(SimpleSpanProcessor::new(exporter.clone())),
            )
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("test");
        let mut span = tracer.start("work");
        span.add_event("checkpoint", vec![]);
        span.end();
        let _ = provider.shutdown();
        sink.take()
    };
    let items = export_one(
        Resource::builder_empty()
            .with_service_name("orders")
            .with_attributes([
                KeyValue::new("service.namespace", "shop"),
                KeyValue::new("service.instance.id", "orders-7"),
                KeyValue::new("service.version", "1.4.2"),
            ])
            .build(),
    );
    assert_eq!(items.len(), 2, "the span and its event");
    for item in &items {
        assert_eq!(item.tags.get("ai.cloud.role"), Some("shop.orders"));
        assert_eq!(item.tags.get("ai.cloud.roleInstance"), Some("orders-7"));
        assert_eq!(item.tags.get("ai.application.ver"), Some("1.4.2"));
    }
    let items = export_one(Resource::builder().build());
    assert_eq!(items[0].tags.get("ai.cloud.role"), None, "{items:#?}");
    assert_eq!(items[0].tags.get("ai.application.ver"), None);
}
