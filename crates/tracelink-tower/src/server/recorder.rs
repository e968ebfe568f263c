//! The Request item of one request (SPEC 6.1): built when the request starts, completed by the
//! response head, sent exactly once; or, for a request of an operation that sampling dropped
//! when the sink counts those, its count without an item.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use http::request::Parts;
use tracelink_core::metrics::Unsampled;
use tracelink_core::model::{Request as RequestData, TagValue, Telemetry, TelemetryData, tags};
use tracelink_core::{Correlation, TelemetrySink};

use super::client_addr;
use super::config::Config;
use super::url::{Scheme, request_url};

/// What the Request item of one request is made from, gathered when the request starts.
pub(super) struct RequestStart<'a> {
    pub(super) correlation: &'a Correlation,
    pub(super) parts: &'a Parts,
    /// The request name (SPEC 6.1).
    pub(super) name: String,
    /// The caller's appId, from `Request-Context`.
    pub(super) source: Option<String>,
    pub(super) scheme: Scheme,
    /// When the duration starts.
    pub(super) at: Instant,
}

/// Builds the Request item at the start and sends it exactly once: on [`Recorder::send`],
/// [`Recorder::fail`], or when dropped.
pub(super) struct Recorder {
    sink: Arc<dyn TelemetrySink>,
    /// Read again at the end: the handler may have set the authenticated user.
    correlation: Correlation,
    /// `None` once sent.
    item: Option<Telemetry>,
    start: Instant,
    responded: bool,
}

impl Recorder {
    pub(super) fn start(cfg: &Config, req: RequestStart<'_>) -> Self {
        let mut data = RequestData::default();
        data.name = req.name;
        data.source = req.source.unwrap_or_default();
        data.url = request_url(req.parts, req.scheme, &cfg.redaction);
        let mut item = req.correlation.to_item(data);
        let t = &mut item.tags;
        if let Some(role) = &cfg.cloud_role {
            t.insert(tags::CLOUD_ROLE, role);
        }
        if let Some(instance) = &cfg.role_instance {
            t.insert(tags::CLOUD_ROLE_INSTANCE, instance);
        }
        t.insert(
            tags::INTERNAL_SDK_VERSION,
            TagValue::from_static(tags::SDK_VERSION),
        );
        if let Some(ip) = client_addr::client_ip(req.parts, &cfg.trusted) {
            t.insert(tags::LOCATION_IP, ip.to_string());
        }
        if let Some(hook) = &cfg.on_request {
            hook(req.parts, &mut item);
        }
        Self {
            sink: Arc::clone(&cfg.sink),
            correlation: req.correlation.clone(),
            item: Some(item),
            start: req.at,
            responded: false,
        }
    }

    fn request(&mut self) -> Option<&mut RequestData> {
        match self.item.as_mut().map(|i| &mut i.data) {
            Some(TelemetryData::Request(r)) => Some(r),
            _ => None,
        }
    }

    /// Sets a custom property of the item (unless sent).
    fn property(&mut self, key: &str, value: String) {
        if let Some(item) = &mut self.item {
            item.properties.insert(key.to_owned(), value);
        }
    }

    /// The response head is ready: its status, and the `on_response` hook.
    pub(super) fn response(&mut self, parts: &http::response::Parts, success: bool, cfg: &Config) {
        if let Some(r) = self.request() {
            r.response_code = tracelink_core::model::status_code(parts.status.as_u16());
            r.success = success;
        }
        self.responded = true;
        if let (Some(hook), Some(item)) = (&cfg.on_response, &mut self.item) {
            hook(parts, item);
        }
    }

    /// Sends the item as failed without a response head.
    pub(super) fn fail(mut self, code: &'static str, error: Option<&str>) {
        if let Some(r) = self.request() {
            r.response_code = code.into();
            r.success = false;
        }
        if let Some(e) = error {
            self.property("error", e.to_owned());
        }
        self.send();
    }

    /// Sends the item as failed while its body was sent.
    pub(super) fn body_failed(&mut self, error: String) {
        if let Some(r) = self.request() {
            r.success = false;
        }
        self.property("error", error);
        self.send();
    }

    /// Sends the item, with its duration until now (once; later calls do nothing).
    pub(super) fn send(&mut self) {
        let Some(mut item) = self.item.take() else {
            return;
        };
        if let TelemetryData::Request(r) = &mut item.data {
            r.duration = self.start.elapsed();
        }
        if let Some(user) = self.correlation.user() {
            user.annotate(&mut item);
        }
        self.sink.send(item);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.item.is_none() {
            return;
        }
        if self.responded {
            // The body was dropped before its end: the client went away.
            self.property("aborted", "true".into());
        } else if let Some(r) = self.request() {
            // No response head: the client closed the request (nginx's 499).
            r.response_code = "499".into();
            r.success = false;
        }
        self.send();
    }
}

/// How a request is reported: its item, or (sampling dropped its operation, and the sink
/// counts such requests) its count alone.
pub(super) enum Report {
    /// Boxed: the futures and bodies that carry it are moved several times per request.
    Item(Box<Recorder>),
    Count(Counter),
}

impl Report {
    /// The response head is ready.
    pub(super) fn response(&mut self, parts: &http::response::Parts, success: bool, cfg: &Config) {
        match self {
            Self::Item(r) => r.response(parts, success, cfg),
            Self::Count(c) => {
                c.code = tracelink_core::model::status_code(parts.status.as_u16());
                c.success = success;
                c.responded = true;
            }
        }
    }

    /// Reports the request as failed without a response head.
    pub(super) fn fail(self, code: &'static str, error: Option<&str>) {
        match self {
            Self::Item(r) => r.fail(code, error),
            Self::Count(mut c) => {
                c.code = Cow::Borrowed(code);
                c.success = false;
                c.send();
            }
        }
    }

    /// Reports the request as failed while its body was sent.
    pub(super) fn body_failed(&mut self, error: &dyn std::fmt::Display) {
        match self {
            Self::Item(r) => r.body_failed(error.to_string()),
            Self::Count(c) => {
                c.success = false;
                c.send();
            }
        }
    }

    /// Reports the request, with its duration until now (once).
    pub(super) fn send(&mut self) {
        match self {
            Self::Item(r) => r.send(),
            Self::Count(c) => c.send(),
        }
    }
}

/// Counts a request of an operation that sampling dropped, when the sink counts them
/// ([`TelemetrySink::count_unsampled`]): its result code, success and duration, no item.
/// Sent once: on [`Counter::send`], or when dropped (as the Request item would be).
pub(super) struct Counter {
    /// `None` once sent.
    config: Option<Arc<Config>>,
    start: Instant,
    code: Cow<'static, str>,
    success: bool,
    responded: bool,
}

impl Counter {
    pub(super) fn start(config: &Arc<Config>, at: Instant) -> Self {
        Self {
            config: Some(Arc::clone(config)),
            start: at,
            code: Cow::Borrowed(""),
            success: true,
            responded: false,
        }
    }

    fn send(&mut self) {
        let Some(cfg) = self.config.take() else {
            return;
        };
        let what = Unsampled::request(&self.code, self.success, self.start.elapsed())
            .role(cfg.cloud_role.as_deref())
            .instance(cfg.role_instance.as_deref());
        cfg.sink.count_unsampled(&what);
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        if self.config.is_some() && !self.responded {
            // No response head: the client closed the request (nginx's 499).
            self.code = Cow::Borrowed("499");
            self.success = false;
        }
        self.send();
    }
}
