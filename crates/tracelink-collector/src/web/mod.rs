//! The web view, served by the collector: server-rendered HTML with inline SVG, no script
//! (but the small inline ones of the Live and Logs pages) and nothing fetched from elsewhere, so it works offline. Every value from telemetry is escaped.
//!
//! - `/`: recent operations (root name, roles, duration, status), filtered by role, failure and
//!   time, 50 per page;
//! - `/operations/{id}`: the end-to-end transaction as an indented Gantt timeline, bars placed
//!   by start and duration, colored by role, failures marked; clicking a bar shows the item's
//!   details (CSS `:target`); orphans in their own section;
//! - `/map`: the application map: roles and external targets, dependency calls with count,
//!   failure rate and mean duration;
//! - the usage tools (`usage` and `paths` modules): `/users`, `/sessions` and
//!   `/sessions/{id}`, `/events`, `/funnels`, `/retention`, `/flows`, `/cohorts`, each with
//!   its JSON API under `/api/usage/`;
//! - `/metrics`: metrics as time series by name, split by a dimension (`metrics` module);
//!   every chart is drawn by the `chart` module.
//! - `/search` and `/logs`: items by words and filters, and traces and exceptions as they
//!   arrive (the `search` module, with `GET /api/search`);
//! - `/live`: Live Metrics, updated every second by an inline script (see
//!   the `live` module).

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::error::{StoreError, chain};
use crate::query::{Item, Node, OperationFilter, operation_filter};
use crate::store::Store;

mod chart;
mod live;
mod metrics;
mod paths;
mod search;
mod usage;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a path segment for a link.
fn url_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub(crate) fn routes() -> Router<Store> {
    Router::new()
        .route("/", get(operations_page))
        .route("/operations/{id}", get(transaction_page))
        .route("/map", get(map_page))
        .route("/live", get(live::live_page))
        .merge(search::routes())
        .merge(usage::routes())
        .merge(paths::routes())
        .merge(metrics::routes())
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
nav a{margin-right:1em}table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;font-size:14px}
tr.failed td,.failed{color:#b00}.bar.failed{stroke:#b00;stroke-width:2}.detail{display:none;border:1px solid #ccc;padding:8px;margin:8px 0}
.detail:target{display:block}form{margin:1em 0}svg text{font-size:12px;font-family:system-ui,sans-serif}";

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head>\
         <body><nav><a href=\"/\">Operations</a><a href=\"/map\">Application map</a><a href=\"/search\">Search</a><a href=\"/logs\">Logs</a><a href=\"/users\">Usage</a><a href=\"/metrics\">Metrics</a><a href=\"/live\">Live metrics</a></nav>\
         <h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    ))
}

fn server_error(e: StoreError) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        page("error", &format!("<p>{}</p>", escape(&chain(&e)))),
    )
        .into_response()
}

/// Distinct colors for the roles on one page, in sorted role order.
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
    "#bab0ac", "#e15759",
];

fn palette<'a>(roles: impl Iterator<Item = &'a str>) -> HashMap<String, &'static str> {
    let mut roles: Vec<&str> = roles.collect();
    roles.sort_unstable();
    roles.dedup();
    roles
        .into_iter()
        .enumerate()
        .map(|(i, r)| (r.to_owned(), PALETTE[i % PALETTE.len()]))
        .collect()
}

async fn operations_page(
    State(store): State<Store>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let f: OperationFilter = match operation_filter(&p) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let limit = f.limit.unwrap_or(50).min(1000);
    let offset = f.offset.unwrap_or(0);
    // One row more than the page tells whether there is a next page.
    let mut filter = f.clone();
    filter.limit = Some(limit + 1);
    let mut ops = match store.operations(&filter).await {
        Ok(o) => o,
        Err(e) => return server_error(e),
    };
    let more = ops.len() > limit as usize;
    ops.truncate(limit as usize);
    let mut body = String::new();
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/\">role <input name=\"role\" value=\"{}\"> \
         <label><input type=\"checkbox\" name=\"failed\" value=\"true\"{}> failed only</label> \
         since <input name=\"since\" placeholder=\"2026-11-21T05:00:00Z\" value=\"{}\"> <button>Filter</button></form>",
        escape(f.role.as_deref().unwrap_or("")),
        if f.failed == Some(true) {
            " checked"
        } else {
            ""
        },
        escape(p.get("since").map(String::as_str).unwrap_or("")),
    );
    if ops.is_empty() {
        body.push_str("<p id=\"empty\">No operations yet. Point an SDK or tracelink's exporter at this collector.</p>");
    }
    body.push_str("<table id=\"operations\"><tr><th>start</th><th>operation</th><th>roles</th><th>duration (ms)</th><th>status</th><th>items</th></tr>");
    for o in &ops {
        let _ = write!(
            body,
            "<tr class=\"operation {}\" data-operation=\"{}\"><td>{}</td><td><a href=\"/operations/{}\">{}</a></td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            if o.failed { "failed" } else { "ok" },
            escape(&o.operation_id),
            escape(&o.start),
            url_segment(&o.operation_id),
            escape(o.root_name.as_deref().unwrap_or(&o.operation_id)),
            escape(&o.roles.join(", ")),
            o.duration_ms,
            if o.failed { "failed" } else { "ok" },
            o.items
        );
    }
    body.push_str("</table><p id=\"pages\">");
    let link = |off: u32| {
        let mut q: Vec<String> = p
            .iter()
            .filter(|(k, _)| *k != "offset")
            .map(|(k, v)| format!("{}={}", url_segment(k), url_segment(v)))
            .collect();
        q.push(format!("offset={off}"));
        q.sort();
        format!("/?{}", q.join("&amp;"))
    };
    if offset > 0 {
        let _ = write!(
            body,
            "<a id=\"previous\" href=\"{}\">Previous</a> ",
            link(offset.saturating_sub(limit))
        );
    }
    if more {
        let _ = write!(
            body,
            "<a id=\"next\" href=\"{}\">Next</a>",
            link(offset + limit)
        );
    }
    body.push_str("</p>");
    page("Recent operations", &body).into_response()
}

/// Start time in microseconds since the epoch, from the exact timestamp.
fn start_us(i: &Item) -> f64 {
    tracelink_core::wire_time::parse_time(&i.timestamp)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(i.ts_ms as f64 * 1000.0, |d| d.as_secs_f64() * 1e6)
}

fn flatten<'a>(nodes: &'a [Node], depth: usize, out: &mut Vec<(usize, &'a Item)>) {
    for n in nodes {
        out.push((depth, &n.item));
        flatten(&n.children, depth + 1, out);
    }
}

/// The properties of an item, from its raw envelope.
fn properties(raw: &str) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
    v["data"]["baseData"]["properties"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn gantt(
    id: &str,
    rows: &[(usize, &Item)],
    t0: f64,
    span: f64,
    colors: &HashMap<String, &str>,
    body: &mut String,
) {
    const LABEL: f64 = 380.0;
    const WIDTH: f64 = 640.0;
    const ROW: f64 = 22.0;
    let height = ROW * rows.len() as f64 + 24.0;
    let _ = write!(
        body,
        "<svg id=\"{id}\" width=\"{}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">\
         <text x=\"{LABEL}\" y=\"12\">0 ms</text><text x=\"{}\" y=\"12\" text-anchor=\"end\">{:.1} ms</text>",
        LABEL + WIDTH + 10.0,
        LABEL + WIDTH,
        span / 1000.0
    );
    for (row, (depth, item)) in rows.iter().enumerate() {
        let y = 20.0 + row as f64 * ROW;
        let x = LABEL + (start_us(item) - t0) / span * WIDTH;
        let w = (item.duration_ms.unwrap_or(0.0) * 1000.0 / span * WIDTH).max(2.0);
        let failed = item.success == Some(false);
        let role = item.cloud_role.as_deref().unwrap_or("");
        let _ = write!(
            body,
            "<g class=\"row\"><text x=\"{}\" y=\"{}\">{} {}</text>\
             <a href=\"#item-{}\"><rect class=\"bar{}\" data-role=\"{}\" x=\"{x:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"14\" fill=\"{}\"><title>{} {} ({} ms)</title></rect></a></g>",
            4 + depth * 14,
            y + 11.0,
            escape(&item.item_type),
            escape(&truncate(item.name.as_deref().unwrap_or(""), 48)),
            item.seq,
            if failed { " failed" } else { "" },
            escape(role),
            y,
            colors.get(role).copied().unwrap_or("#999"),
            escape(role),
            escape(item.name.as_deref().unwrap_or("")),
            item.duration_ms
                .map(|d| format!("{d:.1}"))
                .unwrap_or_default(),
        );
    }
    body.push_str("</svg>");
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(n).collect();
    t.push('…');
    t
}

fn detail(item: &Item, body: &mut String) {
    let _ = write!(
        body,
        "<div class=\"detail\" id=\"item-{}\"><h3>{} {}</h3><table>",
        item.seq,
        escape(&item.item_type),
        escape(item.name.as_deref().unwrap_or(""))
    );
    let fields = [
        ("id", item.id.clone()),
        ("operation_ParentId", item.parent_id.clone()),
        ("role", item.cloud_role.clone()),
        ("instance", item.role_instance.clone()),
        ("timestamp", Some(item.timestamp.clone())),
        ("duration (ms)", item.duration_ms.map(|d| format!("{d:.3}"))),
        ("success", item.success.map(|s| s.to_string())),
        ("resultCode", item.result_code.clone()),
        ("target", item.target.clone()),
        ("source / type", item.source.clone()),
        ("url / data", item.url.clone()),
        ("user", item.user_id.clone()),
        ("session", item.session_id.clone()),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            let _ = write!(body, "<tr><th>{k}</th><td>{}</td></tr>", escape(&v));
        }
    }
    if item.item_type == "browserTiming" {
        let v: serde_json::Value = serde_json::from_str(&item.raw).unwrap_or_default();
        for (key, label) in [
            ("networkConnect", "network"),
            ("sentRequest", "send"),
            ("receivedResponse", "receive"),
            ("domProcessing", "DOM processing"),
            ("perfTotal", "total"),
        ] {
            if let Some(t) = v["data"]["baseData"][key].as_str() {
                let _ = write!(body, "<tr><th>{label}</th><td>{}</td></tr>", escape(t));
            }
        }
    }
    for (k, v) in properties(&item.raw) {
        let _ = write!(
            body,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(&k),
            escape(&v)
        );
    }
    body.push_str("</table></div>");
}

async fn transaction_page(State(store): State<Store>, Path(id): Path<String>) -> Response {
    let tree = match store.operation(&id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                page("Not found", "<p>No such operation.</p>"),
            )
                .into_response();
        }
        Err(e) => return server_error(e),
    };
    let t0 = tree
        .items
        .iter()
        .map(start_us)
        .fold(f64::INFINITY, f64::min);
    let end = tree
        .items
        .iter()
        .map(|i| start_us(i) + i.duration_ms.unwrap_or(0.0) * 1000.0)
        .fold(t0, f64::max);
    let span = (end - t0).max(1.0);
    let mut body = format!(
        "<p>Operation <code id=\"operation-id\">{}</code>: {} items, {:.1} ms. Click a bar for its details.</p>",
        escape(&id),
        tree.items.len(),
        span / 1000.0
    );
    let colors = palette(tree.items.iter().filter_map(|i| i.cloud_role.as_deref()));
    let mut legend: Vec<(&String, &&str)> = colors.iter().collect();
    legend.sort();
    body.push_str("<p id=\"legend\">");
    for (role, c) in legend {
        let _ = write!(
            body,
            "<span class=\"role\" style=\"border-left:14px solid {c};padding-left:4px;margin-right:1em\">{}</span>",
            escape(role)
        );
    }
    body.push_str("</p>");
    let mut rows = Vec::new();
    flatten(&tree.roots, 0, &mut rows);
    gantt("timeline", &rows, t0, span, &colors, &mut body);
    if !tree.orphans.is_empty() {
        let mut orphans = Vec::new();
        flatten(&tree.orphans, 0, &mut orphans);
        body.push_str("<h2>Orphans (their parent is not in this operation)</h2>");
        gantt("orphans", &orphans, t0, span, &colors, &mut body);
    }
    for item in &tree.items {
        detail(item, &mut body);
    }
    page(&format!("Transaction {id}"), &body).into_response()
}

async fn map_page(State(store): State<Store>) -> Response {
    let map = match store.app_map().await {
        Ok(m) => m,
        Err(e) => return server_error(e),
    };
    let colors = palette(
        map.nodes
            .iter()
            .filter(|n| !n.external)
            .map(|n| n.name.as_str()),
    );
    let n = map.nodes.len().max(1) as f64;
    let (cx, cy, r) = (420.0, 300.0, 220.0);
    let pos: HashMap<&str, (f64, f64)> = map
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let a = std::f64::consts::TAU * i as f64 / n - std::f64::consts::FRAC_PI_2;
            (node.name.as_str(), (cx + r * a.cos(), cy + r * a.sin()))
        })
        .collect();
    let mut body = String::new();
    if map.partial {
        let _ = write!(
            body,
            "<p id=\"partial\">Drawn from the latest {} items.</p>",
            crate::query::MAP_ITEMS
        );
    }
    body.push_str(
        "<svg id=\"map\" width=\"840\" height=\"600\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\"/></marker></defs>",
    );
    for e in &map.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (pos.get(e.from.as_str()), pos.get(e.to.as_str()))
        else {
            continue;
        };
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        let fail = 100.0 * e.failures as f64 / e.calls.max(1) as f64;
        let _ = write!(
            body,
            "<g class=\"edge{}\" data-from=\"{}\" data-to=\"{}\"><line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"2\" marker-end=\"url(#arrow)\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} calls · {:.0}% failed · {:.1} ms</text></g>",
            if e.failures > 0 { " failed" } else { "" },
            escape(&e.from),
            escape(&e.to),
            x1 + ux * 48.0,
            y1 + uy * 48.0,
            x2 - ux * 48.0,
            y2 - uy * 48.0,
            if e.failures > 0 { "#b00" } else { "#555" },
            (x1 + x2) / 2.0,
            (y1 + y2) / 2.0 - 6.0,
            e.calls,
            fail,
            e.avg_ms
        );
    }
    for node in &map.nodes {
        let (x, y) = pos[node.name.as_str()];
        let _ = write!(
            body,
            "<g class=\"node{}\" data-name=\"{}\"><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"44\" fill=\"{}\" opacity=\"0.85\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text></g>",
            if node.external { " external" } else { "" },
            escape(&node.name),
            if node.external {
                "#ccc"
            } else {
                colors.get(&node.name).copied().unwrap_or("#999")
            },
            y - 2.0,
            escape(&truncate(&node.name, 18)),
            y + 14.0,
            if node.external {
                "external".to_owned()
            } else {
                format!("{} requests", node.requests)
            }
        );
    }
    body.push_str("</svg><table id=\"edges\"><tr><th>from</th><th>to</th><th>calls</th><th>failed</th><th>mean ms</th></tr>");
    for e in &map.edges {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            escape(&e.from),
            escape(&e.to),
            e.calls,
            e.failures,
            e.avg_ms
        );
    }
    body.push_str("</table>");
    page("Application map", &body).into_response()
}
