//! `freshet backfill`: recompute a windowed view in batch over a time range and write the
//! result as the view's final rows, with a progress bar and an ETA.
//!
//! It writes the same rows `reconcile --repair` would: for every window in the range that
//! the view has finalised, the batch result replaces what is stored (rows that differ or are
//! missing are written, rows the batch run does not produce are removed), in one
//! transaction. Running it again finds nothing to change.

use crate::cli::BackfillArgs;
use crate::commands::reconcile::{BatchInputs, report_history};
use crate::output;
use anyhow::Context;
use freshet_engine::reconcile::reconcile;
use freshet_store::StoreLocation;
use freshet_streams::DataDir;
use freshet_streams::inspect::stream_info;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn run(
    data_dir: &Path,
    location: &StoreLocation,
    args: BackfillArgs,
) -> anyhow::Result<ExitCode> {
    let view = args.range.view.as_str();
    let inputs = BatchInputs::load(data_dir, &args.range)?;
    // The batch run reads the log of every stream the view may read: that is the work.
    let total: u64 = inputs
        .streams
        .iter()
        .filter_map(|s| stream_info(data_dir, s).ok())
        .map(|i| i.bytes)
        .sum::<u64>()
        + inputs.history.iter().map(|f| f.bytes).sum::<u64>();
    // The same writer claims as `run` and `serve`: the data directory's lock (which a
    // SQLite store inside it relies on) and the store's own claim on the view.
    let _writer = DataDir::open(data_dir)?;
    let mut store = location.open()?;
    store.claim_for_repair(view)?;

    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} read ({bytes_per_sec}, eta {eta}) {msg}",
        )
        .expect("the template is valid"),
    );
    bar.set_message(format!("recomputing {view}"));
    let counter: Arc<Mutex<Option<Arc<AtomicU64>>>> = Arc::new(Mutex::new(None));
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (bar, counter, done) = (bar.clone(), counter.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if let Some(c) = counter.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    bar.set_position(c.load(Ordering::Relaxed).min(total));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let started = Instant::now();
    let on_scan = |scanned: Arc<AtomicU64>| {
        *counter.lock().unwrap_or_else(|e| e.into_inner()) = Some(scanned);
    };
    let result = reconcile(
        &inputs.request(data_dir, view, true, Some(&on_scan)),
        store.as_mut(),
    );
    done.store(true, Ordering::SeqCst);
    let _ = ticker.join();
    bar.finish_and_clear();
    let report = result.with_context(|| format!("cannot backfill view '{view}'"))?;
    let seconds = started.elapsed().as_secs_f64();
    let rows = report.matched + report.mismatched + report.missing;
    report_history(report.history_rows, report.history_left_to_log);
    if args.json {
        output::json(&serde_json::json!({
            "view": report.view,
            "from_ms": report.from_ms,
            "to_ms": report.to_ms,
            "rows": rows,
            "written": report.mismatched + report.missing,
            "deleted": report.extra,
            "unchanged": report.matched,
            "seconds": seconds,
            "history_rows": report.history_rows,
            "history_left_to_log": report.history_left_to_log,
        }))?;
    } else {
        output::line(format!(
            "backfilled {}: {rows} rows for the finalised windows in the range, {} written, \
             {} deleted, {} already right, in {seconds:.2}s",
            report.view,
            report.mismatched + report.missing,
            report.extra,
            report.matched
        ));
    }
    Ok(ExitCode::SUCCESS)
}
