//! The telemetry client: items recorded by the application itself.
//!
//! Every item picks up the current operation (the request being handled, a span entered by
//! `tracing`, an [`Operation`](crate::Operation) started for a message or a job): its ids,
//! name, sampling decision and user context. It also gets the role, instance, version and SDK
//! version of the setup, and goes through sampling and the exporter's processors like every
//! other item. Outside any operation, an item belongs to no operation.
//!
//! The free functions ([`track_event`](crate::track_event), ...) use the client of the
//! running setup, like `tracing`'s macros use the current subscriber; before
//! [`init`](crate::init) and after shutdown they record nothing.

use std::error::Error as StdError;
use std::sync::{Arc, PoisonError, RwLock};

use tracelink_core::metrics::{MetricTracker, Unsampled};
use tracelink_core::model::{Telemetry, TelemetryData};
use tracelink_core::{ItemId, SpanId, scope};

use crate::items::{
    DependencyCall, Event, Exception, Metric, PageView, RequestRecord, Severity, Trace,
};
use crate::shared::Shared;

/// Records items; cheap to clone. Get it from [`Tracelink::client`](crate::Tracelink::client).
///
/// ```
/// use tracelink::{Event, Trace, Severity};
/// use tracelink::core::MemorySink;
/// use std::sync::Arc;
///
/// let sink = Arc::new(MemorySink::new());
/// let tracelink = tracelink::builder().sink(sink.clone()).role("shop").init().unwrap();
/// let client = tracelink.client();
/// client.track_event(Event::new("checkout").property("order", "A-17"));
/// client.track_trace(Trace::new("cart restored", Severity::Information));
/// let items = sink.take();
/// assert_eq!(items.len(), 2);
/// assert_eq!(items[0].tags.get("ai.cloud.role"), Some("shop"));
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    shared: Arc<Shared>,
}

impl Client {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Records a custom event.
    pub fn track_event(&self, event: Event) {
        self.record_child(event.into_telemetry());
    }

    /// Records a log line.
    pub fn track_trace(&self, trace: Trace) {
        self.record_child(trace.into_telemetry());
    }

    /// Records an exception, built with [`Exception::from_error`] or [`Exception::new`].
    pub fn track_exception(&self, exception: Exception) {
        self.record_child(exception.into_telemetry());
    }

    /// Records `error` and its causes as an exception: `track_exception(Exception::from_error(error))`.
    pub fn track_error<E: StdError + ?Sized + 'static>(&self, error: &E) {
        self.track_exception(Exception::from_error(error));
    }

    /// Records a metric value as one item, at once: for values that are aggregates already
    /// or rare (a job's result). Values tracked often go through [`Client::metric`], which
    /// sends one item per interval.
    pub fn track_metric(&self, metric: Metric) {
        self.record_child(metric.into_telemetry());
    }

    /// A pre-aggregated metric, as the other SDKs' `GetMetric`: values tracked on it are
    /// added up per name and dimension values, and sent once per interval (60 s by default,
    /// [`Builder::metric_interval`](crate::Builder::metric_interval)) as one item with
    /// count, sum, min, max and standard deviation, the dimensions as its properties.
    /// Tracking a value takes no lock shared with other threads once its series exists,
    /// and never allocates then. At most 1000 dimension combinations per metric by default
    /// ([`Builder::metric_limits`](crate::Builder::metric_limits)); a value beyond the cap
    /// is not recorded, `track` returns `false`, and it is counted
    /// ([`Tracelink::metric_stats`](crate::Tracelink::metric_stats)). Pre-aggregated values
    /// belong to no operation and are never sampled.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # let sink = Arc::new(tracelink::core::MemorySink::new());
    /// # let tracelink = tracelink::builder().sink(sink.clone()).init().unwrap();
    /// let client = tracelink.client();
    /// client.metric("queue.depth").dimension("queue", "orders").track(3.0);
    /// // For a hot loop: the series, looked up once.
    /// let depth = client.metric("queue.depth").dimension("queue", "orders").series().unwrap();
    /// depth.track(4.0);
    /// # drop(tracelink);
    /// # let items = sink.take();
    /// # let m = items.iter().find(|i| i.properties.get("queue").is_some()).unwrap();
    /// # assert!(matches!(&m.data, tracelink::core::model::TelemetryData::Metric(d) if d.metrics[0].count == Some(2)));
    /// ```
    pub fn metric<'a>(&'a self, name: &'a str) -> MetricTracker<'a> {
        self.shared.metrics.metric(name)
    }

    /// Records a page view of a page rendered on the server.
    pub fn track_page_view(&self, page_view: PageView) {
        let mut item = page_view.into_telemetry();
        if let TelemetryData::PageView(p) = &mut item.data
            && p.id.is_empty()
        {
            p.id = SpanId::random().to_hex().to_string();
        }
        self.record_child(item);
    }

    /// Records a call no middleware saw, as a child of the current operation (or on its
    /// own outside of one).
    pub fn track_dependency(&self, call: DependencyCall) {
        self.record_operation_item(call.into_telemetry());
    }

    /// Records a request no middleware saw, as a child of the current operation (or on its
    /// own outside of one).
    pub fn track_request(&self, request: RequestRecord) {
        self.record_operation_item(request.into_telemetry());
    }

    /// A Request or Dependency: an item with an id of its own, a child of the current
    /// context.
    fn record_operation_item(&self, mut item: Telemetry) {
        let parent = scope::current();
        if parent.as_ref().is_some_and(|c| !c.is_sampled()) {
            self.count_unsampled(&item);
            return;
        }
        let id = match &parent {
            Some(c) => c.new_child().id().clone(),
            None => ItemId::span(SpanId::random()),
        };
        match &mut item.data {
            TelemetryData::Request(r) if r.id.is_empty() => r.id = id.to_string(),
            TelemetryData::Dependency(d) if d.id.is_empty() => d.id = id.to_string(),
            _ => {}
        }
        if let Some(c) = &parent {
            c.annotate(&mut item, Some(c.id()));
        }
        self.send(item);
    }

    /// An item emitted inside the current operation: its parent is the current context.
    fn record_child(&self, mut item: Telemetry) {
        let keep = scope::with_current(|c| match c {
            Some(c) if !c.is_sampled() => {
                self.count_unsampled(&item);
                false
            }
            Some(c) => {
                c.annotate(&mut item, Some(c.id()));
                true
            }
            None => true,
        });
        if keep {
            self.send(item);
        }
    }

    /// Counts an item of an operation that sampling dropped into the standard metrics (an
    /// exception or trace; a request or call tracked by hand), instead of sending it.
    fn count_unsampled(&self, item: &Telemetry) {
        let sink = &self.shared.sink;
        if let Some(what) = Unsampled::of(item)
            && sink.counts_unsampled()
        {
            sink.count_unsampled(&what);
        }
    }

    pub(crate) fn send(&self, item: Telemetry) {
        self.shared.sink.send(item);
    }
}

static GLOBAL: RwLock<Option<Client>> = RwLock::new(None);

/// Makes `client` the one the free functions use.
pub(crate) fn install(client: Client) {
    *GLOBAL.write().unwrap_or_else(PoisonError::into_inner) = Some(client);
}

/// Removes the client of `shared`, if it is the installed one.
pub(crate) fn uninstall(shared: &Arc<Shared>) {
    let mut g = GLOBAL.write().unwrap_or_else(PoisonError::into_inner);
    if g.as_ref().is_some_and(|c| Arc::ptr_eq(&c.shared, shared)) {
        *g = None;
    }
}

/// The client of the running setup, if any.
pub fn current_client() -> Option<Client> {
    GLOBAL
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

fn with_client(f: impl FnOnce(&Client)) {
    let g = GLOBAL.read().unwrap_or_else(PoisonError::into_inner);
    if let Some(c) = g.as_ref() {
        f(c);
    }
}

/// Records a custom event in the current operation ([`Client::track_event`]).
///
/// ```
/// tracelink::track_event(tracelink::Event::new("checkout").measurement("amount", 42.0));
/// ```
pub fn track_event(event: Event) {
    with_client(|c| c.track_event(event));
}

/// Records a log line in the current operation ([`Client::track_trace`]).
pub fn track_trace(message: impl Into<String>, severity: Severity) {
    with_client(|c| c.track_trace(Trace::new(message, severity)));
}

/// Records an error and its `source()` chain in the current operation
/// ([`Client::track_error`]).
///
/// ```
/// let err = std::io::Error::other("disk full");
/// tracelink::track_error(&err);
/// ```
pub fn track_error<E: StdError + ?Sized + 'static>(error: &E) {
    with_client(|c| c.track_error(error));
}

/// Records an exception in the current operation ([`Client::track_exception`]).
pub fn track_exception(exception: Exception) {
    with_client(|c| c.track_exception(exception));
}

/// Records a metric value in the current operation ([`Client::track_metric`]).
pub fn track_metric(metric: Metric) {
    with_client(|c| c.track_metric(metric));
}

/// A pre-aggregated metric of the running setup ([`Client::metric`]); before
/// [`init`](crate::init) and after shutdown, one that records nothing.
///
/// ```
/// tracelink::metric("cache.hits").dimension("cache", "sessions").track(1.0);
/// ```
pub fn metric(name: &str) -> MetricTracker<'_> {
    let g = GLOBAL.read().unwrap_or_else(PoisonError::into_inner);
    match g.as_ref() {
        Some(c) => c.shared.metrics.clone().into_metric(name),
        None => MetricTracker::inactive(name),
    }
}

/// Records a page view in the current operation ([`Client::track_page_view`]).
pub fn track_page_view(page_view: PageView) {
    with_client(|c| c.track_page_view(page_view));
}

/// Records a call no middleware saw ([`Client::track_dependency`]).
pub fn track_dependency(call: DependencyCall) {
    with_client(|c| c.track_dependency(call));
}

/// Records a request no middleware saw ([`Client::track_request`]).
pub fn track_request(request: RequestRecord) {
    with_client(|c| c.track_request(request));
}

/// Sets the authenticated user of the current operation, e.g. in a handler after
/// authentication; returns `false` outside an operation. Needs no running setup.
///
/// ```
/// use tracelink::core::{scope, Correlation, Propagation, SamplingDecision};
///
/// let request = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
/// let _g = scope::enter(request.clone());
/// assert!(tracelink::set_authenticated_user("alice@contoso.com", None));
/// assert_eq!(request.user().unwrap().auth_user_id(), Some("alice@contoso.com"));
/// ```
pub fn set_authenticated_user(auth_user_id: &str, account_id: Option<&str>) -> bool {
    scope::with_current(|c| match c {
        Some(c) => {
            c.set_authenticated_user(auth_user_id, account_id);
            true
        }
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::{DependencyCall, RequestRecord};
    use tracelink_core::model::TelemetryKind;
    use tracelink_core::{Correlation, MemorySink, Propagation, SamplingDecision};

    #[test]
    fn calls_and_requests_no_middleware_saw_are_children_with_their_own_ids() {
        let sink = Arc::new(MemorySink::new());
        let t = crate::Builder::from_vars([("OTEL_SERVICE_NAME", "svc")])
            .sink(sink.clone())
            .init_local()
            .unwrap();
        let client = t.client();
        let request = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
        {
            let _in = scope::enter(request.clone());
            client
                .track_dependency(DependencyCall::new("SELECT 1", "SQL").property("db", "orders"));
            client.track_request(RequestRecord::new("custom protocol"));
        }
        client.track_dependency(DependencyCall::new("outside", "SQL"));
        let dropped =
            Correlation::new_root(&Propagation::default(), SamplingDecision::dropped(10.0));
        {
            let _in = scope::enter(dropped);
            client.track_dependency(DependencyCall::new("sampled out", "SQL"));
        }
        let items = sink.take();
        assert_eq!(items.len(), 3);
        let parent = request.id().to_string();
        for i in &items[..2] {
            assert_eq!(i.operation_parent_id(), Some(parent.as_str()));
            assert_eq!(i.operation_id(), Some(request.trace_id().to_hex().as_str()));
            assert!(i.id().is_some_and(|id| id.len() == 16 && id != parent));
        }
        assert_eq!(items[0].kind(), TelemetryKind::Dependency);
        assert_eq!(items[0].properties["db"], "orders");
        assert_eq!(items[1].kind(), TelemetryKind::Request);
        assert_eq!(items[2].operation_id(), None);
        assert!(items[2].id().is_some_and(|id| !id.is_empty()));
        assert_eq!(items[2].tags.get("ai.cloud.role"), Some("svc"));
    }
}
