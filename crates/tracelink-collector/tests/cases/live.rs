//! Live Metrics (QuickPulse), the service side: the Node SDK's captured pings and posts, a
//! real tracelink-live client, the subscription a viewer of `/api/live` makes, bad and hostile
//! bodies, and access beyond loopback.

use std::time::Instant;

use tracelink_core::model::{Exception, Request, Telemetry};
use tracelink_live::protocol::header;

use super::*;

const CAPTURE: &str = include_str!(
    "../../../../tests/data/captures/live-metrics/node-applicationinsights-2.9.8-live.ndjson"
);
const NODE_IKEY: &str = "11111111-2222-3333-4444-555555555555";

/// A captured request: path (with the query), headers, body.
type Captured = (String, Vec<(String, String)>, String);

/// The requests the Node SDK sent, in order.
fn captured() -> Vec<Captured> {
    CAPTURE
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "request")
        .map(|v| {
            let headers = v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_owned(),
                        h[1].as_str().unwrap().to_owned(),
                    )
                })
                // What the connection itself decides.
                .filter(|(k, _)| {
                    !["host", "content-length", "connection", "expect"]
                        .contains(&k.to_ascii_lowercase().as_str())
                })
                .collect();
            (
                v["path"].as_str().unwrap().to_owned(),
                headers,
                v["body_text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Sends one ping or post; its status and `x-ms-qps-subscribed`, `…-polling-interval-hint`.
async fn send(
    base: &str,
    path: &str,
    headers: &[(String, String)],
    body: impl Into<reqwest::Body>,
) -> (u16, Option<String>, Option<String>) {
    let mut r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .body(body);
    for (k, v) in headers {
        r = r.header(k, v);
    }
    let r = r.send().await.unwrap();
    let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    (
        r.status().as_u16(),
        h(header::SUBSCRIBED),
        h(header::POLLING_INTERVAL_HINT),
    )
}

async fn api(base: &str, view: bool) -> serde_json::Value {
    let q = if view { "" } else { "?view=false" };
    let text = reqwest::get(format!("{base}/api/live{q}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn instance<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    v["instances"]
        .as_array()?
        .iter()
        .find(|i| i["instance"] == name)
}

fn ping_of(instance: &str) -> String {
    format!(
        r#"{{"Documents":null,"InstrumentationKey":"{NODE_IKEY}","Metrics":null,"InvariantVersion":1,"Timestamp":"/Date(1795999126076)/","Version":"ulm_node:2.9.8","StreamId":"7ca421d2c03940f799dcddce34b37d8b","MachineName":"vm","Instance":{},"RoleName":"r"}}"#,
        serde_json::to_string(instance).unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_node_sdk_shows_up_and_a_viewer_subscribes_while_it_polls() {
    let c = start("live-replay").await;
    let base = c.url();
    let requests = captured();
    assert_eq!(requests.len(), 55, "13 pings and 42 posts");
    // Nobody watches: every answer says so, with the polling hint.
    for (path, headers, body) in &requests {
        let (status, subscribed, hint) = send(&base, path, headers, body.clone()).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(subscribed.as_deref(), Some("false"));
        assert_eq!(hint.as_deref(), Some("1000"));
    }
    // Reading without viewing lists the instance and subscribes nobody.
    let v = api(&base, false).await;
    assert_eq!(v["subscribed"], false);
    let i = instance(&v, "livecap-instance-1").expect("the Node instance is listed");
    assert_eq!(i["role"], "livecap-node-app");
    assert_eq!(i["machine"], "vm");
    assert_eq!(i["ikey"], NODE_IKEY);
    assert_eq!(i["version"], "ulm_node:2.9.8");
    assert_eq!(
        (i["pings"].as_u64(), i["posts"].as_u64()),
        (Some(13), Some(42))
    );
    let samples = i["samples"].as_array().unwrap();
    assert!(
        samples.len() >= 42,
        "a sample per post (and per ping with metrics)"
    );
    assert!(samples.iter().any(|s| s["requests"].as_f64() > Some(0.0)));
    for key in v["metrics"].as_array().unwrap() {
        assert!(
            samples
                .iter()
                .any(|s| s.get(key.as_str().unwrap()).is_some()),
            "{key}"
        );
    }
    // The feed holds failed requests, exceptions and traces, never successful requests.
    let docs = v["documents"].as_array().unwrap();
    assert!(!docs.is_empty());
    for d in docs {
        assert!(
            ["request", "dependency", "exception", "trace"].contains(&d["type"].as_str().unwrap())
        );
        if d["type"] == "request" {
            assert_eq!(d["success"], false);
        }
        assert_eq!(d["instance"], "livecap-instance-1");
    }
    for kind in ["request", "exception", "trace"] {
        assert!(docs.iter().any(|d| d["type"] == kind), "{kind} documents");
    }

    // A viewer polls: pings and posts are answered subscribed ...
    let (ping_path, ping_headers, ping_body) = &requests[0];
    assert!(api(&base, true).await["subscribed"] == true);
    let (_, subscribed, _) = send(&base, ping_path, ping_headers, ping_body.clone()).await;
    assert_eq!(subscribed.as_deref(), Some("true"));
    let post = requests
        .iter()
        .find(|(p, _, _)| p.starts_with("/QuickPulseService.svc/post"))
        .unwrap();
    let (_, subscribed, _) = send(&base, &post.0, &post.1, post.2.clone()).await;
    assert_eq!(subscribed.as_deref(), Some("true"));
    // ... and once it stops, no longer.
    let stopped = Instant::now();
    loop {
        let (_, subscribed, _) = send(&base, ping_path, ping_headers, ping_body.clone()).await;
        if subscribed.as_deref() == Some("false") {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "still subscribed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(stopped.elapsed() >= Duration::from_secs(2));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracelink_live_client_posts_while_a_viewer_watches() {
    let c = start("live-client").await;
    let base = c.url();
    let cs = tracelink_core::ConnectionString::parse(&c.connection_string()).unwrap();
    assert_eq!(cs.live_endpoint(), base);
    let live = tracelink_live::LiveMetrics::builder(&cs)
        .role("checkout")
        .role_instance("pod-1")
        .machine_name("vm-1")
        .build()
        .unwrap();
    // The viewer opens the page first: the client's first ping is answered subscribed.
    assert_eq!(api(&base, true).await["subscribed"], true);
    live.start().unwrap();
    let sink = Arc::new(live.sink(tracelink_core::MemorySink::new()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        for n in 0u32..20 {
            let code = if n.is_multiple_of(5) { "500" } else { "200" };
            sink.send(Telemetry::new(Request::new(
                "GET /pay",
                code,
                Duration::from_millis(4),
            )));
        }
        sink.send(Telemetry::new(Exception::new(
            "PaymentError",
            "card declined",
        )));
        let v = api(&base, true).await;
        if let Some(i) = instance(&v, "pod-1")
            && i["samples"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["requests"].as_f64() > Some(0.0))
            && v["documents"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["type"] == "exception")
        {
            break v;
        }
        assert!(Instant::now() < deadline, "no post with requests: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let i = instance(&found, "pod-1").unwrap();
    assert_eq!(
        (i["role"].as_str(), i["machine"].as_str()),
        (Some("checkout"), Some("vm-1"))
    );
    assert_eq!(i["ikey"], tracelink_collector::LOCAL_IKEY);
    assert!(live.status().subscribed && live.status().posts > 0);
    let failed = found["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "request")
        .expect("a failed request in the feed");
    assert_eq!(
        (failed["name"].as_str(), failed["result"].as_str()),
        (Some("GET /pay"), Some("500"))
    );
    live.stop();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_hostile_bodies_are_refused_or_kept_as_text() {
    let c = start("live-bad").await;
    let base = c.url();
    let ping = "/QuickPulseService.svc/ping?ikey=k";
    for body in [
        "",
        "not json",
        "{\"Metrics\":7}",
        "[]",
        "[1,2]",
        "{\"Documents\":[{\"__type\":\"RequestTelemetryDocument\",\"Success\":\"maybe\"}]}",
        "{\"Timestamp\":{}}",
    ] {
        let (status, _, _) = send(&base, ping, &[], body).await;
        assert_eq!(status, 400, "{body}");
    }
    let huge = format!("{{\"Instance\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (status, _, _) = send(&base, ping, &[], huge).await;
    assert_eq!(status, 413);
    // Odd but readable: a bad timestamp, an unknown document type, huge and hostile names.
    let hostile = "<img src=x onerror=alert(1)>\"'&";
    let body = format!(
        r#"[{{"Instance":{h},"RoleName":{h},"MachineName":"{long}","Timestamp":"yesterday",
            "Metrics":[{{"Name":{h},"Value":1,"Weight":1}},{{"Name":"\\ApplicationInsights\\Requests/Sec","Value":1e300,"Weight":1}}],
            "Documents":[{{"__type":"Mystery"}},{{"__type":"TraceTelemetryDocument","Message":{h},"SeverityLevel":"Error"}}]}}]"#,
        h = serde_json::to_string(hostile).unwrap(),
        long = "m".repeat(5000),
    );
    let (status, _, _) = send(&base, "/QuickPulseService.svc/post?ikey=k", &[], body).await;
    assert_eq!(status, 200);
    let v = api(&base, false).await;
    let i = instance(&v, hostile).unwrap();
    assert_eq!(i["role"], hostile);
    assert_eq!(i["machine"].as_str().unwrap().len(), 1024);
    assert_eq!(i["samples"][0]["requests"].as_f64(), Some(1e300));
    assert_eq!(v["documents"][0]["detail"], hostile);
    assert_eq!(v["documents"].as_array().unwrap().len(), 1);
    // The page carries no telemetry itself, and its script never writes markup.
    let page = reqwest::get(format!("{base}/live"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("onerror=alert") && !page.contains("innerHTML"));
    assert!(page.contains("/api/live") && page.contains("textContent"));
    assert!(page.contains("href=\"/live\""), "the nav links the page");
    // The instance from a ping's headers when the body leaves it out.
    let headers = [(header::INSTANCE_NAME.to_owned(), "from-header".to_owned())];
    let (status, _, _) = send(&base, ping, &headers, "{}").await;
    assert_eq!(status, 200);
    assert!(instance(&api(&base, false).await, "from-header").is_some());
    assert_eq!(c.stats().bodies_rejected, 7);
    assert_eq!(c.stats().bodies_too_large, 1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_live_metrics_need_an_accepted_instrumentation_key() {
    let c = Collector::start(
        Config::new(db("live-access"))
            .listen("0.0.0.0:0".parse().unwrap())
            .instrumentation_key(NODE_IKEY),
    )
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{}", c.addr().port());
    assert!(c.connection_string().ends_with(&format!(
        ";LiveEndpoint=http://0.0.0.0:{}/",
        c.addr().port()
    )));
    let ping = ping_of("pod-1");
    let other = "/QuickPulseService.svc/ping?ikey=99999999-2222-3333-4444-555555555555";
    assert_eq!(send(&base, other, &[], ping.clone()).await.0, 403);
    // Without a query key, the body's must be accepted.
    let (status, subscribed, _) = send(&base, "/QuickPulseService.svc/ping", &[], ping).await;
    assert_eq!((status, subscribed.as_deref()), (200, Some("false")));
    let upper = format!(
        "/QuickPulseService.svc/post?ikey={}",
        NODE_IKEY.to_ascii_uppercase()
    );
    assert_eq!(send(&base, &upper, &[], "[{}]").await.0, 200);
    // The data needs the login token.
    let r = reqwest::get(format!("{base}/api/live")).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = reqwest::Client::new()
        .get(format!("{base}/api/live"))
        .bearer_auth(c.login_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(instance(&v, "pod-1").is_some());
    assert_eq!(v["subscribed"], true);
    c.shutdown().await;
}
