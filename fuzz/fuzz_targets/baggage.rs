#![no_main]
//! Fuzzes baggage: never panics on any input.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s: &str = &s;
    let b = tracelink_core::Baggage::parse_w3c_lines(s.split('\n'));
    let h = b.to_w3c_header();
    assert_eq!(tracelink_core::Baggage::parse_w3c_lines([h.as_str()]).len(), b.len().min(64));
});
