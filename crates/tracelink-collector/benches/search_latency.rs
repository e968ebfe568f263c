//! How long a search takes at the default retention limit: 1,000,000 items.
//!
//! Starts a collector (in this process, on 127.0.0.1, fresh database in the temp directory),
//! posts 1,000,000 items through `/v2.1/track` (requests, dependencies, traces and
//! exceptions of 250,000 operations, from 5 roles, 1,000 users and 5,000 sessions, over the
//! last 28 hours), and then times the first page (50 items) of `GET /api/search` and of the
//! `/search` and `/logs` pages for a rare word (5 items, the oldest among them), a common
//! word (in most items), filters only, and both. Each query runs 7 times; the median and the
//! slowest are printed.
//!
//! ```text
//! cargo bench -p tracelink-collector --bench search-latency [-- --items N]
//! ```
#![allow(missing_docs)]

use std::time::{Duration, Instant, SystemTime};

use tracelink_collector::{Collector, Config};
use tracelink_core::model::{Dependency, Exception, Request, SeverityLevel, Trace, tags};
use tracelink_core::{Correlation, Propagation, SamplingDecision};

const ROLES: [&str; 5] = ["web", "orders", "inventory", "payments", "email"];

/// Operation `op`'s four items, at `time`.
fn operation(op: usize, time: SystemTime) -> [String; 4] {
    let c = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
    let role = ROLES[op % ROLES.len()];
    let failed = op.is_multiple_of(50);
    let mut request = Request::new(
        "GET /api/orders/{id}",
        if failed { "500" } else { "200" },
        Duration::from_millis((op % 400) as u64),
    );
    request.url = format!("http://shop.example/api/orders/{op}?expand=lines");
    request.success = !failed;
    let mut dependency = Dependency::new("SELECT orders", "SQL");
    dependency.data = "SELECT * FROM orders WHERE id = @id".into();
    dependency.duration = Duration::from_millis((op % 40) as u64);
    dependency.result_code = "0".into();
    let message = if op % 50_000 == 7 {
        // Five operations in 1,000,000 items: the rare word.
        format!("checksum mismatch zanzibar in order {op}")
    } else {
        format!("loaded order {op} with {} lines", op % 9)
    };
    let severity = [
        SeverityLevel::Verbose,
        SeverityLevel::Information,
        SeverityLevel::Information,
        SeverityLevel::Warning,
    ][op % 4];
    let trace = Trace::new(message, severity);
    let mut items = [
        c.to_item(request),
        c.to_item(dependency),
        c.to_item(trace),
        if failed {
            c.to_item(Exception::new("OrderError", format!("order {op} failed")))
        } else {
            c.to_item(Trace::new("response sent", SeverityLevel::Verbose))
        },
    ];
    for item in &mut items {
        item.time = time;
        item.tags.insert(tags::CLOUD_ROLE, role);
        item.tags
            .insert(tags::USER_ID, format!("user{}", op % 1000));
        item.tags
            .insert(tags::SESSION_ID, format!("session{}", op % 5000));
        item.properties
            .insert("tenant".into(), format!("tenant-{}", op % 20));
    }
    items.map(|i| tracelink_core::envelope::to_json(&i, ""))
}

fn median(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    (d[d.len() / 2], d[d.len() - 1])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let items: usize = args
        .iter()
        .position(|a| a == "--items")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let db = std::env::temp_dir().join(format!(
        "tracelink-search-latency-{}.db",
        std::process::id()
    ));
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    let collector =
        Collector::start(Config::new(db.clone()).listen("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
    let url = collector.url();
    let client = reqwest::Client::new();
    let operations = items / 4;
    let now = SystemTime::now();
    let started = Instant::now();
    let mut posted = 0;
    for chunk in (0..operations).collect::<Vec<_>>().chunks(250) {
        let body: Vec<String> = chunk
            .iter()
            .flat_map(|&op| {
                // Oldest first, 400 ms apart: 28 hours in all.
                let age = Duration::from_millis(((operations - op) * 400) as u64);
                operation(op, now - age)
            })
            .collect();
        posted += body.len();
        let r = client
            .post(format!("{url}/v2.1/track"))
            .body(body.join("\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    println!(
        "posted {posted} items in {:.1} s; database {:.0} MiB",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&db).map_or(0, |m| m.len()) as f64 / 1048576.0
    );
    let queries = [
        ("rare word", "/api/search?q=zanzibar"),
        ("common word", "/api/search?q=orders"),
        ("common prefix", "/api/search?q=ord"),
        ("two common words", "/api/search?q=loaded%20lines"),
        ("no filter", "/api/search"),
        ("filter: exceptions", "/api/search?type=exception"),
        ("filter: failed, role", "/api/search?success=false&role=web"),
        (
            "filter: failed, role (none)",
            "/api/search?success=false&role=payments",
        ),
        ("filter: one user", "/api/search?user=user42"),
        ("filter: one session", "/api/search?session=session4242"),
        (
            "filter: severity >= Warning",
            "/api/search?type=trace,exception&severity=Warning",
        ),
        ("filter: result code 500", "/api/search?code=500"),
        (
            "filter: duration 390-400 ms",
            "/api/search?min_duration=390&max_duration=400",
        ),
        ("filter: last 10 minutes", "/api/search?from=LAST10"),
        ("filter: one operation", "/api/search?operation=OP"),
        (
            "word and filters",
            "/api/search?q=order&role=inventory&type=trace&user=user42",
        ),
        (
            "word and filters (none)",
            "/api/search?q=order&role=orders&type=trace&user=user42",
        ),
        (
            "common word, deep page",
            "/api/search?q=orders&before=500000",
        ),
        ("page: /search?q=orders", "/search?q=orders"),
        ("page: /search?q=zanzibar", "/search?q=zanzibar"),
        ("page: /logs", "/logs"),
        ("page: /logs?severity=Error", "/logs?severity=Error"),
    ];
    let last10 = (now - Duration::from_secs(600))
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let some_op: serde_json::Value = serde_json::from_str(
        &client
            .get(format!("{url}/api/search?q=zanzibar&limit=1"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let op = some_op["items"][0]["operation_id"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    println!(
        "{:<36} {:>8} {:>10} {:>10}",
        "query", "results", "median ms", "max ms"
    );
    for (label, path) in queries {
        let path = path.replace("LAST10", &last10).replace("OP", &op);
        let mut times = Vec::new();
        let mut results = 0;
        for _ in 0..7 {
            let t = Instant::now();
            let r = client.get(format!("{url}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            let body = r.text().await.unwrap();
            times.push(t.elapsed());
            results = if path.starts_with("/api/") {
                serde_json::from_str::<serde_json::Value>(&body).unwrap()["items"]
                    .as_array()
                    .map_or(0, Vec::len)
            } else {
                body.matches("<tr class=\"result").count() + body.matches("<tr class=\"log").count()
            };
        }
        let (med, max) = median(times);
        println!(
            "{label:<36} {results:>8} {:>10.1} {:>10.1}",
            med.as_secs_f64() * 1000.0,
            max.as_secs_f64() * 1000.0
        );
    }
    collector.shutdown().await;
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
}
