//! Search and logs: `GET /api/search`, `/search` and `/logs` over a dataset whose answers are
//! computed here, item by item.

use std::time::{Duration, SystemTime};

use tracelink_core::model::{Exception, Telemetry, tags};

use super::*;

/// One item of the dataset, as the test knows it.
#[derive(Clone, Debug)]
struct Spec {
    n: usize,
    kind: &'static str,
    name: String,
    role: &'static str,
    user: String,
    session: String,
    operation: String,
    success: bool,
    code: Option<&'static str>,
    duration_ms: Option<u64>,
    severity: Option<SeverityLevel>,
    note: Option<String>,
    ms: i64,
}

const BASE_MS: i64 = 1_790_000_000_000;

fn dataset() -> Vec<Spec> {
    let levels = [
        SeverityLevel::Verbose,
        SeverityLevel::Information,
        SeverityLevel::Warning,
        SeverityLevel::Error,
        SeverityLevel::Critical,
    ];
    (0..120)
        .map(|n| {
            let kind = ["request", "dependency", "trace", "exception"][n % 4];
            let word = if n % 10 == 0 { "alpha" } else { "beta" };
            Spec {
                n,
                kind,
                name: format!("{word} item{n}"),
                role: ["web", "api", "db"][n % 3],
                user: format!("user{}", n % 5),
                session: format!("s{}", n % 7),
                operation: format!("{:032x}", n / 10 + 1),
                success: match kind {
                    "request" | "dependency" => n % 8 != 0 && n % 8 != 1,
                    "exception" => false,
                    _ => true,
                },
                code: match kind {
                    "request" | "dependency" => Some(if n % 8 < 2 { "500" } else { "200" }),
                    _ => None,
                },
                duration_ms: matches!(kind, "request" | "dependency").then_some(n as u64),
                severity: match kind {
                    "trace" => Some(levels[n % 5]),
                    // Exceptions sent without a severity count as Error.
                    "exception" => (n % 3 == 0).then_some(SeverityLevel::Warning),
                    _ => None,
                },
                note: (n % 6 == 0).then(|| format!("gamma{n}")),
                ms: BASE_MS + n as i64 * 1000,
            }
        })
        .collect()
}

fn envelope(s: &Spec) -> String {
    let op = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
    let d = Duration::from_millis(s.duration_ms.unwrap_or(0));
    let mut item: Telemetry = match s.kind {
        "request" => {
            let mut r = Request::new(s.name.clone(), s.code.unwrap_or(""), d);
            r.success = s.success;
            op.to_item(r)
        }
        "dependency" => {
            let mut r = Dependency::new(s.name.clone(), "HTTP");
            r.duration = d;
            r.result_code = s.code.unwrap_or("").into();
            r.success = s.success;
            op.to_item(r)
        }
        "trace" => op.to_item(Trace::new(s.name.clone(), s.severity.unwrap())),
        _ => {
            let mut e = Exception::new("Boom", s.name.clone());
            e.severity = s.severity;
            op.to_item(e)
        }
    };
    item.time = SystemTime::UNIX_EPOCH + Duration::from_millis(s.ms as u64);
    item.tags.insert(tags::OPERATION_ID, s.operation.clone());
    item.tags.insert(tags::CLOUD_ROLE, s.role);
    item.tags.insert(tags::USER_ID, s.user.clone());
    item.tags.insert(tags::SESSION_ID, s.session.clone());
    if let Some(note) = &s.note {
        item.properties.insert("note".into(), note.clone());
    }
    tracelink_core::envelope::to_json(&item, "")
}

async fn get(c: &Collector, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("{}{path}", c.url())).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Every page of `query`, `limit` at a time, following `older`: the items' numbers in the
/// order served, and each page's `seq`s checked to fall strictly.
async fn all_pages(c: &Collector, query: &str, limit: u32) -> Vec<usize> {
    let mut out = Vec::new();
    let mut seqs: Vec<i64> = Vec::new();
    let mut before: Option<i64> = None;
    for _ in 0..1000 {
        let mut path = format!("/api/search?limit={limit}&{query}");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        let (status, body) = get(c, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit as usize);
        for i in items {
            seqs.push(i["seq"].as_i64().unwrap());
            let name = i["name"].as_str().unwrap();
            let n = name
                .rsplit("item")
                .next()
                .and_then(|d| d.parse().ok())
                .unwrap_or_else(|| panic!("{name}"));
            out.push(n);
        }
        match page["older"].as_i64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{query}: {seqs:?}");
    out
}

/// The numbers of the items `keep` selects, newest first.
fn expected(data: &[Spec], keep: impl Fn(&Spec) -> bool) -> Vec<usize> {
    data.iter().rev().filter(|s| keep(s)).map(|s| s.n).collect()
}

async fn loaded(name: &str) -> (Collector, Vec<Spec>) {
    let c = start(name).await;
    let data = dataset();
    let body: Vec<String> = data.iter().map(envelope).collect();
    let (status, b) = post(&c, "/v2.1/track", body.join("\n").into_bytes(), &[]).await;
    assert_eq!(status, 200, "{b}");
    (c, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_filters_each_narrow_to_what_they_name() {
    let (c, data) = loaded("search-filters").await;
    let sev = |s: &Spec| match s.kind {
        "trace" => s.severity,
        "exception" => Some(s.severity.unwrap_or(SeverityLevel::Error)),
        _ => None,
    };
    let op = data[35].operation.clone();
    let from_text = tracelink_core::wire_time::format_time(
        SystemTime::UNIX_EPOCH + Duration::from_millis((BASE_MS + 81_000) as u64),
    );
    let from = BASE_MS + 20_000;
    let to = BASE_MS + 50_000;
    type Keep = Box<dyn Fn(&Spec) -> bool>;
    let cases: Vec<(String, Keep)> = vec![
        (String::new(), Box::new(|_| true)),
        ("q=alpha".into(), Box::new(|s| s.name.starts_with("alpha"))),
        (
            "q=ALPHA%20item".into(),
            Box::new(|s| s.name.starts_with("alpha")),
        ),
        // Property values, by the start of a word.
        ("q=gamm".into(), Box::new(|s| s.note.is_some())),
        ("q=gamma12".into(), Box::new(|s| s.n == 12)),
        ("q=item7".into(), Box::new(|s| s.name.contains("item7"))),
        ("q=nothinglikeit".into(), Box::new(|_| false)),
        ("type=trace".into(), Box::new(|s| s.kind == "trace")),
        (
            "type=trace,exception".into(),
            Box::new(|s| matches!(s.kind, "trace" | "exception")),
        ),
        ("role=api".into(), Box::new(|s| s.role == "api")),
        (
            "success=false".into(),
            Box::new(|s| !s.success && s.kind != "trace"),
        ),
        (
            "success=true".into(),
            Box::new(|s| s.success && s.kind != "trace"),
        ),
        ("code=500".into(), Box::new(|s| s.code == Some("500"))),
        (
            "min_duration=50&max_duration=80".into(),
            Box::new(|s| s.duration_ms.is_some_and(|d| (50..=80).contains(&d))),
        ),
        (
            "severity=Warning".into(),
            Box::new(move |s| sev(s).is_some_and(|l| l >= SeverityLevel::Warning)),
        ),
        (
            "severity=4".into(),
            Box::new(move |s| sev(s) == Some(SeverityLevel::Critical)),
        ),
        ("user=user3".into(), Box::new(|s| s.user == "user3")),
        ("session=s2".into(), Box::new(|s| s.session == "s2")),
        (format!("operation={op}"), {
            let op = op.clone();
            Box::new(move |s| s.operation == op)
        }),
        (
            format!("from={from}&to={to}"),
            Box::new(move |s| s.ms >= from && s.ms <= to),
        ),
        (
            format!("from={from_text}"),
            Box::new(|s| s.ms >= BASE_MS + 81_000),
        ),
        (
            "q=beta&role=web&type=request&user=user2".into(),
            Box::new(|s| {
                s.name.starts_with("beta")
                    && s.role == "web"
                    && s.kind == "request"
                    && s.user == "user2"
            }),
        ),
        (
            format!("q=beta&operation={op}"),
            Box::new(move |s| s.name.starts_with("beta") && s.n / 10 == 3),
        ),
    ];
    for (query, keep) in cases {
        let want = expected(&data, &keep);
        for limit in [7, 500] {
            let got = all_pages(&c, &query, limit).await;
            assert_eq!(got, want, "{query} (limit {limit})");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_have_no_duplicates_or_gaps_in_either_direction() {
    let (c, data) = loaded("search-paging").await;
    let newest_first = all_pages(&c, "", 9).await;
    assert_eq!(newest_first, expected(&data, |_| true));
    // Back up from the oldest item with `after`: the same items, page by page.
    let (_, body) = get(&c, "/api/search?limit=1&after=0").await;
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let oldest = page["items"][0]["seq"].as_i64().unwrap();
    assert_eq!(page["items"][0]["name"], "alpha item0");
    let mut after = oldest;
    let mut forward: Vec<String> = vec!["alpha item0".into()];
    loop {
        let (_, body) = get(&c, &format!("/api/search?limit=9&after={after}")).await;
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        let items = page["items"].as_array().unwrap();
        // Each page newest first; pages come oldest first.
        let names: Vec<String> = items
            .iter()
            .rev()
            .map(|i| {
                let name = i["name"].as_str().unwrap();
                // An exception is named by its type and message.
                name.trim_start_matches("Boom: ").to_owned()
            })
            .collect();
        forward.extend(names);
        match page["newer"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    let want: Vec<String> = data.iter().map(|s| s.name.clone()).collect();
    assert_eq!(forward, want);
    // New items after the first page are not served again on the next.
    let (_, body) = get(&c, "/api/search?limit=10").await;
    let first: serde_json::Value = serde_json::from_str(&body).unwrap();
    let older = first["older"].as_i64().unwrap();
    let extra = Spec {
        n: 999,
        name: "beta item999".into(),
        ..data[5].clone()
    };
    post(&c, "/v2.1/track", envelope(&extra).into_bytes(), &[]).await;
    let (_, body) = get(&c, &format!("/api/search?limit=10&before={older}")).await;
    let second: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(second["items"][0]["name"], format!("beta item{}", 109));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_content_is_escaped_and_marked_as_text() {
    let c = start("search-hostile").await;
    let op = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
    let evil = "<script>alert(1)</script>";
    let mut item = op.to_item(Request::new(evil, "500", Duration::from_millis(3)));
    item.tags
        .insert(tags::USER_ID, "\"><script>alert(3)</script>");
    item.tags.insert(tags::CLOUD_ROLE, "<b>role</b>");
    item.properties.insert(
        "note".into(),
        "<img src=x onerror=alert(2)> scripted".into(),
    );
    let mut trace = op.to_item(Trace::new(
        "<script>alert(4)</script>",
        SeverityLevel::Error,
    ));
    trace
        .tags
        .insert(tags::USER_ID, "\"><script>alert(3)</script>");
    let body = [item, trace]
        .iter()
        .map(|i| tracelink_core::envelope::to_json(i, ""))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(post(&c, "/v2.1/track", body.into_bytes(), &[]).await.0, 200);
    let user = "%22%3E%3Cscript%3Ealert(3)%3C%2Fscript%3E";
    for path in [
        format!("/search?q=script&user={user}"),
        format!("/search?q=%3Cscript%3E&user={user}"),
        "/search?q=onerror".to_owned(),
        "/logs".to_owned(),
        format!("/logs?q=script&user={user}"),
    ] {
        let (status, page) = get(&c, &path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!page.contains("<script>alert"), "{path}: {page}");
        assert!(!page.contains("<img src"), "{path}");
        assert!(!page.contains("<b>role"), "{path}");
    }
    let (_, page) = get(&c, &format!("/search?q=script&user={user}")).await;
    assert_eq!(page.matches("<tr class=\"result").count(), 2, "{page}");
    assert!(page.contains("&lt;<mark>script</mark>&gt;alert(1)&lt;/<mark>script</mark>&gt;"));
    // The property the word was found in, escaped and marked.
    assert!(page.contains("note: &lt;img src=x onerror=alert(2)&gt; <mark>script</mark>ed"));
    // The query is echoed into the form as an attribute value, escaped.
    assert!(page.contains("value=\"&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;\""));
    let (_, logs) = get(&c, "/logs").await;
    assert_eq!(logs.matches("<tr class=\"log").count(), 1);
    assert!(logs.contains("&lt;script&gt;alert(4)&lt;/script&gt;"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_store_and_bad_parameters() {
    let c = start("search-empty").await;
    let (status, body) = get(&c, "/api/search?q=anything").await;
    assert_eq!(status, 200);
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    assert!(page["older"].is_null() && page["newer"].is_null());
    let (status, page) = get(&c, "/search").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"no-results\"") && page.contains("<span id=\"count\">0</span>"));
    let (status, page) = get(&c, "/logs?severity=Error").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"no-logs\""));
    for (path, message) in [
        (
            "/api/search?limit=0",
            "invalid limit: expected a whole number from 1 to 500",
        ),
        ("/api/search?severity=loud", "invalid severity"),
        ("/api/search?from=yesterday", "invalid from"),
        (
            "/api/search?min_duration=9&max_duration=1",
            "invalid max_duration",
        ),
        ("/api/search?before=1&after=2", "invalid after"),
        (
            "/search?success=maybe",
            "invalid success: expected true or false",
        ),
        ("/logs?severity=loud", "invalid severity"),
    ] {
        let (status, body) = get(&c, path).await;
        assert_eq!(status, 400, "{path}");
        assert!(body.contains(message), "{path}: {body}");
    }
    // Words in any script, and the full-text query syntax's own characters, are only words.
    let (status, body) = get(
        &c,
        "/api/search?q=%C2%B2x%20%C3%9F%20%EF%AC%81%20caf%C3%A9%20%22%2A%28%29%3A%5E%20NEAR%20OR",
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// A database written before the index (its tables dropped here) is indexed when opened: its
/// items are found by name and by filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_stored_before_the_index_are_indexed_on_open() {
    let path = db("search-before-index");
    let open = || {
        Collector::start(
            Config::new(path.clone())
                .listen("127.0.0.1:0".parse().unwrap())
                .max_body(1024 * 1024),
        )
    };
    let data = dataset();
    let c = open().await.unwrap();
    let body: Vec<String> = data.iter().map(envelope).collect();
    assert_eq!(
        post(&c, "/v2.1/track", body.join("\n").into_bytes(), &[])
            .await
            .0,
        200
    );
    c.shutdown().await;
    {
        let conn = sql(&path);
        let shards: Vec<i64> = conn
            .prepare("SELECT id FROM search_shards")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(shards, [1]);
        conn.execute_batch("DROP TABLE items_search_1; DROP TABLE search_shards;")
            .unwrap();
    }
    let c = open().await.unwrap();
    let alpha = expected(&data, |s| s.name.starts_with("alpha"));
    assert_eq!(all_pages(&c, "q=alpha", 4).await, alpha);
    let traces = expected(&data, |s| s.kind == "trace" && s.user == "user1");
    assert_eq!(all_pages(&c, "type=trace&user=user1", 4).await, traces);
    // And new items go on being indexed.
    let extra = Spec {
        n: 500,
        name: "alpha item500".into(),
        ..data[0].clone()
    };
    post(&c, "/v2.1/track", envelope(&extra).into_bytes(), &[]).await;
    assert_eq!(all_pages(&c, "q=alpha", 50).await[0], 500);
}

/// Items deleted from the newest end (retention by age deletes an item sent with an old time
/// wherever it is) leave their `seq`s to the next items: the next items are found by their
/// own words only, and the deleted ones not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_taken_again_finds_the_new_item_only() {
    let (c, data) = loaded("search-seq-again").await;
    // The database `start` made (see `db`).
    let path = std::env::temp_dir().join(format!(
        "tracelink-collector-search-seq-again-{}.db",
        std::process::id()
    ));
    let newest: i64 = {
        let conn = sql(&path);
        conn.query_row("SELECT MAX(seq) FROM items", [], |r| r.get(0))
            .unwrap()
    };
    {
        let conn = sql(&path);
        conn.execute("DELETE FROM items WHERE seq > ?1", [newest - 3])
            .unwrap();
    }
    let again: Vec<String> = (0..3)
        .map(|i| {
            envelope(&Spec {
                n: 900 + i,
                name: format!("omega item{}", 900 + i),
                ..data[4].clone()
            })
        })
        .collect();
    post(&c, "/v2.1/track", again.join("\n").into_bytes(), &[]).await;
    assert_eq!(all_pages(&c, "q=omega", 2).await, [902, 901, 900]);
    for gone in ["q=item119", "q=item118", "q=item117"] {
        assert_eq!(all_pages(&c, gone, 10).await, Vec::<usize>::new(), "{gone}");
    }
    let mut all = expected(&data, |s| s.n < 117);
    all.splice(0..0, [902, 901, 900]);
    assert_eq!(all_pages(&c, "", 7).await, all);
    assert_eq!(
        all_pages(&c, &format!("role={}", data[4].role), 7).await,
        [902, 901, 900]
            .into_iter()
            .chain(expected(&data, |s| s.n < 117 && s.role == data[4].role))
            .collect::<Vec<_>>()
    );
}
