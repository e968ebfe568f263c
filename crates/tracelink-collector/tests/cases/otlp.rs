//! OTLP/HTTP: bodies recorded from the OpenTelemetry JavaScript SDK (tests/data/otlp), the
//! Rust `opentelemetry-otlp` exporter sending live, and bodies that must be refused.

use std::collections::HashMap;

use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use prost::Message;

use super::*;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/otlp/");

fn file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}{name}")).unwrap()
}

async fn post_otlp(
    c: &Collector,
    signal: &str,
    body: Vec<u8>,
    content_type: &str,
    extra: &[(&str, &str)],
) -> (u16, Vec<u8>) {
    let mut b = reqwest::Client::new()
        .post(format!("{}/v1/{signal}", c.url()))
        .header("content-type", content_type)
        .body(body);
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let r = b.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

/// The JavaScript SDK's bodies, protobuf and JSON, plain and gzipped: each answered 200 with an
/// empty response in its encoding, and the checkout shows as one transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_sdk_bodies_are_one_transaction() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    let c = start("otlp-files").await;
    for (i, signal) in ["traces", "logs", "metrics"].into_iter().enumerate() {
        let pb = file(&format!("otel-js-2.12.1-{signal}.pb"));
        let json = file(&format!("otel-js-2.12.1-{signal}.json"));
        let (pb, gz) = if i == 0 {
            (gzip(&pb), vec![("content-encoding", "gzip")])
        } else {
            (pb, vec![])
        };
        let (status, body) = post_otlp(&c, signal, pb, "application/x-protobuf", &gz).await;
        assert_eq!(status, 200, "{signal}: {}", String::from_utf8_lossy(&body));
        if i == 0 {
            let r = ExportTraceServiceResponse::decode(&body[..]).unwrap();
            assert_eq!(r.partial_success, None);
        }
        let (status, body) = post_otlp(&c, signal, json, "application/json", &[]).await;
        assert_eq!(status, 200, "{signal}: {}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v.get("partialSuccess").is_none_or(|p| p.is_null()), "{v}");
    }
    // 2 × (7 span items + 3 log records + 3 metric points).
    assert_eq!(count(&c).await, 26);
    assert_eq!(c.stats().items_accepted, 26);
    let mut f = query::ItemFilter::default();
    f.item_type = Some("request".into());
    let requests = c.store().items(&f).await.unwrap();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(r.name.as_deref(), Some("POST /checkout"));
        assert_eq!(r.cloud_role.as_deref(), Some("shop.checkout"));
        assert_eq!(r.role_instance.as_deref(), Some("checkout-1"));
        let tree = c
            .store()
            .operation(r.operation_id.as_deref().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(tree.orphans.is_empty());
        assert_eq!(tree.roots.len(), 1, "{:?}", tree.roots);
        let root = &tree.roots[0];
        let mut kids: Vec<(&str, Option<&str>, Option<&str>)> = root
            .children
            .iter()
            .map(|n| {
                (
                    n.item.item_type.as_str(),
                    n.item.name.as_deref(),
                    n.item.target.as_deref(),
                )
            })
            .collect();
        kids.sort();
        assert_eq!(
            kids,
            [
                (
                    "dependency",
                    Some("GET /items/7"),
                    Some("inventory.example:9090")
                ),
                (
                    "dependency",
                    Some("SELECT orders"),
                    Some("db.example:5432 | shop")
                ),
                ("dependency", Some("compute totals"), None),
                (
                    "dependency",
                    Some("publish orders"),
                    Some("kafka.example/orders")
                ),
                ("trace", Some("checkout started"), None),
                ("trace", Some("payment declined"), None),
            ]
        );
        let step = root
            .children
            .iter()
            .find(|n| n.item.name.as_deref() == Some("compute totals"))
            .unwrap();
        let mut step_kids: Vec<&str> = step
            .children
            .iter()
            .map(|n| n.item.item_type.as_str())
            .collect();
        step_kids.sort();
        assert_eq!(step_kids, ["exception", "trace"]);
    }
    let mut f = query::ItemFilter::default();
    f.item_type = Some("customMetric".into());
    let mut metrics: Vec<String> = c
        .store()
        .items(&f)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|i| i.name)
        .collect();
    metrics.sort();
    metrics.dedup();
    assert_eq!(
        metrics,
        ["checkout.duration", "orders.placed", "queue.depth"]
    );
}

/// Spans and logs through the real Rust exporter (protobuf, then JSON with gzip), with an
/// OpenTelemetry service calling a tracelink service calling a Node SDK service: one tree,
/// linked by span ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_otlp_exporter_and_other_sdks_make_one_transaction() {
    let c = start("otlp-rust").await;
    for protocol in [Protocol::HttpBinary, Protocol::HttpJson] {
        let url = c.url();
        let (done, wait) = tokio::sync::oneshot::channel();
        // The SDK's simple processors block on each export: on a thread of their own.
        std::thread::spawn(move || {
            let _ = done.send(export_with_sdk(&url, protocol));
        });
        let (trace, client_span) = wait.await.unwrap();
        // tracelink's request under the OTel client span, and its call under which the Node
        // SDK's request is (Node writes the parent as `|T.S.`).
        let mut r = Request::new("GET /stock", "200", Duration::from_millis(3));
        r.id = "1111111111111111".into();
        let mut request = tracelink_core::model::Telemetry::new(r);
        request
            .tags
            .insert(tracelink_core::model::tags::OPERATION_ID, trace.clone());
        request.tags.insert(
            tracelink_core::model::tags::OPERATION_PARENT_ID,
            client_span.clone(),
        );
        request
            .tags
            .insert(tracelink_core::model::tags::CLOUD_ROLE, "stock");
        let mut d = Dependency::new("GET /items", "Http");
        d.id = "2222222222222222".into();
        let mut call = tracelink_core::model::Telemetry::new(d);
        call.tags
            .insert(tracelink_core::model::tags::OPERATION_ID, trace.clone());
        call.tags.insert(
            tracelink_core::model::tags::OPERATION_PARENT_ID,
            "1111111111111111",
        );
        let mut node: serde_json::Value =
            serde_json::from_str(CAPTURES[0].lines().nth(1).unwrap()).unwrap();
        node["tags"]["ai.operation.id"] = trace.clone().into();
        node["tags"]["ai.operation.parentId"] = format!("|{trace}.2222222222222222.").into();
        let body = format!(
            "{}\n{}\n{node}\n",
            tracelink_core::envelope::to_json(&request, "k"),
            tracelink_core::envelope::to_json(&call, "k")
        );
        let (status, b) = post(&c, "/v2.1/track", body.into_bytes(), &[]).await;
        assert_eq!(status, 200, "{b}");

        let tree = c.store().operation(&trace).await.unwrap().unwrap();
        assert!(tree.orphans.is_empty(), "{:?}", tree.orphans);
        assert_eq!(tree.roots.len(), 1);
        let server = &tree.roots[0];
        assert_eq!(server.item.item_type, "request");
        assert_eq!(server.item.name.as_deref(), Some("GET /orders/{id}"));
        assert_eq!(server.item.cloud_role.as_deref(), Some("orders-otel"));
        assert_eq!(server.item.role_instance.as_deref(), Some("orders-1"));
        let client = server
            .children
            .iter()
            .find(|n| n.item.id.as_deref() == Some(client_span.as_str()))
            .unwrap();
        assert_eq!(client.item.item_type, "dependency");
        assert_eq!(client.item.source.as_deref(), Some("Http"));
        assert_eq!(client.item.target.as_deref(), Some("stock:8080"));
        let tl = &client.children[0];
        assert_eq!(tl.item.id.as_deref(), Some("1111111111111111"));
        assert_eq!(tl.children[0].children[0].item.item_type, "request");
        assert_eq!(
            tl.children[0].children[0].item.cloud_role.as_deref(),
            Some("node-ai2-peer")
        );
        // The log written inside the server span is its child, at its severity; the
        // exception event is an Exception under the internal span.
        let log = server
            .children
            .iter()
            .find(|n| n.item.item_type == "trace")
            .unwrap();
        assert_eq!(log.item.name.as_deref(), Some("stock low"));
        assert_eq!(log.item.result_code.as_deref(), Some("Warning"));
        let internal = server
            .children
            .iter()
            .find(|n| n.item.source.as_deref() == Some("InProc"))
            .unwrap();
        assert_eq!(internal.children[0].item.item_type, "exception");
        assert_eq!(
            internal.children[0].item.name.as_deref(),
            Some("OutOfStock: item 7 is out of stock")
        );
    }
}

/// Exports one server span with a client and an internal span under it, and a log record in
/// it, through `opentelemetry-otlp` to `url`; returns the trace id and the client span's id.
fn export_with_sdk(url: &str, protocol: Protocol) -> (String, String) {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("orders-otel")
        .with_attribute(KeyValue::new("service.instance.id", "orders-1"))
        .build();
    let mut spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{url}/v1/traces"));
    if protocol == Protocol::HttpJson {
        spans = spans.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    let spans = spans.build().unwrap();
    let logs = opentelemetry_otlp::LogExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{url}/v1/logs"))
        .with_headers(HashMap::new())
        .build()
        .unwrap();
    let tracer_provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(spans)
        .with_resource(resource.clone())
        .build();
    let logger_provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_simple_exporter(logs)
        .with_resource(resource)
        .build();
    let tracer = tracer_provider.tracer("orders");
    let logger = logger_provider.logger("orders");
    let server = tracer
        .span_builder("GET /orders/7")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", "/orders/{id}"),
            KeyValue::new("url.path", "/orders/7"),
            KeyValue::new("http.response.status_code", 200),
        ])
        .start(&tracer);
    let cx = Context::current_with_span(server);
    let trace = cx.span().span_context().trace_id().to_string();
    let mut client = tracer
        .span_builder("GET")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.full", "http://stock:8080/stock?id=7"),
            KeyValue::new("http.response.status_code", 200),
        ])
        .start_with_context(&tracer, &cx);
    let client_span = client.span_context().span_id().to_string();
    client.end();
    let mut step = tracer
        .span_builder("reserve")
        .with_kind(SpanKind::Internal)
        .start_with_context(&tracer, &cx);
    step.add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", "OutOfStock"),
            KeyValue::new("exception.message", "item 7 is out of stock"),
        ],
    );
    step.end();
    let mut record = logger.create_log_record();
    record.set_body("stock low".into());
    record.set_severity_number(Severity::Warn);
    let sc = cx.span().span_context().clone();
    record.set_trace_context(sc.trace_id(), sc.span_id(), Some(sc.trace_flags()));
    logger.emit(record);
    cx.span().end();
    tracer_provider.shutdown().unwrap();
    logger_provider.shutdown().unwrap();
    (trace, client_span)
}

/// Malformed, oversized and unmappable bodies: a 400 (or 413, 415) with a count, never a
/// panic, and what was stored stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_otlp_bodies_are_refused_and_counted() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as PbKeyValue, any_value};
    let c = start("otlp-bad").await;
    let pb = file("otel-js-2.12.1-traces.pb");
    let (status, _) = post_otlp(&c, "traces", pb.clone(), "application/x-protobuf", &[]).await;
    assert_eq!(status, 200);
    let stored = count(&c).await;
    let string = |s: String| AnyValue {
        value: Some(any_value::Value::StringValue(s)),
    };
    let mut many = ExportTraceServiceRequest::decode(&pb[..]).unwrap();
    many.resource_spans[0].scope_spans[0].spans.truncate(1);
    many.resource_spans[0].scope_spans[0].spans[0].attributes = (0..10_000)
        .map(|i| PbKeyValue {
            key: format!("k{i}"),
            value: Some(string("v".into())),
            ..PbKeyValue::default()
        })
        .collect();
    let many = many.encode_to_vec();
    let protobuf = "application/x-protobuf";
    let json = "application/json";
    for (what, body, ct, extra, want) in [
        (
            "truncated protobuf",
            pb[..pb.len() / 2].to_vec(),
            protobuf,
            vec![],
            400,
        ),
        ("garbage", b"\xff\xfe\xfd".to_vec(), protobuf, vec![], 400),
        (
            "wrong JSON types",
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":7}]}]}]}"#.to_vec(),
            json,
            vec![],
            400,
        ),
        ("not JSON", b"{".to_vec(), json, vec![], 400),
        ("10k attributes", many, protobuf, vec![], 400),
        (
            "bad gzip",
            gzip(&pb)[..20].to_vec(),
            protobuf,
            vec![("content-encoding", "gzip")],
            400,
        ),
        (
            "gzip bomb",
            gzip(&vec![0u8; 8 * 1024 * 1024]),
            protobuf,
            vec![("content-encoding", "gzip")],
            413,
        ),
        ("text", b"hello".to_vec(), "text/plain", vec![], 415),
    ] {
        let (status, body) = post_otlp(&c, "traces", body, ct, &extra).await;
        assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(&body));
        if ct == protobuf && want != 415 {
            // google.rpc.Status: code 3 (invalid argument) or 8 (resource exhausted).
            let s = Status::decode(&body[..]).unwrap();
            assert!(s.code == 3 || s.code == 8, "{what}: {s:?}");
            assert!(!s.message.is_empty());
        }
    }
    // Over the 1 MiB body limit, announced: 413.
    let (status, _) = post_otlp(&c, "logs", vec![0u8; 2 * 1024 * 1024], protobuf, &[]).await;
    assert_eq!(status, 413);
    // A huge string is kept, cut to the field limits.
    let mut huge = ExportTraceServiceRequest::decode(&pb[..]).unwrap();
    huge.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(900_000);
    let (status, _) = post_otlp(&c, "traces", huge.encode_to_vec(), protobuf, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(count(&c).await, stored * 2);
    let stats = c.stats();
    assert_eq!(stats.bodies_rejected, 6, "{stats:?}");
    assert_eq!(stats.bodies_too_large, 2, "{stats:?}");
    assert_eq!(stats.items_rejected, 1, "{stats:?}");
    let api = reqwest::get(format!("{}/api/stats", c.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["bodies_rejected"], 6);
}

/// `google.rpc.Status`, as OTLP error answers carry it.
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}
