//! # tracelink-live
//!
//! Live Metrics for tracelink: the Application Insights Live Metrics pane (QuickPulse) shows a
//! service's request, call and exception rates, durations, CPU and memory second by second,
//! and a feed of sample items, while someone watches. Every Application Insights server SDK
//! feeds it; this crate does the same for Rust services.
//!
//! ```no_run
//! use tracelink_core::{ConnectionString, MemorySink};
//! use tracelink_live::LiveMetrics;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cs: ConnectionString = "InstrumentationKey=00000000-0000-0000-0000-000000000001;\
//!     LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/".parse()?;
//! let live = LiveMetrics::builder(&cs).role("orders-api").role_instance("pod-7").build()?;
//! live.start()?; // pings now, and every 5 s; posts every second while someone watches
//! let sink = live.sink(MemorySink::new()); // in front of the exporter's sink
//! // ... give `sink` to the server layer and the client middleware ...
//! # let _ = sink;
//! live.stop();
//! # Ok(()) }
//! ```
//!
//! `tracelink::init()` does this by itself (its `live-metrics` feature): the client runs on the
//! exporter's thread, and the setup's sink counts every item before the exporter samples it.
//!
//! ## The protocol
//!
//! [`protocol`] holds the wire types, shared with a service that plays the other side. The
//! client speaks version 1 as the Node SDK 2.9.8 does (see the capture in
//! `tests/data/captures/live-metrics`):
//!
//! - While nobody watches, `POST <endpoint>/QuickPulseService.svc/ping?ikey=<key>` every 5 s,
//!   the first one when the client starts. The body is one [`MonitoringDataPoint`](protocol::MonitoringDataPoint)
//!   object (`Documents`, `InstrumentationKey`, `Metrics`, `InvariantVersion` 1, `Timestamp`
//!   `/Date(<ms>)/`, `Version`, `StreamId`, `MachineName`, `Instance`, `RoleName`) with
//!   `Metrics` and `Documents` `null`. Headers: `Expect: 100-continue`,
//!   `x-ms-qps-transmission-time` (.NET ticks), `Content-Type: application/json`, and on pings
//!   `x-ms-qps-stream-id`, `-machine-name`, `-role-name`, `-instance-name`,
//!   `-invariant-version: 1`. Bodies are not compressed.
//! - While the answers say `x-ms-qps-subscribed: true`,
//!   `POST <endpoint>/QuickPulseService.svc/post?ikey=<key>` every second: a JSON array of one
//!   data point with the second's metrics and sample documents.
//! - `x-ms-qps-service-polling-interval-hint` (ms) sets the ping interval from then on;
//!   `x-ms-qps-service-endpoint-redirect-v2` moves pings and posts to another endpoint for the
//!   life of the client; `x-ms-qps-configuration-etag` is remembered and echoed on every later
//!   request.
//! - Back-off: after 20 s without a successful post the client stops posting and pings again
//!   60 s later; after 60 s without a successful ping it pings every 60 s. The first answer
//!   ends the back-off.
//!
//! The metrics, counted in buckets of one post interval: `\ApplicationInsights\Requests/Sec`,
//! `Request Duration` (mean, ms), `Requests Failed/Sec`, `Dependency Calls/Sec`,
//! `Dependency Calls Failed/Sec`, `Dependency Call Duration`, `Exceptions/Sec`,
//! `\Processor(_Total)\% Processor Time` and `\Memory\Committed Bytes`. The documents: failed
//! requests, failed calls, exceptions and traces.
//!
//! ## Choices where the SDKs disagree
//!
//! The Node SDK 2.9.8 (captured), the .NET SDK and the Rust `opentelemetry-application-insights`
//! crate (both read from source) differ; this crate chooses:
//!
//! | question | Node | .NET | Rust crate | here |
//! |---|---|---|---|---|
//! | CPU | whole system | whole system (`_Total`) | the process | **the process**, in percent of the CPUs it may use (`available_parallelism`, which honours cgroup quotas): in a container the host's CPU says nothing about the service |
//! | memory | system memory in use | system committed bytes | the process | **the process's resident memory** (`VmRSS`), for the same reason; both are left out where `/proc` is not available |
//! | `Weight` | samples merged (1) | 1; the call count for durations | 1 | **1 for rates, the call count for the duration means**, so that means of several instances combine correctly |
//! | duration metrics without calls | left out | sent, weight 0 | left out | **left out** |
//! | polling hint header | `…-polling-interval-hint` | the same | `…-endpoint-interval-hint` (never sent) | **`x-ms-qps-service-polling-interval-hint`**, in ms, kept until another comes; never shorter than the post interval, at most 1 h |
//! | redirect | host only, always https, a port breaks it | the whole base URL | scheme, host and port | **scheme, host and port**; the path stays `/QuickPulseService.svc/…` |
//! | `LiveEndpoint=http://…` | rewritten to https on 443 | – | rewritten to https | **kept**, so that a local collector on `http://127.0.0.1:7421` works |
//! | success | status exactly 200 | – | 2xx | **2xx** |
//! | `x-ms-qps-subscribed` | exactly `true` | any case | exactly `true` | **`true` in any case** |
//! | when an answer takes effect | one tick late | – | at once | **at once**: the first post a second after the subscribing answer, no extra 60 s after recovery |
//! | counted items | after sampling | before sampling | sampled spans | **before the exporter samples**; see below for head sampling |
//! | `InProc` spans | – | counted as calls | counted as calls | **not counted**: `tracing` spans are not calls |
//! | documents | every request, call, exception, trace and event, no limit | per the service's stream filters, with quotas | none | **failed requests, failed calls, exceptions, traces**; at most 30 per post; text cut at 32,768 chars, at most 10 properties (the .NET limits) |
//! | document durations | `00:00:00.002` | `TimeSpan` | – | **`00:00:00.0020000`** (SPEC 7.2) |
//! | a call's `OperationName` | the operation id | the operation's name | – | **the operation's name** |
//! | configuration ETag | ignored | echoed, configuration applied | ignored | **echoed**; filters, derived metrics and document streams are not applied (as in Node) |
//! | compression | none | – | gzip | **none** |
//! | connections | a new one per request (`Connection: close`) | – | the application's HTTP client | **kept alive** (one idle connection) |
//! | timeout | – | 3 s | – | **3 s** |
//!
//! After the 20 s back-off the client also stops counting (the Node SDK keeps collecting while
//! nobody watches), and a new subscription starts the counts from zero.
//!
//! ### Sampling
//!
//! Live Metrics is never sampled. [`LiveSink`] sits in front of the exporter's sink, so it
//! counts every item the exporter would sample. tracelink samples whole operations when they
//! start (SPEC 8.5), and an operation dropped there produces no item at all; each item of an
//! operation kept at a percentage `p` below 100 (its `sample_rate`) is therefore counted as
//! `100 / p` items, which estimates the rates of all operations. Means, CPU and memory are
//! unaffected; documents come from kept operations only.
//!
//! ## Cost
//!
//! [`LiveMetrics::record`] runs wherever items are sent to the [`LiveSink`], the request path
//! included, and never waits. While nobody watches it is one relaxed atomic load; while
//! someone watches, up to four relaxed atomic additions on counters striped by thread (16
//! stripes on their own cache lines), and for a failed item, an exception or a trace under
//! the quota, a document. Everything else (HTTP, JSON, reading `/proc`) runs on the client's
//! task. `benches/record.rs` measures it (about 1.5 ns unsubscribed and 17 ns subscribed per
//! item on the development machine).
//!
//! ## Entra ID authentication
//!
//! A Live Metrics resource that accepts Entra ID tokens only refuses requests without one.
//! [`LiveMetricsBuilder::authorization`] gives each ping and post an `Authorization` header
//! (`Bearer <token>`, marked sensitive); `tracelink::init()` hands it the exporter's current
//! token when the exporter has a credential, so both use the same identity and the same
//! refresh. A request made while no valid token is at hand goes without one, fails, and is
//! tried again on the usual schedule.
//!
//! ## Features
//!
//! - `client` (default): [`LiveMetrics`], [`LiveSink`] and the client (tokio, hyper).
//! - `rustls` (default): HTTPS with rustls and the webpki roots. The client names rustls'
//!   ring provider itself instead of taking the process default: an application whose
//!   other dependencies enable aws-lc-rs as well has no default, and rustls would refuse to
//!   choose.
//!
//! Without them, only [`protocol`] (serde and `http`), for a service playing the other side.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod protocol;

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "client")]
mod counters;
#[cfg(feature = "client")]
mod live;
#[cfg(feature = "client")]
mod process;
#[cfg(feature = "client")]
mod state;

#[cfg(feature = "client")]
pub use live::{
    DEFAULT_FALLBACK_INTERVAL, DEFAULT_MAX_DOCUMENTS, DEFAULT_PING_FAILURE_WINDOW,
    DEFAULT_PING_INTERVAL, DEFAULT_POST_FAILURE_WINDOW, DEFAULT_POST_INTERVAL, DEFAULT_TIMEOUT,
    LiveError, LiveErrorKind, LiveMetrics, LiveMetricsBuilder, LiveSink, LiveStatus,
};
