#![no_main]
//! Fuzzes cookie: never panics on any input.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s: &str = &s;
    let _ = tracelink_core::cookie::UserCookies::parse_lines(s.split('\n'));
});
