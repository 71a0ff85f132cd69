//! Golden pipelines: `tests/pipelines/<name>.sql` (streams and views), `<name>.input`
//! (rows and directives) and `<name>.expected` (every view's results table after the run).
//!
//! Input lines: `<stream> <partition> <json>` appends one row as one frame to that
//! partition; `@run` lets every view process everything in the log and commit;
//! `@tick <ms>` advances the clock (idle partitions); `@end` ends the streams (watermark
//! +infinity); `@show` adds every view's results table at that moment to the output, to
//! pin down rows that later change. The end of the file is an implicit `@run`.
//!
//! Each pipeline runs twice: straight through, and with a crash at the middle `@run` —
//! the views process that phase, are dropped without committing it, and are restored from
//! the previous commit — and both must equal the expected output. A pipeline that reaches
//! `@end` must also end with each view's rows equal to DataFusion's batch result of its
//! query over the whole log (unless the view set events aside as late). `FRESHET_BLESS=1`
//! rewrites the expected files after a deliberate change.

use crate::support::{Backend, Harness, lines};
use freshet_engine::batch::{BatchSession, TimeRange, Views};
use freshet_engine::planner::{Mode, Plan};
use freshet_engine::reconcile::{Request, reconcile};
use std::path::{Path, PathBuf};

fn pipelines_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/pipelines")
}

enum Step {
    Row(String, u32, String),
    Run,
    Tick(i64),
    End,
    Show,
}

fn parse_input(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "@run" {
            steps.push(Step::Run);
        } else if line == "@end" {
            steps.push(Step::End);
        } else if line == "@show" {
            steps.push(Step::Show);
        } else if let Some(ms) = line.strip_prefix("@tick ") {
            steps.push(Step::Tick(
                ms.trim().parse().expect("@tick takes milliseconds"),
            ));
        } else {
            let mut parts = line.splitn(3, ' ');
            let (Some(stream), Some(p), Some(json)) = (parts.next(), parts.next(), parts.next())
            else {
                panic!(
                    "line {}: expected `<stream> <partition> <json>`: {line}",
                    n + 1
                );
            };
            steps.push(Step::Row(
                stream.into(),
                p.parse().expect("partition number"),
                json.into(),
            ));
        }
    }
    if !matches!(steps.last(), Some(Step::Run | Step::End | Step::Show)) {
        steps.push(Step::Run);
    }
    steps
}

/// Run a pipeline; with `crash`, lose the middle `@run`'s work and restore.
fn run_pipeline(name: &str, crash: bool, backend: Backend) -> Option<String> {
    let dir = pipelines_dir();
    let sql = std::fs::read_to_string(dir.join(format!("{name}.sql"))).expect("read the .sql");
    let input =
        std::fs::read_to_string(dir.join(format!("{name}.input"))).expect("read the .input");
    let h = Harness::on(backend, &sql)?;
    let steps = parse_input(&input);
    let runs = steps.iter().filter(|s| matches!(s, Step::Run)).count();
    let crash_at = if crash { Some(runs.div_ceil(2)) } else { None };
    let mut runners = h.runners();
    let mut run_no = 0;
    let mut out = String::new();
    for step in &steps {
        match step {
            Step::Row(stream, p, json) => h.append(stream, *p, std::slice::from_ref(json)),
            Step::Tick(ms) => h.clock.advance(*ms),
            Step::Run => {
                run_no += 1;
                if crash_at == Some(run_no) {
                    for r in &mut runners {
                        while r.step().expect("step") > 0 || !r.caught_up() {}
                    }
                    drop(runners);
                    runners = h.runners();
                }
                for r in &mut runners {
                    r.drain(false).expect("drain");
                }
            }
            Step::End => {
                for r in &mut runners {
                    r.drain(true).expect("drain to the end");
                }
            }
            Step::Show => {
                for r in &runners {
                    let view = &r.def().name;
                    out.push_str(&format!("-- show {view} after run {run_no}\n"));
                    out.push_str(&h.dump(view));
                }
            }
        }
    }
    for r in &runners {
        let view = &r.def().name;
        out.push_str(&format!("-- view {view}\n"));
        out.push_str(&h.dump(view));
        let s = r.stats();
        out.push_str(&format!(
            "-- late: dropped {} dead_lettered {} updated {}\n",
            s.late_dropped, s.late_dead_lettered, s.late_updated
        ));
        for (p, o, reason) in h.late_events(view) {
            out.push_str(&format!("-- late event p{p}@{o}: {reason}\n"));
        }
    }
    if !crash {
        check_batch_mode(name, &h, &runners);
        if backend == Backend::Sqlite {
            check_batch_runs(name, &sql, &steps, &h, &runners);
            if steps.iter().any(|s| matches!(s, Step::End)) {
                check_final_rows(name, &h, &runners);
            }
        }
    }
    Some(out)
}

/// A running view's batch mode agrees with streaming: the pipeline run again with its views
/// in batch mode, each `@run` one DataFusion batch run, ends with the same rows, for each
/// view that DataFusion runs and whose streaming run set no event aside as late (a batch
/// run judges lateness against the watermark before the run; see docs/planner.md).
fn check_batch_runs(
    name: &str,
    sql: &str,
    steps: &[Step],
    streaming: &Harness,
    streamed: &[freshet_engine::ViewRunner],
) {
    let h = Harness::new(sql);
    let mut runners: Vec<_> = h
        .runners()
        .into_iter()
        .filter(|r| r.batch_by_operators().is_none())
        .collect();
    // Period 0: due at every turn, so the clock moves only where the input says.
    let batch = Plan {
        mode: Mode::Batch,
        period_ms: 0,
    };
    for step in steps {
        match step {
            Step::Row(stream, p, json) => h.append(stream, *p, std::slice::from_ref(json)),
            Step::Tick(ms) => h.clock.advance(*ms),
            Step::Run => {
                for r in &mut runners {
                    let runs = r.stats().batch_runs;
                    // A turn may first re-plan the view (every 10 s of the clock).
                    for _ in 0..2 {
                        r.set_plan(batch);
                        r.tick().expect("a batch run");
                        if r.stats().batch_runs > runs {
                            break;
                        }
                    }
                    assert!(r.stats().batch_runs > runs, "pipeline {name}: no batch run");
                }
            }
            Step::End => {
                for r in &mut runners {
                    r.drain(true).expect("drain to the end");
                }
            }
            Step::Show => {}
        }
    }
    for r in &mut runners {
        r.flush().expect("the last commit lands");
        let view = &r.def().name;
        let late = streamed
            .iter()
            .find(|s| &s.def().name == view)
            .map(|s| s.stats().late_dropped + s.stats().late_dead_lettered)
            .expect("the same views");
        if late == 0 {
            assert_eq!(
                h.dump(view),
                streaming.dump(view),
                "pipeline {name}: view {view} run in batch by DataFusion differs from streaming"
            );
        }
    }
}

/// After the end of the streams every row is final and a view's results are its query's
/// rows: each view that set no event aside as late equals DataFusion's batch result over
/// the whole log (windowed or not, over rows that change or not). A view that forgets
/// rows (`state_ttl`) departs from batch by design and is not compared.
fn check_final_rows(name: &str, h: &Harness, runners: &[freshet_engine::ViewRunner]) {
    let catalog = h.views();
    let session = BatchSession::new(
        h.data.root(),
        &h.data.streams(),
        Views::Recomputed(&catalog.views),
        TimeRange::default(),
        &[],
    )
    .expect("a batch session");
    for r in runners {
        let s = r.stats();
        if s.late_dropped + s.late_dead_lettered > 0 || r.def().options.state_ttl_ms.is_some() {
            continue;
        }
        let view = &r.def().name;
        let (_, batch) = session
            .query(&format!("SELECT * FROM \"{view}\""))
            .unwrap_or_else(|e| panic!("pipeline {name}: DataFusion runs view {view}: {e}"));
        let Some(first) = batch.first() else {
            let rows: usize = h.stored(view).iter().map(|b| b.num_rows()).sum();
            assert_eq!(
                rows, 0,
                "pipeline {name}: view {view} has rows; batch has none"
            );
            continue;
        };
        let columns: Vec<String> = first
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            lines(&h.stored(view), &columns),
            lines(&batch, &columns),
            "pipeline {name}: view {view}'s final rows differ from DataFusion's batch result"
        );
    }
}

/// Batch mode agrees with streaming: each windowed view recomputed by DataFusion over the
/// whole log equals its final rows. Views that set late events aside differ from batch by
/// design (batch sees every event).
fn check_batch_mode(name: &str, h: &Harness, runners: &[freshet_engine::ViewRunner]) {
    let catalog = h.views();
    let streams = h.data.streams();
    for r in runners {
        let s = r.stats();
        if s.late_dropped + s.late_dead_lettered > 0 || r.def().options.state_ttl_ms.is_some() {
            continue;
        }
        let view = &r.def().name;
        let mut store = h.store.open().expect("open the store");
        let request = Request {
            root: h.data.root(),
            streams: &streams,
            catalog: &catalog,
            view,
            from_ms: i64::MIN / 4,
            to_ms: i64::MAX / 4,
            repair: false,
            on_scan: None,
            history: &[],
        };
        match reconcile(&request, store.as_mut()) {
            Ok(report) => assert!(
                report.clean(),
                "pipeline {name}: view {view} in batch mode differs from streaming: {report:?}"
            ),
            // Views that cannot be recomputed by range (their final rows are still
            // compared with DataFusion's over the whole log, above).
            Err(e)
                if e.to_string().contains("needs a windowed view")
                    || e.to_string().contains("cannot be reconciled by range") => {}
            Err(e) => panic!("pipeline {name}: view {view} cannot run in batch: {e}"),
        }
    }
}

fn check(name: &str) {
    check_on(name, Backend::Sqlite);
}

/// The pipeline's output with results in `backend` equals the blessed output (written by
/// the SQLite store), straight through and crashed halfway.
fn check_on(name: &str, backend: Backend) {
    let Some(straight) = run_pipeline(name, false, backend) else {
        return;
    };
    let path = pipelines_dir().join(format!("{name}.expected"));
    if backend == Backend::Sqlite && std::env::var_os("FRESHET_BLESS").is_some() {
        std::fs::write(&path, &straight).expect("write the blessed output");
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing; run with FRESHET_BLESS=1", path.display()));
    assert_eq!(
        straight, expected,
        "pipeline {name} on {backend:?} (straight through)"
    );
    let restored = run_pipeline(name, true, backend).expect("the backend is configured");
    assert_eq!(
        restored, expected,
        "pipeline {name} on {backend:?} (crashed halfway and restored)"
    );
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { check(stringify!($name)); })*
        /// The same pipelines with results in PostgreSQL.
        mod postgres {
            use super::*;
            $(#[test] fn $name() { check_on(stringify!($name), Backend::Postgres); })*
        }
        /// Every pipeline with a test.
        const PIPELINES: &[&str] = &[$(stringify!($name)),*];
    };
}

golden!(
    tumbling,
    hopping,
    session,
    unbounded_group_by,
    filter_projection,
    cascade_q5,
    window_join_q7,
    interval_join,
    interval_join_restore,
    late_drop,
    late_dead_letter,
    late_update,
    idle_partition,
    provisional_updates,
    aggregate_filter,
    having_updating,
    top_n,
    session_updates,
    union_all,
    stream_join,
    rows_over,
    aggregate_join,
    retracting_aggregate,
    changing_join,
    join_state_ttl,
    join_state_ttl_restore,
    global_aggregate,
    running_over,
    order_by_limit,
    rank_top_n,
    statistics,
    ranked_windows,
    grouping_sets,
    scalar_subquery,
    whole_partition,
    theta_join,
    lead_over,
);

#[test]
fn every_pipeline_file_has_a_test() {
    for entry in std::fs::read_dir(pipelines_dir()).expect("list tests/pipelines") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "sql") {
            let stem = path
                .file_stem()
                .expect("a file stem")
                .to_string_lossy()
                .to_string();
            assert!(PIPELINES.contains(&stem.as_str()), "{stem}.sql has no test");
        }
    }
}

/// Row `i` of the 20,000 rows [`drain_long_stream`] appends: 4 keys, 10 ms apart.
fn long_stream_row(i: i64) -> String {
    format!(
        r#"{{"k":{},"v":{i},"t":{}}}"#,
        i % 4,
        1_436_918_400_000 + i * 10
    )
}

/// Appends 20,000 rows to stream `s` (`k`, `v`, `t`; partition 0), in frames of 1,000,
/// and drains them through the harness's views.
fn drain_long_stream(h: &Harness) -> Vec<freshet_engine::ViewRunner> {
    let lines: Vec<String> = (0..20_000i64).map(long_stream_row).collect();
    for chunk in lines.chunks(1_000) {
        h.append("s", 0, chunk);
    }
    let mut runners = h.runners();
    runners[0].drain(false).expect("drain");
    runners
}

/// A join whose condition bounds the pairs' times frees each side's rows once the other
/// side's watermark passes them, and sets aside as late a row behind that watermark.
#[test]
fn an_interval_joins_state_stays_bounded() {
    let h = Harness::new(
        "CREATE STREAM s (k BIGINT NOT NULL, v BIGINT NOT NULL, t TIMESTAMP NOT NULL, \
         WATERMARK FOR t AS t - INTERVAL '1' SECOND) WITH (partitions = 1); \
         CREATE VIEW pairs AS SELECT a.k, a.v, b.v AS next FROM s a JOIN s b ON a.k = b.k \
         WHERE b.t BETWEEN a.t AND a.t + INTERVAL '2' SECOND AND b.v = a.v + 4",
    );
    let mut runners = drain_long_stream(&h);
    let r = &mut runners[0];
    // Kept: the batches within about 3 s of the watermark (a few hundred rows a side),
    // not 20,000 rows a side.
    assert!(
        r.stats().state_bytes < 1_000_000,
        "state estimate {} after 20,000 rows",
        r.stats().state_bytes
    );
    assert_eq!(r.stats().late_dropped + r.stats().late_dead_lettered, 0);
    // A row at the first row's time: both its sides' partners are gone.
    h.append("s", 0, &[long_stream_row(0)]);
    r.drain(false).expect("drain");
    assert!(
        r.stats().late_dropped + r.stats().late_dead_lettered >= 1,
        "a row behind the watermark was joined"
    );
}

/// A `ROWS BETWEEN` view's state is its groups' frames and the rows waiting for the
/// watermark, however many rows went through: its estimate must not drift upwards with
/// each row (it once grew by a vector's spare capacity per row, and would have stopped a
/// long run at `state_bytes_max`).
#[test]
fn a_rows_between_views_state_stays_bounded() {
    let h = Harness::new(
        "CREATE STREAM s (k BIGINT NOT NULL, v BIGINT NOT NULL, t TIMESTAMP NOT NULL, \
         WATERMARK FOR t AS t - INTERVAL '1' SECOND) WITH (partitions = 1); \
         CREATE VIEW running AS SELECT k, v, SUM(v) OVER (PARTITION BY k ORDER BY t ROWS \
         BETWEEN 2 PRECEDING AND CURRENT ROW) AS total FROM s",
    );
    let mut runners = drain_long_stream(&h);
    let r = &mut runners[0];
    // 4 frames of 3 rows and the last second's 100 rows waiting: a few tens of KB.
    assert!(
        r.stats().state_bytes < 100_000,
        "state estimate {} after 20,000 rows",
        r.stats().state_bytes
    );
}

/// A per-window deduplication is keyed by its group, so a batch run over a range could
/// write its rows; it still must not: a batch run breaks ties in the ranking its own way.
#[test]
fn a_ranked_view_is_reconciled_but_not_repaired() {
    let h = Harness::new(
        "CREATE STREAM s (k BIGINT NOT NULL, v BIGINT NOT NULL, t TIMESTAMP NOT NULL, \
         WATERMARK FOR t AS t - INTERVAL '1' SECOND) WITH (partitions = 1); \
         CREATE VIEW first_per_window AS SELECT k, window_start, window_end, v FROM ( \
           SELECT *, ROW_NUMBER() OVER (PARTITION BY k, window_end ORDER BY t) AS r \
           FROM TUMBLE(s, t, INTERVAL '10' SECOND)) WHERE r = 1",
    );
    drain_long_stream(&h);
    let catalog = h.views();
    let streams = h.data.streams();
    let mut store = h.store.open().expect("open the store");
    for repair in [false, true] {
        let request = Request {
            root: h.data.root(),
            streams: &streams,
            catalog: &catalog,
            view: "first_per_window",
            from_ms: i64::MIN / 4,
            to_ms: i64::MAX / 4,
            repair,
            on_scan: None,
            history: &[],
        };
        let result = reconcile(&request, store.as_mut());
        if repair {
            let err = result.expect_err("a repair of ranked rows is refused");
            assert!(err.to_string().contains("not repaired"), "{err}");
        } else {
            let report = result.expect("ranked rows are reconciled");
            assert!(report.clean() && report.matched > 50, "{report:?}");
        }
    }
}
