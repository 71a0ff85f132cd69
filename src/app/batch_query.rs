//! The batch queries `freshet query` and `COPY ... TO 'file'` (from `freshet sql` and
//! `POST /v1/sql`) share: a DataFusion session over the streams (the log) and the stored
//! views, taking no lock, and its result written through a [`Printer`].

use super::query_output::Printer;
use crate::cli::QueryFormat;
use anyhow::Context;
use freshet_engine::ViewCatalog;
use freshet_engine::batch::{BatchSession, HistoryFile, SharedStore, StoreTable, Views};
use freshet_engine::copy::{CopyFormat, CopyStatement};
use freshet_store::{StoreError, StoreLocation};
use freshet_streams::catalog::Catalog;
use freshet_types::limits::QUERY_MEMORY_BYTES_DEFAULT;
use std::path::Path;
use std::sync::{Arc, Mutex};

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
pub fn session(
    data_dir: &Path,
    location: &StoreLocation,
    history: &[HistoryFile],
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
    Ok(BatchSession::for_queries(
        data_dir,
        &streams,
        Views::Stored(tables),
        history,
        memory_max()?,
    )?)
}

/// The variable that sets a query's memory limit.
const MEMORY_MAX_ENV: &str = "FRESHET_QUERY_MEMORY_MAX";

/// The memory one query may reserve: `FRESHET_QUERY_MEMORY_MAX` bytes if set, else
/// [`QUERY_MEMORY_BYTES_DEFAULT`].
pub fn memory_max() -> anyhow::Result<usize> {
    match std::env::var(MEMORY_MAX_ENV) {
        Err(_) => Ok(QUERY_MEMORY_BYTES_DEFAULT),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(bytes) if bytes > 0 => Ok(bytes),
            _ => anyhow::bail!("{MEMORY_MAX_ENV}='{text}': give a number of bytes above 0"),
        },
    }
}

/// Runs `sql` into `printer`; returns the rows written.
pub fn write(session: &BatchSession, sql: &str, mut printer: Printer) -> anyhow::Result<usize> {
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
