#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test helpers may panic, and say when cleaning up failed"
)]
//! The store's suite, run against SQLite (a fresh file) and a real PostgreSQL server
//! (a fresh database on `FREEWAY_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432`).
//! Set `FREEWAY_TEST_POSTGRES=off` to run SQLite only.

mod audit;
mod keys;
mod responses;
mod sessions;
mod support;
mod usage;
