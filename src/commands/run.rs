//! `freshet run`: run views continuously, or drain the log once.

use crate::cli::RunArgs;
use crate::output;
use anyhow::{Context, bail};
use freshet_engine::{SystemClock, ViewCatalog, ViewRunner};
use freshet_store::{DiscardStore, ResultStore, StoreLocation};
use freshet_streams::DataDir;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn run(data_dir: &Path, location: &StoreLocation, args: RunArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(data_dir)?;
    let mut runners = open_runners(&dir, location, &args.views, args.discard)?;
    if runners.is_empty() {
        bail!("no views to run; create one with `freshet sql \"CREATE VIEW ...\"`");
    }
    let started = Instant::now();
    if args.drain {
        let mut summaries = Vec::new();
        for r in &mut runners {
            let done = r
                .drain(args.end_of_stream)
                .with_context(|| format!("view '{}' failed", r.def().name))?;
            summaries.push(serde_json::json!({
                "view": r.def().name,
                "events": done.events,
                "rows_written": done.rows,
                "commits": done.commits,
                "late_dropped": r.stats().late_dropped,
                "late_dead_lettered": r.stats().late_dead_lettered,
                "late_updated": r.stats().late_updated,
                "state_bytes_peak": r.stats().state_bytes_peak,
                "commit_ms_p50": r.commit_ms_quantile(0.5),
                "commit_ms_p99": r.commit_ms_quantile(0.99),
            }));
        }
        let secs = started.elapsed().as_secs_f64();
        if args.json {
            output::json(&serde_json::json!({ "views": summaries, "seconds": secs }))?;
        } else {
            for s in &summaries {
                output::line(format!(
                    "{}: {} events, {} rows written, {} commits, late: {} dropped, {} dead-lettered, {} updated, \
                     peak state {} bytes",
                    s["view"].as_str().unwrap_or_default(),
                    s["events"],
                    s["rows_written"],
                    s["commits"],
                    s["late_dropped"],
                    s["late_dead_lettered"],
                    s["late_updated"],
                    s["state_bytes_peak"]
                ));
            }
            output::line(format!("drained in {secs:.2}s"));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let stop = Arc::new(AtomicBool::new(false));
    crate::server::on_shutdown_signal(stop.clone())?;
    for r in &mut runners {
        r.retry_until(stop.clone());
    }
    output::line(format!(
        "running {} view(s): {}; Ctrl-C stops",
        runners.len(),
        runners
            .iter()
            .map(|r| r.def().name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    follow(&mut runners, &stop)?;
    output::line("stopped; all views committed");
    Ok(ExitCode::SUCCESS)
}

/// A runner per view named in `names` (every view of the catalog if empty), each with its
/// own connection to the result store, resumed from its last commit; or,
/// with `discard`, each on a [`DiscardStore`] from the start of the log.
pub fn open_runners(
    dir: &DataDir,
    location: &StoreLocation,
    names: &[String],
    discard: bool,
) -> anyhow::Result<Vec<ViewRunner>> {
    let catalog = ViewCatalog::load(dir.root())?;
    for name in names {
        if catalog.get(name).is_none() {
            bail!("unknown view '{name}'");
        }
    }
    let clock = Arc::new(SystemClock);
    let mut runners = Vec::new();
    for def in catalog
        .views
        .iter()
        .filter(|v| names.is_empty() || names.contains(&v.name))
    {
        let store: Box<dyn ResultStore> = if discard {
            Box::new(DiscardStore::new())
        } else {
            location.open()?
        };
        let runner = ViewRunner::open(dir, &catalog, def, store, clock.clone())
            .with_context(|| format!("cannot start view '{}'", def.name))?;
        runners.push(runner);
    }
    Ok(runners)
}

/// Follow the live tail: process what arrives, commit each view when due, and once `stop`
/// is set commit everything and return.
pub fn follow(runners: &mut [ViewRunner], stop: &AtomicBool) -> anyhow::Result<()> {
    while !stop.load(Ordering::SeqCst) {
        if step_all(runners)? == 0 {
            wait_for_data(runners);
        }
    }
    commit_all(runners)
}

/// One turn of every view: streaming views read, process and commit when due; periodic
/// (micro-batch, batch) views run when their period has passed.
/// Returns the events read.
pub fn step_all(runners: &mut [ViewRunner]) -> anyhow::Result<u64> {
    let mut events = 0;
    for r in runners.iter_mut() {
        events += r
            .tick()
            .with_context(|| format!("view '{}' failed", r.def().name))?;
    }
    Ok(events)
}

/// Commit every view now, and wait until every commit has landed.
pub fn commit_all(runners: &mut [ViewRunner]) -> anyhow::Result<()> {
    for r in runners.iter_mut() {
        r.commit()
            .and_then(|_| r.flush())
            .with_context(|| format!("view '{}' failed", r.def().name))?;
    }
    Ok(())
}

/// Nothing was new: wait a little for data (or just wait, without views), so that commits
/// stay on time and a stop request is seen within [`IDLE_WAIT`].
pub fn wait_for_data(runners: &[ViewRunner]) {
    match runners.first() {
        Some(r) => r.wait_for_data(IDLE_WAIT),
        None => std::thread::sleep(IDLE_WAIT),
    }
}

/// How long an idle `follow` loop waits for new data before checking commits and `stop`.
const IDLE_WAIT: Duration = Duration::from_millis(20);
