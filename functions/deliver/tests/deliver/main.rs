//! The deliver handler end to end against real HTTP servers on 127.0.0.1, with fake
//! queue and secret-store ports that record every call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod batch;
mod cognigy;
mod enrich;
mod guard;
mod headers;
mod isolation;
mod oauth2;
mod ordering;
mod outcomes;
mod support;
