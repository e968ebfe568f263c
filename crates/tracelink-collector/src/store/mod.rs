//! The embedded SQLite database: one `items` table with typed columns for what queries use,
//! plus the raw JSON of every item, and one summary row per operation ([`summary`]) kept in
//! the same transactions.
//!
//! Writes go through one writer thread that commits the items of several requests in one
//! transaction (WAL mode) and acknowledges each request only after its commit: an item that
//! was answered as accepted is on disk. Reads use their own connection.
//!
//! Ids are stored raw and normalized for linking (SPEC 10.2): within operation `T`, a
//! Node-style `|T.S.` is the same id as `S`. Items also belong to operation `T` when their
//! property `ai_legacyRootId` is `T` (SPEC 10.1).

mod row;
pub(crate) mod summary;

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::error::{StoreError, StoreErrorKind};
use crate::ingest::Accepted;
use row::Row;

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

struct Job {
    rows: Vec<Row>,
    done: oneshot::Sender<Result<(), Arc<rusqlite::Error>>>,
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
///
/// The collector writes what it ingests; the reads ([`operations`](Store::operations),
/// [`operation`](Store::operation), [`items`](Store::items), ...) take and return the types
/// of the [`query`](crate::query) module. Clones share the same database.
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
    /// Opens (creating) the database at `path`, and its parent directories.
    ///
    /// Errors are of kind [`StoreErrorKind::Open`].
    pub fn open(path: &Path, retention: Retention) -> Result<Self, StoreError> {
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::open(path, e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.into()))?;
        }
        let conn = open(path).map_err(|e| fail(e.into()))?;
        conn.execute_batch(SCHEMA)
            .and_then(|()| conn.execute_batch(summary::SCHEMA))
            .and_then(|()| summary::rebuild_if_stale(&conn).map(drop))
            // The writer never checkpoints: a second thread moves the WAL into the database,
            // so on two cores writing and checkpointing run side by side.
            .and_then(|()| {
                conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -65536;")
            })
            .map_err(|e| fail(e.into()))?;
        let reader = Arc::new(Mutex::new(open(path).map_err(|e| fail(e.into()))?));
        let checkpointer = open(path).map_err(|e| fail(e.into()))?;
        let alive = Arc::downgrade(&reader);
        std::thread::Builder::new()
            .name("tracelink-collector-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, alive))
            .map_err(|e| fail(e.into()))?;
        let (writer, jobs) = sync_channel::<Job>(256);
        std::thread::Builder::new()
            .name("tracelink-collector-writer".into())
            .spawn(move || write_loop(conn, jobs, retention))
            .map_err(|e| fail(e.into()))?;
        Ok(Self { writer, reader })
    }

    /// Stores rows; resolves once they are committed.
    async fn insert(&self, rows: Vec<Row>) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        let writer = self.writer.clone();
        // The channel is bounded: a full one waits on a blocking thread, not the runtime.
        tokio::task::spawn_blocking(move || writer.send(Job { rows, done }))
            .await
            .map_err(|e| StoreError::new(StoreErrorKind::Write, e))?
            .map_err(|_| StoreError::closed())?;
        wait.await
            .map_err(|_| StoreError::closed())?
            .map_err(|e| StoreError::new(StoreErrorKind::Write, e))
    }

    /// Stores accepted items.
    pub(crate) async fn insert_items(&self, items: Vec<Accepted>) -> Result<(), StoreError> {
        let rows = items
            .into_iter()
            .map(|a| Row::from_item(&a.envelope.telemetry, a.raw))
            .collect();
        self.insert(rows).await
    }

    /// Runs `f` on the read connection, off the runtime's threads; its errors are of `kind`.
    async fn with_reader<T: Send + 'static>(
        &self,
        kind: StoreErrorKind,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::new(kind, e))?
        .map_err(|e| StoreError::new(kind, e))
    }

    /// Runs a query on the read connection, off the runtime's threads (errors of kind
    /// [`StoreErrorKind::Read`]).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.with_reader(StoreErrorKind::Read, f).await
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
        let result = commit(&mut conn, &batch).map_err(Arc::new);
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
fn apply_retention(conn: &Connection, r: Retention) -> rusqlite::Result<usize> {
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
    /// Applies the retention now (it also runs every 10,000 items written) and returns how
    /// many items it deleted. Errors are of kind [`StoreErrorKind::Write`]: nothing was
    /// deleted.
    pub async fn enforce_retention(&self, retention: Retention) -> Result<usize, StoreError> {
        self.with_reader(StoreErrorKind::Write, move |c| {
            apply_retention(c, retention)
        })
        .await
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
