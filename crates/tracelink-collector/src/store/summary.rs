//! The `operations` table: one row per operation, kept up to date as items are written and
//! deleted, so that the list of recent operations is an indexed read of one page instead of
//! a grouping of every stored item (a million items by default).
//!
//! Each row holds what the list shows: first start, last end, the roles (each between two
//! [`ROLE_SEP`]s, so that a role is found with `instr`; role names may hold commas), whether
//! any item failed, the item count, the root's name (the first request or page view without
//! a parent, else the first request or page view, else the first item; ties by time: a
//! browser's page view is the root of the operation it starts) and the first item's
//! timestamp. The writer merges the items of a transaction per operation and writes each
//! operation's row once.
//!
//! Rows are keyed by a number given in the order operations are first seen (`key`), not by
//! their random ids: a new operation's row is appended, and retention, which deletes the
//! oldest operations, deletes from the front of the table. The writer finds an operation's
//! row through [`Keys`], a map in memory from a hash of the id to the key (checked against
//! the row's id), loaded on open: no index of random ids is written at all. Readers list
//! operations through the start-time indexes, and find an operation's items through the
//! items' own index (see `op_key` in the parent module).
//!
//! `operations_state` holds the sequence number of the newest item the rows account for. On
//! open, rows that do not account for the items (their count differs, or a newer item is
//! there) are rebuilt from the items: another program may have written or deleted items
//! without keeping the rows, a collector older than the table for one.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use rusqlite::{Connection, OptionalExtension, params};

use super::row::Row;

/// What separates the roles of an operation: the ASCII unit separator, which no role name
/// holds.
pub(crate) const ROLE_SEP: char = '\u{1f}';

/// The version of the rules the rows are computed by (`PRAGMA user_version`): 1, page views
/// rank as roots like requests; 2, rows keyed by `key` instead of the operation id (the
/// table is made again).
const RULES_VERSION: i64 = 2;

/// The table and its indexes.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS operations (
    key          INTEGER PRIMARY KEY,
    operation_id TEXT NOT NULL,
    start_ms     INTEGER NOT NULL,
    end_ms       REAL NOT NULL,
    roles        TEXT NOT NULL,
    failed       INTEGER NOT NULL,
    items        INTEGER NOT NULL,
    root_rank    INTEGER NOT NULL,
    root_ts      INTEGER NOT NULL,
    root_name    TEXT,
    start        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_start ON operations(start_ms, operation_id);
CREATE INDEX IF NOT EXISTS operations_failed ON operations(start_ms, operation_id) WHERE failed != 0;
CREATE TABLE IF NOT EXISTS operations_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
);
";

/// Writes one operation's row.
const WRITE: &str = "
INSERT OR REPLACE INTO operations (key, operation_id, start_ms, end_ms, roles, failed, items, root_rank, root_ts, root_name, start)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// Where each operation's row is, for the writer: the row's `key` by a hash of the operation
/// id (keyed at random per process, so that no sender can make ids collide on purpose), and
/// the keys of the ids whose hash another id had first (practically never any). A key found
/// here is checked against the row's `operation_id`; a map that disagrees with the table
/// (after a failed transaction) is [loaded](Keys::load) again.
pub(super) struct Keys {
    by_hash: HashMap<u64, i64>,
    collided: HashMap<String, i64>,
    hasher: RandomState,
    next: i64,
}

impl Keys {
    /// The keys of the rows in the table.
    pub(super) fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let mut keys = Keys {
            by_hash: HashMap::new(),
            collided: HashMap::new(),
            hasher: RandomState::new(),
            next: 1,
        };
        let mut stmt = conn.prepare("SELECT key, operation_id FROM operations")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key: i64 = r.get(0)?;
            let id: String = r.get(1)?;
            keys.insert(&id, key);
            keys.next = keys.next.max(key.saturating_add(1));
        }
        Ok(keys)
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The key the row of `id` may have (to be checked against the row).
    fn find(&self, id: &str) -> Option<i64> {
        if !self.collided.is_empty()
            && let Some(k) = self.collided.get(id)
        {
            return Some(*k);
        }
        self.by_hash.get(&self.hash(id)).copied()
    }

    /// Records that the row of `id` has `key`; a hash that another id has is kept apart.
    fn insert(&mut self, id: &str, key: i64) {
        let h = self.hash(id);
        match self.by_hash.get(&h) {
            Some(k) if *k != key => {
                self.collided.insert(id.to_owned(), key);
            }
            _ => {
                self.by_hash.insert(h, key);
            }
        }
    }

    /// Records that the row of `id` (with `key`) is gone.
    fn remove(&mut self, id: &str, key: i64) {
        if self.collided.remove(id).is_some() {
            return;
        }
        let h = self.hash(id);
        if self.by_hash.get(&h) == Some(&key) {
            self.by_hash.remove(&h);
        }
    }

    /// A key for a new row.
    fn take_next(&mut self) -> i64 {
        let k = self.next;
        self.next += 1;
        k
    }
}

/// The row of `id`, with its key, when there is one (found through `keys`).
fn stored(conn: &Connection, keys: &Keys, id: &str) -> rusqlite::Result<Option<(i64, Summary)>> {
    let Some(key) = keys.find(id) else {
        return Ok(None);
    };
    let mut read = conn.prepare_cached(
        "SELECT operation_id, start_ms, end_ms, roles, failed, items, root_rank, root_ts, root_name, start
         FROM operations WHERE key = ?1",
    )?;
    let row = read
        .query_row([key], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Summary {
                    start_ms: r.get(1)?,
                    end_ms: r.get(2)?,
                    roles: r.get(3)?,
                    failed: r.get(4)?,
                    items: r.get(5)?,
                    root_rank: r.get(6)?,
                    root_ts: r.get(7)?,
                    root_name: r.get(8)?,
                    start: r.get(9)?,
                },
            ))
        })
        .optional()?;
    Ok(row
        .filter(|(stored, _)| stored == id)
        .map(|(_, s)| (key, s)))
}

/// Writes the row of `id`: under `key` when it has one, else under a new key.
fn write(
    conn: &Connection,
    keys: &mut Keys,
    id: &str,
    key: Option<i64>,
    s: &Summary,
) -> rusqlite::Result<()> {
    let key = match key {
        Some(k) => k,
        None => {
            let k = keys.take_next();
            keys.insert(id, k);
            k
        }
    };
    conn.prepare_cached(WRITE)?.execute(params![
        key,
        id,
        s.start_ms,
        s.end_ms,
        s.roles,
        s.failed,
        s.items,
        s.root_rank,
        s.root_ts,
        s.root_name,
        s.start
    ])?;
    Ok(())
}

/// How an item ranks as its operation's root, lowest first: a request or page view without
/// a parent, a request or page view with one, any other item without a parent, any other.
fn rank(r: &Row) -> i64 {
    rank_of(&r.item_type, r.parent_id.is_some())
}

fn rank_of(item_type: &str, has_parent: bool) -> i64 {
    i64::from(item_type != "request" && item_type != "pageView") * 2 + i64::from(has_parent)
}

/// One operation's row.
struct Summary {
    start_ms: i64,
    end_ms: f64,
    roles: String,
    failed: bool,
    items: i64,
    root_rank: i64,
    root_ts: i64,
    root_name: Option<String>,
    start: String,
}

impl Summary {
    fn of(r: &Row) -> Self {
        let mut roles = String::from(ROLE_SEP);
        if let Some(role) = &r.cloud_role {
            roles.push_str(role);
            roles.push(ROLE_SEP);
        }
        Self {
            start_ms: r.ts_ms,
            end_ms: r.ts_ms as f64 + r.duration_ms.unwrap_or(0.0),
            roles,
            failed: r.success == Some(false),
            items: 1,
            root_rank: rank(r),
            root_ts: r.ts_ms,
            root_name: r.name.clone(),
            start: r.timestamp.clone(),
        }
    }

    /// Merges `later`, whose items were written after this row's: ties keep this row's root
    /// and start, as the rows rebuilt from items order ties by sequence number.
    fn merge(&mut self, later: Summary) {
        if later.start_ms < self.start_ms {
            self.start_ms = later.start_ms;
            self.start = later.start;
        }
        self.end_ms = self.end_ms.max(later.end_ms);
        for role in later.roles.split(ROLE_SEP).filter(|r| !r.is_empty()) {
            let mut needle = String::with_capacity(role.len() + 2);
            needle.push(ROLE_SEP);
            needle.push_str(role);
            needle.push(ROLE_SEP);
            if !self.roles.contains(&needle) {
                self.roles.push_str(role);
                self.roles.push(ROLE_SEP);
            }
        }
        self.failed |= later.failed;
        self.items += later.items;
        if (later.root_rank, later.root_ts) < (self.root_rank, self.root_ts) {
            self.root_rank = later.root_rank;
            self.root_ts = later.root_ts;
            self.root_name = later.root_name;
        }
    }
}

/// Adds written items to their operations' rows (inside the writer's transaction): merged
/// per operation first, then one read (for operations seen before) and one write per
/// operation.
pub(super) fn add_batch<'a>(
    conn: &Connection,
    keys: &mut Keys,
    rows: impl Iterator<Item = &'a Row>,
) -> rusqlite::Result<()> {
    let mut merged: Vec<(&str, Summary)> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for r in rows {
        let Some(op) = r.operation_id.as_deref() else {
            continue;
        };
        match at.get(op) {
            Some(&i) => merged[i].1.merge(Summary::of(r)),
            None => {
                at.insert(op, merged.len());
                merged.push((op, Summary::of(r)));
            }
        }
    }
    // New operations get keys in the order their first items came.
    for (op, batch) in merged {
        match stored(conn, keys, op)? {
            Some((key, mut s)) => {
                s.merge(batch);
                write(conn, keys, op, Some(key), &s)?;
            }
            None => write(conn, keys, op, None, &batch)?,
        }
    }
    Ok(())
}

/// Takes deleted items off their operations' rows (inside the retention's transaction):
/// `deleted` holds each operation's number of deleted items. A row left with no items is
/// deleted; the rows of operations that keep some items are recomputed ([`refresh`]).
/// Retention deletes the oldest items, so most operations lose all their items at once and
/// cost one write instead of a read of their remaining items.
pub(super) fn remove(
    conn: &Connection,
    keys: &mut Keys,
    deleted: &HashMap<String, i64>,
) -> rusqlite::Result<()> {
    let mut take = conn.prepare_cached(
        "UPDATE operations SET items = items - ?2 WHERE key = ?1 AND operation_id = ?3
         RETURNING items",
    )?;
    let mut delete = conn.prepare_cached("DELETE FROM operations WHERE key = ?1")?;
    let mut partly: Vec<&str> = Vec::new();
    for (id, n) in deleted {
        let left: Option<(i64, i64)> = match keys.find(id) {
            Some(key) => take
                .query_row(params![key, n, id], |r| Ok((key, r.get(0)?)))
                .optional()?,
            None => None,
        };
        match left {
            Some((key, left)) if left <= 0 => {
                delete.execute([key])?;
                keys.remove(id, key);
            }
            _ => partly.push(id),
        }
    }
    partly.sort_unstable();
    refresh(conn, keys, &partly)
}

/// Recomputes the rows of these operations from their items, after some were deleted; an
/// operation with no items left loses its row. One indexed read of each operation's items,
/// merged as [`add_batch`] merges them (in sequence order, so ties go to the earlier item, as
/// in a rebuild).
fn refresh(conn: &Connection, keys: &mut Keys, ids: &[&str]) -> rusqlite::Result<()> {
    let mut items = conn.prepare_cached(&format!(
        "SELECT item_type, parent_id IS NOT NULL, ts_ms, duration_ms, cloud_role, success, name,
                timestamp
         FROM items WHERE {} AND operation_id = ?1 ORDER BY seq",
        super::op_match("?2")
    ))?;
    let mut delete = conn.prepare_cached("DELETE FROM operations WHERE key = ?1")?;
    for &id in ids {
        let key = stored(conn, keys, id)?.map(|(k, _)| k);
        let mut merged: Option<Summary> = None;
        let mut rows = items.query(params![id, super::op_low(id)])?;
        while let Some(r) = rows.next()? {
            let s = summary_of_columns(r)?;
            match &mut merged {
                Some(m) => m.merge(s),
                None => merged = Some(s),
            }
        }
        match (merged, key) {
            (Some(s), key) => write(conn, keys, id, key, &s)?,
            (None, Some(key)) => {
                delete.execute([key])?;
                keys.remove(id, key);
            }
            (None, None) => {}
        }
    }
    Ok(())
}

/// One item's summary from the columns `item_type, parent_id IS NOT NULL, ts_ms,
/// duration_ms, cloud_role, success, name, timestamp`.
fn summary_of_columns(r: &rusqlite::Row<'_>) -> rusqlite::Result<Summary> {
    let item_type: String = r.get(0)?;
    let has_parent: bool = r.get(1)?;
    let role: Option<String> = r.get(4)?;
    let ts_ms: i64 = r.get(2)?;
    let mut roles = String::from(ROLE_SEP);
    if let Some(role) = role {
        roles.push_str(&role);
        roles.push(ROLE_SEP);
    }
    Ok(Summary {
        start_ms: ts_ms,
        end_ms: ts_ms as f64 + r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
        roles,
        failed: r.get::<_, Option<bool>>(5)? == Some(false),
        items: 1,
        root_rank: rank_of(&item_type, has_parent),
        root_ts: ts_ms,
        root_name: r.get(6)?,
        start: r.get(7)?,
    })
}

/// Records that the rows account for every item written so far (in the transaction that
/// wrote or deleted them).
pub(super) fn mark_current(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO operations_state (id, last_seq) VALUES (1, (SELECT COALESCE(MAX(seq), 0) FROM items))
         ON CONFLICT(id) DO UPDATE SET last_seq = excluded.last_seq",
    )?
    .execute([])?;
    Ok(())
}

/// Rebuilds the rows from the items unless they account for them: the newest item is the one
/// they were last brought up to date with, and they count as many items as there are.
/// Returns whether it rebuilt.
pub(super) fn rebuild_if_stale(conn: &Connection) -> rusqlite::Result<bool> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < RULES_VERSION {
        // Rows written under an older rule, or keyed by the operation id, are made again.
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch("DROP TABLE IF EXISTS operations;")?;
        tx.execute_batch(SCHEMA)?;
        tx.execute("DELETE FROM operations_state", [])?;
        tx.execute_batch(&format!("PRAGMA user_version = {RULES_VERSION}"))?;
        tx.commit()?;
    }
    // Checked in one snapshot, without the write lock: a writer committing between the reads
    // must not make current rows look stale.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Deferred)?;
    let current = is_current(&tx)?;
    tx.commit()?;
    if current {
        return Ok(false);
    }
    // Checked again with the write lock taken: another process may have rebuilt meanwhile.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    if is_current(&tx)? {
        return Ok(false);
    }
    super::fill_operation_hashes(&tx)?;
    tx.execute("DELETE FROM operations", [])?;
    // Every item in sequence order, merged per operation as the writer merges them.
    let mut merged: Vec<(String, Summary)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    {
        let mut stmt = tx.prepare(
            "SELECT item_type, parent_id IS NOT NULL, ts_ms, duration_ms, cloud_role, success,
                    name, timestamp, operation_id
             FROM items WHERE operation_id IS NOT NULL ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let s = summary_of_columns(r)?;
            let id: String = r.get(8)?;
            match at.get(&id) {
                Some(&i) => merged[i].1.merge(s),
                None => {
                    at.insert(id.clone(), merged.len());
                    merged.push((id, s));
                }
            }
        }
    }
    drop(at);
    let mut keys = Keys::load(&tx)?;
    for (id, s) in &merged {
        write(&tx, &mut keys, id, None, s)?;
    }
    mark_current(&tx)?;
    tx.commit()?;
    Ok(true)
}

/// Whether the rows account for the items (see [`rebuild_if_stale`]).
fn is_current(conn: &Connection) -> rusqlite::Result<bool> {
    let number = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
    let last: Option<i64> = conn
        .query_row(
            "SELECT last_seq FROM operations_state WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(
        last == Some(number("SELECT COALESCE(MAX(seq), 0) FROM items")?)
            && number("SELECT COALESCE(SUM(items), 0) FROM operations")?
                == number("SELECT COUNT(*) FROM items WHERE operation_id IS NOT NULL")?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(op: &str, ts_ms: i64) -> Row {
        Row {
            timestamp: format!("t{ts_ms}"),
            ts_ms,
            item_type: "request".into(),
            operation_id: Some(op.into()),
            ..Row::default()
        }
    }

    /// Two ids whose hashes meet keep rows of their own: a key found by hash is checked
    /// against the row's id.
    #[test]
    fn ids_that_share_a_hash_keep_their_own_rows() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let mut keys = Keys::load(&conn).unwrap();
        add_batch(&conn, &mut keys, [row("a", 1)].iter()).unwrap();
        let a = keys.find("a").unwrap();
        // Make "b" look like "a" to the map, as a collision would.
        let hb = keys.hash("b");
        keys.by_hash.insert(hb, a);
        add_batch(&conn, &mut keys, [row("b", 2), row("a", 3)].iter()).unwrap();
        add_batch(&conn, &mut keys, [row("b", 4)].iter()).unwrap();
        let rows: Vec<(String, i64)> = conn
            .prepare("SELECT operation_id, items FROM operations ORDER BY operation_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, [("a".to_owned(), 2), ("b".to_owned(), 2)]);
        assert_ne!(keys.find("b"), Some(a));
        keys.remove("b", keys.find("b").unwrap());
        assert!(keys.collided.is_empty());
        assert_eq!(keys.find("a"), Some(a));
    }
}
