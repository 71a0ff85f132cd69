//! One module per subcommand; `run` dispatches.

mod backfill;
mod bench;
mod demo;
mod explain;
mod gen_nexmark;
mod ingest;
mod inspect;
mod query;
pub mod reconcile;
pub mod results;
pub mod run;
pub mod sql;
mod status;
mod token;
mod worker;

use crate::cli::{BenchCommand, Cli, Command, GenCommand, LogCommand, TokenCommand};
use anyhow::Context;
use freshet_store::StoreLocation;
use std::process::ExitCode;

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data_dir = cli.data_dir;
    let store = match &cli.store {
        Some(spec) => StoreLocation::parse(spec)?,
        None => StoreLocation::sqlite_in(&data_dir),
    };
    match cli.command {
        Command::Demo(args) => demo::run(&data_dir, &store, args),
        Command::Gen(args) => match args.source {
            GenCommand::Nexmark(a) => gen_nexmark::run(&data_dir, a),
        },
        Command::Sql(args) => sql::run(&data_dir, &store, args),
        Command::Run(args) => run::run(&data_dir, &store, args),
        Command::Results(args) => results::run(&store, args),
        Command::Query(args) => query::run(&data_dir, &store, args),
        Command::Reconcile(args) => reconcile::run(&data_dir, &store, args),
        Command::Backfill(args) => backfill::run(&data_dir, &store, args),
        Command::Explain(args) => explain::run(&data_dir, args),
        Command::Ingest(args) => ingest::run(&data_dir, args),
        Command::Streams(args) => inspect::streams(&data_dir, args),
        Command::Log(args) => match args.command {
            LogCommand::Verify(a) => inspect::verify(&data_dir, a),
            LogCommand::Retention(a) => inspect::retention(&data_dir, a),
        },
        Command::Dlq(args) => inspect::dlq(&data_dir, args),
        Command::Serve(args) => crate::server::run(&data_dir, &store, args),
        Command::Worker(args) => worker::run(&data_dir, &store, args),
        Command::Status(args) => status::run(&store, args),
        Command::Bench(BenchCommand::Http(a)) => bench::http(a),
        Command::Bench(BenchCommand::Gen(a)) => bench::generator(a),
        Command::Bench(BenchCommand::Query(a)) => bench::query(a),
        Command::Bench(BenchCommand::Latency(a)) => bench::latency(a),
        Command::Token(TokenCommand::Create(a)) => token::create(&data_dir, a),
        Command::Token(TokenCommand::List(a)) => token::list(&data_dir, a),
        Command::Token(TokenCommand::Revoke(a)) => token::revoke(&data_dir, a),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "freshet", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut std::io::stdout())
                .context("writing the man page")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
