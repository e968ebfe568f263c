//! The handle applications hold: configuration, counting, the sink wrapper, start and stop.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tracelink_core::model::{Telemetry, tags};
use tracelink_core::{ConnectionString, SamplingDecision, TelemetrySink, TraceId};

use crate::counters::Counters;
pub use crate::state::LiveStatus;
use crate::state::{Authorization, Config, Shared};

/// How often to ping while nobody watches, unless the service hints otherwise: 5 s.
///
/// ```
/// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
/// let live = tracelink_live::LiveMetrics::builder(&cs).build().unwrap();
/// assert_eq!(live.status().ping_interval, tracelink_live::DEFAULT_PING_INTERVAL);
/// ```
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(5);
/// How often to post while someone watches: every second.
///
/// ```
/// assert_eq!(tracelink_live::DEFAULT_POST_INTERVAL, std::time::Duration::from_secs(1));
/// ```
pub const DEFAULT_POST_INTERVAL: Duration = Duration::from_secs(1);
/// How long one ping or post may take: 3 s (the .NET SDK's timeout).
///
/// ```
/// assert_eq!(tracelink_live::DEFAULT_TIMEOUT, std::time::Duration::from_secs(3));
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long posts may fail before the client stops posting and backs off: 20 s.
///
/// ```
/// assert_eq!(tracelink_live::DEFAULT_POST_FAILURE_WINDOW, std::time::Duration::from_secs(20));
/// ```
pub const DEFAULT_POST_FAILURE_WINDOW: Duration = Duration::from_secs(20);
/// How long pings may fail before the client backs off: 60 s.
///
/// ```
/// assert_eq!(tracelink_live::DEFAULT_PING_FAILURE_WINDOW, std::time::Duration::from_secs(60));
/// ```
pub const DEFAULT_PING_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The interval between pings while backing off: 60 s.
///
/// ```
/// assert_eq!(tracelink_live::DEFAULT_FALLBACK_INTERVAL, std::time::Duration::from_secs(60));
/// ```
pub const DEFAULT_FALLBACK_INTERVAL: Duration = Duration::from_secs(60);
/// The most sample documents collected per post interval: 30.
///
/// ```
/// assert_eq!(tracelink_live::DEFAULT_MAX_DOCUMENTS, 30);
/// ```
pub const DEFAULT_MAX_DOCUMENTS: u32 = 30;

/// The shortest interval or timeout a builder accepts: shorter ones are raised to it, so that
/// the client never sends in a tight loop.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Live Metrics for one application: counts every item it is shown while someone watches the
/// Live Metrics pane, and runs the client that pings and posts (see the crate docs).
///
/// Cheap to clone: clones share the counts and the client.
///
/// ```no_run
/// use tracelink_core::{ConnectionString, MemorySink};
/// use tracelink_live::LiveMetrics;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cs: ConnectionString = std::env::var("APPLICATIONINSIGHTS_CONNECTION_STRING")?.parse()?;
/// let live = LiveMetrics::builder(&cs).role("orders-api").role_instance("pod-7").build()?;
/// live.start()?; // on the current tokio runtime
/// let sink = live.sink(MemorySink::new()); // counts, then forwards every item
/// // ... give `sink` to the middleware ...
/// # let _ = sink;
/// live.stop();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LiveMetrics {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for LiveMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveMetrics")
            .field("endpoint", &self.shared.config.endpoint)
            .field("role", &self.shared.config.role)
            .field("instance", &self.shared.config.instance)
            .field("collecting", &self.is_collecting())
            .finish_non_exhaustive()
    }
}

impl LiveMetrics {
    /// A builder for the application of `connection`: its instrumentation key and its
    /// Live Metrics endpoint ([`ConnectionString::live_endpoint`]).
    ///
    /// ```
    /// use tracelink_core::ConnectionString;
    /// use tracelink_live::LiveMetrics;
    ///
    /// let cs = ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001;\
    ///     LiveEndpoint=http://127.0.0.1:7421").unwrap();
    /// let live = LiveMetrics::builder(&cs).build().unwrap();
    /// assert_eq!(live.status().endpoint, "http://127.0.0.1:7421");
    /// ```
    pub fn builder(connection: &ConnectionString) -> LiveMetricsBuilder {
        LiveMetricsBuilder {
            instrumentation_key: connection.instrumentation_key().to_owned(),
            endpoint: connection.live_endpoint().to_owned(),
            role: None,
            instance: None,
            machine_name: None,
            ping_interval: DEFAULT_PING_INTERVAL,
            post_interval: DEFAULT_POST_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            post_failure_window: DEFAULT_POST_FAILURE_WINDOW,
            ping_failure_window: DEFAULT_PING_FAILURE_WINDOW,
            fallback_interval: DEFAULT_FALLBACK_INTERVAL,
            max_documents: DEFAULT_MAX_DOCUMENTS,
            authorization: None,
        }
    }

    /// Counts `item` if someone watches: requests, calls (not `InProc` spans) and exceptions
    /// by outcome and duration; failed requests and calls, exceptions and traces also become
    /// sample documents, up to the quota. While nobody watches it costs one atomic load.
    /// Never blocks for longer than pushing onto a short list, never panics.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tracelink_core::{ConnectionString, model::{Request, Telemetry}};
    /// use tracelink_live::LiveMetrics;
    ///
    /// let cs = ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let live = LiveMetrics::builder(&cs).build().unwrap();
    /// live.record(&Telemetry::new(Request::new("GET /", "200", Duration::from_millis(3))));
    /// assert!(!live.is_collecting()); // nobody watches: nothing was counted
    /// ```
    pub fn record(&self, item: &Telemetry) {
        let s = &*self.shared;
        if !s.collecting.load(Ordering::Relaxed) {
            return;
        }
        if s.counters.record(item) && s.config.max_documents > 0 {
            s.offer_document(item);
        }
    }

    /// A sink that counts every item ([`LiveMetrics::record`]) and forwards it to `inner`.
    /// Put it in front of the exporter's sink, so that items are counted before the
    /// exporter samples them.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tracelink_core::{ConnectionString, MemorySink, TelemetrySink, model::{Event, Telemetry}};
    /// use tracelink_live::LiveMetrics;
    ///
    /// let cs = ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let live = LiveMetrics::builder(&cs).build().unwrap();
    /// let memory = Arc::new(MemorySink::new());
    /// let sink = live.sink(memory.clone());
    /// sink.send(Telemetry::new(Event::new("e")));
    /// assert_eq!(memory.len(), 1);
    /// ```
    pub fn sink<S: TelemetrySink>(&self, inner: S) -> LiveSink<S> {
        LiveSink {
            inner,
            live: self.clone(),
        }
    }

    /// Whether someone watches, so that items are counted.
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let live = tracelink_live::LiveMetrics::builder(&cs).build().unwrap();
    /// assert!(!live.is_collecting());
    /// ```
    pub fn is_collecting(&self) -> bool {
        self.shared.collecting.load(Ordering::Relaxed)
    }

    /// Starts the client on the current tokio runtime: the first ping goes out now. It runs
    /// until [`LiveMetrics::stop`], or until its runtime shuts down.
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// use tracelink_live::{LiveErrorKind, LiveMetrics};
    ///
    /// let live = LiveMetrics::builder(&cs).build().unwrap();
    /// assert_eq!(live.start().unwrap_err().kind(), LiveErrorKind::NoRuntime);
    /// ```
    pub fn start(&self) -> Result<(), LiveError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| LiveError::new(LiveErrorKind::NoRuntime))?;
        if self.shared.started.swap(true, Ordering::AcqRel) {
            return Err(LiveError::new(LiveErrorKind::AlreadyStarted));
        }
        runtime.spawn(crate::client::run(self.shared.clone()));
        Ok(())
    }

    /// Stops the client: no ping or post is sent after this returns (one in flight is
    /// abandoned), and items are no longer counted. A stopped client cannot be started again.
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let live = tracelink_live::LiveMetrics::builder(&cs).build().unwrap();
    /// live.stop();
    /// assert!(!live.is_collecting());
    /// ```
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.collecting.store(false, Ordering::Release);
        self.shared.stop.notify_one();
    }

    /// What the client knows now: whether someone watches, where it sends, how often it
    /// pings, and how many pings, posts and failures there were.
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let live = tracelink_live::LiveMetrics::builder(&cs).build().unwrap();
    /// let status = live.status();
    /// assert_eq!(status.endpoint, "https://rt.services.visualstudio.com");
    /// assert_eq!((status.pings, status.posts, status.failures), (0, 0, 0));
    /// ```
    pub fn status(&self) -> LiveStatus {
        self.shared.status().clone()
    }
}

/// A [`TelemetrySink`] that counts every item for Live Metrics, then forwards it:
/// [`LiveMetrics::sink`].
///
/// ```
/// use std::sync::Arc;
/// use tracelink_core::{MemorySink, TelemetrySink, TraceId};
/// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
/// let live = tracelink_live::LiveMetrics::builder(&cs).build().unwrap();
/// let sink: Arc<dyn TelemetrySink> = Arc::new(live.sink(MemorySink::with_sampling(0.0)));
/// // Sampling decisions are the inner sink's.
/// assert!(!sink.sampling(TraceId::random()).is_sampled());
/// ```
pub struct LiveSink<S> {
    inner: S,
    live: LiveMetrics,
}

impl<S> fmt::Debug for LiveSink<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSink")
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl<S: Clone> Clone for LiveSink<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            live: self.live.clone(),
        }
    }
}

impl<S> LiveSink<S> {
    /// The sink items are forwarded to.
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let live = tracelink_live::LiveMetrics::builder(&cs).build().unwrap();
    /// let sink = live.sink(tracelink_core::MemorySink::new());
    /// assert!(sink.get_ref().is_empty());
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The sink items are forwarded to, mutably.
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let live = tracelink_live::LiveMetrics::builder(&cs).build().unwrap();
    /// let mut sink = live.sink(tracelink_core::MemorySink::new());
    /// let _inner: &mut tracelink_core::MemorySink = sink.get_mut();
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The sink items are forwarded to, without the counting.
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let live = tracelink_live::LiveMetrics::builder(&cs).build().unwrap();
    /// let inner = live.sink(tracelink_core::MemorySink::new()).into_inner();
    /// assert!(inner.is_empty());
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The Live Metrics this sink counts for.
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let live = tracelink_live::LiveMetrics::builder(&cs).build().unwrap();
    /// assert!(!live.sink(tracelink_core::MemorySink::new()).live().is_collecting());
    /// ```
    pub fn live(&self) -> &LiveMetrics {
        &self.live
    }
}

impl<S: TelemetrySink> TelemetrySink for LiveSink<S> {
    fn send(&self, item: Telemetry) {
        self.live.record(&item);
        self.inner.send(item);
    }

    fn sampling(&self, operation_id: TraceId) -> SamplingDecision {
        self.inner.sampling(operation_id)
    }
}

/// Configures [`LiveMetrics`]; [`LiveMetrics::builder`] makes one. Its `Debug` output leaves
/// the instrumentation key out.
///
/// ```
/// use std::time::Duration;
/// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
/// let builder = tracelink_live::LiveMetrics::builder(&cs)
///     .role("orders-api")
///     .ping_interval(Duration::from_secs(10));
/// assert!(!format!("{builder:?}{:?}", builder.clone().build().unwrap()).contains("000000000001"));
/// let live = builder.build().unwrap();
/// assert_eq!(live.status().ping_interval, Duration::from_secs(10));
/// ```
#[derive(Clone)]
pub struct LiveMetricsBuilder {
    instrumentation_key: String,
    endpoint: String,
    role: Option<String>,
    instance: Option<String>,
    machine_name: Option<String>,
    ping_interval: Duration,
    post_interval: Duration,
    timeout: Duration,
    post_failure_window: Duration,
    ping_failure_window: Duration,
    fallback_interval: Duration,
    max_documents: u32,
    authorization: Option<Authorization>,
}

impl fmt::Debug for LiveMetricsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveMetricsBuilder")
            .field("endpoint", &self.endpoint)
            .field("role", &self.role)
            .field("instance", &self.instance)
            .field("machine_name", &self.machine_name)
            .field("ping_interval", &self.ping_interval)
            .field("post_interval", &self.post_interval)
            .field("timeout", &self.timeout)
            .field("max_documents", &self.max_documents)
            .field("authorization", &self.authorization.is_some())
            .finish_non_exhaustive()
    }
}

impl LiveMetricsBuilder {
    /// Sends to `url` instead of the connection string's Live Metrics endpoint. Only its
    /// scheme (`http` or `https`), host and port are used.
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let live = tracelink_live::LiveMetrics::builder(&cs).endpoint("http://127.0.0.1:7421/ignored").build().unwrap();
    /// assert_eq!(live.status().endpoint, "http://127.0.0.1:7421");
    /// ```
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = url.into();
        self
    }

    /// The role (`RoleName`, `x-ms-qps-role-name`; the `ai.cloud.role` of the items).
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let b = tracelink_live::LiveMetrics::builder(&cs).role("orders-api");
    /// # let _ = b;
    /// ```
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// The instance (`Instance`, `x-ms-qps-instance-name`; the `ai.cloud.roleInstance` of the
    /// items). By default the machine's name.
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let b = tracelink_live::LiveMetrics::builder(&cs).role_instance("pod-7");
    /// # let _ = b;
    /// ```
    pub fn role_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// The machine's name (`MachineName`, `x-ms-qps-machine-name`). By default the host
    /// name (`HOSTNAME`, else `/proc/sys/kernel/hostname`, else `localhost`).
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let b = tracelink_live::LiveMetrics::builder(&cs).machine_name("vm-3");
    /// # let _ = b;
    /// ```
    pub fn machine_name(mut self, name: impl Into<String>) -> Self {
        self.machine_name = Some(name.into());
        self
    }

    /// The interval between pings while nobody watches (default
    /// [`DEFAULT_PING_INTERVAL`]), until the service hints another. Intervals and the timeout
    /// are at least 10 ms.
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let b = tracelink_live::LiveMetrics::builder(&cs).ping_interval(std::time::Duration::from_secs(10));
    /// # let _ = b;
    /// ```
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// The interval between posts while someone watches, and so the length of the buckets
    /// the metrics are counted in (default [`DEFAULT_POST_INTERVAL`]). It is also the
    /// shortest ping interval a service's hint can set.
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let b = tracelink_live::LiveMetrics::builder(&cs).post_interval(std::time::Duration::from_millis(100));
    /// # let _ = b;
    /// ```
    pub fn post_interval(mut self, interval: Duration) -> Self {
        self.post_interval = interval;
        self
    }

    /// How long one ping or post may take before it counts as failed (default
    /// [`DEFAULT_TIMEOUT`]).
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let b = tracelink_live::LiveMetrics::builder(&cs).timeout(std::time::Duration::from_secs(1));
    /// # let _ = b;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The back-off: after `post_failures` without a successful post the client stops
    /// posting, and after `ping_failures` without a successful ping it keeps pinging, in
    /// both cases every `fallback_interval` until an answer comes (defaults
    /// [`DEFAULT_POST_FAILURE_WINDOW`], [`DEFAULT_PING_FAILURE_WINDOW`],
    /// [`DEFAULT_FALLBACK_INTERVAL`]: the SDKs' 20 s, 60 s and 60 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let b = tracelink_live::LiveMetrics::builder(&cs)
    ///     .backoff(Duration::from_secs(20), Duration::from_secs(60), Duration::from_secs(60));
    /// # let _ = b;
    /// ```
    pub fn backoff(
        mut self,
        post_failures: Duration,
        ping_failures: Duration,
        fallback_interval: Duration,
    ) -> Self {
        self.post_failure_window = post_failures;
        self.ping_failure_window = ping_failures;
        self.fallback_interval = fallback_interval;
        self
    }

    /// The most sample documents per post (default [`DEFAULT_MAX_DOCUMENTS`]); 0 sends none.
    ///
    /// ```
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let b = tracelink_live::LiveMetrics::builder(&cs).max_documents_per_post(10);
    /// # let _ = b;
    /// ```
    pub fn max_documents_per_post(mut self, max: u32) -> Self {
        self.max_documents = max;
        self
    }

    /// Sends `Authorization: <value>` with every ping and post, `value` being what `header`
    /// gives just before the request is sent (`None`: the request goes without). The value
    /// is marked sensitive. For Entra ID authentication give it `Bearer <token>` for the
    /// scope `https://monitor.azure.com//.default`; `tracelink::init()` passes the
    /// exporter's current token this way when the exporter has a credential. `header` runs
    /// on the client's task, so it must not block: hand over a token obtained elsewhere.
    ///
    /// ```
    /// use http::HeaderValue;
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let b = tracelink_live::LiveMetrics::builder(&cs)
    ///     .authorization(|| Some(HeaderValue::from_static("Bearer eyJ0…")));
    /// assert!(format!("{b:?}").contains("authorization: true"));
    /// assert!(!format!("{b:?}").contains("eyJ0"));
    /// ```
    pub fn authorization<F>(mut self, header: F) -> Self
    where
        F: Fn() -> Option<http::HeaderValue> + Send + Sync + 'static,
    {
        self.authorization = Some(Arc::new(header));
        self
    }

    /// Builds the Live Metrics; [`LiveMetrics::start`] starts its client. Fails when the
    /// endpoint is not an `http` or `https` URL with a host.
    ///
    /// ```
    /// use tracelink_live::{LiveErrorKind, LiveMetrics};
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let e = LiveMetrics::builder(&cs).endpoint("ftp://x").build().unwrap_err();
    /// assert_eq!(e.kind(), LiveErrorKind::InvalidEndpoint);
    /// ```
    pub fn build(self) -> Result<LiveMetrics, LiveError> {
        let endpoint = crate::client::endpoint_base(&self.endpoint)
            .ok_or_else(|| LiveError::new(LiveErrorKind::InvalidEndpoint))?;
        let machine_name = self.machine_name.unwrap_or_else(host_name);
        let config = Config {
            endpoint: endpoint.clone(),
            instrumentation_key: self.instrumentation_key,
            role: self.role.filter(|r| !r.is_empty()),
            instance: self
                .instance
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| machine_name.clone()),
            machine_name,
            version: tags::SDK_VERSION.to_owned(),
            stream_id: TraceId::random().to_hex().as_str().to_owned(),
            ping_interval: self.ping_interval.max(MIN_INTERVAL),
            post_interval: self.post_interval.max(MIN_INTERVAL),
            timeout: self.timeout.max(MIN_INTERVAL),
            post_failure_window: self.post_failure_window,
            ping_failure_window: self.ping_failure_window,
            fallback_interval: self.fallback_interval.max(MIN_INTERVAL),
            max_documents: self.max_documents,
            authorization: self.authorization,
        };
        let status = LiveStatus {
            subscribed: false,
            endpoint,
            ping_interval: config.ping_interval,
            configuration_etag: None,
            pings: 0,
            posts: 0,
            failures: 0,
        };
        Ok(LiveMetrics {
            shared: Arc::new(Shared {
                config,
                collecting: AtomicBool::new(false),
                counters: Counters::default(),
                documents: Mutex::new(Vec::new()),
                documents_offered: AtomicU32::new(0),
                stop: Notify::new(),
                stopped: AtomicBool::new(false),
                started: AtomicBool::new(false),
                status: Mutex::new(status),
            }),
        })
    }
}

fn host_name() -> String {
    if let Ok(h) = std::env::var("HOSTNAME")
        && !h.trim().is_empty()
    {
        return h.trim().to_owned();
    }
    match std::fs::read_to_string("/proc/sys/kernel/hostname") {
        Ok(h) if !h.trim().is_empty() => h.trim().to_owned(),
        _ => "localhost".to_owned(),
    }
}

/// Why Live Metrics could not be built or started.
///
/// ```
/// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
/// let e = tracelink_live::LiveMetrics::builder(&cs).endpoint("ftp://x").build().unwrap_err();
/// let _: &dyn std::error::Error = &e;
/// ```
#[derive(Debug)]
pub struct LiveError {
    kind: LiveErrorKind,
}

/// What went wrong.
///
/// ```
/// use tracelink_live::{LiveErrorKind, LiveMetrics};
/// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
/// let live = LiveMetrics::builder(&cs).build().unwrap();
/// assert_eq!(live.start().unwrap_err().kind(), LiveErrorKind::NoRuntime);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LiveErrorKind {
    /// The endpoint is not an `http` or `https` URL with a host.
    InvalidEndpoint,
    /// [`LiveMetrics::start`] was called outside a tokio runtime.
    NoRuntime,
    /// [`LiveMetrics::start`] was called before, on this handle or a clone.
    AlreadyStarted,
}

impl LiveError {
    fn new(kind: LiveErrorKind) -> Self {
        Self { kind }
    }

    /// What went wrong.
    ///
    /// ```
    /// use tracelink_live::{LiveErrorKind, LiveMetrics};
    /// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
    /// let e = LiveMetrics::builder(&cs).endpoint("not a url").build().unwrap_err();
    /// assert_eq!(e.kind(), LiveErrorKind::InvalidEndpoint);
    /// assert_eq!(e.to_string(), "live metrics endpoint is not an http(s) url");
    /// ```
    pub fn kind(&self) -> LiveErrorKind {
        self.kind
    }
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            LiveErrorKind::InvalidEndpoint => "live metrics endpoint is not an http(s) url",
            LiveErrorKind::NoRuntime => "live metrics needs a tokio runtime",
            LiveErrorKind::AlreadyStarted => "live metrics client was started before",
        })
    }
}

impl std::error::Error for LiveError {}
