//! The usage tools that follow users through their actions: Funnels, Retention and User
//! flows, each a page and a JSON API (`/api/usage/funnel`, `/api/usage/retention`,
//! `/api/usage/flows`) with the parameters of the [`usage`](super::usage) pages plus:
//!
//! - `/funnels`: `step1` … `step5` (names of page views, events or requests; a suggested
//!   funnel without them), `within` (hours from the first step to the last, 24 by default),
//!   `drop` (a step: list the users who reached the step before it but not it);
//! - `/retention`: `start` and `return` (names; anything when empty), `period` (`day` or
//!   `week`);
//! - `/flows`: `start` (a name; the page most users viewed by default) and `steps` (1 to 8,
//!   4 by default).

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::chart::{self, Series, Style};
use super::usage::{
    Bad, Params, api, bad, names_list, num, or_respond, range, range_inputs, text, tools,
    with_cohorts,
};
use super::{escape, page, url_segment};
use crate::store::Store;
use crate::usage::{self, FlowReport, Grain, HOUR_MS, OTHER, SESSION_END};

pub(super) fn routes() -> Router<Store> {
    Router::new()
        .route("/funnels", get(funnel_page))
        .route("/retention", get(retention_page))
        .route("/flows", get(flows_page))
        .route("/api/usage/funnel", get(funnel_api))
        .route("/api/usage/retention", get(retention_api))
        .route("/api/usage/flows", get(flows_api))
}

/// The most steps a funnel has.
const STEPS: usize = 5;

/// A funnel's parameters: steps (empty: suggest one), window, drill-down step.
struct FunnelQuery {
    steps: Vec<String>,
    within_ms: i64,
    drop: Option<usize>,
}

fn funnel_query(p: &Params) -> Result<FunnelQuery, Bad> {
    let steps = (1..=STEPS)
        .filter_map(|i| text(p, &format!("step{i}")).map(str::to_owned))
        .collect();
    let hours: f64 = num(p, "within")?.unwrap_or(24.0);
    if !hours.is_finite() || hours <= 0.0 {
        return Err(bad("within"));
    }
    Ok(FunnelQuery {
        steps,
        within_ms: (hours * HOUR_MS as f64).min(1e15) as i64,
        drop: num(p, "drop")?,
    })
}

/// The funnel of `q` (or a suggested one), and the names to suggest.
fn funnel(
    c: &rusqlite::Connection,
    r: &usage::Range,
    q: &FunnelQuery,
    now: i64,
) -> rusqlite::Result<(usage::FunnelReport, Vec<(String, u64)>)> {
    let s = usage::stream(c, r, now)?;
    let steps = if q.steps.is_empty() {
        usage::default_funnel(&s)
    } else {
        q.steps.clone()
    };
    Ok((
        usage::funnel(&s, &steps, q.within_ms, q.drop),
        usage::suggestions(&s),
    ))
}

async fn funnel_api(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let (r, q) = match range(&p, 7).and_then(|r| Ok((r, funnel_query(&p)?))) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let r2 = r.clone();
    api(&store, &r, move |c, now| Ok(funnel(c, &r2, &q, now)?.0)).await
}

/// The page's query string without `drop`, for drill-down links.
fn query_without(p: &Params, without: &str) -> String {
    let mut q: Vec<String> = p
        .iter()
        .filter(|(k, v)| *k != without && !v.is_empty())
        .map(|(k, v)| format!("{}={}", url_segment(k), url_segment(v)))
        .collect();
    q.sort();
    q.join("&amp;")
}

async fn funnel_page(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let (r, q) = match range(&p, 7).and_then(|r| Ok((r, funnel_query(&p)?))) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let suggested = q.steps.is_empty();
    let drop = q.drop;
    let r2 = r.clone();
    let ((f, names), cohorts) =
        or_respond!(with_cohorts(&store, &r, move |c, now| funnel(c, &r2, &q, now)).await);
    let mut body = tools("/funnels", &p);
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/funnels\">{}<label>within <input name=\"within\" type=\"number\" min=\"0.01\" step=\"any\" style=\"width:5em\" value=\"{}\"> hours</label><br>",
        range_inputs(&p, 7, &[], &cohorts),
        escape(text(&p, "within").unwrap_or("24"))
    );
    for i in 0..STEPS {
        let value = f.steps.get(i).map_or("", |s| s.name.as_str());
        let _ = write!(
            body,
            "<label>{}. <input name=\"step{}\" list=\"names\" size=\"16\" value=\"{}\"></label> ",
            i + 1,
            i + 1,
            escape(value)
        );
    }
    body.push_str("<button>Show</button></form>");
    body.push_str(&names_list("names", &names));
    if suggested && !f.steps.is_empty() {
        body.push_str("<p id=\"suggested\">A suggested funnel: the names most users did, in the order they did them. Change the steps above.</p>");
    }
    if f.steps.is_empty() {
        body.push_str("<p id=\"empty\">No page views or events yet: name at least two steps.</p>");
    }
    let bars: Vec<(String, f64)> = f
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("{}. {}", i + 1, s.name), s.users as f64))
        .collect();
    body.push_str(&chart::bar_chart("funnel-chart", &bars, "users"));
    let link = query_without(&p, "drop");
    body.push_str("<table id=\"funnel\"><tr><th>step</th><th>name</th><th>users</th><th>of the first</th><th>of the step before</th><th>dropped</th></tr>");
    for (i, s) in f.steps.iter().enumerate() {
        let dropped = if i == 0 || s.dropped == 0 {
            s.dropped.to_string()
        } else {
            format!(
                "<a href=\"/funnels?{link}&amp;drop={}\">{}</a>",
                i + 1,
                s.dropped
            )
        };
        let _ = write!(
            body,
            "<tr class=\"step\" data-step=\"{}\" data-users=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{:.1} %</td><td>{:.1} %</td><td>{dropped}</td></tr>",
            i + 1,
            s.users,
            i + 1,
            escape(&s.name),
            s.users,
            s.percent_of_first,
            s.percent_of_previous
        );
    }
    body.push_str("</table>");
    if let Some(k) = drop.filter(|k| *k >= 2 && *k <= f.steps.len()) {
        let _ = write!(
            body,
            "<h2>Users who did “{}” but not then “{}”</h2><table id=\"dropped\"><tr><th>user</th><th>latest session</th></tr>",
            escape(&f.steps[k - 2].name),
            escape(&f.steps[k - 1].name)
        );
        for (user, session) in &f.dropped_users {
            let s = session.as_deref().unwrap_or("");
            let _ = write!(
                body,
                "<tr class=\"dropped-user\" data-user=\"{e}\"><td><a href=\"/sessions?user={}\">{e}</a></td><td><a href=\"/sessions/{}\">{}</a></td></tr>",
                url_segment(user),
                url_segment(s),
                escape(s),
                e = escape(user)
            );
        }
        body.push_str("</table>");
    }
    page("Funnels", &body).into_response()
}

/// Retention's parameters: start and return names, period.
fn retention_query(p: &Params) -> Result<(Option<String>, Option<String>, Grain), Bad> {
    let grain = match text(p, "period") {
        None | Some("day") => Grain::Day,
        Some("week") => Grain::Week,
        Some(_) => return Err(bad("period")),
    };
    Ok((
        text(p, "start").map(str::to_owned),
        text(p, "return").map(str::to_owned),
        grain,
    ))
}

fn retention_range(
    p: &Params,
) -> Result<(usage::Range, Option<String>, Option<String>, Grain), Bad> {
    let (start, back, grain) = retention_query(p)?;
    let r = range(p, if grain == Grain::Week { 56 } else { 7 })?;
    Ok((r, start, back, grain))
}

async fn retention_api(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let (r, start, back, grain) = match retention_range(&p) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let r2 = r.clone();
    api(&store, &r, move |c, now| {
        let s = usage::stream(c, &r2, now)?;
        Ok(usage::retention(
            &s,
            &r2,
            start.as_deref(),
            back.as_deref(),
            grain,
            now,
        ))
    })
    .await
}

async fn retention_page(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let (r, start, back, grain) = match retention_range(&p) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let r2 = r.clone();
    let ((ret, names), cohorts) = or_respond!(
        with_cohorts(&store, &r, move |c, now| {
            let s = usage::stream(c, &r2, now)?;
            Ok((
                usage::retention(&s, &r2, start.as_deref(), back.as_deref(), grain, now),
                usage::suggestions(&s),
            ))
        })
        .await
    );
    let unit = grain.as_str();
    let mut body = tools("/retention", &p);
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/retention\">{}<label>users who did <input name=\"start\" list=\"names\" placeholder=\"anything\" value=\"{}\"></label> \
         <label>and came back to do <input name=\"return\" list=\"names\" placeholder=\"anything\" value=\"{}\"></label> \
         <label>by <select name=\"period\"><option{}>day</option><option{}>week</option></select></label> <button>Show</button></form>",
        range_inputs(&p, if grain == Grain::Week { 56 } else { 7 }, &[], &cohorts),
        escape(text(&p, "start").unwrap_or("")),
        escape(text(&p, "return").unwrap_or("")),
        if grain == Grain::Day { " selected" } else { "" },
        if grain == Grain::Week {
            " selected"
        } else {
            ""
        },
    );
    body.push_str(&names_list("names", &names));
    if ret.cohorts.is_empty() {
        body.push_str("<p id=\"empty\">No users did the start action in this range.</p>");
    }
    let labels: Vec<String> = (1..=ret.overall_percent.len())
        .map(|n| format!("{unit} {n}"))
        .collect();
    body.push_str("<h2>Returning users, all cohorts</h2>");
    body.push_str(&chart::time_chart(
        "retention-chart",
        &labels,
        &[Series {
            name: "returned (%)".into(),
            values: ret.overall_percent.clone(),
        }],
        "% of users",
        Style::Line,
    ));
    let width = ret.overall_percent.len();
    let _ = write!(
        body,
        "<h2>By cohort: users of each {unit}, and the share who came back</h2><table id=\"retention\"><tr><th>{unit}</th><th>users</th>"
    );
    for n in 1..=width {
        let _ = write!(body, "<th>{unit} {n}</th>");
    }
    body.push_str("</tr>");
    for row in &ret.cohorts {
        let _ = write!(
            body,
            "<tr class=\"cohort\" data-period=\"{}\" data-users=\"{}\"><td>{}</td><td>{}</td>",
            escape(&row.period),
            row.users,
            escape(&row.period),
            row.users
        );
        for n in 0..width {
            match row.returned.get(n) {
                Some(r) => {
                    let pct = 100.0 * *r as f64 / row.users.max(1) as f64;
                    let _ = write!(
                        body,
                        "<td data-returned=\"{r}\" title=\"{r} of {} users\" style=\"background:rgba(78,121,167,{:.2})\">{pct:.0} %</td>",
                        row.users,
                        0.08 + pct / 100.0 * 0.8
                    );
                }
                None => body.push_str("<td></td>"),
            }
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>");
    page("Retention", &body).into_response()
}

/// The most steps a flow shows after its start.
const MAX_DEPTH: usize = 8;

fn flow_query(p: &Params) -> Result<(Option<String>, usize), Bad> {
    let steps: usize = num(p, "steps")?.unwrap_or(4);
    if !(1..=MAX_DEPTH).contains(&steps) {
        return Err(bad("steps"));
    }
    Ok((text(p, "start").map(str::to_owned), steps))
}

/// The flow from `start`, or from the page most users viewed; and the names to suggest.
fn flow(
    c: &rusqlite::Connection,
    r: &usage::Range,
    start: Option<String>,
    steps: usize,
    now: i64,
) -> rusqlite::Result<(FlowReport, Vec<(String, u64)>)> {
    let s = usage::stream(c, r, now)?;
    let names = usage::suggestions(&s);
    let start = start.or_else(|| names.first().map(|(n, _)| n.clone()));
    let report = match start {
        Some(start) => usage::flows(&s, &start, steps),
        None => FlowReport::default(),
    };
    Ok((report, names))
}

async fn flows_api(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let (r, (start, steps)) = match range(&p, 7).and_then(|r| Ok((r, flow_query(&p)?))) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let r2 = r.clone();
    api(&store, &r, move |c, now| {
        Ok(flow(c, &r2, start, steps, now)?.0)
    })
    .await
}

async fn flows_page(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let (r, (start, steps)) = match range(&p, 7).and_then(|r| Ok((r, flow_query(&p)?))) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let r2 = r.clone();
    let ((f, names), cohorts) =
        or_respond!(with_cohorts(&store, &r, move |c, now| flow(c, &r2, start, steps, now)).await);
    let mut body = tools("/flows", &p);
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/flows\">{}<label>from <input name=\"start\" list=\"names\" value=\"{}\"></label> \
         <label>next <input name=\"steps\" type=\"number\" min=\"1\" max=\"{MAX_DEPTH}\" style=\"width:4em\" value=\"{steps}\"> steps</label> <button>Show</button></form>",
        range_inputs(&p, 7, &[], &cohorts),
        escape(&f.start)
    );
    body.push_str(&names_list("names", &names));
    let _ = write!(
        body,
        "<p><span id=\"flow-sessions\">{}</span> sessions did “{}”. Each column is a step; the bands are sessions going from one name to the next. The less frequent names of a step are gathered as {OTHER}.</p>",
        f.sessions,
        escape(&f.start)
    );
    body.push_str(&flow_graph(&f));
    body.push_str(
        "<table id=\"flow-edges\"><tr><th>step</th><th>from</th><th>to</th><th>sessions</th></tr>",
    );
    for e in &f.edges {
        let _ = write!(
            body,
            "<tr class=\"edge\" data-step=\"{}\" data-from=\"{}\" data-to=\"{}\" data-sessions=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.step + 1,
            escape(&e.from),
            escape(&e.to),
            e.sessions,
            e.step + 1,
            escape(&e.from),
            escape(&e.to),
            e.sessions
        );
    }
    body.push_str("</table>");
    page("User flows", &body).into_response()
}

/// The flow as an SVG: a column per step, a box per name sized by its sessions, and bands
/// from each box to the next step's boxes, as wide as the sessions they carry.
fn flow_graph(f: &FlowReport) -> String {
    const COLUMN: f64 = 210.0;
    const BOX: f64 = 14.0;
    const TOP: f64 = 28.0;
    const HEIGHT: f64 = 360.0;
    const GAP: f64 = 14.0;
    let most = f
        .steps
        .iter()
        .map(|s| s.iter().map(|n| n.sessions).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let most_nodes = f.steps.iter().map(Vec::len).max().unwrap_or(0) as f64;
    let scale = ((HEIGHT - GAP * most_nodes) / most).max(0.5);
    // Each node's top, and how much of it its in- and out-going bands used so far.
    let mut pos: HashMap<(usize, &str), (f64, f64, f64)> = HashMap::new();
    for (i, step) in f.steps.iter().enumerate() {
        let mut y = TOP;
        for n in step {
            pos.insert((i, n.name.as_str()), (y, 0.0, 0.0));
            y += (n.sessions as f64 * scale).max(2.0) + GAP;
        }
    }
    let width = 20.0 + COLUMN * f.steps.len() as f64 + 40.0;
    let mut out = format!(
        "<svg id=\"flow\" width=\"{width:.0}\" height=\"{:.0}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">",
        TOP + HEIGHT + 40.0
    );
    for i in 0..f.steps.len() {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"14\" fill=\"#666\">{}</text>",
            20.0 + COLUMN * i as f64,
            if i == 0 {
                "start".to_owned()
            } else {
                format!("step {i}")
            }
        );
    }
    for e in &f.edges {
        let (Some(&(y1, _, out1)), Some(&(y2, in2, _))) = (
            pos.get(&(e.step, e.from.as_str())),
            pos.get(&(e.step + 1, e.to.as_str())),
        ) else {
            continue;
        };
        let w = (e.sessions as f64 * scale).max(1.0);
        let x1 = 20.0 + COLUMN * e.step as f64 + BOX;
        let x2 = 20.0 + COLUMN * (e.step + 1) as f64;
        let (a, b) = (y1 + out1 + w / 2.0, y2 + in2 + w / 2.0);
        let mid = (x1 + x2) / 2.0;
        let color = if e.to == SESSION_END {
            "#bbb"
        } else {
            "#4e79a7"
        };
        let _ = write!(
            out,
            "<path class=\"band\" d=\"M{x1:.1},{a:.1} C{mid:.1},{a:.1} {mid:.1},{b:.1} {x2:.1},{b:.1}\" fill=\"none\" stroke=\"{color}\" stroke-opacity=\"0.35\" stroke-width=\"{w:.1}\">\
             <title>{} → {}: {} sessions</title></path>",
            escape(&e.from),
            escape(&e.to),
            e.sessions
        );
        if let Some(p) = pos.get_mut(&(e.step, e.from.as_str())) {
            p.2 += w;
        }
        if let Some(p) = pos.get_mut(&(e.step + 1, e.to.as_str())) {
            p.1 += w;
        }
    }
    for (i, step) in f.steps.iter().enumerate() {
        for n in step {
            let Some(&(y, _, _)) = pos.get(&(i, n.name.as_str())) else {
                continue;
            };
            let h = (n.sessions as f64 * scale).max(2.0);
            let x = 20.0 + COLUMN * i as f64;
            let fill = match n.name.as_str() {
                SESSION_END => "#999",
                OTHER => "#bab0ac",
                _ => "#4e79a7",
            };
            let _ = write!(
                out,
                "<g class=\"node\" data-step=\"{i}\" data-name=\"{}\" data-sessions=\"{}\"><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{BOX}\" height=\"{h:.1}\" fill=\"{fill}\">\
                 <title>{}: {} sessions</title></rect><text x=\"{:.1}\" y=\"{:.1}\">{} ({})</text></g>",
                escape(&n.name),
                n.sessions,
                escape(&n.name),
                n.sessions,
                x + BOX + 4.0,
                y + h.min(20.0) / 2.0 + 4.0,
                escape(&chart::truncate(&n.name, 22)),
                n.sessions
            );
        }
    }
    out.push_str("</svg>");
    out
}
