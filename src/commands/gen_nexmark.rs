//! `freshet gen nexmark`: the deterministic Nexmark generator, into NDJSON files or
//! straight into streams.

use crate::cli::{Kind, NexmarkArgs};
use crate::output;
use anyhow::{Context, bail};
use arrow_array::RecordBatch;
use freshet_nexmark::{EventKind, Generator, GeneratorConfig, write_ndjson};
use freshet_streams::DataDir;
use freshet_streams::decode::Decoded;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const BATCH_EVENTS: usize = 8192;

fn kind(k: Kind) -> EventKind {
    match k {
        Kind::Person => EventKind::Person,
        Kind::Auction => EventKind::Auction,
        Kind::Bid => EventKind::Bid,
    }
}

/// Parse `--base-time`: RFC 3339, integer epoch ms, or `now`.
pub fn parse_base_time(text: &str) -> anyhow::Result<i64> {
    if text.eq_ignore_ascii_case("now") {
        return Ok(freshet_types::IngestTime::now().0);
    }
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("--base-time {text:?} is not RFC 3339, epoch ms or `now`"))?;
    Ok(t.timestamp_millis())
}

enum Sink {
    Files(Vec<(EventKind, std::io::BufWriter<std::fs::File>)>),
    Streams(DataDir),
}

pub fn run(data_dir: &Path, args: NexmarkArgs) -> anyhow::Result<ExitCode> {
    let only = args.only.map(kind);
    let config = GeneratorConfig {
        seed: args.seed,
        base_time_ms: parse_base_time(&args.base_time)?,
        events_per_second: args.event_rate.max(1),
        // With --only, `--events` counts the events written of that kind (the loop below
        // stops there); otherwise it is the first N events of the workload.
        max_events: if only.is_some() { None } else { args.events },
        ..GeneratorConfig::default()
    };
    if args.events.is_none() && args.rate.is_none() {
        bail!("give --events N (or --rate R to generate until interrupted)");
    }
    let mut sink = if args.to_streams {
        let dir = DataDir::open(data_dir)?;
        let existing: Vec<String> = dir.streams().into_iter().map(|s| s.name).collect();
        for statement in
            freshet_streams::ddl::split_statements(&freshet_nexmark::ddl(args.partitions))?
        {
            if let Some(freshet_streams::ddl::StreamStatement::Create { def, .. }) =
                freshet_streams::ddl::parse_stream_statement(&statement)?
                && !existing.contains(&def.name)
                && only.is_none_or(|k| k.stream_name() == def.name)
            {
                dir.create_stream(def, true)?;
            }
        }
        Sink::Streams(dir)
    } else {
        let Some(out) = &args.out else {
            bail!("give --out PATH (NDJSON) or --to-streams");
        };
        let kinds: Vec<EventKind> = match only {
            Some(k) => vec![k],
            None => vec![EventKind::Person, EventKind::Auction, EventKind::Bid],
        };
        let mut files = Vec::new();
        for k in kinds {
            let path = if only.is_some() {
                out.clone()
            } else {
                std::fs::create_dir_all(out)
                    .with_context(|| format!("cannot create directory {}", out.display()))?;
                out.join(format!("{}.ndjson", k.stream_name()))
            };
            let file = std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            files.push((k, std::io::BufWriter::with_capacity(1 << 20, file)));
        }
        Sink::Files(files)
    };
    let started = Instant::now();
    let mut generator = Generator::new(config, 0, 1);
    let mut buf = Vec::with_capacity(4 << 20);
    let mut counts = [0u64; 3];
    let step = args
        .rate
        .map_or(BATCH_EVENTS, |r| (r as usize / 20).clamp(1, BATCH_EVENTS));
    let limit = args.events.unwrap_or(u64::MAX);
    let mut written = 0u64;
    while written < limit {
        let Some(batches) = generator.next_batches(step, only) else {
            break;
        };
        for (k, batch) in batches.iter() {
            if written >= limit {
                break;
            }
            let keep = (limit - written).min(batch.num_rows() as u64) as usize;
            let batch = &batch.slice(0, keep);
            written += keep as u64;
            counts[k as usize] += batch.num_rows() as u64;
            match &mut sink {
                Sink::Files(files) => {
                    if let Some((_, w)) = files.iter_mut().find(|(fk, _)| *fk == k) {
                        buf.clear();
                        write_ndjson(k, batch, &mut buf);
                        w.write_all(&buf)?;
                    }
                }
                Sink::Streams(dir) => append(dir, k, batch)?,
            }
        }
        if let Some(rate) = args.rate {
            let due = Duration::from_secs_f64(generator.events_generated() as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    if let Sink::Files(files) = &mut sink {
        for (_, w) in files.iter_mut() {
            w.flush()?;
        }
    }
    let total: u64 = counts.iter().sum();
    if args.json {
        output::json(&serde_json::json!({
            "events": total,
            "person": counts[EventKind::Person as usize],
            "auction": counts[EventKind::Auction as usize],
            "bid": counts[EventKind::Bid as usize],
            "seconds": started.elapsed().as_secs_f64(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    output::line(format!(
        "generated {total} events (person {}, auction {}, bid {}) in {:.2}s",
        counts[EventKind::Person as usize],
        counts[EventKind::Auction as usize],
        counts[EventKind::Bid as usize],
        started.elapsed().as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}

fn append(dir: &DataDir, kind: EventKind, batch: &RecordBatch) -> anyhow::Result<()> {
    let stream = dir.stream(kind.stream_name())?;
    let batch = RecordBatch::try_new(stream.def().schema(), batch.columns().to_vec())
        .with_context(|| {
            format!(
                "stream {} does not have the Nexmark schema",
                kind.stream_name()
            )
        })?;
    let prepared = stream.prepare(
        Decoded {
            batch: Some(batch),
            rejects: Vec::new(),
        },
        "generator",
    )?;
    stream.commit(prepared, None)?;
    Ok(())
}
