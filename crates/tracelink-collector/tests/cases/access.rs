//! Who may send and read: bound beyond loopback (0.0.0.0, reached over 127.0.0.1), every path
//! needs its credential.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_pages_api_and_ingestion_need_credentials() {
    let c = Collector::start(
        Config::new(db("access"))
            .listen("0.0.0.0:0".parse().unwrap())
            .instrumentation_key("0000abcd-1111-2222-3333-444444444444"),
    )
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{}", c.addr().port());
    let token = c.login_token().unwrap().to_owned();
    let key = c.otlp_api_key().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    assert_ne!(token, key);
    assert!(c.login_url().ends_with(&format!("/login?t={token}")));
    assert!(
        c.connection_string()
            .starts_with("InstrumentationKey=0000abcd-1111-2222-3333-444444444444;")
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, cookie: Option<&str>| {
        let mut r = client.get(format!("{base}{path}"));
        if let Some(cookie) = cookie {
            r = r.header("cookie", cookie);
        }
        r.send()
    };

    // Pages and API: 401 with no detail (a page shows the login form), without the token or
    // with a wrong one.
    for path in ["/", "/api/operations", "/api/items", "/map", "/api/stats"] {
        let r = get(path, None).await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let text = r.text().await.unwrap();
        if path.starts_with("/api/") {
            assert!(text.is_empty(), "{path}");
        } else {
            assert!(
                text.contains("action=\"/login\"") && !text.contains("operation"),
                "{path}"
            );
        }
        let r = get(path, Some("tracelink_token=wrong")).await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    assert_eq!(get("/health", None).await.unwrap().status(), 200);
    assert_eq!(get("/login?t=wrong", None).await.unwrap().status(), 401);
    // The login URL sets the cookie; with it everything answers.
    let login = get(&format!("/login?t={token}"), None).await.unwrap();
    assert_eq!(login.status(), 303);
    let set = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    for path in ["/", "/api/operations", "/api/items", "/map", "/api/stats"] {
        assert_eq!(
            get(path, Some(&cookie)).await.unwrap().status(),
            200,
            "{path}"
        );
    }
    let bearer = client
        .get(format!("{base}/api/operations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);

    // OTLP: the API key header.
    let traces = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/otlp/otel-js-2.12.1-traces.json"
    ))
    .unwrap();
    let otlp = |k: Option<&str>| {
        let mut r = client
            .post(format!("{base}/v1/traces"))
            .header("content-type", "application/json")
            .body(traces.clone());
        if let Some(k) = k {
            r = r.header(tracelink_collector::OTLP_API_KEY_HEADER, k);
        }
        r.send()
    };
    assert_eq!(otlp(None).await.unwrap().status(), 401);
    assert_eq!(otlp(Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(otlp(Some(&key)).await.unwrap().status(), 200);

    // Breeze: only the configured instrumentation key.
    let line = CAPTURES[0].lines().next().unwrap();
    let breeze = |ikey: &str| {
        client
            .post(format!("{base}/v2.1/track"))
            .body(line.replace("00000000-1111-2222-3333-444444444444", ikey))
            .send()
    };
    let refused = breeze("00000000-1111-2222-3333-444444444444")
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().is_empty());
    assert_eq!(
        breeze("0000ABCD-1111-2222-3333-444444444444")
            .await
            .unwrap()
            .status(),
        200
    );
    // Stored: the 7 span items and the one accepted envelope; refusals counted.
    assert_eq!(c.stats().items_accepted, 8);
    assert_eq!(c.stats().requests_refused, 14);
    c.shutdown().await;
}

/// Bound to loopback the collector is open, as a development tool on one machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_everything_is_open() {
    let c = start("open").await;
    assert!(c.login_token().is_none() && c.otlp_api_key().is_none());
    assert!(c.instrumentation_keys().is_empty());
    assert_eq!(c.login_url(), c.url());
    let r = reqwest::get(format!("{}/api/operations", c.url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
