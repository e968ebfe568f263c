//! The HTTP side: ingestion (Breeze protocol), the JSON query API, and the page.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};

use crate::ingest::{self, BodyError, TrackResponse};
use crate::query::{self, ItemFilter, OperationFilter};
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
            format!("storage failed: {e}"),
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

/// A query parameter that does not parse: 400.
#[derive(Debug)]
pub(crate) struct BadParam(String);

impl IntoResponse for BadParam {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, format!("invalid {}", self.0)).into_response()
    }
}

fn num<T: std::str::FromStr>(p: &HashMap<String, String>, k: &str) -> Result<Option<T>, BadParam> {
    match p.get(k).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| BadParam(k.to_owned())),
    }
}

/// Milliseconds since the epoch, or an RFC 3339 time.
fn time_ms(p: &HashMap<String, String>, k: &str) -> Result<Option<i64>, BadParam> {
    match p.get(k).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(ms) => Ok(Some(ms)),
            Err(_) => tracelink_core::wire_time::parse_time(v)
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| Some(d.as_millis() as i64))
                .ok_or_else(|| BadParam(k.to_owned())),
        },
    }
}

fn text(p: &HashMap<String, String>, k: &str) -> Option<String> {
    p.get(k).filter(|v| !v.is_empty()).cloned()
}

/// Parses the filter of the operations list from query parameters.
pub(crate) fn operation_filter(p: &HashMap<String, String>) -> Result<OperationFilter, BadParam> {
    Ok(OperationFilter {
        role: text(p, "role"),
        failed: match p.get("failed").map(String::as_str) {
            Some("true" | "1") => Some(true),
            Some("false" | "0") => Some(false),
            _ => None,
        },
        since_ms: time_ms(p, "since")?,
        limit: num(p, "limit")?,
        offset: num(p, "offset")?,
    })
}

fn item_filter(p: &HashMap<String, String>) -> Result<ItemFilter, BadParam> {
    Ok(ItemFilter {
        item_type: text(p, "type"),
        role: text(p, "role"),
        user_id: text(p, "user"),
        session_id: text(p, "session"),
        from_ms: time_ms(p, "from")?,
        to_ms: time_ms(p, "to")?,
        limit: num(p, "limit")?,
    })
}

async fn api_operations(State(store): State<Store>, Query(p): Params) -> Response {
    let f = match operation_filter(&p) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match store.read(move |c| query::operations(c, &f)).await {
        Ok(ops) => Json(ops).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn api_operation(State(store): State<Store>, Path(id): Path<String>) -> Response {
    match store.read(move |c| query::operation(c, &id)).await {
        Ok(Some(tree)) => Json(tree).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such operation").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn api_items(State(store): State<Store>, Query(p): Params) -> Response {
    let f = match item_filter(&p) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match store.read(move |c| query::items(c, &f)).await {
        Ok(items) => Json(items).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}
