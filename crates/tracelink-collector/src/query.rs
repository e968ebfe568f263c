//! Reading transactions back: recent operations, one operation as a tree, filtered items,
//! and the table the Application Insights docs print for an operation.
//!
//! The reads are methods of [`Store`] (below); this module holds what they take and
//! return, the tree building and table formatting they share with callers, and the parsing
//! of the HTTP API's and pages' query parameters into filters. Search by words and filters
//! is in [`search`].

pub mod search;

use std::collections::{HashMap, HashSet};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rusqlite::{
    Connection, OptionalExtension, Row as SqlRow, params_from_iter, types::Value as SqlValue,
};
use serde::Serialize;

use crate::error::StoreError;
use crate::store::{Store, summary::ROLE_SEP};

/// One stored item, as the query API returns it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Item {
    /// Row number (insertion order).
    pub seq: i64,
    /// Start time, RFC 3339.
    pub timestamp: String,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// `request`, `dependency`, `trace`, `exception`, `customEvent`, `customMetric`,
    /// `pageView`, ...
    pub item_type: String,
    /// Name (or message).
    pub name: Option<String>,
    /// Id as sent.
    pub id: Option<String>,
    /// Id normalized for linking (SPEC 10.2).
    pub id_norm: Option<String>,
    /// `operation_Id`.
    pub operation_id: Option<String>,
    /// `operation_ParentId` as sent.
    pub parent_id: Option<String>,
    /// Parent normalized for linking.
    pub parent_norm: Option<String>,
    /// `operation_Name`.
    pub operation_name: Option<String>,
    /// `cloud_RoleName`.
    pub cloud_role: Option<String>,
    /// `cloud_RoleInstance`.
    pub role_instance: Option<String>,
    /// `user_Id`.
    pub user_id: Option<String>,
    /// `session_Id`.
    pub session_id: Option<String>,
    /// Duration in milliseconds.
    pub duration_ms: Option<f64>,
    /// Success.
    pub success: Option<bool>,
    /// Response or result code (severity for traces).
    pub result_code: Option<String>,
    /// Dependency target.
    pub target: Option<String>,
    /// Request source, or dependency type.
    pub source: Option<String>,
    /// Request URL or dependency data.
    pub url: Option<String>,
    /// `ai_legacyRootId` (SPEC 10.1).
    pub legacy_root: Option<String>,
    /// The envelope as received.
    pub raw: String,
}

const COLUMNS: &str =
    "seq, timestamp, ts_ms, item_type, name, id, id_norm, operation_id, parent_id,
    parent_norm, operation_name, cloud_role, role_instance, user_id, session_id, duration_ms,
    success, result_code, target, source, url, legacy_root, raw, batch, raw_at, raw_len";

/// Where an item's envelope is, when it is in a stored body: (batch, at, len).
type BodyRef = Option<(i64, i64, i64)>;

fn item(r: &SqlRow<'_>) -> rusqlite::Result<(Item, BodyRef)> {
    let body = match (
        r.get::<_, Option<i64>>(23)?,
        r.get::<_, Option<i64>>(24)?,
        r.get::<_, Option<i64>>(25)?,
    ) {
        (Some(b), Some(at), Some(len)) => Some((b, at, len)),
        _ => None,
    };
    Ok((
        Item {
            seq: r.get(0)?,
            timestamp: r.get(1)?,
            ts_ms: r.get(2)?,
            item_type: r.get(3)?,
            name: r.get(4)?,
            id: r.get(5)?,
            id_norm: r.get(6)?,
            operation_id: r.get(7)?,
            parent_id: r.get(8)?,
            parent_norm: r.get(9)?,
            operation_name: r.get(10)?,
            cloud_role: r.get(11)?,
            role_instance: r.get(12)?,
            user_id: r.get(13)?,
            session_id: r.get(14)?,
            duration_ms: r.get(15)?,
            success: r.get(16)?,
            result_code: r.get(17)?,
            target: r.get(18)?,
            source: r.get(19)?,
            url: r.get(20)?,
            legacy_root: r.get(21)?,
            raw: r.get(22)?,
        },
        body,
    ))
}

/// Fills in the envelopes kept in stored bodies: each body read and decompressed once.
fn with_raw(conn: &Connection, rows: Vec<(Item, BodyRef)>) -> rusqlite::Result<Vec<Item>> {
    let mut bodies: HashMap<i64, Option<Vec<u8>>> = HashMap::new();
    let mut read = conn.prepare_cached("SELECT gzip, body FROM batches WHERE id = ?1")?;
    let mut out = Vec::with_capacity(rows.len());
    for (mut item, body) in rows {
        if let Some((batch, at, len)) = body {
            if let std::collections::hash_map::Entry::Vacant(e) = bodies.entry(batch) {
                let stored: Option<(bool, Vec<u8>)> = read
                    .query_row([batch], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                e.insert(stored.and_then(|(gzip, bytes)| {
                    if !gzip {
                        return Some(bytes);
                    }
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(&bytes[..]),
                        &mut out,
                    )
                    .ok()
                    .map(|_| out)
                }));
            }
            let (at, len) = (at.max(0) as usize, len.max(0) as usize);
            item.raw = bodies[&batch]
                .as_deref()
                .and_then(|b| b.get(at..at.saturating_add(len)))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default()
                .to_owned();
        }
        out.push(item);
    }
    Ok(out)
}

/// The items with these row numbers (those that still exist), with their envelopes.
pub(crate) fn items_by_seq(
    conn: &Connection,
    seqs: impl IntoIterator<Item = i64>,
) -> rusqlite::Result<Vec<Item>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM items WHERE seq = ?1"))?;
    let mut rows = Vec::new();
    for seq in seqs {
        if let Some(r) = stmt.query_row([seq], item).optional()? {
            rows.push(r);
        }
    }
    with_raw(conn, rows)
}

/// A recent operation.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OperationSummary {
    /// The operation id.
    pub operation_id: String,
    /// The name of its root request (or its earliest item).
    pub root_name: Option<String>,
    /// When it started, RFC 3339.
    pub start: String,
    /// Start in milliseconds since the epoch.
    pub start_ms: i64,
    /// From its first start to its last end, in milliseconds.
    pub duration_ms: f64,
    /// Cloud roles involved, sorted.
    pub roles: Vec<String>,
    /// Whether any item failed.
    pub failed: bool,
    /// How many items.
    pub items: i64,
}

/// Filters for [`Store::operations`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct OperationFilter {
    /// Only operations a role took part in.
    pub role: Option<String>,
    /// Only failed (`Some(true)`) or successful (`Some(false)`) operations.
    pub failed: Option<bool>,
    /// Only operations that started at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Page size (default 50).
    pub limit: Option<u32>,
    /// Page offset.
    pub offset: Option<u32>,
}

/// Recent operations, newest first: a page of the per-operation summary the store keeps.
fn operations(conn: &Connection, f: &OperationFilter) -> rusqlite::Result<Vec<OperationSummary>> {
    let mut filters = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(role) = &f.role {
        filters.push("instr(roles, char(31) || ? || char(31)) > 0");
        args.push(SqlValue::Text(role.clone()));
    }
    match f.failed {
        Some(true) => filters.push("failed != 0"),
        Some(false) => filters.push("failed = 0"),
        None => {}
    }
    if let Some(since) = f.since_ms {
        filters.push("start_ms >= ?");
        args.push(SqlValue::Integer(since));
    }
    let filters = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    args.push(SqlValue::Integer(i64::from(
        f.limit.unwrap_or(50).min(1000),
    )));
    args.push(SqlValue::Integer(i64::from(f.offset.unwrap_or(0))));
    let sql = format!(
        "SELECT operation_id, start_ms, end_ms, roles, failed != 0, items, root_name, start
         FROM operations {filters} ORDER BY start_ms DESC, operation_id DESC LIMIT ? OFFSET ?"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), |r| {
        let roles: Option<String> = r.get(3)?;
        let mut roles: Vec<String> = roles
            .unwrap_or_default()
            .split(ROLE_SEP)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        roles.sort();
        let start_ms: i64 = r.get(1)?;
        let end: f64 = r.get(2)?;
        Ok(OperationSummary {
            operation_id: r.get(0)?,
            start_ms,
            duration_ms: end - start_ms as f64,
            roles,
            failed: r.get(4)?,
            items: r.get(5)?,
            root_name: r.get(6)?,
            start: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        })
    })?;
    rows.collect()
}

/// An item and its children.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Node {
    /// The item.
    pub item: Item,
    /// Items whose parent it is, by start time.
    pub children: Vec<Node>,
}

/// One operation as a tree (SPEC 10).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OperationTree {
    /// The operation id.
    pub operation_id: String,
    /// Items with no parent: the roots.
    pub roots: Vec<Node>,
    /// Items whose parent is not in the operation (shown, not dropped: SPEC 10.2).
    pub orphans: Vec<Node>,
    /// Every item, by start time.
    pub items: Vec<Item>,
}

/// The items of operation `id`: those with that operation id, and those whose
/// `ai_legacyRootId` is `id` (SPEC 10.1).
fn operation_items(conn: &Connection, id: &str) -> rusqlite::Result<Vec<Item>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM items
         WHERE ({} AND operation_id = ?1) OR legacy_root = ?1 ORDER BY timestamp, seq",
        crate::store::op_match("?2")
    ))?;
    let rows = stmt
        .query_map(rusqlite::params![id, crate::store::op_low(id)], item)?
        .collect::<rusqlite::Result<_>>()?;
    with_raw(conn, rows)
}

/// Operation `id` as a tree; `None` when it has no items.
fn operation(conn: &Connection, id: &str) -> rusqlite::Result<Option<OperationTree>> {
    let items = operation_items(conn, id)?;
    if items.is_empty() {
        return Ok(None);
    }
    Ok(Some(build_tree(id, items)))
}

/// The deepest level of an operation tree. Items that would be deeper become leaves on this
/// level, in walk order, children of their ancestor one level above: walking, serializing (each level is two JSON nesting levels,
/// well within parsers' limits) and dropping a tree stay shallow, whatever parent chain a
/// sender makes up. Real transactions are far shallower.
pub const MAX_TREE_DEPTH: usize = 48;

/// Every not yet seen descendant of `i`, depth first, as leaves.
fn flat_descendants(
    i: usize,
    items: &[Item],
    children: &[Vec<usize>],
    seen: &mut HashSet<usize>,
) -> Vec<Node> {
    let mut out = Vec::new();
    let mut stack: Vec<usize> = children[i].iter().rev().copied().collect();
    while let Some(c) = stack.pop() {
        if seen.insert(c) {
            out.push(Node {
                item: items[c].clone(),
                children: Vec::new(),
            });
            stack.extend(children[c].iter().rev());
        }
    }
    out
}

/// Links items by id: a parent matches an item's normalized id, or its raw id (SPEC 10.2,
/// 10.3); at most [`MAX_TREE_DEPTH`] levels deep.
pub fn build_tree(operation_id: &str, items: Vec<Item>) -> OperationTree {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        for id in [it.id_norm.as_deref(), it.id.as_deref()]
            .into_iter()
            .flatten()
        {
            by_id.entry(id).or_insert(i);
        }
    }
    let mut parent_of: Vec<Option<usize>> = vec![None; items.len()];
    let mut orphan = vec![false; items.len()];
    for (i, it) in items.iter().enumerate() {
        let parent = it.parent_norm.as_deref().or(it.parent_id.as_deref());
        match parent {
            None => {}
            Some(p) => match [Some(p), it.parent_id.as_deref()]
                .into_iter()
                .flatten()
                .find_map(|k| by_id.get(k))
            {
                Some(&j) if j != i => parent_of[i] = Some(j),
                _ => orphan[i] = true,
            },
        }
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); items.len()];
    for (i, p) in parent_of.iter().enumerate() {
        if let Some(p) = p {
            children[*p].push(i);
        }
    }
    fn node(
        i: usize,
        items: &[Item],
        children: &[Vec<usize>],
        seen: &mut HashSet<usize>,
        depth: usize,
    ) -> Node {
        seen.insert(i);
        // `depth` counts from 0: the flat leaves land on level MAX_TREE_DEPTH.
        if depth + 2 >= MAX_TREE_DEPTH {
            return Node {
                item: items[i].clone(),
                children: flat_descendants(i, items, children, seen),
            };
        }
        Node {
            item: items[i].clone(),
            children: children[i]
                .iter()
                .filter(|c| !seen.contains(c))
                .copied()
                .collect::<Vec<_>>()
                .into_iter()
                .map(|c| node(c, items, children, seen, depth + 1))
                .collect(),
        }
    }
    let node = |i, seen: &mut HashSet<usize>| node(i, &items, &children, seen, 0);
    let mut seen = HashSet::new();
    let roots: Vec<Node> = (0..items.len())
        .filter(|i| parent_of[*i].is_none() && !orphan[*i])
        .map(|i| node(i, &mut seen))
        .collect();
    let orphans: Vec<Node> = (0..items.len())
        .filter(|i| orphan[*i])
        .map(|i| node(i, &mut seen))
        .collect();
    // Cycles (a hostile sender can make them) end up nowhere above: list them as orphans.
    let mut orphans = orphans;
    for i in 0..items.len() {
        if !seen.contains(&i) {
            orphans.push(node(i, &mut seen));
        }
    }
    OperationTree {
        operation_id: operation_id.to_owned(),
        roots,
        orphans,
        items,
    }
}

/// Filters for [`Store::items`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ItemFilter {
    /// `request`, `dependency`, ...
    pub item_type: Option<String>,
    /// Cloud role.
    pub role: Option<String>,
    /// From this time (ms since the epoch).
    pub from_ms: Option<i64>,
    /// Until this time (ms since the epoch).
    pub to_ms: Option<i64>,
    /// User id.
    pub user_id: Option<String>,
    /// Session id.
    pub session_id: Option<String>,
    /// Most items (default 100).
    pub limit: Option<u32>,
}

/// Items, newest first.
fn items(conn: &Connection, f: &ItemFilter) -> rusqlite::Result<Vec<Item>> {
    let mut cond = vec!["1 = 1"];
    let mut args: Vec<SqlValue> = Vec::new();
    for (c, v) in [
        ("item_type = ?", &f.item_type),
        ("cloud_role = ?", &f.role),
        ("user_id = ?", &f.user_id),
        ("session_id = ?", &f.session_id),
    ] {
        if let Some(v) = v {
            cond.push(c);
            args.push(SqlValue::Text(v.clone()));
        }
    }
    for (c, v) in [("ts_ms >= ?", f.from_ms), ("ts_ms <= ?", f.to_ms)] {
        if let Some(v) = v {
            cond.push(c);
            args.push(SqlValue::Integer(v));
        }
    }
    args.push(SqlValue::Integer(i64::from(
        f.limit.unwrap_or(100).min(10_000),
    )));
    let sql = format!(
        "SELECT {COLUMNS} FROM items WHERE {} ORDER BY ts_ms DESC, seq DESC LIMIT ?",
        cond.join(" AND ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(args), item)?
        .collect::<rusqlite::Result<_>>()?;
    with_raw(conn, rows)
}

/// The table the Application Insights docs show for one operation:
/// `timestamp | itemType | name | id | operation_ParentId | operation_Id`, in start order.
pub fn format_table(items: &[Item]) -> String {
    let header = [
        "timestamp",
        "itemType",
        "name",
        "id",
        "operation_ParentId",
        "operation_Id",
    ];
    let rows: Vec<[String; 6]> = items
        .iter()
        .map(|i| {
            [
                i.timestamp.clone(),
                i.item_type.clone(),
                i.name.clone().unwrap_or_default(),
                i.id.clone().unwrap_or_default(),
                i.parent_id.clone().unwrap_or_default(),
                i.operation_id.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(&header);
    out.push('\n');
    out.push_str(&widths.map(|w| "-".repeat(w)).join("-|-"));
    for r in &rows {
        out.push('\n');
        out.push_str(&line(&r.each_ref().map(String::as_str)));
    }
    out.push('\n');
    out
}

/// What one cloud role did.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RoleSummary {
    /// The role.
    pub role: String,
    /// Requests it served.
    pub requests: u64,
    /// Of which failed.
    pub failures: u64,
    /// Dependencies it called.
    pub dependencies: u64,
    /// Median request duration, ms.
    pub p50_ms: f64,
    /// 95th percentile request duration, ms.
    pub p95_ms: f64,
}

/// Per-role request and dependency counts and request duration percentiles.
fn roles(conn: &Connection) -> rusqlite::Result<Vec<RoleSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT cloud_role, item_type, success, duration_ms FROM items
         WHERE item_type IN ('request', 'dependency') AND cloud_role IS NOT NULL
         ORDER BY cloud_role, duration_ms",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<bool>>(2)?,
            r.get::<_, Option<f64>>(3)?,
        ))
    })?;
    let mut out: Vec<(RoleSummary, Vec<f64>)> = Vec::new();
    for row in rows {
        let (role, kind, success, duration) = row?;
        if out.last().is_none_or(|(s, _)| s.role != role) {
            out.push((
                RoleSummary {
                    role,
                    requests: 0,
                    failures: 0,
                    dependencies: 0,
                    p50_ms: 0.0,
                    p95_ms: 0.0,
                },
                Vec::new(),
            ));
        }
        let Some((s, durations)) = out.last_mut() else {
            continue;
        };
        if kind == "request" {
            s.requests += 1;
            s.failures += u64::from(success == Some(false));
            durations.extend(duration);
        } else {
            s.dependencies += 1;
        }
    }
    let pct = |d: &[f64], p: f64| {
        if d.is_empty() {
            return 0.0;
        }
        d[(((d.len() - 1) as f64) * p).round() as usize]
    };
    Ok(out
        .into_iter()
        .map(|(mut s, d)| {
            s.p50_ms = pct(&d, 0.5);
            s.p95_ms = pct(&d, 0.95);
            s
        })
        .collect())
}

/// A node of the application map: a cloud role, or a target no role answers for.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MapNode {
    /// The role, or the target (`host[:port]`).
    pub name: String,
    /// Whether it is an external target rather than a role.
    pub external: bool,
    /// Requests it served (roles only).
    pub requests: u64,
}

/// An edge of the application map: calls from one node to another.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MapEdge {
    /// The calling role.
    pub from: String,
    /// The called node.
    pub to: String,
    /// How many calls.
    pub calls: u64,
    /// How many failed.
    pub failures: u64,
    /// Mean duration, ms.
    pub avg_ms: f64,
}

/// The application map.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AppMap {
    /// Roles and external targets.
    pub nodes: Vec<MapNode>,
    /// Dependency calls between them.
    pub edges: Vec<MapEdge>,
    /// The store holds more items than [`MAP_ITEMS`]: the map is that of the latest ones.
    pub partial: bool,
}

/// How many of the latest items the application map reads at most, so that it is drawn in
/// well under a second at the retention limit (1,000,000 items: 1.4 s over all of them, on
/// the development machine).
pub const MAP_ITEMS: i64 = 200_000;

/// Builds the application map from dependencies: a call's callee is the role of the request
/// it caused, else the role whose appId the call's `target` names (`host | cid-v1:X`,
/// SPEC 5.5, learned from other calls), else the target itself.
fn app_map(conn: &Connection) -> rusqlite::Result<AppMap> {
    let (first, last): (Option<i64>, Option<i64>) =
        conn.query_row("SELECT MIN(seq), MAX(seq) FROM items", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let from = last.map_or(0, |l| l - MAP_ITEMS);
    let partial = first.is_some_and(|f| f <= from);
    // The role of the request each call caused: requests by operation and parent, the first
    // of each kept (one pass over the requests instead of a lookup per call).
    let mut callee_of: HashMap<(String, String), String> = HashMap::new();
    let mut requests = conn.prepare_cached(
        "SELECT operation_id, parent_norm, cloud_role FROM items
         WHERE seq > ?1 AND item_type = 'request' AND operation_id IS NOT NULL
           AND parent_norm IS NOT NULL AND cloud_role IS NOT NULL ORDER BY seq",
    )?;
    let mut rows = requests.query([from])?;
    while let Some(r) = rows.next()? {
        callee_of.entry((r.get(0)?, r.get(1)?)).or_insert(r.get(2)?);
    }
    drop(rows);
    let mut stmt = conn.prepare_cached(
        "SELECT cloud_role, target, success, duration_ms, operation_id, id_norm
         FROM items WHERE seq > ?1 AND item_type = 'dependency' AND cloud_role IS NOT NULL",
    )?;
    type Call = (
        String,
        Option<String>,
        Option<bool>,
        Option<f64>,
        Option<String>,
    );
    let calls: Vec<Call> = stmt
        .query_map([from], |r| {
            let op: Option<String> = r.get(4)?;
            let id: Option<String> = r.get(5)?;
            let callee = op.zip(id).and_then(|key| callee_of.get(&key).cloned());
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, callee))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let app_of = |target: &str| target.split(" | cid-v1:").nth(1).map(str::to_owned);
    let mut role_of_app: HashMap<String, String> = HashMap::new();
    for (_, target, _, _, callee) in &calls {
        if let (Some(app), Some(role)) = (target.as_deref().and_then(app_of), callee) {
            role_of_app.entry(app).or_insert_with(|| role.clone());
        }
    }
    let mut edges: HashMap<(String, String), (u64, u64, f64)> = HashMap::new();
    let mut external: HashSet<String> = HashSet::new();
    for (from, target, success, duration, callee) in calls {
        let target = target.unwrap_or_else(|| "unknown".into());
        let to = callee
            .or_else(|| app_of(&target).and_then(|a| role_of_app.get(&a).cloned()))
            .unwrap_or_else(|| {
                let host = target.split(" | ").next().unwrap_or(&target).to_owned();
                external.insert(host.clone());
                host
            });
        let e = edges.entry((from, to)).or_default();
        e.0 += 1;
        e.1 += u64::from(success == Some(false));
        e.2 += duration.unwrap_or(0.0);
    }
    let mut roles: Vec<(String, u64)> = conn
        .prepare_cached(
            "SELECT cloud_role, SUM(item_type = 'request') FROM items
             WHERE seq > ?1 AND cloud_role IS NOT NULL GROUP BY cloud_role ORDER BY cloud_role",
        )?
        .query_map([from], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?
        .collect::<rusqlite::Result<_>>()?;
    roles.retain(|(r, _)| !external.contains(r));
    let mut nodes: Vec<MapNode> = roles
        .into_iter()
        .map(|(name, requests)| MapNode {
            name,
            external: false,
            requests,
        })
        .collect();
    let mut ext: Vec<String> = external
        .into_iter()
        .filter(|e| !nodes.iter().any(|n| &n.name == e))
        .collect();
    ext.sort();
    nodes.extend(ext.into_iter().map(|name| MapNode {
        name,
        external: true,
        requests: 0,
    }));
    let mut edges: Vec<MapEdge> = edges
        .into_iter()
        .map(|((from, to), (calls, failures, total))| MapEdge {
            from,
            to,
            calls,
            failures,
            avg_ms: total / calls as f64,
        })
        .collect();
    edges.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    Ok(AppMap {
        nodes,
        edges,
        partial,
    })
}

/// Unique users and sessions in one hour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UsageBucket {
    /// The hour, `YYYY-MM-DDTHH:00Z`.
    pub hour: String,
    /// Distinct `user_Id`s.
    pub users: u64,
    /// Distinct `session_Id`s.
    pub sessions: u64,
}

/// Users and sessions (from `ai.user.id` and `ai.session.id`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Usage {
    /// Distinct users in all.
    pub users: u64,
    /// Distinct sessions in all.
    pub sessions: u64,
    /// Per hour, newest first.
    pub hours: Vec<UsageBucket>,
    /// Per day (`YYYY-MM-DD`), newest first.
    pub days: Vec<UsageBucket>,
    /// Operation names by distinct users, most first: `(name, users)`.
    pub top_operations: Vec<(String, u64)>,
    /// Recent sessions: `(session id, user id, items, first seen)`.
    pub sessions_list: Vec<(String, Option<String>, u64, String)>,
}

/// Users and sessions per hour and day, top operations by users, recent sessions.
fn usage(conn: &Connection) -> rusqlite::Result<Usage> {
    let (users, sessions) = conn.query_row(
        "SELECT COUNT(DISTINCT user_id), COUNT(DISTINCT session_id) FROM items",
        [],
        |r| {
            Ok((
                r.get::<_, i64>(0)?.max(0) as u64,
                r.get::<_, i64>(1)?.max(0) as u64,
            ))
        },
    )?;
    let bucket = |len: usize, suffix: &str| -> rusqlite::Result<Vec<UsageBucket>> {
        let sql = format!(
            "SELECT substr(timestamp, 1, {len}), COUNT(DISTINCT user_id), COUNT(DISTINCT session_id) FROM items
             WHERE user_id IS NOT NULL OR session_id IS NOT NULL GROUP BY 1 ORDER BY 1 DESC LIMIT 200"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([], |r| {
            Ok(UsageBucket {
                hour: format!("{}{suffix}", r.get::<_, String>(0)?),
                users: r.get::<_, i64>(1)?.max(0) as u64,
                sessions: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        rows.collect()
    };
    let top_operations = conn
        .prepare_cached(
            "SELECT COALESCE(operation_name, name), COUNT(DISTINCT user_id) FROM items
             WHERE user_id IS NOT NULL AND item_type IN ('request', 'pageView')
             GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20",
        )?
        .query_map([], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                r.get::<_, i64>(1)?.max(0) as u64,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let sessions_list = conn
        .prepare_cached(
            "SELECT session_id, MAX(user_id), COUNT(*), MIN(timestamp) FROM items
             WHERE session_id IS NOT NULL GROUP BY session_id ORDER BY MIN(ts_ms) DESC LIMIT 100",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, i64>(2)?.max(0) as u64,
                r.get(3)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Usage {
        users,
        sessions,
        hours: bucket(13, ":00Z")?,
        days: bucket(10, "")?,
        top_operations,
        sessions_list,
    })
}

/// One session's requests, page views and events, in order.
fn session_items(conn: &Connection, session_id: &str) -> rusqlite::Result<Vec<Item>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM items WHERE session_id = ?1
         AND item_type IN ('request', 'pageView', 'customEvent') ORDER BY timestamp, seq LIMIT 1000"
    ))?;
    let rows = stmt
        .query_map([session_id], item)?
        .collect::<rusqlite::Result<_>>()?;
    with_raw(conn, rows)
}

/// The reads: each runs on the store's read connection, off the runtime's threads, and fails
/// with a [`StoreError`] of kind [`Read`](crate::StoreErrorKind::Read).
impl Store {
    /// Recent operations, newest first: a page of the per-operation rows the store keeps.
    pub async fn operations(
        &self,
        filter: &OperationFilter,
    ) -> Result<Vec<OperationSummary>, StoreError> {
        let f = filter.clone();
        self.read(move |c| operations(c, &f)).await
    }

    /// Operation `id` as a tree; `None` when it has no items.
    pub async fn operation(&self, id: &str) -> Result<Option<OperationTree>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| operation(c, &id)).await
    }

    /// The items of operation `id`, by start time: those with that operation id, and those
    /// whose `ai_legacyRootId` is `id` (SPEC 10.1).
    pub async fn operation_items(&self, id: &str) -> Result<Vec<Item>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| operation_items(c, &id)).await
    }

    /// Items, newest first.
    pub async fn items(&self, filter: &ItemFilter) -> Result<Vec<Item>, StoreError> {
        let f = filter.clone();
        self.read(move |c| items(c, &f)).await
    }

    /// Per-role request and dependency counts and request duration percentiles, by role.
    pub async fn roles(&self) -> Result<Vec<RoleSummary>, StoreError> {
        self.read(roles).await
    }

    /// The application map (see [`AppMap`]).
    pub async fn app_map(&self) -> Result<AppMap, StoreError> {
        self.read(app_map).await
    }

    /// Users and sessions per hour and day, top operations by users, recent sessions.
    pub async fn usage(&self) -> Result<Usage, StoreError> {
        self.read(usage).await
    }

    /// One session's requests, page views and events, in order (at most 1,000).
    pub async fn session_items(&self, session_id: &str) -> Result<Vec<Item>, StoreError> {
        let id = session_id.to_owned();
        self.read(move |c| session_items(c, &id)).await
    }
}

/// A query parameter that does not parse: 400.
#[derive(Debug)]
pub(crate) struct BadParam(String);

impl BadParam {
    /// The parameter `name` does not parse.
    pub(crate) fn new(name: &str) -> Self {
        Self(name.to_owned())
    }
}

impl IntoResponse for BadParam {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, format!("invalid {}", self.0)).into_response()
    }
}

fn num<T: std::str::FromStr>(p: &HashMap<String, String>, k: &str) -> Result<Option<T>, BadParam> {
    match p.get(k).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| BadParam(k.to_owned())),
    }
}

/// Milliseconds since the epoch, or an RFC 3339 time; empty is none.
pub(crate) fn time_ms(p: &HashMap<String, String>, k: &str) -> Result<Option<i64>, BadParam> {
    match p.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(ms) => Ok(Some(ms)),
            Err(_) => tracelink_core::wire_time::parse_time(v)
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| Some(d.as_millis() as i64))
                .ok_or_else(|| BadParam(k.to_owned())),
        },
    }
}

fn text(p: &HashMap<String, String>, k: &str) -> Option<String> {
    p.get(k).filter(|v| !v.is_empty()).cloned()
}

/// Parses the filter of the operations list from query parameters: `role`, `failed`,
/// `since`, `limit`, `offset`.
pub(crate) fn operation_filter(p: &HashMap<String, String>) -> Result<OperationFilter, BadParam> {
    Ok(OperationFilter {
        role: text(p, "role"),
        failed: match p.get("failed").map(String::as_str) {
            Some("true" | "1") => Some(true),
            Some("false" | "0") => Some(false),
            _ => None,
        },
        since_ms: time_ms(p, "since")?,
        limit: num(p, "limit")?,
        offset: num(p, "offset")?,
    })
}

/// Parses the filter of the items list from query parameters: `type`, `role`, `user`,
/// `session`, `from`, `to`, `limit`.
pub(crate) fn item_filter(p: &HashMap<String, String>) -> Result<ItemFilter, BadParam> {
    Ok(ItemFilter {
        item_type: text(p, "type"),
        role: text(p, "role"),
        user_id: text(p, "user"),
        session_id: text(p, "session"),
        from_ms: time_ms(p, "from")?,
        to_ms: time_ms(p, "to")?,
        limit: num(p, "limit")?,
    })
}
