//! `/metrics` and `/api/metrics`: MetricData items (custom metrics, the SDKs' standard
//! metrics, OpenTelemetry metrics) as time series by name, split by one of their custom
//! dimensions.
//!
//! Parameters: `name` (the first name by default), `split` (a dimension key), `stat`
//! (`avg`, `sum`, `count`, `min`, `max`; `avg` by default), `hours` (the range ends now and
//! starts that many hours ago, 24 by default) or `from` and `to`, and `grain` (`minute`,
//! `hour`, `day`; by default minutes up to six hours, hours up to three days, days beyond).

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;

use super::chart::Style;
use super::usage::{Bad, Params, bad, draw, num, text, time};
use super::{escape, page, server_error};
use crate::error::chain;
use crate::metric_series::{self, MetricsReport, Stat};
use crate::store::Store;
use crate::usage::{Grain, HOUR_MS, Range, now_ms};

pub(super) fn routes() -> Router<Store> {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/api/metrics", get(metrics_api))
}

struct MetricQuery {
    range: Range,
    name: Option<String>,
    split: Option<String>,
    stat: Stat,
}

fn query(p: &Params) -> Result<MetricQuery, Bad> {
    let now = now_ms();
    let hours: u32 = num(p, "hours")?.unwrap_or(24).clamp(1, 24 * 3660);
    let to = time(p, "to")?.unwrap_or(now + 60_000);
    let from = time(p, "from")?.unwrap_or(now - i64::from(hours) * HOUR_MS);
    let grain = match text(p, "grain") {
        Some(g) => Grain::parse(g).ok_or_else(|| bad("grain"))?,
        None if to - from <= 6 * HOUR_MS + 60_000 => Grain::Minute,
        None if to - from <= 72 * HOUR_MS + 60_000 => Grain::Hour,
        None => Grain::Day,
    };
    Ok(MetricQuery {
        range: Range {
            from_ms: from,
            to_ms: to.max(from),
            grain,
            cohort: None,
        },
        name: text(p, "name").map(str::to_owned),
        split: text(p, "split").map(str::to_owned),
        stat: match text(p, "stat") {
            Some(s) => Stat::parse(s).ok_or_else(|| bad("stat"))?,
            None => Stat::Avg,
        },
    })
}

async fn report(store: &Store, q: MetricQuery) -> Result<MetricsReport, crate::StoreError> {
    store
        .read(move |c| {
            metric_series::metrics(c, &q.range, q.name.as_deref(), q.split.as_deref(), q.stat)
        })
        .await
}

async fn metrics_api(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let q = match query(&p) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    match report(&store, q).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, chain(&e)).into_response(),
    }
}

fn select(name: &str, current: &str, options: &[(String, String)]) -> String {
    let mut out = format!("<select name=\"{name}\">");
    for (value, label) in options {
        let _ = write!(
            out,
            "<option value=\"{}\"{}>{}</option>",
            escape(value),
            if value == current { " selected" } else { "" },
            escape(label)
        );
    }
    out.push_str("</select>");
    out
}

async fn metrics_page(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let q = match query(&p) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let stat = q.stat;
    let m = match report(&store, q).await {
        Ok(m) => m,
        Err(e) => return server_error(e),
    };
    let name = m.name.clone().unwrap_or_default();
    let names: Vec<(String, String)> = m
        .names
        .iter()
        .map(|(n, c)| (n.clone(), format!("{n} ({c} items)")))
        .collect();
    let mut splits = vec![(String::new(), "no split".to_owned())];
    splits.extend(m.dimensions.iter().map(|d| (d.clone(), d.clone())));
    let stats: Vec<(String, String)> = ["avg", "sum", "count", "min", "max"]
        .iter()
        .map(|s| ((*s).to_owned(), (*s).to_owned()))
        .collect();
    let mut body = format!(
        "<form method=\"get\" action=\"/metrics\"><label>metric {}</label> <label>split by {}</label> <label>showing {}</label> \
         <label>last <input name=\"hours\" type=\"number\" min=\"1\" style=\"width:5em\" value=\"{}\"> hours</label> <button>Show</button></form>",
        select("name", &name, &names),
        select("split", text(&p, "split").unwrap_or(""), &splits),
        select("stat", stat.as_str(), &stats),
        escape(text(&p, "hours").unwrap_or("24"))
    );
    if m.names.is_empty() {
        body.push_str("<p id=\"empty\">No metrics yet. Custom metrics (<code>track_metric</code>), the standard metrics and OpenTelemetry metrics show here.</p>");
    } else {
        let _ = write!(
            body,
            "<p><span id=\"metric-name\">{}</span>: <span id=\"metric-items\">{}</span> items in range.</p>",
            escape(&name),
            m.items
        );
        body.push_str(&draw(
            "metric-chart",
            &m.chart,
            &format!("{} ({})", name, stat.as_str()),
            Style::Line,
        ));
    }
    page("Metrics", &body).into_response()
}
