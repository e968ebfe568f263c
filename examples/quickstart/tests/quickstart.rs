//! The quickstart service as a user runs it: its binary, configured from the environment
//! alone, reporting to a real collector on 127.0.0.1. Checks what a team relies on: the
//! appId answered in `Request-Context`, role and instance from the environment, the user
//! and session of the browser on every item of its requests, the consumer's request under
//! the enqueue, an error chain as one exception, envelopes that pass the Breeze schema.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracelink_collector::query::{Item, ItemFilter};
use tracelink_collector::{Collector, Config};
use tracelink_tests::breeze::Schema;

const APP_ID: &str = "quickstart-app-id";
const COOKIES: &str =
    "ai_user=u-42|2026-11-01T00:00:00.000Z; ai_session=s-7|1764460800000|1764460800000";

struct Service {
    child: Child,
    url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_service(collector: &Collector) -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracelink-quickstart"))
        .env(
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            format!("{};ApplicationId={APP_ID}", collector.connection_string()),
        )
        .env("OTEL_SERVICE_NAME", "quickstart")
        .env("WEBSITE_INSTANCE_ID", "quickstart-1")
        .env("PORT", "0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the quickstart binary runs");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the quickstart prints its address")
            .unwrap();
        if let Some(url) = line.strip_prefix("quickstart listening on ") {
            break url.trim().to_owned();
        }
    };
    // Keep draining its output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Service { child, url }
}

/// Sends SIGINT, as Ctrl-C would: the service shuts down gracefully and flushes.
fn interrupt(service: &mut Service) {
    let status = Command::new("kill")
        .args(["-INT", &service.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = service.child.try_wait() {
            assert!(status.success(), "quickstart exited with {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the quickstart did not stop on SIGINT");
}

async fn all_items(collector: &Collector) -> Vec<Item> {
    let mut filter = ItemFilter::default();
    filter.limit = Some(10_000);
    collector.store().items(&filter).await.unwrap()
}

fn tag(item: &Item, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(&item.raw).ok()?;
    v["tags"][key].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_reports_one_correlated_picture_to_the_collector() {
    let dir = std::env::temp_dir().join(format!("tracelink-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let collector =
        Collector::start(Config::new(dir.join("items.db")).listen("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
    let mut service = start_service(&collector);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // A browser with the JavaScript SDK's cookies.
    let res = http
        .get(format!("{}/orders/7", service.url))
        .header("cookie", COOKIES)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The own appId, from the connection string's ApplicationId (SPEC 5.4).
    assert_eq!(
        res.headers()["request-context"],
        format!("appId=cid-v1:{APP_ID}").as_str()
    );
    let ok = http
        .post(format!("{}/checkout", service.url))
        .header("cookie", COOKIES)
        .json(&serde_json::json!({"order": "A-1", "amount": 12.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let refused = http
        .post(format!("{}/checkout", service.url))
        .header("cookie", COOKIES)
        .json(&serde_json::json!({"order": "A-2", "amount": -3}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let queued = http
        .post(format!("{}/enqueue", service.url))
        .header("cookie", COOKIES)
        .json(&serde_json::json!({"order": "A-3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 202);
    // Let the consumer take the message, then stop as Ctrl-C would: the exit flushes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    interrupt(&mut service);

    let deadline = Instant::now() + Duration::from_secs(20);
    let items = loop {
        let items = all_items(&collector).await;
        let processed = items
            .iter()
            .any(|i| i.name.as_deref() == Some("process order"));
        if processed || Instant::now() > deadline {
            break items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let summary: Vec<String> = items
        .iter()
        .map(|i| format!("{} {:?} {:?}", i.item_type, i.name, i.user_id))
        .collect();

    // Role and instance from the environment, on every item.
    for i in &items {
        assert_eq!(i.cloud_role.as_deref(), Some("quickstart"), "{summary:?}");
        assert_eq!(
            i.role_instance.as_deref(),
            Some("quickstart-1"),
            "{summary:?}"
        );
        assert!(
            tag(i, "ai.internal.sdkVersion").is_some_and(|v| v.starts_with("rs:tracelink:")),
            "{summary:?}"
        );
    }

    // Every item of the browser's requests carries its user and session: requests,
    // dependencies, logs, spans, events, exceptions.
    let browser_ops: Vec<&str> = items
        .iter()
        .filter(|i| i.item_type == "request" && i.user_id.is_some())
        .filter_map(|i| i.operation_id.as_deref())
        .collect();
    assert!(browser_ops.len() >= 4, "{summary:?}");
    let in_browser_ops: Vec<&Item> = items
        .iter()
        .filter(|i| {
            i.operation_id
                .as_deref()
                .is_some_and(|o| browser_ops.contains(&o))
        })
        .collect();
    for kind in ["request", "dependency", "trace", "customEvent", "exception"] {
        assert!(
            in_browser_ops.iter().any(|i| i.item_type == kind),
            "no {kind} in the browser's operations: {summary:?}"
        );
    }
    // The inventory request is the callee's: the user's cookies do not cross that call, as
    // with any Application Insights SDK.
    let callee =
        |i: &Item| i.item_type == "request" && i.name.as_deref() == Some("GET /inventory/{id}");
    for i in in_browser_ops.iter().filter(|i| !callee(i)) {
        assert_eq!(
            i.user_id.as_deref(),
            Some("u-42"),
            "{} {:?}",
            i.item_type,
            i.name
        );
        assert_eq!(
            i.session_id.as_deref(),
            Some("s-7"),
            "{} {:?}",
            i.item_type,
            i.name
        );
    }

    // The event with its property and measurement.
    let event = items.iter().find(|i| i.item_type == "customEvent").unwrap();
    let raw: serde_json::Value = serde_json::from_str(&event.raw).unwrap();
    assert_eq!(raw["data"]["baseData"]["name"], "checkout");
    assert_eq!(raw["data"]["baseData"]["properties"]["order"], "A-1");
    assert_eq!(raw["data"]["baseData"]["measurements"]["amount"], 12.5);

    // The refused checkout: an exception whose source chain is a second entry.
    let exception = items.iter().find(|i| i.item_type == "exception").unwrap();
    let raw: serde_json::Value = serde_json::from_str(&exception.raw).unwrap();
    let entries = raw["data"]["baseData"]["exceptions"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{raw}");
    assert!(
        entries[0]["typeName"]
            .as_str()
            .unwrap()
            .ends_with("CheckoutError")
    );
    assert_eq!(entries[1]["message"], "amount -3 is negative");
    assert_eq!(entries[1]["outerId"], 0);

    // The consumer's request is the enqueue dependency's child, in the same operation.
    let enqueue = items
        .iter()
        .find(|i| i.name.as_deref() == Some("enqueue orders"))
        .expect("the enqueue dependency");
    let process = items
        .iter()
        .find(|i| i.name.as_deref() == Some("process order"))
        .expect("the consumer's request");
    assert_eq!(process.item_type, "request");
    assert_eq!(process.operation_id, enqueue.operation_id);
    assert_eq!(process.parent_id, enqueue.id);
    assert_eq!(enqueue.target.as_deref(), Some("orders"));
    let consumer_log = items
        .iter()
        .find(|i| i.item_type == "trace" && i.name.as_deref() == Some("processing order"))
        .expect("the consumer's log");
    assert_eq!(consumer_log.parent_id, process.id);

    // The downstream call: the inventory request is the dependency's child.
    let call = items
        .iter()
        .find(|i| {
            i.item_type == "dependency"
                && i.name.as_deref().is_some_and(|n| n.contains("/inventory/"))
        })
        .expect("the inventory call");
    let inventory = items
        .iter()
        .find(|i| {
            i.item_type == "request" && i.name.as_deref().is_some_and(|n| n.contains("/inventory/"))
        })
        .expect("the inventory request");
    assert_eq!(inventory.parent_id, call.id);
    assert_eq!(inventory.operation_id, call.operation_id);

    // hyper's and reqwest's internals never became items.
    assert!(
        !items
            .iter()
            .any(|i| i.item_type == "trace" && i.result_code.as_deref() == Some("Verbose")),
        "{summary:?}"
    );

    // Every envelope passes the Breeze schema.
    let schema = Schema::breeze();
    for i in &items {
        let v: serde_json::Value = serde_json::from_str(&i.raw).unwrap();
        let errors = schema.validate_envelope(&v);
        assert!(errors.is_empty(), "{}: {errors:?}", i.raw);
    }
    collector.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
