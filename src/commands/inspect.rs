//! `freshet streams`, `freshet log verify` and `freshet dlq`: read-only views that work
//! while another process writes.

use crate::cli::{DlqArgs, ListArgs, VerifyArgs};
use crate::{EXIT_CHECK_FAILED, output};
use freshet_streams::catalog::Catalog;
use freshet_streams::inspect::{dead_letters, lookup, stream_info, verify_stream};
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;

pub fn streams(data_dir: &Path, args: ListArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::load(data_dir)?;
    let infos = catalog
        .streams
        .iter()
        .map(|def| stream_info(data_dir, def))
        .collect::<Result<Vec<_>, _>>()?;
    if args.json {
        output::json(&serde_json::json!({ "streams": infos }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if infos.is_empty() {
        output::line("no streams; create one with: freshet sql \"CREATE STREAM ...\"");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = infos
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.partitions.to_string(),
                s.partition_key.clone().unwrap_or_else(|| "-".into()),
                s.events.to_string(),
                output::bytes(s.bytes),
                s.dead_letters.to_string(),
                s.partition_info
                    .iter()
                    .map(|p| p.end.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                format!("{} - {}ms", s.event_time, s.watermark_delay_ms),
            ]
        })
        .collect();
    output::table(
        &[
            "STREAM",
            "PARTITIONS",
            "KEY",
            "EVENTS",
            "BYTES",
            "DLQ",
            "END OFFSETS",
            "WATERMARK",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct ProblemJson {
    stream: String,
    partition: String,
    file: String,
    position: u64,
    offset: u64,
    detail: String,
    fatal: bool,
}

pub fn verify(data_dir: &Path, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let defs = match &args.stream {
        Some(name) => vec![lookup(data_dir, name)?],
        None => Catalog::load(data_dir)?.streams,
    };
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut summary = Vec::new();
    for def in &defs {
        for (label, report) in verify_stream(data_dir, def)? {
            rows.push(vec![
                def.name.clone(),
                label.clone(),
                report.segments.to_string(),
                report.frames.to_string(),
                report.records.to_string(),
                output::bytes(report.bytes),
                if report.is_ok() { "ok" } else { "DAMAGED" }.to_string(),
            ]);
            summary.push(serde_json::json!({
                "stream": def.name, "partition": label, "segments": report.segments,
                "frames": report.frames, "records": report.records, "bytes": report.bytes,
                "ok": report.is_ok(),
            }));
            for p in &report.problems {
                problems.push(ProblemJson {
                    stream: def.name.clone(),
                    partition: label.clone(),
                    file: p.file.display().to_string(),
                    position: p.position,
                    offset: p.offset.0,
                    detail: p.detail.clone(),
                    fatal: p.fatal,
                });
            }
        }
    }
    let damaged = problems.iter().any(|p| p.fatal);
    if args.json {
        output::json(&serde_json::json!({
            "ok": !damaged, "partitions": summary, "problems": problems,
        }))?;
    } else {
        output::table(
            &[
                "STREAM",
                "PARTITION",
                "SEGMENTS",
                "FRAMES",
                "RECORDS",
                "BYTES",
                "STATUS",
            ],
            &rows,
        );
        for p in &problems {
            output::line(format!(
                "{}: {} at byte {} (offset {}): {}",
                if p.fatal { "DAMAGE" } else { "note" },
                p.file,
                p.position,
                p.offset,
                p.detail
            ));
        }
    }
    Ok(if damaged {
        ExitCode::from(EXIT_CHECK_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn dlq(data_dir: &Path, args: DlqArgs) -> anyhow::Result<ExitCode> {
    let rows = dead_letters(data_dir, &args.stream, args.from, args.limit)?;
    if args.json {
        output::json(&serde_json::json!({ "stream": args.stream, "dead_letters": rows }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        output::line(format!("no dead letters in {}", args.stream));
        return Ok(ExitCode::SUCCESS);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut raw: String = r.raw.chars().take(60).collect();
            if r.raw.chars().count() > 60 || r.raw_truncated {
                raw.push('…');
            }
            vec![
                r.offset.to_string(),
                format!("{}:{}", r.source, r.line),
                r.code.clone(),
                r.reason.clone(),
                raw,
            ]
        })
        .collect();
    output::table(&["OFFSET", "SOURCE:LINE", "CODE", "REASON", "RAW"], &table);
    Ok(ExitCode::SUCCESS)
}

pub fn retention(data_dir: &Path, args: ListArgs) -> anyhow::Result<ExitCode> {
    let dir = freshet_streams::DataDir::open(data_dir)?;
    let freed = dir.apply_retention()?;
    if args.json {
        let rows: Vec<_> = freed
            .iter()
            .map(|(s, segments, bytes)| {
                serde_json::json!({"stream": s, "removed_segments": segments, "removed_bytes": bytes})
            })
            .collect();
        output::json(&serde_json::json!({ "streams": rows }))?;
    } else {
        let rows: Vec<Vec<String>> = freed
            .iter()
            .map(|(s, segments, bytes)| {
                vec![s.clone(), segments.to_string(), output::bytes(*bytes)]
            })
            .collect();
        output::table(&["STREAM", "REMOVED SEGMENTS", "FREED"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}
