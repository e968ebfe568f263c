//! The demo (README command 1) in `--once` mode: its table shows one operation with 3
//! requests and 2 dependencies, linked web → orders (hierarchical ids) → inventory.

use tracelink_collector::query::build_tree;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_one_correctly_linked_transaction() {
    let (demo, report) = tracelink_demo::run().await.unwrap();
    let kinds: Vec<&str> = report.items.iter().map(|i| i.item_type.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "request").count(),
        3,
        "{}",
        report.table
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "dependency").count(),
        2,
        "{}",
        report.table
    );
    let tree = build_tree(&report.operation_id, report.items.clone());
    assert!(tree.orphans.is_empty(), "{}", report.table);
    assert_eq!(tree.roots.len(), 1);
    // web request → dependency → orders request → dependency → inventory request
    let mut chain = Vec::new();
    let mut node = &tree.roots[0];
    loop {
        chain.push((
            node.item.item_type.clone(),
            node.item.cloud_role.clone().unwrap_or_default(),
        ));
        match node.children.as_slice() {
            [only] => node = only,
            [] => break,
            more => panic!("{} children: {}", more.len(), report.table),
        }
    }
    let expected = [
        ("request", "web"),
        ("dependency", "web"),
        ("request", "orders"),
        ("dependency", "orders"),
        ("request", "inventory"),
    ];
    assert_eq!(chain, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    // The middle service uses hierarchical Request-Ids (SPEC 3.6).
    let orders_request = &report
        .items
        .iter()
        .find(|i| i.cloud_role.as_deref() == Some("orders") && i.item_type == "request")
        .unwrap();
    assert!(
        orders_request
            .id
            .as_deref()
            .unwrap()
            .starts_with(&format!("|{}.", report.operation_id))
    );
    // The printed table has the docs' columns and one row per item.
    let lines: Vec<&str> = report.table.lines().collect();
    assert!(lines[0].starts_with("timestamp") && lines[0].trim_end().ends_with("operation_Id"));
    assert_eq!(lines.len(), 2 + 5);
    assert!(report.summary.contains("inventory") && report.summary.contains("web"));
    assert!(report.to_string().contains(&report.collector_url));
    demo.collector.shutdown().await;
}
