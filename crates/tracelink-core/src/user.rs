//! The user context of an operation (SPEC 6.4): the user, session and authenticated user an
//! operation is for.
//!
//! The usage tools of Application Insights (Users, Sessions, Funnels, Retention, Cohorts,
//! User flows) count items by `ai.user.id` and `ai.session.id`, so every item of an
//! operation carries them, not only its Request: [`Correlation::annotate`] adds the
//! operation's user context to every item it annotates (requests, dependencies, logs,
//! exceptions, events, metrics, page views), never replacing a tag the item already has.
//!
//! The server layer sets it from the browser SDK's cookies ([`crate::cookie`]); a handler
//! sets the authenticated user once it knows it ([`Correlation::set_authenticated_user`]),
//! and items recorded from then on, the Request item included, carry it.
//!
//! ```
//! use tracelink_core::model::{Event, tags};
//! use tracelink_core::{Correlation, Propagation, SamplingDecision, UserContext};
//!
//! let request = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
//! request.set_user(UserContext::new().user("Xb3").session("s1"));
//! let call = request.new_child();
//! call.set_authenticated_user("alice@contoso.com", None);
//!
//! // Any item of the operation, made from any of its contexts, carries all three.
//! let event = request.child_item(Event::new("checkout"));
//! assert_eq!(event.tags.get(tags::USER_ID), Some("Xb3"));
//! assert_eq!(event.tags.get(tags::SESSION_ID), Some("s1"));
//! assert_eq!(event.tags.get(tags::USER_AUTH_USER_ID), Some("alice@contoso.com"));
//! ```
//!
//! [`Correlation::annotate`]: crate::Correlation::annotate
//! [`Correlation::set_authenticated_user`]: crate::Correlation::set_authenticated_user

use std::sync::{Arc, Mutex, PoisonError};

use crate::cookie::{self, UserCookies};
use crate::model::{Telemetry, tags};

/// Who an operation is for: user, session, authenticated user and account ids.
///
/// ```
/// use tracelink_core::UserContext;
///
/// let user = UserContext::new().user("Xb3").authenticated_user("alice", Some("contoso"));
/// assert_eq!(user.user_id(), Some("Xb3"));
/// assert_eq!(user.account_id(), Some("contoso"));
/// assert_eq!(user.session_id(), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserContext {
    user_id: Option<Arc<str>>,
    session_id: Option<Arc<str>>,
    auth_user_id: Option<Arc<str>>,
    account_id: Option<Arc<str>>,
}

impl UserContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ids the browser SDK's cookies of a request carry.
    ///
    /// ```
    /// use tracelink_core::UserContext;
    /// use tracelink_core::cookie::UserCookies;
    ///
    /// let c = UserCookies::parse_lines(["ai_user=u1|2026-01-01T00:00:00.000Z; ai_session=s1|1|2"]);
    /// let user = UserContext::from_cookies(&c);
    /// assert_eq!((user.user_id(), user.session_id()), (Some("u1"), Some("s1")));
    /// ```
    pub fn from_cookies(cookies: &UserCookies) -> Self {
        let arc = |s: &Option<String>| s.as_deref().map(Arc::from);
        Self {
            user_id: arc(&cookies.user_id),
            session_id: arc(&cookies.session_id),
            auth_user_id: arc(&cookies.auth_user_id),
            account_id: arc(&cookies.account_id),
        }
    }

    /// A context from values that crossed a trust boundary (message properties, say), checked
    /// as the browser SDK's cookies are (SPEC 6.4): user ids of at most 128 and session ids
    /// of at most 64 chars of `A-Za-z0-9+/=-_`; authenticated user and account ids of at
    /// most 1024 chars with no control character, `,`, `;`, `=` or `|`. A value that fails
    /// is left out.
    ///
    /// ```
    /// use tracelink_core::UserContext;
    ///
    /// let u = UserContext::from_untrusted(Some("u1"), Some("bad session!"), Some("alice"), None);
    /// assert_eq!((u.user_id(), u.session_id(), u.auth_user_id()), (Some("u1"), None, Some("alice")));
    /// ```
    pub fn from_untrusted(
        user_id: Option<&str>,
        session_id: Option<&str>,
        auth_user_id: Option<&str>,
        account_id: Option<&str>,
    ) -> Self {
        let arc = |s: Option<String>| s.map(Arc::from);
        Self {
            user_id: arc(user_id.and_then(|s| cookie::valid_id(s, 128))),
            session_id: arc(session_id.and_then(|s| cookie::valid_id(s, 64))),
            auth_user_id: arc(auth_user_id.and_then(cookie::valid_auth)),
            account_id: arc(account_id.and_then(cookie::valid_auth)),
        }
    }

    /// Sets `ai.user.id`: the anonymous user (the browser SDK's `ai_user` cookie).
    pub fn user(mut self, id: impl Into<Arc<str>>) -> Self {
        self.user_id = Some(id.into());
        self
    }

    /// Sets `ai.session.id` (the browser SDK's `ai_session` cookie).
    pub fn session(mut self, id: impl Into<Arc<str>>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Sets `ai.user.authUserId` and, when given, `ai.user.accountId`.
    pub fn authenticated_user(
        mut self,
        auth_user_id: impl Into<Arc<str>>,
        account_id: Option<&str>,
    ) -> Self {
        self.auth_user_id = Some(auth_user_id.into());
        if let Some(a) = account_id {
            self.account_id = Some(a.into());
        }
        self
    }

    /// `ai.user.id`.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// `ai.session.id`.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// `ai.user.authUserId`.
    pub fn auth_user_id(&self) -> Option<&str> {
        self.auth_user_id.as_deref()
    }

    /// `ai.user.accountId`.
    pub fn account_id(&self) -> Option<&str> {
        self.account_id.as_deref()
    }

    /// Whether no id is set.
    pub fn is_empty(&self) -> bool {
        self.user_id.is_none()
            && self.session_id.is_none()
            && self.auth_user_id.is_none()
            && self.account_id.is_none()
    }

    /// Adds the ids as tags, never replacing a tag the item has.
    pub fn annotate(&self, item: &mut Telemetry) {
        for (key, value) in [
            (tags::USER_ID, &self.user_id),
            (tags::SESSION_ID, &self.session_id),
            (tags::USER_AUTH_USER_ID, &self.auth_user_id),
            (tags::USER_ACCOUNT_ID, &self.account_id),
        ] {
            if let Some(v) = value {
                item.tags.insert_if_absent(key, v);
            }
        }
    }
}

/// The user context an operation shares among all its contexts: a lock around the shared
/// value, taken once per annotated item (uncontended, a few nanoseconds), and sixteen bytes in
/// the operation.
#[derive(Debug, Default)]
pub(crate) struct UserCell {
    user: Mutex<Option<Arc<UserContext>>>,
}

impl UserCell {
    pub(crate) fn get(&self) -> Option<Arc<UserContext>> {
        self.user
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn update(&self, f: impl FnOnce(UserContext) -> UserContext) {
        let mut slot = self.user.lock().unwrap_or_else(PoisonError::into_inner);
        let current = slot.as_deref().cloned().unwrap_or_default();
        let next = f(current);
        *slot = (!next.is_empty()).then(|| Arc::new(next));
    }
}
