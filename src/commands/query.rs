//! `freshet query`: any DataFusion SQL over streams (read from the log) and views (read from
//! the result store), executed in batch by DataFusion; output as a table, CSV or JSON.
//!
//! It takes no lock: like `freshet streams`, it reads the log while another process writes
//! it, and it opens the result store read-only.

use crate::cli::{QueryArgs, QueryFormat};
use crate::commands::reconcile::{history_files, report_history};
use crate::output;
use anyhow::Context;
use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use freshet_engine::ViewCatalog;
use freshet_engine::batch::{BatchSession, SharedStore, StoreTable, TimeRange, Views};
use freshet_store::{StoreError, StoreLocation};
use freshet_streams::catalog::Catalog;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Rows a table shows; beyond them, CSV or JSON streams every row.
const TABLE_ROWS_MAX: usize = 10_000;

pub fn run(data_dir: &Path, location: &StoreLocation, args: QueryArgs) -> anyhow::Result<ExitCode> {
    let streams = Catalog::load(data_dir)
        .with_context(|| format!("cannot read the streams of {}", data_dir.display()))?
        .streams;
    let views = ViewCatalog::load(data_dir)?;
    let mut tables = Vec::new();
    if !views.views.is_empty() && store_exists(location) {
        let store: SharedStore = Arc::new(Mutex::new(location.open_read_only()?));
        for def in &views.views {
            match StoreTable::new(&def.name, store.clone()) {
                Ok(table) => tables.push((def.name.clone(), Arc::new(table) as _)),
                // Created in the catalog but not run yet: nothing stored to read.
                Err(freshet_engine::EngineError::Store(StoreError::User { .. })) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let session = BatchSession::new(
        data_dir,
        &streams,
        Views::Stored(tables),
        TimeRange::default(),
        &history_files(&args.history)?,
    )?;
    let mut printer = Printer::new(args.format);
    let schema = session.for_each(&args.sql, |batch| {
        printer
            .batch(batch)
            .map_err(|e| freshet_engine::EngineError::Sql(format!("cannot print the result: {e}")))
    })?;
    printer.finish(&schema)?;
    let history = session.history();
    report_history(
        history.rows.load(Ordering::Relaxed),
        history.overlapping.load(Ordering::Relaxed),
    );
    Ok(ExitCode::SUCCESS)
}

fn store_exists(location: &StoreLocation) -> bool {
    match location {
        StoreLocation::Sqlite(path) => path.exists(),
        StoreLocation::Postgres(_) => true,
    }
}

/// Prints result batches as they come: CSV and JSON row by row, a table once at the end.
struct Printer {
    format: QueryFormat,
    header_done: bool,
    rows: usize,
    table: Vec<Vec<String>>,
    header: Vec<String>,
}

impl Printer {
    fn new(format: QueryFormat) -> Printer {
        Printer {
            format,
            header_done: false,
            rows: 0,
            table: Vec::new(),
            header: Vec::new(),
        }
    }

    fn batch(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut out = std::io::stdout().lock();
        match self.format {
            QueryFormat::Table => {
                if self.header.is_empty() {
                    self.header = names;
                }
                let options = FormatOptions::default().with_null("NULL");
                let formatters = batch
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                    .collect::<Result<Vec<_>, _>>()?;
                for i in 0..batch.num_rows() {
                    if self.table.len() < TABLE_ROWS_MAX {
                        self.table
                            .push(formatters.iter().map(|f| f.value(i).to_string()).collect());
                    }
                }
            }
            QueryFormat::Csv => {
                let mut writer = arrow_csv::WriterBuilder::new()
                    .with_header(!self.header_done)
                    .build(&mut out);
                writer.write(batch)?;
            }
            QueryFormat::Json => {
                if !self.header_done {
                    write!(
                        out,
                        "{{\"columns\": {}, \"rows\": [",
                        serde_json::to_string(&names)?
                    )?;
                }
                for (i, row) in crate::rows_json::rows(batch)?.iter().enumerate() {
                    let comma = if self.rows + i == 0 { "" } else { "," };
                    write!(out, "{comma}\n  {row}")?;
                }
            }
        }
        self.header_done = true;
        self.rows += batch.num_rows();
        Ok(())
    }

    fn finish(self, schema: &arrow_schema::SchemaRef) -> anyhow::Result<()> {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut out = std::io::stdout().lock();
        match self.format {
            QueryFormat::Table => {
                let header: Vec<&str> = names.iter().map(String::as_str).collect();
                output::table(&header, &self.table);
                let shown = self.table.len();
                if self.rows > shown {
                    output::line(format!(
                        "({} rows; the first {shown} shown: use --format csv or json for all)",
                        self.rows
                    ));
                } else {
                    output::line(format!("({} rows)", self.rows));
                }
            }
            QueryFormat::Csv => {
                if !self.header_done {
                    writeln!(out, "{}", names.join(","))?;
                }
            }
            QueryFormat::Json => {
                if !self.header_done {
                    write!(
                        out,
                        "{{\"columns\": {}, \"rows\": [",
                        serde_json::to_string(&names)?
                    )?;
                }
                writeln!(out, "\n]}}")?;
            }
        }
        Ok(())
    }
}
