//! `freshet sql`: run statements from the command line or a file.

use crate::cli::SqlArgs;
use crate::output;
use anyhow::{Context, bail};
use freshet_streams::DataDir;
use freshet_streams::ddl::split_statements;
use std::path::Path;
use std::process::ExitCode;

pub fn run(data_dir: &Path, args: SqlArgs) -> anyhow::Result<ExitCode> {
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
    let mut results = Vec::new();
    for (i, statement) in statements.iter().enumerate() {
        let outcome = execute(&dir, statement).with_context(|| {
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

fn execute(dir: &DataDir, statement: &str) -> anyhow::Result<String> {
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
        "unsupported statement: this version understands CREATE STREAM, DROP STREAM and \
         SHOW STREAMS"
    )
}
