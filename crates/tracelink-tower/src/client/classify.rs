//! How a failed call is classified: [`ClassifyError`] and [`DefaultClassifyError`].

use std::error::Error;
use std::io;

use tracelink_core::dependency::CallError;

/// Decides the `resultCode` of a call that failed without a response: [`CallError::Timeout`],
/// [`CallError::Connect`] or [`CallError::Faulted`].
///
/// [`DefaultClassifyError`] by default. A closure `Fn(&(dyn Error + 'static)) -> CallError` is
/// one; so is a type of your own.
/// [`DependencyLayer::classify_error`](crate::client::DependencyLayer::classify_error) swaps
/// it, which changes the layer's type (no boxing). The error is the inner service's, converted
/// into a [`BoxError`](crate::BoxError), so it can be downcast to the inner service's error type.
///
/// ```
/// use std::error::Error;
/// use hyper_util::client::legacy;
/// use tracelink_core::MemorySink;
/// use tracelink_tower::client::{CallError, ClassifyError, DefaultClassifyError, DependencyLayer};
///
/// // hyper-util knows which of its errors happened while connecting (DNS included).
/// let classify = |e: &(dyn Error + 'static)| match e.downcast_ref::<legacy::Error>() {
///     Some(e) if e.is_connect() => CallError::Connect,
///     _ => DefaultClassifyError.classify(e),
/// };
/// let layer = DependencyLayer::new(MemorySink::new()).classify_error(classify);
/// ```
pub trait ClassifyError {
    /// The kind of failure `error` is.
    fn classify(&self, error: &(dyn Error + 'static)) -> CallError;
}

impl<F: Fn(&(dyn Error + 'static)) -> CallError> ClassifyError for F {
    fn classify(&self, error: &(dyn Error + 'static)) -> CallError {
        self(error)
    }
}

/// Classifies an error by the types in its `source()` chain (the error, its source, that
/// one's source, ...), never by its message:
///
/// - a timeout, if any error in the chain is a [`std::io::Error`] of kind `TimedOut`, or with
///   the `timeout` feature, tower's `tower::timeout::error::Elapsed`;
/// - else a connect error, if one is a [`std::io::Error`] of kind `ConnectionRefused`,
///   `ConnectionReset`, `ConnectionAborted`, `NotConnected`, `AddrNotAvailable`,
///   `HostUnreachable` or `NetworkUnreachable` (hyper-util's client puts the socket's error in
///   the chain, so a refused connection is found);
/// - else faulted.
///
/// An [`std::io::Error`] that wraps another error is followed into it. Errors that say what
/// they are only through their own methods (hyper-util's `Error::is_connect()`, which also
/// covers DNS failures) are faulted unless a [`ClassifyError`] of your own asks them.
///
/// ```
/// use std::io;
/// use tracelink_tower::client::{CallError, ClassifyError, DefaultClassifyError};
///
/// let c = DefaultClassifyError;
/// let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
/// assert_eq!(c.classify(&refused), CallError::Connect);
/// let wrapped = io::Error::other(io::Error::new(io::ErrorKind::TimedOut, "slow"));
/// assert_eq!(c.classify(&wrapped), CallError::Timeout);
/// // The message is not read.
/// assert_eq!(c.classify(&io::Error::other("connect timed out")), CallError::Faulted);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultClassifyError;

impl ClassifyError for DefaultClassifyError {
    fn classify(&self, error: &(dyn Error + 'static)) -> CallError {
        let mut connect = false;
        let mut cur = Some(error);
        while let Some(e) = cur {
            #[cfg(feature = "timeout")]
            if e.is::<tower::timeout::error::Elapsed>() {
                return CallError::Timeout;
            }
            cur = e.source();
            if let Some(io) = e.downcast_ref::<io::Error>() {
                use io::ErrorKind::*;
                match io.kind() {
                    TimedOut => return CallError::Timeout,
                    ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected
                    | AddrNotAvailable | HostUnreachable | NetworkUnreachable => connect = true,
                    _ => {}
                }
                // `io::Error::source` skips the error it wraps: look at that one first.
                if let Some(inner) = io.get_ref() {
                    cur = Some(inner);
                }
            }
        }
        if connect {
            CallError::Connect
        } else {
            CallError::Faulted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    /// An error with a source, as clients wrap their transport's errors.
    #[derive(Debug)]
    struct Wrapper(Box<dyn Error + Send + Sync>);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("client error (Connect)")
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    fn classify(e: &(dyn Error + 'static)) -> CallError {
        DefaultClassifyError.classify(e)
    }

    #[test]
    fn io_kinds_anywhere_in_the_chain() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "nope");
        assert_eq!(classify(&refused), CallError::Connect);
        let deep = Wrapper(Box::new(Wrapper(Box::new(refused))));
        assert_eq!(classify(&deep), CallError::Connect);
        let timed_out = Wrapper(Box::new(io::Error::new(io::ErrorKind::TimedOut, "x")));
        assert_eq!(classify(&timed_out), CallError::Timeout);
        // A timeout deeper than a connect error wins.
        let both = io::Error::new(
            io::ErrorKind::ConnectionReset,
            io::Error::new(io::ErrorKind::TimedOut, "x"),
        );
        assert_eq!(classify(&both), CallError::Timeout);
    }

    #[test]
    fn messages_are_not_read() {
        assert_eq!(
            classify(&Wrapper(Box::new(io::Error::other("timed out")))),
            CallError::Faulted
        );
        assert_eq!(
            classify(&io::Error::other("connection refused")),
            CallError::Faulted
        );
    }

    #[cfg(feature = "timeout")]
    #[test]
    fn tower_timeouts() {
        use tower::timeout::error::Elapsed;
        assert_eq!(classify(&Elapsed::new()), CallError::Timeout);
        assert_eq!(
            classify(&Wrapper(Box::new(Elapsed::new()))),
            CallError::Timeout
        );
        assert_eq!(
            classify(&io::Error::other(Elapsed::new())),
            CallError::Timeout
        );
    }

    #[test]
    fn closures_classify() {
        let always = |_: &(dyn Error + 'static)| CallError::Connect;
        assert_eq!(always.classify(&io::Error::other("x")), CallError::Connect);
    }
}
