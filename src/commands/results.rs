//! `freshet results`: read a view's results table.

use crate::app::time_arg::parse_time;
use crate::cli::ResultsArgs;
use crate::output;
use anyhow::bail;
use freshet_store::{ResultQuery, StoreLocation};
use std::process::ExitCode;

pub fn run(location: &StoreLocation, args: ResultsArgs) -> anyhow::Result<ExitCode> {
    if let StoreLocation::Sqlite(path) = location
        && !path.exists()
    {
        bail!(
            "no result store at {}: create a view and run it first",
            path.display()
        );
    }
    let store = location.open_read_only()?;
    let mut equals = Vec::new();
    for k in &args.keys {
        let Some((col, value)) = k.split_once('=') else {
            bail!("--key takes COLUMN=VALUE, got '{k}'");
        };
        equals.push((col.trim().to_string(), value.trim().to_string()));
    }
    let query = ResultQuery {
        equals,
        from_ms: args.from.as_deref().map(parse_time).transpose()?,
        to_ms: args.to.as_deref().map(parse_time).transpose()?,
        limit: args
            .limit
            .min(freshet_types::limits::RESULT_ROWS_PER_PAGE_MAX),
        offset: args.offset,
    };
    let rows = store.read_results(&args.view, &query)?;
    let batch = &rows.batch;
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    if args.json {
        output::json(&serde_json::json!({
            "view": args.view,
            "rows": crate::rows_json::rows(batch)?,
            "has_more": rows.has_more,
        }))?;
    } else {
        let table = output::cells(batch, usize::MAX)?;
        let header: Vec<&str> = names.iter().map(String::as_str).collect();
        output::table(&header, &table);
        if rows.has_more {
            output::line(format!(
                "(more rows: use --offset {})",
                args.offset + batch.num_rows()
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}
