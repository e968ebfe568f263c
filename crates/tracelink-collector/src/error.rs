//! The collector's errors: one type per operation family, each opaque with a `kind()`.
//!
//! [`StoreError`] is what a [`Store`](crate::Store) operation returns (opening, reading,
//! writing); [`StartError`] is why [`Collector::start`](crate::Collector::start) failed.
//! Their `Display` names what failed at their own level only; the cause is their
//! [`source`](std::error::Error::source), whose type is not part of the API.

use std::error::Error as StdError;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

type Source = Box<dyn StdError + Send + Sync>;

/// A failed [`Store`](crate::Store) operation.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    path: Option<PathBuf>,
    source: Option<Source>,
}

/// What kind of [`StoreError`] happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The database could not be created, opened or brought to the current schema.
    Open,
    /// A query failed.
    Read,
    /// Items could not be committed, or retention could not delete: nothing was changed.
    Write,
    /// The store's writer is no longer running, so nothing more can be written.
    Closed,
}

impl StoreError {
    /// What kind of error this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    pub(crate) fn new(kind: StoreErrorKind, source: impl Into<Source>) -> Self {
        Self {
            kind,
            path: None,
            source: Some(source.into()),
        }
    }

    pub(crate) fn open(path: &Path, source: impl Into<Source>) -> Self {
        Self {
            kind: StoreErrorKind::Open,
            path: Some(path.to_owned()),
            source: Some(source.into()),
        }
    }

    pub(crate) fn closed() -> Self {
        Self {
            kind: StoreErrorKind::Closed,
            path: None,
            source: None,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.path) {
            (StoreErrorKind::Open, Some(path)) => {
                write!(f, "cannot open the database {}", path.display())
            }
            (StoreErrorKind::Open, None) => f.write_str("cannot open the database"),
            (StoreErrorKind::Read, _) => f.write_str("database read failed"),
            (StoreErrorKind::Write, _) => f.write_str("database write failed"),
            (StoreErrorKind::Closed, _) => f.write_str("database writer stopped"),
        }
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// Why [`Collector::start`](crate::Collector::start) failed.
#[derive(Debug)]
pub struct StartError {
    kind: StartErrorKind,
    listen: Option<SocketAddr>,
    source: Source,
}

/// What kind of [`StartError`] happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StartErrorKind {
    /// The database could not be opened; the source is a [`StoreError`].
    Database,
    /// The listening socket could not be bound.
    Listen,
    /// The operating system gave no random bytes for the login token, API key or
    /// instrumentation key to generate.
    Random,
}

impl StartError {
    /// What kind of error this is.
    pub fn kind(&self) -> StartErrorKind {
        self.kind
    }

    pub(crate) fn database(source: StoreError) -> Self {
        Self {
            kind: StartErrorKind::Database,
            listen: None,
            source: Box::new(source),
        }
    }

    pub(crate) fn random(source: getrandom::Error) -> Self {
        Self {
            kind: StartErrorKind::Random,
            listen: None,
            source: Box::new(source),
        }
    }

    pub(crate) fn listen(addr: SocketAddr, source: std::io::Error) -> Self {
        Self {
            kind: StartErrorKind::Listen,
            listen: Some(addr),
            source: Box::new(source),
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.listen) {
            (StartErrorKind::Database, _) => f.write_str("collector database unavailable"),
            (StartErrorKind::Listen, Some(addr)) => write!(f, "cannot listen on {addr}"),
            (StartErrorKind::Listen, None) => f.write_str("cannot listen"),
            (StartErrorKind::Random, _) => f.write_str("cannot generate credentials"),
        }
    }
}

impl StdError for StartError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// An error and its sources, joined with `": "`, for answers and logs.
pub(crate) fn chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_one_level_and_source_holds_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let e = StartError::listen(([127, 0, 0, 1], 7421).into(), io);
        assert_eq!(e.kind(), StartErrorKind::Listen);
        assert_eq!(e.to_string(), "cannot listen on 127.0.0.1:7421");
        assert_eq!(e.source().unwrap().to_string(), "address in use");
        assert_eq!(chain(&e), "cannot listen on 127.0.0.1:7421: address in use");

        let e = StartError::database(StoreError::open(Path::new("/x.db"), "no such directory"));
        assert_eq!(e.kind(), StartErrorKind::Database);
        let store = e.source().unwrap().downcast_ref::<StoreError>().unwrap();
        assert_eq!(store.kind(), StoreErrorKind::Open);
        assert_eq!(
            chain(&e),
            "collector database unavailable: cannot open the database /x.db: no such directory"
        );
        assert!(StoreError::closed().source().is_none());
    }

    #[test]
    fn errors_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<StoreError>();
        check::<StartError>();
    }
}
