//! What Live Metrics adds to the request path: `LiveMetrics::record` (which `LiveSink::send`
//! calls before forwarding) while nobody watches and while someone does, on one thread and
//! on four at once. The viewer is a stand-in of the service on 127.0.0.1 that answers every
//! ping and post `x-ms-qps-subscribed: true`.
//!
//! `cargo bench -p tracelink-live --bench record`

// criterion_group! defines an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use criterion::{Criterion, criterion_group, criterion_main};
use tracelink_core::ConnectionString;
use tracelink_core::model::{Request, Telemetry};
use tracelink_live::LiveMetrics;
use tracelink_live::protocol::Answer;

fn item(code: &'static str) -> Telemetry {
    let mut item = Telemetry::new(Request::new(
        "GET /hello/{id}",
        code,
        Duration::from_millis(1),
    ));
    item.tags
        .insert("ai.operation.id", "4bf92f3577b34da6a3ce929d0e0e4736");
    item
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(async {
        let app = Router::new().fallback(|| async {
            let mut h = http::HeaderMap::new();
            Answer::subscribed().write_headers(&mut h);
            (h, "")
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let cs = ConnectionString::parse(&format!(
        "InstrumentationKey=00000000-0000-0000-0000-000000000001;LiveEndpoint=http://{addr}"
    ))
    .unwrap();
    let idle = LiveMetrics::builder(&cs).build().unwrap();
    let live = LiveMetrics::builder(&cs).build().unwrap();
    {
        let _entered = rt.enter();
        live.start().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !live.is_collecting() {
        assert!(Instant::now() < deadline, "the stand-in never subscribed");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (ok, failed) = (item("200"), item("500"));

    let mut g = c.benchmark_group("record");
    g.bench_function("unsubscribed", |b| b.iter(|| idle.record(black_box(&ok))));
    g.bench_function("subscribed", |b| b.iter(|| live.record(black_box(&ok))));
    // Past the first 30 of a second, a failed request is counted, not copied.
    g.bench_function("subscribed, failed", |b| {
        b.iter(|| live.record(black_box(&failed)))
    });
    let shared = Arc::new((live.clone(), ok.clone()));
    g.bench_function("subscribed, 4 threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let shared = shared.clone();
                    std::thread::spawn(move || {
                        for _ in 0..iters {
                            shared.0.record(black_box(&shared.1));
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            // Each thread records `iters` items: the time per item on each thread (with
            // fewer than four cores, the threads also wait for each other).
            start.elapsed()
        })
    });
    g.finish();
    live.stop();
}

criterion_group!(benches, bench);
criterion_main!(benches);
