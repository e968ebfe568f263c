//! # tracelink-collector
//!
//! A local Application Insights ingestion endpoint: any Application Insights SDK (and
//! tracelink's exporter) can point its connection string at it
//! (`IngestionEndpoint=http://127.0.0.1:PORT`), and it stores what arrives in an embedded
//! SQLite database that a JSON API, a CLI and a web page read back as correlated
//! transactions. Everything runs on one machine.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tracelink_collector::{Collector, Config};
//!
//! let collector = Collector::start(Config::new("/tmp/collector.db").listen("127.0.0.1:0".parse()?)).await?;
//! println!("point SDKs at {}", collector.connection_string());
//! # Ok(()) }
//! ```
//!
//! - Breeze ingestion ([`ingest`] module docs): `POST /v2/track` and `/v2.1/track`, JSON
//!   arrays or newline-delimited JSON, gzip or plain; 200, 206 with per-item errors, 400,
//!   413; every `baseType` spelling the SDKs send (the browser SDK's `PageviewData`,
//!   `PageviewPerformanceData`), unknown types kept under their own name.
//! - OTLP/HTTP ingestion ([`otlp`] module docs): `POST /v1/traces`, `/v1/logs`,
//!   `/v1/metrics`, protobuf or JSON, gzip or plain, mapped as the Azure Monitor
//!   OpenTelemetry exporters map spans, logs and metrics, so that OpenTelemetry services,
//!   tracelink services and Application Insights SDK services show as one transaction.
//! - Live Metrics (QuickPulse), the service side: `POST /QuickPulseService.svc/ping` and
//!   `/post` (`?ikey=`), as the Live Metrics service answers them: `x-ms-qps-subscribed: true`
//!   while a viewer has the Live page open (it read `GET /api/live` within the last 3 s), else
//!   `false`, with a polling-interval hint of 1 s. Per instance (instrumentation key, role,
//!   instance, machine) the last 60 s of the standard metrics (at most 120 samples) and the
//!   last 50 sample documents, in memory; at most 100 instances, each forgotten 60 s after it
//!   last sent. [`Collector::connection_string`] names the collector as `LiveEndpoint` too.
//! - Access: open on loopback; bound elsewhere, a login token for the pages and the API, an
//!   API key for OTLP and accepted instrumentation keys for Breeze ([`Config`]).
//! - Storage ([`Store`]): one `items` table with typed columns and the raw JSON; WAL; writes
//!   batched in transactions and acknowledged after commit (a killed collector loses nothing
//!   it acknowledged); ids normalized for linking (SPEC 10.2); the WAL bounded
//!   ([`DEFAULT_WAL_LIMIT`]) and truncated on shutdown; retention by age, count and bytes,
//!   oldest first ([`Retention`]); every refusal and deletion counted ([`Stats`]).
//! - Queries ([`query`]): [`Store`] methods for recent operations, one operation as a tree
//!   with its orphans, filtered items, roles, the application map and usage; and the
//!   Application Insights docs' transaction table.
//! - Errors: [`StoreError`] for store operations and [`StartError`] for
//!   [`Collector::start`], each with a `kind()` to branch on and its cause as `source()`.
//! - Search ([`query::search`]): items by words (names, messages, URLs, property values) and
//!   filters, newest first, paged by key, through a full-text index kept with the items.
//! - HTTP API: `GET /api/operations`, `GET /api/operations/{id}`, `GET /api/items`,
//!   `GET /api/search`, `GET /api/stats`, `GET /api/live`; pages at `/`, `/operations/{id}`,
//!   `/search`, `/logs` and `/live`.
//! - Usage tools, each a page and a JSON API (`/api/usage/...`): users, sessions, events,
//!   funnels, retention, user flows and cohorts over the page views, custom events and
//!   requests that carry a user id; and `/metrics`, metrics as time series by name split by
//!   a dimension. Charts are server-drawn SVG. The README describes each tool's parameters.
//!
//! The crate's README lists every accepted protocol and the mapping of each onto the data
//! model.

mod access;
mod error;
mod http;
pub mod ingest;
mod live;
mod metric_series;
pub mod otlp;
pub mod query;
mod semconv;
mod stats;
mod store;
mod usage;
mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::sync::oneshot;

pub use access::OTLP_API_KEY_HEADER;
pub use error::{StartError, StartErrorKind, StoreError, StoreErrorKind};
pub use http::router;
pub use stats::Stats;
pub use store::{DEFAULT_WAL_LIMIT, Retention, Store, normalize_id};
pub use web::escape;

/// The default address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7421";
/// The default body limit: 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;
/// The instrumentation key in [`Collector::connection_string`] when any is accepted.
pub const LOCAL_IKEY: &str = "00000000-0000-0000-0000-000000000000";

/// The collector's configuration. Its `Debug` shows which secrets are set, never their
/// values.
#[derive(Clone)]
pub struct Config {
    listen: SocketAddr,
    db: PathBuf,
    max_body: usize,
    retention: Retention,
    wal_limit: u64,
    login_token: Option<String>,
    otlp_api_key: Option<String>,
    ikeys: Vec<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("db", &self.db)
            .field("max_body", &self.max_body)
            .field("retention", &self.retention)
            .field("wal_limit", &self.wal_limit)
            .field("login_token", &self.login_token.as_ref().map(|_| "<set>"))
            .field("otlp_api_key", &self.otlp_api_key.as_ref().map(|_| "<set>"))
            .field("ikeys", &self.ikeys)
            .finish()
    }
}

impl Config {
    /// Listens on [`DEFAULT_LISTEN`] and stores into `db`.
    pub fn new(db: impl AsRef<Path>) -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7421))),
            db: db.as_ref().to_owned(),
            max_body: DEFAULT_MAX_BODY,
            retention: Retention::default(),
            wal_limit: DEFAULT_WAL_LIMIT,
            login_token: None,
            otlp_api_key: None,
            ikeys: Vec::new(),
        }
    }

    /// The address to listen on (`127.0.0.1:0` for an ephemeral port). Beyond loopback, the
    /// pages, the query API and ingestion require credentials (see below).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The largest request body (413 above it); decompressed bodies may be four times larger.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// What the database keeps.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// The WAL size at which the writer checkpoints it fully and starts it over (default
    /// [`DEFAULT_WAL_LIMIT`]).
    pub fn wal_limit(mut self, bytes: u64) -> Self {
        self.wal_limit = bytes;
        self
    }

    /// The token the pages and the query API require (kept in a cookie after
    /// `/login?t=<token>`, or sent as `Authorization: Bearer <token>`). Required wherever the
    /// collector listens once set; beyond loopback one is generated when none is set.
    pub fn login_token(mut self, token: impl Into<String>) -> Self {
        self.login_token = Some(token.into());
        self
    }

    /// The key OTLP senders must send in the [`OTLP_API_KEY_HEADER`] header. Required wherever
    /// the collector listens once set; beyond loopback one is generated when none is set.
    pub fn otlp_api_key(mut self, key: impl Into<String>) -> Self {
        self.otlp_api_key = Some(key.into());
        self
    }

    /// An instrumentation key Breeze ingestion accepts (call again for more). Once one is
    /// set, envelopes with any other `iKey` are refused; beyond loopback one is generated
    /// when none is set.
    pub fn instrumentation_key(mut self, ikey: impl Into<String>) -> Self {
        self.ikeys.push(ikey.into());
        self
    }
}

/// The default database: `$XDG_DATA_HOME/tracelink/collector.db`, else
/// `~/.local/share/tracelink/collector.db`, else under the temp directory.
pub fn default_db_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("tracelink").join("collector.db")
}

/// A running collector.
#[derive(Debug)]
pub struct Collector {
    addr: SocketAddr,
    store: Store,
    access: access::Access,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// Opens the database and starts serving on the current tokio runtime.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let secret = |given: Option<String>, beyond: bool| -> Result<Option<String>, StartError> {
            match given {
                Some(s) => Ok(Some(s)),
                None if beyond => access::secret().map(Some).map_err(StartError::random),
                None => Ok(None),
            }
        };
        let beyond = !config.listen.ip().is_loopback();
        let mut ikeys: Vec<String> = config
            .ikeys
            .iter()
            .map(|k| k.trim().to_ascii_lowercase())
            .collect();
        if ikeys.is_empty() && beyond {
            ikeys.push(access::ikey().map_err(StartError::random)?);
        }
        let access = access::Access {
            login_token: secret(config.login_token.clone(), beyond)?,
            otlp_api_key: secret(config.otlp_api_key.clone(), beyond)?,
            ikeys,
        };
        let store = Store::open_with(&config.db, config.retention, config.wal_limit)
            .map_err(StartError::database)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| StartError::listen(config.listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::listen(config.listen, e))?;
        let app = http::routes(store.clone(), config.max_body, access.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(target: "tracelink_collector", error = %e, "server stopped");
            }
        });
        Ok(Self {
            addr,
            store,
            access,
            stop: Some(stop),
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: the OTLP/HTTP endpoint too (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL that logs a browser in: `<url>/login?t=<token>` when a login token is
    /// required, else the [`url`](Self::url).
    pub fn login_url(&self) -> String {
        match &self.access.login_token {
            Some(t) => format!("{}/login?t={t}", self.url()),
            None => self.url(),
        }
    }

    /// The token the pages and the query API require, if any.
    pub fn login_token(&self) -> Option<&str> {
        self.access.login_token.as_deref()
    }

    /// The key OTLP senders must send in [`OTLP_API_KEY_HEADER`], if any.
    pub fn otlp_api_key(&self) -> Option<&str> {
        self.access.otlp_api_key.as_deref()
    }

    /// The instrumentation keys Breeze ingestion accepts; empty: any.
    pub fn instrumentation_keys(&self) -> &[String] {
        &self.access.ikeys
    }

    /// A connection string for SDKs and exporters sending here (with the first accepted
    /// instrumentation key, else [`LOCAL_IKEY`]): ingestion and Live Metrics both at
    /// [`url`](Self::url).
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let c = tracelink_collector::Collector::start(tracelink_collector::Config::new("/tmp/c.db").listen("127.0.0.1:7421".parse()?)).await?;
    /// assert_eq!(c.connection_string(), "InstrumentationKey=00000000-0000-0000-0000-000000000000;\
    ///     IngestionEndpoint=http://127.0.0.1:7421;LiveEndpoint=http://127.0.0.1:7421/");
    /// # Ok(()) }
    /// ```
    pub fn connection_string(&self) -> String {
        let ikey = self.access.ikeys.first().map_or(LOCAL_IKEY, String::as_str);
        let url = self.url();
        format!("InstrumentationKey={ikey};IngestionEndpoint={url};LiveEndpoint={url}/")
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What was stored, refused and deleted since it started.
    pub fn stats(&self) -> Stats {
        self.store.stats()
    }

    /// Stops serving (in-flight requests finish), then closes the database: everything
    /// acknowledged is committed and the WAL is checkpointed and truncated.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        self.store.close().await;
    }
}
