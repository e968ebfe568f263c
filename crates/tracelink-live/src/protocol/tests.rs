//! The wire types against the Node SDK 2.9.8's captured traffic
//! (`tests/data/captures/live-metrics`).

use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use tracelink_core::model::{
    Dependency, Event, Exception, ExceptionDetails, Metric, Request, SeverityLevel, Telemetry,
    Trace,
};

use super::*;

const CAPTURE: &str = include_str!(
    "../../../../tests/data/captures/live-metrics/node-applicationinsights-2.9.8-live.ndjson"
);

/// A captured request: path, headers in wire order, body.
type Captured = (String, Vec<(String, String)>, String);

/// The live requests of the capture.
fn captured() -> Vec<Captured> {
    CAPTURE
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "request")
        .map(|r| {
            let headers = r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_owned(),
                        h[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            (
                r["path"].as_str().unwrap().to_owned(),
                headers,
                r["body_text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The keys of a JSON object, in order.
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

fn keys(json: &str) -> Vec<String> {
    serde_json::from_str::<Keys>(json).unwrap().0
}

/// Same structure and values; numbers compared as f64 (JavaScript writes `27`, serde `27.0`),
/// to the last few bits (serde_json's default float parsing is not always correctly rounded).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn every_captured_body_reads_and_writes_back_unchanged() {
    let requests = captured();
    assert_eq!(requests.len(), 55);
    let (mut pings, mut posts, mut documents) = (0, 0, 0);
    for (path, _, body) in &requests {
        let points = decode(body.as_bytes()).unwrap();
        assert_eq!(points.len(), 1, "{path}");
        let p = &points[0];
        assert_eq!(p.invariant_version, INVARIANT_VERSION);
        assert_eq!(p.stream_id, "7ca421d2c03940f799dcddce34b37d8b");
        assert!(p.time().is_some());
        documents += p.documents.as_ref().map_or(0, Vec::len);
        let again = if path.starts_with(PING_PATH) {
            pings += 1;
            let again = encode_ping(p);
            // A ping without metrics has no numbers to reformat: the same bytes, key order
            // included. (Node sends metrics in some pings, see the capture's quirks.)
            if p.metrics.is_none() {
                assert_eq!(String::from_utf8(again.clone()).unwrap(), *body);
            }
            again
        } else {
            assert!(path.starts_with(POST_PATH));
            posts += 1;
            let again = encode_post(&points);
            let node: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                keys(&serde_json::to_string(&node[0]).unwrap()),
                keys(
                    &serde_json::to_string(&serde_json::from_slice::<Value>(&again).unwrap()[0])
                        .unwrap()
                )
            );
            again
        };
        let ours: Value = serde_json::from_slice(&again).unwrap();
        let node: Value = serde_json::from_str(body).unwrap();
        assert!(same(&ours, &node), "{path}:\n{ours}\n{node}");
    }
    assert_eq!((pings, posts), (13, 42));
    assert_eq!(documents, 131);
}

#[test]
fn captured_documents_read_and_write_back_with_the_same_fields() {
    for (_, _, body) in captured() {
        let node: Value = serde_json::from_str(&body).unwrap();
        let Some(docs) = node.get(0).and_then(|p| p["Documents"].as_array()) else {
            continue;
        };
        for raw in docs {
            let raw = raw.to_string();
            let doc: Document = serde_json::from_str(&raw).unwrap();
            assert!(!matches!(doc, Document::Other { .. }), "{raw}");
            let ours = serde_json::to_string(&doc).unwrap();
            let mut node_keys = keys(&raw);
            node_keys.sort();
            let mut our_keys = keys(&ours);
            our_keys.sort();
            assert_eq!(our_keys, node_keys, "{raw}");
        }
    }
}

#[test]
fn node_key_order_of_each_document_type() {
    // The first captured document of each type, as text, keys in wire order.
    let text: Vec<String> = captured().into_iter().map(|(_, _, b)| b).collect();
    let all = text.join("\n");
    for (type_name, expected) in [
        (
            "RequestTelemetryDocument",
            "DocumentType __type OperationId Version Properties Name Success Duration ResponseCode OperationName",
        ),
        (
            "DependencyTelemetryDocument",
            "DocumentType __type OperationId Version Properties Name Target Success Duration ResultCode CommandName OperationName DependencyTypeName",
        ),
        (
            "ExceptionTelemetryDocument",
            "DocumentType __type OperationId Version Properties Exception ExceptionMessage ExceptionType",
        ),
        (
            "TraceTelemetryDocument",
            "DocumentType __type OperationId Version Properties Message SeverityLevel",
        ),
        (
            "EventTelemetryDocument",
            "DocumentType __type OperationId Version Properties Name",
        ),
    ] {
        let at = all.find(&format!("\"__type\":\"{type_name}\"")).unwrap();
        let start = all[..at].rfind('{').unwrap();
        let mut de = serde_json::Deserializer::from_str(&all[start..]);
        let node = Keys::deserialize(&mut de).unwrap().0.join(" ");
        assert_eq!(node, expected);
        let doc: Document = {
            let mut de = serde_json::Deserializer::from_str(&all[start..]);
            Document::deserialize(&mut de).unwrap()
        };
        let ours = keys(&serde_json::to_string(&doc).unwrap()).join(" ");
        assert_eq!(ours, expected);
    }
}

#[test]
fn documents_from_items_have_the_captured_fields_and_types() {
    let mut request = Telemetry::new(Request::new("GET /fail", "500", Duration::from_millis(2)));
    request
        .tags
        .insert("ai.operation.id", "6ded968af5ab4e69adce2f485518a764");
    request.tags.insert("ai.operation.name", "GET /fail");
    request.measurements.insert("amount".into(), 27.0);
    request.properties.insert("route".into(), "/fail".into());
    let mut dep = Dependency::new("GET /downstream/fail", "Http");
    dep.target = "127.0.0.1:18480".into();
    dep.data = "http://127.0.0.1:18480/downstream/fail?n=6".into();
    dep.result_code = "503".into();
    dep.success = false;
    let mut exception = Exception::new("TypeError", "boom #20");
    let mut cause = ExceptionDetails::default();
    cause.type_name = "io::Error".into();
    cause.message = "refused".into();
    exception.exceptions.push(cause);
    let items = [
        Telemetry::new(request.data.clone()),
        request,
        Telemetry::new(dep),
        Telemetry::new(exception),
        Telemetry::new(Trace::new("handled /ok #17", SeverityLevel::Information)),
        Telemetry::new(Event::new("OrderPlaced")),
    ];
    // The field names and JSON types of the first captured document of each type.
    let captured: Vec<Value> = captured()
        .iter()
        .filter_map(|(_, _, b)| {
            serde_json::from_str::<Value>(b).ok()?.get(0)?["Documents"]
                .as_array()
                .cloned()
        })
        .flatten()
        .collect();
    let shape = |v: &Value| -> Vec<(String, &'static str)> {
        let mut s: Vec<_> = v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let t = match v {
                    Value::Null => "null",
                    Value::Bool(_) => "bool",
                    Value::Number(_) => "number",
                    Value::String(_) => "string",
                    Value::Array(_) => "array",
                    Value::Object(_) => "object",
                };
                (k.clone(), t)
            })
            .collect();
        s.sort();
        s
    };
    for item in &items {
        let doc = Document::from_telemetry(item).unwrap();
        let ours: Value = serde_json::to_value(&doc).unwrap();
        let node = captured
            .iter()
            .find(|d| d["__type"] == doc.type_name())
            .unwrap();
        assert_eq!(shape(&ours), shape(node), "{ours}");
        for p in ours["Properties"].as_array().unwrap() {
            assert_eq!(
                shape(p),
                vec![
                    ("key".into(), "string"),
                    (
                        "value".into(),
                        if p["key"] == "amount" {
                            "number"
                        } else {
                            "string"
                        }
                    )
                ]
            );
        }
    }
    let Some(Document::Exception(e)) = Document::from_telemetry(&items[3]) else {
        panic!()
    };
    assert_eq!(e.exception_message, "boom #20 <--- refused");
    assert_eq!(e.exception, "TypeError: boom #20");
    assert!(Document::from_telemetry(&Telemetry::new(Metric::new("m", 1.0))).is_none());
}

#[test]
fn documents_are_bounded() {
    let mut item = Telemetry::new(Trace::new("é".repeat(40_000), SeverityLevel::Error));
    for i in 0..30 {
        item.properties.insert(format!("p{i:02}"), "v".into());
    }
    item.measurements.insert("m".into(), 1.0);
    let Some(Document::Trace(t)) = Document::from_telemetry(&item) else {
        panic!()
    };
    assert_eq!(t.message.chars().count(), 32_768);
    assert_eq!(t.properties.len(), 10);
    assert_eq!(
        t.properties[0],
        Property::new("m", PropertyValue::Number(1.0))
    );
}

#[test]
fn dotnet_documents_and_unknown_types_are_read() {
    let dotnet = r#"{"__type":"TraceTelemetryDocument:#Microsoft.ManagementServices.RealTimeDataProcessing.QuickPulseService","Message":"m","SeverityLevel":null,"Properties":null,"Id":"x"}"#;
    let Document::Trace(t) = serde_json::from_str::<Document>(dotnet).unwrap() else {
        panic!()
    };
    assert_eq!((t.message.as_str(), t.severity_level.as_str()), ("m", ""));
    let other = r#"{"__type":"AvailabilityTelemetryDocument","Name":"x"}"#;
    let doc = serde_json::from_str::<Document>(other).unwrap();
    assert_eq!(doc.type_name(), "AvailabilityTelemetryDocument");
    assert_eq!(serde_json::to_value(&doc).unwrap()["Name"], "x");
}

#[test]
fn the_rust_crates_body_reads_too() {
    // opentelemetry-application-insights leaves out empty fields, and gzips (not decoded here).
    let body = r#"[{"Instance":"i","InvariantVersion":1,"MachineName":"m","Metrics":[{"Name":"\\Memory\\Committed Bytes","Value":1.0,"Weight":1}],"StreamId":"s","Timestamp":"/Date(1)/"}]"#;
    let p = &decode(body.as_bytes()).unwrap()[0];
    assert_eq!(p.role_name, None);
    assert_eq!(p.documents, None);
    assert_eq!(p.metrics.as_ref().unwrap()[0].name, metric::COMMITTED_BYTES);
}

#[test]
fn captured_headers_and_times_agree() {
    for (_, headers, body) in captured() {
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        };
        let sent = parse_transmission_time(get(header::TRANSMISSION_TIME).unwrap()).unwrap();
        let stamped = decode(body.as_bytes()).unwrap()[0].time().unwrap();
        // Node stamps the body just before the header, both in whole milliseconds.
        let gap = sent.duration_since(stamped).unwrap();
        assert!(gap < Duration::from_millis(50), "{gap:?}");
        assert_eq!(
            transmission_time(sent),
            get(header::TRANSMISSION_TIME)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        );
    }
    assert_eq!(transmission_time(UNIX_EPOCH), TICKS_AT_UNIX_EPOCH);
    assert_eq!(
        transmission_time(UNIX_EPOCH - Duration::from_secs(1)),
        TICKS_AT_UNIX_EPOCH
    );
    assert_eq!(parse_transmission_time("1"), None);
    assert_eq!(parse_date("/Date(-5)/"), None);
    assert_eq!(
        parse_date("/Date(5-0100)/"),
        Some(UNIX_EPOCH + Duration::from_millis(5))
    );
}

#[test]
fn answers_from_the_captured_phases() {
    let mut answers = Vec::new();
    for line in CAPTURE.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        if r["kind"] != "request" {
            continue;
        }
        let mut h = http::HeaderMap::new();
        for pair in r["response"]["headers"].as_array().unwrap() {
            h.append(
                http::HeaderName::from_bytes(pair[0].as_str().unwrap().as_bytes()).unwrap(),
                pair[1].as_str().unwrap().parse().unwrap(),
            );
        }
        answers.push((
            r["response"]["status"].as_u64().unwrap(),
            Answer::from_headers(&h),
        ));
    }
    let subscribed = answers.iter().filter(|(_, a)| a.subscribed).count();
    assert_eq!(subscribed, 23);
    assert!(
        answers
            .iter()
            .any(|(_, a)| a.polling_interval_hint == Some(Duration::from_secs(2)))
    );
    assert!(answers.iter().any(
        |(_, a)| a.endpoint_redirect.as_deref() == Some("https://localhost/redirected-prefix/")
    ));
    assert!(
        answers
            .iter()
            .any(|(_, a)| a.configuration_etag.as_deref() == Some("etag-1"))
    );
    assert_eq!(answers.iter().filter(|(s, _)| *s == 503).count(), 20);
    // Round trip through headers.
    let a = Answer::subscribed()
        .polling_interval_hint(Duration::from_millis(1500))
        .endpoint_redirect("https://live.example/x")
        .configuration_etag("e");
    let mut h = http::HeaderMap::new();
    a.write_headers(&mut h);
    assert_eq!(Answer::from_headers(&h), a);
    // Bad values are ignored, never a panic.
    let mut h = http::HeaderMap::new();
    h.insert(header::SUBSCRIBED, "yes".parse().unwrap());
    h.insert(header::POLLING_INTERVAL_HINT, "-5".parse().unwrap());
    h.insert(header::CONFIGURATION_ETAG, " ".parse().unwrap());
    assert_eq!(Answer::from_headers(&h), Answer::unsubscribed());
    let mut h = http::HeaderMap::new();
    Answer::subscribed()
        .endpoint_redirect("bad\nvalue")
        .write_headers(&mut h);
    assert_eq!(h.len(), 1);
}
