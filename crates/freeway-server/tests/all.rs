#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! The server's integration tests: one binary, one module per concern.

mod exec;
mod fuzz;
mod openapi;
mod responses;
mod sessions;
mod streaming;
mod tenancy;
