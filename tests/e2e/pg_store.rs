//! The PostgreSQL result store through the real binary (`FRESHET_STORE`), against the
//! local server of `FRESHET_TEST_POSTGRES_URL`, each test in a schema of its own:
//!
//! - views write plain typed tables that `psql` reads, with the same rows as SQLite;
//! - a second writer of a view is refused while the first lives, and takes over after it
//!   is killed;
//! - SIGKILL at random moments, and connections terminated by the server mid-run, lose and
//!   double nothing;
//! - a query-only server (`serve --role query`) answers the writer's results with the same
//!   freshness metadata, and refuses ingest and SQL;
//! - reconciliation finds damage done to the PostgreSQL tables and repairs it.

use super::batch::{counted, reconcile};
use super::crash::{Rng, drain_reference, views};
use super::http_views::{STREAM, VIEW, bid, results_until};
use super::support::{Env, Server, wait_bounded};
use crate::pg::PgSchema;
use serde_json::json;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Nexmark events for the outage test: enough for many commits, small enough for CI.
const EVENTS: u64 = 600_000;

/// Nexmark events for the SIGKILL test: enough that most of 20 kills land mid-run.
const CRASH_EVENTS: u64 = 2_000_000;

/// Every row of `view` in `schema`, all columns but `_updated_at`, as text, sorted.
fn table(schema: &PgSchema, view: &str) -> Vec<String> {
    let mut client = schema.client();
    let columns: Vec<String> = client
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 AND column_name <> '_updated_at' \
             ORDER BY ordinal_position",
            &[&schema.name.as_str(), &view],
        )
        .expect("list the columns")
        .into_iter()
        .map(|r| format!("coalesce(\"{}\"::text, 'NULL')", r.get::<_, String>(0)))
        .collect();
    assert!(!columns.is_empty(), "{view} has a results table");
    let mut rows: Vec<String> = client
        .query(
            &format!(
                "SELECT concat_ws('|', {}) FROM {}",
                columns.join(", "),
                schema.table(view)
            ),
            &[],
        )
        .expect("read the results table")
        .into_iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    rows.sort();
    rows
}

/// Committed input events of views whose names start with `prefix` (sum of next offsets).
fn progress(schema: &PgSchema, prefix: &str) -> i64 {
    let Ok(mut client) = postgres::Client::connect(&schema.url, postgres::NoTls) else {
        return 0;
    };
    client
        .query_one(
            &format!(
                "SELECT coalesce(sum(next_offset), 0)::bigint FROM {} WHERE starts_with(view, $1)",
                schema.table("freshet_progress")
            ),
            &[&prefix],
        )
        .map(|r| r.get(0))
        .unwrap_or(0)
}

fn assert_same_tables(schema: &PgSchema, a: &str, b: &str) {
    let left = table(schema, a);
    let right = table(schema, b);
    assert!(!right.is_empty(), "{b} has rows");
    assert_eq!(left.len(), right.len(), "row counts of {a} and {b}");
    for (i, (l, r)) in left.iter().zip(&right).enumerate() {
        assert_eq!(l, r, "row {i} of {a} differs from {b}");
    }
}

fn setup(env: &Env, events: u64) {
    env.ok(&[
        "gen",
        "nexmark",
        "--events",
        &events.to_string(),
        "--to-streams",
    ]);
    env.ok(&["sql", &views("ref")]);
    env.ok(&["sql", &views("crash")]);
}

const CRASH_VIEWS: [&str; 2] = ["crash_counts", "crash_sessions"];

fn run_args(drain: bool) -> Vec<&'static str> {
    let mut args = vec!["run"];
    if drain {
        args.extend(["--drain", "--end-of-stream"]);
    }
    args.extend(CRASH_VIEWS.iter().flat_map(|v| ["--view", *v]));
    args
}

#[test]
fn results_are_typed_tables_with_the_rows_sqlite_has() {
    let Some(schema) = PgSchema::new("e2e_types") else {
        return;
    };
    let env = Env::with_store(schema.store_url());
    setup(&env, 50_000);
    drain_reference(&env);
    let mut client = schema.client();
    let types: Vec<(String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'ref_counts' ORDER BY ordinal_position",
            &[&schema.name],
        )
        .expect("list the columns")
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let types: Vec<(&str, &str)> = types
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("auction", "bigint"),
            ("window_start", "timestamp without time zone"),
            ("window_end", "timestamp without time zone"),
            ("bids", "bigint"),
            ("top", "bigint"),
            ("_state", "text"),
            ("_updated_at", "timestamp with time zone"),
        ],
        "the results table's columns"
    );
    let finals: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {} WHERE _state = 'final'",
                schema.table("ref_counts")
            ),
            &[],
        )
        .expect("count final rows")
        .get(0);
    assert!(finals > 0, "rows are final after the end of the streams");

    // The same views drained into the data directory's SQLite file give the same rows,
    // through the same command.
    let sqlite = Env::new();
    setup(&sqlite, 50_000);
    drain_reference(&sqlite);
    for view in ["ref_counts", "ref_sessions"] {
        let strip = |mut v: serde_json::Value| {
            for row in v["rows"].as_array_mut().expect("rows") {
                row.as_object_mut().expect("a row").remove("_updated_at");
            }
            v["rows"].clone()
        };
        let args = ["results", view, "--limit", "100000"];
        let from_pg = strip(env.ok_json(&args));
        let from_sqlite = strip(sqlite.ok_json(&args));
        assert!(from_pg.as_array().is_some_and(|rows| !rows.is_empty()));
        assert_eq!(from_pg, from_sqlite, "{view}: PostgreSQL and SQLite rows");
    }
}

#[test]
fn a_second_writer_is_refused_until_the_first_is_gone() {
    let Some(schema) = PgSchema::new("e2e_writers") else {
        return;
    };
    let first = Env::with_store(schema.store_url());
    let second = Env::with_store(schema.store_url());
    setup(&first, 20_000);
    setup(&second, 20_000);
    let mut running = first
        .command(&run_args(false))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the first writer");
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress(&schema, "crash_") == 0 {
        assert!(
            Instant::now() < deadline,
            "the first writer never committed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = second.run(&run_args(true));
    assert_ne!(refused.code, Some(0), "the second writer must not run");
    assert!(
        refused
            .stderr
            .contains("is being written by another Freshet process"),
        "the refusal says why: {}",
        refused.stderr
    );
    running.kill().expect("SIGKILL the first writer");
    running.wait().expect("reap the first writer");
    // The server notices the closed connection and lets the lock go.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = second.run(&run_args(true));
        if run.code == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second writer could not take over: {}",
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sigkill_at_random_moments_with_postgres_results_loses_and_doubles_nothing() {
    let Some(schema) = PgSchema::new("e2e_crash") else {
        return;
    };
    let env = Env::with_store(schema.store_url());
    setup(&env, CRASH_EVENTS);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
        | 1;
    eprintln!("kill delays seeded with {seed}");
    let mut rng = Rng(seed);
    let total = 2 * env.events("bid") as i64;
    let mut last = 0;
    let mut mid_run = 0;
    for kill in 0..20 {
        let mut child = env
            .command(&run_args(false))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start freshet run");
        std::thread::sleep(Duration::from_millis(100 + rng.below(600)));
        child.kill().expect("SIGKILL freshet run");
        child.wait().expect("reap freshet run");
        let now = progress(&schema, "crash_");
        assert!(
            now >= last,
            "kill {kill}: progress went back from {last} to {now}"
        );
        if now < total {
            mid_run += 1;
        }
        last = now;
    }
    assert!(mid_run >= 10, "only {mid_run} of 20 kills landed mid-run");
    env.ok(&run_args(true));
    drain_reference(&env);
    for shape in ["counts", "sessions"] {
        assert_same_tables(&schema, &format!("crash_{shape}"), &format!("ref_{shape}"));
    }
}

#[test]
fn connections_terminated_by_the_server_are_retried_without_loss() {
    let Some(schema) = PgSchema::new("e2e_terminate") else {
        return;
    };
    let env = Env::with_store(schema.store_url());
    setup(&env, EVENTS);
    let total = 2 * env.events("bid") as i64;
    let log = env.path("run.log");
    let mut child = env
        .command(&run_args(false))
        .env("FRESHET_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create the run log"))
        .spawn()
        .expect("start freshet run");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let application = format!("freshet[{}]", child.id());
    let mut admin = schema.client();
    let deadline = Instant::now() + Duration::from_secs(120);
    while progress(&schema, "crash_") == 0 {
        assert!(
            Instant::now() < deadline,
            "the views never committed:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Five outages, each once the view has committed since the last: like a server
    // restarted a few times during the run.
    let mut terminated = 0;
    let mut seen = progress(&schema, "crash_");
    for _ in 0..5 {
        while progress(&schema, "crash_") == seen {
            assert!(
                Instant::now() < deadline,
                "the views stopped committing:\n{}",
                log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let n: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&application],
            )
            .expect("terminate the writer's connections")
            .get(0);
        terminated += n;
        seen = progress(&schema, "crash_");
    }
    while progress(&schema, "crash_") < total {
        assert!(
            Instant::now() < deadline,
            "the views never caught up:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        terminated >= 3,
        "only {terminated} connections were terminated"
    );
    // SIGTERM: commit and exit 0.
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    let status = wait_bounded(&mut child, Duration::from_secs(60)).expect("run exits on SIGTERM");
    assert!(status.success(), "run exits 0 after SIGTERM: {status:?}");
    let retries: i64 = admin
        .query_one(
            &format!(
                "SELECT coalesce(sum((stats->>'commit_retries')::bigint), 0)::bigint FROM {} \
                 WHERE starts_with(view, 'crash_')",
                schema.table("freshet_view_status")
            ),
            &[],
        )
        .expect("read the views' stats")
        .get(0);
    eprintln!("{terminated} connections terminated; {retries} commits retried");
    assert!(retries >= 1, "the outages were seen and retried");
    env.ok(&run_args(true));
    drain_reference(&env);
    for shape in ["counts", "sessions"] {
        assert_same_tables(&schema, &format!("crash_{shape}"), &format!("ref_{shape}"));
    }
}

#[test]
fn a_query_only_server_answers_the_writers_results() {
    let Some(schema) = PgSchema::new("e2e_query_role") else {
        return;
    };
    let env = Env::with_store(schema.store_url());
    let writer = Server::start(&env);
    let (status, created) =
        writer.post_json("/v1/sql", &json!({ "sql": format!("{STREAM}; {VIEW}") }));
    assert_eq!(status, 200, "{created}");
    let query = Server::start_command(
        &env,
        &["serve", "--listen", "127.0.0.1:0", "--role", "query"],
        Duration::from_secs(30),
    );
    let body = [bid(1, 10, 1), bid(1, 30, 2), bid(2, 5, 3), bid(1, 7, 25)].join("\n");
    let (status, ack) = writer.post_events("bid", body.as_bytes(), &[]);
    assert_eq!(status, 200, "{ack}");

    // The query server sees what the writer committed, with the same freshness figures.
    let caught_up = |p: &serde_json::Value| {
        // The window of the last bid is still open: two final rows.
        p["freshness"]["lag_events"] == 0 && p["rows"].as_array().is_some_and(|r| r.len() == 2)
    };
    let from_query = results_until(&query, "", caught_up);
    let from_writer = results_until(&writer, "", caught_up);
    assert_eq!(from_query["rows"], from_writer["rows"]);
    for field in ["watermark", "sla_ms", "lag_events", "offsets"] {
        assert_eq!(
            from_query["freshness"][field], from_writer["freshness"][field],
            "freshness field {field}"
        );
    }
    let (status, status_page) = query.get("/v1/status");
    assert_eq!(status, 200, "{status_page}");
    assert_eq!(status_page["streams"][0]["events"], 4, "{status_page}");

    // It writes nothing.
    let (status, refused) = query.post_events("bid", bid(3, 1, 4).as_bytes(), &[]);
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("query_only")),
        "{refused}"
    );
    let (status, refused) = query.post_json("/v1/sql", &json!({ "sql": "DROP VIEW counts" }));
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("query_only")),
        "{refused}"
    );
}

#[test]
fn reconcile_repairs_damage_to_postgres_results() {
    let Some(schema) = PgSchema::new("e2e_reconcile") else {
        return;
    };
    let env = Env::with_store(schema.store_url());
    counted(&env);
    let (healthy, code) = reconcile(&env, false);
    assert_eq!(code, Some(0), "{healthy}");
    let matched = healthy["matched"].as_u64().expect("matched");
    let table = schema.table("counts");
    schema
        .client()
        .batch_execute(&format!(
            "UPDATE {table} SET bids = bids + 1 WHERE (auction, window_start) = \
               (SELECT auction, window_start FROM {table} ORDER BY 1, 2 LIMIT 1); \
             DELETE FROM {table} WHERE (auction, window_start) = \
               (SELECT auction, window_start FROM {table} ORDER BY 1 DESC, 2 DESC LIMIT 1); \
             INSERT INTO {table} VALUES (-1, '2015-07-15 00:00:00', '2015-07-15 00:00:10', 1, 1, \
               'final', now());"
        ))
        .expect("damage the results");
    let (damaged, code) = reconcile(&env, false);
    assert_eq!(code, Some(3), "{damaged}");
    for kind in ["mismatched", "missing", "extra"] {
        assert_eq!(damaged[kind], 1, "{kind}: {damaged}");
    }
    let (_, code) = reconcile(&env, true);
    assert_eq!(code, Some(0));
    let (after, code) = reconcile(&env, false);
    assert_eq!(code, Some(0), "{after}");
    assert_eq!(after["matched"].as_u64(), Some(matched), "{after}");
}

#[test]
fn a_column_type_changed_by_hand_stops_the_view_and_keeps_what_was_committed() {
    let Some(schema) = PgSchema::new("e2e_permanent") else {
        return;
    };
    let env = Env::with_store(schema.store_url());
    env.ok(&["gen", "nexmark", "--events", "50000", "--to-streams"]);
    env.ok(&["sql", super::batch::COUNTS]);
    env.ok(&["run", "--drain"]);
    let committed = progress(&schema, "counts");
    assert!(committed > 0);
    let rows = table(&schema, "counts").len();
    schema
        .client()
        .batch_execute(&format!(
            "ALTER TABLE {} ALTER COLUMN bids TYPE boolean USING bids > 0",
            schema.table("counts")
        ))
        .expect("change a column by hand");
    env.ok(&["gen", "nexmark", "--events", "50000", "--to-streams"]);
    let failed = env.run(&["run", "--drain", "--end-of-stream"]);
    assert_eq!(failed.code, Some(1), "a permanent error stops the view");
    assert!(
        failed.stderr.contains("boolean") && failed.stderr.contains("bids"),
        "the message names the problem: {}",
        failed.stderr
    );
    assert_eq!(
        progress(&schema, "counts"),
        committed,
        "progress stays where it was"
    );
    assert_eq!(
        table(&schema, "counts").len(),
        rows,
        "committed rows are kept"
    );
}
