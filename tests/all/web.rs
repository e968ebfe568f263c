//! The collector's web view in a real browser (Debian's chromium, headless): the DOM after
//! load holds the operation, the timeline's bars, the map's nodes and edges, and the user and
//! session counts. Screenshots go to `target/screenshots/` (CI artifacts).
//!
//! `.ci/run` installs chromium. Without it, each test fails when the `CI` environment
//! variable is set, and otherwise passes after writing a `SKIPPED:` line to stderr.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tracelink_collector::{Collector, Config};
use tracelink_core::model::{Request, tags};
use tracelink_core::{Correlation, Propagation, SamplingDecision};

/// What every test here says when there is no browser (and `CI` is not set).
const SKIPPED: &str = "SKIPPED: chromium not found; install Debian's chromium or run .ci/run";

/// A headless browser on this machine.
#[derive(Clone, Copy, Debug)]
struct Browser {
    program: &'static str,
}

impl Browser {
    /// The browser, for a test to use; `None` when the machine has none, after reporting
    /// the test as skipped. Under CI (`CI` set) a missing browser fails the test instead:
    /// there the tests must run. Every test here starts with this.
    fn or_skip() -> Option<Self> {
        let found = ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find(|c| {
                Command::new(c)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
        if let Some(program) = found {
            return Some(Self { program });
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium not found, and CI is set: install Debian's chromium (apt-get install chromium) or run .ci/run"
        );
        let test = std::thread::current()
            .name()
            .map_or_else(String::new, |n| format!(" ({n})"));
        // Straight to the process's stderr: the test harness keeps `eprintln!` output of
        // passing tests to itself, and a skip must be seen.
        let _ = writeln!(std::io::stderr().lock(), "{SKIPPED}{test}");
        None
    }

    fn run(self, args: &[&str]) -> String {
        let profile = std::env::temp_dir().join(format!(
            "tracelink-chromium-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let out = Command::new(self.program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .output()
            .expect("chromium runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The DOM of a page after the browser loaded it.
    fn dom(self, url: &str) -> String {
        let d = self.run(&["--dump-dom", url]);
        assert!(d.contains("</html>"), "no DOM for {url}: {d}");
        d
    }

    /// Writes `target/screenshots/{name}.png`; fails unless this call wrote it (a file left
    /// by an earlier run does not count).
    fn screenshot(self, url: &str, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot remove the old screenshot {}: {e}", path.display()),
        }
        self.run(&[&format!("--screenshot={}", path.display()), url]);
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        assert!(
            size > 0,
            "screenshot {name}: no image written to {}",
            path.display()
        );
    }
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// After the demo: the transaction, the map and the users, as a user sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_pages_in_a_real_browser() {
    let Some(browser) = Browser::or_skip() else {
        return;
    };
    let (demo, report) = tracelink_demo::run().await.unwrap();
    let url = demo.collector.url();
    let op = report.operation_id.clone();
    let audience_sessions = report
        .audience
        .iter()
        .map(|v| v.session.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    let (u, o) = (url.clone(), op.clone());
    blocking(move || {
        // The checkouts are the operations of role web (the simulated audience's page views
        // are operations of their own, without a role).
        let index = browser.dom(&format!("{u}/?role=web"));
        assert!(
            index.contains(&format!("data-operation=\"{o}\"")),
            "the operation is listed"
        );
        assert_eq!(
            count(&index, "<tr class=\"operation"),
            tracelink_demo::CHECKOUTS as usize
        );
        assert!(
            count(&index, "<tr class=\"operation failed\"") >= 1,
            "failures are marked"
        );

        let tx = browser.dom(&format!("{u}/operations/{o}"));
        assert_eq!(
            count(&tx, "class=\"bar"),
            5,
            "one bar per item: 3 requests + 2 dependencies"
        );
        assert_eq!(count(&tx, "class=\"detail\""), 5);
        for role in ["web", "orders", "inventory"] {
            assert!(tx.contains(&format!("data-role=\"{role}\"")), "{role} bars");
        }
        assert!(!tx.contains("id=\"orphans\""), "nothing orphaned");

        let map = browser.dom(&format!("{u}/map"));
        assert_eq!(count(&map, "<g class=\"node"), 3);
        for n in ["web", "orders", "inventory"] {
            assert!(map.contains(&format!("data-name=\"{n}\"")), "node {n}");
        }
        assert_eq!(count(&map, "<g class=\"edge"), 2);
        assert!(map.contains("data-from=\"web\" data-to=\"orders\""));
        // The hierarchical-id hop still links orders to inventory.
        assert!(map.contains("data-from=\"orders\" data-to=\"inventory\""));

        let users = browser.dom(&format!("{u}/users"));
        // The workload sent ai_user user1/user3 and one ai_session per odd checkout; the
        // simulated audience its own users and sessions.
        assert!(
            users.contains(&format!(
                "<span id=\"unique-users\">{}</span>",
                2 + tracelink_demo::audience::USERS
            )),
            "{users}"
        );
        assert!(users.contains(&format!(
            "<span id=\"unique-sessions\">{}</span>",
            tracelink_demo::CHECKOUTS as usize / 2 + audience_sessions
        )));
        let session = browser.dom(&format!("{u}/sessions/session1"));
        assert!(session.contains("GET /checkout/{item}"));

        browser.screenshot(&format!("{u}/"), "operations");
        browser.screenshot(&format!("{u}/operations/{o}"), "transaction");
        browser.screenshot(&format!("{u}/map"), "map");
        browser.screenshot(&format!("{u}/users"), "users");
    })
    .await;
    demo.collector.shutdown().await;
}

async fn collector(name: &str) -> Collector {
    let db = std::env::temp_dir().join(format!("tracelink-web-{name}-{}.db", std::process::id()));
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    Collector::start(Config::new(db).listen("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
}

async fn post(c: &Collector, lines: Vec<String>) {
    let r = reqwest::Client::new()
        .post(format!("{}/v2.1/track", c.url()))
        .body(lines.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn request(name: &str) -> String {
    let op = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
    let mut item = op.to_item(Request::new(name, "200", Duration::from_millis(3)));
    item.tags.insert(tags::CLOUD_ROLE, "svc");
    tracelink_core::envelope::to_json(&item, "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_collector_pages() {
    let Some(browser) = Browser::or_skip() else {
        return;
    };
    let c = collector("empty").await;
    let u = c.url();
    blocking(move || {
        let index = browser.dom(&format!("{u}/"));
        assert!(index.contains("id=\"empty\""));
        assert_eq!(count(&index, "<tr class=\"operation"), 0);
        assert_eq!(
            count(&browser.dom(&format!("{u}/map")), "<g class=\"node"),
            0
        );
        assert!(
            browser
                .dom(&format!("{u}/users"))
                .contains("<span id=\"unique-users\">0</span>")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_operations_are_paginated_and_fast() {
    let Some(browser) = Browser::or_skip() else {
        return;
    };
    let c = collector("many").await;
    for chunk in 0..20 {
        post(
            &c,
            (0..500)
                .map(|i| request(&format!("GET /item/{}", chunk * 500 + i)))
                .collect(),
        )
        .await;
    }
    // Served in under a second, first and last page. Unoptimized test
    // builds (SQLite included) on a busy CI machine get some slack; release builds must
    // meet the bound itself.
    let bound = Duration::from_secs(if cfg!(debug_assertions) { 5 } else { 1 });
    for offset in [0, 9950] {
        let start = Instant::now();
        let r = reqwest::get(format!("{}/?offset={offset}", c.url()))
            .await
            .unwrap();
        let body = r.text().await.unwrap();
        assert!(
            start.elapsed() < bound,
            "page at offset {offset}: {:?}",
            start.elapsed()
        );
        assert_eq!(count(&body, "<tr class=\"operation"), 50);
    }
    let u = c.url();
    blocking(move || {
        let first = browser.dom(&format!("{u}/"));
        assert_eq!(count(&first, "<tr class=\"operation"), 50);
        assert!(first.contains("id=\"next\""));
        let last = browser.dom(&format!("{u}/?offset=9950"));
        assert_eq!(count(&last, "<tr class=\"operation"), 50);
        assert!(!last.contains("id=\"next\"") && last.contains("id=\"previous\""));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_content_is_escaped() {
    let Some(browser) = Browser::or_skip() else {
        return;
    };
    let c = collector("hostile").await;
    let evil = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";
    let op = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
    let mut item = op.to_item(Request::new(evil, "500", Duration::from_millis(3)));
    item.tags
        .insert(tags::CLOUD_ROLE, "\"><svg onload=alert(2)>");
    item.properties.insert("note".into(), evil.into());
    post(&c, vec![tracelink_core::envelope::to_json(&item, "")]).await;
    let (u, id) = (c.url(), op.trace_id().to_string());
    blocking(move || {
        for page in [
            format!("{u}/"),
            format!("{u}/operations/{id}"),
            format!("{u}/map"),
        ] {
            let d = browser.dom(&page);
            assert!(
                !d.contains("<script>document"),
                "{page}: a script element from telemetry"
            );
            assert!(
                !d.contains("<img src=\"x\""),
                "{page}: an img element from telemetry"
            );
            assert!(!d.contains("<svg onload"), "{page}");
            assert!(!d.contains("pwned</title>"), "{page}: the script ran");
        }
        assert!(
            browser
                .dom(&format!("{u}/operations/{id}"))
                .contains("&lt;script&gt;document.title"),
            "shown as text"
        );
    })
    .await;
}

/// The Node SDK's captured Live Metrics requests: path with the query, and body.
fn node_live_requests() -> Vec<(String, String)> {
    include_str!("../data/captures/live-metrics/node-applicationinsights-2.9.8-live.ndjson")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "request")
        .map(|v| {
            (
                v["path"].as_str().unwrap().to_owned(),
                v["body_text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Sends a ping or post; whether the answer says someone watches.
async fn quickpulse(base: &str, path: &str, body: String) -> bool {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.headers()["x-ms-qps-subscribed"] == "true"
}

/// The latest requests per second the Live page shows for `instance`.
fn shown_requests(dom: &str, instance: &str) -> Option<f64> {
    let row = &dom[dom.find(&format!(
        "<tr class=\"instance\" data-instance=\"{instance}\""
    ))?..];
    let row = &row[..row.find("</tr>")?];
    let value = &row[row.find("class=\"requests\" data-value=\"")? + 29..];
    value[..value.find('"')?].parse().ok()
}

/// Live Metrics: a tracelink service set up with the collector's connection string and the
/// replayed Node SDK show on `/live`, with their requests per second; opening the page is
/// what subscribes them; hostile names stay text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_page_shows_a_tracelink_service_and_the_replayed_node_sdk() {
    let Some(browser) = Browser::or_skip() else {
        return;
    };
    let c = collector("live").await;
    let u = c.url();
    let node = node_live_requests();
    let (ping_path, ping_body) = node[0].clone();
    assert!(!quickpulse(&u, &ping_path, ping_body.clone()).await);

    // Opening the page subscribes: the next answer to the Node SDK says someone watches.
    let page = u.clone();
    let first = blocking(move || {
        browser.run(&[
            "--virtual-time-budget=1500",
            "--dump-dom",
            &format!("{page}/live"),
        ])
    })
    .await;
    assert!(first.contains("id=\"charts\""), "{first}");
    assert!(quickpulse(&u, &ping_path, ping_body.clone()).await);

    // A tracelink service: the collector's connection string names it as the live endpoint.
    let tracelink = tracelink::Builder::from_vars([
        (
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            c.connection_string(),
        ),
        ("OTEL_SERVICE_NAME", "live-web".to_owned()),
        ("HOSTNAME", "live-web-host".to_owned()),
    ])
    .exporter(|e| e.no_spool())
    .init()
    .unwrap();
    let live = tracelink
        .live_metrics()
        .expect("live metrics on by default");
    assert_eq!(live.status().endpoint, u);
    let sink = tracelink.sink();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (load_stop, viewer_url) = (stop.clone(), u.clone());
    let load = tokio::spawn(async move {
        let mut n = 0u32;
        while !load_stop.load(std::sync::atomic::Ordering::Relaxed) {
            n += 1;
            let code = if n.is_multiple_of(10) { "500" } else { "200" };
            sink.send(tracelink_core::model::Telemetry::new(Request::new(
                "GET /live-web",
                code,
                Duration::from_millis(3),
            )));
            // The page stays open in a real browser; here the test reads what it reads.
            if n.is_multiple_of(25) {
                let _ = reqwest::get(format!("{viewer_url}/api/live")).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    // The replayed Node SDK, and an instance with hostile names.
    for (path, body) in &node {
        quickpulse(&u, path, body.clone()).await;
    }
    let evil = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";
    let hostile = serde_json::json!([{
        "InstrumentationKey": "11111111-2222-3333-4444-555555555555",
        "InvariantVersion": 1, "Timestamp": "/Date(1795999126076)/",
        "Instance": evil, "RoleName": evil, "MachineName": evil,
        "Metrics": [{"Name": "\\ApplicationInsights\\Requests/Sec", "Value": 1, "Weight": 1}],
        "Documents": [{"__type": "TraceTelemetryDocument", "Message": evil, "SeverityLevel": "Error"}],
    }]);
    quickpulse(
        &u,
        "/QuickPulseService.svc/post?ikey=11111111-2222-3333-4444-555555555555",
        hostile.to_string(),
    )
    .await;
    // Wait for the service's posts (pings every second once answered, then a post a second).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: serde_json::Value = reqwest::get(format!("{u}/api/live?view=false"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let posted = v["instances"].as_array().unwrap().iter().any(|i| {
            i["instance"] == "live-web-host"
                && i["samples"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["requests"].as_f64() > Some(0.0))
        });
        if posted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no post from the tracelink service: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = u.clone();
    blocking(move || {
        let d = browser.run(&[
            "--virtual-time-budget=3000",
            "--dump-dom",
            &format!("{page}/live"),
        ]);
        assert!(d.contains("</html>"), "{d}");
        assert_eq!(count(&d, "<tr class=\"instance\""), 3, "{d}");
        assert!(d.contains("data-role=\"live-web\""));
        let rust = shown_requests(&d, "live-web-host")
            .unwrap_or_else(|| panic!("the tracelink service's row: {d}"));
        assert!(rust > 0.0, "requests per second shown: {rust}");
        let node = shown_requests(&d, "livecap-instance-1").expect("the Node SDK's row");
        assert!(node >= 0.0);
        assert!(count(&d, "<polyline") >= 3, "one line per instance");
        assert!(d.contains("<tr class=\"document"), "the sample documents");
        assert!(
            !d.contains("<img src=\"x\""),
            "an img element from telemetry"
        );
        assert!(
            !d.contains("<script>document"),
            "a script element from telemetry"
        );
        assert!(!d.contains("pwned</title>"), "the script ran");
        assert!(d.contains("&lt;script&gt;document.title"), "shown as text");
        browser.run(&[
            "--virtual-time-budget=3000",
            &format!(
                "--screenshot={}",
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../target/screenshots/live.png")
                    .display()
            ),
            &format!("{page}/live"),
        ]);
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    tracelink.shutdown().await;
    c.shutdown().await;
}

/// Whether `visits` (one user's, by time) hold `steps` in order, the last within `window_ms`
/// of the first: every choice tried.
fn in_order(
    visits: &[&tracelink_demo::audience::Visit],
    steps: &[&str],
    window_ms: i64,
    first: Option<i64>,
) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        return true;
    };
    (0..visits.len()).any(|i| {
        let v = visits[i];
        v.name == *step
            && first.is_none_or(|f| v.ts_ms - f <= window_ms)
            && in_order(
                &visits[i + 1..],
                rest,
                window_ms,
                Some(first.unwrap_or(v.ts_ms)),
            )
    })
}

/// The usage tools and the metrics page after the demo: the numbers in the DOM are those the
/// demo's simulated audience implies, counted here from the visits it posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_pages_in_a_real_browser() {
    use std::collections::{HashMap, HashSet};
    let Some(browser) = Browser::or_skip() else {
        return;
    };
    let (demo, report) = tracelink_demo::run().await.unwrap();
    let u = demo.collector.url();
    let visits = report.audience.clone();
    // A cohort, saved as the page's form posts it.
    let r = reqwest::Client::new()
        .post(format!("{u}/cohorts"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=buyers&event=order+placed&days=7")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    blocking(move || {
        let mut by_user: HashMap<&str, Vec<&tracelink_demo::audience::Visit>> = HashMap::new();
        for v in &visits {
            by_user.entry(&v.user).or_default().push(v);
        }
        let sessions: HashSet<&str> = visits.iter().map(|v| v.session.as_str()).collect();

        let users = browser.dom(&format!("{u}/users?split=browser"));
        assert!(
            users.contains("data-series=\"Chrome 131\""),
            "split by browser"
        );
        let home_users = by_user
            .values()
            .filter(|v| v.iter().any(|v| v.name == "Home"))
            .count();
        assert!(users.contains(&format!("data-name=\"Home\" data-users=\"{home_users}\"")));

        let s = browser.dom(&format!("{u}/sessions"));
        assert!(s.contains(&format!(
            "<span id=\"session-count\">{}</span>",
            sessions.len() + tracelink_demo::CHECKOUTS as usize / 2
        )));
        let one = &visits[0].session;
        let session = browser.dom(&format!("{u}/sessions/{one}"));
        let n = visits.iter().filter(|v| &v.session == one).count();
        assert!(session.contains(&format!("<span id=\"session-items\">{n}</span>")));

        let events = browser.dom(&format!("{u}/events?type=customEvent"));
        let custom = visits.iter().filter(|v| v.kind == "customEvent").count();
        assert!(events.contains(&format!("<span id=\"event-count\">{custom}</span>")));
        let orders = visits.iter().filter(|v| v.name == "order placed").count();
        assert!(events.contains(&format!(
            "data-name=\"order placed\" data-count=\"{orders}\""
        )));

        let steps = ["Home", "add to cart", "order placed"];
        let funnel = browser.dom(&format!(
            "{u}/funnels?step1=Home&step2=add+to+cart&step3=order+placed&within=24"
        ));
        for k in 1..=3 {
            let reached = by_user
                .values()
                .filter(|v| in_order(v, &steps[..k], 86_400_000, None))
                .count();
            assert!(
                funnel.contains(&format!("data-step=\"{k}\" data-users=\"{reached}\"")),
                "funnel step {k}: {reached} users"
            );
        }
        // Without steps, a funnel is suggested at once.
        assert!(
            browser
                .dom(&format!("{u}/funnels"))
                .contains("id=\"suggested\"")
        );

        // Retention by day: each cohort is the users whose first Home was that day.
        let day = |ms: i64| {
            tracelink_core::wire_time::format_time(
                std::time::UNIX_EPOCH + Duration::from_millis(ms as u64),
            )[..10]
                .to_owned()
        };
        let retention = browser.dom(&format!("{u}/retention?start=Home&return=Home"));
        let mut cohorts: HashMap<String, usize> = HashMap::new();
        for v in by_user.values() {
            if let Some(first) = v.iter().find(|v| v.name == "Home") {
                *cohorts.entry(day(first.ts_ms)).or_default() += 1;
            }
        }
        assert!(cohorts.len() >= 3);
        for (d, n) in &cohorts {
            assert!(
                retention.contains(&format!("data-period=\"{d}\" data-users=\"{n}\"")),
                "cohort {d}: {n} users"
            );
        }

        // User flows from Home: every session starts there; what came next.
        let flows = browser.dom(&format!("{u}/flows?start=Home&steps=3"));
        assert!(flows.contains(&format!(
            "<span id=\"flow-sessions\">{}</span>",
            sessions.len()
        )));
        let mut next: HashMap<&str, usize> = HashMap::new();
        for s in &sessions {
            let mine: Vec<_> = visits.iter().filter(|v| v.session == *s).collect();
            let after = mine.get(1).map_or("(session end)", |v| v.name);
            *next.entry(after).or_default() += 1;
        }
        for (to, n) in &next {
            assert!(
                flows.contains(&format!(
                    "data-step=\"1\" data-from=\"Home\" data-to=\"{to}\" data-sessions=\"{n}\""
                )),
                "Home → {to}: {n}"
            );
        }
        assert!(flows.contains("<g class=\"node\""));

        let buyers = by_user
            .values()
            .filter(|v| v.iter().any(|v| v.name == "order placed"))
            .count();
        let cohorts_page = browser.dom(&format!("{u}/cohorts"));
        assert!(cohorts_page.contains(&format!("data-cohort=\"1\" data-users=\"{buyers}\"")));
        assert!(
            browser
                .dom(&format!("{u}/users?cohort=1"))
                .contains(&format!("<span id=\"unique-users\">{buyers}</span>"))
        );

        let carts = visits.iter().filter(|v| v.cart.is_some()).count();
        let metrics = browser.dom(&format!("{u}/metrics?name=cart+items&split=plan&hours=168"));
        assert!(metrics.contains(&format!("<span id=\"metric-items\">{carts}</span>")));
        assert!(metrics.contains("data-series=\"free\""));

        for (path, name) in [
            ("/users?split=browser", "usage-users"),
            ("/sessions", "usage-sessions"),
            (&format!("/sessions/{one}"), "usage-session"),
            ("/events", "usage-events"),
            (
                "/funnels?step1=Home&step2=add+to+cart&step3=order+placed&within=24&drop=2",
                "usage-funnels",
            ),
            ("/retention", "usage-retention"),
            ("/flows", "usage-flows"),
            ("/cohorts", "usage-cohorts"),
            ("/metrics?name=cart+items&split=plan&hours=168", "metrics"),
        ] {
            browser.screenshot(&format!("{u}{path}"), name);
        }
    })
    .await;
    demo.collector.shutdown().await;
}

/// The usage pages with nothing stored, then with HTML and script in names, properties and
/// user and session ids: shown as text, never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_pages_empty_and_hostile_in_a_real_browser() {
    let Some(browser) = Browser::or_skip() else {
        return;
    };
    let c = collector("usage-hostile").await;
    let u = c.url();
    let pages = [
        "/users?split=plan",
        "/sessions",
        "/events",
        "/funnels",
        "/retention",
        "/flows",
        "/cohorts",
        "/metrics?split=plan",
    ];
    let empty = u.clone();
    blocking(move || {
        assert!(
            browser
                .dom(&format!("{empty}/users"))
                .contains("<span id=\"unique-users\">0</span>")
        );
        for p in pages {
            assert!(
                browser.dom(&format!("{empty}{p}")).contains("</html>"),
                "{p}"
            );
        }
    })
    .await;
    let evil = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";
    let time = tracelink_core::wire_time::format_time(std::time::SystemTime::now());
    let tags =
        serde_json::json!({"ai.user.id": evil, "ai.session.id": evil, "ai.device.browser": evil});
    let lines: Vec<String> = [
        serde_json::json!({"name": "x", "time": time, "tags": tags, "data": {"baseType": "PageviewData",
            "baseData": {"ver": 2, "id": "1", "name": evil, "url": "http://x/", "properties": {"plan": evil}}}}),
        serde_json::json!({"name": "x", "time": time, "tags": tags, "data": {"baseType": "EventData",
            "baseData": {"ver": 2, "name": evil, "properties": {"plan": evil}}}}),
        serde_json::json!({"name": "x", "time": time, "tags": tags, "data": {"baseType": "MetricData",
            "baseData": {"ver": 2, "metrics": [{"name": evil, "value": 1}], "properties": {"plan": evil}}}}),
    ]
    .iter()
    .map(|v| v.to_string())
    .collect();
    post(&c, lines).await;
    let e = "%3Cscript%3Edocument.title%3D'pwned'%3C%2Fscript%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E";
    blocking(move || {
        let mut all: Vec<String> = pages.iter().map(|p| format!("{u}{p}")).collect();
        all.extend([
            format!("{u}/users?split=browser"),
            format!("{u}/sessions/{e}"),
            format!("{u}/funnels?step1={e}&step2={e}&drop=2"),
            format!("{u}/flows?start={e}"),
            format!("{u}/retention?start={e}"),
        ]);
        for page in &all {
            let d = browser.dom(page);
            assert!(
                !d.contains("<script>document"),
                "{page}: a script element from telemetry"
            );
            assert!(
                !d.contains("<img src=\"x\""),
                "{page}: an img element from telemetry"
            );
            assert!(!d.contains("pwned</title>"), "{page}: the script ran");
        }
        assert!(
            browser
                .dom(&format!("{u}/sessions/{e}"))
                .contains("&lt;script&gt;document.title")
        );
    })
    .await;
}

/// A trace envelope of `message` at `level`, in role `svc`.
fn trace(message: &str, level: tracelink_core::model::SeverityLevel) -> String {
    let op = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
    let mut item = op.to_item(tracelink_core::model::Trace::new(message, level));
    item.tags.insert(tags::CLOUD_ROLE, "svc");
    tracelink_core::envelope::to_json(&item, "")
}

/// Search and logs: result counts, marks, a hostile item shown as text, and the logs table
/// taking in what arrives while it is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_logs_in_a_real_browser() {
    use tracelink_core::model::SeverityLevel::{Error, Information, Warning};
    let Some(browser) = Browser::or_skip() else {
        return;
    };
    let c = collector("search").await;
    let evil = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";
    let mut lines: Vec<String> = (0..30)
        .map(|i| request(&format!("GET /orders/{i}")))
        .collect();
    lines.extend((0..12).map(|i| request(&format!("GET /basket/{i}"))));
    lines.extend((0..20).map(|i| {
        let level = [Information, Warning, Error, Information][i % 4];
        trace(&format!("order {i} shipped"), level)
    }));
    let op = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
    let mut hostile = op.to_item(Request::new(evil, "500", Duration::from_millis(3)));
    hostile
        .tags
        .insert(tags::USER_ID, "\"><svg onload=alert(2)>");
    hostile.properties.insert("note".into(), evil.into());
    lines.push(tracelink_core::envelope::to_json(&hostile, ""));
    post(&c, lines).await;
    let u = c.url();
    let seqs: serde_json::Value = serde_json::from_str(
        &reqwest::get(format!("{u}/api/search?type=trace,exception&limit=500"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    // The fifth-oldest log line: a live tail from there starts with the next five.
    let fifth = seqs["items"][15]["seq"].as_i64().unwrap();
    let u2 = u.clone();
    blocking(move || {
        let u = u2;
        let orders = browser.dom(&format!("{u}/search?q=orders"));
        assert_eq!(count(&orders, "<tr class=\"result"), 30, "{orders}");
        assert_eq!(count(&orders, "<mark>orders</mark>"), 30);
        assert!(orders.contains("<span id=\"count\">30</span>"));
        let warnings = browser.dom(&format!("{u}/search?type=trace&severity=Warning"));
        assert_eq!(count(&warnings, "<tr class=\"result"), 10);
        let paged = browser.dom(&format!("{u}/search?limit=20"));
        assert_eq!(count(&paged, "<tr class=\"result"), 20);
        assert!(paged.contains("id=\"older\""));
        let none = browser.dom(&format!("{u}/search?q=nowhere"));
        assert_eq!(count(&none, "<tr class=\"result"), 0);
        assert!(none.contains("id=\"no-results\""));

        let found = browser.dom(&format!("{u}/search?q=script"));
        assert_eq!(count(&found, "<tr class=\"result"), 1);
        assert!(
            !found.contains("<script>document"),
            "a script element from telemetry"
        );
        assert!(
            !found.contains("<img src=\"x\""),
            "an img element from telemetry"
        );
        assert!(!found.contains("<svg onload"));
        assert!(!found.contains("pwned</title>"), "the script ran");
        assert!(
            found.contains("&lt;<mark>script</mark>&gt;document.title"),
            "shown as text, marked"
        );
        browser.screenshot(&format!("{u}/search?q=orders"), "search");

        let logs = browser.dom(&format!("{u}/logs"));
        assert_eq!(count(&logs, "<tr class=\"log"), 20);
        assert!(logs.contains("data-live=\"true\""));
        let errors = browser.dom(&format!("{u}/logs?severity=Error"));
        assert_eq!(count(&errors, "<tr class=\"log"), 5);
        browser.screenshot(&format!("{u}/logs"), "logs");
    })
    .await;

    // The table takes in what arrives: a tail from the fifth line shows the five after it at
    // load, then the rest and a hostile line, fetched by the page's script.
    post(
        &c,
        vec![trace("<script>document.title='pwned'</script>", Error)],
    )
    .await;
    blocking(move || {
        let tail = browser.run(&[
            "--virtual-time-budget=8000",
            "--dump-dom",
            &format!("{u}/logs?after={fifth}&limit=5"),
        ]);
        assert!(tail.contains("</html>"), "{tail}");
        assert_eq!(count(&tail, "<tr class=\"log"), 16, "{tail}");
        assert!(!tail.contains("<script>document"));
        assert!(!tail.contains("pwned</title>"));
        assert!(
            tail.contains("&lt;script&gt;document.title"),
            "shown as text"
        );
    })
    .await;
}

/// Search and logs with nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_logs_empty_in_a_real_browser() {
    let Some(browser) = Browser::or_skip() else {
        return;
    };
    let c = collector("search-empty").await;
    let u = c.url();
    blocking(move || {
        let search = browser.dom(&format!("{u}/search?q=anything"));
        assert!(search.contains("<span id=\"count\">0</span>"));
        assert!(search.contains("id=\"no-results\""));
        let logs = browser.dom(&format!("{u}/logs"));
        assert_eq!(count(&logs, "<tr class=\"log"), 0);
        assert!(logs.contains("id=\"no-logs\""));
    })
    .await;
}
