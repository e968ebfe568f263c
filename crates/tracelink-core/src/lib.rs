//! # tracelink-core
//!
//! The core of tracelink: distributed-trace correlation for Rust services that live among
//! .NET, Node, Java, Python and browser apps instrumented with Application Insights. It has
//! no async runtime; the middleware crates (`tracelink-tower`, `tracelink-reqwest`), the
//! exporter, the OpenTelemetry bridge and the `tracelink` facade all build on it. Most
//! services depend on `tracelink` alone, which re-exports this crate as `tracelink::core`.
//!
//! What is here, each with its SPEC section:
//! - ids: [`TraceId`], [`SpanId`] (SPEC 1);
//! - header codecs: [`traceparent`], [`tracestate`], [`baggage`], [`correlation_context`],
//!   [`request_id`], [`request_context`] (SPEC 3-5);
//! - [`extract`]ion of an incoming request's context (SPEC 2) and [`inject`]ion into outgoing
//!   calls (SPEC 3.5, 4.3, 5.3, 5.6), over any [`carrier`], as the [`propagation`]
//!   configuration says;
//! - the [`Correlation`] context, the current-context [`scope`] and the operation's
//!   [`user`] context (SPEC 6.4);
//! - the [`model`] (SPEC 6), [`envelope`]s (SPEC 7.1-7.3) and [`wire_time`] formats,
//!   [`cookie`]s (SPEC 6.4), the [`connection_string`] (SPEC 7.6);
//! - the [`sampling`] score (SPEC 8.1) and the [`TelemetrySink`] trait;
//! - pre-aggregated [`metrics`]: custom metrics by name and dimensions, and the standard
//!   metrics counted before sampling;
//! - outgoing HTTP calls ([`dependency`], feature `http`): the logic the tower and reqwest
//!   client middlewares share, and [`url`] redaction.
//!
//! ## Quick start
//!
//! A server extracts the caller's context, makes it current for the handler, and a client
//! injects a child context into an outgoing call:
//!
//! ```
//! use http::HeaderMap;
//! use tracelink_core::model::{Dependency, Request};
//! use tracelink_core::{MemorySink, Propagation, TelemetrySink, extract};
//! use std::time::Duration;
//!
//! let sink = MemorySink::new();
//! let cfg = Propagation::default();
//!
//! // Incoming request from a Node service.
//! let mut incoming = HeaderMap::new();
//! incoming.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap());
//! incoming.insert("correlation-context", "tenant=contoso".parse().unwrap());
//! let extracted = extract::extract(&incoming, &cfg);
//! let decision = sink.sampling(extracted.trace_id());
//! let request = extracted.into_request(&cfg, decision, Some("GET /orders/{id}"));
//!
//! // An outgoing call made by the handler.
//! let call = request.new_child();
//! let mut outgoing = HeaderMap::new();
//! cfg.inject(&call, Some("inventory:8080"), &mut outgoing);
//! assert_eq!(outgoing["correlation-context"], "tenant=contoso");
//!
//! sink.send(call.to_item(Dependency::new("GET /items", "Http")));
//! sink.send(request.to_item(Request::new("GET /orders/{id}", "200", Duration::from_millis(3))));
//! let items = sink.take();
//! // The dependency's parent is the request; the request's parent is the caller.
//! assert_eq!(items[0].operation_parent_id(), items[1].id());
//! assert_eq!(items[1].operation_parent_id(), Some("b7ad6b7169203331"));
//! ```
//!
//! ## Choices where the SPEC is silent
//!
//! - W3C `baggage` is read before `Correlation-Context`; the first value of a key wins.
//! - Invalid W3C baggage members are skipped one by one, not the whole header.
//! - Incoming baggage from both headers together is capped at 64 items and 8192 bytes
//!   ([`baggage::MAX_INCOMING_ITEMS`], [`baggage::MAX_INCOMING_BYTES`]); what is cut is
//!   counted ([`baggage::truncated_items`]).
//! - Field limits count characters and cut on char boundaries; request and dependency ids are
//!   cut at the schema's 512.
//! - Hierarchical ids follow .NET's `Activity` exactly, including adding a leading `|` to an
//!   incoming parent that lacks one.
//! - Host patterns match at domain boundaries (`xcore.windows.net` is not excluded).

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod baggage;
pub mod carrier;
pub mod connection_string;
pub mod cookie;
mod correlation;
pub mod correlation_context;
#[cfg(feature = "http")]
pub mod dependency;
pub mod envelope;
mod error;
pub mod extract;
pub mod hosts;
mod id;
pub mod id_source;
pub mod inject;
pub mod metrics;
pub mod model;
pub mod process;
pub mod propagation;
mod received;
pub mod request_context;
pub mod request_id;
pub mod resource;
mod rng;
pub mod sampling;
pub mod scope;
mod sink;
mod swar;
pub mod traceparent;
pub mod tracestate;
mod unsampled;
pub mod url;
pub mod user;
pub mod wire_time;

pub use baggage::Baggage;
pub use connection_string::{ConnectionString, ConnectionStringError, ConnectionStringErrorKind};
pub use correlation::{Correlation, ItemId, LEGACY_ROOT_ID_PROPERTY};
pub use error::{ParseError, ParseErrorKind};
pub use id::{AsciiBuf, SpanId, TraceId};
pub use id_source::{IdSource, SpanParent};
pub use propagation::{Propagation, PropagationMode};
pub use request_context::AppId;
pub use sampling::SamplingDecision;
pub use sink::{MemorySink, TelemetrySink};
pub use traceparent::{TraceFlags, TraceParent};
pub use tracestate::TraceState;
pub use user::UserContext;
