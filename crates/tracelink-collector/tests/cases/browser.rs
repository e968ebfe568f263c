//! What the JavaScript SDK sends from a browser (tests/data/captures/README.md).

use super::*;

const BROWSER: &str =
    include_str!("../../../../tests/data/captures/browser-applicationinsights-web-3.4.4.ndjson");

/// The captured envelopes as the SDK posted them: one JSON array, `application/json`, with a
/// backend's Request under the page's fetch (as a Node service answering it reports it).
fn page_and_backend() -> (String, String, String) {
    let lines: Vec<serde_json::Value> = BROWSER
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let op = lines[0]["tags"]["ai.operation.id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fetch = lines
        .iter()
        .find(|v| v["data"]["baseType"] == "RemoteDependencyData")
        .unwrap();
    let fetch_id = fetch["data"]["baseData"]["id"].as_str().unwrap().to_owned();
    let mut backend: serde_json::Value =
        serde_json::from_str(CAPTURES[0].lines().nth(1).unwrap()).unwrap();
    backend["tags"]["ai.operation.id"] = op.clone().into();
    backend["tags"]["ai.operation.parentId"] = fetch_id.clone().into();
    backend["data"]["baseData"]["id"] = "b2b2b2b2b2b2b2b2".into();
    let mut all: Vec<String> = lines.iter().map(|v| v.to_string()).collect();
    all.push(backend.to_string());
    (format!("[{}]", all.join(",")), op, fetch_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_page_views_are_named_and_root_their_operation() {
    let c = start("browser").await;
    let (body, op, fetch_id) = page_and_backend();
    let (status, b) = post(
        &c,
        "/v2/track",
        body.into_bytes(),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["itemsAccepted"], 8);
    let tree = c.store().operation(&op).await.unwrap().unwrap();
    let types: Vec<(&str, Option<&str>)> = tree
        .items
        .iter()
        .map(|i| (i.item_type.as_str(), i.name.as_deref()))
        .collect();
    assert!(types.contains(&("pageView", Some("Orders"))), "{types:?}");
    assert!(
        types.contains(&("browserTiming", Some("Orders"))),
        "{types:?}"
    );
    let page = tree
        .items
        .iter()
        .find(|i| i.item_type == "pageView")
        .unwrap();
    assert_eq!(page.id.as_deref(), Some(op.as_str()));
    assert_eq!(
        page.url
            .as_deref()
            .map(|u| u.starts_with("http://127.0.0.1:")),
        Some(true)
    );
    assert!(page.duration_ms.unwrap() > 0.0);
    let timing = tree
        .items
        .iter()
        .find(|i| i.item_type == "browserTiming")
        .unwrap();
    assert!(timing.duration_ms.unwrap() > 0.0);
    // The backend's request hangs under the page's fetch (`|T.S.` and `S`, SPEC 10.2).
    let fetch = tree
        .roots
        .iter()
        .find(|n| n.item.id.as_deref() == Some(fetch_id.as_str()))
        .unwrap();
    assert_eq!(
        fetch.children[0].item.id.as_deref(),
        Some("b2b2b2b2b2b2b2b2")
    );
    assert!(tree.orphans.is_empty());
    // The page view, not the backend's request, names the operation.
    let ops = operations(&c).await;
    assert_eq!(ops[0].root_name.as_deref(), Some("Orders"));
    // And the transaction page shows the page view by name, with its load timings.
    let page_html = reqwest::get(format!("{}/operations/{op}", c.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page_html.contains("pageView Orders"), "{page_html}");
    assert!(page_html.contains("DOM processing"));
}
