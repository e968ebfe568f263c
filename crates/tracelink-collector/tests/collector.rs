//! The collector over real HTTP on 127.0.0.1 (SPEC 7, 10).
#![allow(missing_docs)]

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tracelink_collector::query;
use tracelink_collector::{Collector, Config, Retention};
use tracelink_core::model::{Dependency, Request, SeverityLevel, Trace};
use tracelink_core::{Correlation, Propagation, SamplingDecision, TelemetrySink};

const CAPTURES: [&str; 3] = [
    include_str!("../../../tests/data/captures/node-applicationinsights-2.9.8-w3c.ndjson"),
    include_str!(
        "../../../tests/data/captures/node-applicationinsights-2.9.8-requestid-legacy.ndjson"
    ),
    include_str!("../../../tests/data/captures/python-azure-monitor-exporter-1.0.0b58.ndjson"),
];

fn db(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "tracelink-collector-{name}-{}.db",
        std::process::id()
    ));
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", p.display()));
    }
    p
}

async fn start(name: &str) -> Collector {
    Collector::start(
        Config::new(db(name))
            .listen("127.0.0.1:0".parse().unwrap())
            .max_body(1024 * 1024),
    )
    .await
    .unwrap()
}

async fn post(
    c: &Collector,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut b = reqwest::Client::new()
        .post(format!("{}{path}", c.url()))
        .body(body);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = b.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// POSTs 100 MiB of spaces over a raw connection, announced by `content-length` or sent
/// chunked, and returns the response's status code. The body is streamed while the answer
/// is read: a server may answer 413 (and close) before the body is complete, and a client
/// that reads only after writing everything (reqwest) sees a broken pipe instead.
async fn post_oversized(c: &Collector, chunked: bool) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const TOTAL: usize = 100 * 1024 * 1024;
    let (mut rd, mut wr) = tokio::net::TcpStream::connect(c.addr())
        .await
        .unwrap()
        .into_split();
    let framing = if chunked {
        "transfer-encoding: chunked".to_owned()
    } else {
        format!("content-length: {TOTAL}")
    };
    let head = format!(
        "POST /v2.1/track HTTP/1.1\r\nhost: {}\r\n{framing}\r\n\r\n",
        c.addr()
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..TOTAL / chunk.len() {
            let sent = if chunked {
                let size = format!("{:x}\r\n", chunk.len());
                async {
                    wr.write_all(size.as_bytes()).await?;
                    wr.write_all(&chunk).await?;
                    wr.write_all(b"\r\n").await
                }
                .await
            } else {
                wr.write_all(&chunk).await
            };
            if sent.is_err() {
                return; // The server stopped reading: expected once it has answered.
            }
        }
        if chunked {
            let _ = wr.write_all(b"0\r\n\r\n").await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    writer.abort();
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to an oversized body: {text:?}"))
}

/// POSTs `plain` gzipped to `/v2.1/track`, as the SDKs send it.
async fn post_gzip(c: &Collector, plain: &[u8]) -> (u16, serde_json::Value) {
    post(
        c,
        "/v2.1/track",
        gzip(plain),
        &[("content-encoding", "gzip")],
    )
    .await
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// How many items the collector stored (these tests store fewer than the 10,000 a page holds).
async fn count(c: &Collector) -> i64 {
    let mut all = query::ItemFilter::default();
    all.limit = Some(10_000);
    let n = c.store().items(&all).await.unwrap().len();
    assert!(n < 10_000, "more items than a page holds");
    n as i64
}

/// A connection of its own to the database at `path`: another program writing to it.
fn sql(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingests_every_capture_in_every_encoding() {
    let c = start("captures").await;
    let mut expected = 0;
    for (i, text) in CAPTURES.iter().enumerate() {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        expected += lines.len() as i64;
        let (status, body) = match i {
            0 => {
                post(
                    &c,
                    "/v2.1/track",
                    text.as_bytes().to_vec(),
                    &[("content-type", "application/x-json-stream")],
                )
                .await
            }
            1 => {
                post(
                    &c,
                    "/v2/track",
                    gzip(text.as_bytes()),
                    &[("content-encoding", "gzip")],
                )
                .await
            }
            _ => {
                post(
                    &c,
                    "/v2.1/track",
                    format!("[{}]", lines.join(",")).into_bytes(),
                    &[("content-type", "application/json")],
                )
                .await
            }
        };
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["itemsAccepted"], lines.len());
        assert_eq!(body["itemsReceived"], lines.len());
    }
    assert_eq!(count(&c).await, expected);
    // Every envelope is kept exactly as received (in the stored body, whatever its encoding).
    let mut all = query::ItemFilter::default();
    all.limit = Some(1000);
    let lines: Vec<&str> = CAPTURES.iter().flat_map(|c| c.lines()).collect();
    for item in c.store().items(&all).await.unwrap() {
        assert!(lines.contains(&item.raw.as_str()), "{:?}", item.raw);
    }
    // SPEC 10.2: the Node dependency `|T.S.` is the parent of nothing here, but its id
    // is stored normalized; the Node request is its parent.
    let tree = c
        .store()
        .operation("0af7651916cd43dd8448eb211c80319c")
        .await
        .unwrap()
        .unwrap();
    let node_request = tree
        .orphans
        .iter()
        .find(|n| {
            n.item.id.as_deref() == Some("|0af7651916cd43dd8448eb211c80319c.3bd03ed0f2614b11.")
        })
        .unwrap();
    assert_eq!(node_request.children.len(), 1);
    assert_eq!(
        node_request.children[0].item.id_norm.as_deref(),
        Some("533cff2d8cc34f77")
    );
    // SPEC 10.1: the legacy capture's items are found under their ai_legacyRootId too.
    let legacy = c.store().operation_items("legacy-root-42").await.unwrap();
    assert!(!legacy.is_empty());
}

/// Our exporter → collector → query: the tree is what was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_round_trip_builds_the_tree() {
    let c = start("roundtrip").await;
    let exporter = tracelink_export::Exporter::builder(&c.connection_string())
        .no_spool()
        .cloud_role("svc")
        .build()
        .unwrap();
    let sink = exporter.sink();
    let request = Correlation::new_root_named(
        &Propagation::default(),
        SamplingDecision::KEEP_ALL,
        Some("GET /x"),
    );
    let call = request.new_child();
    sink.send(request.to_item(Request::new("GET /x", "200", Duration::from_millis(20))));
    let mut d = Dependency::new("GET /y", "Http");
    d.result_code = "200".into();
    sink.send(call.to_item(d));
    sink.send(call.child_item(Trace::new("inside the call", SeverityLevel::Information)));
    sink.send(request.child_item(Trace::new("inside the request", SeverityLevel::Warning)));
    exporter.flush().await.unwrap();
    let op = request.trace_id().to_string();
    let tree = c.store().operation(&op).await.unwrap().unwrap();
    assert!(tree.orphans.is_empty());
    assert_eq!(tree.roots.len(), 1);
    let root = &tree.roots[0];
    assert_eq!(
        root.item.id.as_deref(),
        Some(request.id().to_string().as_str())
    );
    assert_eq!(root.item.cloud_role.as_deref(), Some("svc"));
    let mut kids: Vec<(&str, usize)> = root
        .children
        .iter()
        .map(|n| (n.item.item_type.as_str(), n.children.len()))
        .collect();
    kids.sort();
    assert_eq!(kids, [("dependency", 1), ("trace", 0)]);
    // The operations list knows it.
    let ops = c.store().operations(&Default::default()).await.unwrap();
    assert_eq!(ops[0].root_name.as_deref(), Some("GET /x"));
    assert_eq!(ops[0].items, 4);
    assert!(!ops[0].failed);
    // And the CLI prints the docs' table for it.
    exporter.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_and_hostile_bodies_get_clear_answers_and_the_server_keeps_running() {
    let c = start("hostile").await;
    let good = CAPTURES[0].lines().next().unwrap();
    // 206: some items invalid.
    let body = format!(
        "{good}\n{{\"name\":\"x\",\"time\":\"2026-11-21T05:46:41Z\",\"data\":{{\"baseType\":\"RequestData\",\"baseData\":{{\"ver\":2}}}}}}\n"
    );
    let (status, b) = post(&c, "/v2.1/track", body.into_bytes(), &[]).await;
    assert_eq!(status, 206);
    assert_eq!(
        (b["itemsReceived"].as_u64(), b["itemsAccepted"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(b["errors"][0]["index"], 1);
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("baseData.id")
    );
    // Garbage, truncated gzip, deep nesting, an empty body: 400.
    let gz = gzip(CAPTURES[0].as_bytes());
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for (what, body, headers) in [
        ("garbage", b"\x00\x01garbage".to_vec(), vec![]),
        (
            "truncated gzip",
            gz[..gz.len() / 2].to_vec(),
            vec![("content-encoding", "gzip")],
        ),
        ("deep nesting", deep.into_bytes(), vec![]),
        ("empty", Vec::new(), vec![]),
        ("a JSON scalar", b"42".to_vec(), vec![]),
    ] {
        let (status, b) = post(&c, "/v2.1/track", body, &headers).await;
        assert_eq!(status, 400, "{what}: {b}");
    }
    // 100 MB body, announced or chunked: 413 (without reading it all), and a gzip bomb too.
    assert_eq!(post_oversized(&c, false).await, 413);
    assert_eq!(post_oversized(&c, true).await, 413);
    let bomb = gzip(&vec![b' '; 16 * 1024 * 1024]); // 4x the 4 MiB decoded limit
    let (status, _) = post(&c, "/v2.1/track", bomb, &[("content-encoding", "gzip")]).await;
    assert_eq!(status, 413);
    // Still serving, and nothing but the one valid item was stored.
    let (status, _) = post(&c, "/v2.1/track", good.as_bytes().to_vec(), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(count(&c).await, 2);
}

/// Concurrent posters: every accepted item is stored (none accepted then lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posters_lose_nothing() {
    let c = Arc::new(start("concurrent").await);
    let line = CAPTURES[0].lines().next().unwrap().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, line) = (c.clone(), line.clone());
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0;
            for _ in 0..25 {
                let body = format!("{line}\n").repeat(40);
                let (status, b) = post_gzip(&c, body.as_bytes()).await;
                assert_eq!(status, 200);
                accepted += b["itemsAccepted"].as_i64().unwrap();
            }
            accepted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 8 * 25 * 40);
    assert_eq!(count(&c).await, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_the_oldest() {
    let c = start("retention").await;
    let old = CAPTURES[0]
        .lines()
        .next()
        .unwrap()
        .replace("2026-11-21T05:46:41.622Z", "2020-01-01T00:00:00Z");
    let new = CAPTURES[0].lines().next().unwrap().replace(
        "2026-11-21T05:46:41.622Z",
        &tracelink_core::wire_time::format_time(std::time::SystemTime::now()),
    );
    let body = format!("{old}\n{}", format!("{new}\n").repeat(10));
    let (status, _) = post(&c, "/v2.1/track", body.into_bytes(), &[]).await;
    assert_eq!(status, 200);
    let deleted = c
        .store()
        .enforce_retention(Retention::default().items(4))
        .await
        .unwrap();
    assert_eq!(deleted, 1 + 6);
    assert_eq!(count(&c).await, 4);
    // The operation's summary row follows: four items left, starting now, not in 2020.
    let ops = operations(&c).await;
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].items, 4);
    assert!(ops[0].start_ms > 1_700_000_000_000, "{}", ops[0].start);
    // And an operation whose items are all gone leaves the list.
    c.store()
        .enforce_retention(Retention::default().items(0))
        .await
        .unwrap();
    assert!(operations(&c).await.is_empty());
}

async fn operations(c: &Collector) -> Vec<query::OperationSummary> {
    c.store()
        .operations(&query::OperationFilter::default())
        .await
        .unwrap()
}

/// A collector on the database at `path`, holding every capture.
async fn with_captures(path: &std::path::Path) -> Collector {
    let c = Collector::start(Config::new(path).listen("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    for capture in CAPTURES {
        let (status, b) = post(&c, "/v2.1/track", capture.as_bytes().to_vec(), &[]).await;
        assert!(status == 200 || status == 206, "{b}");
    }
    c
}

/// The per-operation rows kept as items arrive are what a grouping of all items gives: a
/// database whose rows are gone (written before the table existed) is rebuilt on open to
/// the same list, for every capture and every filter. A role name may hold a comma.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_rows_kept_on_insert_equal_a_rebuild_from_items() {
    let path = db("summary");
    let c = with_captures(&path).await;
    let mut r = Request::new("GET /c", "200", Duration::from_millis(1));
    r.id = "00f067aa0ba902b7".into();
    let comma = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
    let mut item = comma.to_item(r);
    item.tags
        .insert(tracelink_core::model::tags::CLOUD_ROLE, "x,y");
    let line = tracelink_core::envelope::to_json(&item, "k");
    let (status, b) = post(&c, "/v2.1/track", line.into_bytes(), &[]).await;
    assert_eq!(status, 200, "{b}");
    let op = comma.trace_id().to_string();

    let filter = |failed: Option<bool>, role: Option<&str>| {
        let mut f = query::OperationFilter::default();
        f.failed = failed;
        f.role = role.map(str::to_owned);
        f.limit = Some(1000);
        f
    };
    let filters = [
        filter(None, None),
        filter(Some(true), None),
        filter(Some(false), None),
        filter(None, Some("x,y")),
        filter(None, Some("x")),
        filter(None, Some("peers.py-peer")),
    ];
    let mut kept = Vec::new();
    for f in &filters {
        kept.push(c.store().operations(f).await.unwrap());
    }
    assert!(kept[0].len() >= 4, "{:?}", kept[0]);
    assert!(kept[0].iter().all(|o| o.items > 0 && o.root_name.is_some()));
    let row = kept[0].iter().find(|o| o.operation_id == op).unwrap();
    assert_eq!(row.roles, ["x,y"]);
    assert!(kept[3].iter().any(|o| o.operation_id == op));
    assert!(
        !kept[4].iter().any(|o| o.operation_id == op),
        "a role is matched whole"
    );
    assert!(!kept[5].is_empty());

    sql(&path).execute("DELETE FROM operations", []).unwrap();
    let reopened = tracelink_collector::Store::open(&path, Retention::default()).unwrap();
    for (f, want) in filters.iter().zip(&kept) {
        let got = reopened.operations(f).await.unwrap();
        assert_eq!(&got, want);
    }
}

/// Rows that do not account for the items are rebuilt on open: items written and deleted
/// by a program that does not keep the rows (a collector older than the table) show in the
/// list afterwards, as a grouping of all items gives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_rows_are_rebuilt_when_another_writer_changed_the_items() {
    let path = db("stale");
    let c = with_captures(&path).await;
    let before = operations(&c).await;
    assert!(before.len() >= 3, "{before:?}");
    let gone = before[0].operation_id.clone();
    // What an older collector does: items in and out, the rows untouched.
    let other = sql(&path);
    other
        .execute("DELETE FROM items WHERE operation_id = ?1", [&gone])
        .unwrap();
    other
        .execute(
            "INSERT INTO items (timestamp, ts_ms, item_type, name, operation_id, raw)
             SELECT timestamp, ts_ms + 1, 'request', 'GET /new', 'new-operation', raw
             FROM items WHERE operation_id IS NOT NULL LIMIT 1",
            [],
        )
        .unwrap();
    assert_eq!(
        operations(&c).await,
        before,
        "the rows were not kept by that writer"
    );

    let reopened = tracelink_collector::Store::open(&path, Retention::default()).unwrap();
    let all = query::OperationFilter::default();
    let rebuilt = reopened.operations(&all).await.unwrap();
    assert!(rebuilt.iter().any(|o| o.operation_id == "new-operation"));
    assert!(
        !rebuilt
            .iter()
            .any(|o| o.operation_id == before[0].operation_id)
    );
    assert_eq!(rebuilt.len(), before.len());
    // Current rows are left as they are on the next open.
    other
        .execute("UPDATE operations SET root_name = 'kept'", [])
        .unwrap();
    let again = tracelink_collector::Store::open(&path, Retention::default()).unwrap();
    let kept = again.operations(&all).await.unwrap();
    assert!(kept.iter().all(|o| o.root_name.as_deref() == Some("kept")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_prints_the_transaction_table() {
    let path = db("cli");
    let c = Collector::start(Config::new(&path).listen("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let (status, _) = post(&c, "/v2.1/track", CAPTURES[0].as_bytes().to_vec(), &[]).await;
    assert_eq!(status, 200);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracelink-collector"))
        .args([
            "query",
            "operation",
            "0af7651916cd43dd8448eb211c80319c",
            "--db",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split(" | ").map(str::trim).collect::<Vec<_>>(),
        [
            "timestamp",
            "itemType",
            "name",
            "id",
            "operation_ParentId",
            "operation_Id"
        ]
    );
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[2].contains("request") && lines[3].contains("dependency"));
    // The JSON API and the page answer too.
    let api = reqwest::get(format!("{}/api/items?type=dependency", c.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(api.contains("GET /downstream/items"));
    let bad = reqwest::get(format!("{}/api/operations?limit=abc", c.url()))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// A sender can make up any parent chain: a 3,000-deep one is served (API and page) with
/// every item, at most `MAX_TREE_DEPTH` levels deep, instead of overflowing the stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_parent_chains_are_served_flattened_below_the_depth_cap() {
    let c = start("deep").await;
    let now = tracelink_core::wire_time::format_time(std::time::SystemTime::now());
    let mut body = String::new();
    for i in 0..3000 {
        let parent = if i == 0 {
            String::new()
        } else {
            format!(",\"ai.operation.parentId\":\"p{}\"", i - 1)
        };
        body.push_str(&format!(
            "{{\"name\":\"x\",\"time\":\"{now}\",\"tags\":{{\"ai.operation.id\":\"deepop\"{parent}}},\"data\":{{\"baseType\":\"RequestData\",\"baseData\":{{\"ver\":2,\"id\":\"p{i}\",\"name\":\"GET /\",\"duration\":\"00:00:00.001\",\"responseCode\":\"200\",\"success\":true}}}}}}\n"
        ));
    }
    let (status, b) = post_gzip(&c, body.as_bytes()).await;
    assert_eq!(status, 200, "{b}");
    let text = reqwest::get(format!("{}/api/operations/deepop", c.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tree: serde_json::Value = serde_json::from_str(&text).unwrap();
    fn walk(n: &serde_json::Value, depth: usize, count: &mut usize, deepest: &mut usize) {
        *count += 1;
        *deepest = (*deepest).max(depth);
        for child in n["children"].as_array().unwrap() {
            walk(child, depth + 1, count, deepest);
        }
    }
    let (mut count, mut deepest) = (0, 0);
    for root in tree["roots"].as_array().unwrap() {
        walk(root, 1, &mut count, &mut deepest);
    }
    assert_eq!(count, 3000);
    assert_eq!(deepest, tracelink_collector::query::MAX_TREE_DEPTH);
    let page = reqwest::get(format!("{}/operations/deepop", c.url()))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("p2999"));
}

#[path = "cases/access.rs"]
mod access;
#[path = "cases/browser.rs"]
mod browser;
#[path = "cases/durability.rs"]
mod durability;
#[path = "cases/live.rs"]
mod live;
#[path = "cases/otlp.rs"]
mod otlp;
#[path = "cases/search.rs"]
mod search;
#[path = "cases/usage.rs"]
mod usage;

/// Failures come back as typed errors: a kind to branch on, the cause as the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_a_kind_and_a_source() {
    use std::error::Error as _;
    use tracelink_collector::{StartErrorKind, Store, StoreError, StoreErrorKind};

    // A database under a regular file cannot be created.
    let file = db("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let e = Store::open(&file.join("collector.db"), Retention::default()).unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Open);
    assert!(
        e.to_string().starts_with("cannot open the database "),
        "{e}"
    );
    assert!(e.source().is_some());

    let started = Collector::start(
        Config::new(file.join("collector.db")).listen("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap_err();
    assert_eq!(started.kind(), StartErrorKind::Database);
    let cause = started
        .source()
        .unwrap()
        .downcast_ref::<StoreError>()
        .unwrap();
    assert_eq!(cause.kind(), StoreErrorKind::Open);

    // An address in use cannot be listened on.
    let c = start("listen").await;
    let e = Collector::start(Config::new(db("listen-again")).listen(c.addr()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), StartErrorKind::Listen);
    assert_eq!(e.to_string(), format!("cannot listen on {}", c.addr()));
    assert!(e.source().is_some());
    let _ = std::fs::remove_file(&file);
}
