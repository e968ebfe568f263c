//! # tracelink-export
//!
//! The channel that ships tracelink's telemetry to Application Insights ingestion (Azure
//! Monitor, or `tracelink-collector` on this machine) without losing it.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tracelink_export::{Exporter, Sampling};
//!
//! let exporter = Exporter::builder("InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:4318")
//!     .sampling(Sampling::fixed(25.0))
//!     .cloud_role("orders-api")
//!     .build()?;
//! let sink = exporter.sink(); // for CorrelationLayer, DependencyLayer, DependencyMiddleware
//! # let _ = sink;
//! // ...
//! exporter.shutdown(Duration::from_secs(5)).await?; // flushes; what cannot be sent is spooled
//! # Ok(()) }
//! ```
//!
//! ## What happens to an item
//!
//! 1. `TelemetrySink::send` samples it (SPEC 8: fixed or adaptive, per operation; items that
//!    carry a sample rate pass untouched; metrics are never sampled) and puts it in a bounded
//!    queue (default 10,000 items). It never blocks: when the queue is full the item is
//!    dropped and counted ([`DropReason::QueueFull`]).
//! 2. A background task on the caller's tokio runtime runs the telemetry processors and
//!    initializers in order (each may change or drop the item), and serializes it into the
//!    current batch.
//! 3. A batch is sent at 500 items, 1 MiB of JSON, or 5 s after its first item
//!    ([`BatchLimits`]): newline-delimited JSON, gzip (level 1 by default: see BENCHMARKS.md),
//!    `POST <IngestionEndpoint>/v2.1/track` with `Content-Type: application/x-json-stream` and
//!    `Content-Encoding: gzip` (SPEC 7.4); at most 4 posts at once, 30 s timeout each. A
//!    batch that finds all 4 send slots busy does not wait in memory: it is spooled, as in an
//!    outage, and sent from the spool as soon as a slot frees.
//! 4. The answer (SPEC 7.5): 200 done; 206 resends only the items whose own status is 408,
//!    429, 500 or 503; 408/429/500/502/503/504, timeouts and network errors retry the whole
//!    batch after exponential backoff with full jitter (1 s up to 5 min, [`Backoff`]; at
//!    most 30 s while there is no answer at all, see below), never sooner than
//!    `Retry-After` (seconds or HTTP date); 307/308 switch to `Location` for good;
//!    401/403 with a [credential](ExporterBuilder::credential) keep the batch and retry it
//!    with a new token; anything else drops the batch and counts it
//!    ([`DropReason::Rejected`]).
//! 5. While batches cannot be sent they wait in the disk spool (on by default,
//!    `<tmp>/tracelink/<hash of ikey and program>`, 50 MB, files older than 48 h deleted):
//!    each batch a file written atomically. Stored batches are sent oldest first: when the
//!    backoff ends, after every success, when an exporter starts, and at least every second
//!    while any are there. An unusable spool directory is a warning, and the exporter keeps
//!    batches in memory instead (capped at the spool's size).
//!
//! Delivery is at least once: a batch whose answer was lost (a timeout after ingestion took
//! it) is sent again.
//!
//! ## What can be lost, what can be duplicated
//!
//! | what happens | lost | sent twice |
//! |---|---|---|
//! | a burst beyond the queue (10,000 items) | the items that found it full ([`DropReason::QueueFull`]) | nothing |
//! | ingestion slow, down or refusing for a while | nothing while the spool has room | a batch whose answer was lost or came after the 30 s timeout |
//! | the spool over its cap (50 MB) | its oldest batches ([`DropReason::SpoolFull`]) | nothing |
//! | a batch spooled for over 48 h | that batch ([`DropReason::Expired`]); ingestion would refuse it | nothing |
//! | ingestion refuses (400, 402, 439, other statuses, per-item in a 206) | those items ([`DropReason::Rejected`]) | nothing |
//! | an answer body that is too long, too slow or broken off | nothing: its status decides (below) | a 206 is resent whole, with the items it had accepted |
//! | the process killed (SIGKILL, crash) | the items not yet batched (the queue and the batch being filled, at most 5 s of items) and the posts whose upload was cut; with the spool off, all it held | the spooled batches it was sending: the next exporter sends them again |
//! | shutdown with the spool off | what could not be sent before the deadline ([`DropReason::Shutdown`]) | nothing |
//! | several processes on one spool directory | nothing more | nothing more: each batch has one sender at a time |
//!
//! Every loss is counted (SPEC 9.3), by reason, in [`Exporter::stats`]; a corrupt spool
//! file counts as [`DropReason::Corrupt`], an item a processor drops as
//! [`DropReason::Processor`].
//!
//! ## Memory
//!
//! At most: the queue (10,000 items), the batch being filled (1 MiB of JSON), the batches
//! being posted (4, gzipped), and 64 KiB of each answer. No batch waits in memory for a send
//! slot, so a slow but answering ingestion cannot build a backlog there: with every slot
//! busy, batches go to the spool as in an outage, where a kill cannot take them. Without a
//! spool (turned off, or unusable) the waiting batches are held in memory, capped at the
//! spool's size.
//!
//! ## Answers
//!
//! At most [`transport::MAX_ANSWER_BYTES`] (64 KiB) of an answer's body is read: a Breeze
//! answer for 500 items is a few KB. The body must have arrived 5 s after the answer's head
//! ([`transport::DEFAULT_BODY_TIMEOUT`], [`HyperTransport::body_timeout`]), and the whole
//! exchange within the post's timeout. A body that is longer (by its `Content-Length`, or as
//! it streams), that does not end in time, or that breaks off is not an error: the
//! connection is closed, the answer is counted in [`Stats::malformed_answers`], and its
//! status decides alone. A 200 is done (ingestion took the batch, so sending it again would
//! duplicate it); a 206 is retried whole (SPEC 7.5 treats a 206 whose body cannot be read
//! that way); anything else as its status says.
//!
//! ## Recovery after an outage
//!
//! While ingestion gives no answer at all (connections refused or reset, posts timing out)
//! the backoff grows as usual, but no wait is longer than 30 s, and each new batch is tried
//! as it comes, a cheap probe when connections are refused. The first post that gets
//! through, new batch or probe, ends the wait at once, and the spool is then sent as fast as
//! the 4 slots allow. So once ingestion accepts connections again, the spool is retried
//! within 30 s at worst (plus the post under way, when posts were timing out), and within
//! the batch delay (5 s) while the application keeps producing items. Waits that ingestion
//! asks for (429, 503, `Retry-After`, up to one hour) are kept whole.
//!
//! ## Sharing a spool directory
//!
//! The default spool directory is shared by every instance of a program on a host (workers,
//! a rolling restart, containers sharing `/tmp`). Each spooled batch has one sender at a
//! time: an exporter *claims* a file before sending it, by an atomic rename into its own
//! directory (`.claims/<id>/`), which only one can win; a batch that must wait again goes
//! back to the spool for whoever sends next. Each exporter holds an exclusive `flock` lock
//! on `.claims/<id>.lock` while it lives. The kernel releases it when the process ends,
//! however it ends, so a lock that another exporter can take belongs to one that is gone: at
//! start, and then every 30 s, exporters take the claims of the gone back into the spool
//! (counted in [`Stats::recovered`]). `flock` works across pid namespaces, so containers
//! sharing the directory are told apart too; the directory must be on a filesystem that
//! supports it (any local one does). N exporters on one directory deliver each batch once,
//! except when an answer is lost (see the table).
//!
//! ## Entra ID authentication
//!
//! For an Application Insights resource with local authentication disabled,
//! [`ExporterBuilder::credential`] takes a [`TokenProvider`]: every post then carries
//! `Authorization: Bearer <token>`, a token for `https://monitor.azure.com//.default` (or the
//! connection string's `AADAudience`). The token is fetched when the exporter starts and
//! refreshed 5 minutes before it expires, on the exporter's task, never on the request
//! path. A 401 or 403 answer keeps the batch (in the spool), sets the token aside, fetches a
//! new one and retries after the backoff; refusals and credential failures are counted
//! ([`Stats::auth_refused`], [`Stats::token_failures`]) and, when they persist, reported by a
//! WARN event at most once a minute. The [`credential`] module has the details. With
//! feature `azure-identity`, `AzureCredential` gives tokens of a managed identity, workload
//! identity, the Azure CLI or a service principal; the identity needs the role *Monitoring
//! Metrics Publisher* on the resource. [`Exporter::bearer_token`] shares the current token
//! with other clients of the resource (the Live Metrics client), without a second refresh.
//!
//! ## Flush and shutdown
//!
//! [`Exporter::flush`] sends everything queued now, spooled batches waiting for a free slot
//! included, and waits for the answers (not for batches waiting out a backoff).
//! [`Exporter::shutdown`] does the same within a deadline, spools what is left, and returns
//! the last counters. Dropping the exporter without shutdown never hangs: what is queued
//! goes to the spool.
//!
//! ## Features
//!
//! - `rustls` (default): HTTPS with rustls (ring) and the webpki roots.
//! - `azure-identity`: `AzureCredential`, Entra ID tokens from the Azure SDK's credentials
//!   (`azure_identity` 1.x). Its types appear in this crate's API only behind the feature.
//!
//! ## Self-observability
//!
//! [`Exporter::stats`] reads the counters: items taken in ([`Stats::enqueued`]), accepted by
//! ingestion ([`Stats::sent`]), retried, spooled, dropped by reason ([`DropReason`]),
//! spooled batches taken over from stopped exporters, unreadable answers, refused tokens
//! and credential failures, and the incoming
//! baggage members cut by the core's caps ([`Stats::baggage_truncated`]: at most 64
//! properties and 8192 bytes from the `baggage` and `Correlation-Context` headers of a
//! request, see `tracelink_core::baggage`). While drops grow, one WARN event (target
//! `tracelink_export`, message "telemetry items were dropped") gives the counts by reason,
//! at most once a minute; so do a credential that keeps failing and a token refused after a
//! refresh. Other `tracing` events are at debug level (backoff, refusals, spool problems),
//! never per item and never with the full instrumentation key or a token.

mod backoff;
mod batch;
mod channel;
pub mod credential;
mod response;
mod sampling;
mod spool;
mod stats;
pub mod transport;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracelink_core::model::{Telemetry, tags};
use tracelink_core::{
    ConnectionString, ConnectionStringError, SamplingDecision, TelemetrySink, TraceId,
};

pub use backoff::Backoff;
pub use batch::BatchLimits;
#[cfg(feature = "azure-identity")]
#[cfg_attr(docsrs, doc(cfg(feature = "azure-identity")))]
pub use credential::AzureCredential;
pub use credential::{
    AccessToken, BearerToken, CredentialError, CredentialErrorKind, TokenProvider,
};
pub use sampling::Sampling;
pub use stats::{DropReason, Stats};
pub use transport::{HyperTransport, Transport};

use channel::{Control, Sender, Worker};
use sampling::{Sampler, Verdict};
use stats::Counters;

/// A telemetry processor: changes an item, or returns `false` to drop it.
pub type Processor = Arc<dyn Fn(&mut Telemetry) -> bool + Send + Sync>;

/// The default gzip level: see BENCHMARKS.md for the measurements behind it.
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 1;

/// Encodes items as one request body, exactly as the exporter sends them: newline-delimited
/// envelopes (SPEC 7.1-7.4), gzipped at `level`. For custom transports, tests and benchmarks.
///
/// ```
/// use tracelink_core::model::{Event, Telemetry};
/// let body = tracelink_export::encode_batch(&[Telemetry::new(Event::new("e"))], "", 1);
/// assert_eq!(&body[..2], &[0x1f, 0x8b]); // gzip
/// ```
pub fn encode_batch(items: &[Telemetry], ikey: &str, level: u32) -> Vec<u8> {
    let mut builder = batch::Builder::new(ikey);
    let unlimited = BatchLimits {
        max_items: usize::MAX,
        max_bytes: usize::MAX,
        ..BatchLimits::default()
    };
    for item in items {
        builder.push(item, &unlimited);
    }
    builder.take(level.min(9)).gz.to_vec()
}

/// Why an exporter could not be built or stopped.
#[derive(Debug)]
pub struct ExporterError {
    kind: ExporterErrorKind,
    source: Option<ConnectionStringError>,
}

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExporterErrorKind {
    /// The connection string is missing or invalid.
    ConnectionString,
    /// `build` was called outside a tokio runtime.
    NoRuntime,
    /// The background task is gone (it panicked, or its runtime shut down).
    Stopped,
}

impl ExporterError {
    fn new(kind: ExporterErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// What went wrong.
    pub fn kind(&self) -> ExporterErrorKind {
        self.kind
    }
}

impl fmt::Display for ExporterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            ExporterErrorKind::ConnectionString => "invalid connection string",
            ExporterErrorKind::NoRuntime => "the exporter needs a tokio runtime",
            ExporterErrorKind::Stopped => "the exporter's background task is gone",
        })
    }
}

impl std::error::Error for ExporterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl From<ConnectionStringError> for ExporterError {
    fn from(e: ConnectionStringError) -> Self {
        Self {
            kind: ExporterErrorKind::ConnectionString,
            source: Some(e),
        }
    }
}

/// Configures an [`Exporter`].
pub struct ExporterBuilder {
    connection: Result<ConnectionString, ConnectionStringError>,
    sampling: Sampling,
    queue_capacity: usize,
    limits: BatchLimits,
    max_concurrent: usize,
    timeout: Duration,
    backoff: Backoff,
    spool: Option<PathBuf>,
    spool_enabled: bool,
    spool_max_bytes: u64,
    processors: Vec<Processor>,
    transport: Option<Arc<dyn Transport>>,
    level: u32,
    credential: Option<Arc<dyn TokenProvider>>,
    credential_scope: Option<String>,
}

impl fmt::Debug for ExporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterBuilder")
            .field("connection", &self.connection)
            .field("sampling", &self.sampling)
            .field("queue_capacity", &self.queue_capacity)
            .field("limits", &self.limits)
            .field("credential", &self.credential.is_some())
            .finish_non_exhaustive()
    }
}

impl ExporterBuilder {
    /// Sampling (off by default).
    pub fn sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// The queue's capacity in items (default 10,000).
    pub fn queue_capacity(mut self, items: usize) -> Self {
        self.queue_capacity = items.max(1);
        self
    }

    /// When batches are sent (default 500 items, 1 MiB, 5 s).
    pub fn batch_limits(mut self, limits: BatchLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Most posts in flight at once (default 4).
    pub fn max_concurrent_requests(mut self, n: usize) -> Self {
        self.max_concurrent = n.max(1);
        self
    }

    /// The timeout of one post (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retry backoff (default 1 s to 5 min).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The spool directory (default `<tmp>/tracelink/<hash of ikey and program>`).
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool = Some(dir.into());
        self
    }

    /// The spool's size cap in bytes (default 50 MB).
    pub fn spool_max_bytes(mut self, bytes: u64) -> Self {
        self.spool_max_bytes = bytes;
        self
    }

    /// Keeps unsent batches in memory only (they are lost when the process ends).
    pub fn no_spool(mut self) -> Self {
        self.spool_enabled = false;
        self
    }

    /// Adds a processor: it may change an item, or return `false` to drop it. Processors
    /// run in order on the background task.
    pub fn processor(mut self, f: impl Fn(&mut Telemetry) -> bool + Send + Sync + 'static) -> Self {
        self.processors.push(Arc::new(f));
        self
    }

    /// Adds an initializer: a processor that never drops.
    pub fn initializer(self, f: impl Fn(&mut Telemetry) + Send + Sync + 'static) -> Self {
        self.processor(move |item| {
            f(item);
            true
        })
    }

    /// Sets `ai.cloud.role` on items that have none.
    pub fn cloud_role(self, role: &str) -> Self {
        self.tag_if_absent(tags::CLOUD_ROLE, role)
    }

    /// Sets `ai.cloud.roleInstance` on items that have none.
    pub fn role_instance(self, instance: &str) -> Self {
        self.tag_if_absent(tags::CLOUD_ROLE_INSTANCE, instance)
    }

    /// Sets `ai.application.ver` on items that have none.
    pub fn application_version(self, version: &str) -> Self {
        self.tag_if_absent(tags::APPLICATION_VERSION, version)
    }

    fn tag_if_absent(self, key: &'static str, value: &str) -> Self {
        let value: Arc<str> = value.into();
        self.initializer(move |item| {
            // Shared, not copied: most items already have the tag from the middleware.
            item.tags.insert_if_absent(key, &value);
        })
    }

    /// Sends batches with `transport` instead of [`HyperTransport`].
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// The gzip level, 0-9 (default [`DEFAULT_COMPRESSION_LEVEL`]).
    pub fn compression_level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// Authenticates with Entra ID: every post carries `Authorization: Bearer <token>` with
    /// a token of `provider` for the connection string's scope
    /// ([`ConnectionString::aad_scope`]: `https://monitor.azure.com//.default` unless
    /// `AADAudience` says otherwise), kept and refreshed before it expires on the exporter's
    /// task. A 401 or 403 answer keeps the batch and retries it with a new token. See
    /// [`credential`] for the details, and `AzureCredential` (feature `azure-identity`)
    /// for managed identity, workload identity, the Azure CLI and service principals.
    ///
    /// ```no_run
    /// use std::time::{Duration, SystemTime};
    /// use tracelink_export::{AccessToken, Exporter};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let exporter = Exporter::builder("InstrumentationKey=00000000-0000-0000-0000-000000000000")
    ///     .credential(|_scope: &str| async {
    ///         Ok(AccessToken::new("eyJ0…", SystemTime::now() + Duration::from_secs(3600)))
    ///     })
    ///     .build()?;
    /// # let _ = exporter; Ok(()) }
    /// ```
    pub fn credential(mut self, provider: impl TokenProvider) -> Self {
        self.credential = Some(Arc::new(provider));
        self
    }

    /// The scope tokens are asked for, instead of the connection string's
    /// ([`ConnectionString::aad_scope`]).
    pub fn credential_scope(mut self, scope: impl Into<String>) -> Self {
        self.credential_scope = Some(scope.into());
        self
    }

    /// Starts the exporter's background task on the current tokio runtime.
    pub fn build(self) -> Result<Exporter, ExporterError> {
        let connection = self.connection?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| ExporterError::new(ExporterErrorKind::NoRuntime))?;
        let stats = Arc::new(Counters::default());
        let ikey = connection.instrumentation_key().to_owned();
        let store = if self.spool_enabled {
            let dir = self.spool.unwrap_or_else(|| spool::default_dir(&ikey));
            match spool::Disk::open(&dir, self.spool_max_bytes, stats.clone()) {
                Ok(d) => spool::Store::Disk(d),
                Err(e) => {
                    tracing::warn!(target: "tracelink_export", dir = %dir.display(), error = %e,
                        "spool directory unusable: keeping unsent batches in memory");
                    spool::Store::Memory(spool::Memory::new(self.spool_max_bytes, stats.clone()))
                }
            }
        } else {
            spool::Store::Memory(spool::Memory::new(self.spool_max_bytes, stats.clone()))
        };
        let transport = self
            .transport
            .unwrap_or_else(|| Arc::new(HyperTransport::new()));
        let mut sender = Sender::new(
            transport,
            connection.track_url(),
            self.max_concurrent,
            store,
            self.backoff,
            self.timeout,
            self.level,
            stats.clone(),
        );
        let mut refresher = None;
        if let Some(provider) = self.credential {
            let scope = self
                .credential_scope
                .unwrap_or_else(|| connection.aad_scope());
            let cache = Arc::new(credential::TokenCache::new(provider, scope, stats.clone()));
            sender = sender.with_credential(cache.clone());
            refresher = Some(cache);
        }
        let sender = Arc::new(sender);
        let bearer = refresher
            .as_ref()
            .map(|cache| BearerToken::new(cache.clone()));
        if let Some(cache) = refresher {
            runtime.spawn(cache.run(sender.cancelled()));
        }
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        let (control, control_rx) = mpsc::unbounded_channel();
        let sampler = Arc::new(Sampler::new(self.sampling));
        let worker = Worker {
            items: rx,
            control: control_rx,
            sender,
            sampler: sampler.clone(),
            processors: self.processors,
            limits: self.limits,
            builder: batch::Builder::new(&ikey),
            stats: stats.clone(),
            warner: stats::DropWarner::default(),
        };
        runtime.spawn(worker.run());
        tracing::debug!(target: "tracelink_export", ikey = %connection.redacted_instrumentation_key(),
            endpoint = connection.ingestion_endpoint(), "exporter started");
        Ok(Exporter {
            sink: Arc::new(ExporterSink { tx, sampler, stats }),
            control,
            connection,
            bearer,
            stopped: false,
        })
    }
}

impl From<ConnectionString> for ExporterBuilder {
    /// A builder for a connection string parsed already.
    fn from(connection: ConnectionString) -> Self {
        Exporter::builder_from(Ok(connection))
    }
}

/// The exporter: a handle on the background channel. See the crate docs.
#[derive(Debug)]
pub struct Exporter {
    sink: Arc<ExporterSink>,
    control: mpsc::UnboundedSender<Control>,
    connection: ConnectionString,
    bearer: Option<BearerToken>,
    stopped: bool,
}

impl Exporter {
    /// A builder for the connection string `connection_string` (SPEC 7.6); a bad one is an
    /// error at [`ExporterBuilder::build`].
    pub fn builder(connection_string: &str) -> ExporterBuilder {
        Self::builder_from(ConnectionString::parse(connection_string))
    }

    fn builder_from(
        connection: Result<ConnectionString, ConnectionStringError>,
    ) -> ExporterBuilder {
        ExporterBuilder {
            connection,
            sampling: Sampling::off(),
            queue_capacity: 10_000,
            limits: BatchLimits::default(),
            max_concurrent: 4,
            timeout: Duration::from_secs(30),
            backoff: Backoff::default(),
            spool: None,
            spool_enabled: true,
            spool_max_bytes: 50 * 1024 * 1024,
            processors: Vec::new(),
            transport: None,
            level: DEFAULT_COMPRESSION_LEVEL,
            credential: None,
            credential_scope: None,
        }
    }

    /// An exporter for `APPLICATIONINSIGHTS_CONNECTION_STRING`, with the defaults.
    pub fn from_env() -> Result<Self, ExporterError> {
        Self::builder_from(ConnectionString::from_env()).build()
    }

    /// A builder for `APPLICATIONINSIGHTS_CONNECTION_STRING`.
    pub fn builder_from_env() -> ExporterBuilder {
        Self::builder_from(ConnectionString::from_env())
    }

    /// The sink to give the middleware. Cheap to clone; items sent after shutdown are
    /// counted as dropped.
    pub fn sink(&self) -> Arc<dyn TelemetrySink> {
        self.sink.clone()
    }

    /// The connection string in use.
    pub fn connection_string(&self) -> &ConnectionString {
        &self.connection
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.sink.stats.snapshot()
    }

    /// The exporter's Entra ID token, for other clients of the same resource (Live
    /// Metrics), when it has a [credential](ExporterBuilder::credential); `None` without one.
    /// The token stays the exporter's: it is fetched and refreshed on the exporter's task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::{Duration, SystemTime};
    /// use tracelink_export::{AccessToken, Exporter};
    ///
    /// let cs = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9";
    /// let plain = Exporter::builder(cs).no_spool().build().unwrap();
    /// assert!(plain.bearer_token().is_none());
    /// let exporter = Exporter::builder(cs)
    ///     .no_spool()
    ///     .credential(|_: &str| async { Ok(AccessToken::new("t0k", SystemTime::now() + Duration::from_secs(3600))) })
    ///     .build()
    ///     .unwrap();
    /// let token = exporter.bearer_token().unwrap();
    /// tokio::time::sleep(Duration::from_millis(50)).await; // the first token arrives
    /// assert_eq!(token.header().unwrap(), "Bearer t0k");
    /// # }
    /// ```
    pub fn bearer_token(&self) -> Option<BearerToken> {
        self.bearer.clone()
    }

    /// Sends everything queued now and waits for the answers (not for batches waiting out
    /// a backoff).
    pub async fn flush(&self) -> Result<(), ExporterError> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::Flush(tx))
            .map_err(|_| ExporterError::new(ExporterErrorKind::Stopped))?;
        rx.await
            .map_err(|_| ExporterError::new(ExporterErrorKind::Stopped))
    }

    /// Flushes within `timeout`, then stops; what could not be sent is spooled. Returns the
    /// counters as the exporter stopped, with what the shutdown itself dropped
    /// ([`DropReason::Shutdown`]: unsent items without a spool).
    pub async fn shutdown(mut self, timeout: Duration) -> Result<Stats, ExporterError> {
        self.stopped = true;
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::Shutdown(Instant::now() + timeout, tx))
            .map_err(|_| ExporterError::new(ExporterErrorKind::Stopped))?;
        rx.await
            .map_err(|_| ExporterError::new(ExporterErrorKind::Stopped))?;
        Ok(self.stats())
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if !self.stopped {
            // Never waits: the worker spools what is queued and stops.
            let _ = self.control.send(Control::Stop);
        }
    }
}

/// The [`TelemetrySink`] of an [`Exporter`].
#[derive(Debug)]
struct ExporterSink {
    tx: mpsc::Sender<Telemetry>,
    sampler: Arc<Sampler>,
    stats: Arc<Counters>,
}

impl TelemetrySink for ExporterSink {
    fn send(&self, mut item: Telemetry) {
        if self.sampler.apply(&mut item) == Verdict::Drop {
            Counters::add(&self.stats.sampled_out, 1);
            return;
        }
        match self.tx.try_send(item) {
            Ok(()) => Counters::add(&self.stats.enqueued, 1),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.drop_items(DropReason::QueueFull, 1)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.drop_items(DropReason::Shutdown, 1)
            }
        }
    }

    fn sampling(&self, operation_id: TraceId) -> SamplingDecision {
        self.sampler.decide(operation_id)
    }
}
