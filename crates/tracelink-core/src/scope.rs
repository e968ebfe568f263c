//! The current correlation context: which request or span outgoing calls and log lines
//! belong to.
//!
//! A [`Scoped`] future makes a [`Correlation`] current on whatever thread polls it, for the
//! duration of each poll, so it works on multi-thread runtimes where a task moves between
//! threads. Nothing is cloned per poll: the context is moved into a thread-local and back.
//! Spawned tasks do not inherit it by themselves; wrap them with
//! [`CorrelationExt::in_current_correlation`].
//!
//! ```
//! use tracelink_core::scope::{self, CorrelationExt};
//! use tracelink_core::{Correlation, Propagation, SamplingDecision};
//!
//! let request = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
//! let id = request.id().clone();
//! let work = async { scope::current().map(|c| c.id().clone()) }.in_correlation(request);
//! // Any executor works; this one polls once.
//! let seen = futures_lite_block_on(work);
//! assert_eq!(seen, Some(id));
//! assert!(scope::current().is_none());
//! # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let mut f = std::pin::pin!(f);
//! #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
//! #     match f.as_mut().poll(&mut cx) { std::task::Poll::Ready(v) => v, _ => unreachable!() }
//! # }
//! ```

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::cell::RefCell;

use pin_project_lite::pin_project;

use crate::correlation::Correlation;

thread_local! {
    static CURRENT: RefCell<Option<Correlation>> = const { RefCell::new(None) };
}

/// A clone of the current context, if any.
pub fn current() -> Option<Correlation> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs `f` with the current context, without cloning it.
pub fn with_current<R>(f: impl FnOnce(Option<&Correlation>) -> R) -> R {
    CURRENT.with(|c| f(c.borrow().as_ref()))
}

/// Puts `value` in the slot, returning what was there.
fn swap(value: Option<Correlation>) -> Option<Correlation> {
    CURRENT.with(|c| c.replace(value))
}

/// Makes `value` the current context on this thread and returns the previous one, for
/// integrations whose enter and exit are separate callbacks (a `tracing` layer's `on_enter` and
/// `on_exit`). Put the previous value back when leaving, in reverse order. Prefer [`enter`] or
/// [`Scoped`] elsewhere.
pub fn replace_current(value: Option<Correlation>) -> Option<Correlation> {
    swap(value)
}

/// Makes `correlation` current on this thread until the guard is dropped, for synchronous
/// code. Guards must be dropped in reverse order of creation.
///
/// ```
/// use tracelink_core::{scope, Correlation, Propagation, SamplingDecision};
///
/// let c = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
/// {
///     let _g = scope::enter(c.clone());
///     assert_eq!(scope::current().unwrap().id(), c.id());
/// }
/// assert!(scope::current().is_none());
/// ```
pub fn enter(correlation: Correlation) -> EnterGuard {
    EnterGuard {
        previous: swap(Some(correlation)),
    }
}

/// Restores the previous context when dropped; see [`enter`].
#[must_use = "the context is current only while the guard lives"]
#[derive(Debug)]
pub struct EnterGuard {
    previous: Option<Correlation>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        swap(self.previous.take());
    }
}

pin_project! {
    /// A future that runs with a correlation context current; see [`CorrelationExt`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Scoped<F> {
        #[pin]
        inner: F,
        correlation: Option<Correlation>,
    }
}

impl<F> Scoped<F> {
    /// Wraps `inner` so that `correlation` is current while it is polled. With `None` the
    /// current context is left as it is (a pass-through).
    pub fn new(inner: F, correlation: Option<Correlation>) -> Self {
        Self { inner, correlation }
    }

    /// The context this future runs in.
    pub fn correlation(&self) -> Option<&Correlation> {
        self.correlation.as_ref()
    }
}

/// Moves the context back out of the thread-local after a poll, even when it panics.
struct Restore<'a> {
    slot: &'a mut Option<Correlation>,
    previous: Option<Option<Correlation>>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if let Some(prev) = self.previous.take() {
            *self.slot = swap(prev);
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.correlation.is_none() {
            return this.inner.poll(cx);
        }
        let previous = swap(this.correlation.take());
        let _restore = Restore {
            slot: this.correlation,
            previous: Some(previous),
        };
        this.inner.poll(cx)
    }
}

/// Runs futures inside a correlation context.
pub trait CorrelationExt: Sized {
    /// Runs `self` with `correlation` as the current context.
    fn in_correlation(self, correlation: Correlation) -> Scoped<Self> {
        Scoped::new(self, Some(correlation))
    }

    /// Runs `self` with the context that is current now (for `tokio::spawn` and friends).
    fn in_current_correlation(self) -> Scoped<Self> {
        Scoped::new(self, current())
    }
}

impl<F: Future> CorrelationExt for F {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Propagation, SamplingDecision};
    use std::task::Waker;

    fn root() -> Correlation {
        Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL)
    }

    fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn nested_scopes_restore_the_outer_one() {
        let (a, b) = (root(), root());
        let (ida, idb) = (a.id().clone(), b.id().clone());
        let inner = async move { current().unwrap().id().clone() }.in_correlation(b);
        let outer = async move {
            let before = current().unwrap().id().clone();
            let inner = inner.await;
            let after = current().unwrap().id().clone();
            (before, inner, after)
        }
        .in_correlation(a);
        let mut outer = std::pin::pin!(outer);
        let Poll::Ready((before, inner, after)) = poll_once(outer.as_mut()) else {
            panic!()
        };
        assert_eq!((before, inner, after), (ida.clone(), idb, ida));
        assert!(current().is_none());
    }

    #[test]
    fn none_passes_the_outer_context_through() {
        let a = root();
        let id = a.id().clone();
        let inner = Scoped::new(async { current().map(|c| c.id().clone()) }, None);
        let outer = inner.in_correlation(a);
        let mut outer = std::pin::pin!(outer);
        assert_eq!(poll_once(outer.as_mut()), Poll::Ready(Some(id)));
    }

    #[test]
    fn context_is_restored_after_a_panic() {
        let a = root();
        let f = async { panic!("boom") }.in_correlation(a);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut f = std::pin::pin!(f);
            let _ = poll_once(f.as_mut());
        }));
        assert!(r.is_err());
        assert!(current().is_none());
    }

    #[test]
    fn context_survives_pending_polls() {
        let a = root();
        let id = a.id().clone();
        let mut yielded = false;
        let f = std::future::poll_fn(move |cx| {
            if !yielded {
                yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(current().map(|c| c.id().clone()))
        })
        .in_correlation(a);
        let mut f = std::pin::pin!(f);
        assert!(poll_once(f.as_mut()).is_pending());
        assert!(current().is_none());
        assert_eq!(poll_once(f.as_mut()), Poll::Ready(Some(id)));
    }
}
