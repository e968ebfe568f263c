#![no_main]
//! Fuzzes extract: never panics on any input.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s: &str = &s;
    // Each line `name: value` becomes a header; then SPEC 2 runs and a child is injected.
    let mut h = http::HeaderMap::new();
    for line in s.lines() {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.trim().as_bytes()), http::HeaderValue::from_bytes(v.trim().as_bytes()))
        {
            h.append(k, v);
        }
    }
    let cfg = tracelink::Propagation::default();
    let req = tracelink::extract::extract(&h, &cfg).into_request(&cfg, tracelink::SamplingDecision::KEEP_ALL, None);
    let mut out = http::HeaderMap::new();
    cfg.inject(&req.new_child(), Some("h"), &mut out);
});
