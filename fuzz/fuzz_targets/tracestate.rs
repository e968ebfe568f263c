#![no_main]
//! Fuzzes tracestate: never panics on any input; the shared path (a received
//! `HeaderValue`, kept as is when normalized) agrees with parsing its text.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s: &str = &s;
    if let Ok(ts) = tracelink_core::TraceState::parse_lines(s.split('\n')) {
        let again = tracelink_core::TraceState::parse(ts.as_str()).expect("normalized tracestate parses");
        assert_eq!(again, ts);
        if let Some(p) = ts.for_propagation() {
            assert!(p.len() <= 512);
        }
    }
    if let Ok(v) = http::HeaderValue::from_bytes(data) {
        let shared = tracelink_core::TraceState::from_header_value(&v);
        match v.to_str() {
            Ok(text) => assert_eq!(shared.ok(), tracelink_core::TraceState::parse(text).ok()),
            Err(_) => assert!(shared.is_err()),
        }
        if let Ok(ts) = tracelink_core::TraceState::from_header_value(&v) {
            let out = ts.to_header_value().map(|h| h.to_str().map(str::to_owned));
            assert_eq!(out.map(Result::ok).flatten(), ts.for_propagation().map(|c| c.into_owned()));
        }
    }
});
