//! Shows what tracelink reads from an incoming request and writes on an outgoing call.
//!
//! `cargo run -p tracelink-example-propagation`

use std::time::Duration;

use http::HeaderMap;
use tracelink::core::model::{Dependency, Request};
use tracelink::core::{AppId, MemorySink, Propagation, TelemetrySink, envelope, extract};

fn main() {
    let sink = MemorySink::new();
    let cfg = Propagation::default()
        .app_id(AppId::new("orders-app-id").expect("valid app id"))
        .w3c_baggage();

    // The headers the Node SDK sent in the recorded capture (tests/data/captures).
    let mut incoming = HeaderMap::new();
    for (k, v) in [
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        ("correlation-context", "userId=alice, tenant=contoso"),
        ("request-context", "appId=cid-v1:caller-app-id"),
    ] {
        incoming.insert(k, v.parse().expect("valid header value"));
    }
    println!("incoming request headers:");
    print_headers(&incoming);

    let extracted = extract::extract(&incoming, &cfg);
    let source = extracted.source().map(str::to_owned);
    let decision = sink.sampling(extracted.trace_id());
    let request = extracted.into_request(&cfg, decision, Some("GET /api/orders"));
    println!(
        "\nrequest: operation_Id={} id={} operation_ParentId={} source={}",
        request.trace_id(),
        request.id(),
        request
            .parent_id()
            .map(ToString::to_string)
            .unwrap_or_default(),
        source.as_deref().unwrap_or("-")
    );

    let call = request.new_child();
    let mut outgoing = HeaderMap::new();
    cfg.inject(&call, Some("inventory:8080"), &mut outgoing);
    println!("\noutgoing call headers (dependency id {}):", call.id());
    print_headers(&outgoing);

    let mut dep = Dependency::new("GET /items", "Http");
    dep.target = "inventory:8080".into();
    dep.result_code = "200".into();
    dep.duration = Duration::from_millis(3);
    sink.send(call.to_item(dep));
    let mut req = Request::new("GET /api/orders", "200", Duration::from_millis(9));
    req.source = source.unwrap_or_default();
    sink.send(request.to_item(req));

    println!("\nenvelopes:");
    for item in sink.take() {
        println!(
            "{}",
            envelope::to_json(&item, "00000000-1111-2222-3333-444444444444")
        );
    }
}

fn print_headers(h: &HeaderMap) {
    for (k, v) in h {
        println!("  {k}: {}", v.to_str().unwrap_or("<binary>"));
    }
}
