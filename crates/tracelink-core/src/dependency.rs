//! Outgoing HTTP calls (SPEC 3.5, 4.3, 5.3, 5.5, 5.6, 6.2): the logic shared by every client
//! middleware (`tracelink-tower`'s `DependencyLayer`, `tracelink-reqwest`'s
//! `DependencyMiddleware`), so that both behave the same.
//!
//! For each call:
//! 1. the parent is a [`Correlation`] in the request's extensions, else the current context
//!    ([`crate::scope`], or with an [`IdSource`] the more recent of it and the span current
//!    in the other tracing system: [`crate::id_source::current_context`]), else a new
//!    operation: a background job calling out is a root, and the sink decides its sampling;
//! 2. the call gets a new dependency id, and its headers are injected per the
//!    [`Propagation`], never overwriting the caller's, and not at all for an excluded host
//!    (SPEC 5.6) or a request carrying [`SkipPropagation`];
//! 3. when the response head arrives (or the call fails) one Dependency item is recorded,
//!    if the operation is sampled: name `METHOD <path>` unless a [`DependencyName`] extension
//!    says otherwise, `data` = the URL without user-info and with sensitive query values
//!    redacted, `target`/`type` from the response's `Request-Context` (SPEC 5.5), the status
//!    as `resultCode`, `success` = `0 < status < 400`; a transport error is recorded with
//!    `resultCode` `Timeout`, `Connect` or `Faulted`, `success=false` and property `error`.
//!
//! The duration is measured until the response head arrives, not until its body is read.
//!
//! ```
//! use std::sync::Arc;
//! use http::{HeaderMap, Method};
//! use tracelink_core::dependency::{DependencyConfig, OutgoingCall};
//! use tracelink_core::{MemorySink, Propagation};
//!
//! let sink = Arc::new(MemorySink::new());
//! let cfg = DependencyConfig::new(sink.clone());
//! let mut headers = HeaderMap::new();
//! let call = OutgoingCall::start(&cfg, &Method::GET, "http://inventory:8080/items/7?token=t",
//!     &mut headers, None);
//! assert!(headers.contains_key("traceparent"));
//!
//! let mut response = HeaderMap::new();
//! response.insert("request-context", "appId=cid-v1:inventory-app".parse().unwrap());
//! call.finish_response(200, &response);
//!
//! let item = &sink.items()[0];
//! let tracelink_core::model::TelemetryData::Dependency(d) = &item.data else { unreachable!() };
//! assert_eq!(d.name, "GET /items/7");
//! assert_eq!(d.data, "http://inventory:8080/items/7?token=REDACTED");
//! assert_eq!(d.target, "inventory:8080 | cid-v1:inventory-app");
//! assert_eq!(d.dependency_type, "Http (tracked component)");
//! ```

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{Extensions, HeaderMap, Method};

use crate::carrier::headers;
use crate::correlation::Correlation;
use crate::id::TraceId;
use crate::id_source::{self, IdSource};
use crate::model::{Dependency, TagValue, tags};
use crate::propagation::Propagation;
use crate::request_context;
use crate::scope;
use crate::sink::TelemetrySink;
use crate::unsampled::Unsampled;
use crate::url::{Parts, Redaction};

/// `type` of an HTTP dependency.
pub const TYPE_HTTP: &str = "Http";
/// `type` of an HTTP dependency whose callee answered with its appId (SPEC 5.5).
pub const TYPE_HTTP_TRACKED: &str = "Http (tracked component)";

/// A per-request name for the Dependency item, as a request extension: raw paths explode
/// cardinality, so name calls by their route template or a fixed name.
///
/// ```
/// use tracelink_core::dependency::DependencyName;
/// let by_route = DependencyName::route("/users/{id}"); // "GET /users/{id}"
/// let fixed = DependencyName::fixed("GetUser");         // "GetUser"
/// # let _ = (by_route, fixed);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyName(NameKind);

#[derive(Clone, Debug, PartialEq, Eq)]
enum NameKind {
    Route(Cow<'static, str>),
    Fixed(Cow<'static, str>),
}

impl DependencyName {
    /// `METHOD <template>`.
    pub fn route(template: impl Into<Cow<'static, str>>) -> Self {
        Self(NameKind::Route(template.into()))
    }

    /// Exactly `name`.
    pub fn fixed(name: impl Into<Cow<'static, str>>) -> Self {
        Self(NameKind::Fixed(name.into()))
    }
}

/// A request extension that keeps every correlation header off this call (it is still
/// recorded). For calls to services that reject unknown headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkipPropagation;

/// The configuration of a client middleware.
#[derive(Clone)]
pub struct DependencyConfig {
    sink: Arc<dyn TelemetrySink>,
    propagation: Propagation,
    redaction: Redaction,
    cloud_role: Option<Arc<str>>,
    role_instance: Option<Arc<str>>,
    id_source: Option<Arc<dyn IdSource>>,
    /// The propagation's own appId, shared by every call that reads a callee's.
    own_app_id: Option<Arc<str>>,
}

impl fmt::Debug for DependencyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DependencyConfig")
            .field("propagation", &self.propagation)
            .field("redaction", &self.redaction)
            .field("cloud_role", &self.cloud_role)
            .field("id_source", &self.id_source.is_some())
            .finish_non_exhaustive()
    }
}

impl DependencyConfig {
    /// Records into `sink`, with the default propagation and redaction.
    pub fn new(sink: impl TelemetrySink) -> Self {
        Self {
            sink: Arc::new(sink),
            propagation: Propagation::default(),
            redaction: Redaction::default(),
            cloud_role: None,
            role_instance: None,
            id_source: None,
            own_app_id: None,
        }
    }

    /// The propagation configuration (mode, own appId, excluded hosts).
    pub fn propagation(mut self, propagation: Propagation) -> Self {
        self.own_app_id = propagation.own_app_id().map(|a| a.as_str().into());
        self.propagation = propagation;
        self
    }

    /// Which query values are redacted in `data`.
    pub fn redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// `ai.cloud.role` of the items.
    pub fn cloud_role(mut self, role: impl Into<Arc<str>>) -> Self {
        self.cloud_role = Some(role.into());
        self
    }

    /// `ai.cloud.roleInstance` of the items.
    pub fn role_instance(mut self, instance: impl Into<Arc<str>>) -> Self {
        self.role_instance = Some(instance.into());
        self
    }

    /// Follows another tracing system's current span too (`tracelink-otel`'s `OtelIdSource`
    /// for OpenTelemetry): a call made while a span of that system is current, and more
    /// recent than tracelink's context, is that span's child, and the `traceparent` sent
    /// names the Dependency whose parent is that span
    /// ([`current_context`](crate::id_source::current_context)).
    pub fn id_source(mut self, source: impl IdSource) -> Self {
        self.id_source = Some(Arc::new(source));
        self
    }

    /// The propagation configuration.
    pub fn propagation_config(&self) -> &Propagation {
        &self.propagation
    }
}

/// Why a call failed without a response (SPEC 6.2: the `resultCode` of the item).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallError {
    /// The call timed out.
    Timeout,
    /// No connection could be made.
    Connect,
    /// Anything else.
    Faulted,
    /// The call was dropped before it finished (the caller gave up, or a timeout outside
    /// the middleware fired).
    Canceled,
}

impl CallError {
    /// The `resultCode` written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "Timeout",
            Self::Connect => "Connect",
            Self::Faulted => "Faulted",
            Self::Canceled => "Canceled",
        }
    }

    /// Classifies an error by its chain of sources: an I/O timeout or a message saying
    /// "timed out"/"timeout" is a timeout; a refused, reset or unreachable connection, or a
    /// message naming a connect error, is a connect error; the rest is faulted.
    pub fn classify(err: &(dyn StdError + 'static)) -> Self {
        let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
        let mut connect = false;
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind::*;
                match io.kind() {
                    TimedOut => return Self::Timeout,
                    ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected
                    | AddrNotAvailable | HostUnreachable | NetworkUnreachable => connect = true,
                    _ => {}
                }
            }
            let msg = e.to_string().to_ascii_lowercase();
            if msg.contains("timed out") || msg.contains("timeout") {
                return Self::Timeout;
            }
            if msg.contains("connect") {
                connect = true;
            }
            cur = e.source();
        }
        if connect {
            Self::Connect
        } else {
            Self::Faulted
        }
    }
}

/// `METHOD <path or template>`, allocated once.
fn method_and(method: &Method, path: &str) -> String {
    let method = method.as_str();
    let mut name = String::with_capacity(method.len() + 1 + path.len());
    name.push_str(method);
    name.push(' ');
    name.push_str(path);
    name
}

/// A call of an operation that sampling dropped, counted without an item.
struct Counted {
    start: Instant,
    target: Target,
}

impl Counted {
    /// Reports the call to the sink (once: the sink is taken from `call`).
    fn count(self, call: &mut OutgoingCall, code: &str, success: bool, callee: Option<&str>) {
        let Some(sink) = call.config.take() else {
            return;
        };
        let duration = self.start.elapsed();
        let target = self.target.as_str();
        let report = |dependency_type: &str, target: &str| {
            let what = Unsampled::dependency(dependency_type, target, code, success, duration)
                .role(call.role.as_deref())
                .instance(call.instance.as_deref());
            sink.count_unsampled(&what);
        };
        match callee {
            // `<target> | cid-v1:<appId>`, as the item's (on the stack when it fits).
            Some(x) => {
                let mut buf = [0u8; 160];
                match inline(
                    &mut buf,
                    format_args!("{target} | {}{x}", request_context::CID_PREFIX),
                ) {
                    Some(joined) => report(TYPE_HTTP_TRACKED, joined),
                    None => report(
                        TYPE_HTTP_TRACKED,
                        &format!("{target} | {}{x}", request_context::CID_PREFIX),
                    ),
                }
            }
            None => report(TYPE_HTTP, target),
        }
    }
}

/// Writes `args` into `buf`; the text, or `None` when it does not fit.
fn inline<'b>(buf: &'b mut [u8], args: fmt::Arguments<'_>) -> Option<&'b str> {
    use std::io::Write as _;
    let capacity = buf.len();
    let mut rest: &mut [u8] = buf;
    rest.write_fmt(args).ok()?;
    let len = capacity - rest.len();
    std::str::from_utf8(&buf[..len]).ok()
}

/// `host[:port]` of a counted call, inline when it fits (most do), so that counting a call
/// allocates nothing.
enum Target {
    Inline { buf: [u8; TARGET_INLINE], len: u8 },
    Long(String),
}

const TARGET_INLINE: usize = 62;

impl Target {
    fn new(parts: Option<&Parts<'_>>) -> Self {
        let mut buf = [0u8; TARGET_INLINE];
        let Some(p) = parts else {
            return Self::Inline { buf, len: 0 };
        };
        let written = match p.port {
            Some(port) if port != 80 && port != 443 => {
                inline(&mut buf, format_args!("{}:{port}", p.host)).map(str::len)
            }
            _ => inline(&mut buf, format_args!("{}", p.host)).map(str::len),
        };
        match written {
            // At most TARGET_INLINE.
            Some(len) => Self::Inline {
                buf,
                len: len as u8,
            },
            None => Self::Long(p.host_port()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Inline { buf, len } => {
                std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or("")
            }
            Self::Long(s) => s,
        }
    }
}

/// One outgoing call in flight; records its Dependency item when finished.
#[must_use = "finish the call to record it"]
pub struct OutgoingCall {
    /// Where the call is reported: recorded calls, and calls of dropped operations that the
    /// sink counts.
    config: Option<Arc<dyn TelemetrySink>>,
    /// The call is counted without an item ([`TelemetrySink::count_unsampled`]): when it
    /// started, and its target.
    counted: Option<Counted>,
    dependency: Correlation,
    item: Dependency,
    own_app_id: Option<Arc<str>>,
    role: Option<Arc<str>>,
    instance: Option<Arc<str>>,
    /// When the call started (wall clock, and for the duration); recorded calls only.
    clock: Option<(SystemTime, Instant)>,
}

impl fmt::Debug for OutgoingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingCall")
            .field("dependency", &self.dependency)
            .field("name", &self.item.name)
            .finish_non_exhaustive()
    }
}

impl OutgoingCall {
    /// Starts a call of `method` to the absolute `url`: picks the parent, makes the
    /// dependency context and injects its headers into `headers`. `extensions` are the
    /// request's (an explicit parent [`Correlation`], [`DependencyName`], [`SkipPropagation`]).
    pub fn start(
        config: &DependencyConfig,
        method: &Method,
        url: &str,
        headers: &mut HeaderMap,
        extensions: Option<&Extensions>,
    ) -> Self {
        let ext = |f: &dyn Fn(&Extensions) -> bool| extensions.is_some_and(f);
        let explicit = extensions.and_then(|e| e.get::<Correlation>());
        let current = || match &config.id_source {
            Some(source) => id_source::current_context(&**source).map(|c| c.new_child()),
            None => scope::with_current(|c| c.map(Correlation::new_child)),
        };
        let dependency = match explicit.map(Correlation::new_child) {
            Some(d) => d,
            None => current().unwrap_or_else(|| {
                let trace_id = TraceId::random();
                let sampling = config.sink.sampling(trace_id);
                Correlation::root(trace_id, &config.propagation, sampling, None)
            }),
        };
        // DESIGN invariant 4: an unsampled call is propagation only (no clock, no item),
        // unless the sink counts it (the standard metrics): then its clock and target only.
        let sampled = dependency.is_sampled();
        let clock = sampled.then(|| (SystemTime::now(), Instant::now()));
        let parts = Parts::parse(url);
        let counted = (!sampled && config.sink.counts_unsampled()).then(|| Counted {
            start: Instant::now(),
            target: Target::new(parts.as_ref()),
        });
        if !ext(&|e| e.get::<SkipPropagation>().is_some()) {
            let host = parts.map(|p| p.host);
            config.propagation.inject(&dependency, host, headers);
        }
        let mut item = Dependency::default();
        if sampled {
            item = Dependency::new(String::new(), TYPE_HTTP);
            let path = parts.map_or("/", |p| p.path());
            item.name = match extensions.and_then(|e| e.get::<DependencyName>()) {
                Some(DependencyName(NameKind::Fixed(n))) => n.to_string(),
                Some(DependencyName(NameKind::Route(r))) => method_and(method, r),
                None => method_and(method, path),
            };
            item.data = match parts {
                Some(p) => config
                    .redaction
                    .absolute(p.scheme, p.authority, p.path_and_query),
                None => url.to_owned(),
            };
            item.target = parts.map(|p| p.host_port()).unwrap_or_default();
        }
        let reported = sampled || counted.is_some();
        Self {
            config: reported.then(|| Arc::clone(&config.sink)),
            counted,
            dependency,
            item,
            own_app_id: match reported {
                true => config.own_app_id.clone(),
                false => None,
            },
            role: config.cloud_role.clone(),
            instance: config.role_instance.clone(),
            clock,
        }
    }

    /// The dependency's context (its id is what the callee sees as parent).
    pub fn correlation(&self) -> &Correlation {
        &self.dependency
    }

    /// Records the call as answered with `status` and these response headers.
    pub fn finish_response(mut self, status: u16, response_headers: &HeaderMap) {
        let success = status > 0 && status < 400;
        let callee = response_headers
            .get_all(headers::REQUEST_CONTEXT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(request_context::app_id)
            .filter(|x| self.own_app_id.as_deref() != Some(*x));
        if let Some(counted) = self.counted.take() {
            let code = crate::model::status_code(status);
            counted.count(&mut self, &code, success, callee);
            return;
        }
        self.item.result_code = crate::model::status_code(status);
        self.item.success = success;
        if let Some(x) = callee {
            self.item.dependency_type = TYPE_HTTP_TRACKED.to_owned();
            self.item.target = format!("{} | {}{x}", self.item.target, request_context::CID_PREFIX);
        }
        self.send(None);
    }

    /// Records the call as failed without a response.
    pub fn finish_error(mut self, kind: CallError, message: &str) {
        if let Some(counted) = self.counted.take() {
            counted.count(&mut self, kind.as_str(), false, None);
            return;
        }
        self.item.result_code = kind.as_str().into();
        self.item.success = false;
        self.send(Some(message));
    }

    fn send(mut self, error: Option<&str>) {
        self.record(error);
    }

    fn record(&mut self, error: Option<&str>) {
        let Some(sink) = self.config.take() else {
            return;
        };
        if let Some((_, start)) = self.clock {
            self.item.duration = start.elapsed();
        }
        let data = std::mem::take(&mut self.item);
        let mut item = self.dependency.to_item(data);
        if let Some((time, _)) = self.clock {
            item.time = time;
        }
        if let Some(e) = error {
            item.properties.insert("error".into(), e.to_owned());
        }
        if let Some(role) = &self.role {
            item.tags.insert(tags::CLOUD_ROLE, role);
        }
        if let Some(instance) = &self.instance {
            item.tags.insert(tags::CLOUD_ROLE_INSTANCE, instance);
        }
        item.tags.insert(
            tags::INTERNAL_SDK_VERSION,
            TagValue::from_static(tags::SDK_VERSION),
        );
        sink.send(item);
    }
}

impl Drop for OutgoingCall {
    /// A call dropped before it finished is recorded as `Canceled`.
    fn drop(&mut self) {
        if let Some(counted) = self.counted.take() {
            counted.count(self, CallError::Canceled.as_str(), false, None);
        } else if self.config.is_some() {
            self.item.result_code = CallError::Canceled.as_str().into();
            self.item.success = false;
            self.record(Some("the call was dropped before it finished"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TelemetryData;
    use crate::scope::enter;
    use crate::{MemorySink, SamplingDecision};

    fn dep(item: &crate::model::Telemetry) -> &Dependency {
        match &item.data {
            TelemetryData::Dependency(d) => d,
            _ => panic!(),
        }
    }

    #[test]
    fn parent_precedence_explicit_then_current_then_root() {
        let sink = Arc::new(MemorySink::new());
        let cfg = DependencyConfig::new(sink.clone()).cloud_role("svc");
        let current = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
        let explicit = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
        let _g = enter(current.clone());
        let mut ext = Extensions::new();
        ext.insert(explicit.clone());
        let mut h = HeaderMap::new();
        OutgoingCall::start(&cfg, &Method::GET, "http://a/x", &mut h, Some(&ext))
            .finish_response(204, &HeaderMap::new());
        OutgoingCall::start(
            &cfg,
            &Method::POST,
            "http://a/y",
            &mut HeaderMap::new(),
            None,
        )
        .finish_response(500, &HeaderMap::new());
        drop(_g);
        OutgoingCall::start(
            &cfg,
            &Method::GET,
            "http://a:80/z",
            &mut HeaderMap::new(),
            None,
        )
        .finish_error(CallError::Connect, "refused");
        let items = sink.take();
        assert_eq!(
            items[0].operation_parent_id(),
            Some(explicit.id().to_string().as_str())
        );
        assert_eq!(
            items[1].operation_parent_id(),
            Some(current.id().to_string().as_str())
        );
        assert_eq!(items[2].operation_parent_id(), None, "a root");
        assert_eq!(
            (dep(&items[1]).success, dep(&items[1]).result_code.as_ref()),
            (false, "500")
        );
        assert_eq!(dep(&items[2]).target, "a");
        assert_eq!(
            (
                dep(&items[2]).result_code.as_ref(),
                items[2].properties["error"].as_str()
            ),
            ("Connect", "refused")
        );
        assert_eq!(items[0].tags.get(tags::CLOUD_ROLE), Some("svc"));
    }

    #[test]
    fn spec_5_5_own_app_id_is_not_a_tracked_component() {
        let sink = Arc::new(MemorySink::new());
        let cfg = DependencyConfig::new(sink.clone())
            .propagation(Propagation::default().app_id(crate::AppId::new("me").unwrap()));
        let mut res = HeaderMap::new();
        res.insert("request-context", "appId=cid-v1:me".parse().unwrap());
        OutgoingCall::start(
            &cfg,
            &Method::GET,
            "https://x:443/",
            &mut HeaderMap::new(),
            None,
        )
        .finish_response(200, &res);
        let items = sink.take();
        assert_eq!(
            (
                dep(&items[0]).target.as_str(),
                dep(&items[0]).dependency_type.as_str()
            ),
            ("x", "Http")
        );
    }

    #[test]
    fn names_skip_and_unsampled() {
        let sink = Arc::new(MemorySink::with_sampling(0.0));
        let cfg = DependencyConfig::new(sink.clone());
        let mut ext = Extensions::new();
        ext.insert(SkipPropagation);
        let mut h = HeaderMap::new();
        OutgoingCall::start(&cfg, &Method::GET, "http://a/x", &mut h, Some(&ext))
            .finish_response(200, &HeaderMap::new());
        assert!(h.is_empty());
        assert!(sink.is_empty(), "0 % sampling records nothing");

        let sink = Arc::new(MemorySink::new());
        let cfg = DependencyConfig::new(sink.clone());
        let mut ext = Extensions::new();
        ext.insert(DependencyName::route("/users/{id}"));
        OutgoingCall::start(
            &cfg,
            &Method::DELETE,
            "http://a/users/7",
            &mut HeaderMap::new(),
            Some(&ext),
        )
        .finish_response(200, &HeaderMap::new());
        ext.insert(DependencyName::fixed("Fixed"));
        OutgoingCall::start(
            &cfg,
            &Method::DELETE,
            "http://a/users/7",
            &mut HeaderMap::new(),
            Some(&ext),
        )
        .finish_response(200, &HeaderMap::new());
        let items = sink.take();
        assert_eq!(dep(&items[0]).name, "DELETE /users/{id}");
        assert_eq!(dep(&items[1]).name, "Fixed");
    }

    #[test]
    fn dropped_calls_are_recorded_as_canceled() {
        let sink = Arc::new(MemorySink::new());
        let cfg = DependencyConfig::new(sink.clone());
        drop(OutgoingCall::start(
            &cfg,
            &Method::GET,
            "http://a/x",
            &mut HeaderMap::new(),
            None,
        ));
        let items = sink.take();
        assert_eq!(items.len(), 1);
        assert_eq!(dep(&items[0]).result_code, "Canceled");
        assert!(!dep(&items[0]).success);
    }

    /// Calls of dropped operations, counted without an item when the sink counts them: the
    /// target, type and result code the item would have had.
    #[test]
    fn unsampled_calls_are_counted_without_an_item() {
        use crate::metrics::{StandardMetrics, StandardMetricsSink, dimension};
        use crate::model::TelemetryData;
        let kept = Arc::new(MemorySink::with_sampling(0.0));
        let metrics = Arc::new(StandardMetrics::new("r", "i"));
        let sink = StandardMetricsSink::new(kept.clone(), metrics.clone());
        let app = crate::request_context::AppId::new("own").unwrap();
        let cfg = DependencyConfig::new(sink).propagation(Propagation::default().app_id(app));
        let start =
            |url: &str| OutgoingCall::start(&cfg, &Method::GET, url, &mut HeaderMap::new(), None);
        let mut answer = HeaderMap::new();
        answer.insert("request-context", "appId=cid-v1:callee".parse().unwrap());
        start("http://api:8080/a").finish_response(200, &HeaderMap::new());
        start("http://api:8080/b").finish_response(503, &answer);
        start("https://db/x").finish_error(CallError::Timeout, "slow");
        drop(start("http://api:8080/c"));
        assert!(kept.is_empty(), "no item");
        assert_eq!(metrics.sampled_out(), 4);
        let items = metrics.collect(SystemTime::now());
        let mut seen: Vec<_> = items
            .iter()
            .map(|i| {
                let TelemetryData::Metric(m) = &i.data else {
                    unreachable!()
                };
                let p = &i.properties;
                (
                    p[dimension::DEPENDENCY_TYPE].as_str(),
                    p[dimension::DEPENDENCY_TARGET].as_str(),
                    p[dimension::DEPENDENCY_RESULT_CODE].as_str(),
                    p[dimension::DEPENDENCY_SUCCESS].as_str(),
                    m.metrics[0].count,
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("Http", "api:8080", "200", "True", Some(1)),
                ("Http", "api:8080", "Canceled", "False", Some(1)),
                ("Http", "db", "Timeout", "False", Some(1)),
                (
                    "Http (tracked component)",
                    "api:8080 | cid-v1:callee",
                    "503",
                    "False",
                    Some(1)
                ),
            ]
        );
        let long = format!("http://{}:81/", "h".repeat(80));
        start(&long).finish_response(200, &HeaderMap::new());
        let items = metrics.collect(SystemTime::now());
        assert_eq!(
            items[0].properties[dimension::DEPENDENCY_TARGET],
            format!("{}:81", "h".repeat(80))
        );
    }

    #[test]
    fn error_classification() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "nope");
        assert_eq!(CallError::classify(&io), CallError::Connect);
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert_eq!(CallError::classify(&io), CallError::Timeout);
        let io = std::io::Error::other("request timed out");
        assert_eq!(CallError::classify(&io), CallError::Timeout);
        let io = std::io::Error::other("broken pipe");
        assert_eq!(CallError::classify(&io), CallError::Faulted);
    }
}
