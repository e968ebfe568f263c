//! The embedded SQLite database: one `items` table with typed columns for what queries use,
//! plus the raw JSON of every item, and one summary row per operation ([`summary`]) and the
//! full-text search index ([`search`]) kept in the same transactions.
//!
//! Writes go through one writer thread that commits the items of several requests in one
//! transaction (WAL mode, `synchronous = NORMAL`) and acknowledges each request only after its
//! commit: an item that was answered as accepted is in the WAL, and survives the collector
//! being killed. The WAL is synced to the disk at checkpoints, not at every commit: a power
//! loss or an operating system crash may lose the commits since the last one. Reads use their
//! own connection.
//!
//! The layout is made for writing, since the writer is what limits ingestion: items are
//! appended in sequence, and no index is keyed by random ids, whose entries would land on a
//! different page for each operation of a transaction (and again for each one retention
//! deletes). Items are found by operation through `items.op` ([`OP_BLOCK_BITS`]); the rows
//! per operation are numbered in the order operations arrive and found by the writer through
//! a map in memory ([`summary`]). Queries that look items up by operation id use
//! [`op_match`] with `operation_id = ...`: a condition on `operation_id` alone reads every
//! item.
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
pub(crate) mod search;
pub(crate) mod summary;
mod usage_schema;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::error::{StoreError, StoreErrorKind};
use crate::stats::{self, Counters};
pub(crate) use row::{PAGE_VIEW_PERFORMANCE, Raw, Row, property_text};

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
    raw_len        INTEGER,
    op             INTEGER
);
CREATE TABLE IF NOT EXISTS batches (
    id    INTEGER PRIMARY KEY,
    gzip  INTEGER NOT NULL,
    body  BLOB NOT NULL
);
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

/// Items are found by operation through `items.op`, a key made of the item's block of
/// sequence numbers (`seq >> OP_BLOCK_BITS`) in the high bits and 40 bits of a hash of its
/// operation id ([`op_low`]) in the low ones, and its index `items_op`. A key of random ids
/// alone would put each transaction's entries on as many pages as it has operations, all
/// over the index, and retention's deletions likewise; with the block in front, new entries
/// land in the few pages of the newest block and retention deletes the oldest blocks' pages.
/// A lookup probes each block ([`op_match`]): 61 probes at a million items. Distinct ids can
/// share a key, so lookups also compare `operation_id`.
const OP_BLOCK_BITS: u32 = 14;

/// The low 40 bits of the key of `operation_id` (FNV-1a): see [`OP_BLOCK_BITS`].
pub(crate) fn op_low(operation_id: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in operation_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h & ((1 << 40) - 1)) as i64
}

/// The `op` key of item `seq` of operation `operation_id` (see [`OP_BLOCK_BITS`]).
pub(crate) fn op_key(seq: i64, operation_id: &str) -> i64 {
    ((((seq as u64) >> OP_BLOCK_BITS) << 40) | op_low(operation_id) as u64) as i64
}

/// The condition that reads the items of one operation through `items_op`, given the SQL
/// parameter (`?`, `?2`, ...) that holds its [`op_low`]: one probe per block of sequence
/// numbers in use. Pair it with `operation_id = ...`.
pub(crate) fn op_match(low_param: &str) -> String {
    format!(
        "op IN (WITH RECURSIVE op_blocks(b) AS (
             SELECT (SELECT MIN(seq) FROM items) >> {OP_BLOCK_BITS}
             UNION ALL SELECT b + 1 FROM op_blocks
             WHERE b < (SELECT MAX(seq) FROM items) >> {OP_BLOCK_BITS})
           SELECT (b << 40) | {low_param} FROM op_blocks)"
    )
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
            .and_then(|()| add_operation_hashes(&conn))
            .and_then(|()| search::create(&conn))
            .and_then(|()| conn.execute_batch(summary::SCHEMA))
            .and_then(|()| conn.execute_batch(usage_schema::SCHEMA))
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
        let keys = summary::Keys::load(&conn).map_err(|e| fail(e.into()))?;
        let w = Writer {
            conn,
            keys,
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

const INSERT: &str = "INSERT INTO items (seq, timestamp, ts_ms, item_type, name, id, id_norm, operation_id,
    parent_id, parent_norm, operation_name, cloud_role, role_instance, user_id, session_id,
    duration_ms, success, result_code, target, source, url, legacy_root, raw, batch, raw_at, raw_len, op)
    VALUES (?27, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
    ?20, ?21, ?22, ?23, ?24, ?25, ?26)";

/// One request's rows and body, as the writer commits them.
type Pending = (Vec<Row>, Option<Body>);

fn commit(
    conn: &mut Connection,
    keys: &mut summary::Keys,
    jobs: &[Pending],
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        // Sequence numbers are given here, as SQLite would give them, to make `op` keys.
        let mut seq: i64 =
            tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM items", [], |r| {
                r.get(0)
            })?;
        let mut index = search::Indexer::new(&tx)?;
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
                    op.map(|o| op_key(seq, o)),
                    seq,
                ])?;
                seq += 1;
                index.add(tx.last_insert_rowid(), r)?;
            }
        }
        index.finish()?;
        summary::add_batch(&tx, keys, jobs.iter().flat_map(|(rows, _)| rows.iter()))?;
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

/// Gives every item with an operation id its `op` key ([`op_key`]), and indexes items by it:
/// for a database made before the column (whose index of operation ids is dropped), and for
/// items another program wrote without it.
fn add_operation_hashes(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('items') WHERE name = 'op')",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE items ADD COLUMN op INTEGER;")?;
    }
    let old_index: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'items_operation')",
        [],
        |r| r.get(0),
    )?;
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    if !has || old_index {
        // Filled before the index exists: one pass over the table instead of index updates.
        fill_operation_hashes(&tx)?;
        tx.execute_batch("DROP INDEX IF EXISTS items_operation;")?;
    }
    tx.execute_batch("CREATE INDEX IF NOT EXISTS items_op ON items(op) WHERE op IS NOT NULL;")?;
    tx.commit()
}

/// Sets `op` where another program left it empty (see [`add_operation_hashes`]).
fn fill_operation_hashes(conn: &Connection) -> rusqlite::Result<usize> {
    let missing: Vec<(i64, String)> = conn
        .prepare(
            "SELECT seq, operation_id FROM items NOT INDEXED
             WHERE op IS NULL AND operation_id IS NOT NULL",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut set = conn.prepare("UPDATE items SET op = ?2 WHERE seq = ?1")?;
    for (seq, id) in &missing {
        set.execute(params![seq, op_key(*seq, id)])?;
    }
    Ok(missing.len())
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    /// Where each operation's row is (see [`summary::Keys`]).
    keys: summary::Keys,
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
                let result = commit(&mut self.conn, &mut self.keys, &pending).map_err(Arc::new);
                if let Err(e) = &result {
                    tracing::warn!(target: "tracelink_collector", error = %e, "write failed");
                    self.reload_keys();
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

    /// Reads the keys of the operations' rows again, after a transaction that changed them
    /// in memory was rolled back.
    fn reload_keys(&mut self) {
        match summary::Keys::load(&self.conn) {
            Ok(k) => self.keys = k,
            Err(e) => {
                tracing::warn!(target: "tracelink_collector", error = %e, "reading operation keys failed")
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
        let deleted = match apply_retention(&self.conn, &mut self.keys, r, self.count) {
            Ok(d) => d,
            Err(e) => {
                self.reload_keys();
                return Err(e);
            }
        };
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
fn apply_retention(
    conn: &Connection,
    keys: &mut summary::Keys,
    r: Retention,
    count: u64,
) -> rusqlite::Result<Deleted> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let cutoff = now_ms.saturating_sub(i64::from(r.max_days).saturating_mul(86_400_000));
    // Immediate: the write lock is taken (waiting through the busy timeout) before the
    // snapshot the affected operations are read from.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    // How many items each operation loses.
    let mut touched: HashMap<String, i64> = HashMap::new();
    // The index is named: left to itself, the planner may read the items to delete through
    // another index, whatever the filter.
    let mut delete = |index: &str, filter: &str, value: i64| -> rusqlite::Result<usize> {
        let ids = format!(
            "SELECT operation_id, COUNT(*) FROM items {index}
             WHERE {filter} AND operation_id IS NOT NULL GROUP BY operation_id"
        );
        let mut stmt = tx.prepare_cached(&ids)?;
        for counted in stmt.query_map([value], |row| Ok((row.get(0)?, row.get(1)?)))? {
            let (id, n): (String, i64) = counted?;
            *touched.entry(id).or_default() += n;
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
    summary::remove(&tx, keys, &touched)?;
    search::prune(&tx)?;
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

    fn row(op: &str, ts_ms: i64, name: &str) -> Row {
        Row {
            timestamp: format!("t{ts_ms:013}"),
            ts_ms,
            item_type: "request".into(),
            name: Some(name.into()),
            id: Some(format!("{op}-{ts_ms}")),
            operation_id: Some(op.into()),
            raw: Raw::Text("{}".into()),
            ..Row::default()
        }
    }

    /// An operation whose items are far apart in sequence (in different blocks of `op` keys)
    /// is found whole; its row follows inserts and a retention that deletes part of it, and
    /// equals what a rebuild from the items gives.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_across_key_blocks() {
        let path =
            std::env::temp_dir().join(format!("tracelink-store-blocks-{}.db", std::process::id()));
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let now = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let store = Store::open(&path, Retention::default()).unwrap();
        store
            .insert(vec![row("far", now, "first")], None)
            .await
            .unwrap();
        let filler = 1 << OP_BLOCK_BITS;
        for chunk in 0..4 {
            let rows = (0..filler / 4)
                .map(|i| row(&format!("op{chunk}-{}", i / 5), now + 1, "x"))
                .collect();
            store.insert(rows, None).await.unwrap();
        }
        store
            .insert(vec![row("far", now + 2, "second")], None)
            .await
            .unwrap();
        let tree = store.operation("far").await.unwrap().unwrap();
        assert_eq!(tree.items.len(), 2);
        let seqs: Vec<i64> = tree.items.iter().map(|i| i.seq).collect();
        assert_ne!(
            seqs[0] >> OP_BLOCK_BITS,
            seqs[1] >> OP_BLOCK_BITS,
            "{seqs:?}"
        );
        type Op = (
            String,
            i64,
            f64,
            String,
            bool,
            i64,
            i64,
            i64,
            Option<String>,
            String,
        );
        let summary = |store: Store| async move {
            store
                .read(|c| {
                    c.prepare(
                        "SELECT operation_id, start_ms, end_ms, roles, failed, items, root_rank,
                                root_ts, root_name, start
                         FROM operations ORDER BY operation_id",
                    )?
                    .query_map([], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                            r.get(8)?,
                            r.get(9)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<Op>>>()
                })
                .await
                .unwrap()
        };
        let far = |ops: &[Op]| {
            ops.iter()
                .find(|o| o.0 == "far")
                .map(|o| (o.5, o.8.clone()))
        };
        let ops = summary(store.clone()).await;
        assert_eq!(far(&ops), Some((2, Some("first".into()))));
        // The oldest items go, the first of "far" with them: its row is recomputed.
        let left = 1 + filler as u64 / 2;
        store
            .enforce_retention(Retention::default().items(left))
            .await
            .unwrap();
        let ops = summary(store.clone()).await;
        assert_eq!(far(&ops), Some((1, Some("second".into()))));
        assert_eq!(ops.iter().map(|o| o.5).sum::<i64>(), left as i64);
        store.close().await;
        // The same rows as a rebuild from the items.
        let conn = Connection::open(&path).unwrap();
        conn.execute("DELETE FROM operations_state", []).unwrap();
        drop(conn);
        let reopened = Store::open(&path, Retention::default()).unwrap();
        assert_eq!(summary(reopened.clone()).await, ops);
        // And new items of a known operation are merged into its row.
        reopened
            .insert(vec![row("far", now + 3, "third")], None)
            .await
            .unwrap();
        let ops = summary(reopened.clone()).await;
        assert_eq!(far(&ops).map(|o| o.0), Some(2));
        reopened.close().await;
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
    }
}
