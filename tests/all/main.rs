//! Cross-crate integration tests: one binary, one module per area.

mod propagation;
mod schema;
