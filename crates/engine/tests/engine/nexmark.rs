//! Nexmark q0–q22 as views: `tests/nexmark/qN.sql`, each written from the public queries in
//! Freshet's dialect, with comments where it departs from the Flink text. A file's first
//! line says what Freshet does with it today: `-- status: runs`, or `-- status: refused
//! <what the error names>`.
//!
//! A query that runs is created as a view in streaming, micro-batch and batch mode over
//! the same generated events, and once more in streaming mode crashed halfway (the events
//! so far processed, the runner dropped without committing them and reopened from its
//! last commit); after the end of the streams every view's rows equal DataFusion's batch
//! result of the query over the same events. A refused query must be refused naming its
//! reason, so a query that starts to run fails this test until its status says so.

use crate::support::{Harness, lines};
use freshet_engine::batch::{BatchSession, TimeRange, Views};
use freshet_nexmark::{EventKind, Generator, GeneratorConfig, write_ndjson};
use std::path::{Path, PathBuf};

/// Events generated for each query (about 92% bids).
const EVENTS: u64 = 20_000;

/// Partitions of each stream; frames go to them in turn.
const PARTITIONS: u32 = 4;

/// Events per generated frame.
const FRAME_EVENTS: usize = 500;

/// The modes a query that runs is checked in.
const MODES: [&str; 3] = ["streaming", "micro_batch", "batch"];

fn queries_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/nexmark")
}

/// What a query file says Freshet does with it.
enum Status {
    Runs,
    Refused(String),
}

/// The query's status line and its SELECT (the file without its comment lines).
fn read_query(n: u32) -> (Status, String) {
    let path = queries_dir().join(format!("q{n}.sql"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    let first = text.lines().next().unwrap_or_default();
    let status = match first.strip_prefix("-- status: ") {
        Some("runs") => Status::Runs,
        Some(rest) => match rest.strip_prefix("refused ") {
            Some(reason) => Status::Refused(reason.to_owned()),
            None => panic!("q{n}: unknown status line {first:?}"),
        },
        None => panic!("q{n}: the first line must be `-- status: ...`, not {first:?}"),
    };
    let query = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    (status, query)
}

/// Each stream's generated events as frames of NDJSON lines, in event order.
fn frames() -> Vec<(EventKind, Vec<String>)> {
    let config = GeneratorConfig {
        max_events: Some(EVENTS),
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(config, 0, 1);
    let mut frames = Vec::new();
    while let Some(batches) = generator.next_batches(FRAME_EVENTS, None) {
        for kind in [EventKind::Person, EventKind::Auction, EventKind::Bid] {
            if let Some(batch) = batches.get(kind) {
                let mut ndjson = Vec::new();
                write_ndjson(kind, batch, &mut ndjson);
                let text = String::from_utf8(ndjson).expect("NDJSON is UTF-8");
                frames.push((kind, text.lines().map(str::to_owned).collect()));
            }
        }
    }
    frames
}

fn append(h: &Harness, frames: &[(EventKind, Vec<String>)], first_frame: usize) {
    for (i, (kind, lines)) in frames.iter().enumerate() {
        let partition = ((first_frame + i) as u32) % PARTITIONS;
        h.append(kind.stream_name(), partition, lines);
    }
}

fn check(n: u32) {
    let (status, query) = read_query(n);
    let setup = [EventKind::Person, EventKind::Auction, EventKind::Bid]
        .map(|k| k.ddl(PARTITIONS))
        .join(";\n");
    let h = Harness::new(&setup);
    match status {
        Status::Refused(reason) => {
            let error = h
                .execute(&format!("CREATE VIEW q{n} AS {query}"))
                .expect_err("the status says it is refused; it runs now: update its status");
            assert!(
                error.contains(&reason),
                "q{n} is refused for another reason than its status says ({reason}): {error}"
            );
        }
        Status::Runs => {
            for mode in MODES {
                h.execute(&format!(
                    "CREATE VIEW q{n}_{mode} WITH (mode = '{mode}') AS {query}"
                ))
                .unwrap_or_else(|e| panic!("q{n} in {mode} mode: {e}"));
            }
            h.execute(&format!("CREATE VIEW q{n}_crashed AS {query}"))
                .unwrap_or_else(|e| panic!("q{n}: {e}"));
            let frames = frames();
            let (quarter, half) = (frames.len() / 4, frames.len() / 2);
            // Every view commits a quarter in, so that rows which change later (an
            // unbounded GROUP BY's, ranked rows, padded rows) are written and then changed.
            append(&h, &frames[..quarter], 0);
            for mut r in h.runners() {
                r.drain(false).expect("drain a quarter");
            }
            append(&h, &frames[quarter..half], quarter);
            // Process up to the half and crash before the next commit.
            for mut r in h.runners() {
                while r.step().expect("step") > 0 || !r.caught_up() {}
            }
            append(&h, &frames[half..], half);
            let mut runners = h.runners();
            for r in &mut runners {
                r.drain(true).expect("drain to the end");
                let s = r.stats();
                assert_eq!(
                    s.late_dropped + s.late_dead_lettered,
                    0,
                    "q{n}: generated events are never late"
                );
            }
            let catalog = h.views();
            let session = BatchSession::new(
                h.data.root(),
                &h.data.streams(),
                Views::Recomputed(&[]),
                TimeRange::default(),
                &[],
            )
            .expect("a batch session");
            let (_, expected) = session.query(&query).expect("DataFusion runs the query");
            let columns: Vec<String> = expected
                .first()
                .map(|b| {
                    b.schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect()
                })
                .unwrap_or_default();
            let want = lines(&expected, &columns);
            assert!(!want.is_empty(), "q{n}: the batch result is empty");
            for view in catalog.views.iter().map(|v| v.name.as_str()) {
                let got = lines(&h.stored(view), &columns);
                assert_eq!(
                    got.len(),
                    want.len(),
                    "{view}: {} rows, DataFusion's batch result has {}",
                    got.len(),
                    want.len()
                );
                assert!(
                    got == want,
                    "{view}: rows differ from DataFusion's batch result"
                );
            }
        }
    }
}

macro_rules! nexmark {
    ($($name:ident = $n:expr),* $(,)?) => {
        $(#[test] fn $name() { check($n); })*
    };
}

nexmark!(
    q0 = 0,
    q1 = 1,
    q2 = 2,
    q3 = 3,
    q4 = 4,
    q5 = 5,
    q6 = 6,
    q7 = 7,
    q8 = 8,
    q9 = 9,
    q10 = 10,
    q11 = 11,
    q12 = 12,
    q13 = 13,
    q14 = 14,
    q15 = 15,
    q16 = 16,
    q17 = 17,
    q18 = 18,
    q19 = 19,
    q20 = 20,
    q21 = 21,
    q22 = 22,
);
