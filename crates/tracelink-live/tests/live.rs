//! The client against a stand-in of the Live Metrics service on 127.0.0.1, compared with what
//! the Node SDK 2.9.8 sent (`tests/data/captures/live-metrics`). Intervals are shortened
//! (pings every 100 ms, posts every 100-300 ms) so that each test takes a second or two.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::Value;
use tracelink_core::model::{
    Dependency, Event, Exception, Request as RequestData, SeverityLevel, Telemetry, Trace,
};
use tracelink_core::{ConnectionString, MemorySink, TelemetrySink};
use tracelink_live::protocol::{self, Answer, Document, MonitoringDataPoint, header, metric};
use tracelink_live::{LiveErrorKind, LiveMetrics, LiveMetricsBuilder};

const IKEY: &str = "11111111-2222-3333-4444-555555555555";

const CAPTURE: &str = include_str!(
    "../../../tests/data/captures/live-metrics/node-applicationinsights-2.9.8-live.ndjson"
);

/// One request the stand-in received.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn is_ping(&self) -> bool {
        self.uri.starts_with(protocol::PING_PATH)
    }

    fn is_post(&self) -> bool {
        self.uri.starts_with(protocol::POST_PATH)
    }

    fn point(&self) -> MonitoringDataPoint {
        let mut points = protocol::decode(&self.body).unwrap();
        assert_eq!(points.len(), 1);
        points.remove(0)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn metric(&self, name: &str) -> Option<(f64, u32)> {
        self.point()
            .metrics?
            .into_iter()
            .find(|m| m.name == name)
            .map(|m| (m.value, m.weight))
    }
}

/// How the stand-in answers.
#[derive(Clone, Debug)]
enum Mode {
    Answer(Answer, &'static str),
    Status(u16),
}

#[derive(Clone)]
struct Stand {
    seen: Arc<Mutex<Vec<Seen>>>,
    mode: Arc<Mutex<Mode>>,
    addr: SocketAddr,
}

async fn answer(State(stand): State<Stand>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    stand.seen.lock().unwrap().push(Seen {
        at: Instant::now(),
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body,
    });
    let mode = stand.mode.lock().unwrap().clone();
    match mode {
        Mode::Answer(a, body) => {
            let mut res = Response::new(Body::from(body));
            res.headers_mut().insert(
                "content-type",
                "application/json; charset=utf-8".parse().unwrap(),
            );
            a.write_headers(res.headers_mut());
            res
        }
        Mode::Status(code) => {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::from_u16(code).unwrap();
            res
        }
    }
}

impl Stand {
    async fn start(mode: Mode) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stand = Stand {
            seen: Arc::default(),
            mode: Arc::new(Mutex::new(mode)),
            addr: listener.local_addr().unwrap(),
        };
        let app = Router::new().fallback(answer).with_state(stand.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        stand
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `f` holds for what was received (at most 5 s).
    async fn until(&self, what: &str, f: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen = self.seen();
            if f(&seen) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {seen:#?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn requests(&self, n: usize) -> Vec<Seen> {
        self.until(&format!("{n} requests"), |s| s.len() >= n).await
    }
}

fn builder(stand: &Stand) -> LiveMetricsBuilder {
    let cs = ConnectionString::parse(&format!(
        "InstrumentationKey={IKEY};LiveEndpoint={}",
        stand.url()
    ))
    .unwrap();
    LiveMetrics::builder(&cs)
        .role("livecap-rust-app")
        .role_instance("livecap-instance-1")
        .machine_name("vm")
        .ping_interval(Duration::from_millis(100))
        .post_interval(Duration::from_millis(100))
        .timeout(Duration::from_millis(500))
}

/// The captured Node SDK request of the given kind (the first one, or the first post with
/// documents), its header names (lower case, wire order) and its body.
fn node(kind: &str) -> (Vec<String>, Value) {
    CAPTURE
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "request")
        .find(|r| {
            let path = r["path"].as_str().unwrap();
            match kind {
                "ping" => path.starts_with(protocol::PING_PATH),
                _ => path.starts_with(protocol::POST_PATH),
            }
        })
        .map(|r| {
            let names = r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h[0].as_str().unwrap().to_ascii_lowercase())
                .collect();
            (
                names,
                serde_json::from_str(r["body_text"].as_str().unwrap()).unwrap(),
            )
        })
        .unwrap()
}

/// Field name and JSON type, sorted.
fn shape(v: &Value) -> Vec<(String, &'static str)> {
    let mut s: Vec<_> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let t = match v {
                Value::Null => "null",
                Value::Bool(_) => "bool",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            (k.clone(), t)
        })
        .collect();
    s.sort();
    s
}

/// The header names we send where Node sends them: Node's, without `connection` (Node closes
/// every connection; this client keeps one alive).
fn expected_header_names(node_names: &[String], extra: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = node_names
        .iter()
        .filter(|n| *n != "connection")
        .cloned()
        .chain(extra.iter().map(|s| s.to_string()))
        .collect();
    names.sort();
    names
}

fn names(h: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = h.keys().map(|k| k.as_str().to_owned()).collect();
    names.sort();
    names
}

fn gaps(seen: &[Seen]) -> Vec<Duration> {
    seen.windows(2).map(|w| w[1].at - w[0].at).collect()
}

fn request(ms: u64, code: &'static str) -> Telemetry {
    let mut item = Telemetry::new(RequestData::new(
        "GET /orders/{id}",
        code,
        Duration::from_millis(ms),
    ));
    item.tags
        .insert("ai.operation.id", "4bf92f3577b34da6a3ce929d0e0e4736");
    item.tags.insert("ai.operation.name", "GET /orders/{id}");
    item
}

fn call(ms: u64, success: bool, kind: &str) -> Telemetry {
    let mut d = Dependency::new("GET /stock", kind);
    d.duration = Duration::from_millis(ms);
    d.success = success;
    d.result_code = if success { "200" } else { "503" }.into();
    d.target = "inventory:8080".into();
    d.data = "http://inventory:8080/stock".into();
    Telemetry::new(d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_while_nobody_watches_with_the_node_headers_and_body() {
    let stand = Stand::start(Mode::Answer(Answer::unsubscribed(), "")).await;
    let live = builder(&stand).build().unwrap();
    let started = Instant::now();
    live.start().unwrap();
    assert_eq!(
        live.start().unwrap_err().kind(),
        LiveErrorKind::AlreadyStarted
    );
    let sink = Arc::new(MemorySink::new());
    let counted = live.sink(sink.clone());
    counted.send(request(5, "500"));
    assert_eq!(sink.len(), 1, "forwarded");
    let seen = stand.requests(4).await;
    live.stop();
    // The first ping at once, then one per interval.
    assert!(seen[0].at - started < Duration::from_millis(300));
    for gap in gaps(&seen[..4]) {
        assert!(
            gap >= Duration::from_millis(90) && gap < Duration::from_millis(300),
            "{gap:?}"
        );
    }
    let (node_headers, node_body) = node("ping");
    for ping in &seen[..4] {
        assert!(ping.is_ping(), "{}", ping.uri);
        assert_eq!(ping.uri, format!("{}?ikey={IKEY}", protocol::PING_PATH));
        assert_eq!(
            names(&ping.headers),
            expected_header_names(&node_headers, &[])
        );
        let h = &ping.headers;
        assert_eq!(h["expect"], "100-continue");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h[header::INVARIANT_VERSION], "1");
        assert_eq!(h[header::MACHINE_NAME], "vm");
        assert_eq!(h[header::ROLE_NAME], "livecap-rust-app");
        assert_eq!(h[header::INSTANCE_NAME], "livecap-instance-1");
        assert!(h.get("content-encoding").is_none());
        let body = ping.json();
        assert!(body.is_object(), "a ping sends one object");
        assert_eq!(shape(&body), shape(&node_body));
        let p = ping.point();
        assert_eq!((&p.metrics, &p.documents), (&None, &None));
        assert_eq!(p.invariant_version, 1);
        assert_eq!(p.instrumentation_key.as_deref(), Some(IKEY));
        assert_eq!(h[header::STREAM_ID].to_str().unwrap(), p.stream_id);
        assert_eq!(p.stream_id.len(), 32);
        assert!(
            p.stream_id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(p.version.as_deref().unwrap().starts_with("rs:tracelink:"));
        // Stamped when sent, in the body and in .NET ticks.
        let sent =
            protocol::parse_transmission_time(h[header::TRANSMISSION_TIME].to_str().unwrap())
                .unwrap();
        let stamped = p.time().unwrap();
        assert!(
            sent >= stamped && sent.duration_since(stamped).unwrap() < Duration::from_millis(5)
        );
        let age = SystemTime::now().duration_since(stamped).unwrap();
        assert!(age < Duration::from_secs(5), "{age:?}");
    }
    // The same stream from start to end.
    assert!(
        seen.iter()
            .all(|s| s.point().stream_id == seen[0].point().stream_id)
    );
    assert!(!live.is_collecting());
    assert!(live.status().pings >= 3, "answers counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_each_interval_with_that_intervals_metrics_and_documents() {
    let stand = Stand::start(Mode::Answer(Answer::subscribed(), "")).await;
    let interval = Duration::from_millis(300);
    let live = builder(&stand).post_interval(interval).build().unwrap();
    live.start().unwrap();
    // Ping, then a post one interval later: the subscription takes effect at once.
    let seen = stand.until("a post", |s| s.iter().any(Seen::is_post)).await;
    assert!(seen[0].is_ping() && seen[1].is_post());
    let first_gap = seen[1].at - seen[0].at;
    assert!(
        first_gap >= Duration::from_millis(280) && first_gap < Duration::from_millis(600),
        "{first_gap:?}"
    );
    assert!(live.is_collecting());
    // The post that just arrived was taken before it was sent: what is recorded now goes into
    // the next one.
    let sink = live.sink(MemorySink::new());
    for item in [
        request(10, "200"),
        request(10, "200"),
        request(10, "200"),
        request(30, "500"),
        call(4, true, "Http"),
        call(8, false, "Http"),
        call(100, true, "InProc"),
        Telemetry::new(Exception::new("io::Error", "connection reset")),
        Telemetry::new(Trace::new("handled order 7", SeverityLevel::Warning)),
        Telemetry::new(Event::new("OrderPlaced")),
    ] {
        sink.send(item);
    }
    let seen = stand
        .until("the next post", |s| {
            s.iter().filter(|s| s.is_post()).count() >= 2
        })
        .await;
    let posts: Vec<&Seen> = seen.iter().filter(|s| s.is_post()).collect();
    let post = posts[1];
    assert_eq!(post.uri, format!("{}?ikey={IKEY}", protocol::POST_PATH));
    // Requests: three fine, one failed; the duration mean is weighted by the request count.
    let (requests, w) = post.metric(metric::REQUESTS_PER_SECOND).unwrap();
    assert_eq!(w, 1);
    let secs = 4.0 / requests;
    assert!(secs > 0.25 && secs < 0.6, "bucket of {secs} s");
    assert_eq!(post.metric(metric::REQUEST_DURATION), Some((15.0, 4)));
    let (failed, _) = post.metric(metric::REQUESTS_FAILED_PER_SECOND).unwrap();
    assert!((failed * secs - 1.0).abs() < 1e-9);
    // Calls: the InProc span is not one.
    let (calls, _) = post.metric(metric::DEPENDENCY_CALLS_PER_SECOND).unwrap();
    assert!((calls * secs - 2.0).abs() < 1e-9);
    assert_eq!(
        post.metric(metric::DEPENDENCY_CALL_DURATION),
        Some((6.0, 2))
    );
    let (calls_failed, _) = post
        .metric(metric::DEPENDENCY_CALLS_FAILED_PER_SECOND)
        .unwrap();
    assert!((calls_failed * secs - 1.0).abs() < 1e-9);
    let (exceptions, _) = post.metric(metric::EXCEPTIONS_PER_SECOND).unwrap();
    assert!((exceptions * secs - 1.0).abs() < 1e-9);
    // The Node SDK's nine metrics, in its order (CPU and memory are read from /proc).
    let node_names: Vec<String> = {
        let (_, body) = node("post");
        body[0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_owned())
            .collect()
    };
    let ours: Vec<String> = post
        .point()
        .metrics
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    if cfg!(target_os = "linux") {
        assert_eq!(ours, node_names);
        let (cpu, _) = post.metric(metric::PROCESSOR_TIME).unwrap();
        assert!((0.0..=100.0).contains(&cpu));
        assert!(post.metric(metric::COMMITTED_BYTES).unwrap().0 > 1e5);
    }
    // Documents: the failed request, the failed call, the exception and the trace.
    let docs = post.point().documents.unwrap();
    let types: Vec<&str> = docs.iter().map(Document::type_name).collect();
    assert_eq!(
        types,
        [
            "RequestTelemetryDocument",
            "DependencyTelemetryDocument",
            "ExceptionTelemetryDocument",
            "TraceTelemetryDocument"
        ]
    );
    let Document::Request(r) = &docs[0] else {
        panic!()
    };
    assert_eq!(
        (r.name.as_str(), r.success, r.response_code.as_str()),
        ("GET /orders/{id}", false, "500")
    );
    assert_eq!(r.operation_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(r.duration, "00:00:00.0300000");
    // The body has the Node SDK's shape: an array of one data point, the same fields with the
    // same JSON types, and each document type with the fields Node sends.
    let (node_headers, node_body) = node("post");
    assert_eq!(
        names(&post.headers),
        expected_header_names(&node_headers, &[])
    );
    let ours = post.json();
    assert_eq!(ours.as_array().unwrap().len(), 1);
    assert_eq!(shape(&ours[0]), shape(&node_body[0]));
    let node_docs: Vec<Value> = CAPTURE
        .lines()
        .filter_map(|l| {
            let r: Value = serde_json::from_str(l).ok()?;
            let body: Value = serde_json::from_str(r["body_text"].as_str()?).ok()?;
            body.get(0)?["Documents"].as_array().cloned()
        })
        .flatten()
        .collect();
    for doc in ours[0]["Documents"].as_array().unwrap() {
        let like = node_docs
            .iter()
            .find(|d| d["__type"] == doc["__type"])
            .unwrap();
        assert_eq!(shape(doc), shape(like), "{doc}");
    }
    // The buckets before and after are empty of requests: nothing is counted twice.
    let seen = stand
        .until("a third post", |s| {
            s.iter().filter(|s| s.is_post()).count() >= 3
        })
        .await;
    let third = seen.iter().filter(|s| s.is_post()).nth(2).unwrap();
    assert_eq!(third.metric(metric::REQUESTS_PER_SECOND).unwrap().0, 0.0);
    assert_eq!(third.metric(metric::REQUEST_DURATION), None);
    assert_eq!(third.point().documents, None);
    assert_eq!(posts[0].metric(metric::REQUESTS_PER_SECOND).unwrap().0, 0.0);
    live.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_bounded_per_post() {
    let stand = Stand::start(Mode::Answer(Answer::subscribed(), "")).await;
    let live = builder(&stand)
        .post_interval(Duration::from_millis(300))
        .max_documents_per_post(3)
        .build()
        .unwrap();
    live.start().unwrap();
    stand.until("a post", |s| s.iter().any(Seen::is_post)).await;
    for _ in 0..50 {
        live.record(&request(1, "503"));
    }
    let seen = stand
        .until("the next post", |s| {
            s.iter().filter(|s| s.is_post()).count() >= 2
        })
        .await;
    let post = seen.iter().filter(|s| s.is_post()).nth(1).unwrap();
    assert_eq!(post.point().documents.unwrap().len(), 3);
    // Every item is counted, documents or not.
    assert_eq!(post.metric(metric::REQUEST_DURATION).unwrap().1, 50);
    live.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_hint_sets_the_ping_interval_and_is_kept() {
    let hint = Duration::from_millis(250);
    let stand = Stand::start(Mode::Answer(
        Answer::unsubscribed().polling_interval_hint(hint),
        "",
    ))
    .await;
    let live = builder(&stand)
        .post_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    live.start().unwrap();
    stand.requests(3).await;
    stand.set(Mode::Answer(Answer::unsubscribed(), ""));
    let seen = stand.requests(6).await;
    live.stop();
    assert!(seen.iter().all(Seen::is_ping));
    for gap in gaps(&seen[..6]) {
        assert!(
            gap >= Duration::from_millis(235) && gap < Duration::from_millis(500),
            "{gap:?}"
        );
    }
    assert_eq!(live.status().ping_interval, hint);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_moves_pings_and_posts_to_the_new_endpoint() {
    let to = Stand::start(Mode::Answer(Answer::subscribed(), "")).await;
    let from = Stand::start(Mode::Answer(
        Answer::subscribed().endpoint_redirect(format!("{}/redirected-prefix/", to.url())),
        "",
    ))
    .await;
    let live = builder(&from).build().unwrap();
    live.start().unwrap();
    let seen = to.requests(3).await;
    live.stop();
    assert_eq!(from.seen().len(), 1);
    assert!(from.seen()[0].is_ping());
    for s in &seen {
        // The path stays the protocol's; only scheme, host and port come from the redirect.
        assert_eq!(s.uri, format!("{}?ikey={IKEY}", protocol::POST_PATH));
        assert_eq!(s.headers["host"], to.addr.to_string().as_str());
    }
    assert_eq!(live.status().endpoint, to.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoint_backs_off_then_recovers() {
    let stand = Stand::start(Mode::Answer(Answer::subscribed(), "")).await;
    let live = builder(&stand)
        .post_interval(Duration::from_millis(50))
        .backoff(
            Duration::from_millis(300),
            Duration::from_millis(600),
            Duration::from_millis(700),
        )
        .build()
        .unwrap();
    live.start().unwrap();
    stand
        .until("posts", |s| s.iter().filter(|s| s.is_post()).count() >= 2)
        .await;
    stand.set(Mode::Status(503));
    let errors_from = stand.seen().len();
    // Posts go on every interval until 300 ms without success, then nothing for 700 ms, then
    // a ping.
    let seen = stand
        .until("a ping after the back-off", |s| {
            s[errors_from..].iter().any(Seen::is_ping)
        })
        .await;
    let failing = &seen[errors_from..];
    let ping_at = failing.iter().position(Seen::is_ping).unwrap();
    assert!((3..=10).contains(&ping_at), "{ping_at} failed posts");
    assert!(failing[..ping_at].iter().all(Seen::is_post));
    let silence = failing[ping_at].at - failing[ping_at - 1].at;
    assert!(silence >= Duration::from_millis(650), "{silence:?}");
    assert!(!live.is_collecting(), "no counting while backing off");
    // Failing pings within their window keep the ping interval; past it, the fallback.
    stand.set(Mode::Answer(Answer::unsubscribed(), ""));
    let recovered_from = stand.seen().len();
    let seen = stand
        .until("pings after recovery", |s| s.len() >= recovered_from + 3)
        .await;
    // The first answer ends the back-off: pings every 100 ms again.
    for gap in gaps(&seen[recovered_from..recovered_from + 3]) {
        assert!(gap < Duration::from_millis(300), "{gap:?}");
    }
    let status = live.status();
    assert!(status.failures >= 4);
    assert!(!status.subscribed);
    live.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_costs_the_application_nothing() {
    // A port nobody listens on: connections are refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let cs = ConnectionString::parse(&format!(
        "InstrumentationKey={IKEY};LiveEndpoint=http://{addr}"
    ))
    .unwrap();
    let live = LiveMetrics::builder(&cs)
        .ping_interval(Duration::from_millis(20))
        .post_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    live.start().unwrap();
    let sink = Arc::new(MemorySink::new());
    let counted = live.sink(sink.clone());
    let t = Instant::now();
    for _ in 0..1000 {
        counted.send(request(1, "500"));
    }
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(sink.len(), 1000);
    let deadline = Instant::now() + Duration::from_secs(5);
    while live.status().failures < 3 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((live.status().pings, live.status().posts), (0, 0));
    live.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_returns_to_pings_and_stops_counting() {
    let stand = Stand::start(Mode::Answer(Answer::subscribed(), "")).await;
    let live = builder(&stand).build().unwrap();
    live.start().unwrap();
    stand
        .until("posts", |s| s.iter().filter(|s| s.is_post()).count() >= 2)
        .await;
    stand.set(Mode::Answer(Answer::unsubscribed(), ""));
    let n = stand.seen().len();
    let seen = stand
        .until("pings", |s| {
            s[n..].iter().filter(|s| s.is_ping()).count() >= 2
        })
        .await;
    assert!(!live.is_collecting());
    // The post answered `false` is followed by pings, one interval apart.
    let first_ping = n + seen[n..].iter().position(Seen::is_ping).unwrap();
    assert!(seen[first_ping - 1].is_post());
    assert!(seen[first_ping..].iter().all(Seen::is_ping));
    // Items while nobody watches are not counted, and a new subscription starts from zero.
    for _ in 0..5 {
        live.record(&request(1, "500"));
    }
    stand.set(Mode::Answer(Answer::subscribed(), ""));
    let n = stand.seen().len();
    let seen = stand
        .until("a post again", |s| s[n..].iter().any(Seen::is_post))
        .await;
    let post = seen[n..].iter().find(|s| s.is_post()).unwrap();
    assert_eq!(post.metric(metric::REQUESTS_PER_SECOND).unwrap().0, 0.0);
    assert_eq!(post.point().documents, None);
    live.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_etag_is_echoed_on_later_requests() {
    // The configuration body the capture's stand-in sent.
    const CONFIG: &str = r#"{"ETag": "etag-1", "Metrics": [{"Id": "derived-request-duration-ok", "TelemetryType": "Request", "FilterGroups": [{"Filters": [{"FieldName": "Success", "Predicate": "Equal", "Comparand": "true"}]}], "Projection": "Duration", "Aggregation": "Avg"}], "DocumentStreams": [], "QuotaInfo": null}"#;
    let stand = Stand::start(Mode::Answer(
        Answer::subscribed().configuration_etag("etag-1"),
        CONFIG,
    ))
    .await;
    let live = builder(&stand).build().unwrap();
    live.start().unwrap();
    let seen = stand.requests(3).await;
    live.stop();
    assert!(seen[0].headers.get(header::CONFIGURATION_ETAG).is_none());
    for s in &seen[1..3] {
        assert_eq!(s.headers[header::CONFIGURATION_ETAG], "etag-1");
        assert!(s.is_post());
    }
    assert_eq!(live.status().configuration_etag.as_deref(), Some("etag-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_pings_and_posts() {
    let stand = Stand::start(Mode::Answer(Answer::subscribed(), "")).await;
    let live = builder(&stand).build().unwrap();
    live.start().unwrap();
    stand.requests(2).await;
    live.stop();
    let n = stand.seen().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(stand.seen().len() <= n + 1, "at most the request in flight");
    assert!(!live.is_collecting());
    live.record(&request(1, "500"));
    assert!(!live.status().subscribed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_goes_with_every_ping_and_post() {
    let stand = Stand::start(Mode::Answer(Answer::unsubscribed(), "")).await;
    let tokens = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let given = tokens.clone();
    let live = builder(&stand)
        .authorization(move || {
            // No token at first (as before a credential answers), then a fresh one each time.
            let n = given.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (n > 0).then(|| http::HeaderValue::from_str(&format!("Bearer token-{n}")).unwrap())
        })
        .build()
        .unwrap();
    live.start().unwrap();
    stand.requests(2).await;
    stand.set(Mode::Answer(Answer::subscribed(), ""));
    let seen = stand.until("a post", |s| s.iter().any(Seen::is_post)).await;
    live.stop();
    assert!(seen[0].headers.get(http::header::AUTHORIZATION).is_none());
    assert_eq!(
        seen[1].headers[http::header::AUTHORIZATION],
        "Bearer token-1"
    );
    let post = seen.iter().find(|s| s.is_post()).unwrap();
    let value = post.headers[http::header::AUTHORIZATION].to_str().unwrap();
    assert!(value.starts_with("Bearer token-"), "{value}");
    assert_ne!(value, "Bearer token-1", "asked again for each request");
}
