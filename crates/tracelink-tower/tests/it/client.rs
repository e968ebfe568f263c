//! The client layer around hyper-util's client and tower's `Timeout`, against real servers
//! (SPEC 6.2: failed calls).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::Full;
use tower::ServiceBuilder;
use tower::ServiceExt;
use tower::timeout::TimeoutLayer;
use tracelink_core::MemorySink;
use tracelink_tower::client::DependencyLayer;

use crate::support::{client, dependency, serve, wait_items};

/// A server whose `/slow` answers after 5 s.
async fn slow_server() -> std::net::SocketAddr {
    serve(Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    ))
    .await
}

fn get_req(url: String) -> http::Request<Full<Bytes>> {
    http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A `Timeout` inside the layer: its error (a `BoxError`) goes through the layer, which
/// records a `Timeout` item and returns the error unchanged.
#[cfg(feature = "timeout")]
#[tokio::test]
async fn a_timeout_inside_the_layer_is_recorded_as_timeout() {
    let addr = slow_server().await;
    let sink = Arc::new(MemorySink::new());
    let svc = ServiceBuilder::new()
        .layer(DependencyLayer::new(sink.clone()))
        .layer(TimeoutLayer::new(Duration::from_millis(100)))
        .service(client());
    let started = Instant::now();
    let err = svc
        .oneshot(get_req(format!("http://{addr}/slow")))
        .await
        .unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
    let items = wait_items(&sink, 1).await;
    let d = dependency(&items[0]);
    assert_eq!((d.result_code.as_ref(), d.success), ("Timeout", false));
    assert_eq!(d.name, "GET /slow");
    assert!(d.duration >= Duration::from_millis(100), "{:?}", d.duration);
    assert_eq!(items[0].properties["error"], "request timed out");
}

/// A `Timeout` outside the layer drops the call: `Canceled`.
#[tokio::test]
async fn a_timeout_outside_the_layer_is_recorded_as_canceled() {
    let addr = slow_server().await;
    let sink = Arc::new(MemorySink::new());
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(100)))
        .layer(DependencyLayer::new(sink.clone()))
        .service(client());
    assert!(
        svc.oneshot(get_req(format!("http://{addr}/slow")))
            .await
            .is_err()
    );
    let items = wait_items(&sink, 1).await;
    let d = dependency(&items[0]);
    assert_eq!((d.result_code.as_ref(), d.success), ("Canceled", false));
}

/// A refused connection is found by its `io::ErrorKind` in hyper-util's error chain; the
/// error returned is hyper-util's own.
#[tokio::test]
async fn a_refused_connection_is_recorded_as_connect() {
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let sink = Arc::new(MemorySink::new());
    let svc = ServiceBuilder::new()
        .layer(DependencyLayer::new(sink.clone()))
        .service(client());
    let err = svc
        .oneshot(get_req(format!("http://{closed}/x")))
        .await
        .unwrap_err();
    assert!(
        err.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(|e| e.is_connect()),
        "{err:?}"
    );
    let items = wait_items(&sink, 1).await;
    let d = dependency(&items[0]);
    assert_eq!((d.result_code.as_ref(), d.success), ("Connect", false));
}

/// A classifier of one's own replaces the default.
#[tokio::test]
async fn a_custom_classifier_decides() {
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let sink = Arc::new(MemorySink::new());
    let svc = ServiceBuilder::new()
        .layer(DependencyLayer::new(sink.clone()).classify_error(
            |_: &(dyn std::error::Error + 'static)| tracelink_tower::client::CallError::Faulted,
        ))
        .service(client());
    assert!(
        svc.oneshot(get_req(format!("http://{closed}/x")))
            .await
            .is_err()
    );
    let items = wait_items(&sink, 1).await;
    assert_eq!(dependency(&items[0]).result_code, "Faulted");
}
