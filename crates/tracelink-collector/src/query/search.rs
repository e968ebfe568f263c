//! Search: items found by words and filters, newest first, a page at a time.
//!
//! Words are matched against the item's name (a trace's message, an exception's types and
//! messages), its URL and its property values: every word must be there, in any case; a word
//! of three characters or more also matches the words it starts (`ord` finds `orders`). Ids of
//! 16 hexadecimal digits or more are not indexed as words: operations are found by id with
//! their filter.
//! Filters narrow by time, item types, role, success, result code, duration, severity, user,
//! session and operation. Results come newest first, in the order the collector received
//! them, a page at a time: a page ends with the `seq` to pass as `before` for the next, older
//! page (a keyset: pages neither repeat nor skip items while new ones arrive), and `after`
//! asks for the items received since.
//!
//! Words and the filters of exact values (types, role, user, session, result code, failure,
//! severity) are answered by the store's search index, which reads only the items that
//! match; time and duration ranges, success and operation are checked on the items read.

use std::collections::HashMap;

use rusqlite::{Connection, params_from_iter, types::Value as SqlValue};
use serde::Serialize;
use tracelink_core::model::SeverityLevel;

use super::{BadParam, COLUMNS, Item, item, num, text, time_ms, with_raw};
use crate::error::StoreError;
use crate::store::Store;
use crate::store::search::{
    FAILED, Facet, effective_severity, facet, push_lowercase, severity_token, shard_ranges,
    shard_table, words,
};

/// The page size when none is asked for.
pub const DEFAULT_SEARCH_LIMIT: u32 = 50;

/// The largest page.
pub const MAX_SEARCH_LIMIT: u32 = 500;

/// At most this many words of a query are searched for.
const MAX_TERMS: usize = 16;

/// What to search for ([`Store::search`]). Every filter given must hold.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SearchQuery {
    /// Words, each of which must be in the item's name, URL or property values.
    pub text: Option<String>,
    /// From this time (ms since the epoch, inclusive).
    pub from_ms: Option<i64>,
    /// Until this time (ms since the epoch, inclusive).
    pub to_ms: Option<i64>,
    /// Any of these item types (`request`, `trace`, ...); empty for all.
    pub item_types: Vec<String>,
    /// Cloud role.
    pub role: Option<String>,
    /// Only successful (`Some(true)`) or failed (`Some(false)`) items.
    pub success: Option<bool>,
    /// Result code (response code of a request, result of a dependency).
    pub result_code: Option<String>,
    /// At least this duration, ms.
    pub min_duration_ms: Option<f64>,
    /// At most this duration, ms.
    pub max_duration_ms: Option<f64>,
    /// Traces and exceptions of at least this severity (traces sent without one count as
    /// Information, exceptions as Error).
    pub min_severity: Option<SeverityLevel>,
    /// `user_Id`.
    pub user_id: Option<String>,
    /// `session_Id`.
    pub session_id: Option<String>,
    /// Operation id: items with it, or with it as `ai_legacyRootId` (SPEC 10.1).
    pub operation_id: Option<String>,
    /// Only items received before the item with this `seq` (the next page).
    pub before: Option<i64>,
    /// Only items received after the item with this `seq` (the previous page, or what is new).
    pub after: Option<i64>,
    /// Page size (default [`DEFAULT_SEARCH_LIMIT`], at most [`MAX_SEARCH_LIMIT`]).
    pub limit: Option<u32>,
}

impl SearchQuery {
    /// The words of [`text`](Self::text), lowercased, as they are searched for: split at
    /// every character that is not a letter or digit, each once, at most 16.
    pub fn terms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for w in words(self.text.as_deref().unwrap_or("")) {
            let mut lower = String::new();
            push_lowercase(&mut lower, w);
            if !out.contains(&lower) && out.len() < MAX_TERMS {
                out.push(lower);
            }
        }
        out
    }

    fn page_size(&self) -> u32 {
        self.limit
            .unwrap_or(DEFAULT_SEARCH_LIMIT)
            .clamp(1, MAX_SEARCH_LIMIT)
    }

    /// The full-text expression of the words and exact filters; empty when there are none.
    fn match_expression(&self) -> String {
        let mut parts: Vec<String> = self
            .terms()
            .into_iter()
            .map(|t| {
                if t.chars().count() >= 3 {
                    format!("\"{t}\"*")
                } else {
                    format!("\"{t}\"")
                }
            })
            .collect();
        let any = |tokens: Vec<String>| {
            let quoted: Vec<String> = tokens.iter().map(|t| format!("\"{t}\"")).collect();
            format!("({})", quoted.join(" OR "))
        };
        if !self.item_types.is_empty() {
            parts.push(any(self
                .item_types
                .iter()
                .map(|t| facet(Facet::ItemType, t))
                .collect()));
        }
        for (field, v) in [
            (Facet::Role, &self.role),
            (Facet::User, &self.user_id),
            (Facet::Session, &self.session_id),
            (Facet::ResultCode, &self.result_code),
        ] {
            if let Some(v) = v {
                parts.push(format!("\"{}\"", facet(field, v)));
            }
        }
        if self.success == Some(false) {
            parts.push(format!("\"{FAILED}\""));
        }
        if let Some(min) = self.min_severity {
            parts.push(any(LEVELS
                .iter()
                .filter(|l| **l >= min)
                .map(|l| severity_token(*l))
                .collect()));
        }
        parts.join(" AND ")
    }

    /// The conditions on the items' columns, and their arguments.
    fn conditions(&self, args: &mut Vec<SqlValue>) -> Vec<String> {
        let mut c = Vec::new();
        let mut add = |sql: &str, v: SqlValue| {
            c.push(sql.to_owned());
            args.push(v);
        };
        let text = |s: &String| SqlValue::Text(s.clone());
        if let Some(v) = self.from_ms {
            add("ts_ms >= ?", SqlValue::Integer(v));
        }
        if let Some(v) = self.to_ms {
            add("ts_ms <= ?", SqlValue::Integer(v));
        }
        if let Some(v) = &self.role {
            add("cloud_role = ?", text(v));
        }
        if let Some(v) = &self.user_id {
            add("user_id = ?", text(v));
        }
        if let Some(v) = &self.session_id {
            add("session_id = ?", text(v));
        }
        if let Some(v) = &self.result_code {
            add("result_code = ?", text(v));
        }
        if let Some(v) = self.success {
            add("success = ?", SqlValue::Integer(i64::from(v)));
        }
        if let Some(v) = self.min_duration_ms {
            add("duration_ms >= ?", SqlValue::Real(v));
        }
        if let Some(v) = self.max_duration_ms {
            add("duration_ms <= ?", SqlValue::Real(v));
        }
        if !self.item_types.is_empty() {
            c.push(format!(
                "item_type IN ({})",
                vec!["?"; self.item_types.len()].join(", ")
            ));
            args.extend(self.item_types.iter().map(text));
        }
        c
    }
}

const LEVELS: [SeverityLevel; 5] = [
    SeverityLevel::Verbose,
    SeverityLevel::Information,
    SeverityLevel::Warning,
    SeverityLevel::Error,
    SeverityLevel::Critical,
];

/// One item found.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SearchHit {
    /// The item.
    #[serde(flatten)]
    pub item: Item,
    /// The severity of a trace or exception (`Verbose` ... `Critical`; as searched by, see
    /// [`SearchQuery::min_severity`]).
    pub severity: Option<&'static str>,
}

/// One page of results, newest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SearchPage {
    /// The items.
    pub items: Vec<SearchHit>,
    /// `before` for the next page of older items, when there are more.
    pub older: Option<i64>,
    /// `after` for the page of newer items, when this is not the newest page.
    pub newer: Option<i64>,
}

/// The severity an exception was sent with, from its envelope.
fn sent_severity(raw: &str) -> Option<SeverityLevel> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    match &v["data"]["baseData"]["severityLevel"] {
        serde_json::Value::String(s) => SeverityLevel::parse(s),
        serde_json::Value::Number(n) => SeverityLevel::parse(&n.to_string()),
        _ => None,
    }
}

fn hit(item: Item) -> SearchHit {
    let sent = match item.item_type.as_str() {
        "trace" => item.result_code.as_deref().and_then(SeverityLevel::parse),
        "exception" => sent_severity(&item.raw),
        _ => None,
    };
    SearchHit {
        severity: effective_severity(&item.item_type, sent).map(SeverityLevel::as_str),
        item,
    }
}

/// A shard of the index and the `seq`s it answers for: `(id, first, end)`, `end` exclusive.
type Shard = (i64, i64, Option<i64>);

/// The conditions that keep `column` within a shard's range.
fn within(column: &str, (_, first, end): Shard, args: &mut Vec<SqlValue>) -> String {
    args.push(SqlValue::Integer(first));
    match end {
        Some(end) => {
            args.push(SqlValue::Integer(end));
            format!("{column} >= ? AND {column} < ?")
        }
        None => format!("{column} >= ?"),
    }
}

/// Reads up to `n` matching items in the page's order: through index shard `shard` when
/// given, else from the items (by operation, or by the columns alone).
fn read(
    conn: &Connection,
    q: &SearchQuery,
    expression: &str,
    shard: Option<Shard>,
    n: usize,
) -> rusqlite::Result<Vec<(Item, super::BodyRef)>> {
    let mut args: Vec<SqlValue> = Vec::new();
    let mut conditions = Vec::new();
    let table = shard.map(|s| shard_table(s.0));
    // The keyset bounds go on the index's rowid when it leads, else on the items' seq.
    let key = table
        .as_ref()
        .map_or_else(|| "seq".to_owned(), |t| format!("{t}.rowid"));
    if let Some(b) = q.before {
        conditions.push(format!("{key} < ?"));
        args.push(SqlValue::Integer(b));
    }
    if let Some(a) = q.after {
        conditions.push(format!("{key} > ?"));
        args.push(SqlValue::Integer(a));
    }
    let from = if let (Some(t), Some(shard)) = (&table, shard) {
        // The shard leads, in the page's order, and each match is read by its rowid.
        conditions.push(format!("{t} MATCH ?"));
        args.push(SqlValue::Text(expression.to_owned()));
        conditions.push(within(&format!("{t}.rowid"), shard, &mut args));
        format!("{t} CROSS JOIN items ON items.seq = {t}.rowid")
    } else {
        if let Some(op) = &q.operation_id {
            // Few items per operation: read them by the operation index, then check the
            // words in whichever shard holds each.
            conditions.push(format!(
                "(({} AND operation_id = ?) OR legacy_root = ?)",
                crate::store::op_match("?")
            ));
            args.push(SqlValue::Integer(crate::store::op_low(op)));
            args.push(SqlValue::Text(op.clone()));
            args.push(SqlValue::Text(op.clone()));
            if !expression.is_empty() {
                let mut lookups = Vec::new();
                for shard in shard_ranges(conn)? {
                    let t = shard_table(shard.0);
                    args.push(SqlValue::Text(expression.to_owned()));
                    let range = within("items.seq", shard, &mut args);
                    lookups.push(format!(
                        "SELECT 1 FROM {t} WHERE {t} MATCH ? AND {t}.rowid = items.seq AND {range}"
                    ));
                }
                if lookups.is_empty() {
                    return Ok(Vec::new());
                }
                conditions.push(format!("EXISTS ({})", lookups.join(" UNION ALL ")));
            }
        }
        "items".to_owned()
    };
    conditions.extend(q.conditions(&mut args));
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let order = if q.after.is_none() { "DESC" } else { "ASC" };
    args.push(SqlValue::Integer(n as i64));
    let sql = format!("SELECT {COLUMNS} FROM {from} {filter} ORDER BY {key} {order} LIMIT ?");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(args), item)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Runs a search on the read connection.
fn search(conn: &Connection, q: &SearchQuery) -> rusqlite::Result<SearchPage> {
    let limit = q.page_size() as usize;
    // One more than the page says whether there are more.
    let want = limit + 1;
    let newest_first = q.after.is_none();
    let expression = q.match_expression();
    let mut rows = Vec::new();
    if expression.is_empty() || q.operation_id.is_some() {
        rows = read(conn, q, &expression, None, want)?;
    } else {
        // Shard by shard in the page's order (their seq ranges follow each other), skipping
        // those the keyset excludes, until the page is full.
        let mut ranges = shard_ranges(conn)?;
        // By range, not by id: after every item was deleted, seqs start over.
        ranges.retain(|&(_, first, end)| end.is_none_or(|e| e > first));
        ranges.sort_by_key(|s| s.1);
        if newest_first {
            ranges.reverse();
        }
        for shard in ranges {
            let (_, first, end) = shard;
            if q.before.is_some_and(|b| b <= first)
                || q.after.is_some_and(|a| end.is_some_and(|e| a >= e - 1))
            {
                continue;
            }
            rows.extend(read(conn, q, &expression, Some(shard), want - rows.len())?);
            if rows.len() >= want {
                break;
            }
        }
    }
    let more = rows.len() > limit;
    rows.truncate(limit);
    if !newest_first {
        rows.reverse();
    }
    let items: Vec<SearchHit> = with_raw(conn, rows)?.into_iter().map(hit).collect();
    let first = items.first().map(|h| h.item.seq);
    let last = items.last().map(|h| h.item.seq);
    let (older, newer) = if newest_first {
        (last.filter(|_| more), first.filter(|_| q.before.is_some()))
    } else {
        (last, first.filter(|_| more))
    };
    Ok(SearchPage {
        items,
        older,
        newer,
    })
}

impl Store {
    /// Items matching `query`, newest first, one page (see the [`search`](self) module).
    pub async fn search(&self, query: &SearchQuery) -> Result<SearchPage, StoreError> {
        let q = query.clone();
        self.read(move |c| search(c, &q)).await
    }
}

impl std::fmt::Display for BadParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {}", self.0)
    }
}

fn bad(name: &str, why: &str) -> BadParam {
    BadParam(format!("{name}: {why}"))
}

/// Parses a search from query parameters: `q`, `from`, `to` (ms since the epoch or RFC 3339),
/// `type` (comma-separated), `role`, `success` (`true`/`false`), `code`, `min_duration`,
/// `max_duration` (ms), `severity` (`Verbose` ... `Critical`, or 0-4), `user`, `session`,
/// `operation`, `before`, `after`, `limit`. Empty values are no filter.
pub(crate) fn search_query(p: &HashMap<String, String>) -> Result<SearchQuery, BadParam> {
    let duration = |k: &str| -> Result<Option<f64>, BadParam> {
        match num::<f64>(p, k) {
            Ok(Some(v)) if !v.is_finite() || v < 0.0 => {
                Err(bad(k, "expected milliseconds, 0 or more"))
            }
            Err(_) => Err(bad(k, "expected milliseconds, 0 or more")),
            Ok(v) => Ok(v),
        }
    };
    let seq = |k: &str| -> Result<Option<i64>, BadParam> {
        num::<i64>(p, k).map_err(|_| bad(k, "expected the seq of an item"))
    };
    let q = SearchQuery {
        text: text(p, "q").filter(|t| !t.trim().is_empty()),
        from_ms: time_ms(p, "from")
            .map_err(|_| bad("from", "expected RFC 3339 or ms since the epoch"))?,
        to_ms: time_ms(p, "to")
            .map_err(|_| bad("to", "expected RFC 3339 or ms since the epoch"))?,
        item_types: text(p, "type")
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        role: text(p, "role"),
        success: match p.get("success").map(String::as_str) {
            None | Some("") => None,
            Some("true" | "1") => Some(true),
            Some("false" | "0") => Some(false),
            Some(_) => return Err(bad("success", "expected true or false")),
        },
        result_code: text(p, "code"),
        min_duration_ms: duration("min_duration")?,
        max_duration_ms: duration("max_duration")?,
        min_severity: match text(p, "severity") {
            None => None,
            Some(s) => Some(
                LEVELS
                    .into_iter()
                    .find(|l| l.as_str().eq_ignore_ascii_case(&s))
                    .or_else(|| SeverityLevel::parse(&s))
                    .ok_or_else(|| {
                        bad(
                            "severity",
                            "expected Verbose, Information, Warning, Error, Critical or 0-4",
                        )
                    })?,
            ),
        },
        user_id: text(p, "user"),
        session_id: text(p, "session"),
        operation_id: text(p, "operation"),
        before: seq("before")?,
        after: seq("after")?,
        limit: match num::<u32>(p, "limit") {
            Ok(Some(l)) if (1..=MAX_SEARCH_LIMIT).contains(&l) => Some(l),
            Ok(None) => None,
            _ => return Err(bad("limit", "expected a whole number from 1 to 500")),
        },
    };
    if let (Some(f), Some(t)) = (q.from_ms, q.to_ms)
        && f > t
    {
        return Err(bad("to", "before from"));
    }
    if let (Some(a), Some(b)) = (q.min_duration_ms, q.max_duration_ms)
        && a > b
    {
        return Err(bad("max_duration", "below min_duration"));
    }
    if q.before.is_some() && q.after.is_some() {
        return Err(bad("after", "before and after cannot be given together"));
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &[(&str, &str)]) -> HashMap<String, String> {
        q.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn terms_are_words_lowercased_once() {
        let q = SearchQuery {
            text: Some("GET /api/Orders?id=7 orders \"x\" ǂtab".into()),
            ..SearchQuery::default()
        };
        assert_eq!(q.terms(), ["get", "api", "orders", "id", "7", "x", "tab"]);
        assert_eq!(
            q.match_expression(),
            "\"get\"* AND \"api\"* AND \"orders\"* AND \"id\" AND \"7\" AND \"x\" AND \"tab\"*"
        );
    }

    #[test]
    fn parameters_parse_or_say_what_is_wrong() {
        let q = search_query(&params(&[
            ("q", "boom"),
            ("type", "trace, exception"),
            ("severity", "warning"),
            ("success", "false"),
            ("min_duration", "1.5"),
            ("before", "42"),
            ("limit", "10"),
        ]))
        .unwrap();
        assert_eq!(q.item_types, ["trace", "exception"]);
        assert_eq!(q.min_severity, Some(SeverityLevel::Warning));
        assert_eq!(q.success, Some(false));
        assert_eq!(q.min_duration_ms, Some(1.5));
        assert_eq!((q.before, q.limit), (Some(42), Some(10)));
        for (k, v, message) in [
            ("limit", "0", "limit: expected a whole number from 1 to 500"),
            ("limit", "x", "limit"),
            ("severity", "loud", "severity"),
            ("success", "maybe", "success"),
            ("min_duration", "-1", "min_duration"),
            ("max_duration", "NaN", "max_duration"),
            ("from", "yesterday", "from"),
            ("before", "abc", "before"),
        ] {
            let e = search_query(&params(&[(k, v)])).unwrap_err();
            assert!(e.0.starts_with(message), "{k}={v}: {}", e.0);
        }
        assert!(search_query(&params(&[("from", "20"), ("to", "10")])).is_err());
        assert!(search_query(&params(&[("min_duration", "20"), ("max_duration", "10")])).is_err());
        assert!(search_query(&params(&[("before", "20"), ("after", "10")])).is_err());
        assert_eq!(
            search_query(&params(&[("q", "  "), ("type", "")])).unwrap(),
            SearchQuery::default()
        );
    }
}
