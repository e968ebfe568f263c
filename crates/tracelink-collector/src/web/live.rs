//! `/live`: Live Metrics. The one page of the web view with a script: an inline one (nothing
//! fetched from elsewhere) that reads `GET /api/live` every second and draws, per chart, one
//! line per instance over the last minute, a table of the instances with their latest
//! values, and the feed of sample documents. Reading the API is what makes the collector
//! answer `x-ms-qps-subscribed: true`, so the SDKs post every second while the page is open
//! and go back to pinging once it is closed. Values from telemetry reach the page only
//! through `textContent` and `setAttribute`, never as markup.

use std::fmt::Write as _;

use axum::response::{IntoResponse, Response};

use super::{PALETTE, page};

/// The charts: the key of the metric in `GET /api/live`, the title, and the unit.
const CHARTS: [(&str, &str, &str); 9] = [
    ("requests", "Requests", "/s"),
    ("request_duration", "Request duration", "ms"),
    ("requests_failed", "Failed requests", "/s"),
    ("dependencies", "Dependency calls", "/s"),
    ("dependency_duration", "Dependency call duration", "ms"),
    ("dependencies_failed", "Failed dependency calls", "/s"),
    ("exceptions", "Exceptions", "/s"),
    ("memory", "Memory", "bytes"),
    ("cpu", "CPU", "%"),
];

const LIVE_STYLE: &str = "<style>#charts{display:flex;flex-wrap:wrap;gap:12px}\
.chart{border:1px solid #ddd;padding:4px 8px}.chart h3{margin:2px 0;font-size:14px}\
.chart svg{background:#fafafa;display:block}.chart .max{display:block;font-size:12px;color:#555}#status.idle{color:#777}.swatch{display:inline-block;width:12px;height:12px;margin-right:4px}\
#documents td.detail{max-width:640px;overflow-wrap:anywhere}</style>";

/// The script. `CHARTS` and `PALETTE` are prepended as JSON.
const SCRIPT: &str = r#"
const SVG = 'http://www.w3.org/2000/svg';
const W = 420, H = 140, PAD = 4;
function el(name, attrs, text) {
  const e = document.createElement(name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}
function svgEl(name, attrs) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}
function fmt(v, unit) {
  if (v === undefined || v === null) return '';
  if (unit === 'bytes') return (v / 1048576).toFixed(1) + ' MiB';
  return (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2)) + (unit === 'ms' ? ' ms' : unit === '%' ? ' %' : '');
}
function name(i) { return (i.role ? i.role + ' / ' : '') + i.instance; }
function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
const charts = document.getElementById('charts');
const views = {};
for (const [key, title, unit] of CHARTS) {
  const box = el('div', {class: 'chart', id: 'chart-' + key});
  const h = el('h3', {}, title + (unit === '/s' ? ' per second' : ' (' + unit + ')'));
  const svg = svgEl('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img'});
  const max = el('span', {class: 'max'}, '');
  box.append(h, svg, max);
  charts.append(box);
  views[key] = {svg, max, unit};
}
function draw(data) {
  const status = document.getElementById('status');
  status.className = data.subscribed ? 'watching' : 'idle';
  status.textContent = data.instances.length === 0
    ? 'Waiting for instances: point an SDK with LiveEndpoint at this collector.'
    : 'Watching ' + data.instances.length + ' instance(s); SDKs post every second while this page is open.';
  const t1 = data.now_ms, t0 = t1 - data.window_ms;
  for (const [key, , unit] of CHARTS) {
    const v = views[key];
    clear(v.svg);
    let top = 0;
    for (const i of data.instances) for (const s of i.samples) if (s[key] !== undefined) top = Math.max(top, s[key]);
    const scale = top > 0 ? top * 1.1 : 1;
    v.max.textContent = 'max ' + fmt(top, unit);
    data.instances.forEach((i, n) => {
      const pts = i.samples.filter(s => s[key] !== undefined).map(s =>
        ((s.t_ms - t0) / (t1 - t0) * (W - 2 * PAD) + PAD).toFixed(1) + ',' +
        (H - PAD - s[key] / scale * (H - 2 * PAD)).toFixed(1));
      if (pts.length === 0) return;
      const line = svgEl('polyline', {points: pts.join(' '), fill: 'none', 'stroke-width': 2,
        stroke: PALETTE[n % PALETTE.length], class: 'line'});
      line.setAttribute('data-instance', i.instance);
      const title = svgEl('title');
      title.textContent = name(i);
      line.append(title);
      v.svg.append(line);
    });
  }
  const rows = document.getElementById('instance-rows');
  clear(rows);
  data.instances.forEach((i, n) => {
    const last = i.samples.length ? i.samples[i.samples.length - 1] : {};
    const tr = el('tr', {class: 'instance', 'data-instance': i.instance, 'data-role': i.role});
    const sw = el('td');
    sw.append(el('span', {class: 'swatch', style: 'background:' + PALETTE[n % PALETTE.length]}));
    tr.append(sw, el('td', {class: 'role'}, i.role), el('td', {class: 'name'}, i.instance),
      el('td', {class: 'machine'}, i.machine), el('td', {class: 'version'}, i.version));
    for (const [key, , unit] of CHARTS) {
      const td = el('td', {class: key}, fmt(last[key], unit));
      if (last[key] !== undefined) td.setAttribute('data-value', last[key]);
      tr.append(td);
    }
    tr.append(el('td', {class: 'posts'}, i.posts));
    rows.append(tr);
  });
  const docs = document.getElementById('document-rows');
  clear(docs);
  for (const d of data.documents) {
    const tr = el('tr', {class: 'document ' + d.type});
    tr.append(el('td', {}, new Date(d.t_ms).toLocaleTimeString()), el('td', {}, name(d)),
      el('td', {class: 'type'}, d.type), el('td', {class: 'doc-name'}, d.name),
      el('td', {}, d.result), el('td', {}, d.duration));
    const op = el('td');
    if (d.operation_id) op.append(el('a', {href: '/operations/' + encodeURIComponent(d.operation_id)}, d.operation_id));
    tr.append(op, el('td', {class: 'detail'}, d.detail));
    docs.append(tr);
  }
}
async function tick() {
  try {
    const r = await fetch('/api/live', {cache: 'no-store', credentials: 'same-origin'});
    if (r.ok) draw(await r.json());
  } catch (e) {
    document.getElementById('status').textContent = 'The collector does not answer.';
  }
  setTimeout(tick, 1000);
}
tick();
"#;

/// `GET /live`.
pub(super) async fn live_page() -> Response {
    let mut body = String::from(
        "<p id=\"status\" class=\"idle\">Loading…</p><div id=\"charts\"></div>\
         <h2>Instances</h2><table id=\"instances\"><thead><tr><th></th><th>role</th><th>instance</th><th>machine</th><th>SDK</th>",
    );
    for (_, title, unit) in CHARTS {
        let _ = write!(body, "<th>{title} ({unit})</th>");
    }
    body.push_str(
        "<th>posts</th></tr></thead><tbody id=\"instance-rows\"></tbody></table>\
         <h2>Sample documents</h2><p>Failed requests, failed dependency calls, exceptions and traces, newest first.</p>\
         <table id=\"documents\"><thead><tr><th>time</th><th>instance</th><th>type</th><th>name</th><th>result</th>\
         <th>duration</th><th>operation</th><th>detail</th></tr></thead><tbody id=\"document-rows\"></tbody></table>",
    );
    let charts: Vec<[&str; 3]> = CHARTS.iter().map(|(k, t, u)| [*k, *t, *u]).collect();
    let _ = write!(
        body,
        "{LIVE_STYLE}<script>const CHARTS = {};\nconst PALETTE = {};\n{SCRIPT}</script>",
        serde_json::to_string(&charts).unwrap_or_else(|_| "[]".into()),
        serde_json::to_string(&PALETTE).unwrap_or_else(|_| "[]".into()),
    );
    page("Live metrics", &body).into_response()
}
