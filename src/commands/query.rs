//! `freshet query`: any DataFusion SQL over streams (read from the log) and views (read from
//! the result store), executed in batch by DataFusion; output as a table, CSV, JSON, Parquet
//! or an Arrow IPC file (`query_output`).
//!
//! It takes no lock: like `freshet streams`, it reads the log while another process writes
//! it, and it opens the result store read-only.

use super::query_output::Printer;
use crate::cli::{QueryArgs, QueryFormat};
use crate::commands::reconcile::{history_files, report_history};
use anyhow::Context;
use freshet_engine::ViewCatalog;
use freshet_engine::batch::{BatchSession, SharedStore, StoreTable, TimeRange, Views};
use freshet_engine::copy::{CopyFormat, CopyStatement};
use freshet_store::{StoreError, StoreLocation};
use freshet_streams::catalog::Catalog;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub fn run(data_dir: &Path, location: &StoreLocation, args: QueryArgs) -> anyhow::Result<ExitCode> {
    let session = session(data_dir, location, &history_files(&args.history)?)?;
    let printer = Printer::new(args.format, args.out.as_deref())?;
    write(&session, &args.sql, printer)?;
    let history = session.history();
    report_history(
        history.rows.load(Ordering::Relaxed),
        history.overlapping.load(Ordering::Relaxed),
    );
    Ok(ExitCode::SUCCESS)
}

/// `COPY ... TO 'file'` (`freshet sql`, `POST /v1/sql`): the query's result into the file;
/// returns what to show.
pub fn copy(
    data_dir: &Path,
    location: &StoreLocation,
    copy: &CopyStatement,
) -> anyhow::Result<String> {
    let format = match copy.format {
        CopyFormat::Parquet => QueryFormat::Parquet,
        CopyFormat::Arrow => QueryFormat::Arrow,
        CopyFormat::Csv => QueryFormat::Csv,
        CopyFormat::Json => QueryFormat::Json,
    };
    let session = session(data_dir, location, &[])?;
    let rows = write(
        &session,
        &copy.query,
        Printer::new(format, Some(&copy.path))?,
    )?;
    Ok(format!("COPY {rows} to {}", copy.path.display()))
}

/// A batch session over the streams (the log) and the stored views, without locks.
fn session(
    data_dir: &Path,
    location: &StoreLocation,
    history: &[freshet_engine::batch::HistoryFile],
) -> anyhow::Result<BatchSession> {
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
    Ok(BatchSession::new(
        data_dir,
        &streams,
        Views::Stored(tables),
        TimeRange::default(),
        history,
    )?)
}

/// Runs `sql` into `printer`; returns the rows written.
fn write(session: &BatchSession, sql: &str, mut printer: Printer) -> anyhow::Result<usize> {
    let schema = session.for_each(sql, |batch| {
        printer
            .batch(batch)
            .map_err(|e| freshet_engine::EngineError::Sql(format!("cannot write the result: {e}")))
    })?;
    let rows = printer.rows();
    printer.finish(&schema)?;
    Ok(rows)
}

fn store_exists(location: &StoreLocation) -> bool {
    match location {
        StoreLocation::Sqlite(path) => path.exists(),
        StoreLocation::Postgres(_) => true,
    }
}
