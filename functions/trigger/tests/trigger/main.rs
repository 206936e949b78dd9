//! The trigger's integration tests, one binary (each test binary links the whole
//! workspace): the router driven in-process with fakes for the ports, a module per area.

mod common;

mod accept;
mod apigw_fixtures;
mod audit;
mod bad_input;
mod health;
mod ingest_auth;
mod openapi;
mod ordered;
mod queue;
mod smoke;
