//! The search index: FTS5 tables with one document per item (its rowid is the item's
//! `seq`), written in the writer's transaction with the item.
//!
//! A document holds the words of the item's name (or message), its URL, the rest of a message
//! longer than the name column keeps, an exception's chain of types and messages, and its
//! property values, as SQLite's `unicode61` tokenizer splits them. It also holds one token per
//! filter value, a *facet*: item type, role, user, session, result code, failure and severity.
//! A facet token is `ǂ`, a letter naming the field and, for free-form values, 48 bits of a
//! hash of the value in hex. Search terms never contain `ǂ` (it is removed from both the
//! words indexed and the words searched), so no word a user types matches a facet; and a
//! filter on one user among a million items is one index lookup instead of a scan. Hashes
//! can collide, so reads check the columns again.
//!
//! Words are split and lowercased here (runs of letters and digits), and the tables' `ascii`
//! tokenizer only splits them at the spaces put between them; ids of 16 hexadecimal digits
//! or more are left out (see [`is_hex_id`]).
//!
//! The tables are contentless (`content=''`) with `detail=none` and `columnsize=0`: they keep
//! which tokens each item has, not where they are nor the text, which keeps the write path and
//! the file small; matches are highlighted from the items' own columns, and a query is a set
//! of words and filters (no phrases).
//!
//! The index is split into shards by `seq`, [`SHARD_ITEMS`] items each (`items_search_{id}`,
//! listed in `search_shards` with the first `seq` each holds), so that retention never deletes
//! from it: deleting single documents from an FTS5 table costs more than writing them, and at
//! the retention bound every item written is an item deleted. Retention drops a shard once
//! every item it indexes is gone; until then reads skip the documents of deleted items, which
//! find no row to join.

use rusqlite::{CachedStatement, Connection, OptionalExtension, Transaction, params};
use tracelink_core::model::SeverityLevel;

use super::row::Row;

/// Items per shard of the index.
pub(crate) const SHARD_ITEMS: i64 = 100_000;

/// The list of shards: each holds the items from its `first_seq` up to the next shard's
/// (an empty range when the next one starts lower), and `last_seq` is the newest item the
/// newest shard indexed.
const SHARDS: &str = "CREATE TABLE IF NOT EXISTS search_shards (
    id        INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL DEFAULT 0
)";

/// The name of shard `id`.
pub(crate) fn shard_table(id: i64) -> String {
    format!("items_search_{id}")
}

/// The shards, oldest first: `(id, first seq)`.
pub(crate) fn shards(conn: &Connection) -> rusqlite::Result<Vec<(i64, i64)>> {
    conn.prepare_cached("SELECT id, first_seq FROM search_shards ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// The shards with the range of `seq`s each answers for, in id order: `(id, first, end)`,
/// `end` exclusive (`None`: no end), where `end` is the lowest first `seq` of the newer
/// shards. Documents outside its range are those of items since deleted whose `seq` a newer
/// item took again (a new item's `seq` is the largest in use plus one): that item went into
/// a new shard.
pub(crate) fn shard_ranges(conn: &Connection) -> rusqlite::Result<Vec<(i64, i64, Option<i64>)>> {
    let mut out = Vec::new();
    let mut end: Option<i64> = None;
    for (id, first) in shards(conn)?.into_iter().rev() {
        out.push((id, first, end));
        end = Some(end.map_or(first, |e| e.min(first)));
    }
    out.reverse();
    Ok(out)
}

fn create_shard(conn: &Connection, id: i64, first_seq: i64) -> rusqlite::Result<()> {
    let t = shard_table(id);
    // Segments are merged 16 at a time rather than 4 (a quarter of the rewriting on the write
    // path, for a few more segments to read per query), and a writer's transaction is
    // written as one segment rather than one per MiB (16 MiB of pending tokens at most).
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE {t} USING fts5(text, content = '', detail = none, columnsize = 0,
             tokenize = 'ascii');
         INSERT INTO {t} ({t}, rank) VALUES ('automerge', 16);
         INSERT INTO {t} ({t}, rank) VALUES ('hashsize', 16777216);"
    ))?;
    conn.execute(
        "INSERT INTO search_shards (id, first_seq) VALUES (?1, ?2)",
        params![id, first_seq],
    )?;
    Ok(())
}

fn insert(conn: &Connection, shard: i64, seq: i64, doc: &Doc<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO {} (rowid, text) VALUES (?1, ?2)",
        shard_table(shard)
    ))?
    .execute(params![seq, doc.text()])?;
    Ok(())
}

/// The character that starts every facet token.
pub(crate) const FACET_MARK: char = 'ǂ';

/// A field that has facet tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Facet {
    ItemType,
    Role,
    User,
    Session,
    ResultCode,
}

impl Facet {
    fn letter(self) -> char {
        match self {
            Facet::ItemType => 't',
            Facet::Role => 'r',
            Facet::User => 'u',
            Facet::Session => 's',
            Facet::ResultCode => 'c',
        }
    }
}

/// The token of `value` in `field`: `ǂ`, the field's letter, and 48 bits of the value's
/// FNV-1a hash in hex.
pub(crate) fn facet(field: Facet, value: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!(
        "{FACET_MARK}{}{:012x}",
        field.letter(),
        h & 0xffff_ffff_ffff
    )
}

/// The token of failed items.
pub(crate) const FAILED: &str = "ǂf";

/// The token of a severity: `ǂv0` (Verbose) to `ǂv4` (Critical).
pub(crate) fn severity_token(level: SeverityLevel) -> String {
    format!("{FACET_MARK}v{}", level as u8)
}

/// The severity an item is searched by: a trace's as sent, else Information (what the SDKs
/// give `trackTrace` by default); an exception's as sent, else Error. Other items have none.
pub(crate) fn effective_severity(
    item_type: &str,
    sent: Option<SeverityLevel>,
) -> Option<SeverityLevel> {
    match item_type {
        "trace" => Some(sent.unwrap_or(SeverityLevel::Information)),
        "exception" => Some(sent.unwrap_or(SeverityLevel::Error)),
        _ => None,
    }
}

/// What one document is made of.
struct Doc<'a> {
    words: [Option<&'a str>; 3],
    item_type: &'a str,
    role: Option<&'a str>,
    user: Option<&'a str>,
    session: Option<&'a str>,
    result_code: Option<&'a str>,
    success: Option<bool>,
    severity: Option<SeverityLevel>,
}

/// The words of `text` as they are indexed and searched: runs of letters and digits (`ǂ`
/// excepted), lowercased.
pub(crate) fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric() || c == FACET_MARK)
        .filter(|w| !w.is_empty())
}

/// Appends `word` lowercased.
pub(crate) fn push_lowercase(out: &mut String, word: &str) {
    if word.is_ascii() {
        let start = out.len();
        out.push_str(word);
        out[start..].make_ascii_lowercase();
    } else {
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
}

/// Whether `word` is an id of 16 hexadecimal digits or more (a trace, span or request id in
/// a header or property): not indexed as a word. Each is a word of its own, which would make
/// the index grow by one entry for every id; operations are found by id with their filter.
pub(crate) fn is_hex_id(word: &str) -> bool {
    word.len() >= 16 && word.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Doc<'_> {
    /// The document: its words lowercased and separated by spaces (the table's `ascii`
    /// tokenizer splits there and nowhere else inside them), then the facets.
    fn text(&self) -> String {
        let mut out = String::new();
        for w in self.words.into_iter().flatten().flat_map(words) {
            if !is_hex_id(w) {
                push_lowercase(&mut out, w);
                out.push(' ');
            }
        }
        let mut add = |t: String| {
            out.push_str(&t);
            out.push(' ');
        };
        add(facet(Facet::ItemType, self.item_type));
        for (field, v) in [
            (Facet::Role, self.role),
            (Facet::User, self.user),
            (Facet::Session, self.session),
            (Facet::ResultCode, self.result_code),
        ] {
            if let Some(v) = v {
                add(facet(field, v));
            }
        }
        if self.success == Some(false) {
            add(FAILED.to_owned());
        }
        if let Some(s) = effective_severity(self.item_type, self.severity) {
            add(severity_token(s));
        }
        out
    }
}

/// Indexes the items of one transaction, in the newest shard, starting a new one every
/// [`SHARD_ITEMS`] items, and whenever an item takes the `seq` of one indexed before.
pub(super) struct Indexer<'c> {
    conn: &'c Connection,
    /// The newest shard: id and first seq.
    shard: Option<(i64, i64)>,
    /// The newest item indexed.
    last: i64,
    /// Whether this transaction indexed anything.
    added: bool,
    /// The insert into the newest shard, prepared once per transaction.
    insert: Option<CachedStatement<'c>>,
}

impl<'c> Indexer<'c> {
    pub(super) fn new(conn: &'c Connection) -> rusqlite::Result<Self> {
        let newest: Option<(i64, i64, i64)> = conn
            .prepare_cached(
                "SELECT id, first_seq, last_seq FROM search_shards ORDER BY id DESC LIMIT 1",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        Ok(Self {
            conn,
            shard: newest.map(|(id, first, _)| (id, first)),
            last: newest.map_or(0, |n| n.2),
            added: false,
            insert: None,
        })
    }

    /// Indexes item `seq`, just inserted from `row`.
    pub(super) fn add(&mut self, seq: i64, row: &Row) -> rusqlite::Result<()> {
        match self.shard {
            Some((_, first)) if seq > self.last && seq < first.saturating_add(SHARD_ITEMS) => {}
            current => {
                let id = current.map_or(1, |(id, _)| id + 1);
                create_shard(self.conn, id, seq)?;
                self.shard = Some((id, seq));
                self.insert = None;
            }
        }
        self.last = seq;
        self.added = true;
        let insert = match &mut self.insert {
            Some(s) => s,
            none => {
                let id = self.shard.map_or(1, |s| s.0);
                none.insert(self.conn.prepare_cached(&format!(
                    "INSERT INTO {} (rowid, text) VALUES (?1, ?2)",
                    shard_table(id)
                ))?)
            }
        };
        let doc = Doc {
            words: [
                row.name.as_deref(),
                row.url.as_deref(),
                Some(row.search_text.as_str()).filter(|t| !t.is_empty()),
            ],
            item_type: &row.item_type,
            role: row.cloud_role.as_deref(),
            user: row.user_id.as_deref(),
            session: row.session_id.as_deref(),
            result_code: row.result_code.as_deref(),
            success: row.success,
            severity: row.severity,
        };
        insert.execute(params![seq, doc.text()])?;
        Ok(())
    }

    /// Records the newest item indexed, in the transaction.
    pub(super) fn finish(self) -> rusqlite::Result<()> {
        if let (true, Some((id, _))) = (self.added, self.shard) {
            self.conn
                .prepare_cached("UPDATE search_shards SET last_seq = ?1 WHERE id = ?2")?
                .execute(params![self.last, id])?;
        }
        Ok(())
    }
}

/// Drops the shards whose items are all gone: those older than the shard holding the oldest
/// item (all but the newest when there are no items).
pub(super) fn prune(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let oldest: Option<i64> = tx.query_row("SELECT MIN(seq) FROM items", [], |r| r.get(0))?;
    for (id, first, end) in shard_ranges(tx)? {
        let gone = match (end, oldest) {
            (Some(end), Some(oldest)) => end <= oldest || end <= first,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if gone {
            tx.execute_batch(&format!("DROP TABLE {}", shard_table(id)))?;
            tx.execute("DELETE FROM search_shards WHERE id = ?1", [id])?;
        }
    }
    Ok(())
}

/// Creates the list of shards, and indexes the items of a database made before the index,
/// from their columns (their property values are not read back from the stored bodies: those
/// items are found by name, URL and filters).
pub(super) fn create(conn: &Connection) -> rusqlite::Result<()> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'search_shards')",
        [],
        |r| r.get(0),
    )?;
    if exists {
        let has_last: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('search_shards') WHERE name = 'last_seq')",
            [],
            |r| r.get(0),
        )?;
        if !has_last {
            conn.execute_batch(
                "ALTER TABLE search_shards ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0",
            )?;
        }
        return Ok(());
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(SHARDS)?;
    let mut n = 0u64;
    {
        let mut read = tx.prepare(
            "SELECT seq, item_type, name, url, cloud_role, user_id, session_id, result_code, success
             FROM items ORDER BY seq",
        )?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            if n == 0 {
                create_shard(&tx, 1, seq)?;
            }
            let item_type: String = r.get(1)?;
            let name: Option<String> = r.get(2)?;
            let url: Option<String> = r.get(3)?;
            let role: Option<String> = r.get(4)?;
            let user: Option<String> = r.get(5)?;
            let session: Option<String> = r.get(6)?;
            let code: Option<String> = r.get(7)?;
            let severity = if item_type == "trace" {
                code.as_deref().and_then(SeverityLevel::parse)
            } else {
                None
            };
            let doc = Doc {
                words: [name.as_deref(), url.as_deref(), None],
                item_type: &item_type,
                role: role.as_deref(),
                user: user.as_deref(),
                session: session.as_deref(),
                result_code: code.as_deref(),
                success: r.get(8)?,
                severity,
            };
            insert(&tx, 1, seq, &doc)?;
            tx.execute("UPDATE search_shards SET last_seq = ?1 WHERE id = 1", [seq])?;
            n += 1;
        }
    }
    tx.commit()?;
    if n > 0 {
        tracing::info!(target: "tracelink_collector", items = n, "search index built");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(conn: &Connection, shard: i64, q: &str) -> Vec<i64> {
        let t = shard_table(shard);
        let mut s = conn
            .prepare(&format!(
                "SELECT rowid FROM {t} WHERE {t} MATCH ?1 ORDER BY rowid"
            ))
            .unwrap();
        s.query_map([q], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn token(t: String) -> String {
        format!("\"{t}\"")
    }

    #[test]
    fn facets_are_one_token_and_words_cannot_forge_them() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE items (seq INTEGER PRIMARY KEY, item_type TEXT, name TEXT, url TEXT, cloud_role TEXT, user_id TEXT, session_id TEXT, result_code TEXT, success INTEGER)")
            .unwrap();
        create(&conn).unwrap();
        let mut row = Row {
            item_type: "trace".into(),
            name: Some(format!(
                "Hello {} ǂv4 0af7651916cd43dd8448eb211c80319c",
                facet(Facet::User, "bob")
            )),
            user_id: Some("alice".into()),
            ..Row::default()
        };
        let mut index = Indexer::new(&conn).unwrap();
        index.add(1, &row).unwrap();
        row.user_id = Some("bob".into());
        row.name = Some("other words".into());
        row.severity = Some(SeverityLevel::Critical);
        index.add(2, &row).unwrap();
        index.finish().unwrap();
        assert_eq!(hits(&conn, 1, &token(facet(Facet::User, "bob"))), [2]);
        assert_eq!(hits(&conn, 1, &token(facet(Facet::User, "alice"))), [1]);
        assert_eq!(
            hits(&conn, 1, &token(severity_token(SeverityLevel::Critical))),
            [2]
        );
        assert_eq!(
            hits(&conn, 1, &token(severity_token(SeverityLevel::Information))),
            [1]
        );
        assert_eq!(hits(&conn, 1, "\"hel\"*"), [1]);
        assert_eq!(
            hits(&conn, 1, "\"0af7651916cd43dd8448eb211c80319c\""),
            [0; 0]
        );
        assert_eq!(
            hits(&conn, 1, &token(facet(Facet::ItemType, "trace"))),
            [1, 2]
        );
    }

    #[test]
    fn shards_roll_over_and_go_once_their_items_are_gone() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE items (seq INTEGER PRIMARY KEY, item_type TEXT, name TEXT, url TEXT, cloud_role TEXT, user_id TEXT, session_id TEXT, result_code TEXT, success INTEGER)")
            .unwrap();
        create(&conn).unwrap();
        let row = Row {
            item_type: "request".into(),
            ..Row::default()
        };
        let mut index = Indexer::new(&conn).unwrap();
        for seq in [1, SHARD_ITEMS, SHARD_ITEMS + 1, 2 * SHARD_ITEMS + 5] {
            conn.execute(
                "INSERT INTO items (seq, item_type) VALUES (?1, 'request')",
                [seq],
            )
            .unwrap();
            index.add(seq, &row).unwrap();
        }
        index.finish().unwrap();
        let first = |s: &[(i64, i64)]| s.iter().map(|s| s.1).collect::<Vec<_>>();
        assert_eq!(
            first(&shards(&conn).unwrap()),
            [1, SHARD_ITEMS + 1, 2 * SHARD_ITEMS + 5]
        );
        let prune_after = |upto: i64| {
            conn.execute("DELETE FROM items WHERE seq <= ?1", [upto])
                .unwrap();
            let tx = rusqlite::Transaction::new_unchecked(
                &conn,
                rusqlite::TransactionBehavior::Deferred,
            )
            .unwrap();
            prune(&tx).unwrap();
            tx.commit().unwrap();
            first(&shards(&conn).unwrap())
        };
        // Shard 1 still indexes item SHARD_ITEMS.
        assert_eq!(prune_after(1).len(), 3);
        assert_eq!(
            prune_after(SHARD_ITEMS),
            [SHARD_ITEMS + 1, 2 * SHARD_ITEMS + 5]
        );
        assert_eq!(prune_after(i64::MAX), [2 * SHARD_ITEMS + 5]);
        // A new index continues in the newest shard...
        let mut index = Indexer::new(&conn).unwrap();
        assert_eq!(index.shard.map(|s| s.0), Some(3));
        index.add(2 * SHARD_ITEMS + 6, &row).unwrap();
        index.finish().unwrap();
        // ...unless an item takes the seq of one indexed before: a new shard, and the older
        // one's range ends where it starts.
        let mut index = Indexer::new(&conn).unwrap();
        index.add(2 * SHARD_ITEMS + 6, &row).unwrap();
        index.finish().unwrap();
        assert_eq!(
            shard_ranges(&conn).unwrap(),
            [
                (3, 2 * SHARD_ITEMS + 5, Some(2 * SHARD_ITEMS + 6)),
                (4, 2 * SHARD_ITEMS + 6, None)
            ]
        );
    }
}
