//! `freshet query`: any DataFusion SQL over streams (read from the log) and views (read from
//! the result store), executed in batch by DataFusion; output as a table, CSV, JSON, Parquet
//! or an Arrow IPC file (`query_output`).
//!
//! It takes no lock: like `freshet streams`, it reads the log while another process writes
//! it, and it opens the result store read-only.

use crate::app::batch_query;
use crate::app::query_output::Printer;
use crate::cli::QueryArgs;
use crate::commands::reconcile::{history_files, report_history};
use freshet_store::StoreLocation;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

pub fn run(data_dir: &Path, location: &StoreLocation, args: QueryArgs) -> anyhow::Result<ExitCode> {
    let session = batch_query::session(data_dir, location, &history_files(&args.history)?)?;
    let printer = Printer::new(args.format, args.out.as_deref())?;
    batch_query::write(&session, &args.sql, printer)?;
    let history = session.history();
    report_history(
        history.rows.load(Ordering::Relaxed),
        history.overlapping.load(Ordering::Relaxed),
    );
    Ok(ExitCode::SUCCESS)
}
