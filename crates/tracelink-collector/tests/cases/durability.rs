//! Disk: what was acknowledged survives a SIGKILL; the WAL and the database stay bounded.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::*;

/// A collector process killed with SIGKILL while 4 posters send: reopened on the same
/// database, every item it answered as accepted is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_items_survive_sigkill() {
    let path = db("sigkill");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracelink-collector"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let body = gzip(format!("{}\n", fresh()).repeat(200).as_bytes());
    let mut posters = Vec::new();
    for _ in 0..4 {
        let (url, body, acked, stop) = (url.clone(), body.clone(), acked.clone(), stop.clone());
        posters.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .post(format!("{url}/v2.1/track"))
                    .header("content-encoding", "gzip")
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let text = r.text().await.unwrap_or_default();
                        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                            acked.fetch_add(v["itemsAccepted"].as_u64().unwrap(), Ordering::SeqCst);
                        }
                    }
                    _ => break,
                }
            }
        }));
    }
    // Kill it mid-ingest, once a good number of batches were acknowledged.
    while acked.load(Ordering::SeqCst) < 20_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for p in posters {
        let _ = p.await;
    }
    let acked = acked.load(Ordering::SeqCst);
    let store = tracelink_collector::Store::open(&path, Retention::default()).unwrap();
    let n: i64 = store_count(&path);
    assert!(n as u64 >= acked, "{n} stored, {acked} acknowledged");
    // The operation rows still account for every item.
    let ops = store.operations(&Default::default()).await.unwrap();
    assert_eq!(ops.iter().map(|o| o.items).sum::<i64>(), n);
    store.close().await;
    remove(&path);
}

/// Deletes a test database and its WAL and shared-memory files.
fn remove(path: &std::path::Path) {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}

/// The Node SDK's dependency, timed now (retention keeps 7 days).
fn fresh() -> String {
    CAPTURES[0].lines().next().unwrap().replace(
        "2026-11-21T05:46:41.622Z",
        &tracelink_core::wire_time::format_time(std::time::SystemTime::now()),
    )
}

fn store_count(path: &std::path::Path) -> i64 {
    sql(path)
        .query_row("SELECT COUNT(*) FROM items", [], |r| r.get(0))
        .unwrap()
}

/// Under sustained writes the WAL stays near its limit, and shutdown truncates it; a byte
/// limit deletes the oldest items and counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_and_database_stay_bounded() {
    let path = db("bounded");
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    let c = Collector::start(
        Config::new(&path)
            .listen("127.0.0.1:0".parse().unwrap())
            .wal_limit(1 << 20)
            .retention(Retention::default().bytes(4 << 20)),
    )
    .await
    .unwrap();
    let body = gzip(format!("{}\n", fresh()).repeat(500).as_bytes());
    let mut largest_wal = 0;
    for _ in 0..60 {
        let (status, _) = post(
            &c,
            "/v2.1/track",
            body.clone(),
            &[("content-encoding", "gzip")],
        )
        .await;
        assert_eq!(status, 200);
        largest_wal = largest_wal.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    // 30,000 items of ~2 KB in the database: about 60 MB written through a WAL limited to
    // 1 MiB.
    assert!(largest_wal < 8 << 20, "WAL reached {largest_wal} bytes");
    // The retention runs after a transaction is acknowledged: wait for it.
    c.store()
        .enforce_retention(Retention::default().bytes(4 << 20))
        .await
        .unwrap();
    let stats = c.stats();
    assert_eq!(stats.items_accepted, 30_000);
    assert!(stats.wal_restarts > 0, "{stats:?}");
    assert!(stats.deleted_by_size > 0, "{stats:?}");
    let left = store_count(&path) as u64;
    assert_eq!(left + stats.deleted_by_size, 30_000);
    let ops = operations(&c).await;
    assert_eq!(ops.iter().map(|o| o.items as u64).sum::<u64>(), left);
    let pages: i64 = sql(&path)
        .query_row("SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()", [], |r| r.get(0))
        .unwrap();
    assert!(
        pages <= 4 << 20,
        "{pages} bytes in use, {left} items, {stats:?}"
    );
    c.shutdown().await;
    assert_eq!(
        std::fs::metadata(&wal).map_or(0, |m| m.len()),
        0,
        "WAL left after shutdown"
    );
    remove(&path);
}
