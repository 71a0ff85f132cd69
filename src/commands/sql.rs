//! `freshet sql`: run statements from the command line or a file.

use crate::cli::SqlArgs;
use crate::output;
use anyhow::{Context, bail};
use freshet_engine::manage;
use freshet_store::{ResultStore, StoreLocation};
use freshet_streams::DataDir;
use freshet_streams::ddl::{StreamStatement, parse_stream_statement, split_statements};
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
    let mut store = None;
    let mut results = Vec::new();
    for (i, statement) in statements.iter().enumerate() {
        let outcome = execute(&dir, location, &mut store, statement).with_context(|| {
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

/// Run one statement against the data directory, opening the result store on first use;
/// returns the text to show. `freshet sql` and `POST /v1/sql` both come here.
pub fn execute(
    dir: &DataDir,
    location: &StoreLocation,
    store: &mut Option<Box<dyn ResultStore>>,
    statement: &str,
) -> anyhow::Result<String> {
    if let Some(view_statement) = freshet_engine::parse_view_statement(statement)? {
        if store.is_none() {
            *store = Some(location.open()?);
        }
        let store = store.as_mut().expect("opened above");
        return Ok(manage::execute(dir, store.as_mut(), view_statement)?);
    }
    if let Some(StreamStatement::Drop { name, .. }) = parse_stream_statement(statement)? {
        manage::check_stream_drop(dir, &name)?;
    }
    if let Some(outcome) = dir.execute(statement)? {
        return Ok(outcome.to_string());
    }
    let words: Vec<String> = statement
        .split_whitespace()
        .take(2)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    if words == ["SHOW", "STREAMS"] {
        let names: Vec<String> = dir.streams().into_iter().map(|s| s.name).collect();
        return Ok(if names.is_empty() {
            "(no streams)".into()
        } else {
            names.join("\n")
        });
    }
    bail!(
        "unsupported statement: this version understands CREATE/DROP STREAM, CREATE/DROP VIEW, \
         SHOW STREAMS, SHOW VIEWS and DESCRIBE VIEW"
    )
}
