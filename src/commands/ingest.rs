//! `freshet ingest`: a file into a stream, with a progress bar and a summary.

use crate::cli::IngestArgs;
use crate::output;
use anyhow::{Context, bail};
use freshet_streams::DataDir;
use freshet_streams::ingest::{Format, ingest_file};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::Path;
use std::process::ExitCode;

pub fn run(data_dir: &Path, args: IngestArgs) -> anyhow::Result<ExitCode> {
    let format = match &args.format {
        Some(f) => Format::parse(f)
            .with_context(|| format!("unknown format {f:?}; use ndjson, csv or parquet"))?,
        None => match Format::from_path(&args.file) {
            Some(f) => f,
            None => bail!(
                "cannot tell the format of {} from its extension; pass --format ndjson|csv|parquet",
                args.file.display()
            ),
        },
    };
    if !args.file.is_file() {
        bail!("input file {} does not exist", args.file.display());
    }
    let dir = DataDir::open(data_dir)?;
    let stream = dir.stream(&args.stream)?;
    let total = std::fs::metadata(&args.file)?.len();
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
        )
        .expect("the template is valid"),
    );
    let summary = ingest_file(&stream, &args.file, format, &mut |p| {
        bar.set_position(p.bytes_done);
        bar.set_message(format!("accepted {} rejected {}", p.accepted, p.rejected));
    })?;
    bar.finish_and_clear();
    if args.json {
        output::json(&summary)?;
    } else {
        let rate = summary.accepted as f64 / summary.seconds.max(1e-9);
        output::line(format!(
            "ingested {} into {}: accepted {} rejected {} in {:.2}s ({:.0} events/s)",
            summary.source,
            summary.stream,
            summary.accepted,
            summary.rejected,
            summary.seconds,
            rate
        ));
        for r in summary.rejects.iter().take(10) {
            output::line(format!("  line {}: {} ({})", r.line, r.reason, r.code));
        }
        if summary.rejected > 0 {
            output::line(format!(
                "  all rejected rows are in the dead-letter stream: freshet dlq {}",
                summary.stream
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}
