//! The realistic handler of the `-real` variants, the same source for every one of them
//! (`benches/load-peer` compiles this very file): three nested `#[instrument]`ed async
//! functions (INFO spans), two INFO events with three fields each, one call to the backend
//! through reqwest (its body read), and a JSON answer.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;

/// How the handler calls the backend: reqwest alone, or through reqwest-middleware (where the
/// instrumentation is).
#[derive(Clone)]
pub(crate) enum Http {
    /// `reqwest::Client`.
    Plain(reqwest::Client),
    /// `reqwest_middleware::ClientWithMiddleware`.
    Middleware(reqwest_middleware::ClientWithMiddleware),
}

impl Http {
    async fn get_bytes(&self, url: &str) -> Result<usize, String> {
        let response = match self {
            Http::Plain(c) => c.get(url).send().await.map_err(|e| e.to_string())?,
            Http::Middleware(c) => c.get(url).send().await.map_err(|e| e.to_string())?,
        };
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok(body.len())
    }
}

struct App {
    http: Http,
    /// `http://<backend>`.
    base: String,
}

#[derive(serde::Serialize)]
struct Order {
    id: u32,
    status: &'static str,
    in_stock: bool,
    inventory_bytes: usize,
}

/// `GET /hello/{id}` served by the realistic handler, calling `backend` (`host:port`).
pub(crate) fn router(http: Http, backend: &str) -> Router {
    let app = Arc::new(App {
        http,
        base: format!("http://{backend}"),
    });
    Router::new()
        .route("/hello/{id}", get(order))
        .with_state(app)
}

async fn order(State(app): State<Arc<App>>, Path(id): Path<u32>) -> axum::Json<Order> {
    axum::Json(place_order(&app, id).await)
}

#[tracing::instrument(level = "info", skip(app))]
async fn place_order(app: &App, id: u32) -> Order {
    tracing::info!(
        order_id = id,
        customer = "c-1042",
        channel = "web",
        "order received"
    );
    let inventory = check_stock(app, id).await;
    tracing::info!(
        order_id = id,
        in_stock = inventory.is_some(),
        warehouse = "eu-west",
        "stock checked"
    );
    Order {
        id,
        status: "accepted",
        in_stock: inventory.is_some(),
        inventory_bytes: inventory.unwrap_or(0),
    }
}

#[tracing::instrument(level = "info", skip(app))]
async fn check_stock(app: &App, id: u32) -> Option<usize> {
    fetch_inventory(app, id).await.ok()
}

#[tracing::instrument(level = "info", skip(app))]
async fn fetch_inventory(app: &App, id: u32) -> Result<usize, String> {
    let url = format!("{}/hello/{id}", app.base);
    app.http.get_bytes(&url).await
}
