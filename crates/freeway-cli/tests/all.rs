#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! The `freeway` binary as users run it.

mod admin;
mod exec;
