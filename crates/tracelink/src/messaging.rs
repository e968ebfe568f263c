//! Correlation through messages: what a producer writes into a message's application
//! properties, and what a consumer reads back.
//!
//! A producer records the enqueue as a Dependency and writes its context into the message
//! ([`OperationGuard::inject`](crate::OperationGuard::inject)); the consumer records the
//! processing as a Request whose parent is that Dependency, in the same operation
//! ([`Operation::parent_from`](crate::Operation::parent_from)). The properties are the ones
//! the other Application Insights SDKs and the Azure messaging SDKs use:
//!
//! | property | written | read |
//! |---|---|---|
//! | `traceparent`, `tracestate` | W3C modes | yes (SPEC 2) |
//! | `Request-Id` | default and hierarchical modes | yes, when there is no `traceparent` |
//! | `Correlation-Context` (`baggage` when enabled) | when the operation has baggage | yes |
//! | `Diagnostic-Id` | the `traceparent` (else the `Request-Id`), as the Azure Service Bus and Event Hubs SDKs write it | yes, as a `traceparent` when it is one, else as a `Request-Id` |
//!
//! Reading looks up each name as written above and in lower case. Values are checked as
//! headers are (SPEC 9): a malformed one is ignored, and a message with no usable context
//! starts a new operation.
//!
//! The user context travels only when asked for: [`OperationGuard::inject_user`] writes
//! [`USER_ID`], [`SESSION_ID`], [`AUTH_USER_ID`] and [`ACCOUNT_ID`], and
//! [`Operation::user_from_message`] reads them, checked as the browser SDK's cookies are.
//!
//! [`OperationGuard::inject_user`]: crate::OperationGuard::inject_user
//! [`Operation::user_from_message`]: crate::Operation::user_from_message

use std::collections::{BTreeMap, HashMap};

use tracelink_core::carrier::headers;
use tracelink_core::extract::{self, Incoming, Origin};
use tracelink_core::{Correlation, Propagation, TraceParent, UserContext};

/// The property carrying the W3C context in the Azure messaging SDKs.
pub const DIAGNOSTIC_ID: &str = "Diagnostic-Id";
/// The property carrying `ai.user.id` (opt-in).
pub const USER_ID: &str = "ai.user.id";
/// The property carrying `ai.session.id` (opt-in).
pub const SESSION_ID: &str = "ai.session.id";
/// The property carrying `ai.user.authUserId` (opt-in).
pub const AUTH_USER_ID: &str = "ai.user.authUserId";
/// The property carrying `ai.user.accountId` (opt-in).
pub const ACCOUNT_ID: &str = "ai.user.accountId";

/// A message's application properties, as text.
///
/// ```
/// use std::collections::HashMap;
/// use tracelink::messaging::MessageProperties;
///
/// let mut props: HashMap<String, String> = HashMap::new();
/// props.set_property("Diagnostic-Id", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
/// assert!(props.property("Diagnostic-Id").is_some());
/// ```
pub trait MessageProperties {
    /// The value of `key`, if it is text.
    fn property(&self, key: &str) -> Option<&str>;
    /// Sets `key` to `value`.
    fn set_property(&mut self, key: &str, value: String);
}

impl MessageProperties for HashMap<String, String> {
    fn property(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
    fn set_property(&mut self, key: &str, value: String) {
        self.insert(key.to_owned(), value);
    }
}

impl MessageProperties for BTreeMap<String, String> {
    fn property(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
    fn set_property(&mut self, key: &str, value: String) {
        self.insert(key.to_owned(), value);
    }
}

impl<T: MessageProperties + ?Sized> MessageProperties for &mut T {
    fn property(&self, key: &str) -> Option<&str> {
        (**self).property(key)
    }
    fn set_property(&mut self, key: &str, value: String) {
        (**self).set_property(key, value)
    }
}

/// The names written, each with the header it stands for.
const NAMES: [(&str, &str); 7] = [
    (headers::TRACEPARENT, "traceparent"),
    (headers::TRACESTATE, "tracestate"),
    (headers::REQUEST_ID, "Request-Id"),
    (headers::CORRELATION_CONTEXT, "Correlation-Context"),
    (headers::BAGGAGE, "baggage"),
    (headers::REQUEST_CONTEXT, "Request-Context"),
    ("diagnostic-id", DIAGNOSTIC_ID),
];

fn lookup<'a, P: MessageProperties + ?Sized>(props: &'a P, header: &str) -> Option<&'a str> {
    let written = NAMES.iter().find(|(h, _)| *h == header).map(|(_, w)| *w);
    written
        .and_then(|w| props.property(w))
        .or_else(|| props.property(header))
}

/// Writes the context of `dependency` (the enqueue) into `props`, never replacing a property
/// that is there.
pub fn inject<P: MessageProperties + ?Sized>(
    dependency: &Correlation,
    propagation: &Propagation,
    props: &mut P,
) {
    let mut h: HashMap<String, String> = HashMap::new();
    propagation.inject(dependency, None, &mut h);
    let diagnostic = h
        .get(headers::TRACEPARENT)
        .or_else(|| h.get(headers::REQUEST_ID))
        .cloned();
    if let Some(d) = diagnostic {
        h.insert("diagnostic-id".into(), d);
    }
    for (header, written) in NAMES {
        if let Some(v) = h.remove(header)
            && lookup(props, header).is_none()
        {
            props.set_property(written, v);
        }
    }
}

/// Reads the producer's context from `props`: `None` when there is none that is valid.
pub fn extract<P: MessageProperties + ?Sized>(
    props: &P,
    propagation: &Propagation,
) -> Option<Incoming> {
    let mut h: HashMap<String, String> = HashMap::new();
    for (header, _) in NAMES {
        if let Some(v) = lookup(props, header) {
            h.insert(header.to_owned(), v.to_owned());
        }
    }
    if let Some(d) = h.remove("diagnostic-id") {
        let target = if TraceParent::parse(&d).is_ok() {
            headers::TRACEPARENT
        } else {
            headers::REQUEST_ID
        };
        if !h.contains_key(headers::TRACEPARENT) && !h.contains_key(headers::REQUEST_ID) {
            h.insert(target.to_owned(), d);
        }
    }
    let incoming = extract::extract(&h, propagation);
    (incoming.origin() != Origin::New).then_some(incoming)
}

/// Writes the user context into `props` (opt-in), never replacing a property there.
pub fn inject_user<P: MessageProperties + ?Sized>(user: &UserContext, props: &mut P) {
    for (key, value) in [
        (USER_ID, user.user_id()),
        (SESSION_ID, user.session_id()),
        (AUTH_USER_ID, user.auth_user_id()),
        (ACCOUNT_ID, user.account_id()),
    ] {
        if let Some(v) = value
            && props.property(key).is_none()
        {
            props.set_property(key, v.to_owned());
        }
    }
}

/// Reads the user context from `props`, checked as the browser SDK's cookies are.
pub fn extract_user<P: MessageProperties + ?Sized>(props: &P) -> UserContext {
    UserContext::from_untrusted(
        props.property(USER_ID),
        props.property(SESSION_ID),
        props.property(AUTH_USER_ID),
        props.property(ACCOUNT_ID),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracelink_core::{PropagationMode, SamplingDecision};

    #[test]
    fn the_consumer_reads_what_the_producer_wrote() {
        let cfg = Propagation::default();
        let producer = Correlation::new_root(&cfg, SamplingDecision::KEEP_ALL);
        let enqueue = producer.new_child();
        let mut props: HashMap<String, String> = HashMap::new();
        inject(&enqueue, &cfg, &mut props);
        let tp = enqueue.traceparent().unwrap().to_header();
        assert_eq!(props["traceparent"], tp.as_str());
        assert_eq!(props[DIAGNOSTIC_ID], tp.as_str());
        assert!(props["Request-Id"].starts_with('|'));
        let incoming = extract(&props, &cfg).unwrap();
        assert_eq!(incoming.trace_id(), enqueue.trace_id());
        assert_eq!(incoming.parent_id(), Some(enqueue.id()));
    }

    #[test]
    fn diagnostic_id_alone_is_enough_in_either_format() {
        let cfg = Propagation::default();
        let mut props: HashMap<String, String> = HashMap::new();
        props.insert(
            "Diagnostic-Id".into(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        );
        let i = extract(&props, &cfg).unwrap();
        assert_eq!(
            i.trace_id().to_hex().as_str(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        let mut props: HashMap<String, String> = HashMap::new();
        props.insert("diagnostic-id".into(), "|abc123.1.".into());
        let i = extract(
            &props,
            &Propagation::default().mode(PropagationMode::Hierarchical),
        );
        assert_eq!(i.unwrap().parent_id().unwrap().to_string(), "|abc123.1.");
    }

    #[test]
    fn hostile_properties_are_ignored() {
        let cfg = Propagation::default();
        for (k, v) in [
            (
                "traceparent",
                "00-00000000000000000000000000000000-b7ad6b7169203331-01".to_owned(),
            ),
            ("Diagnostic-Id", "x".repeat(100_000)),
            ("Request-Id", "\u{0}\u{1}|".to_owned()),
            ("traceparent", "zz".to_owned()),
        ] {
            let mut props: HashMap<String, String> = HashMap::new();
            props.insert(k.into(), v);
            assert!(extract(&props, &cfg).is_none(), "{k}");
        }
        let mut props: HashMap<String, String> = HashMap::new();
        props.insert(USER_ID.into(), "<script>".into());
        props.insert(SESSION_ID.into(), "s1".into());
        let u = extract_user(&props);
        assert_eq!((u.user_id(), u.session_id()), (None, Some("s1")));
    }
}
