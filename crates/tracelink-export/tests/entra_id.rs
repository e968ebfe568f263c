//! Entra ID authentication against an ingestion stub on 127.0.0.1 that demands a valid
//! bearer token and answers 401 for a missing, unknown or expired one.
#![allow(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tracelink_core::model::{Event, Telemetry, TelemetryData};
use tracelink_core::{TelemetrySink, envelope};
use tracelink_export::{
    AccessToken, Backoff, BatchLimits, CredentialError, DropReason, Exporter, ExporterBuilder,
};

/// A post: the token it carried (if any), the answer, the event names.
type Post = (Option<String>, u16, Vec<String>);

/// The identity platform and ingestion in one: tokens it issued are valid until their
/// server-side expiry, which may come before the expiry the client is told.
#[derive(Clone, Default)]
struct Authority {
    expiries: Arc<Mutex<HashMap<String, Instant>>>,
    issued: Arc<AtomicUsize>,
    scopes: Arc<Mutex<Vec<String>>>,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl Authority {
    /// Issues `t<n>`, valid on the server for `server_life`; the client is told `client_life`.
    fn issue(&self, scope: &str, server_life: Duration, client_life: Duration) -> AccessToken {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("t{n}");
        self.scopes.lock().unwrap().push(scope.to_owned());
        self.expiries
            .lock()
            .unwrap()
            .insert(token.clone(), Instant::now() + server_life);
        AccessToken::new(token, SystemTime::now() + client_life)
    }

    async fn start(&self) -> SocketAddr {
        let this = self.clone();
        let app = Router::new().route(
            "/v2.1/track",
            post(move |headers: HeaderMap, body: Bytes| {
                let this = this.clone();
                async move {
                    let token = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .map(str::to_owned);
                    let valid = token.as_ref().is_some_and(|t| {
                        this.expiries
                            .lock()
                            .unwrap()
                            .get(t)
                            .is_some_and(|exp| *exp > Instant::now())
                    });
                    let mut text = String::new();
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_string(&mut text)
                        .unwrap();
                    let names = text.lines().map(name_of).collect();
                    let status = if valid { 200 } else { 401 };
                    this.posts.lock().unwrap().push((token, status, names));
                    StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    /// Event names in posts answered 200.
    fn accepted(&self) -> Vec<String> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s, _)| *s == 200)
            .flat_map(|(_, _, n)| n.clone())
            .collect()
    }

    fn statuses(&self) -> Vec<u16> {
        self.posts.lock().unwrap().iter().map(|p| p.1).collect()
    }
}

fn name_of(line: &str) -> String {
    match envelope::parse(line.as_bytes()).unwrap().telemetry.data {
        TelemetryData::Event(e) => e.name,
        _ => panic!("not an event"),
    }
}

fn builder(addr: SocketAddr, extra: &str) -> ExporterBuilder {
    Exporter::builder(&format!(
        "InstrumentationKey=00000000-1111-2222-3333-444444444444;IngestionEndpoint=http://{addr}{extra}"
    ))
    .no_spool()
    .timeout(Duration::from_secs(5))
    .batch_limits(BatchLimits {
        max_delay: Duration::from_millis(20),
        ..BatchLimits::default()
    })
    .backoff(Backoff::new(
        Duration::from_millis(20),
        Duration::from_millis(100),
    ))
}

async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn exactly_once(names: Vec<String>, n: usize) {
    let distinct: HashSet<_> = names.iter().collect();
    assert_eq!((names.len(), distinct.len()), (n, n), "{names:?}");
}

const HOUR: Duration = Duration::from_secs(3600);

/// The first token expires on the server long before the client thinks: the post is
/// refused, the token set aside, a new one fetched, and the batch sent again with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_replaced_and_the_batch_sent_again() {
    let auth = Authority::default();
    let addr = auth.start().await;
    let a = auth.clone();
    let exporter = builder(addr, "")
        .credential(move |scope: &str| {
            let first = a.issued.load(Ordering::SeqCst) == 0;
            let server = if first { Duration::ZERO } else { HOUR };
            let t = a.issue(scope, server, HOUR);
            async move { Ok(t) }
        })
        .build()
        .unwrap();
    let sink = exporter.sink();
    for i in 0..20 {
        sink.send(Telemetry::new(Event::new(format!("e{i}"))));
    }
    until("all items accepted", Duration::from_secs(10), || {
        auth.accepted().len() >= 20
    })
    .await;
    exporter.flush().await.unwrap();
    exactly_once(auth.accepted(), 20);
    assert_eq!(auth.statuses()[0], 401);
    let posts = auth.posts.lock().unwrap().clone();
    assert_eq!(posts[0].0.as_deref(), Some("t1"));
    assert!(posts[1..].iter().all(|p| p.0.as_deref() == Some("t2")));
    assert_eq!(
        *auth.scopes.lock().unwrap(),
        ["https://monitor.azure.com//.default"; 2]
    );
    let s = exporter.stats();
    assert_eq!((s.auth_refused, s.token_failures), (1, 0));
    assert_eq!((s.sent, s.dropped_total()), (20, 0));
    assert!(s.retried >= 1);
    exporter.shutdown(Duration::from_secs(1)).await.unwrap();
}

/// Short-lived tokens are refreshed before they expire, on the exporter's task: items sent
/// over three lifetimes all arrive, none refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_before_they_expire() {
    let auth = Authority::default();
    let addr = auth.start().await;
    let a = auth.clone();
    let life = Duration::from_millis(600);
    let exporter = builder(addr, ";AADAudience=https://monitor.azure.us/")
        .credential(move |scope: &str| {
            let t = a.issue(scope, life, life);
            async move { Ok(t) }
        })
        .build()
        .unwrap();
    let sink = exporter.sink();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < life * 3 {
        sink.send(Telemetry::new(Event::new(format!("e{i}"))));
        i += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    exporter.flush().await.unwrap();
    until("all items accepted", Duration::from_secs(10), || {
        auth.accepted().len() >= i
    })
    .await;
    exactly_once(auth.accepted(), i);
    assert!(
        auth.statuses().iter().all(|s| *s == 200),
        "{:?}",
        auth.statuses()
    );
    // Refreshed at half-life: at least one new token per lifetime.
    assert!(auth.issued.load(Ordering::SeqCst) >= 4);
    let tokens: HashSet<_> = auth
        .posts
        .lock()
        .unwrap()
        .iter()
        .filter_map(|p| p.0.clone())
        .collect();
    assert!(tokens.len() >= 3, "{tokens:?}");
    assert!(
        auth.scopes
            .lock()
            .unwrap()
            .iter()
            .all(|s| s == "https://monitor.azure.us//.default")
    );
    assert_eq!(exporter.stats().auth_refused, 0);
    exporter.shutdown(Duration::from_secs(1)).await.unwrap();
}

/// A credential that fails at first: nothing is posted without a token, batches wait and
/// are sent once a token comes; the failure is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_wait_for_a_failing_credential() {
    let auth = Authority::default();
    let addr = auth.start().await;
    let a = auth.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let exporter = builder(addr, "")
        .timeout(Duration::from_millis(200))
        .credential(move |scope: &str| {
            let first = c.fetch_add(1, Ordering::SeqCst) == 0;
            let t = (!first).then(|| a.issue(scope, HOUR, HOUR));
            async move { t.ok_or_else(|| CredentialError::new("identity endpoint not ready")) }
        })
        .build()
        .unwrap();
    let sink = exporter.sink();
    for i in 0..10 {
        sink.send(Telemetry::new(Event::new(format!("e{i}"))));
    }
    until("all items accepted", Duration::from_secs(10), || {
        auth.accepted().len() >= 10
    })
    .await;
    exactly_once(auth.accepted(), 10);
    assert!(auth.statuses().iter().all(|s| *s == 200));
    let s = exporter.stats();
    assert_eq!(s.token_failures, 1);
    assert_eq!((s.sent, s.dropped_total()), (10, 0));
    exporter.shutdown(Duration::from_secs(1)).await.unwrap();
}

/// A token that is never accepted (the identity lacks the role): batches are kept, never
/// dropped, and every refusal is counted. Without a credential, a 401 drops the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_keeps_failing_keeps_the_items_and_counts() {
    let auth = Authority::default();
    let addr = auth.start().await;
    let a = auth.clone();
    let exporter = builder(addr, "")
        .credential(move |scope: &str| {
            let t = a.issue(scope, Duration::ZERO, HOUR);
            async move { Ok(t) }
        })
        .build()
        .unwrap();
    for i in 0..5 {
        exporter
            .sink()
            .send(Telemetry::new(Event::new(format!("e{i}"))));
    }
    until("refusals", Duration::from_secs(10), || {
        exporter.stats().auth_refused >= 3
    })
    .await;
    let s = exporter.stats();
    assert_eq!((s.sent, s.dropped_total()), (0, 0));
    assert!(
        auth.issued.load(Ordering::SeqCst) >= 3,
        "a new token each time"
    );
    let stats = exporter.shutdown(Duration::from_millis(200)).await.unwrap();
    // The spool is off: what shutdown could not send is counted, never silently lost.
    assert_eq!(stats.dropped(DropReason::Shutdown), 5);

    let plain = builder(addr, "").build().unwrap();
    plain
        .sink()
        .send(Telemetry::new(Event::new("no credential")));
    plain.flush().await.unwrap();
    assert_eq!(plain.stats().dropped(DropReason::Rejected), 1);
    assert_eq!(plain.stats().auth_refused, 0);
    plain.shutdown(Duration::from_secs(1)).await.unwrap();
}
