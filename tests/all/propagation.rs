//! Multi-hop propagation across services with different configurations, through real
//! `http::HeaderMap` carriers: what one service injects, the next extracts (SPEC 2, 3, 4, 5).

use http::HeaderMap;
use tracelink_core::{AppId, Correlation, Propagation, PropagationMode, SamplingDecision, extract};

struct Service {
    cfg: Propagation,
}

impl Service {
    fn new(app: &str, mode: PropagationMode) -> Self {
        Self {
            cfg: Propagation::default()
                .mode(mode)
                .app_id(AppId::new(app).unwrap())
                .w3c_baggage(),
        }
    }

    /// Receives a request, returns its context.
    fn receive(&self, headers: &HeaderMap) -> (Correlation, Option<String>) {
        let incoming = extract::extract(headers, &self.cfg);
        let source = incoming.source().map(str::to_owned);
        (
            incoming.into_request(&self.cfg, SamplingDecision::KEEP_ALL, Some("GET /")),
            source,
        )
    }

    /// Makes a call from inside `request`; returns the dependency and the headers sent.
    fn call(&self, request: &Correlation) -> (Correlation, HeaderMap) {
        let dep = request.new_child();
        let mut h = HeaderMap::new();
        assert!(self.cfg.inject(&dep, Some("next:8080"), &mut h));
        (dep, h)
    }
}

#[test]
fn three_hops_keep_one_operation_and_exact_parents() {
    let (web, orders, inventory) = (
        Service::new("web", PropagationMode::W3cWithBackCompat),
        Service::new("orders", PropagationMode::W3c),
        Service::new("inventory", PropagationMode::W3cWithBackCompat),
    );
    let mut browser = HeaderMap::new();
    browser.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    browser.insert("tracestate", "rojo=00f067aa0ba902b7".parse().unwrap());
    browser.insert("baggage", "tenant=contoso".parse().unwrap());

    let (web_req, _) = web.receive(&browser);
    let (web_dep, h1) = web.call(&web_req);
    let (orders_req, source) = orders.receive(&h1);
    assert_eq!(source.as_deref(), Some("cid-v1:web"));
    let (orders_dep, h2) = orders.call(&orders_req);
    let (inv_req, source) = inventory.receive(&h2);
    assert_eq!(source.as_deref(), Some("cid-v1:orders"));

    for c in [&web_req, &web_dep, &orders_req, &orders_dep, &inv_req] {
        assert_eq!(c.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.baggage().get("tenant"), Some("contoso"));
        assert_eq!(c.trace_state().unwrap().as_str(), "rojo=00f067aa0ba902b7");
    }
    assert_eq!(web_req.parent_id().unwrap().to_string(), "00f067aa0ba902b7");
    assert_eq!(orders_req.parent_id(), Some(web_dep.id()));
    assert_eq!(inv_req.parent_id(), Some(orders_dep.id()));
    // W3C-only mode sends no Request-Id; back-compat mode does.
    assert!(h1.contains_key("request-id"));
    assert!(!h2.contains_key("request-id"));
    assert_eq!(h1["correlation-context"], "tenant=contoso");
    assert_eq!(h1["baggage"], "tenant=contoso");
}

#[test]
fn hierarchical_caller_and_w3c_callee_share_the_operation() {
    let legacy = Service::new("legacy", PropagationMode::Hierarchical);
    let modern = Service::new("modern", PropagationMode::W3cWithBackCompat);
    let (root, _) = legacy.receive(&HeaderMap::new());
    let (dep, h) = legacy.call(&root);
    assert!(!h.contains_key("traceparent"));
    let rid = h["request-id"].to_str().unwrap().to_owned();
    assert_eq!(rid, format!("|{}.1.", root.trace_id()));
    assert_eq!(dep.id().to_string(), rid);
    // SPEC 2.2: a W3C-compatible Request-Id carries the operation id.
    let (req, _) = modern.receive(&h);
    assert_eq!(req.trace_id(), root.trace_id());
    assert_eq!(req.parent_id().unwrap().to_string(), rid);
    assert!(req.legacy_root_id().is_none());
}

#[test]
fn legacy_root_that_is_not_a_trace_id() {
    let modern = Service::new("modern", PropagationMode::W3cWithBackCompat);
    let mut h = HeaderMap::new();
    h.insert("request-id", "|legacy-root-42.1.2.".parse().unwrap());
    let (req, _) = modern.receive(&h);
    assert_eq!(req.legacy_root_id(), Some("legacy-root-42"));
    // The next hop sees a W3C context with the new trace-id.
    let (dep, h2) = modern.call(&req);
    assert_eq!(
        h2["traceparent"],
        format!("00-{}-{}-01", req.trace_id(), dep.id())
    );
}

#[test]
fn caller_headers_are_never_overwritten() {
    let svc = Service::new("svc", PropagationMode::W3cWithBackCompat);
    let (req, _) = svc.receive(&HeaderMap::new());
    let dep = req.new_child();
    let mut h = HeaderMap::new();
    h.insert(
        "traceparent",
        "00-11111111111111111111111111111111-2222222222222222-00"
            .parse()
            .unwrap(),
    );
    h.insert("request-context", "roleName=custom".parse().unwrap());
    svc.cfg.inject(&dep, None, &mut h);
    assert_eq!(
        h["traceparent"],
        "00-11111111111111111111111111111111-2222222222222222-00"
    );
    // SPEC 5.3: appId added to a Request-Context that had none.
    assert_eq!(h["request-context"], "roleName=custom, appId=cid-v1:svc");
}
