#![no_main]
//! Fuzzes extract: never panics on any input, and reading a `HeaderMap` (whose values the
//! parsers read as bytes and share) gives what reading the same headers as text gives.
use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use tracelink_core::extract::{Incoming, Origin};

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
    let cfg = tracelink_core::Propagation::default();
    let from_map = tracelink_core::extract::extract(&h, &cfg);
    // The same headers as text, when each has one line that is text.
    let text: Option<HashMap<String, String>> = (h.keys_len() == h.len())
        .then(|| h.iter().map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))).collect())
        .flatten();
    if let Some(text) = text {
        same(&from_map, &tracelink_core::extract::extract(&text, &cfg));
    }
    let req = from_map.into_request(&cfg, tracelink_core::SamplingDecision::KEEP_ALL, None);
    let mut out = http::HeaderMap::new();
    cfg.inject(&req.new_child(), Some("h"), &mut out);
});

fn same(a: &Incoming, b: &Incoming) {
    assert_eq!(a.origin(), b.origin());
    if a.origin() != Origin::New && a.origin() != Origin::RequestIdLegacy {
        assert_eq!(a.trace_id(), b.trace_id());
    }
    assert_eq!(a.parent_id(), b.parent_id());
    assert_eq!(a.flags(), b.flags());
    assert_eq!(a.trace_state(), b.trace_state());
    assert_eq!(a.baggage(), b.baggage());
    assert_eq!(a.legacy_root_id(), b.legacy_root_id());
    assert_eq!(a.source(), b.source());
}
