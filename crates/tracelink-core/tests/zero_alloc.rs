//! DESIGN invariant 4: header parsing does not allocate. A counting global allocator wraps
//! the system one; this binary has no harness so that nothing else allocates while it
//! measures.
#![allow(missing_docs)]

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tracelink_core::{SpanId, TraceId, TraceParent, request_context, request_id};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Check = (&'static str, Box<dyn Fn()>);

fn allocations(f: impl Fn()) -> usize {
    f(); // warm up thread-locals
    let region = Region::new(GLOBAL);
    for _ in 0..1000 {
        f();
    }
    region.change().allocations
}

fn main() {
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    #[allow(unused_mut)]
    let mut checks: Vec<Check> = vec![
        (
            "traceparent parse (SPEC 3.1)",
            Box::new(|| {
                std::hint::black_box(TraceParent::parse(std::hint::black_box(tp)).unwrap());
            }),
        ),
        (
            "traceparent format",
            Box::new(|| {
                let t = TraceParent::parse(tp).unwrap();
                std::hint::black_box(t.to_header());
            }),
        ),
        (
            "invalid traceparent",
            Box::new(|| {
                std::hint::black_box(TraceParent::parse(std::hint::black_box("00-zz")).is_err());
            }),
        ),
        (
            "random ids + hex",
            Box::new(|| {
                std::hint::black_box(TraceId::random().to_hex());
                std::hint::black_box(SpanId::random().to_hex());
            }),
        ),
        (
            "Request-Id checks (SPEC 2.2, 3.3, 3.4)",
            Box::new(|| {
                let rid = "|0af7651916cd43dd8448eb211c80319c.b7ad6b7169203331.";
                std::hint::black_box(request_id::parse(rid).unwrap());
                std::hint::black_box(request_id::w3c_trace_id(rid));
                std::hint::black_box(request_id::root(rid));
            }),
        ),
        (
            "Request-Context appId (SPEC 5.1)",
            Box::new(|| {
                std::hint::black_box(request_context::app_id(" appId=cid-v1:abc, roleName=x"));
            }),
        ),
    ];
    // Extraction keeps what it needs of the received header values by sharing them: a
    // request with traceparent, tracestate and a caller's Request-Context copies nothing.
    #[cfg(feature = "http")]
    {
        use http::{HeaderMap, HeaderValue};
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(tp));
        let ts = HeaderValue::from_bytes(b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7").unwrap();
        h.insert("tracestate", ts);
        let rc = HeaderValue::from_bytes(b"appId=cid-v1:caller-app").unwrap();
        h.insert("request-context", rc);
        let cfg = tracelink_core::Propagation::default();
        checks.push((
            "extract from a HeaderMap (SPEC 2.1, 2.9)",
            Box::new(move || {
                let incoming = tracelink_core::extract::extract(std::hint::black_box(&h), &cfg);
                assert_eq!(incoming.source(), Some("cid-v1:caller-app"));
                assert!(incoming.trace_state().is_some());
                std::hint::black_box(incoming);
            }),
        ));
    }
    // The counter must see an allocation, or every check above would pass vacuously.
    let seen = allocations(|| {
        std::hint::black_box(String::from("x"));
    });
    assert_eq!(seen, 1000, "the counting allocator does not count");
    let mut failed = 0;
    for (name, f) in &checks {
        let n = allocations(f);
        let ok = n == 0;
        failed += usize::from(!ok);
        println!(
            "test {name} ... {} ({n} allocations in 1000 runs)",
            if ok { "ok" } else { "FAILED" }
        );
    }
    println!("{} passed, {failed} failed", checks.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
