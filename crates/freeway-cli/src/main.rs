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
