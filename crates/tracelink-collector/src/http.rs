//! The HTTP side: ingestion (Breeze and OTLP), the JSON query API, the pages, and who may use
//! them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{MethodRouter, get, post};

use crate::access::{self, Access, Guard};
use crate::error::chain;
use crate::ingest::{self, BodyError, TrackResponse};
use crate::otlp::{self, Encoding, Signal};
use crate::query::{item_filter, operation_filter};
use crate::stats::{self, Counters};
use crate::store::{Body, Raw, Row, Store};
use crate::web;

#[derive(Clone)]
struct App {
    store: Store,
    max_body: usize,
    access: Arc<Access>,
}

impl App {
    fn counters(&self) -> &Arc<Counters> {
        self.store.counters()
    }
}

/// The collector's routes, open to anyone: `POST /v2/track`, `POST /v2.1/track`,
/// `POST /v1/traces`, `POST /v1/logs`, `POST /v1/metrics`, `GET /api/operations`,
/// `GET /api/operations/{id}`, `GET /api/items`, `GET /api/stats`, `GET /health` and the web
/// pages with their APIs (`GET /api/search`, ...). [`Collector::start`](crate::Collector::start) adds the access rules of its
/// configuration.
pub fn router(store: Store, max_body: usize) -> Router {
    routes(store, max_body, Access::default())
}

pub(crate) fn routes(store: Store, max_body: usize, access: Access) -> Router {
    let access = Arc::new(access);
    let guard = Guard {
        access: access.clone(),
        counters: store.counters().clone(),
    };
    let app = App {
        store: store.clone(),
        max_body,
        access,
    };
    let mut router = Router::new()
        .route("/v2/track", post(track))
        .route("/v2.1/track", post(track))
        .route("/v1/traces", otlp_post(Signal::Traces))
        .route("/v1/logs", otlp_post(Signal::Logs))
        .route("/v1/metrics", otlp_post(Signal::Metrics))
        .route("/api/operations", get(api_operations))
        .route("/api/operations/{id}", get(api_operation))
        .route("/api/items", get(api_items))
        .route("/api/stats", get(api_stats))
        .route("/health", get(|| async { "ok" }))
        .merge(web::routes())
        .merge(crate::live::routes(&app.access, store.counters()))
        .with_state(store)
        .route("/login", get(access::login).with_state(guard.clone()));
    if !app.access.is_open() {
        router = router.layer(axum::middleware::from_fn_with_state(
            guard,
            access::require_login,
        ));
    }
    router
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

fn gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"))
}

/// What a Breeze body held.
enum Track {
    Rows(Vec<Row>, TrackResponse),
    Refused,
    Body(BodyError),
}

async fn track(
    axum::Extension(app): axum::Extension<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let counters = app.counters().clone();
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            stats::add(&counters.bodies_too_large, 1);
            return error(e.status(), e.body_text());
        }
    };
    let gzip = gzip(&headers) || body.starts_with(&[0x1f, 0x8b]);
    // Decompressing, parsing and building rows may take a while for big bodies: off the
    // runtime's threads.
    let limit = app.max_body.saturating_mul(4);
    let access = app.access.clone();
    let stored = body.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let plain = match ingest::decode(&body, gzip, limit) {
            Ok(p) => p,
            Err(e) => return Track::Body(e),
        };
        match ingest::read(&plain, &|k| access.ikey_accepted(k)) {
            Ok(Some((rows, response))) => Track::Rows(rows, response),
            Ok(None) => Track::Refused,
            Err(e) => Track::Body(e),
        }
    })
    .await;
    let (rows, response) = match decoded {
        Ok(Track::Rows(rows, response)) => (rows, response),
        Ok(Track::Refused) => {
            stats::add(&counters.requests_refused, 1);
            return StatusCode::FORBIDDEN.into_response();
        }
        Ok(Track::Body(BodyError::TooLarge)) => {
            stats::add(&counters.bodies_too_large, 1);
            return error(StatusCode::PAYLOAD_TOO_LARGE, "body too large".into());
        }
        Ok(Track::Body(BodyError::Unreadable(m))) => {
            stats::add(&counters.bodies_rejected, 1);
            return error(StatusCode::BAD_REQUEST, m);
        }
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "decoding failed".into()),
    };
    stats::add(&counters.items_rejected, response.errors.len() as u64);
    if rows.is_empty() {
        return (StatusCode::BAD_REQUEST, Json(response)).into_response();
    }
    // The body is stored as received, with the rows pointing into it.
    let body = Body {
        bytes: stored,
        gzip,
    };
    if let Err(e) = app.store.insert(rows, Some(body)).await {
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

/// `POST` of one OTLP signal's path.
fn otlp_post<S: Clone + Send + Sync + 'static>(signal: Signal) -> MethodRouter<S> {
    post(
        move |ext: axum::Extension<App>,
              headers: HeaderMap,
              body: Result<Bytes, BytesRejection>| {
            otlp_export(ext, signal, headers, body)
        },
    )
}

fn otlp_error(encoding: Encoding, status: StatusCode, code: i32, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        otlp::status_body(encoding, code, message),
    )
        .into_response()
}

/// One OTLP/HTTP export request (see the [`otlp`] module).
async fn otlp_export(
    axum::Extension(app): axum::Extension<App>,
    signal: Signal,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let counters = app.counters().clone();
    if !app.access.otlp_sender(&headers) {
        stats::add(&counters.requests_refused, 1);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(encoding) = Encoding::of(content_type) else {
        stats::add(&counters.bodies_rejected, 1);
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "OTLP/HTTP takes application/x-protobuf or application/json",
        )
            .into_response();
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            stats::add(&counters.bodies_too_large, 1);
            return otlp_error(encoding, e.status(), 8, e.body_text());
        }
    };
    let gzip = gzip(&headers);
    let limit = app.max_body.saturating_mul(4);
    let decoded = tokio::task::spawn_blocking(move || {
        let plain = ingest::decode(&body, gzip, limit)?;
        let m = otlp::map(signal, &plain, encoding).map_err(BodyError::Unreadable)?;
        let rows: Vec<Row> = m
            .items
            .iter()
            .map(|t| Row::from_item(t, Raw::Text(tracelink_core::envelope::to_json(t, ""))))
            .collect();
        Ok::<_, BodyError>((m, rows))
    })
    .await;
    let (mapped, rows) = match decoded {
        Ok(Ok(v)) => v,
        Ok(Err(BodyError::TooLarge)) => {
            stats::add(&counters.bodies_too_large, 1);
            return otlp_error(
                encoding,
                StatusCode::PAYLOAD_TOO_LARGE,
                8,
                "body too large".into(),
            );
        }
        Ok(Err(BodyError::Unreadable(m))) => {
            stats::add(&counters.bodies_rejected, 1);
            return otlp_error(encoding, StatusCode::BAD_REQUEST, 3, m);
        }
        Err(_) => {
            return otlp_error(
                encoding,
                StatusCode::INTERNAL_SERVER_ERROR,
                13,
                "decoding failed".into(),
            );
        }
    };
    stats::add(&counters.items_rejected, mapped.rejected as u64);
    if mapped.received > 0 && mapped.rejected == mapped.received {
        let message = format!(
            "all {} refused: {}",
            mapped.received,
            mapped.reason.clone().unwrap_or_default()
        );
        return otlp_error(encoding, StatusCode::BAD_REQUEST, 3, message);
    }
    if !rows.is_empty()
        && let Err(e) = app.store.insert(rows, None).await
    {
        return otlp_error(
            encoding,
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            format!("storage failed: {}", chain(&e)),
        );
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        otlp::response(signal, encoding, &mapped),
    )
        .into_response()
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

async fn api_stats(State(store): State<Store>) -> Response {
    Json(store.stats()).into_response()
}
