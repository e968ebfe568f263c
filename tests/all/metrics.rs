//! Metrics through the whole setup, to an ingestion stub on 127.0.0.1: the standard metrics
//! count every request while sampling keeps a tenth, custom metrics arrive pre-aggregated,
//! the performance counters come every interval; every envelope validates against the
//! Breeze schema; and the names are the ones the Node SDK sends (its capture).

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use serde_json::Value;
use tower::ServiceExt;
use tracelink::core::metrics::{dimension, extractor, metric_id, metric_name};
use tracelink::export::{BatchLimits, Sampling};
use tracelink_tests::breeze::Schema;

/// The ingestion stub: every envelope posted, decompressed and parsed.
#[derive(Clone, Default)]
struct Ingestion {
    envelopes: Arc<Mutex<Vec<Value>>>,
}

impl Ingestion {
    async fn start(&self) -> SocketAddr {
        let envelopes = self.envelopes.clone();
        let app = Router::new().route(
            "/v2.1/track",
            post(move |body: Bytes| {
                let envelopes = envelopes.clone();
                async move {
                    let mut text = String::new();
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_string(&mut text)
                        .unwrap();
                    let mut e = envelopes.lock().unwrap();
                    for line in text.lines() {
                        e.push(serde_json::from_str(line).unwrap());
                    }
                    "{}"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    fn all(&self) -> Vec<Value> {
        self.envelopes.lock().unwrap().clone()
    }

    fn of(&self, base_type: &str) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|e| e["data"]["baseType"] == base_type)
            .collect()
    }

    /// Metric envelopes named `name`.
    fn metrics(&self, name: &str) -> Vec<Value> {
        self.of("MetricData")
            .into_iter()
            .filter(|e| e["data"]["baseData"]["metrics"][0]["name"] == name)
            .collect()
    }
}

fn setup(addr: SocketAddr) -> tracelink::Builder {
    tracelink::Builder::from_vars([
        (
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            format!(
                "InstrumentationKey=00000000-1111-2222-3333-444444444444;IngestionEndpoint=http://{addr}"
            ),
        ),
        ("OTEL_SERVICE_NAME", "metrics-test".into()),
        ("HOSTNAME", "metrics-host".into()),
    ])
    .exporter(|e| {
        e.no_spool().batch_limits(BatchLimits {
            max_delay: Duration::from_millis(20),
            ..BatchLimits::default()
        })
    })
}

fn point(e: &Value) -> &Value {
    &e["data"]["baseData"]["metrics"][0]
}

fn prop<'a>(e: &'a Value, key: &str) -> &'a str {
    e["data"]["baseData"]["properties"][key]
        .as_str()
        .unwrap_or_default()
}

fn count(envelopes: &[Value]) -> u64 {
    envelopes
        .iter()
        .map(|e| point(e)["count"].as_u64().unwrap())
        .sum()
}

fn assert_valid(envelopes: &[Value]) {
    let schema = Schema::breeze();
    for e in envelopes {
        let errors = schema.validate_envelope(e);
        assert!(errors.is_empty(), "{e}: {errors:#?}");
    }
}

async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sampling at 10 %: about 90 % of the requests and exceptions never reach ingestion, yet
/// `requests/duration` counts all 200 requests once, failures apart, and `exceptions/count`
/// all 50 exceptions; every item that does arrive is marked as counted. Ten custom metric
/// values per request arrive as one aggregate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_metrics_count_every_request_while_sampling_keeps_a_tenth() {
    let ingestion = Ingestion::default();
    let addr = ingestion.start().await;
    let tracelink = setup(addr)
        .sampling(Sampling::fixed(10.0))
        .metric_interval(Duration::from_secs(3600))
        .no_performance_counters()
        .init()
        .unwrap();
    let client = tracelink.client();
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(move |axum::extract::Path(id): axum::extract::Path<u32>| {
                let client = client.clone();
                async move {
                    for _ in 0..10 {
                        client
                            .metric("orders.lines")
                            .dimension("shop", "north")
                            .track(1.0);
                    }
                    if id % 4 == 0 {
                        client
                            .track_exception(tracelink::Exception::new("OutOfStock", "none left"));
                        return Err((http::StatusCode::INTERNAL_SERVER_ERROR, "out of stock"));
                    }
                    Ok("ok")
                }
            }),
        )
        .layer(tracelink.layer());
    for id in 0..200 {
        let req = http::Request::get(format!("/orders/{id}"))
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let _ = axum::body::to_bytes(res.into_body(), usize::MAX).await;
    }
    tracelink.flush().await;

    let requests = ingestion.metrics(metric_name::REQUESTS);
    assert!(
        requests
            .iter()
            .all(|e| prop(e, "_MS.MetricId") == metric_id::REQUESTS_DURATION)
    );
    assert_eq!(count(&requests), 200, "every request, once");
    let failed: Vec<_> = requests
        .iter()
        .filter(|e| prop(e, dimension::REQUEST_SUCCESS) == "False")
        .cloned()
        .collect();
    assert_eq!(count(&failed), 50);
    assert!(
        failed
            .iter()
            .all(|e| prop(e, dimension::REQUEST_RESULT_CODE) == "500")
    );
    for e in &requests {
        assert_eq!(prop(e, "_MS.IsAutocollected"), "True");
        assert_eq!(prop(e, dimension::CLOUD_ROLE_NAME), "metrics-test");
        assert_eq!(prop(e, dimension::CLOUD_ROLE_INSTANCE), "metrics-host");
        assert_eq!(prop(e, dimension::OPERATION_SYNTHETIC), "False");
        assert!(point(e)["min"].as_f64().unwrap() <= point(e)["max"].as_f64().unwrap());
        assert!(e.get("sampleRate").is_none(), "metrics are never sampled");
    }
    let exceptions = ingestion.metrics(metric_name::EXCEPTIONS);
    assert_eq!(count(&exceptions), 50);

    // The items themselves: a tenth or so, each marked as counted, at 10 %.
    let kept_requests = ingestion.of("RequestData");
    let kept_exceptions = ingestion.of("ExceptionData");
    let sampled_out = tracelink.standard_metrics().unwrap().sampled_out();
    assert_eq!(
        (kept_requests.len() + kept_exceptions.len()) as u64 + sampled_out,
        250
    );
    assert!(kept_requests.len() < 60, "{}", kept_requests.len());
    for e in kept_requests.iter().chain(&kept_exceptions) {
        assert_eq!(e["sampleRate"], 10.0);
    }
    for e in &kept_requests {
        assert_eq!(
            prop(e, "_MS.ProcessedByMetricExtractors"),
            extractor::REQUESTS
        );
    }
    for e in &kept_exceptions {
        assert_eq!(
            prop(e, "_MS.ProcessedByMetricExtractors"),
            extractor::EXCEPTIONS
        );
    }

    // 2000 custom values, one aggregate.
    let lines = ingestion.metrics("orders.lines");
    assert_eq!(lines.len(), 1);
    assert_eq!(point(&lines[0])["count"], 2000);
    assert_eq!(point(&lines[0])["value"], 2000.0);
    assert_eq!(prop(&lines[0], "shop"), "north");
    assert_eq!(tracelink.metric_stats().values_over_cap, 0);

    assert_valid(&ingestion.all());
    tracelink.shutdown().await;
}

/// Sampling at 0 %: no Request, Dependency or Exception item reaches ingestion, yet the
/// standard metrics count every request a real reqwest client made to a real server, every
/// call its handler made through the facade's reqwest client, and every exception, each with
/// its result code and target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_metrics_count_every_operation_at_zero_percent() {
    let ingestion = Ingestion::default();
    let addr = ingestion.start().await;
    let tracelink = setup(addr)
        .sampling(Sampling::fixed(0.0))
        .metric_interval(Duration::from_secs(3600))
        .no_performance_counters()
        .init()
        .unwrap();
    let backend = {
        let app = Router::new().route("/pong", get(|| async { "pong" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        backend
    };
    let calls = tracelink.reqwest_client(reqwest::Client::new());
    let client = tracelink.client();
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(move |axum::extract::Path(id): axum::extract::Path<u32>| {
                let (calls, client) = (calls.clone(), client.clone());
                async move {
                    let pong = calls.get(format!("http://{backend}/pong")).send().await;
                    assert_eq!(pong.unwrap().text().await.unwrap(), "pong");
                    if id % 4 == 0 {
                        client.track_exception(tracelink::Exception::new("E", "boom"));
                        return Err((http::StatusCode::INTERNAL_SERVER_ERROR, "failed"));
                    }
                    Ok("ok")
                }
            }),
        )
        .layer(tracelink.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let plain = reqwest::Client::new();
    for id in 0..40 {
        let res = plain
            .get(format!("http://{front}/orders/{id}"))
            .send()
            .await
            .unwrap();
        let _ = res.bytes().await.unwrap();
    }
    // The last count lands when the server has finished its body.
    let standard = tracelink.standard_metrics().unwrap();
    until("the last request's count", Duration::from_secs(5), || {
        standard.request_totals().count == 40
    })
    .await;
    tracelink.flush().await;

    let requests = ingestion.metrics(metric_name::REQUESTS);
    assert_eq!(count(&requests), 40, "every request, once");
    let failed: Vec<_> = requests
        .iter()
        .filter(|e| prop(e, dimension::REQUEST_RESULT_CODE) == "500")
        .cloned()
        .collect();
    assert_eq!(count(&failed), 10);
    assert!(
        failed
            .iter()
            .all(|e| prop(e, dimension::REQUEST_SUCCESS) == "False")
    );
    for e in &requests {
        assert_eq!(prop(e, "_MS.MetricId"), metric_id::REQUESTS_DURATION);
        assert_eq!(prop(e, dimension::CLOUD_ROLE_NAME), "metrics-test");
        assert_eq!(prop(e, dimension::CLOUD_ROLE_INSTANCE), "metrics-host");
    }
    let dependencies = ingestion.metrics(metric_name::DEPENDENCIES);
    assert_eq!(count(&dependencies), 40, "every call, once");
    for e in &dependencies {
        assert_eq!(prop(e, "_MS.MetricId"), metric_id::DEPENDENCIES_DURATION);
        assert_eq!(prop(e, dimension::DEPENDENCY_TARGET), backend.to_string());
        assert_eq!(prop(e, dimension::DEPENDENCY_TYPE), "Http");
        assert_eq!(prop(e, dimension::DEPENDENCY_RESULT_CODE), "200");
        assert_eq!(prop(e, dimension::DEPENDENCY_SUCCESS), "True");
    }
    assert_eq!(count(&ingestion.metrics(metric_name::EXCEPTIONS)), 10);
    for kind in ["RequestData", "RemoteDependencyData", "ExceptionData"] {
        assert!(ingestion.of(kind).is_empty(), "no {kind} at 0 %");
    }
    assert_eq!(standard.sampled_out(), 90);
    assert_valid(&ingestion.all());
    tracelink.shutdown().await;
}

/// With a short interval, the counters and the aggregates arrive on their own, every
/// interval, with the names the Node SDK uses; the custom metric's cap is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn performance_counters_and_aggregates_arrive_every_interval() {
    let ingestion = Ingestion::default();
    let addr = ingestion.start().await;
    let mut limits = tracelink::MetricLimits::default();
    limits.series_per_metric = 2;
    let tracelink = setup(addr)
        .metric_interval(Duration::from_millis(150))
        .metric_limits(limits)
        .init()
        .unwrap();
    let client = tracelink.client();
    for tenant in ["a", "b", "c"] {
        client.metric("jobs").dimension("tenant", tenant).track(2.0);
    }
    assert_eq!(tracelink.metric_stats().values_over_cap, 1);
    let names = [
        "\\Process(??APP_WIN32_PROC??)\\Private Bytes",
        "\\Memory\\Available Bytes",
        "\\Processor(_Total)\\% Processor Time",
        "\\Process(??APP_WIN32_PROC??)\\% Processor Time",
        "\\ASP.NET Applications(??APP_W3SVC_PROC??)\\Requests/Sec",
    ];
    let expected: &[&str] = if cfg!(target_os = "linux") {
        &names
    } else {
        &names[4..]
    };
    until("counters and aggregates", Duration::from_secs(10), || {
        expected.iter().all(|n| !ingestion.metrics(n).is_empty())
            && ingestion.metrics("jobs").len() == 2
    })
    .await;
    for n in expected {
        for e in ingestion.metrics(n) {
            let v = point(&e)["value"].as_f64().unwrap();
            assert!(v >= 0.0, "{n}: {v}");
            if n.contains('%') {
                assert!(v <= 100.0, "{n}: {v}");
            }
        }
    }
    let interval: u64 = prop(&ingestion.metrics("jobs")[0], "_MS.AggregationIntervalMs")
        .parse()
        .unwrap();
    assert!((100..5000).contains(&interval), "{interval}");
    assert_valid(&ingestion.all());
    tracelink.shutdown().await;
}

/// The Node SDK 2.9.8's capture holds what this crate sends: the same metric ids, names,
/// dimension keys, extractor marks and performance counter names.
#[test]
fn the_names_are_the_node_sdks() {
    let mut ids = HashMap::new();
    let mut dims = BTreeSet::new();
    let mut marks = BTreeSet::new();
    let mut counters = BTreeSet::new();
    let mut tokens = Vec::new();
    for line in tracelink_tests::data::STANDARD_METRICS_CAPTURE.lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        match rec["kind"].as_str() {
            Some("getToken") => tokens.push(rec["scopes"][0].as_str().unwrap().to_owned()),
            Some("ingestion") => {
                let headers: Vec<&str> = rec["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h.as_str().unwrap())
                    .collect();
                let auth = headers
                    .chunks(2)
                    .find(|h| h[0].eq_ignore_ascii_case("authorization"))
                    .unwrap()[1];
                assert!(auth.starts_with("Bearer "), "{auth}");
                for e in rec["envelopes"].as_array().unwrap() {
                    let props = e["data"]["baseData"]["properties"].as_object();
                    let props = props.cloned().unwrap_or_default();
                    if let Some(mark) = props.get("_MS.ProcessedByMetricExtractors") {
                        marks.insert(mark.as_str().unwrap().to_owned());
                    }
                    if e["data"]["baseType"] != "MetricData" {
                        continue;
                    }
                    let name = point(e)["name"].as_str().unwrap().to_owned();
                    match props.get("_MS.MetricId") {
                        Some(id) => {
                            ids.insert(id.as_str().unwrap().to_owned(), name);
                            assert_eq!(props["_MS.IsAutocollected"], "True");
                            dims.extend(props.keys().filter(|k| !k.starts_with("_MS.")).cloned());
                        }
                        None => {
                            counters.insert(name);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        ids,
        HashMap::from([
            (
                metric_id::REQUESTS_DURATION.into(),
                metric_name::REQUESTS.into()
            ),
            (
                metric_id::DEPENDENCIES_DURATION.into(),
                metric_name::DEPENDENCIES.into()
            ),
            (
                metric_id::EXCEPTIONS_COUNT.into(),
                metric_name::EXCEPTIONS.into()
            ),
            (metric_id::TRACES_COUNT.into(), metric_name::TRACES.into()),
        ])
    );
    let ours: BTreeSet<String> = [
        dimension::CLOUD_ROLE_INSTANCE,
        dimension::CLOUD_ROLE_NAME,
        dimension::OPERATION_SYNTHETIC,
        dimension::REQUEST_SUCCESS,
        dimension::REQUEST_RESULT_CODE,
        dimension::DEPENDENCY_TYPE,
        dimension::DEPENDENCY_TARGET,
        dimension::DEPENDENCY_SUCCESS,
        dimension::DEPENDENCY_RESULT_CODE,
        dimension::TRACE_SEVERITY_LEVEL,
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(dims, ours);
    let ours: BTreeSet<String> = [
        extractor::REQUESTS,
        extractor::DEPENDENCIES,
        extractor::TRACES,
        // The capture's exceptions were all sampled out: counted, never sent.
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(marks, ours);
    let ours: BTreeSet<String> = [
        "\\Processor(_Total)\\% Processor Time",
        "\\Process(??APP_WIN32_PROC??)\\% Processor Time",
        "\\Process(??APP_WIN32_PROC??)\\Private Bytes",
        "\\Memory\\Available Bytes",
        "\\ASP.NET Applications(??APP_W3SVC_PROC??)\\Requests/Sec",
        "\\ASP.NET Applications(??APP_W3SVC_PROC??)\\Request Execution Time",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(counters, ours);
    assert_eq!(tokens, ["https://monitor.azure.com//.default"]);
    assert_eq!(
        tracelink::core::connection_string::DEFAULT_AAD_SCOPE,
        tokens[0]
    );
}
