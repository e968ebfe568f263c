//! Shared helpers for the tracelink integration tests.
