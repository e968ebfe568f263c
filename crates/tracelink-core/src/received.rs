//! Text received in a header, kept without copying when the carrier holds
//! [`http::HeaderValue`]s: a received `tracestate` and the caller's `cid-v1:` id live as long
//! as the request, and the header bytes they come from are shared already.

use core::fmt;

/// Received text: owned, or (with the `http` feature) a range of the received header value.
#[derive(Clone)]
pub(crate) enum Received {
    Owned(Box<str>),
    /// `value[start..end]`, visible ASCII or tab (checked by whoever made it).
    #[cfg(feature = "http")]
    Shared {
        value: http::HeaderValue,
        start: u32,
        end: u32,
    },
}

impl Received {
    pub(crate) fn owned(text: &str) -> Self {
        Self::Owned(text.into())
    }

    /// `range` of `value`, shared. The caller has checked that the range is text (it was
    /// found in `value.to_str()`); a range outside the value is copied as the empty string,
    /// never a panic.
    #[cfg(feature = "http")]
    pub(crate) fn shared(value: &http::HeaderValue, range: core::ops::Range<usize>) -> Self {
        match (u32::try_from(range.start), u32::try_from(range.end)) {
            (Ok(start), Ok(end)) if range.start <= range.end && range.end <= value.len() => {
                Self::Shared {
                    value: value.clone(),
                    start,
                    end,
                }
            }
            _ => {
                debug_assert!(false, "a range outside the received value");
                Self::owned("")
            }
        }
    }

    /// `text`, shared with `value` when it lies inside `value`'s bytes (a parser found it in
    /// `value.to_str()`), else copied.
    pub(crate) fn within(value: Option<&Value>, text: &str) -> Self {
        #[cfg(feature = "http")]
        if let Some(v) = value
            && let Some(at) = offset_in(v.as_bytes(), text.as_bytes())
        {
            return Self::shared(v, at..at + text.len());
        }
        let _ = value;
        Self::owned(text)
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Owned(t) => t,
            // Visible ASCII or tab by construction: never the empty default.
            #[cfg(feature = "http")]
            Self::Shared { value, start, end } => value
                .as_bytes()
                .get(*start as usize..*end as usize)
                .and_then(|b| core::str::from_utf8(b).ok())
                .unwrap_or_default(),
        }
    }

    /// The received header value, when this is all of it.
    #[cfg(feature = "http")]
    pub(crate) fn whole_value(&self) -> Option<&http::HeaderValue> {
        match self {
            Self::Shared { value, start, end } if *start == 0 && *end as usize == value.len() => {
                Some(value)
            }
            _ => None,
        }
    }
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Where `inner` starts in `outer`, when it is a subslice of it.
pub(crate) fn offset_in(outer: &[u8], inner: &[u8]) -> Option<usize> {
    // An empty slice may point anywhere, even just past `outer`: no match.
    if inner.is_empty() {
        return None;
    }
    let at = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    (at.checked_add(inner.len())? <= outer.len()).then_some(at)
}

/// What [`Received::within`] can share with: a header value with the `http` feature.
#[cfg(feature = "http")]
pub(crate) type Value = http::HeaderValue;
/// What [`Received::within`] can share with: nothing without the `http` feature.
#[cfg(not(feature = "http"))]
pub(crate) type Value = core::convert::Infallible;
