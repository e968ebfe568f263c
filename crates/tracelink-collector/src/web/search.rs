//! Search and logs: `/search` and `/logs`, and their JSON API, `GET /api/search`.
//!
//! - `/search`: a GET form whose fields are the query parameters of
//!   [`search_query`](crate::query::search), so that the URL holds the query (a link shows the
//!   same results, and the browser's back button returns to the previous query); results
//!   newest first, 50 to a page, each with a link to its transaction; the words found are
//!   marked (`<mark>`) in names, URLs and the property values they were found in.
//! - `/logs`: traces and exceptions, newest first, filtered by minimum severity, words and
//!   role. Unless the page is an older one (`before`), a small inline script asks
//!   `/api/search` every 2 seconds for what arrived since the newest row and adds it at the
//!   top (at once while more wait); it builds rows with `textContent`, so nothing from
//!   telemetry is ever parsed as HTML. `/logs?after={seq}` is a live tail from that item on.
//! - `GET /api/search`: a [`SearchPage`] as JSON; 400 with a message naming the parameter
//!   when one is invalid.
//!
//! Marking escapes first: the text between matches and the matches themselves are escaped,
//! and only the `<mark>` tags around them are markup.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{escape, page, properties, server_error, truncate, url_segment};
use crate::error::chain;
use crate::query::search::{SearchHit, SearchPage, SearchQuery, search_query};
use crate::store::Store;

type Params = HashMap<String, String>;

pub(super) fn routes() -> Router<Store> {
    Router::new()
        .route("/search", get(search_page))
        .route("/logs", get(logs_page))
        .route("/api/search", get(api_search))
}

async fn api_search(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let q = match search_query(&p) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    match store.search(&q).await {
        Ok(page) => Json(page).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, chain(&e)).into_response(),
    }
}

/// `text` escaped, with each word of `terms` found at the start of a word marked: a term of
/// three characters or more also where it starts a longer word (as search finds it).
pub(crate) fn highlight(text: &str, terms: &[String]) -> String {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = String::with_capacity(text.len());
    let mut done = 0; // bytes of `text` written
    let mut i = 0;
    while i < chars.len() {
        let word_start = i == 0 || !chars[i - 1].1.is_alphanumeric();
        let end = if word_start && chars[i].1.is_alphanumeric() {
            terms.iter().filter_map(|t| match_end(&chars, i, t)).max()
        } else {
            None
        };
        match end {
            Some(j) => {
                let (from, to) = (chars[i].0, chars.get(j).map_or(text.len(), |c| c.0));
                out.push_str(&escape(&text[done..from]));
                out.push_str("<mark>");
                out.push_str(&escape(&text[from..to]));
                out.push_str("</mark>");
                done = to;
                i = j;
            }
            None => i += 1,
        }
    }
    out.push_str(&escape(&text[done..]));
    out
}

/// Where `term` (lowercase) ends when it matches at char `i`: the index of the next char.
fn match_end(chars: &[(usize, char)], i: usize, term: &str) -> Option<usize> {
    let mut want = term.chars();
    let mut left = term.chars().count();
    let mut j = i;
    while left > 0 {
        let (_, c) = *chars.get(j)?;
        for lc in c.to_lowercase() {
            if want.next() != Some(lc) {
                return None;
            }
            left = left.checked_sub(1)?;
        }
        j += 1;
    }
    // A short term is a whole word.
    if term.chars().count() < 3 && chars.get(j).is_some_and(|(_, c)| c.is_alphanumeric()) {
        return None;
    }
    Some(j)
}

/// The link to the same query with `before` or `after` set (the paging parameters of `p`
/// replaced), at `path`.
fn link(path: &str, p: &Params, key: Option<(&str, i64)>) -> String {
    let mut q: Vec<String> = p
        .iter()
        .filter(|(k, v)| !v.is_empty() && !matches!(k.as_str(), "before" | "after"))
        .map(|(k, v)| format!("{}={}", url_segment(k), url_segment(v)))
        .collect();
    q.sort();
    if let Some((k, v)) = key {
        q.push(format!("{k}={v}"));
    }
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", q.join("&amp;"))
    }
}

fn paging(path: &str, p: &Params, results: &SearchPage, body: &mut String) {
    body.push_str("<p id=\"pages\">");
    if let Some(newer) = results.newer {
        let _ = write!(
            body,
            "<a id=\"newest\" href=\"{}\">Newest</a> <a id=\"newer\" href=\"{}\">Newer</a> ",
            link(path, p, None),
            link(path, p, Some(("after", newer)))
        );
    }
    if let Some(older) = results.older {
        let _ = write!(
            body,
            "<a id=\"older\" href=\"{}\">Older</a>",
            link(path, p, Some(("before", older)))
        );
    }
    body.push_str("</p>");
}

fn input(body: &mut String, p: &Params, name: &str, label: &str, placeholder: &str) {
    let _ = write!(
        body,
        "<label>{label} <input name=\"{name}\" placeholder=\"{placeholder}\" value=\"{}\"></label> ",
        escape(p.get(name).map_or("", String::as_str))
    );
}

fn select(body: &mut String, p: &Params, name: &str, label: &str, options: &[(&str, &str)]) {
    let current = p.get(name).map_or("", String::as_str);
    let _ = write!(body, "<label>{label} <select name=\"{name}\">");
    let mut known = false;
    for (value, text) in options {
        let selected = *value == current;
        known |= selected;
        let _ = write!(
            body,
            "<option value=\"{value}\"{}>{text}</option>",
            if selected { " selected" } else { "" }
        );
    }
    if !known {
        let v = escape(current);
        let _ = write!(body, "<option value=\"{v}\" selected>{v}</option>");
    }
    body.push_str("</select></label> ");
}

const SEVERITIES: [(&str, &str); 6] = [
    ("", "any"),
    ("Verbose", "Verbose"),
    ("Information", "Information"),
    ("Warning", "Warning"),
    ("Error", "Error"),
    ("Critical", "Critical"),
];

fn search_form(p: &Params, body: &mut String) {
    body.push_str("<form id=\"search\" method=\"get\" action=\"/search\"><p>");
    let _ = write!(
        body,
        "<input name=\"q\" size=\"40\" placeholder=\"words in names, messages, URLs, properties\" value=\"{}\" autofocus> <button>Search</button></p><p>",
        escape(p.get("q").map_or("", String::as_str))
    );
    select(
        body,
        p,
        "type",
        "type",
        &[
            ("", "any"),
            ("request", "request"),
            ("dependency", "dependency"),
            ("trace", "trace"),
            ("exception", "exception"),
            ("customEvent", "custom event"),
            ("pageView", "page view"),
            ("customMetric", "metric"),
            ("browserTiming", "browser timing"),
            ("availabilityResult", "availability"),
        ],
    );
    select(
        body,
        p,
        "success",
        "outcome",
        &[("", "any"), ("true", "succeeded"), ("false", "failed")],
    );
    select(body, p, "severity", "severity at least", &SEVERITIES);
    input(body, p, "role", "role", "");
    input(body, p, "code", "result code", "500");
    body.push_str("</p><p>");
    input(body, p, "from", "from", "2026-11-21T05:00:00Z");
    input(body, p, "to", "to", "");
    input(body, p, "min_duration", "duration from", "ms");
    input(body, p, "max_duration", "to", "ms");
    body.push_str("</p><p>");
    input(body, p, "user", "user", "");
    input(body, p, "session", "session", "");
    input(body, p, "operation", "operation", "");
    body.push_str("</p></form>");
}

fn bad_request(title: &str, form: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        page(
            title,
            &format!(
                "{form}<p id=\"error\" class=\"failed\">{}</p>",
                escape(message)
            ),
        ),
    )
        .into_response()
}

fn operation_link(op: Option<&str>) -> String {
    match op {
        Some(op) => format!(
            "<a href=\"/operations/{}\">{}</a>",
            url_segment(op),
            escape(&truncate(op, 16))
        ),
        None => String::new(),
    }
}

fn result_row(h: &SearchHit, terms: &[String], body: &mut String) {
    let i = &h.item;
    let failed = i.success == Some(false);
    let _ = write!(
        body,
        "<tr class=\"result{}\" data-seq=\"{}\"><td>{}</td><td>{}</td><td><div class=\"name\">{}</div>",
        if failed { " failed" } else { "" },
        i.seq,
        escape(&i.timestamp),
        escape(&i.item_type),
        highlight(i.name.as_deref().unwrap_or(""), terms),
    );
    if let Some(url) = &i.url {
        let _ = write!(body, "<div class=\"url\">{}</div>", highlight(url, terms));
    }
    if !terms.is_empty() {
        for (k, v) in properties(&i.raw) {
            let marked = highlight(&truncate(&v, 300), terms);
            if marked.contains("<mark>") {
                let _ = write!(
                    body,
                    "<div class=\"property\">{}: {marked}</div>",
                    escape(&k)
                );
            }
        }
    }
    let _ = write!(
        body,
        "</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        escape(i.cloud_role.as_deref().unwrap_or("")),
        escape(h.severity.or(i.result_code.as_deref()).unwrap_or("")),
        i.duration_ms.map(|d| format!("{d:.1}")).unwrap_or_default(),
        operation_link(i.operation_id.as_deref()),
    );
}

async fn search_page(State(store): State<Store>, Query(p): Query<Params>) -> Response {
    let mut form = String::new();
    search_form(&p, &mut form);
    let q = match search_query(&p) {
        Ok(q) => q,
        Err(e) => return bad_request("Search", &form, &e.to_string()),
    };
    let results = match store.search(&q).await {
        Ok(r) => r,
        Err(e) => return server_error(e),
    };
    let terms = q.terms();
    let mut body = form;
    let _ = write!(
        body,
        "<p id=\"summary\"><span id=\"count\">{}</span> items{}, newest first.</p>",
        results.items.len(),
        if results.older.is_some() {
            " on this page"
        } else {
            ""
        }
    );
    if results.items.is_empty() {
        body.push_str("<p id=\"no-results\">Nothing found.</p>");
    }
    body.push_str("<table id=\"results\"><tr><th>time</th><th>type</th><th>name, URL, properties</th><th>role</th><th>result</th><th>duration (ms)</th><th>operation</th></tr>");
    for h in &results.items {
        result_row(h, &terms, &mut body);
    }
    body.push_str("</table>");
    paging("/search", &p, &results, &mut body);
    page("Search", &body).into_response()
}

/// Adds what arrived since the newest row to the top of the logs table, every 2 seconds.
const LOGS_SCRIPT: &str = r#"<script>
(function () {
  var table = document.getElementById('logs');
  if (!table || table.getAttribute('data-live') !== 'true') return;
  var api = table.getAttribute('data-api');
  var after = Number(table.getAttribute('data-after')) || 0;
  function cell(row, text) {
    var td = document.createElement('td');
    td.textContent = text == null ? '' : String(text);
    row.appendChild(td);
    return td;
  }
  function add(item) {
    var row = document.createElement('tr');
    row.className = 'log ' + (item.item_type === 'exception' ? 'failed' : 'ok');
    row.setAttribute('data-seq', String(item.seq));
    cell(row, item.timestamp);
    cell(row, item.severity);
    cell(row, item.item_type);
    cell(row, item.name);
    cell(row, item.cloud_role);
    var op = cell(row, '');
    if (item.operation_id) {
      var a = document.createElement('a');
      a.href = '/operations/' + encodeURIComponent(item.operation_id);
      a.textContent = item.operation_id.slice(0, 16);
      op.appendChild(a);
    }
    var first = table.querySelector('tr.log');
    if (first) first.parentNode.insertBefore(row, first);
    else (table.tBodies[0] || table).appendChild(row);
  }
  function poll() {
    fetch(api + '&after=' + after + '&limit=200')
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (page) {
        var again = 2000;
        if (page && page.items.length) {
          for (var i = page.items.length - 1; i >= 0; i--) add(page.items[i]);
          after = page.items[0].seq;
          table.setAttribute('data-after', String(after));
          var empty = document.getElementById('no-logs');
          if (empty) empty.remove();
          if (page.newer != null) again = 0;
        }
        setTimeout(poll, again);
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 2000);
})();
</script>"#;

async fn logs_page(State(store): State<Store>, Query(mut p): Query<Params>) -> Response {
    p.insert("type".into(), "trace,exception".into());
    let mut form = String::from("<form id=\"filter\" method=\"get\" action=\"/logs\">");
    select(&mut form, &p, "severity", "severity at least", &SEVERITIES);
    input(&mut form, &p, "q", "words", "");
    input(&mut form, &p, "role", "role", "");
    form.push_str("<button>Filter</button></form>");
    let q: SearchQuery = match search_query(&p) {
        Ok(q) => q,
        Err(e) => return bad_request("Logs", &form, &e.to_string()),
    };
    let results = match store.search(&q).await {
        Ok(r) => r,
        Err(e) => return server_error(e),
    };
    let terms = q.terms();
    // The API query of this page, for the script: the same filters.
    let mut api = p.clone();
    api.retain(|k, v| !v.is_empty() && matches!(k.as_str(), "severity" | "q" | "role" | "type"));
    // Live unless paging back: from the newest page, or from `after` on (a tail from there).
    let live = q.before.is_none();
    let mut body = form;
    let _ = write!(
        body,
        "<p>Traces and exceptions, newest first{}.</p>",
        if live {
            "; new ones appear at the top as they arrive"
        } else {
            ""
        }
    );
    if results.items.is_empty() {
        body.push_str("<p id=\"no-logs\">No traces or exceptions yet.</p>");
    }
    let _ = write!(
        body,
        "<table id=\"logs\" data-live=\"{live}\" data-api=\"{}\" data-after=\"{}\"><tr><th>time</th><th>severity</th><th>type</th><th>message</th><th>role</th><th>operation</th></tr>",
        link("/api/search", &api, None),
        results.items.first().map_or(0, |h| h.item.seq),
    );
    for h in &results.items {
        let i = &h.item;
        let _ = write!(
            body,
            "<tr class=\"log {}\" data-seq=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if i.item_type == "exception" {
                "failed"
            } else {
                "ok"
            },
            i.seq,
            escape(&i.timestamp),
            escape(h.severity.unwrap_or("")),
            escape(&i.item_type),
            highlight(i.name.as_deref().unwrap_or(""), &terms),
            escape(i.cloud_role.as_deref().unwrap_or("")),
            operation_link(i.operation_id.as_deref()),
        );
    }
    body.push_str("</table>");
    paging("/logs", &p, &results, &mut body);
    if live {
        body.push_str(LOGS_SCRIPT);
    }
    page("Logs", &body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn marks_words_after_escaping() {
        assert_eq!(
            highlight("GET /api/Orders?id=7", &terms(&["ord", "id"])),
            "GET /api/<mark>Ord</mark>ers?<mark>id</mark>=7"
        );
        assert_eq!(
            highlight("<script>alert('x')</script>", &terms(&["script"])),
            "&lt;<mark>script</mark>&gt;alert(&#39;x&#39;)&lt;/<mark>script</mark>&gt;"
        );
        // Short terms are whole words; no term, no mark; not inside words.
        assert_eq!(
            highlight("idle id", &terms(&["id"])),
            "idle <mark>id</mark>"
        );
        assert_eq!(highlight("a<b", &[]), "a&lt;b");
        assert_eq!(highlight("reorder", &terms(&["order"])), "reorder");
        assert_eq!(
            highlight("ÉCOLE école", &terms(&["éco"])),
            "<mark>ÉCO</mark>LE <mark>éco</mark>le"
        );
    }

    #[test]
    fn paging_links_keep_the_query() {
        let p: Params = [("q", "a b"), ("before", "9"), ("role", "")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            link("/search", &p, Some(("before", 5))),
            "/search?q=a%20b&amp;before=5"
        );
        assert_eq!(link("/search", &p, None), "/search?q=a%20b");
    }
}
