//! The tracing and export work of one request of the load benchmark's realistic handler
//! (`benches/load/src/real.rs`), in process and without I/O, for instruction counts
//! (`valgrind --tool=callgrind`) and allocation counts:
//!
//! - `layer`: three nested `#[instrument]`ed async functions (INFO spans, polled twice, as
//!   around the handler's backend call) and two INFO events with three fields each, through
//!   `registry().with(LevelFilter::INFO).with(TracelinkLayer)` inside a kept operation: five
//!   items (three InProc dependencies, two traces);
//! - `encode`: those five items with the request's Request and Dependency items, seven per
//!   request, written as envelope lines and gzipped at level 1 in batches of 490 items
//!   (70 requests) by `encode_batch`, which sets up a gzip writer per batch where the
//!   exporter keeps one.
//!
//! Results and how to read them: BENCHMARKS.md, "The tracing layer and the envelopes in
//! instructions".
//!
//! ```sh
//! cargo bench -p tracelink-otel --bench realistic -- 20000
//! valgrind --tool=callgrind --toggle-collect='realistic::layer_request' --toggle-collect='realistic::encode' target/release/deps/realistic-<hash> 2100
//! ```
#![allow(missing_docs)]

use std::alloc::System;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tracelink_core::model::{Dependency, Request, Telemetry, tags};
use tracelink_core::{Correlation, Propagation, SamplingDecision, TelemetrySink, scope};
use tracelink_otel::TracelinkLayer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const IKEY: &str = "00000000-1111-2222-3333-444444444444";
/// Requests per gzipped batch (490 items).
const BATCH: usize = 70;

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Telemetry>>>);

impl TelemetrySink for Collect {
    fn send(&self, item: Telemetry) {
        self.0.lock().unwrap().push(item);
    }
}

/// Pending once, then ready: the handler's wait for the backend.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        match std::mem::replace(&mut self.0, true) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }
}

#[tracing::instrument(level = "info")]
async fn place_order(id: u32) -> bool {
    tracing::info!(
        order_id = id,
        customer = "c-1042",
        channel = "web",
        "order received"
    );
    let inventory = check_stock(id).await;
    tracing::info!(
        order_id = id,
        in_stock = inventory.is_some(),
        warehouse = "eu-west",
        "stock checked"
    );
    inventory.is_some()
}

#[tracing::instrument(level = "info")]
async fn check_stock(id: u32) -> Option<usize> {
    fetch_inventory(id).await.ok()
}

#[tracing::instrument(level = "info")]
async fn fetch_inventory(id: u32) -> Result<usize, String> {
    YieldOnce(false).await;
    Ok(id as usize)
}

fn new_request() -> Correlation {
    Correlation::new_root_named(
        &Propagation::default(),
        SamplingDecision::KEEP_ALL,
        Some("GET /hello/{id}"),
    )
}

/// The handler's tracing work for one request, in its operation.
#[inline(never)]
fn layer_request(request: &Correlation, id: u32) {
    let _scope = scope::enter(request.clone());
    let mut fut = std::pin::pin!(place_order(id));
    let mut cx = Context::from_waker(Waker::noop());
    while fut.as_mut().poll(&mut cx).is_pending() {}
}

/// The Request and Dependency items the server layer and the client middleware make.
fn request_items(request: &Correlation, id: u32, out: &mut Vec<Telemetry>) {
    let mut r = Request::new("GET /hello/{id}", "200", Duration::from_micros(1500));
    r.url = format!("http://127.0.0.1:8080/hello/{id}");
    let mut item = request.to_item(r);
    item.tags.insert(tags::CLOUD_ROLE, "tracelink-load");
    item.tags.insert(tags::CLOUD_ROLE_INSTANCE, "bench-host");
    item.tags
        .insert(tags::INTERNAL_SDK_VERSION, tags::SDK_VERSION);
    item.tags.insert(tags::LOCATION_IP, "127.0.0.1");
    out.push(item);
    let call = request.new_child();
    let mut d = Dependency::new("GET /hello/7", "Http");
    d.data = format!("http://127.0.0.1:8081/hello/{id}");
    d.target = "127.0.0.1:8081".into();
    d.result_code = "200".into();
    d.duration = Duration::from_micros(300);
    let mut item = call.to_item(d);
    item.tags.insert(tags::CLOUD_ROLE, "tracelink-load");
    item.tags.insert(tags::CLOUD_ROLE_INSTANCE, "bench-host");
    item.tags
        .insert(tags::INTERNAL_SDK_VERSION, tags::SDK_VERSION);
    out.push(item);
}

/// Envelope lines and gzip for a batch of items.
#[inline(never)]
fn encode(items: &[Telemetry]) -> usize {
    tracelink_export::encode_batch(items, IKEY, 1).len()
}

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let sink = Collect::default();
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(TracelinkLayer::new(sink.clone()));
    let _default = tracing::subscriber::set_default(subscriber);

    // Warm up thread-locals, the registry's slab and the sink's vector.
    for i in 0..100 {
        layer_request(&new_request(), i);
    }
    let check = std::mem::take(&mut *sink.0.lock().unwrap());
    assert_eq!(check.len(), 500, "five items per request");
    sink.0.lock().unwrap().reserve(5 * BATCH);

    // The layer alone.
    let mut layer_time = Duration::ZERO;
    let mut layer_allocs = 0;
    let mut items = Vec::new();
    let mut batches = Vec::new();
    for i in 0..n {
        let request = new_request();
        let region = Region::new(GLOBAL);
        let start = Instant::now();
        layer_request(&request, i);
        layer_time += start.elapsed();
        layer_allocs += region.change().allocations;
        request_items(&request, i, &mut items);
        if (i as usize + 1).is_multiple_of(BATCH) {
            items.append(&mut sink.0.lock().unwrap());
            batches.push(std::mem::take(&mut items));
        }
    }

    // Serialization and gzip of what it made.
    let region = Region::new(GLOBAL);
    let start = Instant::now();
    let mut bytes = 0;
    for batch in &batches {
        bytes += encode(batch);
    }
    let encode_time = start.elapsed();
    let encode_allocs = region.change().allocations;
    let encoded = (batches.len() * BATCH) as f64;
    let n = f64::from(n);
    println!(
        "layer: {:.2} µs/request, {:.2} allocations/request",
        layer_time.as_secs_f64() * 1e6 / n,
        layer_allocs as f64 / n
    );
    println!(
        "encode: {:.2} µs/request (7 items), {:.2} allocations/request, {:.0} gzip bytes/request",
        encode_time.as_secs_f64() * 1e6 / encoded,
        encode_allocs as f64 / encoded,
        bytes as f64 / encoded
    );
}
