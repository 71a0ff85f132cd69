//! `freshet explain VIEW`: the mode the planner chooses for a view, the alternatives with
//! numbers measured on a sample of its input, the risk, its mitigation, and when the choice
//! would change. Needs the data directory (like `run`).

use crate::cli::ExplainArgs;
use crate::output;
use freshet_engine::explain::{Explanation, explain};
use freshet_engine::{ViewCatalog, compile_view};
use freshet_log::{FileStorage, tail_headers};
use freshet_streams::DataDir;
use freshet_streams::datadir::stream_dir;
use std::path::Path;
use std::process::ExitCode;

/// The window over which the input rate is measured.
const RATE_WINDOW_MS: i64 = 60_000;

pub fn run(data_dir: &Path, args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(data_dir)?;
    let catalog = ViewCatalog::load(data_dir)?;
    let Some(def) = catalog.get(&args.view) else {
        anyhow::bail!("unknown view '{}'", args.view);
    };
    let rate = match args.rate {
        Some(rate) => Some(rate),
        None => {
            let compiled = compile_view(&dir, &catalog, def)?;
            let mut inputs = Vec::new();
            compiled.root.streams(&mut inputs);
            Some(recent_rate(&dir, &inputs))
        }
    };
    let explanation = explain(&dir, &catalog, &args.view, rate, args.sample)?;
    if args.json {
        output::json(&explanation)?;
    } else {
        print(&explanation);
    }
    Ok(ExitCode::SUCCESS)
}

/// Events per second ingested into `streams` over the last minute.
fn recent_rate(dir: &DataDir, streams: &[String]) -> f64 {
    let since = freshet_types::IngestTime::now().0 - RATE_WINDOW_MS;
    let mut events = 0u64;
    for def in dir.streams().iter().filter(|d| streams.contains(&d.name)) {
        for p in 0..def.partitions {
            let partition = stream_dir(dir.root(), &def.name).join(p.to_string());
            if let Ok(headers) =
                tail_headers(&FileStorage, &partition, 1, |h| h.ingest_time.0 >= since)
            {
                events += headers
                    .iter()
                    .map(|h| u64::from(h.record_count))
                    .sum::<u64>();
            }
        }
    }
    events as f64 / (RATE_WINDOW_MS as f64 / 1_000.0)
}

fn duration(ms: u64) -> String {
    freshet_streams::duration::format_duration(std::time::Duration::from_millis(ms))
}

fn print(e: &Explanation) {
    output::line(format!("view {}", e.view));
    output::line(format!(
        "requirement: freshness SLA {}; input {:.0} events/s ({})",
        duration(e.sla_ms),
        e.input_rate,
        e.rate_source
    ));
    output::line(format!(
        "decision: {} (period {}), measured on {} events",
        e.mode,
        duration(e.period_ms),
        e.sample_events
    ));
    let rows: Vec<Vec<String>> = e
        .alternatives
        .iter()
        .map(|a| {
            vec![
                format!("{}{}", a.mode, if a.mode == e.mode { " *" } else { "" }),
                duration(a.period_ms),
                duration(a.freshness_p99_ms),
                format!("{:.0}", a.max_events_per_s),
                format!("{:.2}", a.cpu_seconds_per_million),
                format!("{:.0}", a.store_writes_per_million),
                output::bytes(a.memory_bytes_peak),
                output::bytes(a.state_growth_bytes_per_million as u64),
            ]
        })
        .collect();
    output::table(
        &[
            "mode",
            "period",
            "freshness p99",
            "max events/s",
            "CPU s per M events",
            "store writes per M events",
            "peak memory",
            "state growth per M events",
        ],
        &rows,
    );
    output::line(format!("batch mode runs as: {}", e.batch_execution));
    output::line(format!("state: {}", e.state.summary));
    output::line(format!(
        "parallelism: {}",
        freshet_engine::manage::describe_parallelism(&e.parallelism)
    ));
    output::line(format!("risk: {}", e.risk));
    output::line(format!("mitigation: {}", e.mitigation));
    output::line(format!("would choose differently: {}", e.condition));
}
