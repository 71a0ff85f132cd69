//! `freshet run`: run views continuously, or drain the log once.

use crate::cli::RunArgs;
use crate::commands::sql::store_path;
use crate::output;
use anyhow::{Context, bail};
use freshet_engine::{SystemClock, ViewCatalog, ViewRunner};
use freshet_store::SqliteStore;
use freshet_streams::DataDir;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn run(data_dir: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(data_dir)?;
    let mut runners = open_runners(&dir, &args.views)?;
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
            }));
        }
        let secs = started.elapsed().as_secs_f64();
        if args.json {
            output::json(&serde_json::json!({ "views": summaries, "seconds": secs }))?;
        } else {
            for s in &summaries {
                output::line(format!(
                    "{}: {} events, {} rows written, {} commits, late: {} dropped, {} dead-lettered",
                    s["view"].as_str().unwrap_or_default(),
                    s["events"],
                    s["rows_written"],
                    s["commits"],
                    s["late_dropped"],
                    s["late_dead_lettered"]
                ));
            }
            output::line(format!("drained in {secs:.2}s"));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let stop = Arc::new(AtomicBool::new(false));
    crate::server::on_shutdown_signal(stop.clone())?;
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
/// own connection to the data directory's result store, resumed from its last commit.
pub fn open_runners(dir: &DataDir, names: &[String]) -> anyhow::Result<Vec<ViewRunner>> {
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
        let store = SqliteStore::open(&store_path(dir.root()))?;
        let runner = ViewRunner::open(dir, &catalog, def, Box::new(store), clock.clone())
            .with_context(|| format!("cannot start view '{}'", def.name))?;
        runners.push(runner);
    }
    Ok(runners)
}

/// Follow the live tail: process what arrives, commit each view when due, and once `stop`
/// is set commit everything and return.
pub fn follow(runners: &mut [ViewRunner], stop: &AtomicBool) -> anyhow::Result<()> {
    if runners.is_empty() {
        return Ok(());
    }
    while !stop.load(Ordering::SeqCst) {
        let mut events = 0;
        for r in runners.iter_mut() {
            events += r
                .step()
                .with_context(|| format!("view '{}' failed", r.def().name))?;
            if r.commit_due() {
                r.commit()
                    .with_context(|| format!("view '{}' failed", r.def().name))?;
            }
        }
        if events == 0 {
            runners[0].wait_for_data(IDLE_WAIT);
        }
    }
    for r in runners.iter_mut() {
        r.commit()
            .with_context(|| format!("view '{}' failed", r.def().name))?;
    }
    Ok(())
}

/// How long an idle `follow` loop waits for new data before checking commits and `stop`.
const IDLE_WAIT: Duration = Duration::from_millis(20);
