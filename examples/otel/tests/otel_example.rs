//! The OpenTelemetry example as a user runs it: its binary, reporting to a real collector on
//! 127.0.0.1, one request to itself. Its spans, logs, calls and requests are one tree in the
//! collector, each reported once.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracelink_collector::query::{Item, ItemFilter};
use tracelink_collector::{Collector, Config};

async fn all_items(collector: &Collector) -> Vec<Item> {
    let mut filter = ItemFilter::default();
    filter.limit = Some(10_000);
    collector.store().items(&filter).await.unwrap()
}

fn named<'a>(items: &'a [Item], kind: &str, name: &str) -> Vec<&'a Item> {
    items
        .iter()
        .filter(|i| i.item_type == kind && i.name.as_deref() == Some(name))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_reports_one_tree_to_the_collector() {
    let dir = std::env::temp_dir().join(format!("tracelink-otel-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let collector =
        Collector::start(Config::new(dir.join("items.db")).listen("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_tracelink-otel-example"))
        .arg("--once")
        .env(
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            collector.connection_string(),
        )
        .env("OTEL_SERVICE_NAME", "orders")
        .env("PORT", "0")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the example runs");
    assert!(status.success(), "{status}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let items = loop {
        let items = all_items(&collector).await;
        if items.iter().filter(|i| i.item_type == "request").count() >= 2
            || Instant::now() > deadline
        {
            break items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The transaction's items (the setup also sends metrics, which belong to no operation).
    let items: Vec<Item> = items
        .into_iter()
        .filter(|i| i.item_type != "customMetric")
        .collect();
    let summary: Vec<String> = items
        .iter()
        .map(|i| {
            format!(
                "{} {:?} id={:?} parent={:?}",
                i.item_type, i.name, i.id, i.parent_id
            )
        })
        .collect();

    // One Request per request: OtelAxumLayer's span is adopted, not reported again.
    let orders = named(&items, "request", "GET /orders/{id}");
    let inventory = named(&items, "request", "GET /inventory/{id}");
    assert_eq!((orders.len(), inventory.len()), (1, 1), "{summary:#?}");
    assert_eq!(
        items.iter().filter(|i| i.item_type == "request").count(),
        2,
        "{summary:#?}"
    );
    let orders = orders[0];
    assert!(
        items.iter().all(|i| i.operation_id == orders.operation_id),
        "one operation: {summary:#?}"
    );
    for i in &items {
        assert_eq!(i.cloud_role.as_deref(), Some("orders"), "{summary:#?}");
    }
    assert_eq!(items.len(), 9, "nothing twice: {summary:#?}");

    // Each log once, where it was made.
    for message in ["order requested", "checking stock", "pricing"] {
        assert_eq!(
            named(&items, "trace", message).len(),
            1,
            "{message}: {summary:#?}"
        );
    }
    let query = named(&items, "dependency", "SELECT orders");
    assert_eq!(query.len(), 1, "{summary:#?}");
    assert_eq!(query[0].parent_id, orders.id, "{summary:#?}");
    assert_eq!(query[0].operation_name.as_deref(), Some("GET /orders/{id}"));

    // The call inside the span made current with the OpenTelemetry API is its child, and the
    // inventory request is the call's.
    let grpc = named(&items, "dependency", "inventory.Check");
    assert_eq!(grpc.len(), 1, "{summary:#?}");
    assert_eq!(grpc[0].parent_id, orders.id);
    let call = named(&items, "dependency", "GET /inventory/7");
    assert_eq!(call.len(), 1, "{summary:#?}");
    assert_eq!(call[0].parent_id, grpc[0].id, "{summary:#?}");
    assert_eq!(inventory[0].parent_id, call[0].id, "{summary:#?}");
    assert_eq!(
        named(&items, "trace", "checking stock")[0].parent_id,
        grpc[0].id
    );
    let price = named(&items, "dependency", "price");
    assert_eq!(price.len(), 1, "{summary:#?}");
    assert_eq!(named(&items, "trace", "pricing")[0].parent_id, price[0].id);

    collector.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
