#![no_main]
//! Fuzzes request_context: never panics on any input.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s: &str = &s;
    let _ = tracelink_core::request_context::app_id(s);
    let _ = tracelink_core::AppId::new(s);
});
