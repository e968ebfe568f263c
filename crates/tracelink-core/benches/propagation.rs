//! Extract an incoming context and inject one outgoing call's headers: tracelink against
//! opentelemetry_sdk's `TraceContextPropagator` with opentelemetry-http's carriers, on the same
//! realistic headers, in the same run.
//!
//! `cargo bench -p tracelink-core --bench propagation`
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracelink_core::{AppId, Propagation, PropagationMode, SamplingDecision, TraceParent, extract};

fn incoming() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("orders.internal:8080"));
    h.insert("accept", HeaderValue::from_static("application/json"));
    h.insert("user-agent", HeaderValue::from_static("node-fetch/2.6"));
    h.insert(
        "traceparent",
        HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    );
    h.insert(
        "tracestate",
        HeaderValue::from_static("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,az=a1b2c3"),
    );
    h.insert(
        "request-context",
        HeaderValue::from_static("appId=cid-v1:caller-app-id"),
    );
    h
}

fn g_w3c(c: &mut Criterion, headers: &HeaderMap, cfg: &Propagation) {
    c.bench_function(
        "extract+inject/tracelink W3C only (same headers out as OTel)",
        |b| {
            b.iter(|| {
                let incoming = extract::extract(black_box(headers), cfg);
                let request = incoming.into_request(cfg, SamplingDecision::KEEP_ALL, None);
                let call = request.new_child();
                let mut out = HeaderMap::new();
                cfg.inject(&call, Some("inventory.internal:8080"), &mut out);
                out
            })
        },
    );
}

fn bench(c: &mut Criterion) {
    let headers = incoming();
    let cfg = Propagation::default().app_id(AppId::new("orders-app-id").unwrap());
    let otel = TraceContextPropagator::new();
    let ids = RandomIdGenerator::default();

    let mut g = c.benchmark_group("extract+inject");
    g.bench_function("tracelink", |b| {
        b.iter(|| {
            let incoming = extract::extract(black_box(&headers), &cfg);
            let request = incoming.into_request(&cfg, SamplingDecision::KEEP_ALL, None);
            let call = request.new_child();
            let mut out = HeaderMap::new();
            cfg.inject(&call, Some("inventory.internal:8080"), &mut out);
            out
        })
    });
    g.bench_function("opentelemetry_sdk TraceContextPropagator", |b| {
        b.iter(|| {
            let cx = otel.extract(&HeaderExtractor(black_box(&headers)));
            let parent = cx.span().span_context().clone();
            let child = SpanContext::new(
                parent.trace_id(),
                ids.new_span_id(),
                parent.trace_flags(),
                false,
                parent.trace_state().clone(),
            );
            let cx = cx.with_remote_span_context(child);
            let mut out = HeaderMap::new();
            otel.inject_context(&cx, &mut HeaderInjector(&mut out));
            out
        })
    });
    g.finish();

    // The same output as the OpenTelemetry propagator: traceparent and tracestate only.
    let w3c = Propagation::default().mode(PropagationMode::W3c);
    g_w3c(c, &headers, &w3c);

    let mut g = c.benchmark_group("extract");
    g.bench_function("tracelink", |b| {
        b.iter(|| extract::extract(black_box(&headers), &cfg))
    });
    g.bench_function("opentelemetry_sdk TraceContextPropagator", |b| {
        b.iter(|| otel.extract(&HeaderExtractor(black_box(&headers))))
    });
    g.finish();

    let ts = HeaderValue::from_static("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,az=a1b2c3");
    c.bench_function("tracestate from a normalized header value", |b| {
        b.iter(|| tracelink_core::TraceState::from_header_value(black_box(&ts)))
    });

    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    c.bench_function("traceparent parse+format", |b| {
        b.iter(|| TraceParent::parse(black_box(tp)).map(|t| t.to_header()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
