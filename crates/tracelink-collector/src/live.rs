//! Live Metrics (QuickPulse), the service side: the collector plays the part of the Live
//! Metrics service for SDKs whose connection string says `LiveEndpoint=http://<collector>/`,
//! and keeps what they post in memory for the Live page (`/live`) and `GET /api/live`.
//!
//! - `POST /QuickPulseService.svc/ping?ikey=<key>`: one data point (a JSON object, or an
//!   array), sent while nobody watches; the instance is listed from then on.
//! - `POST /QuickPulseService.svc/post?ikey=<key>`: a JSON array of data points with the
//!   second's metrics and sample documents, sent every second while someone watches.
//!
//! Bodies are InvariantVersion 1 data points with `/Date(ms)/` timestamps, read leniently
//! (absent fields count as empty, unknown fields are ignored). Both answer `200` with
//! `x-ms-qps-subscribed: true` while a viewer watches (something read `GET /api/live` within
//! the last [`VIEWER_WINDOW`]), else `false`, and always with
//! `x-ms-qps-service-polling-interval-hint` ([`POLLING_INTERVAL_HINT`]), which the SDKs
//! follow for their pings, so that a viewer who opens the page sees posts within about a
//! second. A body that is not a data point is `400`, one above [`MAX_BODY`] `413`; an
//! instrumentation key the collector does not accept is `403` (as for Breeze ingestion).
//!
//! An instance is its instrumentation key, role, instance name and machine name. For each,
//! the collector keeps the samples of the last [`SAMPLE_WINDOW`] (at most [`MAX_SAMPLES`]),
//! the nine standard metrics only, placed on the chart by the time they arrived (the SDK's
//! clock may differ from the collector's), and the last [`MAX_DOCUMENTS`] sample documents
//! (failed requests, failed calls, exceptions and traces; text cut to [`MAX_TEXT_CHARS`]).
//! An instance that sent nothing for [`INSTANCE_EXPIRY`] is forgotten, and at most
//! [`MAX_INSTANCES`] are kept (the one heard from least recently goes first), so memory stays
//! bounded whatever senders do.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tracelink_live::protocol::{
    self, Answer, Document, MonitoringDataPoint, PING_PATH, POST_PATH, header, metric,
};

use crate::access::Access;
use crate::stats::{self, Counters};

/// How long after its last read of `GET /api/live` a viewer still counts as watching: 3 s.
pub(crate) const VIEWER_WINDOW: Duration = Duration::from_secs(3);
/// The ping interval the answers ask for: 1 s.
pub(crate) const POLLING_INTERVAL_HINT: Duration = Duration::from_secs(1);
/// How far back the samples of an instance go: 60 s.
pub(crate) const SAMPLE_WINDOW: Duration = Duration::from_secs(60);
/// The most samples kept per instance: 120.
pub(crate) const MAX_SAMPLES: usize = 120;
/// The most sample documents kept per instance: 50.
pub(crate) const MAX_DOCUMENTS: usize = 50;
/// The most instances kept: 100.
pub(crate) const MAX_INSTANCES: usize = 100;
/// How long an instance that sends nothing stays listed: 60 s.
pub(crate) const INSTANCE_EXPIRY: Duration = Duration::from_secs(60);
/// The largest ping or post body: 1 MiB.
pub(crate) const MAX_BODY: usize = 1024 * 1024;
/// The longest text kept of a name or a document field, in chars: 1,024.
pub(crate) const MAX_TEXT_CHARS: usize = 1024;
/// The most data points read from one body (the SDKs send one).
const MAX_POINTS: usize = 16;
/// The most documents the API returns, newest first.
const MAX_FEED: usize = 100;

/// The standard metrics: the protocol's name, and the key `GET /api/live` gives it.
pub(crate) const METRICS: [(&str, &str); 9] = [
    (metric::REQUESTS_PER_SECOND, "requests"),
    (metric::REQUEST_DURATION, "request_duration"),
    (metric::REQUESTS_FAILED_PER_SECOND, "requests_failed"),
    (metric::DEPENDENCY_CALLS_PER_SECOND, "dependencies"),
    (metric::DEPENDENCY_CALL_DURATION, "dependency_duration"),
    (
        metric::DEPENDENCY_CALLS_FAILED_PER_SECOND,
        "dependencies_failed",
    ),
    (metric::EXCEPTIONS_PER_SECOND, "exceptions"),
    (metric::COMMITTED_BYTES, "memory"),
    (metric::PROCESSOR_TIME, "cpu"),
];

/// Who an instance is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    ikey: String,
    role: String,
    instance: String,
    machine: String,
}

/// One post's metrics, by [`METRICS`] index.
#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    t_ms: u64,
    values: [Option<f64>; METRICS.len()],
}

/// A sample document, as the feed shows it.
#[derive(Clone, Debug, Serialize)]
struct Doc {
    t_ms: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    success: Option<bool>,
    duration: String,
    result: String,
    operation_id: String,
    detail: String,
}

#[derive(Debug)]
struct Instance {
    stream_id: String,
    version: String,
    last_seen: Instant,
    last_seen_ms: u64,
    pings: u64,
    posts: u64,
    samples: VecDeque<Sample>,
    documents: VecDeque<Doc>,
}

#[derive(Debug, Default)]
struct Board {
    instances: HashMap<Key, Instance>,
    last_viewer: Option<Instant>,
}

impl Board {
    fn watched(&self, now: Instant) -> bool {
        self.last_viewer
            .is_some_and(|t| now.saturating_duration_since(t) < VIEWER_WINDOW)
    }

    /// Forgets silent instances and samples out of the window.
    fn prune(&mut self, now: Instant) {
        self.instances
            .retain(|_, i| now.saturating_duration_since(i.last_seen) < INSTANCE_EXPIRY);
        for i in self.instances.values_mut() {
            while i
                .samples
                .front()
                .is_some_and(|s| now.saturating_duration_since(s.at) > SAMPLE_WINDOW)
            {
                i.samples.pop_front();
            }
        }
    }
}

/// What Live Metrics senders told the collector, in memory.
#[derive(Debug, Default)]
pub(crate) struct Live {
    state: Mutex<Board>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `s` cut to [`MAX_TEXT_CHARS`] chars.
fn text(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT_CHARS) {
        Some((at, _)) => s[..at].to_owned(),
        None => s.to_owned(),
    }
}

impl Doc {
    /// The feed's view of a document; `None` for the kinds the feed does not show
    /// (successful requests and calls, events, unknown types).
    fn of(d: &Document, t_ms: u64) -> Option<Self> {
        let doc =
            |kind, name: &str, success, duration: &str, result: &str, op: &str, detail: &str| {
                Self {
                    t_ms,
                    kind,
                    name: text(name),
                    success,
                    duration: text(duration),
                    result: text(result),
                    operation_id: text(op),
                    detail: text(detail),
                }
            };
        Some(match d {
            Document::Request(r) if !r.success => doc(
                "request",
                &r.name,
                Some(false),
                &r.duration,
                &r.response_code,
                &r.operation_id,
                &r.operation_name,
            ),
            Document::Dependency(c) if !c.success => doc(
                "dependency",
                &c.name,
                Some(false),
                &c.duration,
                &c.result_code,
                &c.operation_id,
                if c.command_name.is_empty() {
                    &c.target
                } else {
                    &c.command_name
                },
            ),
            Document::Exception(e) => doc(
                "exception",
                &e.exception_type,
                None,
                "",
                "",
                &e.operation_id,
                &e.exception_message,
            ),
            Document::Trace(t) => doc(
                "trace",
                &t.severity_level,
                None,
                "",
                "",
                &t.operation_id,
                &t.message,
            ),
            _ => return None,
        })
    }
}

impl Live {
    fn state(&self) -> MutexGuard<'_, Board> {
        // Every change leaves the maps valid, whatever panicked while the lock was held.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a viewer watches now.
    pub(crate) fn watched(&self) -> bool {
        self.state().watched(Instant::now())
    }

    /// Takes one data point of a ping or a post.
    fn record(&self, key: Key, point: &MonitoringDataPoint, post: bool) {
        let now = Instant::now();
        let t_ms = now_ms();
        let mut st = self.state();
        st.prune(now);
        if !st.instances.contains_key(&key) && st.instances.len() >= MAX_INSTANCES {
            let oldest = st
                .instances
                .iter()
                .min_by_key(|(_, i)| i.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                st.instances.remove(&k);
            }
        }
        let i = st.instances.entry(key).or_insert_with(|| Instance {
            stream_id: String::new(),
            version: String::new(),
            last_seen: now,
            last_seen_ms: t_ms,
            pings: 0,
            posts: 0,
            samples: VecDeque::new(),
            documents: VecDeque::new(),
        });
        i.last_seen = now;
        i.last_seen_ms = t_ms;
        if !point.stream_id.is_empty() {
            i.stream_id = text(&point.stream_id);
        }
        if let Some(v) = point.version.as_deref().filter(|v| !v.is_empty()) {
            i.version = text(v);
        }
        if post {
            i.posts += 1;
        } else {
            i.pings += 1;
        }
        if let Some(metrics) = &point.metrics {
            let mut values = [None; METRICS.len()];
            for m in metrics {
                if let Some(at) = METRICS.iter().position(|(name, _)| *name == m.name)
                    && m.value.is_finite()
                {
                    values[at] = Some(m.value);
                }
            }
            if i.samples.len() >= MAX_SAMPLES {
                i.samples.pop_front();
            }
            i.samples.push_back(Sample {
                at: now,
                t_ms,
                values,
            });
        }
        if let Some(docs) = &point.documents {
            let skip = docs.len().saturating_sub(MAX_DOCUMENTS);
            for d in docs.iter().skip(skip).filter_map(|d| Doc::of(d, t_ms)) {
                if i.documents.len() >= MAX_DOCUMENTS {
                    i.documents.pop_front();
                }
                i.documents.push_back(d);
            }
        }
    }

    /// What `GET /api/live` shows; marks a viewer unless `view` is false.
    fn snapshot(&self, view: bool) -> LiveView {
        let now = Instant::now();
        let mut st = self.state();
        if view {
            st.last_viewer = Some(now);
        }
        st.prune(now);
        let mut keys: Vec<&Key> = st.instances.keys().collect();
        keys.sort();
        let mut documents = Vec::new();
        let instances = keys
            .into_iter()
            .map(|k| {
                let i = &st.instances[k];
                for d in &i.documents {
                    documents.push(FeedDoc {
                        role: k.role.clone(),
                        instance: k.instance.clone(),
                        doc: d.clone(),
                    });
                }
                InstanceView {
                    ikey: k.ikey.clone(),
                    role: k.role.clone(),
                    instance: k.instance.clone(),
                    machine: k.machine.clone(),
                    stream_id: i.stream_id.clone(),
                    version: i.version.clone(),
                    last_seen_ms: i.last_seen_ms,
                    pings: i.pings,
                    posts: i.posts,
                    samples: i.samples.iter().cloned().map(SampleView).collect(),
                }
            })
            .collect();
        // Newest first; the sort is stable, so one post's documents keep their order.
        documents.reverse();
        documents.sort_by_key(|d| std::cmp::Reverse(d.doc.t_ms));
        documents.truncate(MAX_FEED);
        LiveView {
            subscribed: st.watched(now),
            now_ms: now_ms(),
            window_ms: u64::try_from(SAMPLE_WINDOW.as_millis()).unwrap_or(u64::MAX),
            metrics: METRICS.iter().map(|(_, key)| *key).collect(),
            instances,
            documents,
        }
    }
}

/// `GET /api/live`.
#[derive(Serialize)]
struct LiveView {
    subscribed: bool,
    now_ms: u64,
    window_ms: u64,
    metrics: Vec<&'static str>,
    instances: Vec<InstanceView>,
    documents: Vec<FeedDoc>,
}

#[derive(Serialize)]
struct InstanceView {
    ikey: String,
    role: String,
    instance: String,
    machine: String,
    stream_id: String,
    version: String,
    last_seen_ms: u64,
    pings: u64,
    posts: u64,
    samples: Vec<SampleView>,
}

struct SampleView(Sample);

impl Serialize for SampleView {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("t_ms", &self.0.t_ms)?;
        for ((_, key), v) in METRICS.iter().zip(self.0.values) {
            if let Some(v) = v {
                m.serialize_entry(key, &v)?;
            }
        }
        m.end()
    }
}

#[derive(Serialize)]
struct FeedDoc {
    role: String,
    instance: String,
    #[serde(flatten)]
    doc: Doc,
}

/// What the handlers share.
#[derive(Clone)]
struct Shared {
    live: Arc<Live>,
    access: Arc<Access>,
    counters: Arc<Counters>,
}

/// The QuickPulse endpoints and `GET /api/live`, with a store of their own.
pub(crate) fn routes<S>(access: &Arc<Access>, counters: &Arc<Counters>) -> Router<S> {
    let shared = Shared {
        live: Arc::new(Live::default()),
        access: access.clone(),
        counters: counters.clone(),
    };
    Router::new()
        .route(PING_PATH, post(ping))
        .route(POST_PATH, post(post_))
        .route("/api/live", get(api_live))
        .with_state(shared)
}

async fn ping(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    take(&s, &q, &headers, body, false)
}

async fn post_(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    take(&s, &q, &headers, body, true)
}

fn take(
    s: &Shared,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    post: bool,
) -> Response {
    let body = match body {
        Ok(b) if b.len() <= MAX_BODY => b,
        _ => {
            stats::add(&s.counters.bodies_too_large, 1);
            return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
        }
    };
    let points = match protocol::decode(&body) {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => {
            stats::add(&s.counters.bodies_rejected, 1);
            return (StatusCode::BAD_REQUEST, "no monitoring data point").into_response();
        }
        Err(e) => {
            stats::add(&s.counters.bodies_rejected, 1);
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    let from_header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    for point in points.iter().take(MAX_POINTS) {
        let ikey = query
            .get("ikey")
            .map(|k| k.trim())
            .filter(|k| !k.is_empty())
            .or(point.instrumentation_key.as_deref().map(str::trim));
        if !s.access.ikey_accepted(ikey) {
            stats::add(&s.counters.requests_refused, 1);
            return StatusCode::FORBIDDEN.into_response();
        }
        let or_header = |v: &str, name: &str| {
            if v.is_empty() {
                text(&from_header(name))
            } else {
                text(v)
            }
        };
        let key = Key {
            ikey: text(&ikey.unwrap_or_default().to_ascii_lowercase()),
            role: or_header(
                point.role_name.as_deref().unwrap_or_default(),
                header::ROLE_NAME,
            ),
            instance: or_header(&point.instance, header::INSTANCE_NAME),
            machine: or_header(&point.machine_name, header::MACHINE_NAME),
        };
        s.live.record(key, point, post);
    }
    answer(s.live.watched())
}

/// `200` with the subscription and the polling hint.
fn answer(subscribed: bool) -> Response {
    let mut h = HeaderMap::new();
    let a = if subscribed {
        Answer::subscribed()
    } else {
        Answer::unsubscribed()
    };
    a.polling_interval_hint(POLLING_INTERVAL_HINT)
        .write_headers(&mut h);
    (StatusCode::OK, h).into_response()
}

/// `GET /api/live`: every instance with its samples, and the sample documents, newest first.
/// Reading it makes the reader a viewer for [`VIEWER_WINDOW`], unless `view=false`.
async fn api_live(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let view = q.get("view").is_none_or(|v| v != "false");
    Json(s.live.snapshot(view)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Key {
        Key {
            ikey: "k".into(),
            role: "r".into(),
            instance: format!("i{i}"),
            machine: "m".into(),
        }
    }

    fn point(docs: usize) -> MonitoringDataPoint {
        let body = format!(
            r#"[{{"Metrics":[{{"Name":"\\ApplicationInsights\\Requests/Sec","Value":2,"Weight":1}},
               {{"Name":"custom","Value":1,"Weight":1}}],
               "Documents":[{}],"Instance":"i","Timestamp":"/Date(1)/"}}]"#,
            vec![r#"{"__type":"TraceTelemetryDocument","Message":"m"}"#; docs].join(",")
        );
        protocol::decode(body.as_bytes()).unwrap().remove(0)
    }

    #[test]
    fn memory_is_bounded() {
        let live = Live::default();
        for i in 0..MAX_INSTANCES + 10 {
            live.record(key(i), &point(0), false);
        }
        assert_eq!(live.snapshot(false).instances.len(), MAX_INSTANCES);
        for _ in 0..MAX_SAMPLES + 10 {
            live.record(key(0), &point(MAX_DOCUMENTS + 5), true);
        }
        let st = live.state();
        let i = &st.instances[&key(0)];
        assert_eq!(i.samples.len(), MAX_SAMPLES);
        assert_eq!(i.documents.len(), MAX_DOCUMENTS);
        assert_eq!(i.samples[0].values[0], Some(2.0));
        assert_eq!(i.samples[0].values.iter().flatten().count(), 1);
    }

    #[test]
    fn a_viewer_subscribes_for_a_while() {
        let live = Live::default();
        assert!(!live.watched());
        live.snapshot(false);
        assert!(!live.watched());
        live.snapshot(true);
        assert!(live.watched());
        live.state().last_viewer = Instant::now().checked_sub(VIEWER_WINDOW);
        assert!(!live.watched());
    }

    #[test]
    fn long_text_is_cut() {
        assert_eq!(text(&"é".repeat(5000)).chars().count(), MAX_TEXT_CHARS);
        assert_eq!(text("short"), "short");
    }
}
