//! Test harness: servers on ephemeral ports, an HTTP client, raw TCP, waiting for items.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracelink_core::MemorySink;
use tracelink_core::model::{Dependency, Request, Telemetry, TelemetryData};

/// Serves `app` on 127.0.0.1:0 with `ConnectInfo<SocketAddr>`; returns its address.
pub(crate) async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

pub(crate) fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A GET with headers; returns status, response headers and body text.
pub(crate) async fn fetch(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (http::StatusCode, http::HeaderMap, String) {
    let mut b = http::Request::get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let res = client()
        .request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Sends raw bytes, reads the whole answer (until close or `limit` bytes).
pub(crate) async fn raw(addr: SocketAddr, request: &[u8], limit: usize) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < limit {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// Waits until the sink holds `n` items (5 s at most), then takes them.
pub(crate) async fn wait_items(sink: &Arc<MemorySink>, n: usize) -> Vec<Telemetry> {
    for _ in 0..1000 {
        if sink.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let items = sink.take();
    assert!(
        items.len() >= n,
        "expected {n} items, got {}: {items:#?}",
        items.len()
    );
    items
}

/// The Request data of an item.
pub(crate) fn request(item: &Telemetry) -> &Request {
    match &item.data {
        TelemetryData::Request(r) => r,
        other => panic!("not a request: {other:?}"),
    }
}

/// The Dependency data of an item.
pub(crate) fn dependency(item: &Telemetry) -> &Dependency {
    match &item.data {
        TelemetryData::Dependency(d) => d,
        other => panic!("not a dependency: {other:?}"),
    }
}
