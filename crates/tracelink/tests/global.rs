//! What goes through the process-wide client of the running setup: the free functions and
//! the panic hook. The tests take turns (one setup at a time owns the free functions).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tracelink::core::MemorySink;
use tracelink::core::model::{Telemetry, TelemetryData, TelemetryKind};

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn setup(sink: &Arc<MemorySink>) -> tracelink::Tracelink {
    tracelink::Builder::from_vars([("OTEL_SERVICE_NAME", "global-test")])
        .sink(sink.clone())
        .init()
        .unwrap()
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn wait_for(sink: &MemorySink, n: usize) -> Vec<Telemetry> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    sink.take()
}

fn request(items: &[Telemetry]) -> &Telemetry {
    items
        .iter()
        .find(|i| i.kind() == TelemetryKind::Request)
        .expect("a request item")
}

async fn boom() -> &'static str {
    panic!("inventory is on fire")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_an_exception_under_a_failed_request() {
    let _turn = TURN.lock().await;
    let sink = Arc::new(MemorySink::new());
    let tracelink = setup(&sink);
    let app = Router::new()
        .route("/boom", get(boom))
        .layer(tracelink.layer());
    let url = serve(app).await;
    // hyper drops the connection of a panicked handler.
    let _ = reqwest::get(format!("{url}/boom")).await;
    let items = wait_for(&sink, 2);
    let req = request(&items);
    let TelemetryData::Request(r) = &req.data else {
        unreachable!()
    };
    assert!(!r.success);
    assert_eq!(r.response_code, "500");
    let exception = items
        .iter()
        .find(|i| i.kind() == TelemetryKind::Exception)
        .expect("an exception item");
    assert_eq!(exception.operation_parent_id(), req.id());
    assert_eq!(exception.operation_id(), req.operation_id());
    let TelemetryData::Exception(x) = &exception.data else {
        unreachable!()
    };
    assert_eq!(x.exceptions[0].type_name, tracelink::PANIC_TYPE);
    assert_eq!(x.exceptions[0].message, "inventory is on fire");
    assert!(exception.properties["location"].contains("global.rs"));
    assert_eq!(exception.tags.get("ai.cloud.role"), Some("global-test"));
    tracelink.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authenticated_user_set_in_a_handler_reaches_every_later_item() {
    let _turn = TURN.lock().await;
    let sink = Arc::new(MemorySink::new());
    let tracelink = setup(&sink);
    let app = Router::new()
        .route(
            "/login",
            get(|| async {
                tracelink::track_trace("before login", tracelink::Severity::Information);
                assert!(tracelink::set_authenticated_user(
                    "alice@contoso.com",
                    Some("contoso")
                ));
                tracelink::track_event(tracelink::Event::new("signed in"));
                "ok"
            }),
        )
        .layer(tracelink.layer());
    let url = serve(app).await;
    let res = reqwest::Client::new()
        .get(format!("{url}/login"))
        .header(
            "cookie",
            "ai_user=u1|2026-11-01T00:00:00.000Z; ai_session=s1|1|1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.text().await;
    let items = wait_for(&sink, 3);
    assert_eq!(items.len(), 3);
    for i in &items {
        assert_eq!(i.tags.get("ai.user.id"), Some("u1"), "{:?}", i.kind());
        assert_eq!(i.tags.get("ai.session.id"), Some("s1"), "{:?}", i.kind());
    }
    let auth = |i: &Telemetry| i.tags.get("ai.user.authUserId").map(str::to_owned);
    let trace = items
        .iter()
        .find(|i| i.kind() == TelemetryKind::Trace)
        .unwrap();
    let event = items
        .iter()
        .find(|i| i.kind() == TelemetryKind::Event)
        .unwrap();
    assert_eq!(auth(trace), None, "recorded before the login");
    assert_eq!(auth(event).as_deref(), Some("alice@contoso.com"));
    assert_eq!(auth(request(&items)).as_deref(), Some("alice@contoso.com"));
    assert_eq!(
        request(&items).tags.get("ai.user.accountId"),
        Some("contoso")
    );
    tracelink.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_functions_record_nothing_without_a_running_setup() {
    let _turn = TURN.lock().await;
    let sink = Arc::new(MemorySink::new());
    let tracelink = setup(&sink);
    tracelink::track_event(tracelink::Event::new("while running"));
    tracelink.shutdown().await;
    tracelink::track_event(tracelink::Event::new("after shutdown"));
    assert!(tracelink::current_client().is_none());
    let items = sink.take();
    assert_eq!(items.len(), 1);
    let TelemetryData::Event(e) = &items[0].data else {
        unreachable!()
    };
    assert_eq!(e.name, "while running");
}
