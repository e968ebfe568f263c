//! The usage tools (users, sessions, events, funnels, retention, user flows, cohorts) and
//! the metrics page: their numbers against answers computed here in plain Rust from the
//! generated activity, an empty collector, and hostile content.

use std::collections::{HashMap, HashSet};

use super::*;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One generated page view, event or request.
#[derive(Clone, Debug)]
struct Act {
    user: String,
    session: String,
    ts: i64,
    kind: &'static str,
    name: String,
}

/// A small seeded generator (an LCG: the test's own, not the collector's).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const NAMES: [(&str, &str); 6] = [
    ("pageView", "Home"),
    ("pageView", "Item"),
    ("customEvent", "add"),
    ("customEvent", "buy"),
    ("request", "GET /api"),
    ("pageView", "Help"),
];

/// 40 users, 1 to 4 sessions each on the last five days, 1 to 10 items per session in a
/// partly random order and at random gaps (seconds to hours): every timestamp distinct.
fn dataset(now: i64) -> Vec<Act> {
    let mut rng = Lcg(42);
    let mut out = Vec::new();
    let mut unique = 0;
    for u in 0..40 {
        let user = format!("user-{u}");
        for s in 0..1 + rng.below(4) {
            let session = format!("s-{u}-{s}");
            let mut ts = now - (1 + rng.below(5) as i64) * DAY + rng.below(12 * HOUR as u64) as i64;
            // Half the time the next step of the journey Home, Item, add, buy; else any.
            let mut journey = 0;
            for _ in 0..1 + rng.below(10) {
                let (kind, name) = if rng.below(2) == 0 {
                    journey = (journey + 1) % 4;
                    NAMES[(journey + 3) % 4]
                } else {
                    NAMES[rng.below(NAMES.len() as u64) as usize]
                };
                unique += 1;
                out.push(Act {
                    user: user.clone(),
                    session: session.clone(),
                    ts: ts + unique,
                    kind,
                    name: name.into(),
                });
                let long = rng.below(3) == 0;
                ts += 1000 + rng.below(if long { 2 * HOUR as u64 } else { 600_000 }) as i64;
            }
        }
    }
    out.sort_by_key(|a| a.ts);
    out
}

fn envelope(a: &Act, props: &serde_json::Value) -> String {
    let time = tracelink_core::wire_time::format_time(
        std::time::UNIX_EPOCH + Duration::from_millis(a.ts as u64),
    );
    let tags = serde_json::json!({"ai.user.id": a.user, "ai.session.id": a.session,
        "ai.operation.id": format!("{:032x}", a.ts), "ai.cloud.role": "shop"});
    let data = match a.kind {
        "pageView" => serde_json::json!({"baseType": "PageviewData", "baseData": {"ver": 2,
            "id": format!("{:032x}", a.ts), "name": a.name, "url": "http://shop/",
            "properties": props}}),
        "customEvent" => serde_json::json!({"baseType": "EventData", "baseData": {"ver": 2,
            "name": a.name, "properties": props}}),
        _ => serde_json::json!({"baseType": "RequestData", "baseData": {"ver": 2,
            "id": format!("{:016x}", a.ts), "name": a.name, "duration": "00:00:00.010",
            "responseCode": "200", "success": true, "properties": props}}),
    };
    serde_json::json!({"name": "x", "time": time, "tags": tags, "data": data}).to_string()
}

async fn post_acts(c: &Collector, acts: &[Act]) {
    for chunk in acts.chunks(500) {
        let body: Vec<String> = chunk
            .iter()
            .map(|a| envelope(a, &serde_json::json!({})))
            .collect();
        let (status, b) = post(c, "/v2/track", body.join("\n").into_bytes(), &[]).await;
        assert_eq!(status, 200, "{b}");
    }
}

async fn get_json(c: &Collector, path: &str) -> serde_json::Value {
    let r = reqwest::get(format!("{}{path}", c.url())).await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

async fn get_html(c: &Collector, path: &str) -> String {
    let r = reqwest::get(format!("{}{path}", c.url())).await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

fn by_user(acts: &[Act]) -> HashMap<&str, Vec<&Act>> {
    let mut m: HashMap<&str, Vec<&Act>> = HashMap::new();
    for a in acts {
        m.entry(&a.user).or_default().push(a);
    }
    m
}

/// Whether `acts` hold `steps` in order, the last within `window` of the first: every
/// choice tried.
fn does_in_order(
    acts: &[&Act],
    steps: &[&str],
    window: i64,
    first: Option<i64>,
    from: usize,
) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        return true;
    };
    (from..acts.len()).any(|i| {
        let a = acts[i];
        a.name == *step
            && first.is_none_or(|f| a.ts - f <= window)
            && does_in_order(acts, rest, window, Some(first.unwrap_or(a.ts)), i + 1)
    })
}

fn funnel_expected(acts: &[Act], steps: &[&str], window: i64) -> Vec<u64> {
    let users = by_user(acts);
    (1..=steps.len())
        .map(|k| {
            users
                .values()
                .filter(|a| does_in_order(a, &steps[..k], window, None, 0))
                .count() as u64
        })
        .collect()
}

fn retention_expected(acts: &[Act], start: &str, back: &str, today: i64) -> Vec<(u64, Vec<u64>)> {
    let mut first: HashMap<&str, i64> = HashMap::new();
    for a in acts.iter().filter(|a| a.name == start) {
        let d = a.ts.div_euclid(DAY);
        let e = first.entry(&a.user).or_insert(d);
        *e = (*e).min(d);
    }
    let mut days: Vec<i64> = first
        .values()
        .copied()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    days.sort();
    days.iter()
        .map(|d| {
            let users: Vec<&str> = first
                .iter()
                .filter(|(_, f)| *f == d)
                .map(|(u, _)| *u)
                .collect();
            let returned = (1..=today - d)
                .map(|k| {
                    users
                        .iter()
                        .filter(|u| {
                            acts.iter().any(|a| {
                                a.user == **u && a.name == back && a.ts.div_euclid(DAY) == d + k
                            })
                        })
                        .count() as u64
                })
                .collect();
            (users.len() as u64, returned)
        })
        .collect()
}

/// (step, from, to) → sessions, with `(session end)` after a session's last item.
fn flows_expected(acts: &[Act], start: &str, depth: usize) -> HashMap<(u64, String, String), u64> {
    let mut sessions: HashMap<&str, Vec<&Act>> = HashMap::new();
    for a in acts {
        sessions.entry(&a.session).or_default().push(a);
    }
    let mut edges = HashMap::new();
    for s in sessions.values() {
        let Some(i) = s.iter().position(|a| a.name == start) else {
            continue;
        };
        let mut path: Vec<String> = s[i..]
            .iter()
            .take(depth + 1)
            .map(|a| a.name.clone())
            .collect();
        if path.len() <= depth {
            path.push("(session end)".into());
        }
        for (k, w) in path.windows(2).enumerate() {
            *edges
                .entry((k as u64, w[0].clone(), w[1].clone()))
                .or_default() += 1;
        }
    }
    edges
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_numbers_match_an_independent_count() {
    let c = start("usage").await;
    let now = now_ms();
    let acts = dataset(now);
    post_acts(&c, &acts).await;

    // Users and events.
    let users: HashSet<&str> = acts.iter().map(|a| a.user.as_str()).collect();
    let sessions: HashSet<&str> = acts.iter().map(|a| a.session.as_str()).collect();
    let u = get_json(&c, "/api/usage/users").await;
    assert_eq!(u["users"], users.len());
    assert_eq!(u["sessions"], sessions.len());
    assert_eq!(u["items"], acts.len());
    // Users per day: the chart's days are the last 7, ending today.
    let labels = u["chart"]["labels"].as_array().unwrap();
    let values = u["chart"]["series"][0]["values"].as_array().unwrap();
    for (label, v) in labels.iter().zip(values) {
        let day = acts
            .iter()
            .filter(|a| {
                tracelink_core::wire_time::format_time(
                    std::time::UNIX_EPOCH + Duration::from_millis(a.ts as u64),
                )
                .starts_with(label.as_str().unwrap())
            })
            .map(|a| a.user.as_str())
            .collect::<HashSet<_>>()
            .len();
        assert_eq!(v.as_f64().unwrap() as usize, day, "{label}");
    }
    let home_users = acts
        .iter()
        .filter(|a| a.name == "Home")
        .map(|a| &a.user)
        .collect::<HashSet<_>>()
        .len();
    let top = u["top"].as_array().unwrap();
    let home = top.iter().find(|t| t["name"] == "Home").unwrap();
    assert_eq!(home["users"], home_users);
    let e = get_json(&c, "/api/usage/events?type=customEvent").await;
    let events = acts.iter().filter(|a| a.kind == "customEvent").count();
    assert_eq!(e["count"], events);
    let buys = acts.iter().filter(|a| a.name == "buy").count();
    let buy = e["top"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "buy")
        .unwrap();
    assert_eq!(buy["count"], buys);

    // Funnels: 1 hour and 1 day windows.
    for (within, window) in [("1", HOUR), ("24", DAY)] {
        let steps = ["Home", "Item", "add", "buy"];
        let f = get_json(
            &c,
            &format!("/api/usage/funnel?step1=Home&step2=Item&step3=add&step4=buy&within={within}"),
        )
        .await;
        let got: Vec<u64> = f["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["users"].as_u64().unwrap())
            .collect();
        let want = funnel_expected(&acts, &steps, window);
        assert_eq!(got, want, "within {within} hours");
        assert!(
            want[0] > want[3] && want[3] > 0,
            "a funnel that narrows: {want:?}"
        );
        // The drill-down names the users who did "Item" after "Home" but not "add" then.
        let d = get_json(
            &c,
            &format!(
                "/api/usage/funnel?step1=Home&step2=Item&step3=add&step4=buy&within={within}&drop=3"
            ),
        )
        .await;
        let dropped: HashSet<String> = d["dropped_users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u[0].as_str().unwrap().to_owned())
            .collect();
        let expected: HashSet<String> = by_user(&acts)
            .into_iter()
            .filter(|(_, a)| {
                does_in_order(a, &steps[..2], window, None, 0)
                    && !does_in_order(a, &steps[..3], window, None, 0)
            })
            .map(|(u, _)| u.to_owned())
            .collect();
        assert_eq!(dropped, expected);
        assert_eq!(d["steps"][2]["dropped"], expected.len());
    }

    // Retention by day: did Home, came back to buy.
    let r = get_json(&c, "/api/usage/retention?start=Home&return=buy").await;
    let want = retention_expected(&acts, "Home", "buy", now.div_euclid(DAY));
    let got: Vec<(u64, Vec<u64>)> = r["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["users"].as_u64().unwrap(),
                c["returned"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(want.iter().any(|(_, r)| r.iter().any(|n| *n > 0)));

    // User flows from Home, three steps.
    let f = get_json(&c, "/api/usage/flows?start=Home&steps=3").await;
    let got: HashMap<(u64, String, String), u64> = f["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                (
                    e["step"].as_u64().unwrap(),
                    e["from"].as_str().unwrap().to_owned(),
                    e["to"].as_str().unwrap().to_owned(),
                ),
                e["sessions"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = flows_expected(&acts, "Home", 3);
    assert_eq!(got, want);
    assert!(want.keys().any(|(_, _, to)| to == "(session end)"));

    // The pages show the same numbers.
    let page = get_html(
        &c,
        "/funnels?step1=Home&step2=Item&step3=add&step4=buy&within=1",
    )
    .await;
    let want = funnel_expected(&acts, &["Home", "Item", "add", "buy"], HOUR);
    for (i, n) in want.iter().enumerate() {
        assert!(
            page.contains(&format!("data-step=\"{}\" data-users=\"{n}\"", i + 1)),
            "step {} has {n} users",
            i + 1
        );
    }
    let page = get_html(&c, "/users").await;
    assert!(page.contains(&format!("<span id=\"unique-users\">{}</span>", users.len())));
    for path in [
        "/sessions",
        "/events",
        "/retention",
        "/flows",
        "/cohorts",
        "/metrics",
    ] {
        get_html(&c, path).await;
    }
    let session = &acts[0].session;
    let page = get_html(&c, &format!("/sessions/{session}")).await;
    let n = acts.iter().filter(|a| &a.session == session).count();
    assert!(page.contains(&format!("<span id=\"session-items\">{n}</span>")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohorts_are_saved_and_filter_every_tool() {
    let c = start("cohorts").await;
    let now = now_ms();
    let acts = dataset(now);
    post_acts(&c, &acts).await;
    // Users who bought in the last 2 days.
    let buyers: HashSet<&str> = acts
        .iter()
        .filter(|a| a.name == "buy" && a.ts >= now - 2 * DAY)
        .map(|a| a.user.as_str())
        .collect();
    assert!(!buyers.is_empty() && buyers.len() < 40);
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/cohorts", c.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=recent+buyers&event=buy&days=2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // Another site's page may not save one.
    let r = reqwest::Client::new()
        .post(format!("{}/cohorts", c.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "http://elsewhere.example")
        .body("name=evil&days=2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let list = get_json(&c, "/api/usage/cohorts").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let id = list[0]["id"].as_i64().unwrap();
    assert_eq!(list[0]["users"], buyers.len());

    let mine: Vec<Act> = acts
        .iter()
        .filter(|a| buyers.contains(a.user.as_str()))
        .cloned()
        .collect();
    let u = get_json(&c, &format!("/api/usage/users?cohort={id}")).await;
    assert_eq!(u["users"], buyers.len());
    assert_eq!(u["items"], mine.len());
    let f = get_json(
        &c,
        &format!("/api/usage/funnel?cohort={id}&step1=Home&step2=add&step3=buy&within=24"),
    )
    .await;
    let got: Vec<u64> = f["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["users"].as_u64().unwrap())
        .collect();
    assert_eq!(got, funnel_expected(&mine, &["Home", "add", "buy"], DAY));
    let page = get_html(&c, &format!("/users?cohort={id}")).await;
    assert!(page.contains(&format!(
        "<span id=\"unique-users\">{}</span>",
        buyers.len()
    )));
    assert!(page.contains(&format!(
        "<option value=\"{id}\" selected>recent buyers</option>"
    )));
    // An unknown cohort: 404.
    let r = reqwest::get(format!("{}/users?cohort=999", c.url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Deleted, it is gone.
    let r = reqwest::Client::new()
        .post(format!("{}/cohorts/{id}/delete", c.url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success() || r.status().is_redirection());
    assert!(
        get_json(&c, "/api/usage/cohorts")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
}

const PAGES: [&str; 10] = [
    "/users",
    "/users?split=browser",
    "/sessions",
    "/events",
    "/funnels",
    "/retention?period=week",
    "/flows",
    "/cohorts",
    "/metrics",
    "/sessions/none",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_pages_answer_with_no_items() {
    let c = start("usage-empty").await;
    for path in PAGES {
        let page = get_html(&c, path).await;
        assert!(page.contains("</html>"), "{path}");
    }
    assert!(
        get_html(&c, "/users")
            .await
            .contains("<span id=\"unique-users\">0</span>")
    );
    for path in [
        "/api/usage/users",
        "/api/usage/sessions",
        "/api/usage/events",
        "/api/usage/funnel?step1=a&step2=b",
        "/api/usage/retention",
        "/api/usage/flows",
        "/api/usage/cohorts",
        "/api/metrics",
    ] {
        get_json(&c, path).await;
    }
    let f = get_json(&c, "/api/usage/funnel?step1=a&step2=b").await;
    assert_eq!(f["steps"][1]["users"], 0);
    // Bad parameters: 400.
    for path in [
        "/users?days=x",
        "/funnels?within=-1",
        "/flows?steps=99",
        "/metrics?stat=median",
    ] {
        let r = reqwest::get(format!("{}{path}", c.url())).await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_content_is_escaped_on_every_usage_page() {
    let c = start("usage-hostile").await;
    let evil = "<script>alert(1)</script>";
    let now = now_ms();
    let props = serde_json::json!({"plan": evil, "<script>k</script>": evil});
    let mut lines = Vec::new();
    for (i, name) in [evil, "Home", evil, "\"><img src=x onerror=alert(2)>"]
        .iter()
        .enumerate()
    {
        for kind in ["pageView", "customEvent"] {
            let a = Act {
                user: evil.into(),
                session: evil.into(),
                ts: now - HOUR + i as i64 * 1000 + i64::from(kind == "customEvent"),
                kind,
                name: (*name).into(),
            };
            lines.push(envelope(&a, &props));
        }
    }
    // A metric with a hostile name and dimension.
    let metric = serde_json::json!({"name": "x", "time": tracelink_core::wire_time::format_time(std::time::SystemTime::now()),
        "tags": {"ai.user.id": evil},
        "data": {"baseType": "MetricData", "baseData": {"ver": 2, "metrics": [{"name": evil, "value": 3}],
        "properties": {"plan": evil}}}});
    lines.push(metric.to_string());
    let (status, b) = post(&c, "/v2/track", lines.join("\n").into_bytes(), &[]).await;
    assert_eq!(status, 200, "{b}");
    let r = reqwest::Client::new()
        .post(format!("{}/cohorts", c.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=%3Cscript%3Ealert(3)%3C%2Fscript%3E&event=%3Cscript%3Ealert(1)%3C%2Fscript%3E&days=2")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let e = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let mut pages: Vec<String> = PAGES.iter().map(|p| (*p).to_owned()).collect();
    pages.extend([
        "/users?split=plan".to_owned(),
        format!("/users?split={e}"),
        format!("/funnels?step1={e}&step2=Home&drop=2"),
        format!("/funnels?step1=Home&step2={e}&drop=2"),
        format!("/retention?start={e}&return={e}"),
        format!("/flows?start={e}"),
        format!("/sessions/{e}"),
        format!("/sessions?user={e}"),
        format!("/metrics?name={e}&split=plan"),
        "/users?cohort=1".into(),
    ]);
    for path in &pages {
        let page = get_html(&c, path).await;
        assert!(
            !page.contains("<script>"),
            "{path}: a script element from telemetry"
        );
        assert!(
            !page.contains("<img src=x"),
            "{path}: an element from telemetry"
        );
    }
    assert!(
        get_html(&c, &format!("/sessions/{e}"))
            .await
            .contains("&lt;script&gt;alert(1)")
    );
    assert!(
        get_html(&c, "/users?split=plan")
            .await
            .contains("&lt;script&gt;alert(1)")
    );
    assert!(
        get_html(&c, &format!("/metrics?name={e}&split=plan"))
            .await
            .contains("&lt;script&gt;alert(1)")
    );
}

/// First paint of the usage pages with 1,000,000 items (written straight into the database):
/// `cargo test --release -p tracelink-collector --all-features --test collector usage_pages_with_a_million_items -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run alone, in release"]
async fn usage_pages_with_a_million_items() {
    let path = db("usage-million");
    // The schema, then a million rows as a busy site sends them: a quarter of the items are
    // page views and events of 20,000 users, the rest server requests, dependencies and
    // traces without a user.
    tracelink_collector::Store::open(&path, Retention::default()).unwrap();
    {
        let mut conn = sql(&path);
        let tx = conn.transaction().unwrap();
        let now = now_ms();
        let mut stmt = tx
            .prepare(
                "INSERT INTO items (timestamp, ts_ms, item_type, name, user_id, session_id, cloud_role, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .unwrap();
        let mut rng = Lcg(7);
        for i in 0..1_000_000i64 {
            let ts = now - 7 * DAY + i * (7 * DAY / 1_000_000);
            let time = tracelink_core::wire_time::format_time(
                std::time::UNIX_EPOCH + Duration::from_millis(ts as u64),
            );
            let (kind, name, user) = if i % 4 == 0 {
                let (k, n) = NAMES[rng.below(4) as usize];
                (k, n, Some(format!("user-{}", rng.below(20_000))))
            } else {
                (
                    ["request", "dependency", "trace"][(i % 3) as usize],
                    "GET /x",
                    None,
                )
            };
            let session = user.as_ref().map(|u| format!("{u}-{}", ts / (2 * HOUR)));
            let raw = "{\"tags\":{\"ai.device.browser\":\"Chrome\"},\"data\":{\"baseData\":{\"properties\":{\"plan\":\"free\"}}}}";
            stmt.execute(rusqlite::params![
                time, ts, kind, name, user, session, "web", raw
            ])
            .unwrap();
        }
        drop(stmt);
        tx.commit().unwrap();
    }
    let c = Collector::start(Config::new(&path).listen("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    for page in [
        "/users",
        "/users?split=browser",
        "/sessions",
        "/events",
        "/funnels",
        "/funnels?step1=Home&step2=Item&step3=add",
        "/retention",
        "/flows",
        "/cohorts",
        "/metrics",
    ] {
        let mut times = Vec::new();
        for _ in 0..3 {
            let start = std::time::Instant::now();
            get_html(&c, page).await;
            times.push(start.elapsed());
        }
        times.sort();
        println!("{page}: {:?} (median of 3)", times[1]);
    }
}
