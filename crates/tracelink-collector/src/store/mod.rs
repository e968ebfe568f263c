//! The embedded SQLite database: one `items` table with typed columns for what queries use,
//! plus the raw JSON of every item, and one summary row per operation ([`summary`]) kept in
//! the same transactions.
//!
//! Writes go through one writer thread that commits the items of several requests in one
//! transaction (WAL mode, `synchronous = NORMAL`) and acknowledges each request only after its
//! commit: an item that was answered as accepted is in the WAL, and survives the collector
//! being killed. Reads use their own connection.
//!
//! Disk use is bounded: a checkpointer thread moves the WAL into the database continuously,
//! and once the WAL reaches its limit the writer checkpoints it fully between two
//! transactions and starts it over; the file is cut back to the limit, and truncated when the
//! store is [closed](Store::close). The database itself is bounded by [`Retention`]: days,
//! items and bytes, oldest first.
//!
//! Ids are stored raw and normalized for linking (SPEC 10.2): within operation `T`, a
//! Node-style `|T.S.` is the same id as `S`. Items also belong to operation `T` when their
//! property `ai_legacyRootId` is `T` (SPEC 10.1).

mod row;
pub(crate) mod summary;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::error::{StoreError, StoreErrorKind};
use crate::stats::{self, Counters};
pub(crate) use row::{PAGE_VIEW_PERFORMANCE, Raw, Row};

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
    raw            TEXT NOT NULL,
    batch          INTEGER,
    raw_at         INTEGER,
    raw_len        INTEGER
);
CREATE TABLE IF NOT EXISTS batches (
    id    INTEGER PRIMARY KEY,
    gzip  INTEGER NOT NULL,
    body  BLOB NOT NULL
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

/// A request body stored as received, which rows point into ([`Raw::Body`]).
#[derive(Debug)]
pub(crate) struct Body {
    pub(crate) bytes: bytes::Bytes,
    pub(crate) gzip: bool,
}

enum Job {
    Insert {
        rows: Vec<Row>,
        body: Option<Body>,
        done: oneshot::Sender<Result<(), Arc<rusqlite::Error>>>,
    },
    Retention {
        retention: Retention,
        done: oneshot::Sender<Result<usize, Arc<rusqlite::Error>>>,
    },
}

/// Limits on what the database keeps. Each is enforced oldest first, and every deleted item
/// is counted by reason ([`Stats`](crate::Stats)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Items older than this many days are deleted.
    pub max_days: u32,
    /// At most this many items are kept; the oldest go first.
    pub max_items: u64,
    /// The database's pages in use are kept within this many bytes: beyond it, the oldest
    /// items are deleted until a fiftieth of it is free again (the file keeps its size and
    /// reuses the freed pages; the WAL is bounded on its own, see [`DEFAULT_WAL_LIMIT`]).
    pub max_bytes: u64,
}

impl Default for Retention {
    /// 7 days, 1,000,000 items, 1 GiB.
    fn default() -> Self {
        Self {
            max_days: 7,
            max_items: 1_000_000,
            max_bytes: 1 << 30,
        }
    }
}

impl Retention {
    /// Keeps items for this many days.
    pub fn days(mut self, days: u32) -> Self {
        self.max_days = days;
        self
    }

    /// Keeps at most this many items.
    pub fn items(mut self, items: u64) -> Self {
        self.max_items = items;
        self
    }

    /// Keeps the database's pages in use within this many bytes.
    pub fn bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }
}

/// The WAL size at which the writer checkpoints it fully and starts it over: 64 MiB. A
/// second thread checkpoints continuously without blocking the writer, but under sustained
/// writes it never catches up entirely, and SQLite only starts the WAL over once it has.
pub const DEFAULT_WAL_LIMIT: u64 = 64 << 20;

/// The database: a writer thread, a checkpointer thread and a read connection.
///
/// The collector writes what it ingests; the reads ([`operations`](Store::operations),
/// [`operation`](Store::operation), [`items`](Store::items), ...) take and return the types
/// of the [`query`](crate::query) module. Clones share the same database.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    reader: Arc<Mutex<Connection>>,
    counters: Arc<Counters>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
}

impl Shared {
    fn stop_checkpointer(&self) {
        self.stop.store(true, Ordering::Release);
        for t in lock(&self.threads).iter() {
            t.thread().unpark();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The writer ends once its channel is closed (dropped with this); the checkpointer
        // once told to stop, with a last checkpoint that truncates the WAL.
        self.stop_checkpointer();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

impl Store {
    /// Opens (creating) the database at `path`, and its parent directories, with the WAL
    /// limited to [`DEFAULT_WAL_LIMIT`].
    ///
    /// Errors are of kind [`StoreErrorKind::Open`].
    pub fn open(path: &Path, retention: Retention) -> Result<Self, StoreError> {
        Self::open_with(path, retention, DEFAULT_WAL_LIMIT)
    }

    pub(crate) fn open_with(
        path: &Path,
        retention: Retention,
        wal_limit: u64,
    ) -> Result<Self, StoreError> {
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::open(path, e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.into()))?;
        }
        let conn = open(path).map_err(|e| fail(e.into()))?;
        let count = conn
            .execute_batch(SCHEMA)
            .and_then(|()| add_body_columns(&conn))
            .and_then(|()| conn.execute_batch(summary::SCHEMA))
            .and_then(|()| summary::rebuild_if_stale(&conn).map(drop))
            // The writer never checkpoints on its own: a second thread moves the WAL into the
            // database, so on two cores writing and checkpointing run side by side. After the
            // writer restarts the WAL, the file is cut back to the limit.
            .and_then(|()| {
                conn.execute_batch(&format!(
                    "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -65536;
                     PRAGMA journal_size_limit = {wal_limit};"
                ))
            })
            .and_then(|()| conn.query_row("SELECT COUNT(*) FROM items", [], |r| r.get::<_, i64>(0)))
            .map_err(|e| fail(e.into()))?;
        let (writer, jobs) = mpsc::channel::<Job>(64);
        let mut threads = Vec::new();
        let reader = Arc::new(Mutex::new(open(path).map_err(|e| fail(e.into()))?));
        let checkpointer = open(path).map_err(|e| fail(e.into()))?;
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name("tracelink-collector-checkpoint".into())
                .spawn(move || checkpoint_loop(checkpointer, stopped))
                .map_err(|e| fail(e.into()))?,
        );
        let w = Writer {
            conn,
            retention,
            count: count.max(0) as u64,
            since_retention: 0,
            wal: std::path::PathBuf::from(format!("{}-wal", path.display())),
            wal_limit,
            counters: counters.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name("tracelink-collector-writer".into())
                .spawn(move || w.run(jobs))
                .map_err(|e| fail(e.into()))?,
        );
        Ok(Self {
            shared: Arc::new(Shared {
                writer: Mutex::new(Some(writer)),
                reader,
                counters,
                threads: Mutex::new(threads),
                stop,
            }),
        })
    }

    fn sender(&self) -> Result<mpsc::Sender<Job>, StoreError> {
        lock(&self.shared.writer)
            .clone()
            .ok_or_else(StoreError::closed)
    }

    /// Stores rows, and the body their envelopes are in; resolves once they are committed.
    pub(crate) async fn insert(
        &self,
        rows: Vec<Row>,
        body: Option<Body>,
    ) -> Result<(), StoreError> {
        let n = rows.len() as u64;
        let (done, wait) = oneshot::channel();
        self.sender()?
            .send(Job::Insert { rows, body, done })
            .await
            .map_err(|_| StoreError::closed())?;
        wait.await
            .map_err(|_| StoreError::closed())?
            .map_err(|e| StoreError::new(StoreErrorKind::Write, e))?;
        stats::add(&self.shared.counters.items_accepted, n);
        Ok(())
    }

    /// The counters of this database and the collector writing to it.
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.shared.counters
    }

    /// What was stored, refused and deleted since the store was opened (see [`Stats`]).
    ///
    /// [`Stats`]: crate::Stats
    pub fn stats(&self) -> crate::Stats {
        self.shared.counters.snapshot()
    }

    /// Stops writing: what was sent is committed, the WAL is checkpointed into the database
    /// and truncated, and the writer and checkpointer threads have ended when this returns.
    /// Later writes fail with [`StoreErrorKind::Closed`]; reads go on.
    pub async fn close(&self) {
        drop(lock(&self.shared.writer).take());
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let threads = std::mem::take(&mut *lock(&shared.threads));
            // The writer first: the checkpointer's last checkpoint then holds everything.
            let mut threads = threads.into_iter().rev();
            if let Some(writer) = threads.next() {
                let _ = writer.join();
            }
            shared.stop.store(true, Ordering::Release);
            for t in threads {
                t.thread().unpark();
                let _ = t.join();
            }
        })
        .await;
    }

    /// Runs `f` on the read connection, off the runtime's threads; its errors are of `kind`.
    async fn with_reader<T: Send + 'static>(
        &self,
        kind: StoreErrorKind,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.shared.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = lock(&reader);
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
    duration_ms, success, result_code, target, source, url, legacy_root, raw, batch, raw_at, raw_len)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
    ?21, ?22, ?23, ?24, ?25)";

/// One request's rows and body, as the writer commits them.
type Pending = (Vec<Row>, Option<Body>);

fn commit(conn: &mut Connection, jobs: &[Pending]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(INSERT)?;
        let mut batch = tx.prepare_cached("INSERT INTO batches (gzip, body) VALUES (?1, ?2)")?;
        for (rows, body) in jobs {
            let batch_id = match body {
                Some(b) => {
                    batch.execute(params![b.gzip, &b.bytes[..]])?;
                    Some(tx.last_insert_rowid())
                }
                None => None,
            };
            for r in rows {
                let op = r.operation_id.as_deref();
                let (text, at, len) = match (&r.raw, batch_id) {
                    (Raw::Body { at, len }, Some(_)) => ("", Some(*at as i64), Some(*len as i64)),
                    (Raw::Text(t), _) => (t.as_str(), None, None),
                    (Raw::Body { .. }, None) => ("", None, None),
                };
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
                    text,
                    at.and(batch_id),
                    at,
                    len,
                ])?;
            }
        }
        summary::add_batch(&tx, jobs.iter().flat_map(|(rows, _)| rows.iter()))?;
    }
    summary::mark_current(&tx)?;
    tx.commit()
}

/// Adds the columns that point into stored bodies to a database made before them.
fn add_body_columns(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('items') WHERE name = 'batch')",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch(
            "ALTER TABLE items ADD COLUMN batch INTEGER;
             ALTER TABLE items ADD COLUMN raw_at INTEGER;
             ALTER TABLE items ADD COLUMN raw_len INTEGER;",
        )?;
    }
    Ok(())
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    retention: Retention,
    /// Items in the database (counted once on open, then kept).
    count: u64,
    since_retention: usize,
    /// The WAL file, and the size beyond which the writer starts it over: after a restart it
    /// is cut back to this size, so a larger file has outgrown the limit since.
    wal: std::path::PathBuf,
    wal_limit: u64,
    counters: Arc<Counters>,
}

impl Writer {
    fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.blocking_recv() {
            // Group commit: everything already waiting goes in the same transaction.
            let mut batch = Vec::new();
            let mut rows = 0;
            let mut later = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Insert {
                        rows: r,
                        body,
                        done,
                    } => {
                        rows += r.len();
                        batch.push(((r, body), done));
                    }
                    retention @ Job::Retention { .. } => later.push(retention),
                }
                if rows < 20_000 {
                    next = jobs.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                let (pending, done): (Vec<Pending>, Vec<_>) = batch.into_iter().unzip();
                let result = commit(&mut self.conn, &pending).map_err(Arc::new);
                if let Err(e) = &result {
                    tracing::warn!(target: "tracelink_collector", error = %e, "write failed");
                } else {
                    self.count += rows as u64;
                    self.since_retention += rows;
                }
                drop(pending);
                for done in done {
                    let _ = done.send(result.clone());
                }
            }
            for job in later {
                if let Job::Retention { retention, done } = job {
                    let _ = done.send(self.retain(retention).map_err(Arc::new));
                }
            }
            if self.since_retention >= 10_000 || self.over_bytes() {
                self.since_retention = 0;
                if let Err(e) = self.retain(self.retention) {
                    tracing::warn!(target: "tracelink_collector", error = %e, "retention failed");
                }
            }
            if std::fs::metadata(&self.wal).is_ok_and(|m| m.len() > self.wal_limit) {
                // Between transactions, with no other writer: the WAL is checkpointed to its
                // end and starts over with the next commit.
                match self
                    .conn
                    .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0))
                {
                    Ok(0) => stats::add(&self.counters.wal_restarts, 1),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(target: "tracelink_collector", error = %e, "checkpoint failed")
                    }
                }
            }
        }
    }

    /// Whether the pages in use exceed the retention's bytes (read from the database header:
    /// cheap enough for every transaction).
    fn over_bytes(&self) -> bool {
        let used = self.conn.query_row(
            "SELECT (page_count - freelist_count) * page_size
             FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()",
            [],
            |r| r.get::<_, i64>(0),
        );
        used.is_ok_and(|u| u.max(0) as u64 > self.retention.max_bytes)
    }

    /// Applies `r` and counts what it deleted.
    fn retain(&mut self, r: Retention) -> rusqlite::Result<usize> {
        let deleted = apply_retention(&self.conn, r, self.count)?;
        self.count = self.count.saturating_sub(deleted.total() as u64);
        stats::add(&self.counters.deleted_by_age, deleted.age as u64);
        stats::add(&self.counters.deleted_by_count, deleted.count as u64);
        stats::add(&self.counters.deleted_by_size, deleted.size as u64);
        Ok(deleted.total())
    }
}

/// Checkpoints the WAL every 100 ms (passive: it never blocks the writer); once stopped,
/// checkpoints it all and truncates it.
fn checkpoint_loop(conn: Connection, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        std::thread::park_timeout(Duration::from_millis(100));
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0)) {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(target: "tracelink_collector", error = %e, "checkpoint failed")
            }
        }
    }
    // A last full checkpoint leaves a compact database behind.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
}

/// Items deleted by one run of the retention, by reason.
#[derive(Clone, Copy, Debug, Default)]
struct Deleted {
    age: usize,
    count: usize,
    size: usize,
}

impl Deleted {
    fn total(&self) -> usize {
        self.age + self.count + self.size
    }
}

/// Deletes items older than the retention's days, then the oldest beyond its count, then the
/// oldest while the pages in use exceed its bytes, and brings the rows of the operations they
/// belonged to up to date: all in one transaction. `count` is how many items there are.
fn apply_retention(conn: &Connection, r: Retention, count: u64) -> rusqlite::Result<Deleted> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let cutoff = now_ms.saturating_sub(i64::from(r.max_days).saturating_mul(86_400_000));
    // Immediate: the write lock is taken (waiting through the busy timeout) before the
    // snapshot the affected operations are read from.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let mut touched: Vec<String> = Vec::new();
    // The index is named: left to itself, the planner answers `DISTINCT operation_id` with a
    // scan of the whole `items_operation` index, whatever the filter.
    let mut delete = |index: &str, filter: &str, value: i64| -> rusqlite::Result<usize> {
        let ids = format!(
            "SELECT DISTINCT operation_id FROM items {index} WHERE {filter} AND operation_id IS NOT NULL"
        );
        let mut stmt = tx.prepare_cached(&ids)?;
        for id in stmt.query_map([value], |row| row.get(0))? {
            touched.push(id?);
        }
        tx.prepare_cached(&format!("DELETE FROM items {index} WHERE {filter}"))?
            .execute([value])
    };
    // The oldest `n` items: those up to the sequence number of the `n`th.
    let oldest = |n: u64| -> rusqlite::Result<Option<i64>> {
        tx.query_row(
            "SELECT seq FROM items ORDER BY seq LIMIT 1 OFFSET ?1",
            [n.saturating_sub(1) as i64],
            |row| row.get(0),
        )
        .optional()
    };
    let mut deleted = Deleted {
        age: delete("INDEXED BY items_ts", "ts_ms < ?1", cutoff)?,
        ..Deleted::default()
    };
    let mut left = count.saturating_sub(deleted.age as u64);
    let excess = left.saturating_sub(r.max_items);
    if excess > 0
        && let Some(seq) = oldest(excess)?
    {
        deleted.count = delete("NOT INDEXED", "seq <= ?1", seq)?;
        left = left.saturating_sub(deleted.count as u64);
    }
    let number = |sql: &str| tx.query_row(sql, [], |row| row.get::<_, i64>(0));
    let used = (number("PRAGMA page_count")? - number("PRAGMA freelist_count")?).max(0) as u64
        * number("PRAGMA page_size")?.max(0) as u64;
    if used > r.max_bytes && left > 0 {
        // Down to 98 % of the limit, by the mean size of an item: small steps, each a short
        // pause for the writer.
        let per_item = (used / left).max(1);
        let n = (used - r.max_bytes + r.max_bytes / 50).div_ceil(per_item);
        if let Some(seq) = oldest(n.min(left))? {
            deleted.size = delete("NOT INDEXED", "seq <= ?1", seq)?;
        }
    }
    if deleted.total() == 0 {
        return Ok(deleted);
    }
    touched.sort_unstable();
    touched.dedup();
    summary::refresh(&tx, &touched)?;
    // Bodies older than the oldest item that points into one are no longer needed.
    tx.execute(
        "DELETE FROM batches WHERE id < COALESCE(
            (SELECT batch FROM items WHERE batch IS NOT NULL ORDER BY seq LIMIT 1),
            (SELECT MAX(id) + 1 FROM batches))",
        [],
    )?;
    summary::mark_current(&tx)?;
    tx.commit()?;
    Ok(deleted)
}

impl Store {
    /// Applies the retention now, in the writer (it also runs every 10,000 items written), and
    /// returns how many items it deleted. Errors are of kind [`StoreErrorKind::Write`]: nothing
    /// was deleted.
    pub async fn enforce_retention(&self, retention: Retention) -> Result<usize, StoreError> {
        let (done, wait) = oneshot::channel();
        self.sender()?
            .send(Job::Retention { retention, done })
            .await
            .map_err(|_| StoreError::closed())?;
        wait.await
            .map_err(|_| StoreError::closed())?
            .map_err(|e| StoreError::new(StoreErrorKind::Write, e))
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
