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
//! `operations_state` holds the sequence number of the newest item the rows account for. On
//! open, rows that do not account for the items (their count differs, or a newer item is
//! there) are rebuilt from the items: another program may have written or deleted items
//! without keeping the rows, a collector older than the table for one.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::row::Row;

/// What separates the roles of an operation: the ASCII unit separator, which no role name
/// holds.
pub(crate) const ROLE_SEP: char = '\u{1f}';

/// The version of the rules the rows are computed by (`PRAGMA user_version`): 1, page views
/// rank as roots like requests.
const RULES_VERSION: i64 = 1;

/// The table and its indexes.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS operations (
    operation_id TEXT PRIMARY KEY,
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

/// Writes one operation's row as merged in [`add_batch`].
const UPSERT: &str = "
INSERT INTO operations (operation_id, start_ms, end_ms, roles, failed, items, root_rank, root_ts, root_name, start)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
ON CONFLICT(operation_id) DO UPDATE SET
    start_ms = excluded.start_ms, end_ms = excluded.end_ms, roles = excluded.roles,
    failed = excluded.failed, items = excluded.items, root_rank = excluded.root_rank,
    root_ts = excluded.root_ts, root_name = excluded.root_name, start = excluded.start";

/// The rows of operations, computed from their items (`{where}`: which operations).
const SUMMARIZE: &str = "
INSERT OR REPLACE INTO operations (operation_id, start_ms, end_ms, roles, failed, items, root_rank, root_ts, root_name, start)
SELECT g.operation_id, MIN(g.ts_ms), MAX(g.ts_ms + COALESCE(g.duration_ms, 0)),
       char(31) || COALESCE((SELECT group_concat(role, char(31)) FROM
           (SELECT DISTINCT r.cloud_role AS role FROM items r
              WHERE r.operation_id = g.operation_id AND r.cloud_role IS NOT NULL)), '')
         || char(31),
       COALESCE(SUM(g.success = 0) > 0, 0), COUNT(*),
       (SELECT (r.item_type NOT IN ('request', 'pageView')) * 2 + (r.parent_id IS NOT NULL) AS rank FROM items r
          WHERE r.operation_id = g.operation_id ORDER BY rank, r.ts_ms, r.seq LIMIT 1),
       (SELECT r.ts_ms FROM items r WHERE r.operation_id = g.operation_id
          ORDER BY (r.item_type NOT IN ('request', 'pageView')) * 2 + (r.parent_id IS NOT NULL), r.ts_ms, r.seq LIMIT 1),
       (SELECT r.name FROM items r WHERE r.operation_id = g.operation_id
          ORDER BY (r.item_type NOT IN ('request', 'pageView')) * 2 + (r.parent_id IS NOT NULL), r.ts_ms, r.seq LIMIT 1),
       (SELECT r.timestamp FROM items r WHERE r.operation_id = g.operation_id
          ORDER BY r.ts_ms, r.seq LIMIT 1)
FROM items g WHERE g.operation_id IS NOT NULL {where} GROUP BY g.operation_id";

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
/// per operation first, then one read and one write per operation.
pub(super) fn add_batch<'a>(
    conn: &Connection,
    rows: impl Iterator<Item = &'a Row>,
) -> rusqlite::Result<()> {
    let mut merged: HashMap<&str, Summary> = HashMap::new();
    for r in rows {
        let Some(op) = r.operation_id.as_deref() else {
            continue;
        };
        match merged.get_mut(op) {
            Some(s) => s.merge(Summary::of(r)),
            None => {
                merged.insert(op, Summary::of(r));
            }
        }
    }
    let mut read = conn.prepare_cached(
        "SELECT start_ms, end_ms, roles, failed, items, root_rank, root_ts, root_name, start
         FROM operations WHERE operation_id = ?1",
    )?;
    let mut write = conn.prepare_cached(UPSERT)?;
    for (op, batch) in merged {
        let stored = read
            .query_row([op], |r| {
                Ok(Summary {
                    start_ms: r.get(0)?,
                    end_ms: r.get(1)?,
                    roles: r.get(2)?,
                    failed: r.get(3)?,
                    items: r.get(4)?,
                    root_rank: r.get(5)?,
                    root_ts: r.get(6)?,
                    root_name: r.get(7)?,
                    start: r.get(8)?,
                })
            })
            .optional()?;
        let s = match stored {
            Some(mut s) => {
                s.merge(batch);
                s
            }
            None => batch,
        };
        write.execute(params![
            op,
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
    }
    Ok(())
}

/// Recomputes the rows of these operations from their items, after some were deleted; an
/// operation with no items left loses its row. One indexed read of each operation's items,
/// merged as [`add_batch`] merges them (in sequence order, so ties go to the earlier item, as
/// in a rebuild).
pub(super) fn refresh(conn: &Connection, ids: &[String]) -> rusqlite::Result<()> {
    let mut delete = conn.prepare_cached("DELETE FROM operations WHERE operation_id = ?1")?;
    let mut items = conn.prepare_cached(
        "SELECT item_type, parent_id IS NOT NULL, ts_ms, duration_ms, cloud_role, success, name,
                timestamp
         FROM items WHERE operation_id = ?1 ORDER BY seq",
    )?;
    let mut write = conn.prepare_cached(UPSERT)?;
    for id in ids {
        delete.execute([id])?;
        let mut merged: Option<Summary> = None;
        let mut rows = items.query([id])?;
        while let Some(r) = rows.next()? {
            let item_type: String = r.get(0)?;
            let has_parent: bool = r.get(1)?;
            let role: Option<String> = r.get(4)?;
            let ts_ms: i64 = r.get(2)?;
            let mut roles = String::from(ROLE_SEP);
            if let Some(role) = role {
                roles.push_str(&role);
                roles.push(ROLE_SEP);
            }
            let s = Summary {
                start_ms: ts_ms,
                end_ms: ts_ms as f64 + r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
                roles,
                failed: r.get::<_, Option<bool>>(5)? == Some(false),
                items: 1,
                root_rank: rank_of(&item_type, has_parent),
                root_ts: ts_ms,
                root_name: r.get(6)?,
                start: r.get(7)?,
            };
            match &mut merged {
                Some(m) => m.merge(s),
                None => merged = Some(s),
            }
        }
        if let Some(s) = merged {
            write.execute(params![
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
        }
    }
    Ok(())
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
    // Rows written under an older ranking rule are rebuilt once.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < RULES_VERSION {
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
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
    tx.execute("DELETE FROM operations", [])?;
    tx.execute(&SUMMARIZE.replace("{where}", ""), [])?;
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
