#![no_main]
//! Fuzzes tracestate: never panics on any input.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s: &str = &s;
    if let Ok(ts) = tracelink::TraceState::parse_lines(s.split('\n')) {
        let again = tracelink::TraceState::parse(ts.as_str()).expect("normalized tracestate parses");
        assert_eq!(again, ts);
        if let Some(p) = ts.for_propagation() {
            assert!(p.len() <= 512);
        }
    }
});
