//! The deliver function (CONTRACT sections 4 and 5): render, sign, authenticate and POST
//! each queued delivery; back off through the queue's visibility timeout; dead-letter
//! with a reason. [`Deliverer`] is host-neutral: Lambda drives it from an SQS event
//! (`main.rs`, [`lambda`]), a local host from its own queue polling.
//!
//! A message's path, one module a stage:
//! - [`deliverer`]: the batch in, the failed ids out; runs the stages
//! - [`prepare`]: parse the job, find its route, check its age
//! - [`attempt`]: sign and send (through the circuit breaker, with the oauth2 resend)
//!   what [`outgoing`] makes: the payload (after enrich) for `target_url`, or the body
//!   into a Cognigy session, or a reply job's answer
//! - `router_core::retry::decide`: the pure decision (delivered, retry in, dead letter)
//! - [`reply`]: a reply route's answer (or `on_failure`) queued as its own job
//! - [`settle`]: visibility changes for retries, DLQ copies, the failed ids
//! - [`report`]: a log line per message, the batch's metric documents
//!
//! and what they use: [`http`] (one request and what it came to), [`auth`] (outbound
//! auth headers and the signing key, cached), [`guard`] (the private-target guard),
//! [`metrics`] (CloudWatch EMF lines per batch), [`lambda`] (SQS event in, batch item
//! failures out).

#![warn(clippy::unwrap_used)]

pub mod attempt;
pub mod auth;
pub mod deliverer;
pub mod guard;
pub mod http;
pub mod lambda;
pub mod metrics;
pub mod outgoing;
pub mod prepare;
pub mod reply;
pub mod report;
pub mod sender;
pub mod settle;
pub mod stage;

pub use deliverer::{BuildError, Deliverer};
