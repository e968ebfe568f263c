//! The web page: recent operations and one transaction, server-rendered HTML with every
//! value escaped.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::query::{self, Node};
use crate::store::Store;

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

pub(crate) fn routes() -> Router<Store> {
    Router::new()
        .route("/", get(index))
        .route("/operations/{id}", get(transaction))
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}}.failed{{color:#b00}}</style>\
         </head><body><h1>{}</h1>{body}</body></html>",
        escape(title),
        escape(title)
    ))
}

async fn index(State(store): State<Store>, Query(p): Query<HashMap<String, String>>) -> Response {
    let f = match crate::http::operation_filter(&p) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let ops = match store.read(move |c| query::operations(c, &f)).await {
        Ok(o) => o,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    let mut body = String::from(
        "<table id=\"operations\"><tr><th>start</th><th>operation</th><th>roles</th><th>duration (ms)</th><th>status</th><th>items</th></tr>",
    );
    for o in &ops {
        body.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td><a href=\"/operations/{}\">{}</a></td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            if o.failed { "failed" } else { "ok" },
            escape(&o.start),
            escape(&o.operation_id),
            escape(o.root_name.as_deref().unwrap_or(&o.operation_id)),
            escape(&o.roles.join(", ")),
            o.duration_ms,
            if o.failed { "failed" } else { "ok" },
            o.items
        ));
    }
    body.push_str("</table>");
    page("tracelink: recent operations", &body).into_response()
}

fn render(node: &Node, depth: usize, out: &mut String) {
    let i = &node.item;
    out.push_str(&format!(
        "<tr class=\"{}\"><td style=\"padding-left:{}em\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        if i.success == Some(false) { "failed" } else { "ok" },
        depth * 2,
        escape(&i.item_type),
        escape(i.name.as_deref().unwrap_or("")),
        escape(i.cloud_role.as_deref().unwrap_or("")),
        escape(i.id.as_deref().unwrap_or("")),
        escape(i.result_code.as_deref().unwrap_or("")),
        i.duration_ms.map(|d| format!("{d:.1}")).unwrap_or_default(),
    ));
    for c in &node.children {
        render(c, depth + 1, out);
    }
}

async fn transaction(State(store): State<Store>, Path(id): Path<String>) -> Response {
    let key = id.clone();
    let tree = match store.read(move |c| query::operation(c, &key)).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                page("not found", "<p>no such operation</p>"),
            )
                .into_response();
        }
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    let mut body = String::from(
        "<table id=\"transaction\"><tr><th>type</th><th>name</th><th>role</th><th>id</th><th>result</th><th>duration (ms)</th></tr>",
    );
    for n in &tree.roots {
        render(n, 0, &mut body);
    }
    body.push_str("</table>");
    if !tree.orphans.is_empty() {
        body.push_str("<h2>Orphans (parent not found)</h2><table id=\"orphans\">");
        for n in &tree.orphans {
            render(n, 0, &mut body);
        }
        body.push_str("</table>");
    }
    page(&format!("operation {id}"), &body).into_response()
}
