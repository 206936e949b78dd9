//! The Cognigy webhook router's core, shared by every function and `routerctl`:
//! the domain types, the routes file, rendering, the retry decision, signing, and the
//! ports (queue, secrets) with their AWS and embedded adapters. No Lambda runtime here.

#![warn(clippy::unwrap_used)]

pub mod aws;
pub mod backends;
pub mod breaker;
pub mod config;
pub mod domain;
pub mod embedded;
pub mod event;
pub mod ports;
pub mod rate_limit;
pub mod render;
pub mod retry;
pub mod routes;
pub mod secret_cache;
pub mod secrets;
pub mod signing;
pub mod sync;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod time_fmt;
pub mod wire;

/// The router's version, as sent in `user-agent` and reported by the health endpoint.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
