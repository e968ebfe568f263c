//! The `operations` table: one row per operation, kept up to date as items are written and
//! deleted, so that the list of recent operations is an indexed read of one page instead of
//! a grouping of every stored item (a million items by default).
//!
//! Each row holds what the list shows: first start, last end, the roles (each between two
//! [`ROLE_SEP`]s, so that a role is found with `instr`; role names may hold commas), whether
//! any item failed, the item count, the root's name
//! (the first request without a parent, else the first request, else the first item; ties by
//! time) and the first item's timestamp.
//!
//! `operations_state` holds the sequence number of the newest item the rows account for. On
//! open, rows that do not account for the items (their count differs, or a newer item is
//! there) are rebuilt from the items: another program may have written or deleted items
//! without keeping the rows, a collector older than the table for one.

use rusqlite::{Connection, OptionalExtension, params};

use super::row::Row;

/// What separates the roles of an operation: the ASCII unit separator, which no role name
/// holds.
pub(crate) const ROLE_SEP: char = '\u{1f}';

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

/// Adds one item to its operation's row. Every `SET` sees the row as it was.
const ADD: &str = "
INSERT INTO operations (operation_id, start_ms, end_ms, roles, failed, items, root_rank, root_ts, root_name, start)
VALUES (?1, ?2, ?3, CASE WHEN ?4 IS NULL THEN char(31) ELSE char(31) || ?4 || char(31) END,
        ?5, 1, ?6, ?2, ?7, ?8)
ON CONFLICT(operation_id) DO UPDATE SET
    start = CASE WHEN excluded.start_ms < start_ms THEN excluded.start ELSE start END,
    start_ms = MIN(start_ms, excluded.start_ms),
    end_ms = MAX(end_ms, excluded.end_ms),
    roles = CASE WHEN ?4 IS NULL OR instr(roles, char(31) || ?4 || char(31)) > 0 THEN roles
                 ELSE roles || ?4 || char(31) END,
    failed = failed OR excluded.failed,
    items = items + 1,
    root_name = CASE WHEN (excluded.root_rank, excluded.root_ts) < (root_rank, root_ts)
                     THEN excluded.root_name ELSE root_name END,
    root_ts = CASE WHEN (excluded.root_rank, excluded.root_ts) < (root_rank, root_ts)
                   THEN excluded.root_ts ELSE root_ts END,
    root_rank = CASE WHEN (excluded.root_rank, excluded.root_ts) < (root_rank, root_ts)
                     THEN excluded.root_rank ELSE root_rank END";

/// The rows of operations, computed from their items (`{where}`: which operations).
const SUMMARIZE: &str = "
INSERT OR REPLACE INTO operations (operation_id, start_ms, end_ms, roles, failed, items, root_rank, root_ts, root_name, start)
SELECT g.operation_id, MIN(g.ts_ms), MAX(g.ts_ms + COALESCE(g.duration_ms, 0)),
       char(31) || COALESCE((SELECT group_concat(role, char(31)) FROM
           (SELECT DISTINCT r.cloud_role AS role FROM items r
              WHERE r.operation_id = g.operation_id AND r.cloud_role IS NOT NULL)), '')
         || char(31),
       COALESCE(SUM(g.success = 0) > 0, 0), COUNT(*),
       (SELECT (r.item_type != 'request') * 2 + (r.parent_id IS NOT NULL) AS rank FROM items r
          WHERE r.operation_id = g.operation_id ORDER BY rank, r.ts_ms, r.seq LIMIT 1),
       (SELECT r.ts_ms FROM items r WHERE r.operation_id = g.operation_id
          ORDER BY (r.item_type != 'request') * 2 + (r.parent_id IS NOT NULL), r.ts_ms, r.seq LIMIT 1),
       (SELECT r.name FROM items r WHERE r.operation_id = g.operation_id
          ORDER BY (r.item_type != 'request') * 2 + (r.parent_id IS NOT NULL), r.ts_ms, r.seq LIMIT 1),
       (SELECT r.timestamp FROM items r WHERE r.operation_id = g.operation_id
          ORDER BY r.ts_ms, r.seq LIMIT 1)
FROM items g WHERE g.operation_id IS NOT NULL {where} GROUP BY g.operation_id";

/// Adds a written item to its operation's row (inside the writer's transaction).
pub(super) fn add(conn: &Connection, r: &Row) -> rusqlite::Result<()> {
    let Some(op) = &r.operation_id else {
        return Ok(());
    };
    let rank = i64::from(r.item_type != "request") * 2 + i64::from(r.parent_id.is_some());
    conn.prepare_cached(ADD)?.execute(params![
        op,
        r.ts_ms,
        r.ts_ms as f64 + r.duration_ms.unwrap_or(0.0),
        r.cloud_role,
        r.success == Some(false),
        rank,
        r.name,
        r.timestamp,
    ])?;
    Ok(())
}

/// Recomputes the rows of these operations from their items, after some were deleted; an
/// operation with no items left loses its row.
pub(super) fn refresh(conn: &Connection, ids: &[String]) -> rusqlite::Result<()> {
    let summarize = SUMMARIZE.replace("{where}", "AND g.operation_id = ?1");
    let mut delete = conn.prepare_cached("DELETE FROM operations WHERE operation_id = ?1")?;
    let mut insert = conn.prepare_cached(&summarize)?;
    for id in ids {
        delete.execute([id])?;
        insert.execute([id])?;
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
