//! The usage tools' queries: users, sessions, events, funnels, retention, user flows and
//! cohorts, over the page views, custom events and requests that carry a user id.
//!
//! Each tool reads the same compact activity stream (time, kind, user, session, name, role)
//! of the items in its time range through one covering index, `items_usage`, and computes
//! its answer in memory: one indexed range scan per page, whatever the tool. The index is
//! partial, so items without a user id (most server telemetry) cost nothing more to write.
//!
//! - Funnels: a user reaches step `k` when they did steps `1..=k` in that order, the last
//!   within the window of the first; with several tries the best one counts.
//! - Retention: users fall into the period (UTC day, or week from Monday) of their first
//!   start action in the range; a user returned in period `n` after it when they did the
//!   return action during that period.
//! - User flows: from the first time a session did the start action, the next steps of that
//!   session, ended by `(session end)` when it had no more.
//! - Cohorts: saved definitions, "users who did X (or anything) in the last N days", kept in
//!   the `usage_cohorts` table and resolved each time they filter a tool.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::StoreError;
use crate::store::Store;

/// The condition of the `items_usage` index, repeated in queries so that they may use it.
const USAGE_ITEMS: &str =
    "user_id IS NOT NULL AND item_type IN ('pageView', 'customEvent', 'request')";

pub(crate) const DAY_MS: i64 = 86_400_000;
pub(crate) const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

/// What an activity was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub(crate) enum Kind {
    #[serde(rename = "pageView")]
    PageView,
    #[serde(rename = "customEvent")]
    Event,
    #[serde(rename = "request")]
    Request,
}

impl Kind {
    fn of(item_type: &str) -> Option<Self> {
        match item_type {
            "pageView" => Some(Self::PageView),
            "customEvent" => Some(Self::Event),
            "request" => Some(Self::Request),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::PageView => "pageView",
            Self::Event => "customEvent",
            Self::Request => "request",
        }
    }
}

/// One page view, event or request of a user, with its strings interned.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Activity {
    pub(crate) seq: i64,
    pub(crate) ts_ms: i64,
    pub(crate) kind: Kind,
    pub(crate) user: u32,
    /// `NONE` without a session id.
    pub(crate) session: u32,
    pub(crate) name: u32,
    pub(crate) role: u32,
}

const NONE: u32 = u32::MAX;

/// The activities of a time range, by time, and their strings.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    pub(crate) rows: Vec<Activity>,
    strings: Vec<String>,
}

impl Stream {
    pub(crate) fn text(&self, id: u32) -> &str {
        self.strings.get(id as usize).map_or("", String::as_str)
    }
}

/// The time range, time buckets and user filter of a tool.
#[derive(Clone, Debug)]
pub(crate) struct Range {
    pub(crate) from_ms: i64,
    pub(crate) to_ms: i64,
    /// Bucket width for charts.
    pub(crate) grain: Grain,
    /// Only these users (a cohort), when set.
    pub(crate) cohort: Option<i64>,
}

/// The width of a chart's time bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Grain {
    Minute,
    Hour,
    Day,
    Week,
}

impl Grain {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "minute" => Some(Self::Minute),
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
        }
    }

    /// The index of the bucket holding `ms`: minutes, hours, UTC days, or weeks from Monday.
    pub(crate) fn bucket(self, ms: i64) -> i64 {
        match self {
            Self::Minute => ms.div_euclid(MINUTE_MS),
            Self::Hour => ms.div_euclid(HOUR_MS),
            Self::Day => ms.div_euclid(DAY_MS),
            // 1970-01-01 was a Thursday: day 4 (a Monday) starts week 1.
            Self::Week => (ms.div_euclid(DAY_MS) + 3).div_euclid(7),
        }
    }

    /// When bucket `b` starts, in ms since the epoch.
    pub(crate) fn start(self, b: i64) -> i64 {
        match self {
            Self::Minute => b.saturating_mul(MINUTE_MS),
            Self::Hour => b.saturating_mul(HOUR_MS),
            Self::Day => b.saturating_mul(DAY_MS),
            Self::Week => (b.saturating_mul(7) - 3).saturating_mul(DAY_MS),
        }
    }

    /// Bucket `b`'s label: `YYYY-MM-DD HH:MM` for minutes and hours, `YYYY-MM-DD` otherwise.
    pub(crate) fn label(self, b: i64) -> String {
        let ms = self.start(b);
        let (y, m, d) = civil(ms.div_euclid(DAY_MS));
        match self {
            Self::Minute | Self::Hour => format!(
                "{y:04}-{m:02}-{d:02} {:02}:{:02}",
                ms.rem_euclid(DAY_MS) / HOUR_MS,
                ms.rem_euclid(HOUR_MS) / MINUTE_MS
            ),
            _ => format!("{y:04}-{m:02}-{d:02}"),
        }
    }
}

/// The calendar date of a day since 1970-01-01 (proleptic Gregorian).
pub(crate) fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The most buckets a chart has: a wider range gets a coarser grain.
const MAX_BUCKETS: i64 = 400;

impl Range {
    /// The buckets from the first activity (or the range's start) to the range's end or the
    /// last activity, at most [`MAX_BUCKETS`] (the newest).
    fn buckets(&self, stream: &Stream) -> (Grain, Vec<i64>) {
        // The whole range, unless the activities are far inside it (an open range).
        let from = match stream.rows.first() {
            Some(a) if a.ts_ms - self.from_ms > 31 * DAY_MS => a.ts_ms,
            _ => self.from_ms,
        };
        let to = match stream.rows.last() {
            Some(a) if self.to_ms.saturating_sub(a.ts_ms) > 31 * DAY_MS => a.ts_ms,
            _ => self.to_ms.saturating_sub(1),
        }
        .max(from);
        let mut grain = self.grain;
        if grain == Grain::Minute && grain.bucket(to) - grain.bucket(from) >= MAX_BUCKETS {
            grain = Grain::Hour;
        }
        if grain == Grain::Hour && grain.bucket(to) - grain.bucket(from) >= MAX_BUCKETS {
            grain = Grain::Day;
        }
        if grain == Grain::Day && grain.bucket(to) - grain.bucket(from) >= MAX_BUCKETS {
            grain = Grain::Week;
        }
        let (a, b) = (grain.bucket(from), grain.bucket(to));
        let a = a.max(b - MAX_BUCKETS + 1);
        (grain, (a..=b).collect())
    }
}

/// A fast hasher for the in-memory counting (ids and short strings from this database, so
/// no defence against chosen collisions is needed beyond what the caps give): multiply and
/// rotate per 8 bytes.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fx>>;
type FastSet<K> = HashSet<K, std::hash::BuildHasherDefault<Fx>>;

/// Interns strings as the rows stream by.
#[derive(Default)]
struct Interner {
    ids: FastMap<String, u32>,
    strings: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: Option<&str>) -> u32 {
        let Some(s) = s else { return NONE };
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strings.len().min(NONE as usize - 1) as u32;
        self.strings.push(s.to_owned());
        self.ids.insert(s.to_owned(), id);
        id
    }
}

/// The users a cohort holds now; `None` when there is no such cohort.
fn cohort_users(
    conn: &Connection,
    id: i64,
    now_ms: i64,
) -> rusqlite::Result<Option<HashSet<String>>> {
    let Some(c) = cohort(conn, id)? else {
        return Ok(None);
    };
    let since = now_ms.saturating_sub(i64::from(c.days).saturating_mul(DAY_MS));
    let sql = format!(
        "SELECT DISTINCT user_id FROM items INDEXED BY items_usage
         WHERE {USAGE_ITEMS} AND ts_ms >= ?1 AND (?2 IS NULL OR name = ?2)"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let users = stmt
        .query_map(params![since, c.event], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<HashSet<String>>>()?;
    Ok(Some(users))
}

/// The activities in `range` (of its cohort's users), by time.
pub(crate) fn stream(conn: &Connection, range: &Range, now_ms: i64) -> rusqlite::Result<Stream> {
    let only = match range.cohort {
        Some(id) => Some(cohort_users(conn, id, now_ms)?.unwrap_or_default()),
        None => None,
    };
    let sql = format!(
        "SELECT rowid, ts_ms, item_type, user_id, session_id, name, cloud_role
         FROM items INDEXED BY items_usage
         WHERE {USAGE_ITEMS} AND ts_ms >= ?1 AND ts_ms < ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![range.from_ms, range.to_ms])?;
    let mut strings = Interner::default();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let Some(kind) = Kind::of(r.get_ref(2)?.as_str().unwrap_or("")) else {
            continue;
        };
        let user = r.get_ref(3)?.as_str_or_null()?;
        let Some(user_text) = user else { continue };
        if let Some(only) = &only
            && !only.contains(user_text)
        {
            continue;
        }
        out.push(Activity {
            seq: r.get(0)?,
            ts_ms: r.get(1)?,
            kind,
            user: strings.id(user),
            session: strings.id(r.get_ref(4)?.as_str_or_null()?),
            name: strings.id(Some(r.get_ref(5)?.as_str_or_null()?.unwrap_or(""))),
            role: strings.id(r.get_ref(6)?.as_str_or_null()?),
        });
    }
    out.sort_by_key(|a| (a.ts_ms, a.seq));
    Ok(Stream {
        rows: out,
        strings: strings.strings,
    })
}

/// A time series: one value per bucket.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct SeriesData {
    pub(crate) name: String,
    pub(crate) values: Vec<f64>,
}

/// A chart's buckets and series.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Chart {
    pub(crate) grain: Option<Grain>,
    /// Bucket labels.
    pub(crate) labels: Vec<String>,
    /// Bucket starts, ms since the epoch.
    pub(crate) starts: Vec<i64>,
    pub(crate) series: Vec<SeriesData>,
}

/// Counts distinct keys (or all rows when `distinct` gives `None`) per bucket and series:
/// the `top` series by total, the rest summed as `other`.
fn chart<K: Eq + std::hash::Hash + Copy>(
    range: &Range,
    stream: &Stream,
    rows: &[Activity],
    series_of: impl Fn(&Activity) -> Option<String>,
    distinct: impl Fn(&Activity) -> Option<K>,
    top: usize,
) -> Chart {
    let (grain, buckets) = range.buckets(stream);
    let first = buckets.first().copied().unwrap_or(0);
    let n = buckets.len();
    // Per series: distinct keys per bucket, counts per bucket, distinct keys and count in all.
    type PerSeries<K> = (Vec<FastSet<K>>, Vec<f64>, FastSet<K>, f64);
    let mut per: HashMap<String, PerSeries<K>> = HashMap::new();
    for a in rows {
        let Some(s) = series_of(a) else { continue };
        let b = grain.bucket(a.ts_ms) - first;
        if b < 0 || b as usize >= n {
            continue;
        }
        let e = per.entry(s).or_insert_with(|| {
            (
                vec![FastSet::default(); n],
                vec![0.0; n],
                FastSet::default(),
                0.0,
            )
        });
        match distinct(a) {
            Some(k) => {
                e.0[b as usize].insert(k);
                e.2.insert(k);
            }
            None => {
                e.1[b as usize] += 1.0;
                e.3 += 1.0;
            }
        }
    }
    let mut all: Vec<(String, Vec<f64>, f64)> = per
        .into_iter()
        .map(|(name, (sets, counts, total_set, total))| {
            let values = sets
                .iter()
                .zip(&counts)
                .map(|(s, c)| s.len() as f64 + c)
                .collect();
            (name, values, total_set.len() as f64 + total)
        })
        .collect();
    all.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    let mut series: Vec<SeriesData> = Vec::new();
    let mut other: Option<Vec<f64>> = None;
    for (i, (name, values, _)) in all.into_iter().enumerate() {
        if i < top {
            series.push(SeriesData { name, values });
        } else {
            let o = other.get_or_insert_with(|| vec![0.0; n]);
            for (o, v) in o.iter_mut().zip(values) {
                *o += v;
            }
        }
    }
    if let Some(values) = other {
        series.push(SeriesData {
            name: "(other)".into(),
            values,
        });
    }
    Chart {
        grain: Some(grain),
        labels: buckets.iter().map(|b| grain.label(*b)).collect(),
        starts: buckets.iter().map(|b| grain.start(*b)).collect(),
        series,
    }
}

/// A name by the users and items that had it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct TopName {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) users: u64,
    pub(crate) sessions: u64,
    pub(crate) count: u64,
}

fn top_names(stream: &Stream, kinds: &[Kind], limit: usize) -> Vec<TopName> {
    // Per kind and name: its users, sessions and count.
    type PerName = (FastSet<u32>, FastSet<u32>, u64);
    let mut per: FastMap<(Kind, u32), PerName> = FastMap::default();
    for a in stream.rows.iter().filter(|a| kinds.contains(&a.kind)) {
        let e = per.entry((a.kind, a.name)).or_default();
        e.0.insert(a.user);
        if a.session != NONE {
            e.1.insert(a.session);
        }
        e.2 += 1;
    }
    let mut out: Vec<TopName> = per
        .into_iter()
        .map(|((kind, name), (users, sessions, count))| TopName {
            kind,
            name: stream.text(name).to_owned(),
            users: users.len() as u64,
            sessions: sessions.len() as u64,
            count,
        })
        .collect();
    out.sort_by(|a, b| {
        (b.users, b.count)
            .cmp(&(a.users, a.count))
            .then_with(|| (&a.name, a.kind).cmp(&(&b.name, b.kind)))
    });
    out.truncate(limit);
    out
}

/// How the users chart is split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Split {
    /// The cloud role of the user's latest item.
    Role,
    /// A context tag of the user's latest page view or event (`ai.device.browser`, ...).
    Tag(&'static str),
    /// A custom property of the user's latest page view or event.
    Property(String),
}

impl Split {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "" => None,
            "role" => Some(Self::Role),
            "browser" => Some(Self::Tag("ai.device.browser")),
            "os" => Some(Self::Tag("ai.device.os")),
            "account" => Some(Self::Tag("ai.user.accountId")),
            "country" => Some(Self::Tag("ai.location.country")),
            p => Some(Self::Property(
                p.strip_prefix("property:").unwrap_or(p).to_owned(),
            )),
        }
    }
}

/// The most users whose envelope a split reads; the others count as `(unknown)`.
const SPLIT_USERS: usize = 5000;

/// The value of `split` for each user: from the envelope of their latest page view or event
/// (latest item for the role).
fn user_values(
    conn: &Connection,
    stream: &Stream,
    split: &Split,
) -> rusqlite::Result<HashMap<u32, String>> {
    let mut latest: FastMap<u32, Activity> = FastMap::default();
    for a in &stream.rows {
        if *split == Split::Role || a.kind != Kind::Request {
            latest.insert(a.user, *a);
        }
    }
    if *split == Split::Role {
        return Ok(latest
            .into_iter()
            .map(|(u, a)| {
                let r = stream.text(a.role);
                (
                    u,
                    if r.is_empty() {
                        "(none)".into()
                    } else {
                        r.to_owned()
                    },
                )
            })
            .collect());
    }
    let mut seqs: Vec<(i64, u32)> = latest.iter().map(|(u, a)| (a.seq, *u)).collect();
    seqs.sort_unstable();
    seqs.truncate(SPLIT_USERS);
    let items = crate::query::items_by_seq(conn, seqs.iter().map(|(s, _)| *s))?;
    let by_seq: HashMap<i64, u32> = seqs.into_iter().collect();
    let mut out = HashMap::new();
    for item in items {
        let Some(&user) = by_seq.get(&item.seq) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&item.raw).unwrap_or_default();
        let value = match split {
            Split::Tag(t) => v["tags"][*t].as_str().map(str::to_owned),
            Split::Property(p) => {
                let p = &v["data"]["baseData"]["properties"][p.as_str()];
                p.as_str()
                    .map(str::to_owned)
                    .or_else(|| (!p.is_null()).then(|| p.to_string()))
            }
            Split::Role => None,
        };
        out.insert(
            user,
            value
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "(unknown)".into()),
        );
    }
    Ok(out)
}

/// The Users tool's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct UsersReport {
    pub(crate) users: u64,
    pub(crate) sessions: u64,
    /// Page views, events and requests.
    pub(crate) items: u64,
    /// Distinct users per bucket, by split value when split.
    pub(crate) chart: Chart,
    /// Page views and events by distinct users, most first.
    pub(crate) top: Vec<TopName>,
    /// The users, most active first (at most 100): (user, sessions, items, last seen ms).
    pub(crate) list: Vec<(String, u64, u64, i64)>,
}

pub(crate) fn users(
    conn: &Connection,
    range: &Range,
    split: Option<&Split>,
    now_ms: i64,
) -> rusqlite::Result<UsersReport> {
    let s = stream(conn, range, now_ms)?;
    let values = match split {
        Some(split) => Some(user_values(conn, &s, split)?),
        None => None,
    };
    let chart = chart(
        range,
        &s,
        &s.rows,
        |a| match &values {
            Some(v) => Some(
                v.get(&a.user)
                    .cloned()
                    .unwrap_or_else(|| "(unknown)".into()),
            ),
            None => Some("users".into()),
        },
        |a| Some(a.user),
        6,
    );
    let mut per_user: FastMap<u32, (FastSet<u32>, u64, i64)> = FastMap::default();
    let mut sessions = FastSet::default();
    for a in &s.rows {
        let e = per_user.entry(a.user).or_default();
        if a.session != NONE {
            e.0.insert(a.session);
            sessions.insert(a.session);
        }
        e.1 += 1;
        e.2 = e.2.max(a.ts_ms);
    }
    let users = per_user.len() as u64;
    let mut list: Vec<(String, u64, u64, i64)> = per_user
        .into_iter()
        .map(|(u, (ss, n, last))| (s.text(u).to_owned(), ss.len() as u64, n, last))
        .collect();
    list.sort_by(|a, b| (b.2, &a.0).cmp(&(a.2, &b.0)));
    list.truncate(100);
    Ok(UsersReport {
        users,
        sessions: sessions.len() as u64,
        items: s.rows.len() as u64,
        chart,
        top: top_names(&s, &[Kind::PageView, Kind::Event], 20),
        list,
    })
}

/// One session in the Sessions tool.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct SessionRow {
    pub(crate) session: String,
    pub(crate) user: String,
    pub(crate) start_ms: i64,
    pub(crate) duration_ms: i64,
    pub(crate) items: u64,
    /// The first and last page view or event.
    pub(crate) first: String,
    pub(crate) last: String,
}

/// The Sessions tool's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct SessionsReport {
    pub(crate) sessions: u64,
    pub(crate) users: u64,
    /// Median session length, ms (first to last item).
    pub(crate) median_duration_ms: i64,
    /// Mean items per session.
    pub(crate) items_per_session: f64,
    /// Sessions per bucket of their start.
    pub(crate) chart: Chart,
    /// The latest sessions (at most 100), newest first.
    pub(crate) list: Vec<SessionRow>,
}

pub(crate) fn sessions(
    conn: &Connection,
    range: &Range,
    now_ms: i64,
) -> rusqlite::Result<SessionsReport> {
    let s = stream(conn, range, now_ms)?;
    // Per session: its first activity, last time, items, first and last names.
    let mut per: FastMap<u32, (Activity, i64, u64, u32, u32)> = FastMap::default();
    for a in s.rows.iter().filter(|a| a.session != NONE) {
        let e = per.entry(a.session).or_insert((*a, a.ts_ms, 0, NONE, NONE));
        e.1 = a.ts_ms;
        e.2 += 1;
        if a.kind != Kind::Request {
            if e.3 == NONE {
                e.3 = a.name;
            }
            e.4 = a.name;
        }
    }
    let starts: Vec<Activity> = per.values().map(|e| e.0).collect();
    let mut sorted_starts = starts.clone();
    sorted_starts.sort_by_key(|a| (a.ts_ms, a.seq));
    let chart = chart(
        range,
        &s,
        &sorted_starts,
        |_| Some("sessions".into()),
        |a| Some(a.session),
        1,
    );
    let users: FastSet<u32> = starts.iter().map(|a| a.user).collect();
    let mut durations: Vec<i64> = per.values().map(|e| e.1 - e.0.ts_ms).collect();
    durations.sort_unstable();
    let items: u64 = per.values().map(|e| e.2).sum();
    let mut list: Vec<SessionRow> = per
        .into_iter()
        .map(|(session, (first, last, n, a, b))| SessionRow {
            session: s.text(session).to_owned(),
            user: s.text(first.user).to_owned(),
            start_ms: first.ts_ms,
            duration_ms: last - first.ts_ms,
            items: n,
            first: s.text(a).to_owned(),
            last: s.text(b).to_owned(),
        })
        .collect();
    list.sort_by(|a, b| (b.start_ms, &a.session).cmp(&(a.start_ms, &b.session)));
    let count = list.len() as u64;
    list.truncate(100);
    Ok(SessionsReport {
        sessions: count,
        users: users.len() as u64,
        median_duration_ms: durations.get(durations.len() / 2).copied().unwrap_or(0),
        items_per_session: if count == 0 {
            0.0
        } else {
            items as f64 / count as f64
        },
        chart,
        list,
    })
}

/// The Events tool's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct EventsReport {
    pub(crate) count: u64,
    pub(crate) users: u64,
    /// Items per bucket, for the most used names.
    pub(crate) chart: Chart,
    pub(crate) top: Vec<TopName>,
}

pub(crate) fn events(
    conn: &Connection,
    range: &Range,
    kinds: &[Kind],
    now_ms: i64,
) -> rusqlite::Result<EventsReport> {
    let s = stream(conn, range, now_ms)?;
    let rows: Vec<Activity> = s
        .rows
        .iter()
        .filter(|a| kinds.contains(&a.kind))
        .copied()
        .collect();
    let chart = chart(
        range,
        &s,
        &rows,
        |a| Some(s.text(a.name).to_owned()),
        |_| None::<u32>,
        6,
    );
    let users: FastSet<u32> = rows.iter().map(|a| a.user).collect();
    Ok(EventsReport {
        count: rows.len() as u64,
        users: users.len() as u64,
        chart,
        top: top_names(&s, kinds, 50),
    })
}

/// One step of a funnel.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct FunnelStep {
    pub(crate) name: String,
    /// Users who reached it (and every step before it, in order).
    pub(crate) users: u64,
    /// Of the users of the first step, in percent.
    pub(crate) percent_of_first: f64,
    /// Of the users of the step before, in percent.
    pub(crate) percent_of_previous: f64,
    /// Users who reached the step before but not this one.
    pub(crate) dropped: u64,
}

/// The Funnels tool's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct FunnelReport {
    pub(crate) window_ms: i64,
    pub(crate) steps: Vec<FunnelStep>,
    /// When a step was asked for: the users who reached the step before it but not it
    /// (at most 500), with their latest session.
    pub(crate) dropped_users: Vec<(String, Option<String>)>,
}

/// How far each user got: the most steps done in order, the last within `window_ms` of the
/// first, over every try (each occurrence of the first step starts one).
fn reached(s: &Stream, steps: &[u32], window_ms: i64) -> HashMap<u32, usize> {
    let mut by_user: FastMap<u32, Vec<&Activity>> = FastMap::default();
    for a in &s.rows {
        by_user.entry(a.user).or_default().push(a);
    }
    let mut out = HashMap::new();
    let Some(&first) = steps.first() else {
        return out;
    };
    for (user, acts) in by_user {
        let mut best = 0;
        for (i, start) in acts.iter().enumerate() {
            if start.name != first {
                continue;
            }
            // From this try, the earliest next step each time leaves the most room.
            let mut k = 1;
            let mut cut = false;
            for a in &acts[i + 1..] {
                if k == steps.len() {
                    break;
                }
                if a.ts_ms - start.ts_ms > window_ms {
                    cut = true;
                    break;
                }
                if a.name == steps[k] {
                    k += 1;
                }
            }
            best = best.max(k);
            // A later try sees fewer of the same actions: only the window can make it better.
            if best == steps.len() || !cut {
                break;
            }
        }
        if best > 0 {
            out.insert(user, best);
        }
    }
    out
}

pub(crate) fn funnel(
    s: &Stream,
    names: &[String],
    window_ms: i64,
    dropped_at: Option<usize>,
) -> FunnelReport {
    let ids: HashMap<&str, u32> = (0..s.strings.len() as u32)
        .map(|i| (s.text(i), i))
        .collect();
    // A step nobody did matches nothing.
    let steps: Vec<u32> = names
        .iter()
        .map(|n| ids.get(n.as_str()).copied().unwrap_or(NONE - 1))
        .collect();
    let reached = reached(s, &steps, window_ms);
    let count = |k: usize| reached.values().filter(|r| **r >= k).count() as u64;
    let first = count(1);
    let steps: Vec<FunnelStep> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let users = count(i + 1);
            let before = if i == 0 { users } else { count(i) };
            let pct = |n: u64, of: u64| {
                if of == 0 {
                    0.0
                } else {
                    100.0 * n as f64 / of as f64
                }
            };
            FunnelStep {
                name: name.clone(),
                users,
                percent_of_first: pct(users, first),
                percent_of_previous: pct(users, before),
                dropped: before - users,
            }
        })
        .collect();
    let mut dropped_users = Vec::new();
    if let Some(k) = dropped_at.filter(|k| *k >= 2 && *k <= names.len()) {
        let mut latest: HashMap<u32, u32> = HashMap::new();
        for a in s.rows.iter().filter(|a| a.session != NONE) {
            latest.insert(a.user, a.session);
        }
        let mut users: Vec<(String, Option<String>)> = reached
            .iter()
            .filter(|(_, r)| **r == k - 1)
            .map(|(u, _)| {
                (
                    s.text(*u).to_owned(),
                    latest.get(u).map(|x| s.text(*x).to_owned()),
                )
            })
            .collect();
        users.sort();
        users.truncate(500);
        dropped_users = users;
    }
    FunnelReport {
        window_ms,
        steps,
        dropped_users,
    }
}

/// One cohort row of the retention table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct RetentionRow {
    /// The period's label (its first day).
    pub(crate) period: String,
    /// Users whose first start action was in this period.
    pub(crate) users: u64,
    /// Of them, those who did the return action `n` periods later (`n` = 1, 2, ...), up to
    /// the last period of the range.
    pub(crate) returned: Vec<u64>,
}

/// The Retention tool's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct RetentionReport {
    pub(crate) grain: Option<Grain>,
    pub(crate) cohorts: Vec<RetentionRow>,
    /// Over all cohorts that reach that far: the percentage returned `n` periods later
    /// (`n` = 1, 2, ...).
    pub(crate) overall_percent: Vec<f64>,
}

pub(crate) fn retention(
    s: &Stream,
    range: &Range,
    start: Option<&str>,
    back: Option<&str>,
    grain: Grain,
    now_ms: i64,
) -> RetentionReport {
    let is = |a: &Activity, want: Option<&str>| want.is_none_or(|w| s.text(a.name) == w);
    let mut first: FastMap<u32, i64> = FastMap::default();
    for a in s.rows.iter().filter(|a| is(a, start)) {
        first.entry(a.user).or_insert(grain.bucket(a.ts_ms));
    }
    let last = grain
        .bucket(range.to_ms.min(now_ms).saturating_sub(1))
        .max(s.rows.last().map_or(i64::MIN, |a| grain.bucket(a.ts_ms)));
    let mut returns: FastSet<(u32, i64)> = FastSet::default();
    for a in s.rows.iter().filter(|a| is(a, back)) {
        returns.insert((a.user, grain.bucket(a.ts_ms)));
    }
    let mut cohorts: HashMap<i64, Vec<u32>> = HashMap::new();
    for (u, p) in &first {
        cohorts.entry(*p).or_default().push(*u);
    }
    let mut periods: Vec<i64> = cohorts.keys().copied().collect();
    periods.sort_unstable();
    let mut totals: Vec<(u64, u64)> = Vec::new();
    let rows = periods
        .iter()
        .map(|p| {
            let users = &cohorts[p];
            let n = (last - p).clamp(0, MAX_BUCKETS) as usize;
            let returned: Vec<u64> = (1..=n)
                .map(|k| {
                    users
                        .iter()
                        .filter(|u| returns.contains(&(**u, p + k as i64)))
                        .count() as u64
                })
                .collect();
            if totals.len() < n {
                totals.resize(n, (0, 0));
            }
            for (t, r) in totals.iter_mut().zip(&returned) {
                t.0 += r;
                t.1 += users.len() as u64;
            }
            RetentionRow {
                period: grain.label(*p),
                users: users.len() as u64,
                returned,
            }
        })
        .collect();
    RetentionReport {
        grain: Some(grain),
        cohorts: rows,
        overall_percent: totals
            .iter()
            .map(|(r, of)| {
                if *of == 0 {
                    0.0
                } else {
                    100.0 * *r as f64 / *of as f64
                }
            })
            .collect(),
    }
}

/// A node of a user flow: a name at a step, and how many sessions were there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct FlowNode {
    pub(crate) name: String,
    pub(crate) sessions: u64,
}

/// Sessions going from one node to the next.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct FlowEdge {
    /// The step of `from` (0 is the start action).
    pub(crate) step: usize,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) sessions: u64,
}

/// The User flows tool's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct FlowReport {
    pub(crate) start: String,
    /// Sessions that did the start action.
    pub(crate) sessions: u64,
    /// Per step (0: the start action), its nodes, most sessions first.
    pub(crate) steps: Vec<Vec<FlowNode>>,
    pub(crate) edges: Vec<FlowEdge>,
}

/// The name of the node for sessions with no more steps.
pub(crate) const SESSION_END: &str = "(session end)";
/// The name of the node that gathers the less frequent names of a step.
pub(crate) const OTHER: &str = "(other)";
/// The most nodes a step shows, `(other)` and `(session end)` aside.
const FLOW_NODES: usize = 6;

pub(crate) fn flows(s: &Stream, start: &str, depth: usize) -> FlowReport {
    let mut by_session: FastMap<u32, Vec<&Activity>> = FastMap::default();
    for a in s.rows.iter().filter(|a| a.session != NONE) {
        by_session.entry(a.session).or_default().push(a);
    }
    // Each session's path: the start, then up to `depth` steps, then the end if reached.
    let mut paths: Vec<Vec<String>> = Vec::new();
    for acts in by_session.values() {
        let Some(i) = acts.iter().position(|a| s.text(a.name) == start) else {
            continue;
        };
        let mut path = vec![start.to_owned()];
        path.extend(
            acts[i + 1..]
                .iter()
                .take(depth)
                .map(|a| s.text(a.name).to_owned()),
        );
        if path.len() <= depth {
            path.push(SESSION_END.into());
        }
        paths.push(path);
    }
    // The names each step shows: its most frequent, the rest as (other).
    let mut shown: Vec<HashSet<String>> = Vec::new();
    for step in 0..=depth {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for p in &paths {
            if let Some(n) = p.get(step) {
                *counts.entry(n.as_str()).or_default() += 1;
            }
        }
        let mut names: Vec<(&str, u64)> = counts
            .into_iter()
            .filter(|(n, _)| *n != SESSION_END)
            .collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let mut keep: HashSet<String> = names
            .into_iter()
            .take(FLOW_NODES)
            .map(|(n, _)| n.to_owned())
            .collect();
        keep.insert(SESSION_END.into());
        shown.push(keep);
    }
    let node = |step: usize, n: &str| {
        if shown.get(step).is_some_and(|k| k.contains(n)) {
            n.to_owned()
        } else {
            OTHER.to_owned()
        }
    };
    let mut nodes: Vec<HashMap<String, u64>> = vec![HashMap::new(); depth + 1];
    let mut edges: HashMap<(usize, String, String), u64> = HashMap::new();
    for p in &paths {
        let names: Vec<String> = p.iter().enumerate().map(|(i, n)| node(i, n)).collect();
        for (i, n) in names.iter().enumerate() {
            if let Some(step) = nodes.get_mut(i) {
                *step.entry(n.clone()).or_default() += 1;
            }
            if let Some(next) = names.get(i + 1) {
                *edges.entry((i, n.clone(), next.clone())).or_default() += 1;
            }
        }
    }
    let steps: Vec<Vec<FlowNode>> = nodes
        .into_iter()
        .map(|m| {
            let mut v: Vec<FlowNode> = m
                .into_iter()
                .map(|(name, sessions)| FlowNode { name, sessions })
                .collect();
            // Most sessions first; (other) and (session end) last.
            v.sort_by(|a, b| {
                let rank = |n: &str| u8::from(n == OTHER) + 2 * u8::from(n == SESSION_END);
                (rank(&a.name), b.sessions, &a.name).cmp(&(rank(&b.name), a.sessions, &b.name))
            });
            v
        })
        .filter(|v| !v.is_empty())
        .collect();
    let mut edges: Vec<FlowEdge> = edges
        .into_iter()
        .map(|((step, from, to), sessions)| FlowEdge {
            step,
            from,
            to,
            sessions,
        })
        .collect();
    edges.sort_by(|a, b| {
        (a.step, b.sessions, &a.from, &a.to).cmp(&(b.step, a.sessions, &b.from, &b.to))
    });
    FlowReport {
        start: start.to_owned(),
        sessions: paths.len() as u64,
        steps,
        edges,
    }
}

/// Names by distinct users, most first, with the mean position of each in its users'
/// activity (for suggesting a funnel, a retention or a flow start).
pub(crate) fn suggestions(s: &Stream) -> Vec<(String, u64)> {
    top_names(s, &[Kind::PageView, Kind::Event], 50)
        .into_iter()
        .map(|t| (t.name, t.users))
        .collect()
}

/// A default funnel: up to three names with the most users, in the order their users first
/// did them.
pub(crate) fn default_funnel(s: &Stream) -> Vec<String> {
    let top: Vec<u32> = {
        let mut per: HashMap<u32, HashSet<u32>> = HashMap::new();
        for a in s.rows.iter().filter(|a| a.kind != Kind::Request) {
            per.entry(a.name).or_default().insert(a.user);
        }
        let mut v: Vec<(u32, usize)> = per.into_iter().map(|(n, u)| (n, u.len())).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| s.text(a.0).cmp(s.text(b.0))));
        v.into_iter().take(3).map(|(n, _)| n).collect()
    };
    // Mean rank of each name's first time within its users' activity.
    let mut firsts: HashMap<(u32, u32), usize> = HashMap::new();
    let mut seen: HashMap<u32, usize> = HashMap::new();
    for a in &s.rows {
        let i = seen.entry(a.user).or_default();
        if top.contains(&a.name) {
            firsts.entry((a.user, a.name)).or_insert(*i);
        }
        *i += 1;
    }
    let mut ranked: Vec<(f64, u32)> = top
        .iter()
        .map(|n| {
            let v: Vec<usize> = firsts
                .iter()
                .filter(|((_, m), _)| m == n)
                .map(|(_, i)| *i)
                .collect();
            (v.iter().sum::<usize>() as f64 / v.len().max(1) as f64, *n)
        })
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    ranked
        .into_iter()
        .map(|(_, n)| s.text(n).to_owned())
        .collect()
}

/// A saved set of users: those who did `event` (anything when `None`) in the last `days`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Cohort {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) event: Option<String>,
    pub(crate) days: u32,
    pub(crate) created_ms: i64,
    /// Users in it now (filled in by [`cohorts`]).
    pub(crate) users: u64,
}

fn cohort(conn: &Connection, id: i64) -> rusqlite::Result<Option<Cohort>> {
    conn.prepare_cached(
        "SELECT id, name, event, days, created_ms FROM usage_cohorts WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(Cohort {
            id: r.get(0)?,
            name: r.get(1)?,
            event: r.get(2)?,
            days: r.get::<_, i64>(3)?.clamp(0, i64::from(u32::MAX)) as u32,
            created_ms: r.get(4)?,
            users: 0,
        })
    })
    .optional()
}

/// Every cohort, by name, with its users now.
pub(crate) fn cohorts(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<Cohort>> {
    let ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM usage_cohorts ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for id in ids {
        if let Some(mut c) = cohort(conn, id)? {
            c.users = cohort_users(conn, id, now_ms)?.map_or(0, |u| u.len() as u64);
            out.push(c);
        }
    }
    Ok(out)
}

/// Saves a cohort (replacing one of the same name) and returns its id.
pub(crate) fn save_cohort(
    conn: &Connection,
    name: &str,
    event: Option<&str>,
    days: u32,
    now_ms: i64,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO usage_cohorts (name, event, days, created_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(name) DO UPDATE SET event = excluded.event, days = excluded.days",
        params![name, event, days, now_ms],
    )?;
    conn.query_row(
        "SELECT id FROM usage_cohorts WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
}

/// Deletes a cohort; whether there was one.
pub(crate) fn delete_cohort(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM usage_cohorts WHERE id = ?1", [id])? > 0)
}

/// The reads of the usage tools, on the store's read connection (errors of kind
/// [`Read`](crate::StoreErrorKind::Read)).
impl Store {
    /// Runs one usage query with the current time.
    pub(crate) async fn usage_query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let now = now_ms();
        self.read(move |c| f(c, now)).await
    }
}

/// Now, in ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_and_buckets() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_454), (2026, 1, 1));
        assert_eq!(civil(-1), (1969, 12, 31));
        // 2026-11-30 is a Monday: its week starts that day.
        let monday = 20_787 * DAY_MS;
        assert_eq!(civil(20_787), (2026, 11, 30));
        let w = Grain::Week.bucket(monday + 5 * DAY_MS);
        assert_eq!(Grain::Week.start(w), monday);
        assert_eq!(Grain::Week.bucket(monday - 1), w - 1);
        assert_eq!(
            Grain::Hour.label(Grain::Hour.bucket(monday + 3 * HOUR_MS)),
            "2026-11-30 03:00"
        );
    }
}
