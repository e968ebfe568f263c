//! Carriers: where header values are read from and written to.
//!
//! The codecs are pure functions over these two small traits, so any transport (HTTP, a
//! message queue's application properties, a test's map) can carry a correlation. With the
//! default `http` feature, [`http::HeaderMap`] implements both.
//!
//! Header names are passed in lower case ([`headers`]). A carrier must present every value
//! line of a name in order; a line that is not valid text is presented as a string that no
//! parser accepts (the `http` impl uses `"\0"`), so it still counts as a line (SPEC 3.1:
//! several `traceparent` lines are invalid) and still invalidates a list it is part of.
//!
//! ```
//! use std::collections::HashMap;
//! use tracelink::carrier::{Extractor, Injector};
//!
//! let mut props: HashMap<String, String> = HashMap::new();
//! props.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
//! assert_eq!(Extractor::get(&props, "traceparent").map(str::len), Some(55));
//! ```

use std::collections::HashMap;

/// Header names, lower case.
pub mod headers {
    /// W3C `traceparent`.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C `tracestate`.
    pub const TRACESTATE: &str = "tracestate";
    /// W3C `baggage`.
    pub const BAGGAGE: &str = "baggage";
    /// W3C Level 2 `traceresponse`.
    pub const TRACERESPONSE: &str = "traceresponse";
    /// Legacy `Request-Id`.
    pub const REQUEST_ID: &str = "request-id";
    /// Legacy `Correlation-Context`.
    pub const CORRELATION_CONTEXT: &str = "correlation-context";
    /// `Request-Context` (appId exchange).
    pub const REQUEST_CONTEXT: &str = "request-context";
}

/// Reads header values.
pub trait Extractor {
    /// Every value line of `name` (lower case), in order.
    fn get_all(&self, name: &str) -> impl Iterator<Item = &str>;

    /// The first value line of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }
}

/// Writes header values.
pub trait Injector: Extractor {
    /// Sets `name` (lower case) to `value`, replacing what is there. A value the carrier
    /// cannot hold is dropped, never a panic.
    fn set(&mut self, name: &'static str, value: &str);

    /// Whether `name` has a value.
    fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<T: Extractor + ?Sized> Extractor for &T {
    fn get_all(&self, name: &str) -> impl Iterator<Item = &str> {
        (**self).get_all(name)
    }
}

impl Extractor for HashMap<String, String> {
    fn get_all(&self, name: &str) -> impl Iterator<Item = &str> {
        HashMap::get(self, name).map(String::as_str).into_iter()
    }
}

impl Injector for HashMap<String, String> {
    fn set(&mut self, name: &'static str, value: &str) {
        self.insert(name.to_owned(), value.to_owned());
    }
}

#[cfg(feature = "http")]
mod http_impl {
    use super::*;
    use http::{HeaderMap, HeaderName, HeaderValue};

    /// A string no codec accepts: stands for a line that is not valid text.
    const INVALID_LINE: &str = "\0";

    fn known_name(name: &'static str) -> Option<HeaderName> {
        use headers::*;
        // `from_static` on these constants builds the name without allocating.
        Some(match name {
            TRACEPARENT => HeaderName::from_static(TRACEPARENT),
            TRACESTATE => HeaderName::from_static(TRACESTATE),
            BAGGAGE => HeaderName::from_static(BAGGAGE),
            TRACERESPONSE => HeaderName::from_static(TRACERESPONSE),
            REQUEST_ID => HeaderName::from_static(REQUEST_ID),
            CORRELATION_CONTEXT => HeaderName::from_static(CORRELATION_CONTEXT),
            REQUEST_CONTEXT => HeaderName::from_static(REQUEST_CONTEXT),
            other => HeaderName::from_bytes(other.as_bytes()).ok()?,
        })
    }

    impl Extractor for HeaderMap {
        fn get_all(&self, name: &str) -> impl Iterator<Item = &str> {
            HeaderMap::get_all(self, name)
                .iter()
                .map(|v| v.to_str().unwrap_or(INVALID_LINE))
        }
    }

    impl Injector for HeaderMap {
        fn set(&mut self, name: &'static str, value: &str) {
            if let (Some(n), Ok(v)) = (known_name(name), HeaderValue::from_str(value)) {
                self.insert(n, v);
            }
        }

        fn contains(&self, name: &str) -> bool {
            self.contains_key(name)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn invalid_values_are_dropped_not_panicked() {
            let mut h = HeaderMap::new();
            h.set(headers::TRACEPARENT, "bad\nvalue");
            assert!(h.is_empty());
            h.set("Not A Name", "x");
            assert!(h.is_empty());
        }

        #[test]
        fn non_utf8_lines_still_count() {
            let mut h = HeaderMap::new();
            h.append("traceparent", HeaderValue::from_bytes(b"\xff").unwrap());
            assert_eq!(Extractor::get_all(&h, "traceparent").collect::<Vec<_>>(), ["\0"]);
        }
    }
}
