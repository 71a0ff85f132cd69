//! `freshet run`: run views continuously, or drain the log once.

use crate::app::signals::on_shutdown_signal;
use crate::app::supervisor::Supervisor;
use crate::cli::RunArgs;
use crate::output;
use anyhow::{Context, bail};
use freshet_store::StoreLocation;
use freshet_streams::DataDir;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

pub fn run(data_dir: &Path, location: &StoreLocation, args: RunArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(data_dir)?;
    let mut supervisor = Supervisor::open(&dir, location, &args.views, args.discard)?;
    if supervisor.runners().is_empty() {
        bail!("no views to run; create one with `freshet sql \"CREATE VIEW ...\"`");
    }
    let started = Instant::now();
    if args.drain {
        let mut summaries = Vec::new();
        for r in supervisor.runners() {
            let done = r
                .drain(args.end_of_stream)
                .with_context(|| format!("view '{}' failed", r.def().name))?;
            summaries.push(serde_json::json!({
                "view": r.def().name,
                "task": r.task().name(),
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
                let task = match s["task"].as_str() {
                    Some("view") | None => String::new(),
                    Some(task) => format!(" ({task})"),
                };
                output::line(format!(
                    "{}{task}: {} events, {} rows written, {} commits, late: {} dropped, {} dead-lettered, {} updated, \
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
    on_shutdown_signal(stop.clone())?;
    let mut names: Vec<String> = supervisor
        .runners()
        .iter()
        .map(|r| r.def().name.clone())
        .collect();
    // A view run per partition has a runner per task.
    names.dedup();
    output::line(format!(
        "running {} view(s): {}; Ctrl-C stops",
        names.len(),
        names.join(", ")
    ));
    if supervisor.run(stop, |_| {})? {
        output::line("stopped; all views committed");
    } else {
        output::line(
            "stopped; the result store was unavailable, so the views resume from their last \
             commits",
        );
    }
    Ok(ExitCode::SUCCESS)
}
