//! Items serialized + gzipped per second: tracelink's batch encoding against
//! opentelemetry-application-insights 0.46 exporting the same server spans through a null
//! `HttpClient`, in the same run; plus tracelink at each gzip level, to choose the default.
//!
//! `cargo bench -p tracelink-export --bench export`
#![allow(missing_docs)]

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use tracelink_core::model::{Request as RequestData, Telemetry, tags};
use tracelink_core::{Correlation, Propagation, SamplingDecision};

const N: usize = 500;
const IKEY: &str = "00000000-1111-2222-3333-444444444444";

#[derive(Debug)]
struct NullClient;

#[async_trait::async_trait]
impl HttpClient for NullClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        black_box(request.body().len());
        Ok(Response::builder().status(200).body(Bytes::new()).unwrap())
    }
}

fn ours(i: usize) -> Telemetry {
    let c = Correlation::new_root_named(
        &Propagation::default(),
        SamplingDecision::KEEP_ALL,
        Some("GET /orders/{id}"),
    );
    let mut r = RequestData::new(
        "GET /orders/{id}",
        "200",
        Duration::from_micros(1500 + i as u64),
    );
    r.url = format!("http://orders.internal:8080/orders/{i}?expand=items");
    let mut t = c.to_item(r);
    t.tags.insert(tags::CLOUD_ROLE, "orders-api");
    t.tags.insert(tags::CLOUD_ROLE_INSTANCE, "orders-7d9f-1");
    t.tags.insert(tags::INTERNAL_SDK_VERSION, tags::SDK_VERSION);
    t.tags.insert(tags::LOCATION_IP, "10.1.2.3");
    t
}

fn theirs(i: usize) -> SpanData {
    let ctx = SpanContext::new(
        TraceId::from_bytes(tracelink_core::TraceId::random().to_bytes()),
        SpanId::from_bytes(tracelink_core::SpanId::random().to_bytes()),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let start = SystemTime::now();
    SpanData {
        span_context: ctx,
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Server,
        name: Cow::Borrowed("GET /orders/{id}"),
        start_time: start,
        end_time: start + Duration::from_micros(1500 + i as u64),
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", "/orders/{id}"),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("server.address", "orders.internal"),
            KeyValue::new("server.port", 8080),
            KeyValue::new("url.path", format!("/orders/{i}")),
            KeyValue::new("url.query", "expand=items"),
            KeyValue::new("http.response.status_code", 200),
            KeyValue::new("client.address", "10.1.2.3"),
        ],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("bench").build(),
    }
}

fn bench(c: &mut Criterion) {
    let items: Vec<Telemetry> = (0..N).map(ours).collect();
    let spans: Vec<SpanData> = (0..N).map(theirs).collect();
    let exporter = opentelemetry_application_insights::Exporter::new_from_connection_string(
        format!("InstrumentationKey={IKEY};IngestionEndpoint=http://127.0.0.1:9"),
        NullClient,
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let mut g = c.benchmark_group("serialize+gzip 500 requests");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("tracelink (level 1, the default)", |b| {
        b.iter(|| tracelink_export::encode_batch(black_box(&items), IKEY, 1))
    });
    g.bench_function(
        "opentelemetry-application-insights 0.46 (null HttpClient)",
        |b| {
            b.iter_batched(
                || spans.clone(),
                |batch| rt.block_on(exporter.export(batch)),
                BatchSize::SmallInput,
            )
        },
    );
    g.finish();

    let mut g = c.benchmark_group("tracelink gzip level");
    g.throughput(Throughput::Elements(N as u64));
    for level in [0u32, 1, 3, 6, 9] {
        let size = tracelink_export::encode_batch(&items, IKEY, level).len();
        eprintln!(
            "level {level}: {:.1} bytes per item gzipped",
            size as f64 / N as f64
        );
        g.bench_function(format!("level {level}"), |b| {
            b.iter(|| tracelink_export::encode_batch(black_box(&items), IKEY, level))
        });
    }
    let raw: usize = items
        .iter()
        .map(|i| tracelink_core::envelope::to_json(i, IKEY).len() + 1)
        .sum();
    eprintln!("uncompressed: {:.1} bytes per item", raw as f64 / N as f64);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
