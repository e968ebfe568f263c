//! The usage tools' pages and their JSON API: Users, Sessions, Events and Cohorts here;
//! Funnels, Retention and User flows in [`paths`](super::paths).
//!
//! Every tool reads its parameters from the URL (GET forms: a view is a link): `days` (the
//! range ends now and starts that many days ago; 7 by default) or `from` and `to`
//! (RFC 3339 or ms since the epoch), `grain` (`hour`, `day`, `week`; by default hours up to
//! two days, days beyond), and `cohort` (a saved cohort's id: only its users). The API
//! (`/api/usage/...`) takes the same parameters as the page and answers what the page shows
//! as JSON.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use rusqlite::Connection;

use super::chart::{self, Series, Style};
use super::{escape, page, server_error, url_segment};
use crate::error::chain;
use crate::store::Store;
use crate::usage::{self, Cohort, DAY_MS, Grain, Kind, Range, Split};

pub(super) type Params = HashMap<String, String>;

/// The routes of the usage pages and their API.
pub(super) fn routes() -> Router<Store> {
    Router::new()
        .route("/users", get(users_page))
        .route("/sessions", get(sessions_page))
        .route("/sessions/{id}", get(session_page))
        .route("/events", get(events_page))
        .route("/cohorts", get(cohorts_page).post(create_cohort))
        .route("/cohorts/{id}/delete", post(delete_cohort))
        .route("/api/usage/users", get(users_api))
        .route("/api/usage/sessions", get(sessions_api))
        .route("/api/usage/events", get(events_api))
        .route("/api/usage/cohorts", get(cohorts_api))
}

/// A parameter that does not parse: answered 400, naming it.
pub(super) type Bad = crate::query::BadParam;

pub(super) fn bad(name: &str) -> Bad {
    Bad::new(name)
}

pub(super) fn text<'a>(p: &'a Params, k: &str) -> Option<&'a str> {
    p.get(k).map(|v| v.trim()).filter(|v| !v.is_empty())
}

pub(super) fn num<T: std::str::FromStr>(p: &Params, k: &str) -> Result<Option<T>, Bad> {
    text(p, k)
        .map(|v| v.parse().map_err(|_| bad(k)))
        .transpose()
}

/// A time parameter: milliseconds since the epoch, or an ISO 8601 time.
pub(super) use crate::query::time_ms as time;

/// The range, grain and cohort of a tool, from its parameters: `days` (default
/// `default_days`), `from`, `to`, `grain`, `cohort`.
pub(super) fn range(p: &Params, default_days: u32) -> Result<Range, Bad> {
    let now = usage::now_ms();
    let days: u32 = num(p, "days")?.unwrap_or(default_days).clamp(1, 3660);
    // A minute of slack: a browser's clock may be a little ahead.
    let to = time(p, "to")?.unwrap_or(now + 60_000);
    let from = time(p, "from")?.unwrap_or(now - i64::from(days) * DAY_MS);
    let grain = match text(p, "grain") {
        Some(g) => Grain::parse(g).ok_or_else(|| bad("grain"))?,
        None if to - from <= 2 * DAY_MS => Grain::Hour,
        None => Grain::Day,
    };
    Ok(Range {
        from_ms: from,
        to_ms: to.max(from),
        grain,
        cohort: num(p, "cohort")?,
    })
}

/// The links between the usage tools, keeping the cohort.
pub(super) fn tools(current: &str, p: &Params) -> String {
    let keep = text(p, "cohort")
        .map(|c| format!("?cohort={}", url_segment(c)))
        .unwrap_or_default();
    let mut out = String::from("<p class=\"tools\">");
    for (path, label) in [
        ("/users", "Users"),
        ("/sessions", "Sessions"),
        ("/events", "Events"),
        ("/funnels", "Funnels"),
        ("/retention", "Retention"),
        ("/flows", "User flows"),
        ("/cohorts", "Cohorts"),
    ] {
        if path == current {
            let _ = write!(out, "<b>{label}</b> · ");
        } else {
            let _ = write!(out, "<a href=\"{path}{keep}\">{label}</a> · ");
        }
    }
    out.push_str("<a href=\"/metrics\">Metrics</a></p>");
    out
}

/// The grains a chart over time can be drawn by (`auto` besides).
pub(super) const TIME_GRAINS: &[&str] = &["hour", "day", "week"];

/// The common inputs of a tool's form: days, the grain when `grains` offers any, and the cohort
/// (`cohorts` are the choices).
pub(super) fn range_inputs(
    p: &Params,
    default_days: u32,
    grains: &[&str],
    cohorts: &[Cohort],
) -> String {
    let mut out = format!(
        "<label>last <input name=\"days\" type=\"number\" min=\"1\" style=\"width:5em\" value=\"{}\"> days</label> ",
        escape(text(p, "days").unwrap_or(&default_days.to_string()))
    );
    if !grains.is_empty() {
        let grain = text(p, "grain").unwrap_or("");
        out.push_str("<label>by <select name=\"grain\"><option value=\"\">auto</option>");
        for g in grains {
            let _ = write!(
                out,
                "<option{}>{g}</option>",
                if *g == grain { " selected" } else { "" }
            );
        }
        out.push_str("</select></label> ");
    }
    out.push_str("<label>cohort <select name=\"cohort\"><option value=\"\">all users</option>");
    let current = text(p, "cohort").unwrap_or("");
    for c in cohorts {
        let _ = write!(
            out,
            "<option value=\"{}\"{}>{}</option>",
            c.id,
            if c.id.to_string() == current {
                " selected"
            } else {
                ""
            },
            escape(&c.name)
        );
    }
    out.push_str("</select></label> ");
    out
}

/// A `<datalist>` of names, for the tools' name inputs.
pub(super) fn names_list(id: &str, names: &[(String, u64)]) -> String {
    let mut out = format!("<datalist id=\"{id}\">");
    for (n, users) in names {
        let _ = write!(
            out,
            "<option value=\"{}\">{users} users</option>",
            escape(n)
        );
    }
    out.push_str("</datalist>");
    out
}

/// The time of `ms` as `YYYY-MM-DD HH:MM:SS` (UTC).
pub(super) fn when(ms: i64) -> String {
    let (y, m, d) = usage::civil(ms.div_euclid(DAY_MS));
    let s = ms.rem_euclid(DAY_MS) / 1000;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// A duration in ms as people read it: `850 ms`, `12 s`, `4 min 5 s`, `2 h 10 min`.
pub(super) fn duration(ms: i64) -> String {
    let s = ms / 1000;
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{s} s")
    } else if ms < 3_600_000 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, s / 60 % 60)
    }
}

/// A cohort filter that names no cohort: 404.
pub(super) fn no_cohort() -> Response {
    (
        StatusCode::NOT_FOUND,
        page("Not found", "<p>No such cohort.</p>"),
    )
        .into_response()
}

/// Runs a usage query with the cohorts (for the form) alongside; a missing cohort is `None`.
pub(super) async fn with_cohorts<T: Send + 'static>(
    store: &Store,
    range: &Range,
    f: impl FnOnce(&Connection, i64) -> rusqlite::Result<T> + Send + 'static,
) -> Result<Option<(T, Vec<Cohort>)>, crate::StoreError> {
    let cohort = range.cohort;
    store
        .usage_query(move |c, now| {
            let cohorts = usage::cohorts(c, now)?;
            if cohort.is_some_and(|id| !cohorts.iter().any(|x| x.id == id)) {
                return Ok(None);
            }
            Ok(Some((f(c, now)?, cohorts)))
        })
        .await
}

/// Answers a usage query as JSON.
pub(super) async fn api<T: serde::Serialize + Send + 'static>(
    store: &Store,
    range: &Range,
    f: impl FnOnce(&Connection, i64) -> rusqlite::Result<T> + Send + 'static,
) -> Response {
    match with_cohorts(store, range, f).await {
        Ok(Some((v, _))) => Json(v).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such cohort").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, chain(&e)).into_response(),
    }
}

/// The result of a page's query: the page's answer, or the response to give instead.
macro_rules! or_respond {
    ($e:expr) => {
        match $e {
            Ok(Some(v)) => v,
            Ok(None) => return $crate::web::usage::no_cohort(),
            Err(e) => return $crate::web::server_error(e),
        }
    };
}
pub(super) use or_respond;

fn series(chart: &usage::Chart) -> Vec<Series> {
    chart
        .series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            values: s.values.clone(),
        })
        .collect()
}

/// Draws a chart of the usage module.
pub(super) fn draw(id: &str, c: &usage::Chart, unit: &str, style: Style) -> String {
    chart::time_chart(id, &c.labels, &series(c), unit, style)
}

fn split_param(p: &Params) -> Option<Split> {
    text(p, "split").and_then(Split::parse)
}

async fn users_api(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let r = match range(&p, 7) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let split = split_param(&p);
    let q = r.clone();
    api(&store, &r, move |c, now| {
        usage::users(c, &q, split.as_ref(), now)
    })
    .await
}

async fn users_page(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let r = match range(&p, 7) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let split = split_param(&p);
    let q = r.clone();
    let (u, cohorts) = or_respond!(
        with_cohorts(&store, &r, move |c, now| usage::users(
            c,
            &q,
            split.as_ref(),
            now
        ))
        .await
    );
    let mut body = tools("/users", &p);
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/users\">{}<label>split by <input name=\"split\" list=\"splits\" size=\"14\" value=\"{}\" placeholder=\"role, browser, os or a property\"></label>\
         <datalist id=\"splits\"><option value=\"role\"><option value=\"browser\"><option value=\"os\"><option value=\"account\"><option value=\"country\"></datalist> <button>Show</button></form>",
        range_inputs(&p, 7, TIME_GRAINS, &cohorts),
        escape(text(&p, "split").unwrap_or(""))
    );
    let _ = write!(
        body,
        "<p><span id=\"unique-users\">{}</span> users, <span id=\"unique-sessions\">{}</span> sessions, \
         <span id=\"usage-items\">{}</span> page views, events and requests.</p>",
        u.users, u.sessions, u.items
    );
    if u.items == 0 {
        body.push_str("<p id=\"empty\">No page views, events or requests with a user id in this range. The browser SDK sends them with its <code>ai_user</code> and <code>ai_session</code> ids; tracelink's server layer reads those cookies.</p>");
    }
    body.push_str("<h2>Users over time</h2>");
    body.push_str(&draw("users-chart", &u.chart, "users", Style::Area));
    body.push_str("<h2>Top pages and events by users</h2>");
    let bars: Vec<(String, f64)> = u
        .top
        .iter()
        .map(|t| (t.name.clone(), t.users as f64))
        .collect();
    body.push_str(&chart::bar_chart("top-chart", &bars, "users"));
    body.push_str("<table id=\"top\"><tr><th>name</th><th>type</th><th>users</th><th>sessions</th><th>count</th></tr>");
    for t in &u.top {
        let _ = write!(
            body,
            "<tr data-name=\"{n}\" data-users=\"{}\"><td>{n}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.users,
            t.kind.as_str(),
            t.users,
            t.sessions,
            t.count,
            n = escape(&t.name)
        );
    }
    body.push_str("</table><h2>Most active users</h2><table id=\"user-list\"><tr><th>user</th><th>sessions</th><th>items</th><th>last seen (UTC)</th></tr>");
    for (user, sessions, items, last) in &u.list {
        let _ = write!(
            body,
            "<tr data-user=\"{e}\"><td><a href=\"/sessions?user={}\">{e}</a></td><td>{sessions}</td><td>{items}</td><td>{}</td></tr>",
            url_segment(user),
            when(*last),
            e = escape(user)
        );
    }
    body.push_str("</table>");
    page("Users", &body).into_response()
}

async fn sessions_api(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let r = match range(&p, 7) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let user = text(&p, "user").map(str::to_owned);
    let q = r.clone();
    api(&store, &r, move |c, now| {
        let mut s = usage::sessions(c, &q, now)?;
        if let Some(u) = user {
            s.list.retain(|x| x.user == u);
        }
        Ok(s)
    })
    .await
}

async fn sessions_page(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let r = match range(&p, 7) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let q = r.clone();
    let (s, cohorts) =
        or_respond!(with_cohorts(&store, &r, move |c, now| usage::sessions(c, &q, now)).await);
    let user = text(&p, "user");
    let mut body = tools("/sessions", &p);
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/sessions\">{}<label>user <input name=\"user\" value=\"{}\"></label> <button>Show</button></form>",
        range_inputs(&p, 7, TIME_GRAINS, &cohorts),
        escape(user.unwrap_or(""))
    );
    let _ = write!(
        body,
        "<p><span id=\"session-count\">{}</span> sessions of <span id=\"session-users\">{}</span> users; \
         median length <span id=\"median-length\">{}</span>, <span id=\"items-per-session\">{}</span> items per session.</p>",
        s.sessions,
        s.users,
        duration(s.median_duration_ms),
        chart::number(s.items_per_session)
    );
    body.push_str("<h2>Sessions over time</h2>");
    body.push_str(&draw("sessions-chart", &s.chart, "sessions", Style::Area));
    let _ = write!(
        body,
        "<h2>{}</h2><table id=\"sessions\"><tr><th>session</th><th>user</th><th>start (UTC)</th><th>length</th><th>items</th><th>first</th><th>last</th></tr>",
        match user {
            Some(u) => format!("Sessions of {}", escape(u)),
            None => "Latest sessions".into(),
        }
    );
    for x in s.list.iter().filter(|x| user.is_none_or(|u| x.user == u)) {
        let _ = write!(
            body,
            "<tr class=\"session\" data-session=\"{e}\"><td><a href=\"/sessions/{}\">{e}</a></td><td><a href=\"/sessions?user={}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            url_segment(&x.session),
            url_segment(&x.user),
            escape(&x.user),
            when(x.start_ms),
            duration(x.duration_ms),
            x.items,
            escape(&x.first),
            escape(&x.last),
            e = escape(&x.session)
        );
    }
    body.push_str("</table>");
    page("Sessions", &body).into_response()
}

/// The colors of the item types on a session's timeline.
fn kind_color(item_type: &str) -> &'static str {
    match item_type {
        "pageView" => "#4e79a7",
        "customEvent" => "#59a14f",
        "request" => "#f28e2b",
        _ => "#999",
    }
}

/// One session: a strip of its items over time (one lane per type, failures marked), and
/// every item with its offset from the session's start, its properties and its operation.
async fn session_page(State(store): State<Store>, Path(id): Path<String>) -> Response {
    let items = match store.session_items(&id).await {
        Ok(i) => i,
        Err(e) => return server_error(e),
    };
    let start = items.first().map_or(0, |i| i.ts_ms);
    let end = items.last().map_or(0, |i| i.ts_ms);
    let user = items.iter().find_map(|i| i.user_id.clone());
    let mut body = tools("", &HashMap::new());
    if items.is_empty() {
        body.push_str("<p id=\"empty\">No page views, events or requests in this session.</p>");
    } else {
        let _ = write!(
            body,
            "<p>User <a id=\"session-user\" href=\"/sessions?user={}\">{}</a>; started {} UTC; \
             <span id=\"session-length\">{}</span>; <span id=\"session-items\">{}</span> items.</p>",
            url_segment(user.as_deref().unwrap_or("")),
            escape(user.as_deref().unwrap_or("")),
            when(start),
            duration(end - start),
            items.len()
        );
    }
    // The strip: one lane per type.
    const LEFT: f64 = 110.0;
    const WIDTH: f64 = 640.0;
    let lanes = ["pageView", "customEvent", "request"];
    let span = (end - start).max(1) as f64;
    let _ = write!(
        body,
        "<svg id=\"session-strip\" width=\"{}\" height=\"96\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">",
        LEFT + WIDTH + 20.0
    );
    for (i, lane) in lanes.iter().enumerate() {
        let y = 20.0 + 26.0 * i as f64;
        let _ = write!(
            body,
            "<text x=\"0\" y=\"{:.1}\">{lane}</text><line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>",
            y + 4.0,
            LEFT + WIDTH
        );
    }
    for i in &items {
        let lane = lanes.iter().position(|l| *l == i.item_type).unwrap_or(2);
        let x = LEFT + (i.ts_ms - start) as f64 / span * WIDTH;
        let failed = i.success == Some(false);
        let _ = write!(
            body,
            "<a href=\"#item-{}\"><circle class=\"mark{}\" cx=\"{x:.1}\" cy=\"{:.1}\" r=\"6\" fill=\"{}\"{}><title>+{} {} {}</title></circle></a>",
            i.seq,
            if failed { " failed" } else { "" },
            20.0 + 26.0 * lane as f64,
            kind_color(&i.item_type),
            if failed {
                " stroke=\"#b00\" stroke-width=\"2\""
            } else {
                ""
            },
            duration(i.ts_ms - start),
            escape(&i.item_type),
            escape(i.name.as_deref().unwrap_or(""))
        );
    }
    body.push_str("</svg><table id=\"session\"><tr><th>time (UTC)</th><th>after</th><th>type</th><th>name</th><th>role</th><th>result</th><th>properties</th><th>operation</th></tr>");
    for i in &items {
        let op = i.operation_id.as_deref().unwrap_or("");
        let props: Vec<String> = super::properties(&i.raw)
            .into_iter()
            .map(|(k, v)| format!("{}={}", escape(&k), escape(&chart::truncate(&v, 60))))
            .collect();
        let _ = write!(
            body,
            "<tr id=\"item-{}\" class=\"{}\"><td>{}</td><td>+{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/operations/{}\">{}</a></td></tr>",
            i.seq,
            if i.success == Some(false) {
                "failed"
            } else {
                "ok"
            },
            escape(&i.timestamp),
            duration(i.ts_ms - start),
            escape(&i.item_type),
            escape(i.name.as_deref().unwrap_or("")),
            escape(i.cloud_role.as_deref().unwrap_or("")),
            escape(i.result_code.as_deref().unwrap_or("")),
            props.join("<br>"),
            url_segment(op),
            escape(op)
        );
    }
    body.push_str("</table>");
    page(&format!("Session {id}"), &body).into_response()
}

/// The kinds the Events tool shows: `type` is `pageView`, `customEvent`, `request` or
/// `all`; page views and custom events by default.
fn kinds(p: &Params) -> Result<Vec<Kind>, Bad> {
    Ok(match text(p, "type") {
        None => vec![Kind::PageView, Kind::Event],
        Some("all") => vec![Kind::PageView, Kind::Event, Kind::Request],
        Some("pageView") => vec![Kind::PageView],
        Some("customEvent") => vec![Kind::Event],
        Some("request") => vec![Kind::Request],
        Some(_) => return Err(bad("type")),
    })
}

async fn events_api(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let (r, k) = match range(&p, 7).and_then(|r| Ok((r, kinds(&p)?))) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let q = r.clone();
    api(&store, &r, move |c, now| usage::events(c, &q, &k, now)).await
}

async fn events_page(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let (r, k) = match range(&p, 7).and_then(|r| Ok((r, kinds(&p)?))) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let q = r.clone();
    let (ev, cohorts) =
        or_respond!(with_cohorts(&store, &r, move |c, now| usage::events(c, &q, &k, now)).await);
    let mut body = tools("/events", &p);
    let current = text(&p, "type").unwrap_or("");
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/events\">{}<label>type <select name=\"type\">",
        range_inputs(&p, 7, TIME_GRAINS, &cohorts)
    );
    for (v, label) in [
        ("", "page views and custom events"),
        ("pageView", "page views"),
        ("customEvent", "custom events"),
        ("request", "requests"),
        ("all", "all three"),
    ] {
        let _ = write!(
            body,
            "<option value=\"{v}\"{}>{label}</option>",
            if v == current { " selected" } else { "" }
        );
    }
    let _ = write!(
        body,
        "</select></label> <button>Show</button></form><p><span id=\"event-count\">{}</span> items from <span id=\"event-users\">{}</span> users.</p>",
        ev.count, ev.users
    );
    body.push_str("<h2>Over time (the most frequent names)</h2>");
    body.push_str(&draw("events-chart", &ev.chart, "items", Style::Line));
    body.push_str("<h2>Top names</h2><table id=\"top-events\"><tr><th>name</th><th>type</th><th>count</th><th>users</th><th>sessions</th></tr>");
    for t in &ev.top {
        let _ = write!(
            body,
            "<tr data-name=\"{n}\" data-count=\"{}\"><td>{n}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.count,
            t.kind.as_str(),
            t.count,
            t.users,
            t.sessions,
            n = escape(&t.name)
        );
    }
    body.push_str("</table>");
    page("Events", &body).into_response()
}

async fn cohorts_api(State(store): State<Store>) -> Response {
    match store.usage_query(usage::cohorts).await {
        Ok(c) => Json(c).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, chain(&e)).into_response(),
    }
}

async fn cohorts_page(State(store): State<Store>) -> Response {
    let range = Range {
        from_ms: usage::now_ms() - 30 * DAY_MS,
        to_ms: usage::now_ms() + 60_000,
        grain: Grain::Day,
        cohort: None,
    };
    let (cohorts, names) = match store
        .usage_query(move |c, now| {
            Ok((
                usage::cohorts(c, now)?,
                usage::suggestions(&usage::stream(c, &range, now)?),
            ))
        })
        .await
    {
        Ok(v) => v,
        Err(e) => return server_error(e),
    };
    let mut body = tools("/cohorts", &HashMap::new());
    body.push_str("<p>A cohort is a set of users: those who did something (or anything) in the last days. Each tool can be limited to a cohort's users.</p>");
    body.push_str("<table id=\"cohorts\"><tr><th>cohort</th><th>who</th><th>users now</th><th>see</th><th></th></tr>");
    for c in &cohorts {
        let _ = write!(
            body,
            "<tr class=\"cohort\" data-cohort=\"{}\" data-users=\"{}\"><td>{}</td><td>did {} in the last {} days</td><td>{}</td><td>",
            c.id,
            c.users,
            escape(&c.name),
            c.event
                .as_deref()
                .map_or_else(|| "anything".to_owned(), |e| format!("“{}”", escape(e))),
            c.days,
            c.users
        );
        for (path, label) in [
            ("/users", "users"),
            ("/sessions", "sessions"),
            ("/events", "events"),
            ("/funnels", "funnels"),
            ("/retention", "retention"),
            ("/flows", "flows"),
        ] {
            let _ = write!(body, "<a href=\"{path}?cohort={}\">{label}</a> ", c.id);
        }
        let _ = write!(
            body,
            "</td><td><form method=\"post\" action=\"/cohorts/{}/delete\"><button>Delete</button></form></td></tr>",
            c.id
        );
    }
    body.push_str("</table><h2>New cohort</h2><form id=\"new-cohort\" method=\"post\" action=\"/cohorts\">\
        <label>name <input name=\"name\" required></label> \
        <label>users who did <input name=\"event\" list=\"names\" placeholder=\"anything\"></label> \
        <label>in the last <input name=\"days\" type=\"number\" min=\"1\" value=\"7\" size=\"4\"> days</label> <button>Save</button></form>");
    body.push_str(&names_list("names", &names));
    page("Cohorts", &body).into_response()
}

/// Whether a form post comes from a page of this collector: a browser sends `Origin` with
/// every post, and another site's page must not change what is saved here.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

async fn create_cohort(
    State(store): State<Store>,
    headers: HeaderMap,
    Form(p): Form<Params>,
) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-origin form post").into_response();
    }
    let Some(name) = text(&p, "name").map(|n| chart::truncate(n, 100)) else {
        return bad("name").into_response();
    };
    let event = text(&p, "event").map(str::to_owned);
    let days: u32 = match num(&p, "days") {
        Ok(d) => d.unwrap_or(7).clamp(1, 3660),
        Err(e) => return e.into_response(),
    };
    match store
        .usage_query(move |c, now| usage::save_cohort(c, &name, event.as_deref(), days, now))
        .await
    {
        Ok(_) => Redirect::to("/cohorts").into_response(),
        Err(e) => server_error(e),
    }
}

async fn delete_cohort(
    State(store): State<Store>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-origin form post").into_response();
    }
    match store
        .usage_query(move |c, _| usage::delete_cohort(c, id))
        .await
    {
        Ok(_) => Redirect::to("/cohorts").into_response(),
        Err(e) => server_error(e),
    }
}
