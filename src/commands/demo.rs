//! `freshet demo`: the main job on embedded defaults. Generates Nexmark events as NDJSON,
//! creates the three streams, ingests the files through the same path as `freshet ingest`,
//! and shows the streams. Later issues grow this into the full running demo.

use crate::cli::{DemoArgs, ListArgs, NexmarkArgs};
use crate::output;
use anyhow::{Context, bail};
use freshet_nexmark::EventKind;
use freshet_streams::DataDir;
use freshet_streams::ingest::{Format, ingest_file};
use std::path::Path;
use std::process::ExitCode;

pub fn run(data_dir: &Path, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let catalog = freshet_streams::catalog::Catalog::load(data_dir)?;
    if !catalog.streams.is_empty() {
        if !args.reset {
            bail!(
                "{} already holds streams; pass --reset to start over, or --data-dir NEW_DIR",
                data_dir.display()
            );
        }
        std::fs::remove_dir_all(data_dir)
            .with_context(|| format!("cannot remove {}", data_dir.display()))?;
    }
    let input = data_dir.join("demo-input");
    std::fs::create_dir_all(&input)?;
    output::line(format!(
        "1/3 generating {} Nexmark events into {}",
        args.events,
        input.display()
    ));
    super::gen_nexmark::run(
        data_dir,
        NexmarkArgs {
            events: Some(args.events),
            out: Some(input.clone()),
            to_streams: false,
            only: None,
            rate: None,
            event_rate: 10_000,
            base_time: "2015-07-15T00:00:00Z".into(),
            seed: 0,
            partitions: 4,
            json: false,
        },
    )?;
    output::line("2/3 creating streams person, auction, bid (4 partitions each)");
    let dir = DataDir::open(data_dir)?;
    for statement in freshet_streams::ddl::split_statements(&freshet_nexmark::ddl(4))? {
        if let Some(outcome) = dir.execute(&statement)? {
            output::line(format!("    {outcome}"));
        }
    }
    output::line("3/3 ingesting (decode, validate, partition, append, fsync)");
    for kind in EventKind::ALL {
        let path = &input.join(format!("{}.ndjson", kind.stream_name()));
        let stream = dir.stream(kind.stream_name())?;
        let s = ingest_file(&stream, path, Format::Ndjson, &mut |_| {})?;
        output::line(format!(
            "    {:<8} accepted {:>9} rejected {} in {:.2}s ({:.0} events/s)",
            kind.stream_name(),
            s.accepted,
            s.rejected,
            s.seconds,
            s.accepted as f64 / s.seconds.max(1e-9)
        ));
    }
    drop(dir);
    output::line("");
    super::inspect::streams(data_dir, ListArgs { json: false })?;
    output::line("");
    output::line("next:");
    let d = data_dir.display();
    output::line(format!(
        "    freshet --data-dir {d} log verify        # check every frame"
    ));
    output::line(format!(
        "    freshet --data-dir {d} dlq bid           # rejected rows, if any"
    ));
    output::line(format!(
        "    freshet --data-dir {d} serve             # HTTP ingest on 127.0.0.1:7478"
    ));
    Ok(ExitCode::SUCCESS)
}
