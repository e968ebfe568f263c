//! Entra ID (Azure AD) authentication: a [`TokenProvider`] gives access tokens for ingestion's
//! scope; the exporter keeps the current one, refreshes it before it expires on its own
//! task, and sends it as `Authorization: Bearer <token>` with every post.
//!
//! ```no_run
//! use std::time::{Duration, SystemTime};
//! use tracelink_export::{AccessToken, CredentialError, Exporter};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let exporter = Exporter::builder("InstrumentationKey=00000000-0000-0000-0000-000000000000")
//!     .credential(|scope: &str| {
//!         assert_eq!(scope, "https://monitor.azure.com//.default");
//!         async {
//!             // Ask the identity platform; here, a token valid for an hour.
//!             let token = std::env::var("MY_TOKEN").map_err(CredentialError::new)?;
//!             Ok(AccessToken::new(token, SystemTime::now() + Duration::from_secs(3600)))
//!         }
//!     })
//!     .build()?;
//! # let _ = exporter; Ok(()) }
//! ```
//!
//! With feature `azure-identity`, `AzureCredential` takes its tokens from the Azure SDK's
//! credentials (managed identity, workload identity, Azure CLI, a client secret).
//!
//! ## When tokens are fetched
//!
//! The first token is asked for when the exporter starts; each later one when the current
//! token is 5 minutes from expiry, or half-way through its life if it lives for less than 10
//! minutes ([`REFRESH_BEFORE_EXPIRY`]). All of it happens on the exporter's task: the request
//! path never waits for a token. A post waits for a token (at most the post timeout) only
//! while none is valid, at the start or after a refusal.
//!
//! ## When ingestion refuses
//!
//! A 401 or 403 answer to a post that carried a token is not a reason to drop the batch: the
//! token is set aside, a new one is asked for at once, and the batch is kept (in the spool)
//! and sent again after the usual backoff, as the Node SDK does. Every such answer counts in
//! [`Stats::auth_refused`](crate::Stats::auth_refused). When a token fetched after a refusal is
//! refused as well, the identity lacks the right to publish (the *Monitoring Metrics
//! Publisher* role on the Application Insights resource) and a WARN event says so (target
//! `tracelink_export`, at most once a minute). A provider that fails counts in
//! [`Stats::token_failures`](crate::Stats::token_failures), is asked again after 1 s, 2 s, ...
//! up to a minute, and is reported by a WARN event at most once a minute; meanwhile batches
//! wait in the spool. Without a credential, 401 and 403 are refusals like any other (SPEC
//! 7.5): the batch is dropped and counted.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use http::HeaderValue;
use tokio::sync::{Notify, watch};

use crate::stats::Counters;
use crate::transport::BoxFuture;

/// How long before expiry a token is refreshed (at most half its lifetime).
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Longest wait for one token from a provider.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// The first wait after a provider failed; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// The least time between two warnings of one kind.
const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Gives Entra ID access tokens. Implemented for closures `Fn(&str) -> impl Future<Output =
/// Result<AccessToken, CredentialError>>` (the scope is the argument), and with feature
/// `azure-identity` by `AzureCredential`.
pub trait TokenProvider: Send + Sync + 'static {
    /// A token for `scope` (by default `https://monitor.azure.com//.default`).
    fn token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, CredentialError>>;
}

impl<F, Fut> TokenProvider for F
where
    F: Fn(&str) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<AccessToken, CredentialError>> + Send + 'static,
{
    fn token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, CredentialError>> {
        Box::pin(self(scope))
    }
}

/// An access token and when it expires. Its `Debug` never shows the token.
#[derive(Clone)]
pub struct AccessToken {
    token: String,
    expires_at: SystemTime,
}

impl AccessToken {
    /// A token valid until `expires_at`.
    pub fn new(token: impl Into<String>, expires_at: SystemTime) -> Self {
        Self {
            token: token.into(),
            expires_at,
        }
    }

    /// The token itself. Do not log it.
    pub fn secret(&self) -> &str {
        &self.token
    }

    /// When it expires.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"…")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why no token could be had.
#[derive(Debug)]
pub struct CredentialError {
    kind: CredentialErrorKind,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialErrorKind {
    /// The provider could not give a token (its error is the source).
    Unavailable,
    /// The provider took longer than a minute.
    Timeout,
    /// The token had expired already, or cannot be sent in a header.
    InvalidToken,
}

impl CredentialError {
    /// A provider's failure, with its cause.
    pub fn new(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind: CredentialErrorKind::Unavailable,
            source: Some(source.into()),
        }
    }

    fn of(kind: CredentialErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// What went wrong.
    pub fn kind(&self) -> CredentialErrorKind {
        self.kind
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            CredentialErrorKind::Unavailable => "no access token from the credential",
            CredentialErrorKind::Timeout => "the credential gave no access token in time",
            CredentialErrorKind::InvalidToken => "the credential's access token is not usable",
        })
    }
}

impl StdError for CredentialError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// The exporter's current Entra ID token, for another client of the same resource (the
/// Live Metrics client): [`Exporter::bearer_token`](crate::Exporter::bearer_token). Cheap to
/// clone; its `Debug` never shows the token.
#[derive(Clone, Debug)]
pub struct BearerToken {
    cache: Arc<TokenCache>,
}

impl BearerToken {
    pub(crate) fn new(cache: Arc<TokenCache>) -> Self {
        Self { cache }
    }

    /// `Bearer <token>`, marked sensitive, while the exporter holds a valid token. Without
    /// one, `None`, and the exporter's task is asked for a new token. Never waits.
    pub fn header(&self) -> Option<HeaderValue> {
        self.cache.valid_or_ask().map(|b| b.header)
    }
}

/// The token a post carries: its header and its place in the sequence of tokens.
#[derive(Clone, Debug)]
pub(crate) struct Bearer {
    pub(crate) header: HeaderValue,
    expires_at: SystemTime,
    generation: u64,
}

#[derive(Debug, Default)]
struct State {
    current: Option<Bearer>,
    generation: u64,
    /// The last token ingestion refused, until a post gets through.
    refused: Option<u64>,
    warned_refused: Option<Instant>,
    warned_failed: Option<Instant>,
    /// The task fetches, or will without being asked (it waits out a failure): asking it
    /// would only leave a request that sets off a needless fetch later.
    busy: bool,
    /// The task was asked and has not started on it yet.
    asked: bool,
}

/// The exporter's current token, refreshed by a task of its own.
pub(crate) struct TokenCache {
    provider: Arc<dyn TokenProvider>,
    scope: String,
    state: Mutex<State>,
    /// A token arrived, or a fetch failed.
    changed: Notify,
    /// Asks the task to fetch now.
    refresh: Notify,
    stats: Arc<Counters>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// When to fetch the next token: [`REFRESH_BEFORE_EXPIRY`] before `expires_at`, at most
/// half-way through its life.
fn refresh_delay(now: SystemTime, expires_at: SystemTime) -> Duration {
    let life = expires_at.duration_since(now).unwrap_or_default();
    life - REFRESH_BEFORE_EXPIRY.min(life / 2)
}

fn retry_delay(failures: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1 << failures.saturating_sub(1).min(6))
        .min(MAX_RETRY)
}

fn due(last: &mut Option<Instant>, now: Instant) -> bool {
    if last.is_some_and(|at| now.saturating_duration_since(at) < WARN_INTERVAL) {
        return false;
    }
    *last = Some(now);
    true
}

impl TokenCache {
    pub(crate) fn new(
        provider: Arc<dyn TokenProvider>,
        scope: String,
        stats: Arc<Counters>,
    ) -> Self {
        Self {
            provider,
            scope,
            state: Mutex::new(State {
                busy: true,
                ..State::default()
            }),
            changed: Notify::new(),
            refresh: Notify::new(),
            stats,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current token if it is valid; else asks the task for a new one.
    fn valid_or_ask(&self) -> Option<Bearer> {
        let mut st = self.state();
        let valid = st
            .current
            .clone()
            .filter(|b| b.expires_at > SystemTime::now());
        if valid.is_none() {
            self.ask(&mut st);
        }
        valid
    }

    fn ask(&self, st: &mut State) {
        if !st.busy && !st.asked {
            st.asked = true;
            self.refresh.notify_one();
        }
    }

    /// The current token; while none is valid, asks for one and waits at most `wait`.
    pub(crate) async fn bearer(&self, wait: Duration) -> Option<Bearer> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(b) = self.valid_or_ask() {
                return Some(b);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.valid_or_ask();
            }
        }
    }

    /// Ingestion answered `status` (401 or 403) to a post carrying `bearer`: the token is set
    /// aside, and a new one is asked for.
    pub(crate) fn refused(&self, bearer: &Bearer, status: u16) {
        Counters::add(&self.stats.auth_refused, 1);
        let mut st = self.state();
        let current = st
            .current
            .as_ref()
            .is_some_and(|c| c.generation == bearer.generation);
        if current {
            st.current = None;
        }
        // A token fetched after an earlier refusal, refused too: not a matter of expiry.
        let again = st.refused.is_some_and(|g| g < bearer.generation);
        st.refused = Some(
            st.refused
                .map_or(bearer.generation, |g| g.max(bearer.generation)),
        );
        if again && due(&mut st.warned_refused, Instant::now()) {
            tracing::warn!(target: "tracelink_export", status, refusals = self.stats.auth_refused.load(std::sync::atomic::Ordering::Relaxed),
                "ingestion refuses the Entra ID token even after a refresh: does the identity have the Monitoring Metrics Publisher role on the Application Insights resource? Batches wait in the spool");
        } else {
            tracing::debug!(target: "tracelink_export", status, "ingestion refused the Entra ID token: fetching a new one");
        }
        if current {
            self.ask(&mut st);
        }
    }

    /// A post with a token got an answer other than 401 or 403.
    pub(crate) fn accepted(&self) {
        self.state().refused = None;
    }

    /// Fetches tokens until `cancel` is set: now, before each expires, and when asked.
    pub(crate) async fn run(self: Arc<Self>, mut cancel: watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            let fetched = tokio::select! {
                biased;
                _ = cancel.wait_for(|c| *c) => return,
                r = tokio::time::timeout(FETCH_TIMEOUT, self.provider.token(&self.scope)) => r,
            };
            let now = SystemTime::now();
            let result = match fetched {
                Err(_) => Err(CredentialError::of(CredentialErrorKind::Timeout)),
                Ok(Err(e)) => Err(e),
                Ok(Ok(t)) if t.expires_at <= now => {
                    Err(CredentialError::of(CredentialErrorKind::InvalidToken))
                }
                Ok(Ok(t)) => match HeaderValue::try_from(format!("Bearer {}", t.token)) {
                    Ok(mut header) => {
                        header.set_sensitive(true);
                        Ok((header, t.expires_at))
                    }
                    Err(_) => Err(CredentialError::of(CredentialErrorKind::InvalidToken)),
                },
            };
            let wait = match result {
                Ok((header, expires_at)) => {
                    failures = 0;
                    let mut st = self.state();
                    st.generation += 1;
                    st.current = Some(Bearer {
                        header,
                        expires_at,
                        generation: st.generation,
                    });
                    drop(st);
                    tracing::debug!(target: "tracelink_export", "Entra ID token obtained");
                    self.changed.notify_waiters();
                    Some(refresh_delay(now, expires_at))
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    Counters::add(&self.stats.token_failures, 1);
                    let warn = due(&mut self.state().warned_failed, Instant::now());
                    let cause = e.source().map(|s| s.to_string()).unwrap_or_default();
                    if warn {
                        tracing::warn!(target: "tracelink_export", error = %e, cause, failures,
                            "no Entra ID token for ingestion: batches wait in the spool");
                    } else {
                        tracing::debug!(target: "tracelink_export", error = %e, cause, failures, "no Entra ID token");
                    }
                    self.changed.notify_waiters();
                    let delay = retry_delay(failures);
                    // Asked again only after the retry delay, however often posts ask.
                    tokio::select! {
                        biased;
                        _ = cancel.wait_for(|c| *c) => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    None
                }
            };
            if let Some(wait) = wait {
                self.state().busy = false;
                tokio::select! {
                    biased;
                    _ = cancel.wait_for(|c| *c) => return,
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.refresh.notified() => {}
                }
                let mut st = self.state();
                (st.busy, st.asked) = (true, false);
            }
        }
    }
}

#[cfg(feature = "azure-identity")]
mod azure;
#[cfg(feature = "azure-identity")]
#[cfg_attr(docsrs, doc(cfg(feature = "azure-identity")))]
pub use azure::AzureCredential;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshed_five_minutes_before_expiry_or_half_way() {
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        assert_eq!(refresh_delay(now, now + hour), hour - REFRESH_BEFORE_EXPIRY);
        assert_eq!(
            refresh_delay(now, now + Duration::from_secs(4)),
            Duration::from_secs(2)
        );
        assert_eq!(refresh_delay(now, now - hour), Duration::ZERO);
        let delays: Vec<_> = (1..=9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn tokens_and_errors_never_show_the_secret() {
        let t = AccessToken::new("s3cr3t", SystemTime::UNIX_EPOCH);
        assert!(!format!("{t:?}").contains("s3cr3t"));
        assert_eq!(t.secret(), "s3cr3t");
        let e = CredentialError::new("no identity endpoint");
        assert_eq!(e.kind(), CredentialErrorKind::Unavailable);
        assert_eq!(e.to_string(), "no access token from the credential");
        assert_eq!(e.source().unwrap().to_string(), "no identity endpoint");
    }

    #[tokio::test]
    async fn a_refusal_sets_the_token_aside_and_fetches_another() {
        let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let calls = n.clone();
        let provider = move |_: &str| {
            let i = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move {
                Ok(AccessToken::new(
                    format!("t{i}"),
                    SystemTime::now() + Duration::from_secs(3600),
                ))
            }
        };
        let stats = Arc::new(Counters::default());
        let cache = Arc::new(TokenCache::new(
            Arc::new(provider),
            "s".into(),
            stats.clone(),
        ));
        let (stop, cancel) = watch::channel(false);
        tokio::spawn(cache.clone().run(cancel));
        let first = cache.bearer(Duration::from_secs(5)).await.unwrap();
        assert_eq!(first.header, "Bearer t1");
        assert!(first.header.is_sensitive());
        cache.refused(&first, 401);
        let second = cache.bearer(Duration::from_secs(5)).await.unwrap();
        assert_eq!(second.header, "Bearer t2");
        // A refusal of a token that is no longer current changes nothing.
        cache.refused(&first, 401);
        assert_eq!(
            cache.bearer(Duration::ZERO).await.unwrap().header,
            "Bearer t2"
        );
        assert_eq!(
            stats
                .auth_refused
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        stop.send_replace(true);
    }
}
