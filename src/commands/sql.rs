//! `freshet sql`: run statements from the command line or a file.

use crate::cli::SqlArgs;
use crate::output;
use anyhow::{Context, bail};
use freshet_engine::copy::parse_copy;
use freshet_engine::statement::{self, LazyStore, Statement};
use freshet_store::StoreLocation;
use freshet_streams::DataDir;
use freshet_streams::ddl::split_statements;
use std::path::Path;
use std::process::ExitCode;

pub fn run(data_dir: &Path, location: &StoreLocation, args: SqlArgs) -> anyhow::Result<ExitCode> {
    let text = match (&args.sql, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read SQL file {}", file.display()))?,
        (None, None) => bail!("give a statement or -f FILE"),
    };
    let statements = split_statements(&text)?;
    if statements.is_empty() {
        bail!("no SQL statement given");
    }
    let dir = DataDir::open(data_dir)?;
    let mut store = LazyStore::new(location);
    let mut results = Vec::new();
    for (i, statement) in statements.iter().enumerate() {
        let outcome = match parse_copy(statement) {
            Ok(Some(copy)) => crate::app::batch_query::copy(data_dir, location, &copy),
            Ok(None) => Statement::parse(statement)
                .and_then(|parsed| statement::execute(&dir, &mut store, parsed))
                .map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        }
        .with_context(|| {
            format!(
                "statement {} of {} failed: {}",
                i + 1,
                statements.len(),
                statement.trim().lines().next().unwrap_or_default()
            )
        })?;
        if !args.json {
            output::line(&outcome);
        }
        results.push(outcome);
    }
    if args.json {
        output::json(&serde_json::json!({ "results": results }))?;
    }
    Ok(ExitCode::SUCCESS)
}
