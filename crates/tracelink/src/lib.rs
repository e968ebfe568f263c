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
//! | pre-aggregated metrics | [`Client::metric`], [`metric`] | one item per name, dimension values and minute: count, sum, min, max, std dev |
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
//! - Metrics are pre-aggregated as the other SDKs' `GetMetric` does: [`Client::metric`]
//!   adds values up per name and dimension values, and one item per series goes out every
//!   60 s ([`Builder::metric_interval`]) with count, sum, min, max and standard deviation.
//!   At most 1000 dimension combinations per metric and 10,000 in all
//!   ([`Builder::metric_limits`]); values beyond are not recorded, `track` returns `false`,
//!   and they are counted ([`Tracelink::metric_stats`], and a WARN event once per interval
//!   with feature `tracing`). [`Client::track_metric`] stays: it sends one item per call,
//!   for values that are aggregates already. Tracking a value costs about as much as
//!   hashing its name and dimensions, and takes no lock shared with other threads once the
//!   series exists (`cargo bench -p tracelink --bench metrics`).
//! - The standard metrics are on, as in the other SDKs ([`Builder::no_standard_metrics`]):
//!   every request, dependency, exception and trace is counted into `requests/duration`,
//!   `dependencies/duration`, `exceptions/count` and `traces/count` before sampling, with the
//!   names and properties the Node SDK sends (captured in `tests/data/captures`), and marked
//!   `_MS.ProcessedByMetricExtractors` so that the backend does not count it twice. They
//!   count on the exporter's thread, in front of Live Metrics and the exporter (or in front
//!   of the sink given to the setup). So that the operations sampling drops are counted too,
//!   they are recorded and dropped after counting: with sampling on, the request path costs
//!   what it costs without sampling. The details are in [`core::metrics`].
//! - Performance counters go out every interval as well ([`Builder::no_performance_counters`]),
//!   under the names the SDKs send: `\Processor(_Total)\% Processor Time` (the machine's CPU
//!   in use, from `/proc/stat`), `\Process(??APP_WIN32_PROC??)\% Processor Time` (the
//!   process's, in percent of the CPUs it may use, from `/proc/self/stat`),
//!   `\Process(??APP_WIN32_PROC??)\Private Bytes` (its resident memory, `VmRSS`, as the Node
//!   SDK sends it), `\Memory\Available Bytes` (`MemAvailable`, at most what a cgroup v2
//!   memory limit leaves), and the request rate and mean execution time of the interval
//!   (`\ASP.NET Applications(??APP_W3SVC_PROC??)\Requests/Sec`, `…\Request Execution Time`,
//!   from the standard metrics' counts). Outside Linux only the request counters are sent.
//!   Aggregates and counters are collected on a thread of their own (`tracelink-metrics`),
//!   never on the request path.
//! - Resources with local authentication disabled need Entra ID tokens:
//!   [`Builder::credential`] takes a token provider (a closure, or with feature
//!   `azure-identity` the Azure SDK's credentials as `export::AzureCredential`), whose
//!   tokens the exporter fetches and refreshes on its own thread;
//!   `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` = `Authorization=AAD[;ClientId=…]` sets up a
//!   managed identity (feature `azure-identity`). The identity needs the role *Monitoring
//!   Metrics Publisher* on the Application Insights resource; the connection string stays
//!   the same (`AADAudience=` for sovereign clouds). The exporter's crate docs say what
//!   happens on 401 and 403.
//! - Live Metrics (feature `live-metrics`, on by default) runs whenever the exporter does, on
//!   the exporter's thread: a ping every 5 s while nobody watches, a post every second while
//!   someone does. The setup's sink counts every item before the exporter samples it. It is
//!   off when ingestion is on this machine and the connection string names no
//!   `LiveEndpoint` (a development or test setup; [`LOCAL_CONNECTION_STRING`] names the
//!   collector for both), and with [`Builder::no_live_metrics`]. The protocol choices
//!   are in [`live`]'s docs.
//!
//! ## Features
//!
//! - `axum` (default): `tower` plus route templates as request names.
//! - `tower`: [`Tracelink::layer`] and [`Tracelink::client_layer`].
//! - `reqwest` (default): [`Tracelink::reqwest_client`].
//! - `tracing` (default): [`Tracelink::tracing_layer`].
//! - `opentelemetry`: the OpenTelemetry bridge, re-exported as [`otel`], and
//!   `Builder::opentelemetry`: OpenTelemetry set up with tracelink in one call (below).
//! - `export` (default): the exporter; without it, give the setup a sink
//!   ([`Builder::sink`]).
//! - `azure-identity`: Entra ID tokens from the Azure SDK's credentials
//!   (`export::AzureCredential`: managed identity, workload identity, the Azure CLI, a
//!   service principal) and `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`; needs `export`.
//! - `live-metrics` (default): Live Metrics ([`Tracelink::live_metrics`]), re-exported as
//!   [`live`]; needs `export` (a setup with a sink of its own sends no Live Metrics).
//!
//! ## With OpenTelemetry
//!
//! With the `opentelemetry` feature, `builder().opentelemetry()` also sets up OpenTelemetry
//! so that its spans and tracelink's items form one tree: a tracer provider whose spans go to
//! the same exporter (the role, instance and version as its Resource), installed as
//! OpenTelemetry's global tracer provider with a global propagator for `traceparent` and the
//! legacy headers. The handle's layers then share OpenTelemetry's ids: the server layer makes
//! request ids OpenTelemetry span ids (and adopts the span of an OpenTelemetry server
//! middleware placed outside it), the client middleware makes calls inside a span made
//! current with the OpenTelemetry API that span's children, and the `tracing` layer leaves
//! spans to OpenTelemetry and records each log once. `Tracelink::opentelemetry_layer` goes
//! into the subscriber next to `Tracelink::tracing_layer` (`Builder::opentelemetry` shows the
//! whole program).
//!
//! The building blocks are re-exported for what the setup does not cover: [`core`] (ids,
//! codecs, the data model), and with their features [`tower`], [`reqwest`], [`otel`],
//! [`export`], [`live`].

#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod error;
#[cfg(feature = "export")]
mod export_thread;
mod handle;
#[cfg(feature = "export")]
mod handoff;
mod items;
#[cfg(feature = "live-metrics")]
mod live_setup;
pub mod messaging;
mod metrics_setup;
mod operation;
#[cfg(feature = "opentelemetry")]
mod otel_pipeline;
mod panic;
mod perf_counters;
mod settings;
mod setup;
mod shared;

pub use client::{
    Client, current_client, metric, set_authenticated_user, track_dependency, track_error,
    track_event, track_exception, track_metric, track_page_view, track_request, track_trace,
};
pub use error::{InitError, InitErrorKind};
pub use handle::{Tracelink, init};
pub use items::{
    DependencyCall, Event, Exception, Metric, PageView, RequestRecord, Severity, Trace,
};
pub use operation::{LINKS_PROPERTY, Operation, OperationGuard};
pub use panic::PANIC_TYPE;
pub use setup::{
    AUTHENTICATION_ENV, Builder, DEFAULT_SHUTDOWN_TIMEOUT, LOCAL_CONNECTION_STRING,
    PROPAGATION_ENV, UserTracking, builder,
};
pub use tracelink_core::metrics::{MetricLimits, MetricSeries, MetricStats, MetricTracker};

/// The runtime-free core: ids, header codecs, the `Correlation` context and its scope, the
/// data model and envelopes.
pub use tracelink_core as core;

/// The exporter: sampling, batching, gzip, retry, disk spool, counters.
#[cfg(feature = "export")]
pub use tracelink_export as export;

/// Live Metrics: the QuickPulse client and its wire types.
#[cfg(feature = "live-metrics")]
pub use tracelink_live as live;

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
