//! The `freeway` binary.

mod admin;
mod agent;
mod chat;
mod cli;
mod commands;
mod doctor;
mod exec;
mod local;
mod output;
mod routes;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc instead of glibc's malloc, for Rust's allocations (C libraries keep glibc's).
/// A proxied request makes about 150 allocations; glibc spent 15% of the request's CPU on
/// them, much of it merging free chunks again and again (`malloc_consolidate`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: an arena per core of this machine class rather
/// than four, and pages freed back to the kernel soon after they fall idle, so that memory a
/// burst used does not stay resident.
#[allow(
    unsafe_code,
    reason = "jemalloc reads its options from this exported symbol; nothing else names it"
)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8; 47] = b"narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let run = async {
        match cli.command {
            cli::TopCommand::Local(command) => commands::run(command).await,
            cli::TopCommand::Admin(command) => admin::run(command).await,
        }
    };
    match runtime.block_on(run) {
        Ok(code) => code,
        Err(e) => {
            output::error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
