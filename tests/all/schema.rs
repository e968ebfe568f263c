//! SPEC 7: every envelope tracelink emits validates against the Breeze schema, including items
//! built with oversized fields (SPEC 6.5), and the real SDK captures do too.

use std::time::Duration;

use serde_json::Value;
use tracelink_core::envelope;
use tracelink_core::model::{
    DataPoint, Dependency, Event, Exception, Metric, Request, SeverityLevel, Telemetry, Trace, tags,
};
use tracelink_core::{Correlation, Propagation, SamplingDecision};
use tracelink_tests::breeze::Schema;

const IKEY: &str = "00000000-1111-2222-3333-444444444444";

fn big(n: usize) -> String {
    "語".repeat(n)
}

fn items() -> Vec<Telemetry> {
    let op = Correlation::new_root_named(
        &Propagation::default(),
        SamplingDecision::kept(25.0),
        Some("GET /x"),
    );
    let mut r = Request::new(big(1500), "500", Duration::from_secs(90_000));
    r.url = format!("http://h/{}", big(3000));
    r.source = big(2000);
    r.id = big(600);
    let mut d = Dependency::new(big(2000), big(2000));
    d.data = big(9000);
    d.target = big(2000);
    d.result_code = big(2000).into();
    let mut e = Exception::new(big(2000), big(40_000));
    e.exceptions[0].stack = big(40_000);
    e.problem_id = big(2000);
    let mut m = Metric::new(big(2000), 1.5);
    let mut agg = DataPoint::new("agg", 4.0);
    agg.count = Some(3);
    agg.min = Some(0.5);
    agg.max = Some(f64::INFINITY);
    m.metrics.push(agg);
    let mut out = vec![
        op.to_item(r),
        op.new_child().to_item(d),
        op.child_item(Trace::new(big(40_000), SeverityLevel::Critical)),
        op.child_item(e),
        op.child_item(Event::new(big(1000))),
        Telemetry::new(m),
        op.child_item(Trace::default()),
    ];
    for item in &mut out {
        item.tags.insert(tags::CLOUD_ROLE, big(300));
        item.tags.insert(tags::LOCATION_IP, big(100));
        item.tags.insert(tags::OPERATION_PARENT_ID, big(300));
        item.tags.insert("ai.custom.unknown", big(9000));
        item.properties.insert(big(200), big(9000));
        item.properties.insert(String::new(), "empty key".into());
        item.measurements.insert("m".into(), 2.0);
        item.measurements.insert("nan".into(), f64::NAN);
    }
    out
}

#[test]
fn spec_7_every_emitted_envelope_validates() {
    let schema = Schema::breeze();
    for item in items() {
        let json = envelope::to_json(&item, IKEY);
        let v: Value = serde_json::from_str(&json).unwrap();
        let errors = schema.validate_envelope(&v);
        assert!(errors.is_empty(), "{:?}: {errors:#?}", item.kind());
        // And it reads back.
        envelope::parse(json.as_bytes()).unwrap();
    }
}

#[test]
fn spec_7_captures_validate() {
    let schema = Schema::breeze();
    for (file, text) in tracelink_tests::data::CAPTURES {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            let errors = schema.validate_envelope(&v);
            assert!(errors.is_empty(), "{file}: {errors:#?}");
        }
    }
}
