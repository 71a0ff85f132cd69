//! `freshet reconcile`: recompute a view in batch over a time range and compare it with the
//! stored final results; `--repair` writes the batch values over the differences.
//!
//! Exit codes: 0 when the results are clean (or were repaired), 3 when differences were
//! found and not repaired, 1 on errors.

use crate::app::time_arg::parse_time;
use crate::cli::{ReconcileArgs, ViewRange};
use crate::output;
use anyhow::{Context, bail};
use freshet_engine::ViewCatalog;
use freshet_engine::batch::HistoryFile;
use freshet_engine::reconcile::{Request, reconcile};
use freshet_store::StoreLocation;
use freshet_streams::DataDir;
use freshet_streams::StreamDef;
use freshet_streams::catalog::Catalog;
use std::path::Path;
use std::process::ExitCode;

/// What a batch run over a view's range needs: the range in ms, the streams and the views.
pub struct BatchInputs {
    pub from_ms: i64,
    pub to_ms: i64,
    pub streams: Vec<StreamDef>,
    pub catalog: ViewCatalog,
    pub history: Vec<HistoryFile>,
}

impl BatchInputs {
    /// Reads the range and the data directory's catalogs (no lock is taken).
    pub fn load(data_dir: &Path, range: &ViewRange) -> anyhow::Result<BatchInputs> {
        let from_ms = parse_time(&range.from)?;
        let to_ms = parse_time(&range.to)?;
        if from_ms >= to_ms {
            bail!("--from ({}) must be before --to ({})", range.from, range.to);
        }
        let streams = Catalog::load(data_dir)
            .with_context(|| format!("cannot read the streams of {}", data_dir.display()))?
            .streams;
        Ok(BatchInputs {
            from_ms,
            to_ms,
            streams,
            catalog: ViewCatalog::load(data_dir)?,
            history: history_files(&range.history)?,
        })
    }

    /// The reconciliation request over these inputs.
    pub fn request<'a>(
        &'a self,
        data_dir: &'a Path,
        view: &'a str,
        repair: bool,
        on_scan: Option<&'a dyn Fn(std::sync::Arc<std::sync::atomic::AtomicU64>)>,
    ) -> Request<'a> {
        Request {
            root: data_dir,
            streams: &self.streams,
            catalog: &self.catalog,
            view,
            from_ms: self.from_ms,
            to_ms: self.to_ms,
            repair,
            on_scan,
            history: &self.history,
        }
    }
}

/// The files `--history STREAM=PATH` arguments name.
pub fn history_files(specs: &[String]) -> anyhow::Result<Vec<HistoryFile>> {
    let mut files = Vec::new();
    for spec in specs {
        let Some((stream, path)) = spec.split_once('=') else {
            bail!("--history takes STREAM=PATH, got '{spec}'");
        };
        files.extend(HistoryFile::expand(stream.trim(), Path::new(path))?);
    }
    Ok(files)
}

/// A line on stderr saying what history files gave, if any were read.
pub fn report_history(rows: u64, left_to_log: u64) {
    if rows + left_to_log > 0 {
        output::note(format!(
            "history files: {rows} rows read, {left_to_log} at or after the log's first \
             event left to the log"
        ));
    }
}

pub fn run(
    data_dir: &Path,
    location: &StoreLocation,
    args: ReconcileArgs,
) -> anyhow::Result<ExitCode> {
    let view = args.range.view.as_str();
    let inputs = BatchInputs::load(data_dir, &args.range)?;
    // Repairs take the same writer claims as `run` and `serve`: the data directory's lock
    // (which a SQLite store inside it relies on) and the store's own claim on the view.
    let _writer = args.repair.then(|| DataDir::open(data_dir)).transpose()?;
    let mut store = if args.repair {
        let mut store = location.open()?;
        // Repairs write results: no other process may be writing this view.
        store.claim_for_repair(view)?;
        store
    } else {
        location.open_read_only()?
    };
    let report = reconcile(
        &inputs.request(data_dir, view, args.repair, None),
        store.as_mut(),
    )
    .with_context(|| format!("cannot reconcile view '{view}'"))?;
    report_history(report.history_rows, report.history_left_to_log);
    if args.json {
        output::json(&report)?;
    } else {
        let at = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map_or_else(|| ms.to_string(), |t| t.to_rfc3339())
        };
        output::line(format!(
            "view {}: windows from {} to {}",
            report.view,
            at(report.from_ms),
            at(report.to_ms)
        ));
        output::table(
            &["matched", "mismatched", "missing", "extra", "ratio"],
            &[vec![
                report.matched.to_string(),
                report.mismatched.to_string(),
                report.missing.to_string(),
                report.extra.to_string(),
                format!("{:.6}", report.ratio),
            ]],
        );
        for s in &report.samples {
            output::line(format!(
                "{:<10} {}  stored: {}  recomputed: {}",
                s.kind,
                s.key,
                s.stored.as_deref().unwrap_or("-"),
                s.recomputed.as_deref().unwrap_or("-")
            ));
        }
        if report.repaired > 0 {
            output::line(format!("repaired {} rows", report.repaired));
        }
    }
    Ok(if report.clean() || report.repaired > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_CHECK_FAILED)
    })
}
