#![no_main]
//! Fuzzes correlation_context: never panics on any input.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s: &str = &s;
    let b = tracelink_core::correlation_context::parse_lines(s.split('\n'));
    let _ = tracelink_core::correlation_context::to_header(&b);
});
