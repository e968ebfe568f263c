//! Cross-crate integration tests: one binary, one module per area.

mod client;
mod demo;
mod metrics;
mod otel;
mod propagation;
mod schema;
mod web;
