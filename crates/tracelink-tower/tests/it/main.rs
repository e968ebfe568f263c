//! Integration tests of tracelink-tower: real servers on 127.0.0.1, real clients.

mod client;
mod server;
mod support;
