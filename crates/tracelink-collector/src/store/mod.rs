//! The embedded SQLite database: one `items` table with typed columns for what queries use,
//! plus the raw JSON of every item, and one summary row per operation ([`crate::summary`])
//! kept in the same transactions.
//!
//! Writes go through one writer thread that commits the items of several requests in one
//! transaction (WAL mode) and acknowledges each request only after its commit: an item that
//! was answered as accepted is on disk. Reads use their own connection.
//!
//! Ids are stored raw and normalized for linking (SPEC 10.2): within operation `T`, a
//! Node-style `|T.S.` is the same id as `S`. Items also belong to operation `T` when their
//! property `ai_legacyRootId` is `T` (SPEC 10.1).

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;
use tracelink_core::model::{Telemetry, TelemetryData, tags};
use tracelink_core::wire_time;

use crate::ingest::Accepted;
use crate::summary;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS items (
    seq            INTEGER PRIMARY KEY,
    timestamp      TEXT NOT NULL,
    ts_ms          INTEGER NOT NULL,
    item_type      TEXT NOT NULL,
    name           TEXT,
    id             TEXT,
    id_norm        TEXT,
    operation_id   TEXT,
    parent_id      TEXT,
    parent_norm    TEXT,
    operation_name TEXT,
    cloud_role     TEXT,
    role_instance  TEXT,
    user_id        TEXT,
    session_id     TEXT,
    duration_ms    REAL,
    success        INTEGER,
    result_code    TEXT,
    target         TEXT,
    source         TEXT,
    url            TEXT,
    legacy_root    TEXT,
    raw            TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_operation ON items(operation_id, ts_ms);
CREATE INDEX IF NOT EXISTS items_legacy_root ON items(legacy_root) WHERE legacy_root IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_ts ON items(ts_ms);
";

/// The id `|T.S.` within operation `T` is `S` (SPEC 10.2); other ids stay as they are.
pub fn normalize_id(id: &str, operation_id: Option<&str>) -> String {
    if let Some(t) = operation_id
        && let Some(rest) = id
            .strip_prefix('|')
            .and_then(|r| r.strip_prefix(t))
            .and_then(|r| r.strip_prefix('.'))
        && let Some(s) = rest.strip_suffix('.')
        && s.len() == 16
        && s.bytes().all(|c| c.is_ascii_hexdigit())
    {
        return s.to_owned();
    }
    id.to_owned()
}

/// The columns of one item.
#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    pub(crate) timestamp: String,
    pub(crate) ts_ms: i64,
    pub(crate) item_type: String,
    pub(crate) name: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) operation_id: Option<String>,
    pub(crate) parent_id: Option<String>,
    pub(crate) operation_name: Option<String>,
    pub(crate) cloud_role: Option<String>,
    pub(crate) role_instance: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) duration_ms: Option<f64>,
    pub(crate) success: Option<bool>,
    pub(crate) result_code: Option<String>,
    pub(crate) target: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) legacy_root: Option<String>,
    pub(crate) raw: String,
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl Row {
    pub(crate) fn from_item(t: &Telemetry, raw: String) -> Self {
        let tag = |k: &str| t.tags.get(k).map(str::to_owned);
        let ts_ms = t
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut row = Row {
            timestamp: wire_time::format_time(t.time),
            ts_ms,
            operation_id: tag(tags::OPERATION_ID),
            parent_id: tag(tags::OPERATION_PARENT_ID),
            operation_name: tag(tags::OPERATION_NAME),
            cloud_role: tag(tags::CLOUD_ROLE),
            role_instance: tag(tags::CLOUD_ROLE_INSTANCE),
            user_id: tag(tags::USER_ID),
            session_id: tag(tags::SESSION_ID),
            legacy_root: t
                .properties
                .get(tracelink_core::LEGACY_ROOT_ID_PROPERTY)
                .cloned(),
            raw,
            ..Row::default()
        };
        let ms = |d: Duration| Some(d.as_secs_f64() * 1000.0);
        match &t.data {
            TelemetryData::Request(r) => {
                row.item_type = "request".into();
                row.name = nonempty(&r.name);
                row.id = nonempty(&r.id);
                row.duration_ms = ms(r.duration);
                row.success = Some(r.success);
                row.result_code = nonempty(&r.response_code);
                row.source = nonempty(&r.source);
                row.url = nonempty(&r.url);
            }
            TelemetryData::Dependency(d) => {
                row.item_type = "dependency".into();
                row.name = nonempty(&d.name);
                row.id = nonempty(&d.id);
                row.duration_ms = ms(d.duration);
                row.success = Some(d.success);
                row.result_code = nonempty(&d.result_code);
                row.target = nonempty(&d.target);
                row.url = nonempty(&d.data);
                row.source = nonempty(&d.dependency_type);
            }
            TelemetryData::Trace(m) => {
                row.item_type = "trace".into();
                row.name = Some(m.message.chars().take(300).collect());
                row.result_code = m.severity.map(|s| s.as_str().to_owned());
            }
            TelemetryData::Exception(e) => {
                row.item_type = "exception".into();
                row.name = e.exceptions.first().map(|d| {
                    format!("{}: {}", d.type_name, d.message)
                        .chars()
                        .take(300)
                        .collect()
                });
                row.success = Some(false);
            }
            TelemetryData::Event(e) => {
                row.item_type = "customEvent".into();
                row.name = nonempty(&e.name);
            }
            TelemetryData::Metric(m) => {
                row.item_type = "customMetric".into();
                row.name = m.metrics.first().map(|p| p.name.clone());
            }
            TelemetryData::PageView(p) => {
                row.item_type = "pageView".into();
                row.name = nonempty(&p.name);
                row.id = nonempty(&p.id);
                row.url = nonempty(&p.url);
                row.duration_ms = p.duration.and_then(ms);
            }
            other => {
                row.item_type = match other {
                    TelemetryData::Other(o) => o.base_type.trim_end_matches("Data").to_owned(),
                    _ => "other".into(),
                };
            }
        }
        row
    }
}

struct Job {
    rows: Vec<Row>,
    done: oneshot::Sender<Result<(), String>>,
}

/// Limits on what the database keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Items older than this many days are deleted.
    pub max_days: u32,
    /// At most this many items are kept; the oldest go first.
    pub max_items: u64,
}

impl Default for Retention {
    /// 7 days, 1,000,000 items.
    fn default() -> Self {
        Self {
            max_days: 7,
            max_items: 1_000_000,
        }
    }
}

/// The database: a writer thread and a read connection.
#[derive(Clone)]
pub struct Store {
    writer: SyncSender<Job>,
    reader: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

impl Store {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path, retention: Retention) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let conn = open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        conn.execute_batch(SCHEMA)
            .and_then(|()| conn.execute_batch(summary::SCHEMA))
            .and_then(|()| summary::rebuild_if_stale(&conn).map(drop))
            .map_err(|e| format!("cannot create the schema: {e}"))?;
        // The writer never checkpoints: a second thread moves the WAL into the database,
        // so on two cores writing and checkpointing run side by side.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -65536;")
            .map_err(|e| e.to_string())?;
        let reader = Arc::new(Mutex::new(open(path).map_err(|e| e.to_string())?));
        let checkpointer = open(path).map_err(|e| e.to_string())?;
        let alive = Arc::downgrade(&reader);
        std::thread::Builder::new()
            .name("tracelink-collector-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, alive))
            .map_err(|e| e.to_string())?;
        let (writer, jobs) = sync_channel::<Job>(256);
        std::thread::Builder::new()
            .name("tracelink-collector-writer".into())
            .spawn(move || write_loop(conn, jobs, retention))
            .map_err(|e| e.to_string())?;
        Ok(Self { writer, reader })
    }

    /// Stores rows; resolves once they are committed.
    pub(crate) async fn insert(&self, rows: Vec<Row>) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        let writer = self.writer.clone();
        // The channel is bounded: a full one waits on a blocking thread, not the runtime.
        tokio::task::spawn_blocking(move || writer.send(Job { rows, done }))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|_| "the writer stopped".to_owned())?;
        wait.await.map_err(|_| "the writer stopped".to_owned())?
    }

    /// Stores accepted items.
    pub(crate) async fn insert_items(&self, items: Vec<Accepted>) -> Result<(), String> {
        let rows = items
            .into_iter()
            .map(|a| Row::from_item(&a.envelope.telemetry, a.raw))
            .collect();
        self.insert(rows).await
    }

    /// Runs a read on the read connection, off the runtime's threads.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Reads synchronously (for the CLI).
    pub fn read_now<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, String> {
        let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|e| e.to_string())
    }
}

const INSERT: &str = "INSERT INTO items (timestamp, ts_ms, item_type, name, id, id_norm, operation_id,
    parent_id, parent_norm, operation_name, cloud_role, role_instance, user_id, session_id,
    duration_ms, success, result_code, target, source, url, legacy_root, raw)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)";

fn commit(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(INSERT)?;
        for r in jobs.iter().flat_map(|j| &j.rows) {
            let op = r.operation_id.as_deref();
            stmt.execute(params![
                r.timestamp,
                r.ts_ms,
                r.item_type,
                r.name,
                r.id,
                r.id.as_deref().map(|i| normalize_id(i, op)),
                r.operation_id,
                r.parent_id,
                r.parent_id.as_deref().map(|p| normalize_id(p, op)),
                r.operation_name,
                r.cloud_role,
                r.role_instance,
                r.user_id,
                r.session_id,
                r.duration_ms,
                r.success,
                r.result_code,
                r.target,
                r.source,
                r.url,
                r.legacy_root,
                r.raw,
            ])?;
            summary::add(&tx, r)?;
        }
    }
    summary::mark_current(&tx)?;
    tx.commit()
}

fn write_loop(mut conn: Connection, jobs: Receiver<Job>, retention: Retention) {
    let mut since_retention = 0usize;
    while let Ok(first) = jobs.recv() {
        // Group commit: everything already waiting goes in the same transaction.
        let mut batch = vec![first];
        let mut rows = batch[0].rows.len();
        while rows < 20_000 {
            match jobs.try_recv() {
                Ok(j) => {
                    rows += j.rows.len();
                    batch.push(j);
                }
                Err(_) => break,
            }
        }
        let result = commit(&mut conn, &batch).map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::warn!(target: "tracelink_collector", error = %e, "write failed");
        }
        for job in batch {
            let _ = job.done.send(result.clone());
        }
        since_retention += rows;
        if since_retention >= 10_000 {
            since_retention = 0;
            if let Err(e) = apply_retention(&conn, retention) {
                tracing::warn!(target: "tracelink_collector", error = %e, "retention failed");
            }
        }
    }
}

/// Checkpoints the WAL every 200 ms (passive: it never blocks the writer) until the store
/// is dropped.
fn checkpoint_loop(conn: Connection, alive: std::sync::Weak<Mutex<Connection>>) {
    while alive.strong_count() > 0 {
        std::thread::sleep(Duration::from_millis(200));
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
            tracing::warn!(target: "tracelink_collector", error = %e, "checkpoint failed");
        }
    }
    // A last full checkpoint leaves a compact database behind.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
}

/// Deletes items older than the retention's days, then the oldest beyond its count, and
/// brings the rows of the operations they belonged to up to date: all in one transaction.
pub(crate) fn apply_retention(conn: &Connection, r: Retention) -> rusqlite::Result<usize> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let cutoff = now_ms - i64::from(r.max_days) * 86_400_000;
    // Immediate: the write lock is taken (waiting through the busy timeout) before the
    // snapshot the affected operations are read from; a deferred transaction could not
    // upgrade while the writer holds the lock, and would fail instead of waiting.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let mut touched: Vec<String> = Vec::new();
    let mut delete = |filter: &str, value: i64| -> rusqlite::Result<usize> {
        let ids = format!(
            "SELECT DISTINCT operation_id FROM items WHERE {filter} AND operation_id IS NOT NULL"
        );
        let mut stmt = tx.prepare(&ids)?;
        for id in stmt.query_map([value], |row| row.get(0))? {
            touched.push(id?);
        }
        tx.execute(&format!("DELETE FROM items WHERE {filter}"), [value])
    };
    let mut deleted = delete("ts_ms < ?1", cutoff)?;
    let count: i64 = tx.query_row("SELECT COUNT(*) FROM items", [], |row| row.get(0))?;
    let excess = count - r.max_items as i64;
    if excess > 0 {
        let last: Option<i64> = tx
            .query_row(
                "SELECT seq FROM items ORDER BY seq LIMIT 1 OFFSET ?1",
                [excess - 1],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(seq) = last {
            deleted += delete("seq <= ?1", seq)?;
        }
    }
    touched.sort_unstable();
    touched.dedup();
    summary::refresh(&tx, &touched)?;
    summary::mark_current(&tx)?;
    tx.commit()?;
    Ok(deleted)
}

impl Store {
    /// Applies the retention now (it also runs every 10,000 items written).
    pub async fn enforce_retention(&self, retention: Retention) -> Result<usize, String> {
        self.read(move |c| apply_retention(c, retention)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_10_2_id_normalization() {
        let t = "0af7651916cd43dd8448eb211c80319c";
        assert_eq!(
            normalize_id(
                "|0af7651916cd43dd8448eb211c80319c.533cff2d8cc34f77.",
                Some(t)
            ),
            "533cff2d8cc34f77"
        );
        assert_eq!(
            normalize_id("533cff2d8cc34f77", Some(t)),
            "533cff2d8cc34f77"
        );
        // Hierarchical ids and other operations stay as they are (SPEC 10.3).
        assert_eq!(
            normalize_id("|0af7651916cd43dd8448eb211c80319c.1.", Some(t)),
            "|0af7651916cd43dd8448eb211c80319c.1."
        );
        assert_eq!(
            normalize_id(
                "|ffff651916cd43dd8448eb211c80319c.533cff2d8cc34f77.",
                Some(t)
            ),
            "|ffff651916cd43dd8448eb211c80319c.533cff2d8cc34f77."
        );
        assert_eq!(normalize_id("|legacy.1.2_", None), "|legacy.1.2_");
    }
}
