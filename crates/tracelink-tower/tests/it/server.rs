//! The server layer against a real axum server (SPEC 2, 5.4, 6.1, 6.4, 8.5; DESIGN invariants).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use http_body::Frame;
use tracelink_core::scope::CorrelationExt;
use tracelink_core::{AppId, MemorySink, Propagation};
use tracelink_tower::Correlation;
use tracelink_tower::server::CorrelationLayer;

use crate::support::{fetch, raw, request, serve, wait_items};

const T: &str = "0af7651916cd43dd8448eb211c80319c";
const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// A body of `n` chunks, one every `gap`.
struct SlowBody {
    left: u32,
    gap: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for SlowBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let gap = self.gap;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(gap)));
        std::task::ready!(sleep.as_mut().poll(cx));
        self.sleep = None;
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"chunk\n")))))
    }
}

async fn extract_handler(c: Correlation) -> String {
    format!(
        "{} {} {}",
        c.trace_id(),
        c.id(),
        c.baggage().get("tenant").unwrap_or("-")
    )
}

async fn spawn_handler(c: Correlation) -> String {
    let seen = tokio::spawn(
        async { tracelink_core::scope::current().map(|c| c.id().to_string()) }
            .in_current_correlation(),
    )
    .await
    .unwrap();
    let unscoped = tokio::spawn(async { tracelink_core::scope::current().is_some() })
        .await
        .unwrap();
    format!("{} {} {}", c.id(), seen.unwrap_or_default(), unscoped)
}

fn app(sink: Arc<MemorySink>) -> Router {
    let propagation = Propagation::default().app_id(AppId::new("server-app").unwrap());
    Router::new()
        .route("/orders/{id}", get(|| async { "ok" }))
        .route("/extract", get(extract_handler))
        .route("/spawn", get(spawn_handler))
        .route(
            "/status/{code}",
            get(
                |axum::extract::Path(code): axum::extract::Path<u16>| async move {
                    StatusCode::from_u16(code).unwrap()
                },
            ),
        )
        .route(
            "/stream",
            get(|| async {
                Body::new(SlowBody {
                    left: 3,
                    gap: Duration::from_millis(60),
                    sleep: None,
                })
            }),
        )
        .route(
            // Long enough that a client hanging up is always noticed before the end.
            "/long-stream",
            get(|| async {
                Body::new(SlowBody {
                    left: 20,
                    gap: Duration::from_millis(100),
                    sleep: None,
                })
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("handler panicked");
                }
                "unreachable"
            }),
        )
        .route("/health", get(|| async { "up" }))
        .layer(
            CorrelationLayer::new(sink)
                .propagation(propagation)
                .cloud_role("orders-api")
                .role_instance("orders-1")
                .filter(|p| p.uri.path() != "/health"),
        )
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
}

async fn one(
    path: &str,
    headers: &[(&str, &str)],
) -> (tracelink_core::model::Telemetry, http::HeaderMap, String) {
    let sink = Arc::new(MemorySink::new());
    let addr = serve(app(sink.clone())).await;
    let (status, h, body) = fetch(addr, path, headers).await;
    assert!(
        status.is_success() || path.starts_with("/status"),
        "{status} {body}"
    );
    let mut items = wait_items(&sink, 1).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(sink.is_empty(), "exactly one item per request");
    (items.remove(0), h, body)
}

#[tokio::test]
async fn spec_2_1_traceparent() {
    let (item, _, _) = one("/orders/7", &[("traceparent", TP), ("tracestate", "a=1")]).await;
    let r = request(&item);
    assert_eq!(item.operation_id(), Some(T));
    assert_eq!(item.operation_parent_id(), Some("b7ad6b7169203331"));
    assert_eq!(r.id.len(), 16);
    assert_ne!(r.id, "b7ad6b7169203331");
    assert!(r.success);
    assert_eq!(r.response_code, "200");
    assert!(
        !item.properties.contains_key("aborted"),
        "a complete response is not aborted"
    );
}

#[tokio::test]
async fn spec_2_2_w3c_request_id() {
    let rid = "|0af7651916cd43dd8448eb211c80319c.b7ad6b7169203331.";
    let (item, _, _) = one("/orders/7", &[("request-id", rid)]).await;
    assert_eq!(item.operation_id(), Some(T));
    assert_eq!(item.operation_parent_id(), Some(rid));
    assert!(!item.properties.contains_key("ai_legacyRootId"));
}

#[tokio::test]
async fn spec_2_3_legacy_request_id() {
    let (item, _, _) = one(
        "/orders/7",
        &[
            ("request-id", "|legacy-root-42.1.2."),
            ("correlation-context", "tenant=contoso"),
        ],
    )
    .await;
    assert_ne!(item.operation_id(), Some(T));
    assert_eq!(item.operation_id().unwrap().len(), 32);
    assert_eq!(item.operation_parent_id(), Some("|legacy-root-42.1.2."));
    assert_eq!(item.properties["ai_legacyRootId"], "legacy-root-42");
    assert_eq!(item.properties["tenant"], "contoso");
}

#[tokio::test]
async fn spec_2_4_nothing_usable() {
    let (item, _, _) = one("/orders/7", &[]).await;
    assert_eq!(item.operation_id().unwrap().len(), 32);
    assert_eq!(item.operation_parent_id(), None);
}

#[tokio::test]
async fn spec_2_5_and_2_6_traceparent_wins_invalid_falls_back() {
    let (item, _, _) = one(
        "/orders/7",
        &[("traceparent", TP), ("request-id", "|legacy.1.")],
    )
    .await;
    assert_eq!(item.operation_parent_id(), Some("b7ad6b7169203331"));
    assert!(!item.properties.contains_key("ai_legacyRootId"));
    let bad = "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01";
    let (item, _, _) = one(
        "/orders/7",
        &[("traceparent", bad), ("request-id", "|legacy.1.")],
    )
    .await;
    assert_eq!(item.operation_parent_id(), Some("|legacy.1."));
    assert_eq!(item.properties["ai_legacyRootId"], "legacy");
}

#[tokio::test]
async fn spec_2_8_baggage_becomes_properties() {
    let (item, _, body) = one(
        "/extract",
        &[
            ("traceparent", TP),
            ("baggage", "tenant=w3c"),
            ("correlation-context", "tenant=legacy, region=eu"),
        ],
    )
    .await;
    assert_eq!(item.properties["tenant"], "w3c");
    assert_eq!(item.properties["region"], "eu");
    assert!(body.ends_with(" w3c"), "{body}");
}

#[tokio::test]
async fn spec_2_9_source_and_5_4_response_headers() {
    let (item, h, _) = one(
        "/orders/7",
        &[("request-context", "appId=cid-v1:caller-app")],
    )
    .await;
    assert_eq!(request(&item).source, "cid-v1:caller-app");
    assert_eq!(h["request-context"], "appId=cid-v1:server-app");
    assert_eq!(h["access-control-expose-headers"], "Request-Context");
    assert!(!h.contains_key("traceresponse"), "off by default");
    let (item, _, _) = one(
        "/orders/7",
        &[("request-context", "appId=cid-v1:server-app")],
    )
    .await;
    assert_eq!(request(&item).source, "", "own appId is not a source");
}

#[tokio::test]
async fn spec_6_1_names_urls_tags() {
    let (item, _, _) = one(
        "/orders/7?sig=secret&x=1",
        &[("host", "user:pw@shop.example:8080")],
    )
    .await;
    let r = request(&item);
    assert_eq!(r.name, "GET /orders/{id}");
    assert_eq!(item.tags.get("ai.operation.name"), Some("GET /orders/{id}"));
    assert_eq!(r.url, "http://shop.example:8080/orders/7?sig=REDACTED&x=1");
    assert_eq!(item.tags.get("ai.cloud.role"), Some("orders-api"));
    assert_eq!(item.tags.get("ai.cloud.roleInstance"), Some("orders-1"));
    assert_eq!(item.tags.get("ai.location.ip"), Some("127.0.0.1"));
    assert!(
        item.tags
            .get("ai.internal.sdkVersion")
            .unwrap()
            .starts_with("rs:tracelink:")
    );
}

#[tokio::test]
async fn spec_6_1_unmatched_route_and_failures() {
    let (item, _, _) = one("/status/404", &[]).await;
    assert_eq!(request(&item).name, "GET /status/{code}");
    assert!(!request(&item).success);
    let sink = Arc::new(MemorySink::new());
    let addr = serve(app(sink.clone())).await;
    let (status, _, _) = fetch(addr, "/no/such/route?q=1", &[]).await;
    assert_eq!(status, 404);
    let items = wait_items(&sink, 1).await;
    assert_eq!(request(&items[0]).name, "GET /no/such/route");
    assert_eq!(request(&items[0]).response_code, "404");
}

#[tokio::test]
async fn spec_6_4_cookies_become_user_and_session() {
    let (item, _, _) = one(
        "/orders/7",
        &[(
            "cookie",
            "ai_user=u1|2026-01-01; ai_session=s1|1|2; ai_authUser=alice%40x.com|acct",
        )],
    )
    .await;
    assert_eq!(item.tags.get("ai.user.id"), Some("u1"));
    assert_eq!(item.tags.get("ai.session.id"), Some("s1"));
    assert_eq!(item.tags.get("ai.user.authUserId"), Some("alice@x.com"));
    assert_eq!(item.tags.get("ai.user.accountId"), Some("acct"));
}

#[tokio::test]
async fn streaming_body_duration_covers_the_last_chunk() {
    let sink = Arc::new(MemorySink::new());
    let addr = serve(app(sink.clone())).await;
    let started = std::time::Instant::now();
    let (_, _, body) = fetch(addr, "/stream", &[]).await;
    let elapsed = started.elapsed();
    assert_eq!(body.lines().count(), 3);
    let items = wait_items(&sink, 1).await;
    let d = request(&items[0]).duration;
    assert!(
        d >= Duration::from_millis(170),
        "duration {d:?} must cover 3 chunks 60 ms apart"
    );
    assert!(d <= elapsed, "{d:?} > {elapsed:?}");
}

#[tokio::test]
async fn client_disconnect_mid_body_still_records_one_item() {
    let sink = Arc::new(MemorySink::new());
    let addr = serve(app(sink.clone())).await;
    // Read only the head and the first chunk, then hang up.
    let got = raw(addr, b"GET /long-stream HTTP/1.1\r\nhost: x\r\n\r\n", 10).await;
    assert!(got.starts_with(b"HTTP/1.1 200"));
    let items = wait_items(&sink, 1).await;
    assert_eq!(
        items[0].properties.get("aborted").map(String::as_str),
        Some("true")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.is_empty());
}

#[tokio::test]
async fn panic_is_a_500_item() {
    let sink = Arc::new(MemorySink::new());
    let addr = serve(app(sink.clone())).await;
    let (status, _, _) = fetch(addr, "/panic", &[("traceparent", TP)]).await;
    assert_eq!(status, 500);
    let items = wait_items(&sink, 1).await;
    let r = request(&items[0]);
    assert_eq!((&*r.response_code, r.success), ("500", false));
    assert_eq!(items[0].operation_id(), Some(T));
}

#[tokio::test]
async fn context_reaches_handler_and_spawned_tasks() {
    let (item, _, body) = one("/spawn", &[("traceparent", TP)]).await;
    let parts: Vec<&str> = body.split(' ').collect();
    assert_eq!(parts[0], request(&item).id, "extractor sees the request id");
    assert_eq!(
        parts[1],
        request(&item).id,
        "in_current_correlation carries it into the task"
    );
    assert_eq!(parts[2], "false", "a plain spawned task has no context");
    let (_, _, body) = one("/extract", &[("traceparent", TP)]).await;
    assert!(body.starts_with(T));
}

#[tokio::test]
async fn filtered_requests_propagate_but_are_not_recorded() {
    let sink = Arc::new(MemorySink::new());
    let addr = serve(app(sink.clone())).await;
    let (status, h, _) = fetch(addr, "/health", &[("traceparent", TP)]).await;
    assert_eq!(status, 200);
    assert_eq!(h["request-context"], "appId=cid-v1:server-app");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(sink.is_empty());
}

/// SPEC 9.1 / DESIGN invariant 5: hostile input never fails the request and still yields one
/// item with a fresh trace.
#[tokio::test]
async fn hostile_headers_get_the_handlers_response_and_a_fresh_trace() {
    let big_state = format!("k={}", "v".repeat(10_000));
    let long_rid = format!("|{}.", "a".repeat(2000));
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![(
            "traceparent",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        )],
        vec![(
            "traceparent",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )],
        vec![(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        )],
        vec![("traceparent", TP), ("traceparent", TP)],
        vec![("tracestate", &big_state)],
        vec![("request-id", &long_rid)],
        vec![(
            "cookie",
            "ai_user=<script>; ai_session=%%%; ai_authUser=%ZZ",
        )],
        vec![("correlation-context", "=,=,,,;;;")],
        vec![("request-context", "appId=cid-v1:")],
    ];
    for headers in cases {
        let (item, _, body) = one("/orders/7", &headers).await;
        assert_eq!(body, "ok", "{headers:?}");
        assert_eq!(item.operation_parent_id(), None, "{headers:?}");
        assert_ne!(item.operation_id(), Some(T));
        assert_eq!(item.tags.get("ai.user.id"), None);
    }
    // A valid traceparent with a 10 KB tracestate keeps the trace, drops the tracestate.
    let (item, _, _) = one(
        "/orders/7",
        &[("traceparent", TP), ("tracestate", &big_state)],
    )
    .await;
    assert_eq!(item.operation_id(), Some(T));
    // Non-UTF-8 bytes in header values, over raw TCP.
    let sink = Arc::new(MemorySink::new());
    let addr = serve(app(sink.clone())).await;
    let mut req = b"GET /orders/7 HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntraceparent: 00-\xff\xfe-01\r\ncookie: ai_user=\xc3\x28|x\r\ncorrelation-context: a=\xff\r\n\r\n".to_vec();
    let got = raw(addr, &req, 1 << 16).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(got.ends_with(b"ok"));
    let items = wait_items(&sink, 1).await;
    assert_eq!(items[0].operation_parent_id(), None);
    req.clear();
}

#[tokio::test]
async fn stacked_layers_record_once_and_sampling_skips_telemetry() {
    let outer = Arc::new(MemorySink::new());
    let inner = Arc::new(MemorySink::new());
    let router = Router::new()
        .route(
            "/x",
            get(|c: Correlation| async move { c.id().to_string() }),
        )
        .layer(CorrelationLayer::new(inner.clone()))
        .layer(CorrelationLayer::new(outer.clone()));
    let addr = serve(router).await;
    let (_, _, body) = fetch(addr, "/x", &[]).await;
    let items = wait_items(&outer, 1).await;
    assert_eq!(
        request(&items[0]).id,
        body,
        "the handler sees the outer layer's context"
    );
    assert!(inner.is_empty());

    // 0 % sampling: no item, but the context still flows to the handler.
    let none = Arc::new(MemorySink::with_sampling(0.0));
    let router = Router::new()
        .route(
            "/x",
            get(|c: Correlation| async move { format!("{} {}", c.trace_id(), c.is_sampled()) }),
        )
        .layer(CorrelationLayer::new(none.clone()));
    let addr = serve(router).await;
    let (_, _, body) = fetch(addr, "/x", &[("traceparent", TP)]).await;
    assert_eq!(body, format!("{T} false"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn hooks_traceresponse_and_user_tracking() {
    let sink = Arc::new(MemorySink::new());
    let router = Router::new()
        .route(
            "/x",
            get(|| async {
                let mut res = axum::response::Response::new(Body::from("ok"));
                res.extensions_mut().insert(AuthUser("alice".into()));
                res
            }),
        )
        .layer(
            CorrelationLayer::new(sink.clone())
                .traceresponse()
                .track_users()
                .on_request(|parts, item| {
                    if let Some(v) = parts.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
                        item.properties.insert("tenant".into(), v.into());
                    }
                })
                .on_response(|parts, item| {
                    if let Some(AuthUser(u)) = parts.extensions.get::<AuthUser>() {
                        item.tags.insert("ai.user.authUserId", u.clone());
                    }
                }),
        );
    let addr = serve(router).await;
    let (_, h, _) = fetch(addr, "/x", &[("traceparent", TP), ("x-tenant", "contoso")]).await;
    let items = wait_items(&sink, 1).await;
    let item = &items[0];
    assert_eq!(item.properties["tenant"], "contoso");
    assert_eq!(item.tags.get("ai.user.authUserId"), Some("alice"));
    assert_eq!(
        h["traceresponse"],
        format!("00-{T}-{}-01", request(item).id)
    );
    let cookies: Vec<&str> = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies.len(), 2);
    let user = cookies[0]
        .strip_prefix("ai_user=")
        .unwrap()
        .split('|')
        .next()
        .unwrap();
    assert_eq!(item.tags.get("ai.user.id"), Some(user));
    assert!(cookies[1].starts_with("ai_session="));
    assert!(!cookies.iter().any(|c| c.contains("HttpOnly")));
}

#[derive(Clone)]
struct AuthUser(String);

/// Configuring a clone of a layer leaves the original as it was; both serve.
#[tokio::test]
async fn a_cloned_layer_is_configured_on_its_own() {
    let sink = Arc::new(MemorySink::new());
    let original = CorrelationLayer::new(sink.clone()).cloud_role("original");
    let clone = original.clone().cloud_role("clone").traceresponse();
    let router = |layer: CorrelationLayer| {
        Router::new()
            .route("/x", get(|| async { "ok" }))
            .layer(layer)
    };
    let a = serve(router(original)).await;
    let b = serve(router(clone)).await;

    let (_, h, _) = fetch(a, "/x", &[]).await;
    assert!(!h.contains_key("traceresponse"));
    let items = wait_items(&sink, 1).await;
    assert_eq!(items[0].tags.get("ai.cloud.role"), Some("original"));

    let (_, h, _) = fetch(b, "/x", &[]).await;
    assert!(h.contains_key("traceresponse"));
    let items = wait_items(&sink, 1).await;
    assert_eq!(items[0].tags.get("ai.cloud.role"), Some("clone"));
}

/// 0 % sampling with the standard metrics counting: no Request or Dependency item, and
/// every request (with its result code) and every call of the client layer counted.
#[tokio::test]
async fn unsampled_requests_and_calls_are_counted_without_items() {
    use tower::ServiceExt;
    use tracelink_core::metrics::{StandardMetrics, StandardMetricsSink, dimension, metric_name};
    use tracelink_core::model::TelemetryData;
    use tracelink_tower::client::DependencyLayer;

    let kept = Arc::new(MemorySink::with_sampling(0.0));
    let metrics = Arc::new(StandardMetrics::new("role", "instance"));
    let sink = Arc::new(StandardMetricsSink::new(kept.clone(), metrics.clone()));
    let router = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "no") }),
        )
        .layer(CorrelationLayer::new(sink.clone()).cloud_role("front"));
    let addr = serve(router).await;
    for _ in 0..5 {
        assert_eq!(fetch(addr, "/ok", &[]).await.0, StatusCode::OK);
    }
    for _ in 0..3 {
        let (status, _, _) = fetch(addr, "/fail", &[("traceparent", TP)]).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let svc = tower::ServiceBuilder::new()
        .layer(DependencyLayer::new(sink.clone()))
        .service(crate::support::client());
    for _ in 0..4 {
        let req = http::Request::get(format!("http://{addr}/ok"))
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    // The server's counts arrive when its bodies end, after the client has read them.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while metrics.request_totals().count < 12 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(kept.is_empty(), "no item at 0 %");
    let items = metrics.collect(std::time::SystemTime::now());
    let count = |name: &str, key: &str, value: &str| -> u64 {
        items
            .iter()
            .filter_map(|i| match &i.data {
                TelemetryData::Metric(m)
                    if m.metrics[0].name == name && i.properties[key] == value =>
                {
                    m.metrics[0].count
                }
                _ => None,
            })
            .sum()
    };
    assert_eq!(
        count(metric_name::REQUESTS, dimension::REQUEST_RESULT_CODE, "200"),
        9
    );
    assert_eq!(
        count(metric_name::REQUESTS, dimension::REQUEST_RESULT_CODE, "500"),
        3
    );
    assert_eq!(
        count(metric_name::REQUESTS, dimension::CLOUD_ROLE_NAME, "front"),
        12
    );
    assert_eq!(
        count(metric_name::REQUESTS, dimension::REQUEST_SUCCESS, "False"),
        3
    );
    let target = addr.to_string();
    assert_eq!(
        count(
            metric_name::DEPENDENCIES,
            dimension::DEPENDENCY_TARGET,
            &target
        ),
        4
    );
    assert_eq!(metrics.sampled_out(), 16);
}
