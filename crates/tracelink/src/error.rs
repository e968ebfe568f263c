//! Why the setup failed.

use std::error::Error as StdError;
use std::fmt;

/// Why [`init`](crate::init) or [`Builder::init`](crate::Builder::init) failed. It names the
/// setting or environment variable at fault, never its value (a connection string holds a
/// key).
///
/// ```
/// let err = tracelink::builder()
///     .connection_string("InstrumentationKey=;IngestionEndpoint=nowhere")
///     .init()
///     .unwrap_err();
/// assert_eq!(err.kind(), tracelink::InitErrorKind::ConnectionString);
/// assert!(err.to_string().contains("connection string"));
/// ```
#[derive(Debug)]
pub struct InitError {
    kind: InitErrorKind,
    key: &'static str,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// What [`InitError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InitErrorKind {
    /// The connection string is invalid.
    ConnectionString,
    /// An environment variable or setting has a value that cannot be used.
    InvalidSetting,
    /// The exporter could not start (its thread or runtime).
    Exporter,
}

impl InitError {
    pub(crate) fn new(
        kind: InitErrorKind,
        key: &'static str,
        source: Option<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self { kind, key, source }
    }

    pub(crate) fn setting(key: &'static str) -> Self {
        Self::new(InitErrorKind::InvalidSetting, key, None)
    }

    /// What went wrong.
    pub fn kind(&self) -> InitErrorKind {
        self.kind
    }

    /// The setting or environment variable at fault, e.g.
    /// `"APPLICATIONINSIGHTS_CONNECTION_STRING"`.
    pub fn key(&self) -> &str {
        self.key
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            InitErrorKind::ConnectionString => {
                write!(f, "invalid connection string ({})", self.key)
            }
            InitErrorKind::InvalidSetting => write!(f, "invalid value of {}", self.key),
            InitErrorKind::Exporter => f.write_str("the exporter could not start"),
        }
    }
}

impl StdError for InitError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}
