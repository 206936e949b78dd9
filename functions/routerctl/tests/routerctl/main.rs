//! routerctl's integration tests, one binary (each test binary links the whole
//! workspace): `routerctl` run as a subprocess against real local targets, on the embedded
//! queue and on SQS (moto_server), a module per area.

mod common;

mod bad_input;
mod binary;
mod cli;
mod conditions;
mod disk;
mod dlq;
mod docs;
mod hardening;
mod isolation;
mod limits;
mod ordering;
mod rate_limits;
mod replies;
mod rotation;
mod serve;
mod smoke;
mod soak;
