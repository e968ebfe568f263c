//! Context tags (`ai.*` keys) of an item.

use std::borrow::Cow;
use std::sync::Arc;

use crate::id::AsciiBuf;

/// `ai.operation.id`: the trace-id.
pub const OPERATION_ID: &str = "ai.operation.id";
/// `ai.operation.parentId`: the id of the item that caused this one (SPEC 1.4).
pub const OPERATION_PARENT_ID: &str = "ai.operation.parentId";
/// `ai.operation.name`: the name of the request that started the operation in this service.
pub const OPERATION_NAME: &str = "ai.operation.name";
/// `ai.operation.syntheticSource`.
pub const OPERATION_SYNTHETIC_SOURCE: &str = "ai.operation.syntheticSource";
/// `ai.cloud.role`: the service's name on the application map.
pub const CLOUD_ROLE: &str = "ai.cloud.role";
/// `ai.cloud.roleInstance`: the instance (host, pod).
pub const CLOUD_ROLE_INSTANCE: &str = "ai.cloud.roleInstance";
/// `ai.application.ver`.
pub const APPLICATION_VERSION: &str = "ai.application.ver";
/// `ai.user.id` (SPEC 6.4).
pub const USER_ID: &str = "ai.user.id";
/// `ai.user.authUserId` (SPEC 6.4).
pub const USER_AUTH_USER_ID: &str = "ai.user.authUserId";
/// `ai.user.accountId` (SPEC 6.4).
pub const USER_ACCOUNT_ID: &str = "ai.user.accountId";
/// `ai.session.id` (SPEC 6.4).
pub const SESSION_ID: &str = "ai.session.id";
/// `ai.location.ip`: the client's address.
pub const LOCATION_IP: &str = "ai.location.ip";
/// `ai.internal.sdkVersion`.
pub const INTERNAL_SDK_VERSION: &str = "ai.internal.sdkVersion";

/// The `ai.internal.sdkVersion` tracelink writes.
pub const SDK_VERSION: &str = concat!("rs:tracelink:", env!("CARGO_PKG_VERSION"));

/// A tag value. Values every item shares (a role, the SDK version) and ids are stored without
/// copying or allocating; anything else is an owned string.
#[derive(Clone, Debug)]
pub struct TagValue(Repr);

#[derive(Clone, Debug)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
    Id(AsciiBuf<32>, u8),
    Owned(String),
}

impl TagValue {
    /// A value that lives for the whole program.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Repr::Static(s))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
            Repr::Id(buf, len) => &buf.as_str()[..usize::from(*len)],
            Repr::Owned(s) => s,
        }
    }

    /// The text's bytes, without checking again that an inline id is UTF-8 (it is ASCII):
    /// what the envelope writer reads for every tag of every item.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Id(buf, len) => &buf.as_bytes()[..usize::from(*len)],
            _ => self.as_str().as_bytes(),
        }
    }

    /// An id of at most 32 ASCII chars, stored inline.
    pub(crate) fn id<const N: usize>(hex: AsciiBuf<N>) -> Self {
        let mut b = [b'0'; 32];
        let s = hex.as_bytes();
        let n = s.len().min(32);
        b[..n].copy_from_slice(&s[..n]);
        Self(Repr::Id(AsciiBuf::from_ascii(b), n as u8))
    }
}

impl PartialEq for TagValue {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl From<String> for TagValue {
    fn from(s: String) -> Self {
        Self(Repr::Owned(s))
    }
}

impl From<&str> for TagValue {
    fn from(s: &str) -> Self {
        Self(Repr::Owned(s.to_owned()))
    }
}

impl From<&String> for TagValue {
    fn from(s: &String) -> Self {
        Self(Repr::Owned(s.clone()))
    }
}

impl From<Arc<str>> for TagValue {
    fn from(s: Arc<str>) -> Self {
        Self(Repr::Shared(s))
    }
}

impl From<&Arc<str>> for TagValue {
    fn from(s: &Arc<str>) -> Self {
        Self(Repr::Shared(Arc::clone(s)))
    }
}

/// An item's context tags: `ai.*` keys to string values, in insertion order, keys unique.
///
/// ```
/// use tracelink_core::model::{Tags, tags};
///
/// let mut t = Tags::new();
/// t.insert(tags::CLOUD_ROLE, "orders-api");
/// t.insert(tags::CLOUD_ROLE, "billing");
/// assert_eq!(t.get(tags::CLOUD_ROLE), Some("billing"));
/// assert!(!t.insert_if_absent(tags::CLOUD_ROLE, "other"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tags(Vec<(Cow<'static, str>, TagValue)>);

impl Tags {
    /// No tags.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Room for `n` more tags without reallocating.
    pub fn reserve(&mut self, n: usize) {
        self.0.reserve(n);
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key`, replacing a value already there.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<TagValue>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Sets `key` unless it is already set; returns whether it was set.
    pub fn insert_if_absent(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<TagValue>,
    ) -> bool {
        let key = key.into();
        if self.get(&key).is_some() {
            return false;
        }
        self.0.push((key, value.into()));
        true
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1.as_str().to_owned())
    }

    /// The tags in insertion order, values as stored.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &TagValue)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The tags in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_str()))
    }

    /// How many tags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
