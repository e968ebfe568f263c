//! The correlation headers the server layer answers: `Request-Context` with
//! `Access-Control-Expose-Headers` (SPEC 5.4), and W3C `traceresponse`.

use http::header::ACCESS_CONTROL_EXPOSE_HEADERS;
use http::{HeaderMap, HeaderName, HeaderValue};
use tracelink_core::TraceParent;

const REQUEST_CONTEXT: HeaderName = HeaderName::from_static("request-context");
const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");

/// Adds the headers to a response, keeping any the handler set.
pub(super) fn answer(
    h: &mut HeaderMap,
    request_context: Option<&HeaderValue>,
    traceresponse: Option<&TraceParent>,
) {
    if let Some(rc) = request_context {
        h.entry(REQUEST_CONTEXT).or_insert_with(|| rc.clone());
        let exposed = h
            .get_all(ACCESS_CONTROL_EXPOSE_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|n| n.trim().eq_ignore_ascii_case("request-context") || n.trim() == "*");
        if !exposed {
            h.append(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("Request-Context"),
            );
        }
    }
    if let Some(tp) = traceresponse
        && let Ok(v) = HeaderValue::from_bytes(tp.to_header().as_bytes())
    {
        h.entry(TRACERESPONSE).or_insert(v);
    }
}
