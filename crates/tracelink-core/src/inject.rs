//! Injection of an outgoing call's headers (SPEC 3.5, 4.3, 5.3, 5.6), as the
//! [`Propagation`] configuration says; extraction is its counterpart ([`crate::extract`]).
//!
//! Injection writes, for a dependency context `d` of operation `T`:
//! - `traceparent: 00-T-<d.id>-<flags & 03>` and `tracestate` (shortened to 512 chars, never
//!   empty) unless the mode is [`PropagationMode::Hierarchical`];
//! - `Request-Id: |T.<d.id>.` in [`PropagationMode::W3cWithBackCompat`] (the default), or the
//!   hierarchical id in [`PropagationMode::Hierarchical`];
//! - `Correlation-Context` when there is baggage, and W3C `baggage` too when enabled;
//! - `Request-Context: appId=cid-v1:<own>` when the own appId is known, added to a
//!   `Request-Context` the caller set when it has no `appId` item yet.
//!
//! It never replaces a header the caller set, and writes nothing at all for an excluded host.
//!
//! ```
//! use http::HeaderMap;
//! use tracelink_core::{AppId, Correlation, Propagation, SamplingDecision};
//!
//! let cfg = Propagation::default().app_id(AppId::new("frontend-app").unwrap());
//! let request = Correlation::new_root(&cfg, SamplingDecision::KEEP_ALL);
//! let call = request.new_child();
//! let mut headers = HeaderMap::new();
//! assert!(cfg.inject(&call, Some("backend:8080"), &mut headers));
//! let t = call.trace_id().to_hex();
//! let id = call.id().to_string();
//! assert_eq!(headers["traceparent"], format!("00-{t}-{id}-01"));
//! assert_eq!(headers["request-id"], format!("|{t}.{id}."));
//! assert_eq!(headers["request-context"], "appId=cid-v1:frontend-app");
//!
//! let mut storage = HeaderMap::new();
//! assert!(!cfg.inject(&call, Some("acct.blob.core.windows.net"), &mut storage));
//! assert!(storage.is_empty());
//! ```

use crate::baggage::Baggage;
use crate::carrier::{self, Injector, Known, headers};
use crate::correlation::Correlation;
use crate::correlation_context;
use crate::propagation::{Propagation, PropagationMode};
use crate::request_context::{self, AppId};
use crate::request_id;
use crate::tracestate::TraceState;

impl Propagation {
    /// Writes the headers of an outgoing call made as `dependency` (a child made with
    /// [`Correlation::new_child`] or a root) to a host. Returns `false`, having written
    /// nothing, when the host is excluded. `host` `None` (unknown) is never excluded.
    pub fn inject<I: Injector + ?Sized>(
        &self,
        dependency: &Correlation,
        host: Option<&str>,
        carrier: &mut I,
    ) -> bool {
        if host.is_some_and(|h| self.hosts.is_excluded(h)) {
            return false;
        }
        let trace_id = dependency.trace_id();
        if self.mode != PropagationMode::Hierarchical
            && let Some(tp) = dependency.traceparent()
            && carrier::set_ascii_if_absent(carrier, Known::TraceParent, tp.to_header().as_bytes())
            && let Some(ts) = dependency.trace_state()
        {
            inject_trace_state(ts, carrier);
        }
        match (
            self.mode,
            dependency.id().span_id(),
            dependency.id().as_text(),
        ) {
            (PropagationMode::W3c, _, _) => {}
            (_, Some(span), _) => {
                carrier::set_ascii_if_absent(
                    carrier,
                    Known::RequestId,
                    request_id::w3c_compatible(trace_id, span).as_bytes(),
                );
            }
            (_, None, Some(text)) => {
                carrier.set_if_absent(headers::REQUEST_ID, text);
            }
            _ => {}
        }
        self.inject_baggage(dependency.baggage(), carrier);
        if let Some(own) = &self.app_id {
            inject_request_context(own, carrier);
        }
        true
    }

    fn inject_baggage<I: Injector + ?Sized>(&self, baggage: &Baggage, carrier: &mut I) {
        if baggage.is_empty() {
            return;
        }
        if !carrier.contains(headers::CORRELATION_CONTEXT) {
            let v = correlation_context::to_header(baggage);
            if !v.is_empty() {
                carrier.set_if_absent(headers::CORRELATION_CONTEXT, &v);
            }
        }
        if self.w3c_baggage && !carrier.contains(headers::BAGGAGE) {
            let v = baggage.to_w3c_header();
            if !v.is_empty() {
                carrier.set_if_absent(headers::BAGGAGE, &v);
            }
        }
    }
}

/// SPEC 3.2: the tracestate, shortened to 512 chars, never empty; a received value that is
/// sent unchanged is shared, not copied.
fn inject_trace_state<I: Injector + ?Sized>(ts: &TraceState, carrier: &mut I) {
    #[cfg(feature = "http")]
    if let Some(v) = ts.shared_header_value() {
        carrier::set_value_if_absent(carrier, Known::TraceState, v);
        return;
    }
    if let Some(v) = ts.for_propagation() {
        carrier.set_if_absent(headers::TRACESTATE, &v);
    }
}

/// SPEC 5.3: add `appId=cid-v1:<own>` unless an `appId` item is already there.
fn inject_request_context<I: Injector + ?Sized>(own: &AppId, carrier: &mut I) {
    #[cfg(feature = "http")]
    let set = carrier::set_value_if_absent(carrier, Known::RequestContext, own.http_value());
    #[cfg(not(feature = "http"))]
    let set = carrier.set_if_absent(headers::REQUEST_CONTEXT, own.header_value());
    if set {
        return;
    }
    let existing = carrier.get(headers::REQUEST_CONTEXT).map(str::to_owned);
    match existing {
        None => {}
        Some(v) if request_context::app_id_item(&v).is_none() => {
            let v = v.trim().trim_end_matches(',');
            let joined = if v.is_empty() {
                own.header_value().to_owned()
            } else {
                format!("{v}, {}", own.header_value())
            };
            carrier.set(headers::REQUEST_CONTEXT, &joined);
        }
        Some(_) => {}
    }
}
