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
//! use tracelink_core::carrier::{Extractor, Injector};
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

/// The header names tracelink reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Known {
    TraceParent,
    TraceState,
    Baggage,
    TraceResponse,
    RequestId,
    CorrelationContext,
    RequestContext,
}

impl Known {
    /// Which of ours `name` (lower case) is. Length and first byte first: most names of a
    /// request are none of ours, and each of ours then takes one comparison.
    fn of(name: &str) -> Option<Self> {
        let b = name.as_bytes();
        let is = |ours: &str| b == ours.as_bytes();
        Some(match (b.len(), *b.first()?) {
            (7, b'b') if is(headers::BAGGAGE) => Self::Baggage,
            (10, b't') if is(headers::TRACESTATE) => Self::TraceState,
            (10, b'r') if is(headers::REQUEST_ID) => Self::RequestId,
            (11, b't') if is(headers::TRACEPARENT) => Self::TraceParent,
            (13, b't') if is(headers::TRACERESPONSE) => Self::TraceResponse,
            (15, b'r') if is(headers::REQUEST_CONTEXT) => Self::RequestContext,
            (19, b'c') if is(headers::CORRELATION_CONTEXT) => Self::CorrelationContext,
            _ => return None,
        })
    }

    /// The name, lower case.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::TraceParent => headers::TRACEPARENT,
            Self::TraceState => headers::TRACESTATE,
            Self::Baggage => headers::BAGGAGE,
            Self::TraceResponse => headers::TRACERESPONSE,
            Self::RequestId => headers::REQUEST_ID,
            Self::CorrelationContext => headers::CORRELATION_CONTEXT,
            Self::RequestContext => headers::REQUEST_CONTEXT,
        }
    }
}

/// One value line of a header, as the carrier holds it: text, or (with the `http` feature) an
/// [`http::HeaderValue`], whose bytes the parsers check themselves and which what is kept of
/// it can share instead of copying.
///
#[derive(Clone, Copy)]
pub(crate) struct Line<'a>(LineRepr<'a>);

#[derive(Clone, Copy)]
enum LineRepr<'a> {
    Text(&'a str),
    #[cfg(feature = "http")]
    Value(&'a http::HeaderValue),
}

impl<'a> Line<'a> {
    /// The line as text; a value that is not visible ASCII is `"\0"`, which no parser
    /// accepts (see the [module docs](crate::carrier)).
    #[inline]
    pub(crate) fn text(&self) -> &'a str {
        match self.0 {
            LineRepr::Text(t) => t,
            #[cfg(feature = "http")]
            LineRepr::Value(v) => http_impl::text(v),
        }
    }

    /// The line's bytes, unchecked: for parsers that check every byte themselves.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &'a [u8] {
        match self.0 {
            LineRepr::Text(t) => t.as_bytes(),
            #[cfg(feature = "http")]
            LineRepr::Value(v) => v.as_bytes(),
        }
    }

    /// The header value itself, when the carrier holds one.
    #[inline]
    pub(crate) fn value(&self) -> Option<&'a crate::received::Value> {
        match self.0 {
            LineRepr::Text(_) => None,
            #[cfg(feature = "http")]
            LineRepr::Value(v) => Some(v),
        }
    }
}

impl<'a> From<&'a str> for Line<'a> {
    fn from(text: &'a str) -> Self {
        Self(LineRepr::Text(text))
    }
}

#[cfg(feature = "http")]
impl<'a> From<&'a http::HeaderValue> for Line<'a> {
    fn from(value: &'a http::HeaderValue) -> Self {
        Self(LineRepr::Value(value))
    }
}

/// Equal when the text is: how a carrier held the line does not matter.
impl PartialEq for Line<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl Eq for Line<'_> {}

impl core::fmt::Debug for Line<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.text(), f)
    }
}

/// The first line of a header and whether there are more, as collected by
/// [`Extractor::correlation_headers`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lines<'a> {
    /// The first value line.
    pub(crate) first: Option<Line<'a>>,
    /// Whether the header has more than one line.
    pub(crate) more: bool,
}

impl<'a> Lines<'a> {
    fn push(&mut self, line: Line<'a>) {
        match self.first {
            None => self.first = Some(line),
            Some(_) => self.more = true,
        }
    }

    /// Whether the header is absent.
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// The first line, when it is the only one.
    #[inline]
    pub(crate) fn single(&self) -> Option<Line<'a>> {
        self.first.filter(|_| !self.more)
    }
}

/// The correlation headers of a carrier, collected at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CorrelationHeaders<'a> {
    /// `traceparent`.
    pub(crate) traceparent: Lines<'a>,
    /// `tracestate`.
    pub(crate) tracestate: Lines<'a>,
    /// `baggage`.
    pub(crate) baggage: Lines<'a>,
    /// `request-id`.
    pub(crate) request_id: Lines<'a>,
    /// `correlation-context`.
    pub(crate) correlation_context: Lines<'a>,
    /// `request-context`.
    pub(crate) request_context: Lines<'a>,
}

impl<'a> CorrelationHeaders<'a> {
    /// Files a header line under its name, ignoring names that are not correlation headers.
    pub(crate) fn push(&mut self, name: &str, line: impl Into<Line<'a>>) {
        if let Some(slot) = Known::of(name).and_then(|k| self.slot(k)) {
            slot.push(line.into());
        }
    }

    /// The slot of one of ours; `None` for a name read nowhere (`traceresponse`).
    fn slot(&mut self, known: Known) -> Option<&mut Lines<'a>> {
        Some(match known {
            Known::TraceParent => &mut self.traceparent,
            Known::TraceState => &mut self.tracestate,
            Known::Baggage => &mut self.baggage,
            Known::RequestId => &mut self.request_id,
            Known::CorrelationContext => &mut self.correlation_context,
            Known::RequestContext => &mut self.request_context,
            Known::TraceResponse => return None,
        })
    }
}

/// Reads header values.
pub trait Extractor {
    /// Every value line of `name` (lower case), in order.
    fn get_all(&self, name: &str) -> impl Iterator<Item = &str>;

    /// The first value line of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }

    /// The carrier as an [`http::HeaderMap`], when it is one: extraction then reads the map
    /// in one pass and keeps the values it needs as they are, sharing their bytes. Other
    /// carriers keep the default, `None`.
    #[cfg(feature = "http")]
    fn header_map(&self) -> Option<&http::HeaderMap> {
        None
    }
}

/// The six correlation headers of a carrier: from a [`http::HeaderMap`] in one pass, from
/// others through [`Extractor::get_all`].
#[inline]
pub(crate) fn correlation_headers<E: Extractor + ?Sized>(carrier: &E) -> CorrelationHeaders<'_> {
    #[cfg(feature = "http")]
    if let Some(map) = carrier.header_map() {
        return http_impl::correlation_headers(map);
    }
    let mut c = CorrelationHeaders::default();
    for name in [
        headers::TRACEPARENT,
        headers::TRACESTATE,
        headers::BAGGAGE,
        headers::REQUEST_ID,
        headers::CORRELATION_CONTEXT,
        headers::REQUEST_CONTEXT,
    ] {
        for line in carrier.get_all(name).take(2) {
            c.push(name, line);
        }
    }
    c
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

    /// Sets `name` to `value` unless it has a value already; returns whether it was set.
    fn set_if_absent(&mut self, name: &'static str, value: &str) -> bool {
        if self.contains(name) {
            return false;
        }
        self.set(name, value);
        true
    }

    /// The carrier as an [`http::HeaderMap`], when it is one: injection then makes header
    /// values from the bytes tracelink formatted, and shares values it holds already (a
    /// received `tracestate`, the own `Request-Context`) instead of copying them. Other
    /// carriers keep the default, `None`.
    #[cfg(feature = "http")]
    fn header_map_mut(&mut self) -> Option<&mut http::HeaderMap> {
        None
    }
}

/// Sets `name` unless it has a value, to a value tracelink formatted itself as header bytes
/// (visible ASCII), such as a `traceparent`. Into a [`http::HeaderMap`], under the name's
/// constant (no name parsing or matching).
#[inline]
pub(crate) fn set_ascii_if_absent<I: Injector + ?Sized>(
    carrier: &mut I,
    name: Known,
    value: &[u8],
) -> bool {
    #[cfg(feature = "http")]
    if let Some(map) = carrier.header_map_mut() {
        return http_impl::insert_known_if_absent(map, name, || {
            http::HeaderValue::from_bytes(value).ok()
        });
    }
    core::str::from_utf8(value).is_ok_and(|v| carrier.set_if_absent(name.name(), v))
}

/// Sets `name` unless it has a value, to a value tracelink holds as a header value already.
#[cfg(feature = "http")]
#[inline]
pub(crate) fn set_value_if_absent<I: Injector + ?Sized>(
    carrier: &mut I,
    name: Known,
    value: &http::HeaderValue,
) -> bool {
    if let Some(map) = carrier.header_map_mut() {
        return http_impl::insert_known_if_absent(map, name, || Some(value.clone()));
    }
    value
        .to_str()
        .is_ok_and(|v| carrier.set_if_absent(name.name(), v))
}

impl<T: Extractor + ?Sized> Extractor for &T {
    fn get_all(&self, name: &str) -> impl Iterator<Item = &str> {
        (**self).get_all(name)
    }

    #[cfg(feature = "http")]
    fn header_map(&self) -> Option<&http::HeaderMap> {
        (**self).header_map()
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

    /// Up to this many entries, one pass over the map beats six hashed lookups.
    const SCAN_LIMIT: usize = 16;

    const TRACEPARENT: HeaderName = HeaderName::from_static(headers::TRACEPARENT);
    const TRACESTATE: HeaderName = HeaderName::from_static(headers::TRACESTATE);
    const BAGGAGE: HeaderName = HeaderName::from_static(headers::BAGGAGE);
    const TRACERESPONSE: HeaderName = HeaderName::from_static(headers::TRACERESPONSE);
    const REQUEST_ID: HeaderName = HeaderName::from_static(headers::REQUEST_ID);
    const CORRELATION_CONTEXT: HeaderName = HeaderName::from_static(headers::CORRELATION_CONTEXT);
    const REQUEST_CONTEXT: HeaderName = HeaderName::from_static(headers::REQUEST_CONTEXT);

    impl Known {
        const fn header_name(self) -> HeaderName {
            match self {
                Self::TraceParent => TRACEPARENT,
                Self::TraceState => TRACESTATE,
                Self::Baggage => BAGGAGE,
                Self::TraceResponse => TRACERESPONSE,
                Self::RequestId => REQUEST_ID,
                Self::CorrelationContext => CORRELATION_CONTEXT,
                Self::RequestContext => REQUEST_CONTEXT,
            }
        }
    }

    /// Our names as constants (no parsing, no allocation); other names parsed.
    fn name(name: &str) -> Option<HeaderName> {
        match Known::of(name) {
            Some(k) => Some(k.header_name()),
            None => HeaderName::from_bytes(name.as_bytes()).ok(),
        }
    }

    /// Files a line of one of ours as the value itself: it is checked by the parser that
    /// reads it, and what is kept of it is shared.
    fn file<'a>(c: &mut CorrelationHeaders<'a>, known: Known, value: &'a HeaderValue) {
        if let Some(slot) = c.slot(known) {
            slot.push(Line::from(value));
        }
    }

    /// Inserts under `name` unless it has a value; `value` is made only when needed.
    fn insert_if_absent(
        map: &mut HeaderMap,
        name: &str,
        value: impl FnOnce() -> Option<HeaderValue>,
    ) -> bool {
        self::name(name).is_some_and(|n| insert_named_if_absent(map, n, value))
    }

    /// [`insert_if_absent`] under one of our names.
    #[inline]
    pub(crate) fn insert_known_if_absent(
        map: &mut HeaderMap,
        name: Known,
        value: impl FnOnce() -> Option<HeaderValue>,
    ) -> bool {
        insert_named_if_absent(map, name.header_name(), value)
    }

    #[inline]
    fn insert_named_if_absent(
        map: &mut HeaderMap,
        name: HeaderName,
        value: impl FnOnce() -> Option<HeaderValue>,
    ) -> bool {
        match map.entry(name) {
            http::header::Entry::Vacant(slot) => value().map(|v| slot.insert(v)).is_some(),
            http::header::Entry::Occupied(_) => false,
        }
    }

    pub(super) fn text(v: &HeaderValue) -> &str {
        v.to_str().unwrap_or(INVALID_LINE)
    }

    impl Extractor for HeaderMap {
        fn get_all(&self, name: &str) -> impl Iterator<Item = &str> {
            // Not a valid header name: nothing can be stored under it.
            let values = self::name(name).map(|n| HeaderMap::get_all(self, n));
            values.into_iter().flatten().map(text)
        }

        fn header_map(&self) -> Option<&HeaderMap> {
            Some(self)
        }
    }

    /// The correlation headers of a map: one pass over a small map, lookups in a large one.
    #[inline]
    pub(crate) fn correlation_headers(map: &HeaderMap) -> CorrelationHeaders<'_> {
        let mut c = CorrelationHeaders::default();
        if map.len() <= SCAN_LIMIT {
            for (name, value) in map {
                // Only our values are decoded: most of a request's headers are not.
                if let Some(k) = Known::of(name.as_str()) {
                    file(&mut c, k, value);
                }
            }
        } else {
            for k in [
                Known::TraceParent,
                Known::TraceState,
                Known::Baggage,
                Known::RequestId,
                Known::CorrelationContext,
                Known::RequestContext,
            ] {
                for v in HeaderMap::get_all(map, k.header_name()).iter().take(2) {
                    file(&mut c, k, v);
                }
            }
        }
        c
    }

    impl Injector for HeaderMap {
        fn set(&mut self, name: &'static str, value: &str) {
            if let (Some(n), Ok(v)) = (self::name(name), HeaderValue::from_str(value)) {
                self.insert(n, v);
            }
        }

        fn contains(&self, name: &str) -> bool {
            self::name(name).is_some_and(|n| self.contains_key(n))
        }

        fn set_if_absent(&mut self, name: &'static str, value: &str) -> bool {
            insert_if_absent(self, name, || HeaderValue::from_str(value).ok())
        }

        fn header_map_mut(&mut self) -> Option<&mut HeaderMap> {
            Some(self)
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
        fn collected_headers_compare_by_their_lines() {
            let mut h = HeaderMap::new();
            h.insert("tracestate", HeaderValue::from_static("a=1"));
            h.insert(
                "request-context",
                HeaderValue::from_static("appId=cid-v1:x"),
            );
            h.insert("accept", HeaderValue::from_static("*/*"));
            let mut pushed = CorrelationHeaders::default();
            pushed.push(headers::TRACESTATE, "a=1");
            pushed.push(headers::REQUEST_CONTEXT, "appId=cid-v1:x");
            pushed.push("accept", "*/*");
            let collected = super::super::correlation_headers(&h);
            assert_eq!(collected, pushed);
            assert!(collected.tracestate.first.unwrap().value().is_some());
            assert!(!format!("{collected:?}").contains("value"));
        }

        #[test]
        fn non_utf8_lines_still_count() {
            let mut h = HeaderMap::new();
            h.append("traceparent", HeaderValue::from_bytes(b"\xff").unwrap());
            assert_eq!(
                Extractor::get_all(&h, "traceparent").collect::<Vec<_>>(),
                ["\0"]
            );
        }
    }
}
