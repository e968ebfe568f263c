#![no_main]
//! Fuzzes envelope: never panics on any input.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s: &str = &s;
    if let Ok(p) = tracelink_core::envelope::parse(s.as_bytes()) {
        let json = tracelink_core::envelope::to_json(&p.telemetry, "");
        tracelink_core::envelope::parse(json.as_bytes()).expect("our own output parses");
    }
});
