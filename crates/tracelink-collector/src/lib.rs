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
//! - Ingestion ([`ingest`] module docs): `POST /v2/track` and `/v2.1/track`, JSON arrays or
//!   newline-delimited JSON, gzip or plain; 200, 206 with per-item errors, 400, 413.
//! - Storage ([`Store`]): one `items` table with typed columns and the raw JSON; WAL; writes
//!   batched in transactions and acknowledged after commit; ids normalized for linking
//!   (SPEC 10.2); retention by age and count ([`Retention`]).
//! - Queries ([`query`]): [`Store`] methods for recent operations, one operation as a tree
//!   with its orphans, filtered items, roles, the application map and usage; and the
//!   Application Insights docs' transaction table.
//! - Errors: [`StoreError`] for store operations and [`StartError`] for
//!   [`Collector::start`], each with a `kind()` to branch on and its cause as `source()`.
//! - HTTP API: `GET /api/operations`, `GET /api/operations/{id}`, `GET /api/items`; pages at
//!   `/` and `/operations/{id}`.

mod error;
mod http;
pub mod ingest;
pub mod query;
mod store;
mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::sync::oneshot;

pub use error::{StartError, StartErrorKind, StoreError, StoreErrorKind};
pub use http::router;
pub use store::{Retention, Store, normalize_id};
pub use web::escape;

/// The default address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7421";
/// The default body limit: 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;
/// The instrumentation key in [`Collector::connection_string`] (the collector accepts any).
pub const LOCAL_IKEY: &str = "00000000-0000-0000-0000-000000000000";

/// The collector's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    listen: SocketAddr,
    db: PathBuf,
    max_body: usize,
    retention: Retention,
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
        }
    }

    /// The address to listen on (`127.0.0.1:0` for an ephemeral port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The largest request body (413 above it).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// What the database keeps.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
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
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// Opens the database and starts serving on the current tokio runtime.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let store = Store::open(&config.db, config.retention).map_err(StartError::database)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| StartError::listen(config.listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::listen(config.listen, e))?;
        let app = router(store.clone(), config.max_body);
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
            stop: Some(stop),
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A connection string for SDKs and exporters sending here.
    pub fn connection_string(&self) -> String {
        format!(
            "InstrumentationKey={LOCAL_IKEY};IngestionEndpoint={}",
            self.url()
        )
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops serving (in-flight requests finish).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
