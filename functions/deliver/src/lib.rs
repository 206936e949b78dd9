//! The deliver function (CONTRACT sections 4 and 5): render, sign, authenticate and POST
//! each queued delivery; back off through the queue's visibility timeout; dead-letter
//! with a reason. [`Deliverer`] is host-neutral: Lambda drives it from an SQS event
//! (`main.rs`, [`lambda`]), a local host from its own queue polling.
//!
//! - [`handler`]: the per-record flow and the batch (visibility changes, DLQ copies)
//! - [`http`]: one HTTP attempt and its outcome
//! - [`auth`]: outbound auth headers and the signing key, cached
//! - [`guard`]: the private-target guard and its DNS resolver
//! - [`metrics`]: CloudWatch Embedded Metric Format lines per batch
//! - [`lambda`]: SQS event in, batch item failures out

#![warn(clippy::unwrap_used)]

pub mod auth;
pub mod guard;
pub mod handler;
pub mod http;
pub mod lambda;
pub mod metrics;

pub use handler::{BuildError, DeadLetter, Deliverer};
