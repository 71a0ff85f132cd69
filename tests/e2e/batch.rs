//! Batch execution and modes through the binary: `freshet query` runs SQL over streams (the
//! log) and views (the result store); `freshet reconcile` recomputes a view in batch, finds
//! each kind of damage done to its stored results, and `--repair` makes the next run clean;
//! `freshet backfill` is idempotent; `freshet explain` moves from streaming to micro-batch
//! to batch as the SLA relaxes.

use super::support::{Env, Server};
use serde_json::Value;

pub const COUNTS: &str = "CREATE VIEW counts AS SELECT auction, window_start, window_end, \
    COUNT(*) AS bids, MAX(price) AS top \
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) GROUP BY auction, window_start, window_end";

const RANGE: [&str; 4] = [
    "--from",
    "2015-07-15T00:00:00Z",
    "--to",
    "2015-07-16T00:00:00Z",
];

/// Nexmark history in the streams and `counts` drained to the end.
pub fn counted(env: &Env) {
    env.ok(&["gen", "nexmark", "--events", "100000", "--to-streams"]);
    env.ok(&["sql", COUNTS]);
    env.ok(&["run", "--drain", "--end-of-stream"]);
}

/// `freshet reconcile counts` over the whole day: its JSON report and exit code.
pub fn reconcile(env: &Env, repair: bool) -> (Value, Option<i32>) {
    reconcile_view(env, "counts", repair)
}

/// `freshet reconcile <view>` over the generated events' day, as JSON: the report and the
/// exit code.
pub fn reconcile_view(env: &Env, view: &str, repair: bool) -> (Value, Option<i32>) {
    let mut args = vec!["reconcile", view];
    args.extend(RANGE);
    args.push("--json");
    if repair {
        args.push("--repair");
    }
    let run = env.run(&args);
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("a JSON report ({e}): {}\n{}", run.stdout, run.stderr));
    (report, run.code)
}

fn counts(report: &Value) -> [u64; 4] {
    ["matched", "mismatched", "missing", "extra"].map(|k| report[k].as_u64().expect(k))
}

#[test]
fn query_reads_streams_from_the_log_and_views_from_the_store() {
    let env = Env::new();
    counted(&env);
    let bids = env.events("bid");
    let csv = env.ok(&["query", "SELECT count(*) AS n FROM bid", "--format", "csv"]);
    assert_eq!(csv, format!("n\n{bids}\n"));

    // The view's stored rows, summed, count every bid; so does the same window in batch.
    let json = env.ok(&[
        "query",
        "SELECT (SELECT sum(bids) FROM counts) AS stored, \
         (SELECT count(*) FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)) AS recomputed",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&json).expect("JSON output");
    assert_eq!(v["columns"], serde_json::json!(["stored", "recomputed"]));
    assert_eq!(v["rows"][0]["stored"], bids);
    assert_eq!(v["rows"][0]["recomputed"], bids);

    // A join of a view with a stream, as a table.
    let table = env.ok(&[
        "query",
        "SELECT a.category, sum(c.bids) AS bids FROM counts c JOIN auction a ON a.id = c.auction \
         GROUP BY a.category ORDER BY a.category LIMIT 3",
    ]);
    assert!(table.starts_with("category"), "{table}");
    assert!(table.trim_end().ends_with("(3 rows)"), "{table}");

    let refused = env.run(&["query", "DROP TABLE bid"]);
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains("cannot write"),
        "{}",
        refused.stderr
    );
    let unknown = env.run(&["query", "SELECT * FROM nope"]);
    assert_eq!(unknown.code, Some(1));
    assert!(unknown.stderr.contains("nope"), "{}", unknown.stderr);

    // A query's memory is bounded: a join whose hash table needs more than the limit fails
    // and says so, naming the operator.
    let join = "SELECT a.auction, count(*) AS n FROM bid a JOIN bid b ON a.auction = b.auction \
                GROUP BY a.auction ORDER BY n DESC LIMIT 1";
    assert!(env.ok(&["query", join]).contains("(1 rows)"));
    let limited = [("FRESHET_QUERY_MEMORY_MAX", "100000")];
    let refused = env.run_with_env(&["query", join], &limited);
    assert_eq!(refused.code, Some(1), "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("needs more memory than a query may use")
            && refused.stderr.contains("HashJoin"),
        "{}",
        refused.stderr
    );
    let bad = env.run_with_env(
        &["query", "SELECT 1"],
        &[("FRESHET_QUERY_MEMORY_MAX", "lots")],
    );
    assert_eq!(bad.code, Some(1));
    assert!(
        bad.stderr.contains("FRESHET_QUERY_MEMORY_MAX"),
        "{}",
        bad.stderr
    );
}

/// `query --format parquet|arrow --out`: files pyarrow and DuckDB read, with the rows and
/// types the JSON output shows; a failed query leaves no file.
#[test]
fn query_writes_parquet_and_arrow_files_that_pyarrow_and_duckdb_read() {
    let Some(python) = python_with_pyarrow() else {
        return;
    };
    let env = Env::new();
    counted(&env);
    let sql = "SELECT c.auction, c.window_start, c.bids, c.top, a.category \
               FROM counts c JOIN auction a ON a.id = c.auction ORDER BY c.auction, c.window_start";
    let parquet = env.path("counts.parquet");
    let arrow = env.path("counts.arrow");
    for (format, path) in [("parquet", &parquet), ("arrow", &arrow)] {
        let out = env.ok(&[
            "query",
            sql,
            "--format",
            format,
            "--out",
            &path.display().to_string(),
        ]);
        assert!(out.is_empty(), "nothing on stdout: {out}");
    }
    let expected: Value = serde_json::from_str(&env.ok(&[
        "query",
        "SELECT count(*) AS n, sum(c.bids) AS bids FROM counts c JOIN auction a ON a.id = c.auction",
        "--format",
        "json",
    ]))
    .expect("JSON");
    let script = r#"
import json, sys
import duckdb, pyarrow.ipc, pyarrow.parquet
table = pyarrow.parquet.read_table(sys.argv[1])
same = pyarrow.ipc.open_file(sys.argv[2]).read_all()
n, bids = duckdb.connect().execute(
    "SELECT count(*), sum(bids) FROM read_parquet(?)", [sys.argv[1]]).fetchone()
print(json.dumps({
    "rows": table.num_rows,
    "types": {f.name: str(f.type) for f in table.schema},
    "same": table.to_pylist() == same.to_pylist(),
    "duckdb": [n, int(bids)],
}))
"#;
    let run = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(&parquet)
        .arg(&arrow)
        .output()
        .expect("run python");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let read: Value = serde_json::from_slice(&run.stdout).expect("the script's JSON");
    let n = expected["rows"][0]["n"].as_u64().expect("n");
    assert!(n > 100, "{expected}");
    assert_eq!(read["rows"], n, "{read}");
    assert_eq!(
        read["same"], true,
        "Parquet and Arrow hold the same rows: {read}"
    );
    assert_eq!(
        read["duckdb"],
        serde_json::json!([n, expected["rows"][0]["bids"]]),
        "{read}"
    );
    assert_eq!(read["types"]["auction"], "int64", "{read}");
    assert_eq!(read["types"]["bids"], "int64", "{read}");
    assert!(
        read["types"]["window_start"]
            .as_str()
            .is_some_and(|t| t.starts_with("timestamp[ms")),
        "{read}"
    );

    // COPY writes a view (or a query) the same way, from `freshet sql` and over HTTP.
    let copied = env.path("copied.parquet");
    let said = env.ok(&["sql", &format!("COPY counts TO '{}'", copied.display())]);
    let stored: Value = serde_json::from_str(&env.ok(&[
        "query",
        "SELECT count(*) AS n FROM counts",
        "--format",
        "json",
    ]))
    .expect("JSON");
    let stored = stored["rows"][0]["n"].as_u64().expect("n");
    assert_eq!(
        said.trim(),
        format!("COPY {stored} to {}", copied.display())
    );
    let count = |path: &std::path::Path| -> u64 {
        let run = std::process::Command::new(&python)
            .args(["-c", "import sys, pyarrow.parquet; print(pyarrow.parquet.read_table(sys.argv[1]).num_rows)"])
            .arg(path)
            .output()
            .expect("run python");
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        String::from_utf8_lossy(&run.stdout)
            .trim()
            .parse()
            .expect("a count")
    };
    assert_eq!(count(&copied), stored);
    let server = Server::start(&env);
    let over_http = env.path("over_http.parquet");
    let (status, body) = server.post_json(
        "/v1/sql",
        &serde_json::json!({
            "sql": format!("COPY (SELECT * FROM counts WHERE bids > 1) TO '{}' (FORMAT parquet)", over_http.display())
        }),
    );
    assert_eq!(status, 200, "{body}");
    assert!(count(&over_http) < stored, "{body}");
    drop(server);

    // A query that fails leaves no file; --out with the table format, or Parquet without
    // --out, is refused.
    let missing = env.path("missing.parquet");
    let failed = env.run(&[
        "query",
        "SELECT * FROM nope",
        "--format",
        "parquet",
        "--out",
        &missing.display().to_string(),
    ]);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    let leftovers: Vec<_> = std::fs::read_dir(missing.parent().expect("a directory"))
        .expect("lists")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("missing"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let no_out = env.run(&["query", "SELECT 1", "--format", "parquet"]);
    assert_eq!(no_out.code, Some(1));
    assert!(no_out.stderr.contains("--out"), "{}", no_out.stderr);
    let table_out = env.run(&["query", "SELECT 1", "--out", &missing.display().to_string()]);
    assert_eq!(table_out.code, Some(1));
    assert!(
        table_out.stderr.contains("--format"),
        "{}",
        table_out.stderr
    );
}

/// A Python with pyarrow and DuckDB: `FRESHET_TEST_PYTHON` (set by `.ci/run` from
/// `scripts/install-python-test-deps.sh`), else `python3`. Without them the test says so
/// and skips, except under `FRESHET_CI`, where it fails.
fn python_with_pyarrow() -> Option<String> {
    let python = std::env::var("FRESHET_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import pyarrow, duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let why = format!(
        "{python} lacks pyarrow or duckdb: run scripts/install-python-test-deps.sh and set \
         FRESHET_TEST_PYTHON to the path it prints"
    );
    assert!(std::env::var_os("FRESHET_CI").is_none(), "{why}");
    eprintln!("SKIP: {why}");
    None
}

#[test]
fn reconcile_finds_each_kind_of_damage_and_repair_makes_it_clean() {
    let env = Env::new();
    counted(&env);
    let (healthy, code) = reconcile(&env, false);
    let [matched, mismatched, missing, extra] = counts(&healthy);
    assert_eq!(code, Some(0), "{healthy}");
    assert!(matched > 100, "{healthy}");
    assert_eq!([mismatched, missing, extra], [0, 0, 0], "{healthy}");
    assert_eq!(healthy["ratio"], 1.0);

    let db = rusqlite::Connection::open(env.data_dir().join("results.db")).expect("open");
    db.execute_batch(
        "UPDATE counts SET bids = bids + 1 WHERE rowid = (SELECT min(rowid) FROM counts); \
         DELETE FROM counts WHERE rowid = (SELECT max(rowid) FROM counts); \
         INSERT INTO counts VALUES (-1, '2015-07-15 00:00:00.000', '2015-07-15 00:00:10.000', \
           1, 1, 'final', '2026-01-01 00:00:00.000');",
    )
    .expect("damage the results");
    drop(db);
    let (damaged, code) = reconcile(&env, false);
    assert_eq!(code, Some(3), "differences exit 3: {damaged}");
    assert_eq!(counts(&damaged)[1..], [1, 1, 1], "{damaged}");
    let kinds: Vec<&str> = damaged["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| s["kind"].as_str().expect("a kind"))
        .collect();
    for kind in ["mismatched", "missing", "extra"] {
        assert!(kinds.contains(&kind), "a {kind} sample: {damaged}");
    }

    let (repaired, code) = reconcile(&env, true);
    assert_eq!(code, Some(0), "{repaired}");
    assert_eq!(repaired["repaired"], 3, "{repaired}");
    let (after, code) = reconcile(&env, false);
    assert_eq!(code, Some(0), "{after}");
    assert_eq!(counts(&after), [matched, 0, 0, 0], "{after}");
}

/// Every row of `counts` but `_updated_at`, in key order.
fn stored_counts(env: &Env) -> Vec<String> {
    let db = rusqlite::Connection::open(env.data_dir().join("results.db")).expect("open");
    let mut statement = db
        .prepare(
            "SELECT auction || '|' || window_start || '|' || bids || '|' || \"top\" || '|' || \
             _state FROM counts ORDER BY auction, window_start",
        )
        .expect("select");
    statement
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|r| r.expect("a row"))
        .collect()
}

#[test]
fn backfill_writes_the_batch_result_and_a_second_run_changes_nothing() {
    let env = Env::new();
    counted(&env);
    let reference = stored_counts(&env);
    let db = rusqlite::Connection::open(env.data_dir().join("results.db")).expect("open");
    let lost = db
        .execute("DELETE FROM counts WHERE auction % 7 = 0", [])
        .expect("lose some rows");
    assert!(lost > 0);
    drop(db);

    let mut args = vec!["backfill", "counts"];
    args.extend(RANGE);
    let first = env.ok_json(&args);
    assert_eq!(first["written"], lost as u64, "{first}");
    let after_first = stored_counts(&env);
    assert_eq!(after_first, reference, "backfill restores the batch result");

    let second = env.ok_json(&args);
    assert_eq!(second["written"], 0, "{second}");
    assert_eq!(second["deleted"], 0, "{second}");
    assert_eq!(
        stored_counts(&env),
        after_first,
        "a second backfill changes nothing"
    );
}

/// Issue 15: `backfill` and `reconcile --repair` wrote the result store beside a running
/// `serve`. They now take the data directory's writer lock as `run` and `serve` do, and
/// say who holds it; a reconciliation that only reads still runs beside the server.
#[test]
fn issue_15_backfill_and_repair_refuse_while_a_server_writes() {
    let env = Env::new();
    counted(&env);
    let server = Server::start(&env);
    let mut backfill = vec!["backfill", "counts"];
    backfill.extend(RANGE);
    let mut repair = vec!["reconcile", "counts"];
    repair.extend(RANGE);
    repair.push("--repair");
    for args in [&backfill, &repair] {
        let run = env.run(args);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("in use by another freshet process")
                && run.stderr.contains("pid ")
                && run.stderr.contains("serve"),
            "{args:?} says who holds the lock: {}",
            run.stderr
        );
    }
    let (report, code) = reconcile(&env, false);
    assert_eq!(code, Some(0), "{report}");
    drop(server);
    let (_, code) = reconcile(&env, true);
    assert_eq!(code, Some(0), "once the server has stopped, repair runs");
}

#[test]
fn explain_moves_from_streaming_to_micro_batch_to_batch_as_the_sla_relaxes() {
    let env = Env::new();
    env.ok(&["gen", "nexmark", "--events", "100000", "--to-streams"]);
    for (name, sla) in [("fast", "1s"), ("minutely", "1m"), ("daily", "1d")] {
        env.ok(&[
            "sql",
            &format!(
                "CREATE VIEW {name} WITH (freshness = '{sla}') AS SELECT auction, window_start, \
                 window_end, COUNT(*) AS bids FROM TUMBLE(bid, date_time, INTERVAL '1' SECOND) \
                 GROUP BY auction, window_start, window_end"
            ),
        ]);
    }
    let mut modes = Vec::new();
    for name in ["fast", "minutely", "daily"] {
        let e = env.ok_json(&["explain", name, "--rate", "1000", "--sample", "80000"]);
        let alternatives = e["alternatives"].as_array().expect("alternatives");
        assert_eq!(alternatives.len(), 3, "{e}");
        for a in alternatives {
            for field in [
                "freshness_p99_ms",
                "max_events_per_s",
                "cpu_seconds_per_million",
                "store_writes_per_million",
            ] {
                assert!(a[field].as_f64().is_some_and(|x| x > 0.0), "{field}: {e}");
            }
        }
        for field in ["risk", "mitigation", "condition"] {
            assert!(
                e[field].as_str().is_some_and(|s| !s.is_empty()),
                "{field}: {e}"
            );
        }
        assert!(
            e["batch_execution"]
                .as_str()
                .is_some_and(|s| s.starts_with("DataFusion batch runs")),
            "{e}"
        );
        assert!(
            e["costs"]["batch_bytes_per_event"]
                .as_f64()
                .is_some_and(|b| b > 0.0),
            "a batch run's memory is measured: {e}"
        );
        let batch = &alternatives[2];
        assert_eq!(batch["mode"], "batch", "{e}");
        assert!(batch["memory_bytes_peak"].as_u64() > Some(0), "{e}");
        // Windows close as the watermark passes them: the state holds what is open.
        assert_eq!(e["state"]["grows_with_input"], false, "{e}");
        assert!(e["state"]["budget_reached_in_s"].is_null(), "{e}");
        modes.push(e["mode"].as_str().expect("a mode").to_owned());
    }
    assert_eq!(modes, ["streaming", "micro_batch", "batch"]);

    // A join of streams' rows keeps both sides to the end: its state grows with the input,
    // and explain says when it reaches the view's cap at the input rate.
    env.ok(&[
        "sql",
        "CREATE VIEW bids_by_seller AS SELECT b.auction, b.price, a.seller FROM bid b \
         JOIN auction a ON b.auction = a.id",
    ]);
    let explain = [
        "explain",
        "bids_by_seller",
        "--rate",
        "1000",
        "--sample",
        "80000",
    ];
    let e = env.ok_json(&explain);
    let state = &e["state"];
    assert_eq!(state["grows_with_input"], true, "{e}");
    let growth = state["growth_bytes_per_million"].as_f64().expect("growth");
    assert!(growth > 0.0, "{e}");
    assert_eq!(
        state["budget_bytes"].as_u64(),
        Some(freshet_types::limits::VIEW_STATE_BYTES_DEFAULT),
        "{e}"
    );
    let reached = state["budget_reached_in_s"]
        .as_f64()
        .expect("a time to the cap");
    let left =
        state["budget_bytes"].as_f64().unwrap() - state["bytes_after_sample"].as_f64().unwrap();
    let expected = left / (growth / 1e6 * 1000.0);
    assert!(
        (reached - expected).abs() <= expected * 1e-6,
        "{reached} vs {expected}: {e}"
    );
    assert!(
        e["alternatives"][0]["state_growth_bytes_per_million"].as_f64() == Some(growth),
        "the streaming run's growth: {e}"
    );
    let text = env.ok(&explain);
    assert!(text.contains("state growth per M events"), "{text}");
    assert!(text.contains("reaches state_bytes_max"), "{text}");
    let text = env.ok(&["explain", "minutely", "--rate", "1000", "--sample", "80000"]);
    for part in [
        "requirement:",
        "decision: micro_batch",
        "risk:",
        "mitigation:",
        "would choose differently:",
        "batch mode runs as: DataFusion",
    ] {
        assert!(text.contains(part), "{part} in\n{text}");
    }
}

/// Final rows of `view`, one line each, in key order.
fn final_rows(env: &Env, view: &str) -> Vec<String> {
    let db = rusqlite::Connection::open(env.data_dir().join("results.db")).expect("open");
    let mut statement = db
        .prepare(&format!(
            "SELECT auction || '|' || window_start || '|' || bids || '|' || total \
             FROM {view} WHERE _state = 'final' ORDER BY auction, window_start"
        ))
        .expect("select");
    statement
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|r| r.expect("a row"))
        .collect()
}

#[test]
fn a_served_view_in_batch_mode_runs_as_datafusion_batch_runs_and_equals_streaming() {
    let env = Env::new();
    // 20 s of event time; the watermark (4 s behind) closes the first 16 one-second windows.
    env.ok(&["gen", "nexmark", "--events", "200000", "--to-streams"]);
    for (name, sla) in [("fast", "1s"), ("daily", "1d")] {
        env.ok(&[
            "sql",
            &format!(
                "CREATE VIEW {name} WITH (freshness = '{sla}') AS SELECT auction, window_start, \
                 window_end, COUNT(*) AS bids, SUM(price) AS total \
                 FROM TUMBLE(bid, date_time, INTERVAL '1' SECOND) \
                 GROUP BY auction, window_start, window_end"
            ),
        ]);
    }
    let bids = env.events("bid");
    let mut server = super::support::Server::start(&env);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (fast, daily) = loop {
        let (status, views) = server.get("/v1/views");
        assert_eq!(status, 200, "{views}");
        let find = |name: &str| {
            views["views"]
                .as_array()
                .and_then(|a| a.iter().find(|v| v["name"] == name).cloned())
                .unwrap_or_else(|| panic!("view {name} in {views}"))
        };
        let (fast, daily) = (find("fast"), find("daily"));
        if fast["stats"]["input_events"] == bids && daily["stats"]["batch_runs"].as_u64() >= Some(1)
        {
            break (fast, daily);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the views did not catch up: {views}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(daily["mode"], "batch", "{daily}");
    assert_eq!(daily["stats"]["input_events"], bids, "{daily}");
    assert_eq!(fast["mode"], "streaming", "{fast}");
    assert_eq!(fast["stats"]["batch_runs"], 0, "{fast}");
    let late = |v: &Value| {
        v["stats"]["late_dropped"].as_u64().unwrap_or(0)
            + v["stats"]["late_dead_lettered"].as_u64().unwrap_or(0)
    };
    assert_eq!(
        late(&fast),
        0,
        "the comparison below needs no late events: {fast}"
    );
    let metrics = server.get_text("/metrics");
    assert!(
        metrics.contains("freshet_view_batch_runs_total{view=\"daily\"}"),
        "{metrics}"
    );
    assert!(server.terminate().success());
    let streamed = final_rows(&env, "fast");
    assert!(streamed.len() > 100, "{}", streamed.len());
    assert_eq!(final_rows(&env, "daily"), streamed);
}

/// Event time of a generated bid line, in ms.
fn bid_time_ms(line: &str) -> i64 {
    let v: Value = serde_json::from_str(line).expect("generated bids are JSON");
    chrono::DateTime::parse_from_rfc3339(v["date_time"].as_str().expect("date_time"))
        .expect("RFC 3339")
        .timestamp_millis()
}

/// Bids as CSV with the stream's header, text quoted.
fn bids_csv(lines: &[&String]) -> String {
    let mut out = super::support::BID_COLUMNS.join(",") + "\n";
    for line in lines {
        let v: Value = serde_json::from_str(line).expect("JSON");
        let quoted = |c: &str| format!("\"{}\"", v[c].as_str().expect(c).replace('"', "\"\""));
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            v["auction"],
            v["bidder"],
            v["price"],
            quoted("channel"),
            quoted("url"),
            quoted("date_time"),
            quoted("extra")
        ));
    }
    out
}

/// Bids as one Parquet file with the stream's column types.
fn write_bids_parquet(path: &std::path::Path, lines: &[&String]) {
    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;
    let rows: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let int = |c: &str| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|v| v[c].as_i64().expect(c)),
        ))
    };
    let text = |c: &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|v| v[c].as_str().expect(c).to_string()),
        ))
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("auction", DataType::Int64, false),
        Field::new("bidder", DataType::Int64, false),
        Field::new("price", DataType::Int64, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("url", DataType::Utf8, false),
        Field::new(
            "date_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("extra", DataType::Utf8, false),
    ]));
    let times = lines.iter().map(|l| bid_time_ms(l));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            int("auction"),
            int("bidder"),
            int("price"),
            text("channel"),
            text("url"),
            Arc::new(TimestampMillisecondArray::from_iter_values(times)),
            text("extra"),
        ],
    )
    .expect("a valid batch");
    let file = std::fs::File::create(path).expect("create the Parquet file");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("a Parquet writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

const WINDOW_COUNTS: &str = "SELECT window_start, count(*) AS n, sum(price) AS total \
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) GROUP BY window_start ORDER BY window_start";

/// History files (NDJSON, CSV and Parquet in one directory) extend batch runs to before the
/// log: `query`, `backfill` and `reconcile` with them give what one log holding every event
/// gives; rows the log also holds are left to it; a bad history row stops the command.
#[test]
fn history_files_extend_batch_runs_to_before_the_log() {
    // The reference: every bid in the log.
    let whole = Env::new();
    let bids = whole.generate_bids(20_000);
    whole.create_bid_stream();
    let all = whole.write("all.ndjson", bids.join("\n") + "\n");
    whole.ok(&["ingest", "bid", all.to_str().expect("UTF-8")]);
    let expected = whole.ok(&["query", WINDOW_COUNTS, "--format", "csv"]);

    // The same bids, the older ones only in history files.
    let env = Env::new();
    env.create_bid_stream();
    let mut times: Vec<i64> = bids.iter().map(|l| bid_time_ms(l)).collect();
    times.sort_unstable();
    let cut = times[times.len() / 2];
    let (old, new): (Vec<&String>, Vec<&String>) = bids.iter().partition(|l| bid_time_ms(l) < cut);
    let logged = env.write(
        "new.ndjson",
        new.iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
    );
    env.ok(&["ingest", "bid", logged.to_str().expect("UTF-8")]);
    let dir = env.path("history");
    std::fs::create_dir(&dir).expect("mkdir");
    let third = old.len() / 3;
    // The NDJSON file also holds 50 events the log holds: those are the log's.
    let mut ndjson: Vec<&str> = old[..third].iter().map(|l| l.as_str()).collect();
    ndjson.extend(new[..50].iter().map(|l| l.as_str()));
    std::fs::write(dir.join("a.ndjson"), ndjson.join("\n") + "\n").expect("write");
    std::fs::write(dir.join("b.csv"), bids_csv(&old[third..2 * third])).expect("write");
    write_bids_parquet(&dir.join("c.parquet"), &old[2 * third..]);
    std::fs::write(dir.join("README.txt"), "not read: no known extension").expect("write");
    let history = format!("bid={}", dir.display());

    let run = env.run(&[
        "query",
        WINDOW_COUNTS,
        "--format",
        "csv",
        "--history",
        &history,
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, expected, "history + log = the whole log");
    assert!(
        run.stderr.contains(&format!(
            "{} rows read, 50 at or after the log's first event left to the log",
            old.len()
        )),
        "{}",
        run.stderr
    );
    let without = env.ok(&["query", "SELECT count(*) AS n FROM bid", "--format", "csv"]);
    assert_eq!(
        without,
        format!("n\n{}\n", new.len()),
        "without --history: the log only"
    );

    // A view run over the log, then backfilled from the history: every window as if the
    // log had held everything; reconciling with the history is then clean, and a second
    // backfill changes nothing.
    env.ok(&["sql", COUNTS]);
    env.ok(&["run", "--drain", "--end-of-stream"]);
    let mut backfill = vec!["backfill", "counts", "--history", &history];
    backfill.extend(RANGE);
    let first = env.ok_json(&backfill);
    assert!(first["written"].as_u64().expect("written") > 0, "{first}");
    assert_eq!(first["history_rows"], old.len() as u64, "{first}");
    let stored = env.ok(&[
        "query",
        "SELECT sum(bids) AS n FROM counts",
        "--format",
        "csv",
    ]);
    assert_eq!(stored, format!("n\n{}\n", bids.len()));
    let mut args = vec!["reconcile", "counts", "--json", "--history", &history];
    args.extend(RANGE);
    let run = env.run(&args);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let again = env.ok_json(&backfill);
    assert_eq!(again["written"], 0, "{again}");
    assert_eq!(again["deleted"], 0, "{again}");

    // A row the stream's schema refuses stops the command, naming the file and line.
    let bad_dir = env.path("bad-history");
    std::fs::create_dir(&bad_dir).expect("mkdir");
    let bad = format!("{}\n{{\"auction\": 1, \"price\": 2}}\n", old[0]);
    std::fs::write(bad_dir.join("bad.ndjson"), bad).expect("write");
    let bad_history = format!("bid={}", bad_dir.display());
    let run = env.run(&[
        "query",
        "SELECT count(*) FROM bid",
        "--history",
        &bad_history,
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stderr.contains("bad.ndjson") && run.stderr.contains("line 2"),
        "{}",
        run.stderr
    );
    for (spec, says) in [
        (format!("nobid={}", dir.display()), "does not exist"),
        ("bid".to_string(), "STREAM=PATH"),
        (
            format!("bid={}", env.path("missing").display()),
            "history path",
        ),
    ] {
        let run = env.run(&["query", "SELECT 1", "--history", &spec]);
        assert_eq!(run.code, Some(1), "{spec}");
        assert!(run.stderr.contains(says), "{spec}: {}", run.stderr);
    }
}
