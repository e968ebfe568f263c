//! An axum service set up with the `tracelink` crate alone, configured from the environment.
//! See the README beside this file for its routes.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::mpsc;
use tracelink::{Event, Operation};
use tracing_subscriber::prelude::*;

/// A message on the in-process queue: a body and its application properties.
struct Message {
    order: String,
    properties: HashMap<String, String>,
}

#[derive(Clone)]
struct App {
    http: reqwest_middleware::ClientWithMiddleware,
    base: String,
    queue: mpsc::Sender<Message>,
}

#[derive(Deserialize)]
struct Checkout {
    order: String,
    amount: f64,
}

#[derive(Deserialize)]
struct Enqueue {
    order: String,
}

/// Why a checkout was refused.
#[derive(Debug)]
struct CheckoutError {
    order: String,
    cause: AmountError,
}

/// What was wrong with the amount.
#[derive(Debug)]
struct AmountError(f64);

impl std::fmt::Display for CheckoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "checkout of order {} refused", self.order)
    }
}

impl std::fmt::Display for AmountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "amount {} is negative", self.0)
    }
}

impl std::error::Error for CheckoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

impl std::error::Error for AmountError {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The whole setup: one call, then the layers from the handle.
    let tracelink = tracelink::init()?;
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(tracelink.tracing_layer())
        .init();

    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let addr = listener.local_addr()?;
    let (queue, messages) = mpsc::channel(1024);
    let app = App {
        http: tracelink.reqwest_client(reqwest::Client::new()),
        base: format!("http://{addr}"),
        queue,
    };
    let consumer = tokio::spawn(consume(messages));
    let router = Router::new()
        .route("/orders/{id}", get(order))
        .route("/inventory/{id}", get(inventory))
        .route("/checkout", post(checkout))
        .route("/enqueue", post(enqueue))
        .with_state(app)
        .layer(tracelink.layer());

    println!("quickstart listening on http://{addr}");
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    consumer.abort();
    tracelink.shutdown().await;
    Ok(())
}

/// `GET /orders/{id}`: a log, an instrumented function, a call to `/inventory/{id}`.
async fn order(State(app): State<App>, Path(id): Path<String>) -> Result<String, StatusCode> {
    tracing::info!(order = %id, "looking up order");
    let stock = stock_of(&app, &id).await?;
    Ok(format!("order {id}: {stock} in stock\n"))
}

#[tracing::instrument(skip(app))]
async fn stock_of(app: &App, id: &str) -> Result<u64, StatusCode> {
    let res = app
        .http
        .get(format!("{}/inventory/{id}", app.base))
        .send()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let body: serde_json::Value = res.json().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    Ok(body["stock"].as_u64().unwrap_or(0))
}

/// `GET /inventory/{id}`: the downstream service, here the same process.
async fn inventory(Path(id): Path<String>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "item": id, "stock": 3 }))
}

/// `POST /checkout`: a custom event; a negative amount is an exception and a 400.
async fn checkout(Json(c): Json<Checkout>) -> StatusCode {
    if c.amount < 0.0 {
        let err = CheckoutError {
            order: c.order,
            cause: AmountError(c.amount),
        };
        tracelink::track_error(&err);
        return StatusCode::BAD_REQUEST;
    }
    tracelink::track_event(
        Event::new("checkout")
            .property("order", c.order)
            .measurement("amount", c.amount),
    );
    StatusCode::OK
}

/// `POST /enqueue`: the producer. The enqueue is a dependency whose context, and the user
/// context, travel in the message's properties.
async fn enqueue(State(app): State<App>, Json(e): Json<Enqueue>) -> StatusCode {
    let send = Operation::dependency("enqueue orders", "Queue Message | in-process")
        .target("orders")
        .start();
    let mut properties = HashMap::new();
    send.inject(&mut properties);
    // Opt-in: the consumer's items count for the same user and session.
    send.inject_user(&mut properties);
    let sent = app
        .queue
        .send(Message {
            order: e.order,
            properties,
        })
        .await;
    if sent.is_err() {
        let mut send = send;
        send.success(false);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    send.finish();
    StatusCode::ACCEPTED
}

/// The consumer: each message is processed as its own request, child of its enqueue.
async fn consume(mut messages: mpsc::Receiver<Message>) {
    while let Some(m) = messages.recv().await {
        let process = Operation::request("process order")
            .parent_from(&m.properties)
            .user_from_message(&m.properties)
            .start();
        process
            .scope(async {
                tracing::info!(order = %m.order, "processing order");
            })
            .await;
        process.finish();
    }
}
