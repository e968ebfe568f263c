//! The HTTP side: ingestion (Breeze protocol), the JSON query API, and the page.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};

use crate::error::chain;
use crate::ingest::{self, BodyError, TrackResponse};
use crate::query::{item_filter, operation_filter};
use crate::store::Store;
use crate::web;

#[derive(Clone)]
struct App {
    store: Store,
    max_body: usize,
}

/// The collector's routes: `POST /v2/track`, `POST /v2.1/track`, `GET /api/operations`,
/// `GET /api/operations/{id}`, `GET /api/items`, `GET /health` and the web pages.
pub fn router(store: Store, max_body: usize) -> Router {
    let app = App { store, max_body };
    Router::new()
        .route("/v2/track", post(track))
        .route("/v2.1/track", post(track))
        .route("/api/operations", get(api_operations))
        .route("/api/operations/{id}", get(api_operation))
        .route("/api/items", get(api_items))
        .route("/health", get(|| async { "ok" }))
        .merge(web::routes())
        .with_state(app.store.clone())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::Extension(app))
}

fn error(status: StatusCode, message: String) -> Response {
    let body = TrackResponse {
        errors: vec![ingest::ItemError {
            index: 0,
            status_code: status.as_u16(),
            message,
        }],
        ..TrackResponse::default()
    };
    (status, Json(body)).into_response()
}

async fn track(
    axum::Extension(app): axum::Extension<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    // Decompressing may take a while for big bodies: off the runtime's threads.
    let limit = app.max_body.saturating_mul(4);
    let decoded = tokio::task::spawn_blocking(move || {
        let plain = ingest::decode(&body, gzip, limit)?;
        ingest::items(&plain).map(ingest::validate)
    })
    .await;
    let (accepted, response) = match decoded {
        Ok(Ok(v)) => v,
        Ok(Err(BodyError::TooLarge)) => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "body too large".into());
        }
        Ok(Err(BodyError::Unreadable(m))) => return error(StatusCode::BAD_REQUEST, m),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "decoding failed".into()),
    };
    if accepted.is_empty() {
        return (StatusCode::BAD_REQUEST, Json(response)).into_response();
    }
    if let Err(e) = app.store.insert_items(accepted).await {
        // Nothing was stored: the sender retries.
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("storage failed: {}", chain(&e)),
        );
    }
    let status = if response.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::PARTIAL_CONTENT
    };
    (status, Json(response)).into_response()
}

type Params = Query<HashMap<String, String>>;

async fn api_operations(State(store): State<Store>, Query(p): Params) -> Response {
    let f = match operation_filter(&p) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match store.operations(&f).await {
        Ok(ops) => Json(ops).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, chain(&e)).into_response(),
    }
}

async fn api_operation(State(store): State<Store>, Path(id): Path<String>) -> Response {
    match store.operation(&id).await {
        Ok(Some(tree)) => Json(tree).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such operation").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, chain(&e)).into_response(),
    }
}

async fn api_items(State(store): State<Store>, Query(p): Params) -> Response {
    let f = match item_filter(&p) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match store.items(&f).await {
        Ok(items) => Json(items).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, chain(&e)).into_response(),
    }
}
