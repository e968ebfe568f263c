#![no_main]
//! Fuzzes request_id: never panics on any input.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s: &str = &s;
    let _ = tracelink_core::request_id::parse(s);
    let _ = tracelink_core::request_id::root(s);
    let _ = tracelink_core::request_id::w3c_trace_id(s);
    let t = tracelink_core::TraceId::from_u128(1).unwrap();
    if s.len() < 1100 {
        assert!(tracelink_core::request_id::child(s, 7, t).len() <= 1024);
        assert!(tracelink_core::request_id::incoming(s, t).len() <= 1024);
    }
});
