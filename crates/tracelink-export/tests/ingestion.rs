//! The exporter against a real HTTP ingestion stub on 127.0.0.1, scripted per request
//! (SPEC 7.4, 7.5, 8).
#![allow(missing_docs)]

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use tracelink_core::model::{Event, Telemetry, tags};
use tracelink_core::{TelemetrySink, TraceId};
use tracelink_export::{Backoff, BatchLimits, DropReason, Exporter, ExporterBuilder, Sampling};

#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    headers: HeaderMap,
    lines: Vec<String>,
    status: u16,
}

struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn ok() -> Answer {
    Answer {
        status: 200,
        headers: vec![],
        body: String::new(),
    }
}

type Script = Arc<dyn Fn(usize, &[String]) -> Answer + Send + Sync>;

struct Stub {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Stub {
    async fn start(script: impl Fn(usize, &[String]) -> Answer + Send + Sync + 'static) -> Self {
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Script = Arc::new(script);
        let n = Arc::new(AtomicUsize::new(0));
        let l = log.clone();
        let app = Router::new().route(
            "/v2.1/track",
            post(move |headers: HeaderMap, body: Bytes| {
                let (log, script, n) = (l.clone(), script.clone(), n.clone());
                async move {
                    let mut text = String::new();
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_string(&mut text)
                        .unwrap();
                    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
                    let answer = script(n.fetch_add(1, Ordering::SeqCst), &lines);
                    log.lock().unwrap().push(Received {
                        at: Instant::now(),
                        headers,
                        lines,
                        status: answer.status,
                    });
                    let mut res =
                        (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
                    for (k, v) in answer.headers {
                        res.headers_mut().insert(k, v.parse().unwrap());
                    }
                    res
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, log }
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Item names in batches answered 200 (all) — the items ingestion accepted.
    fn accepted_names(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| r.status == 200)
            .flat_map(|r| r.lines.iter().map(|l| name_of(l)))
            .collect()
    }
}

fn name_of(line: &str) -> String {
    let env =
        tracelink_core::envelope::parse(line.as_bytes()).expect("each line is a valid envelope");
    match env.telemetry.data {
        tracelink_core::model::TelemetryData::Event(e) => e.name,
        _ => panic!("not an event"),
    }
}

fn conn(addr: SocketAddr) -> String {
    format!(
        "InstrumentationKey=00000000-1111-2222-3333-444444444444;IngestionEndpoint=http://{addr}"
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "tracelink-export-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn builder(addr: SocketAddr, spool: &str) -> ExporterBuilder {
    Exporter::builder(&conn(addr))
        .spool_dir(temp_dir(spool))
        .batch_limits(BatchLimits {
            max_delay: Duration::from_millis(50),
            ..BatchLimits::default()
        })
        .backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(200),
        ))
}

fn event(i: usize) -> Telemetry {
    let mut t = Telemetry::new(Event::new(format!("e{i}")));
    t.tags
        .insert(tags::OPERATION_ID, TraceId::random().to_string());
    t
}

/// An address that refuses connections for as long as the socket lives (bound, never
/// listening): unlike a closed listener's port, no other test can take it meanwhile.
fn refusing_addr() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn assert_exactly_once(names: &[String], n: usize) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for name in names {
        *counts.entry(name.as_str()).or_default() += 1;
    }
    assert_eq!(counts.len(), n, "distinct items");
    assert!(counts.values().all(|c| *c == 1), "no duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_10000_items_exactly_once() {
    let stub = Stub::start(|_, _| ok()).await;
    let exporter = builder(stub.addr, "happy").build().unwrap();
    let sink = exporter.sink();
    for i in 0..10_000 {
        sink.send(event(i));
    }
    exporter.flush().await.unwrap();
    assert_exactly_once(&stub.accepted_names(), 10_000);
    for r in stub.received() {
        assert!(r.lines.len() <= 500, "batch of {}", r.lines.len());
        assert!(r.lines.iter().map(|l| l.len() + 1).sum::<usize>() <= 1024 * 1024 + 16 * 1024);
        assert_eq!(r.headers["content-type"], "application/x-json-stream");
        assert_eq!(r.headers["content-encoding"], "gzip");
    }
    let s = exporter.stats();
    assert_eq!((s.enqueued, s.sent, s.dropped_total()), (10_000, 10_000, 0));
    exporter.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_206_resends_only_retriable_items_once() {
    let stub = Stub::start(|n, _| {
        if n == 0 {
            Answer {
                status: 206,
                headers: vec![],
                body: r#"{"itemsReceived":5,"itemsAccepted":2,"errors":[{"index":1,"statusCode":429,"message":"throttled"},{"index":3,"statusCode":400,"message":"bad"},{"index":4,"statusCode":500,"message":"oops"}]}"#.into(),
            }
        } else {
            ok()
        }
    })
    .await;
    let exporter = builder(stub.addr, "partial").build().unwrap();
    for i in 0..5 {
        exporter.sink().send(event(i));
    }
    exporter.flush().await.unwrap();
    until("the resend", Duration::from_secs(5), || {
        stub.received().len() >= 2
    })
    .await;
    // The counters move once the exporter has read the answer; then nothing more is sent.
    until("the resend's answer", Duration::from_secs(5), || {
        exporter.stats().sent == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = stub.received();
    assert_eq!(r.len(), 2, "one resend, once");
    let resent: Vec<String> = r[1].lines.iter().map(|l| name_of(l)).collect();
    assert_eq!(resent, ["e1", "e4"]);
    let s = exporter.stats();
    assert_eq!(
        (s.sent, s.dropped(DropReason::Rejected), s.retried),
        (4, 1, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_batches_are_dropped_counted_never_retried() {
    let stub = Stub::start(|n, _| Answer {
        status: [400, 402, 439][n.min(2)],
        headers: vec![],
        body: String::new(),
    })
    .await;
    let exporter = builder(stub.addr, "rejected").build().unwrap();
    for round in 0..3 {
        for i in 0..10 {
            exporter.sink().send(event(round * 10 + i));
        }
        exporter.flush().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stub.received().len(), 3, "never retried");
    let s = exporter.stats();
    assert_eq!(
        (s.dropped(DropReason::Rejected), s.sent, s.retried),
        (30, 0, 0)
    );
}

/// 503 for 20 s, then 200: zero loss, no duplicates, backoff observed, Retry-After honoured
/// in both forms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_of_20_seconds_loses_nothing() {
    let start = Instant::now();
    let stub = Stub::start(move |n, _| {
        if start.elapsed() < Duration::from_secs(20) {
            let retry_after = if n % 2 == 0 {
                "1".to_owned()
            } else {
                let at = std::time::SystemTime::now() + Duration::from_secs(2);
                httpdate(at)
            };
            Answer {
                status: 503,
                headers: vec![("retry-after", retry_after)],
                body: String::new(),
            }
        } else {
            ok()
        }
    })
    .await;
    let exporter = builder(stub.addr, "outage").build().unwrap();
    let sink = exporter.sink();
    for i in 0..200 {
        sink.send(event(i));
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    until("all items accepted", Duration::from_secs(45), || {
        stub.accepted_names().len() >= 200
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_exactly_once(&stub.accepted_names(), 200);
    let failed: Vec<Received> = stub
        .received()
        .into_iter()
        .filter(|r| r.status == 503)
        .collect();
    assert!(!failed.is_empty());
    // Backoff: after each 503 the next attempt waited at least its Retry-After (1 s, or an
    // HTTP date about 1-2 s ahead), so 20 s of outage saw few attempts.
    for pair in failed.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(900), "attempts {gap:?} apart");
    }
    assert!(failed.len() <= 25, "{} attempts in 20 s", failed.len());
    let s = exporter.stats();
    assert_eq!(s.sent, 200);
    assert_eq!(s.dropped_total(), 0);
    assert!(s.spooled > 0, "batches waited in the spool");
}

fn httpdate(t: std::time::SystemTime) -> String {
    // IMF-fixdate from RFC 3339: "2026-11-21T05:46:41..." -> "Sat, 21 Nov 2026 05:46:41 GMT"
    let s = tracelink_core::wire_time::format_time(t);
    let (y, m, d) = (&s[0..4], &s[5..7], &s[8..10]);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS[m.parse::<usize>().unwrap() - 1];
    format!("Mon, {d} {month} {y} {} GMT", &s[11..19])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_items_survive_shutdown_and_are_sent_by_the_next_exporter() {
    let (_dead_socket, dead) = refusing_addr();
    let dir = temp_dir("restart");
    let first = builder(dead, "unused").spool_dir(&dir).build().unwrap();
    for i in 0..50 {
        first.sink().send(event(i));
    }
    first.shutdown(Duration::from_millis(500)).await.unwrap();
    let files = spool_files(&dir);
    assert!(files > 0, "the spool holds the batches");

    let stub = Stub::start(|_, _| ok()).await;
    let second = builder(stub.addr, "unused")
        .spool_dir(&dir)
        .build()
        .unwrap();
    until("spooled items", Duration::from_secs(10), || {
        stub.accepted_names().len() >= 50
    })
    .await;
    // Files are deleted once their answers are read.
    until("sent files deleted", Duration::from_secs(5), || {
        spool_files(&dir) == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_exactly_once(&stub.accepted_names(), 50);
    second.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_spool_files_are_skipped_and_counted() {
    let dir = temp_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    std::fs::write(
        dir.join(format!("{:016}-1-00000000-9.trn", now - 5000)),
        b"definitely not gzip",
    )
    .unwrap();
    let stub = Stub::start(|_, _| ok()).await;
    let exporter = builder(stub.addr, "unused")
        .spool_dir(&dir)
        .build()
        .unwrap();
    exporter.sink().send(event(1));
    exporter.flush().await.unwrap();
    until("the corrupt file is gone", Duration::from_secs(5), || {
        spool_files(&dir) == 0
    })
    .await;
    let s = exporter.stats();
    assert_eq!(s.dropped(DropReason::Corrupt), 9);
    assert_eq!(stub.accepted_names(), ["e1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_and_remembered() {
    let target = Stub::start(|_, _| ok()).await;
    let to = format!("http://{}/v2.1/track", target.addr);
    let redirector = Stub::start(move |_, _| Answer {
        status: 308,
        headers: vec![("location", to.clone())],
        body: String::new(),
    })
    .await;
    let exporter = builder(redirector.addr, "redirect").build().unwrap();
    for round in 0..3 {
        exporter.sink().send(event(round));
        exporter.flush().await.unwrap();
    }
    assert_eq!(redirector.received().len(), 1, "the new endpoint is kept");
    assert_exactly_once(&target.accepted_names(), 3);
}

/// A burst of 1,000,000 items: the queue stays bounded, drops are counted, and sending
/// never stalls the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_overflow_is_bounded_and_counted() {
    let stub = Stub::start(|_, _| {
        std::thread::sleep(Duration::from_millis(20));
        ok()
    })
    .await;
    let exporter = builder(stub.addr, "overflow")
        .queue_capacity(10_000)
        .build()
        .unwrap();
    let sink = exporter.sink();
    let rss_before = rss_kib();
    let item = event(0);
    for _ in 0..1_000_000 {
        sink.send(item.clone());
    }
    let grown_mib = rss_kib().saturating_sub(rss_before) / 1024;
    let s = exporter.stats();
    assert_eq!(s.enqueued + s.dropped(DropReason::QueueFull), 1_000_000);
    assert!(s.dropped(DropReason::QueueFull) > 0);
    assert!(grown_mib < 256, "memory grew by {grown_mib} MiB");
    drop(exporter); // never hangs
}

/// Batches in a spool directory: waiting (`*.trn`), or claimed by an exporter
/// (`.claims/<exporter>/*.trn`).
fn spool_files(dir: &std::path::Path) -> usize {
    let trn = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".trn"))
                    .count()
            })
            .unwrap_or(0)
    };
    let claimed: usize = std::fs::read_dir(dir.join(".claims"))
        .map(|rd| rd.flatten().map(|e| trn(&e.path())).sum())
        .unwrap_or(0);
    trn(dir) + claimed
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processors_enrich_and_drop_and_sampling_keeps_whole_operations() {
    let stub = Stub::start(|_, _| ok()).await;
    let exporter = builder(stub.addr, "processors")
        .cloud_role("svc")
        .processor(|item| !matches!(&item.data, tracelink_core::model::TelemetryData::Event(e) if e.name == "drop-me"))
        .sampling(Sampling::fixed(25.0))
        .build()
        .unwrap();
    let sink = exporter.sink();
    let mut kept_ops = 0;
    for i in 0..400 {
        let op = TraceId::random();
        let decision = sink.sampling(op);
        kept_ops += usize::from(decision.is_sampled());
        for j in 0..3 {
            let mut t = Telemetry::new(Event::new(format!("op{i}-{j}")));
            t.tags.insert(tags::OPERATION_ID, op.to_string());
            sink.send(t);
        }
    }
    sink.send(Telemetry::new(Event::new("drop-me")));
    exporter.flush().await.unwrap();
    let lines: Vec<String> = stub
        .received()
        .iter()
        .flat_map(|r| r.lines.clone())
        .collect();
    assert_eq!(
        lines.len(),
        kept_ops * 3,
        "the sink's decision and the item sampling agree"
    );
    for l in &lines {
        let env = tracelink_core::envelope::parse(l.as_bytes()).unwrap();
        assert_eq!(env.telemetry.tags.get("ai.cloud.role"), Some("svc"));
        assert_eq!(env.telemetry.sample_rate, Some(25.0));
    }
    assert_eq!(exporter.stats().dropped(DropReason::Processor), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_a_typed_error() {
    let e = Exporter::builder("InstrumentationKey=nope")
        .build()
        .unwrap_err();
    assert_eq!(
        e.kind(),
        tracelink_export::ExporterErrorKind::ConnectionString
    );
    // An unusable spool directory is a warning, not an error: memory-only.
    let file = temp_dir("notadir");
    std::fs::write(&file, b"x").unwrap();
    let stub = Stub::start(|_, _| ok()).await;
    let exporter = builder(stub.addr, "unused")
        .spool_dir(file.join("sub"))
        .build()
        .unwrap();
    exporter.sink().send(event(7));
    exporter.flush().await.unwrap();
    assert_eq!(stub.accepted_names(), ["e7"]);
}

#[test]
fn building_outside_a_runtime_is_an_error() {
    let e = Exporter::builder(&conn("127.0.0.1:1".parse().unwrap()))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), tracelink_export::ExporterErrorKind::NoRuntime);
}

/// The child side of `sigkill_loses_only_what_was_in_memory`: spools 100 items against a dead
/// endpoint, says so, and waits to be killed.
fn spool_child(dir: &str, dead: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let exporter = builder(dead.parse().unwrap(), "unused")
            .spool_dir(dir)
            .build()
            .unwrap();
        for i in 0..100 {
            exporter.sink().send(event(i));
        }
        exporter.flush().await.unwrap();
        until("spooled", Duration::from_secs(10), || {
            exporter.stats().spooled >= 100
        })
        .await;
        println!("SPOOLED");
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

/// A process killed with SIGKILL loses at most what was in memory;
/// everything spooled is sent by the next process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_only_what_was_in_memory() {
    if let (Ok(dir), Ok(dead)) = (
        std::env::var("TRACELINK_SPOOL_CHILD"),
        std::env::var("TRACELINK_DEAD"),
    ) {
        return tokio::task::spawn_blocking(move || spool_child(&dir, &dead))
            .await
            .unwrap();
    }
    let dir = temp_dir("sigkill");
    let (_dead_socket, dead) = refusing_addr();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_loses_only_what_was_in_memory",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TRACELINK_SPOOL_CHILD", &dir)
        .env("TRACELINK_DEAD", dead.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let spooled = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("SPOOLED"))
    })
    .await
    .unwrap();
    assert!(spooled, "the child spooled its items");
    child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    child.wait().unwrap();
    assert!(spool_files(&dir) > 0);

    let stub = Stub::start(|_, _| ok()).await;
    let next = builder(stub.addr, "unused")
        .spool_dir(&dir)
        .build()
        .unwrap();
    until(
        "the killed process's items",
        Duration::from_secs(10),
        || stub.accepted_names().len() >= 100,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_exactly_once(&stub.accepted_names(), 100);
    next.shutdown(Duration::from_secs(1)).await.unwrap();
}
