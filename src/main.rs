//! The `freshet` binary: CLI, HTTP server and wiring. Libraries live in `crates/`.
//!
//! Exit codes: 0 success; 1 error (the whole cause chain is printed); 2 bad usage;
//! 3 a check found problems (`log verify`).

mod app;
mod cli;
mod commands;
mod output;
mod rows_json;
mod server;

use clap::Parser;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A check ran and found problems (distinct from failing to run).
pub const EXIT_CHECK_FAILED: u8 = 3;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    server::process_stats::record_start();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        cli::LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        cli::LogFormat::Json => logs.json().init(),
    }
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            output::error_chain(&e);
            ExitCode::FAILURE
        }
    }
}
