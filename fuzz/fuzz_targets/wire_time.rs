#![no_main]
//! Fuzzes wire_time: never panics on any input.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s: &str = &s;
    let _ = tracelink_core::wire_time::parse_duration(s);
    let _ = tracelink_core::wire_time::parse_time(s);
});
