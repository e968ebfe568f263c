//! Client middleware end to end (SPEC 3.5, 3.6, 4.3, 5.3-5.6, 6.2):
//! frontend (axum + server layer) → reqwest or hyper-util with the client middleware →
//! backend (axum + server layer), all on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use tower::ServiceBuilder;
use tracelink_core::dependency::DependencyConfig;
use tracelink_core::model::{Telemetry, TelemetryData, TelemetryKind};
use tracelink_core::{AppId, MemorySink, Propagation, PropagationMode};
use tracelink_reqwest::DependencyMiddleware;
use tracelink_tower::client::DependencyLayer;
use tracelink_tower::server::CorrelationLayer;

type Seen = Arc<Mutex<Vec<HeaderMap>>>;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A backend that records the headers it received; `/fail` answers 500, `/slow` sleeps.
async fn backend(sink: Arc<MemorySink>, seen: Seen) -> SocketAddr {
    let app = Router::new()
        .route(
            "/items/{id}",
            get(|State(seen): State<Seen>, h: HeaderMap| async move {
                seen.lock().unwrap().push(h);
                "item"
            }),
        )
        .route(
            "/fail",
            get(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .with_state(seen)
        .layer(
            CorrelationLayer::new(sink)
                .propagation(Propagation::default().app_id(AppId::new("backend-app").unwrap()))
                .cloud_role("backend"),
        );
    serve(app).await
}

#[derive(Clone)]
struct Front {
    reqwest: reqwest_middleware::ClientWithMiddleware,
    backend: SocketAddr,
    fan_out: usize,
    path: &'static str,
}

async fn call_backend(State(f): State<Front>) -> Result<String, (http::StatusCode, String)> {
    let url = format!("http://{}{}", f.backend, f.path);
    let calls = (0..f.fan_out).map(|_| f.reqwest.get(&url).send());
    let mut out = String::new();
    for r in futures_join_all(calls).await {
        let r = r.map_err(|e| (http::StatusCode::BAD_GATEWAY, e.to_string()))?;
        out.push_str(&r.text().await.unwrap_or_default());
    }
    Ok(out)
}

/// Polls all futures in this task (so they share its current context), in order.
async fn futures_join_all<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = fs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

type Hyper = HyperClient<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// hyper-util's client behind `DependencyLayer`.
fn hyper_client(cfg: DependencyConfig) -> tracelink_tower::client::DependencyService<Hyper> {
    ServiceBuilder::new()
        .layer(DependencyLayer::from_config(cfg))
        .service(HyperClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>())
}

fn frontend_propagation(mode: PropagationMode) -> Propagation {
    Propagation::default()
        .mode(mode)
        .app_id(AppId::new("frontend-app").unwrap())
}

async fn frontend(
    sink: Arc<MemorySink>,
    backend: SocketAddr,
    mode: PropagationMode,
    client_cfg: DependencyConfig,
    fan_out: usize,
    path: &'static str,
) -> SocketAddr {
    // Generous: the concurrency test puts 600 calls in flight on two cores.
    let reqwest = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    )
    .with(DependencyMiddleware::from_config(client_cfg))
    .build();
    let app = Router::new()
        .route("/orders/{id}", get(call_backend))
        .with_state(Front {
            reqwest,
            backend,
            fan_out,
            path,
        })
        .layer(
            CorrelationLayer::new(sink)
                .propagation(frontend_propagation(mode))
                .cloud_role("frontend"),
        );
    serve(app).await
}

async fn wait(sink: &MemorySink, n: usize) -> Vec<Telemetry> {
    for _ in 0..1000 {
        if sink.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let items = sink.take();
    assert_eq!(items.len(), n, "{items:#?}");
    items
}

fn role<'a>(items: &'a [Telemetry], kind: TelemetryKind, role: &str) -> Vec<&'a Telemetry> {
    items
        .iter()
        .filter(|i| i.kind() == kind && i.tags.get("ai.cloud.role") == Some(role))
        .collect()
}

fn dep(item: &Telemetry) -> &tracelink_core::model::Dependency {
    match &item.data {
        TelemetryData::Dependency(d) => d,
        _ => panic!("not a dependency"),
    }
}

async fn get_text(url: String, headers: &[(&str, &str)]) -> (http::StatusCode, HeaderMap) {
    let mut b = reqwest::Client::new().get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = b.send().await.unwrap();
    (r.status(), r.headers().clone())
}

fn client_cfg(sink: &Arc<MemorySink>, mode: PropagationMode) -> DependencyConfig {
    DependencyConfig::new(sink.clone())
        .propagation(frontend_propagation(mode))
        .cloud_role("frontend")
}

/// The main scenario (frontend → backend, one transaction), with reqwest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_reqwest_backend_is_one_transaction() {
    let sink = Arc::new(MemorySink::new());
    let seen = Seen::default();
    let back = backend(sink.clone(), seen.clone()).await;
    let front = frontend(
        sink.clone(),
        back,
        PropagationMode::W3cWithBackCompat,
        client_cfg(&sink, PropagationMode::W3cWithBackCompat),
        1,
        "/items/7",
    )
    .await;
    let (status, h) = get_text(
        format!("http://{front}/orders/1"),
        &[("correlation-context", "tenant=contoso")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(h["request-context"], "appId=cid-v1:frontend-app");
    let items = wait(&sink, 3).await;
    assert_one_transaction(&items, back, &seen.lock().unwrap()[0]);
}

fn assert_one_transaction(items: &[Telemetry], back: SocketAddr, received: &HeaderMap) {
    let front_req = role(items, TelemetryKind::Request, "frontend")[0];
    let back_req = role(items, TelemetryKind::Request, "backend")[0];
    let dependency = role(items, TelemetryKind::Dependency, "frontend")[0];
    let t = front_req.operation_id().unwrap();
    assert!(
        items.iter().all(|i| i.operation_id() == Some(t)),
        "one operation_Id"
    );
    assert_eq!(
        dependency.operation_parent_id(),
        front_req.id(),
        "dependency under the frontend request"
    );
    assert_eq!(
        back_req.operation_parent_id(),
        dependency.id(),
        "backend request under the dependency"
    );
    let d = dep(dependency).id.clone();
    assert_eq!(received["traceparent"], format!("00-{t}-{d}-01"));
    assert_eq!(received["request-id"], format!("|{t}.{d}."));
    assert_eq!(received["request-context"], "appId=cid-v1:frontend-app");
    assert_eq!(received["correlation-context"], "tenant=contoso");
    assert_eq!(back_req.properties["tenant"], "contoso");
    assert_eq!(
        dep(dependency).target,
        format!("{back} | cid-v1:backend-app")
    );
    assert_eq!(dep(dependency).dependency_type, "Http (tracked component)");
    assert_eq!(dep(dependency).name, "GET /items/7");
    assert_eq!(
        dependency.tags.get("ai.operation.name"),
        Some("GET /orders/{id}")
    );
    match &back_req.data {
        TelemetryData::Request(r) => assert_eq!(r.source, "cid-v1:frontend-app"),
        _ => unreachable!(),
    }
}

/// The same with hyper-util's client behind `DependencyLayer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_hyper_backend_is_one_transaction() {
    let sink = Arc::new(MemorySink::new());
    let seen = Seen::default();
    let back = backend(sink.clone(), seen.clone()).await;
    let client = hyper_client(client_cfg(&sink, PropagationMode::W3cWithBackCompat));
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(move || {
                let client = client.clone();
                async move {
                    use tower::ServiceExt;
                    let req = http::Request::get(format!("http://{back}/items/7"))
                        .body(Empty::new())
                        .unwrap();
                    let res = client.oneshot(req).await.unwrap();
                    let body = res.into_body().collect().await.unwrap().to_bytes();
                    String::from_utf8_lossy(&body).into_owned()
                }
            }),
        )
        .layer(
            CorrelationLayer::new(sink.clone())
                .propagation(frontend_propagation(PropagationMode::W3cWithBackCompat))
                .cloud_role("frontend"),
        );
    let front = serve(app).await;
    let (status, _) = get_text(
        format!("http://{front}/orders/1"),
        &[("correlation-context", "tenant=contoso")],
    )
    .await;
    assert_eq!(status, 200);
    let items = wait(&sink, 3).await;
    assert_one_transaction(&items, back, &seen.lock().unwrap()[0]);
}

/// SPEC 3.6: a frontend in hierarchical mode calling a backend in default mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_estate_hierarchical_ids() {
    let sink = Arc::new(MemorySink::new());
    let seen = Seen::default();
    let back = backend(sink.clone(), seen.clone()).await;
    let front = frontend(
        sink.clone(),
        back,
        PropagationMode::Hierarchical,
        client_cfg(&sink, PropagationMode::Hierarchical),
        2,
        "/items/7",
    )
    .await;
    get_text(format!("http://{front}/orders/1"), &[]).await;
    let items = wait(&sink, 5).await;
    let front_req = role(&items, TelemetryKind::Request, "frontend")[0];
    let t = front_req.operation_id().unwrap();
    assert_eq!(front_req.id(), Some(format!("|{t}.").as_str()));
    let mut dep_ids: Vec<String> = role(&items, TelemetryKind::Dependency, "frontend")
        .iter()
        .map(|d| dep(d).id.clone())
        .collect();
    dep_ids.sort();
    assert_eq!(dep_ids, [format!("|{t}.1."), format!("|{t}.2.")]);
    for h in seen.lock().unwrap().iter() {
        assert!(
            !h.contains_key("traceparent"),
            "hierarchical mode sends no traceparent"
        );
        assert!(dep_ids.contains(&h["request-id"].to_str().unwrap().to_owned()));
    }
    for r in role(&items, TelemetryKind::Request, "backend") {
        assert_eq!(
            r.operation_id(),
            Some(t),
            "SPEC 2.2: |T.… carries the operation id"
        );
        assert!(
            dep_ids
                .iter()
                .any(|d| Some(d.as_str()) == r.operation_parent_id())
        );
    }
}

/// SPEC 5.6: excluded hosts get no header; allow-listed hosts do. Both are still recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_and_allowed_hosts() {
    let sink = Arc::new(MemorySink::new());
    let seen = Seen::default();
    let back = backend(sink.clone(), seen.clone()).await;
    for (allow, expect_headers) in [(false, false), (true, true)] {
        let mut p =
            frontend_propagation(PropagationMode::W3cWithBackCompat).exclude_host("127.0.0.1");
        if allow {
            p = p.allow_host("127.0.0.1");
        }
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(DependencyMiddleware::from_config(
                DependencyConfig::new(sink.clone()).propagation(p),
            ))
            .build();
        client
            .get(format!("http://{back}/items/1"))
            .send()
            .await
            .unwrap();
        let h = seen.lock().unwrap().pop().unwrap();
        for name in [
            "traceparent",
            "tracestate",
            "request-id",
            "correlation-context",
            "baggage",
            "request-context",
        ] {
            assert_eq!(
                h.contains_key(name),
                expect_headers
                    && name != "tracestate"
                    && name != "correlation-context"
                    && name != "baggage",
                "{name} allow={allow}"
            );
        }
        // The dependency (root) and, when headers went, a backend request in its operation.
        let items = wait(&sink, 2).await;
        let d = items
            .iter()
            .find(|i| i.kind() == TelemetryKind::Dependency)
            .unwrap();
        let r = items
            .iter()
            .find(|i| i.kind() == TelemetryKind::Request)
            .unwrap();
        assert_eq!(r.operation_id() == d.operation_id(), expect_headers);
    }
}

/// SPEC 6.2: refused connection, timeout and a 500 are failed dependencies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_errors_and_server_errors() {
    let sink = Arc::new(MemorySink::new());
    let back = backend(Arc::new(MemorySink::new()), Seen::default()).await;
    // Bound but not listening, for the whole test: connections are refused, and no other
    // test can take the port meanwhile.
    let closed_socket = tokio::net::TcpSocket::new_v4().unwrap();
    closed_socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = closed_socket.local_addr().unwrap();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(DependencyMiddleware::new(sink.clone()))
        .build();
    assert!(
        client
            .get(format!("http://{closed}/x"))
            .send()
            .await
            .is_err()
    );
    assert!(
        client
            .get(format!("http://{back}/slow"))
            .timeout(Duration::from_millis(200))
            .send()
            .await
            .is_err()
    );
    assert_eq!(
        client
            .get(format!("http://{back}/fail"))
            .send()
            .await
            .unwrap()
            .status(),
        500
    );
    let items = wait(&sink, 3).await;
    let codes: Vec<(&str, bool, bool)> = items
        .iter()
        .map(|i| {
            (
                dep(i).result_code.as_ref(),
                dep(i).success,
                i.properties.contains_key("error"),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("Connect", false, true),
            ("Timeout", false, true),
            ("500", false, false)
        ]
    );

    // The hyper client layer classifies its errors the same way.
    let client = hyper_client(DependencyConfig::new(sink.clone()));
    use tower::ServiceExt;
    let req = http::Request::get(format!("http://{closed}/x"))
        .body(Empty::new())
        .unwrap();
    assert!(client.oneshot(req).await.is_err());
    let items = wait(&sink, 1).await;
    assert_eq!(
        (dep(&items[0]).result_code.as_ref(), dep(&items[0]).success),
        ("Connect", false)
    );
}

/// 200 concurrent requests, each fanning out to 3 calls, on a multi-thread runtime: every
/// dependency's parent is its own request (no context bleeding between tasks).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_context_bleeding_under_concurrency() {
    let sink = Arc::new(MemorySink::new());
    let back = backend(sink.clone(), Seen::default()).await;
    let front = frontend(
        sink.clone(),
        back,
        PropagationMode::W3cWithBackCompat,
        client_cfg(&sink, PropagationMode::W3cWithBackCompat),
        3,
        "/items/1",
    )
    .await;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (client, url) = (client.clone(), format!("http://{front}/orders/{i}"));
        tasks.push(tokio::spawn(async move {
            client.get(url).send().await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let items = wait(&sink, 200 * (1 + 3 + 3)).await;
    let front_reqs: HashMap<&str, &str> = role(&items, TelemetryKind::Request, "frontend")
        .iter()
        .map(|r| (r.operation_id().unwrap(), r.id().unwrap()))
        .collect();
    assert_eq!(front_reqs.len(), 200, "200 distinct operations");
    let deps = role(&items, TelemetryKind::Dependency, "frontend");
    assert_eq!(deps.len(), 600);
    let mut per_op: HashMap<&str, Vec<&str>> = HashMap::new();
    for d in &deps {
        let op = d.operation_id().unwrap();
        assert_eq!(
            d.operation_parent_id(),
            Some(front_reqs[op]),
            "dependency parent is its own request"
        );
        per_op.entry(op).or_default().push(d.id().unwrap());
    }
    assert!(per_op.values().all(|v| v.len() == 3));
    for r in role(&items, TelemetryKind::Request, "backend") {
        let op = r.operation_id().unwrap();
        assert!(per_op[op].contains(&r.operation_parent_id().unwrap()));
    }
}

/// The W3C test service runs the product's defaults: each call carries the incoming trace,
/// the tracestate (a duplicated key keeps its first member, SPEC 3.2), the back-compat
/// `Request-Id`, the own appId from the connection string, and its JSON arguments; the
/// response answers `Request-Context`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w3c_test_service_runs_the_defaults_and_forwards_context_and_arguments() {
    let sink = Arc::new(MemorySink::new());
    let received: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let rec = received.clone();
    let harness = serve(Router::new().route(
        "/callback",
        axum::routing::post(move |h: HeaderMap, body: String| {
            let rec = rec.clone();
            async move {
                rec.lock().unwrap().push((h, body));
                "ok"
            }
        }),
    ))
    .await;
    let tracelink = tracelink::Builder::from_vars([(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "InstrumentationKey=00000000-0000-0000-0000-000000000001;ApplicationId=w3c-app",
    )])
    .sink(sink.clone())
    .init()
    .unwrap();
    let service = serve(tracelink_w3c_test_service::app(&tracelink)).await;
    let body = format!(
        r#"[{{"url":"http://{harness}/callback","arguments":[{{"n":1}}]}},{{"url":"http://{harness}/callback","arguments":[]}}]"#
    );
    let res = reqwest::Client::new()
        .post(format!("http://{service}/test"))
        .header("content-type", "application/json")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("tracestate", "foo=1,foo=2")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["request-context"], "appId=cid-v1:w3c-app");
    assert!(
        res.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("request-context")
    );
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1, r#"[{"n":1}]"#);
    assert_eq!(got[1].1, "[]");
    for (h, _) in &got {
        let tp = h["traceparent"].to_str().unwrap();
        assert!(
            tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && tp.ends_with("-01"),
            "{tp}"
        );
        assert_eq!(h["tracestate"], "foo=1");
        let span = &tp[36..52];
        assert_eq!(
            h["request-id"],
            format!("|0af7651916cd43dd8448eb211c80319c.{span}.").as_str()
        );
        assert_eq!(h["request-context"], "appId=cid-v1:w3c-app");
    }
    wait(&sink, 3).await;
}

/// Retries by reqwest-retry are separate dependencies with the same parent, when the
/// tracelink middleware is added after the retry middleware.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_separate_dependencies_with_one_parent() {
    use reqwest_retry::RetryTransientMiddleware;
    use reqwest_retry::policies::ExponentialBackoff;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let flaky = serve(Router::new().route(
        "/flaky",
        get(move || {
            let n = h.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    http::StatusCode::OK
                }
            }
        }),
    ))
    .await;
    let sink = Arc::new(MemorySink::new());
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(3);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .with(DependencyMiddleware::new(sink.clone()))
        .build();
    let parent = tracelink_core::Correlation::new_root(
        &Propagation::default(),
        tracelink_core::SamplingDecision::KEEP_ALL,
    );
    let res = client
        .get(format!("http://{flaky}/flaky"))
        .with_extension(parent.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let items = wait(&sink, 3).await;
    let codes: Vec<&str> = items.iter().map(|i| dep(i).result_code.as_ref()).collect();
    assert_eq!(codes, ["503", "503", "200"]);
    let parent_id = parent.id().to_string();
    assert!(
        items
            .iter()
            .all(|i| i.operation_parent_id() == Some(parent_id.as_str()))
    );
    let ids: std::collections::HashSet<_> = items.iter().map(|i| i.id().unwrap()).collect();
    assert_eq!(ids.len(), 3, "each attempt has its own id");
}

/// SPEC 9.1: whatever a server answers, the client path neither panics nor fails the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_responses_are_recorded_not_panicked() {
    let hostile = serve(Router::new().route(
        "/x",
        get(|| async {
            let mut res = http::Response::new(axum::body::Body::from("ok"));
            let h = res.headers_mut();
            h.append(
                "request-context",
                http::HeaderValue::from_bytes(b"appId=cid-v1:\xff\xfe").unwrap(),
            );
            h.append(
                "request-context",
                http::HeaderValue::from_static("appId=cid-v1:second, appId=cid-v1:third"),
            );
            h.append(
                "request-context",
                http::HeaderValue::from_static(",,,===,appId"),
            );
            res
        }),
    ))
    .await;
    let sink = Arc::new(MemorySink::new());
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(DependencyMiddleware::new(sink.clone()))
        .build();
    assert_eq!(
        client
            .get(format!("http://{hostile}/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let items = wait(&sink, 1).await;
    // The first readable appId wins.
    assert_eq!(dep(&items[0]).target, format!("{hostile} | cid-v1:second"));
}
