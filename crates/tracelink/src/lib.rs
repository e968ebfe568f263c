//! # tracelink
//!
//! Application Insights for Rust services, in one call. A Rust service set up with tracelink
//! is a first-class member of an estate of .NET, Node, Java, Python and browser apps
//! instrumented with Application Insights: it reads and writes every correlation header they
//! use (`traceparent`, `tracestate`, `baggage`, `Request-Id`, `Correlation-Context`,
//! `Request-Context`), assigns ids and `operation_ParentId` as they do, records requests,
//! calls, logs, events, exceptions, metrics and page views with the user and session of the
//! browser that caused them, and ships them reliably to Azure Monitor, or to the local
//! collector (`tracelink-collector`) when no connection string is set.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tracing_subscriber::prelude::*;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let tracelink = tracelink::init()?; // reads APPLICATIONINSIGHTS_CONNECTION_STRING, OTEL_SERVICE_NAME, ...
//!     tracing_subscriber::registry().with(tracelink.tracing_layer()).init();
//!     let http = tracelink.reqwest_client(reqwest::Client::new());
//!     let app = Router::new()
//!         .route("/", get(move || async move { http.get("http://127.0.0.1:9000/").send().await.map(|_| "ok").unwrap_or("down") }))
//!         .layer(tracelink.layer());
//!     axum::serve(tokio::net::TcpListener::bind("127.0.0.1:8080").await?, app).await?;
//!     tracelink.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! ## What comes from where
//!
//! [`init`] (or [`builder`]`()...init()`) reads the configuration once ([`Builder`] lists each
//! setting and the environment variable it falls back to) and returns the [`Tracelink`]
//! handle. Everything else comes from the handle and shares that configuration:
//!
//! | you need | from | records |
//! |---|---|---|
//! | the server layer (axum, hyper) | [`Tracelink::layer`] | one Request per request; answers `Request-Context` with the own appId; reads the user and session cookies |
//! | the reqwest middleware | [`Tracelink::reqwest_client`], [`Tracelink::reqwest_middleware`] | one Dependency per call, headers injected |
//! | the tower client layer | [`Tracelink::client_layer`] | one Dependency per call, headers injected |
//! | the `tracing` layer | [`Tracelink::tracing_layer`] | logs as Traces/Exceptions, `#[instrument]` spans as `InProc` dependencies |
//! | the telemetry client | [`Tracelink::client`], or the free functions ([`track_event`], [`track_error`], ...) | events, exceptions, traces, metrics, page views, calls and requests no middleware saw |
//! | operations for queues and jobs | [`Operation`] | a Request per processed message or job, a Dependency per enqueue, linked through the message ([`messaging`]) |
//!
//! Every item gets the role (`ai.cloud.role`), instance, application version and SDK version
//! of the setup, the ids and name of the operation it was recorded in, and that operation's
//! user context: `ai.user.id`, `ai.session.id` from the browser SDK's cookies, and the
//! authenticated user a handler sets with [`set_authenticated_user`]. The usage tools of
//! Application Insights (Users, Sessions, Funnels, Retention, Cohorts) count by them.
//!
//! ## Choices where the other SDKs leave room
//!
//! - With no connection string, items go to the local collector at 127.0.0.1:7421
//!   ([`LOCAL_CONNECTION_STRING`]), not nowhere: a service run on a developer's machine
//!   shows up in `tracelink-collector` without configuration.
//! - The exporter runs on a thread of its own with a single-threaded runtime: [`init`] needs
//!   no runtime, and exporting never takes the application's workers.
//! - Dropping the handle waits at most the shutdown timeout (2 s) for the last items;
//!   what is not sent by then stays in the disk spool for the next start.
//! - The free functions use the client of the running setup, as `tracing`'s macros use the
//!   current subscriber; they do nothing before [`init`] and after shutdown. The explicit
//!   [`Client`] works the same.
//! - [`init`] installs a panic hook (chained to the one before it): a panic becomes an
//!   Exception item ([`PANIC_TYPE`], its message, and its location as property and stack)
//!   under the operation it happened in, and the server layer records the request as failed.
//! - A message consumer takes the user context from the message only when asked
//!   ([`Operation::user_from_message`]).
//!
//! ## Features
//!
//! - `axum` (default): `tower` plus route templates as request names.
//! - `tower`: [`Tracelink::layer`] and [`Tracelink::client_layer`].
//! - `reqwest` (default): [`Tracelink::reqwest_client`].
//! - `tracing` (default): [`Tracelink::tracing_layer`].
//! - `opentelemetry`: the OpenTelemetry bridge, re-exported as [`otel`].
//! - `export` (default): the exporter; without it, give the setup a sink
//!   ([`Builder::sink`]).
//!
//! The building blocks are re-exported for what the setup does not cover: [`core`] (ids,
//! codecs, the data model), and with their features [`tower`], [`reqwest`], [`otel`],
//! [`export`].

#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod error;
#[cfg(feature = "export")]
mod export_thread;
mod handle;
mod items;
pub mod messaging;
mod operation;
mod panic;
mod setup;
mod shared;

pub use client::{
    Client, current_client, set_authenticated_user, track_dependency, track_error, track_event,
    track_exception, track_metric, track_page_view, track_request, track_trace,
};
pub use error::{InitError, InitErrorKind};
pub use handle::{Tracelink, init};
pub use items::{
    DependencyCall, Event, Exception, Metric, PageView, RequestRecord, Severity, Trace,
};
pub use operation::{LINKS_PROPERTY, Operation, OperationGuard};
pub use panic::PANIC_TYPE;
pub use setup::{
    Builder, DEFAULT_SHUTDOWN_TIMEOUT, LOCAL_CONNECTION_STRING, PROPAGATION_ENV, UserTracking,
    builder,
};

/// The runtime-free core: ids, header codecs, the `Correlation` context and its scope, the
/// data model and envelopes.
pub use tracelink_core as core;

/// The exporter: sampling, batching, gzip, retry, disk spool, counters.
#[cfg(feature = "export")]
pub use tracelink_export as export;

/// The server and client layers for tower.
#[cfg(feature = "tower")]
pub use tracelink_tower as tower;

/// The reqwest-middleware middleware.
#[cfg(feature = "reqwest")]
pub use tracelink_reqwest as reqwest;

/// The `tracing` layer, and with the `opentelemetry` feature the OpenTelemetry bridge.
#[cfg(feature = "tracing")]
pub use tracelink_otel as otel;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
