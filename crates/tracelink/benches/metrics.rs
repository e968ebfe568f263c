//! What the metrics add per request: `Client::metric(..).dimension(..).track(..)` (looked up
//! by name and dimensions each time, as code usually calls it), a `MetricSeries` held, the
//! same series tracked from several threads at once, and the standard metrics' count of one
//! Request item (on the exporter's thread, before sampling). Ten tracked values per request
//! cost ten times the first line.
//!
//! `cargo bench -p tracelink --bench metrics`

// criterion_group! defines an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tracelink::core::metrics::{StandardMetrics, StandardMetricsSink};
use tracelink::core::model::{Request, Telemetry};
use tracelink::core::{TelemetrySink, TraceId};

/// Drops everything.
struct Null;

impl TelemetrySink for Null {
    fn send(&self, item: Telemetry) {
        black_box(item);
    }
}

fn request() -> Telemetry {
    let mut item = Telemetry::new(Request::new(
        "GET /hello/{id}",
        "200",
        Duration::from_micros(850),
    ));
    item.tags
        .insert("ai.operation.id", "4bf92f3577b34da6a3ce929d0e0e4736");
    item.tags.insert("ai.cloud.role", "bench");
    item.tags.insert("ai.cloud.roleInstance", "bench-1");
    item.sample_rate = Some(100.0);
    item
}

fn bench(c: &mut Criterion) {
    let tracelink = tracelink::builder()
        .sink(Null)
        .no_performance_counters()
        .init()
        .unwrap();
    let client = tracelink.client();

    let mut g = c.benchmark_group("metric");
    g.bench_function("track, looked up", |b| {
        b.iter(|| {
            client
                .metric(black_box("orders.lines"))
                .dimension("shop", black_box("north"))
                .track(black_box(1.0))
        })
    });
    g.bench_function("track, two dimensions", |b| {
        b.iter(|| {
            client
                .metric(black_box("orders.lines"))
                .dimension("shop", black_box("north"))
                .dimension("route", black_box("GET /orders/{id}"))
                .track(black_box(1.0))
        })
    });
    let series = client
        .metric("orders.lines")
        .dimension("shop", "north")
        .series()
        .unwrap();
    g.bench_function("track, series held", |b| {
        b.iter(|| series.track(black_box(1.0)))
    });
    for threads in [2, 4] {
        g.bench_function(format!("track, looked up, {threads} threads"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        let client = client.clone();
                        s.spawn(move || {
                            for _ in 0..iters {
                                client
                                    .metric(black_box("orders.lines"))
                                    .dimension("shop", black_box("north"))
                                    .track(black_box(1.0));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    g.bench_function("free function", |b| {
        b.iter(|| {
            tracelink::metric(black_box("orders.lines"))
                .dimension("shop", black_box("north"))
                .track(black_box(1.0))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("standard");
    let metrics = Arc::new(StandardMetrics::new("bench", "bench-1"));
    let sink = StandardMetricsSink::new(Null, metrics.clone());
    g.bench_function("count a request", |b| {
        b.iter_batched(
            request,
            |mut item| metrics.observe(black_box(&mut item)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("sink: count and forward a request", |b| {
        b.iter_batched(request, |item| sink.send(item), BatchSize::SmallInput)
    });
    let dropping = StandardMetricsSink::new(Null, metrics);
    let id: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap(); // score 33.46
    g.bench_function("sink: count a sampled-out request", |b| {
        b.iter_batched(
            || {
                let mut item = request();
                item.sample_rate = Some(10.0);
                item
            },
            |item| dropping.send(item),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("sink: sampling decision", |b| {
        b.iter(|| dropping.sampling(black_box(id)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
