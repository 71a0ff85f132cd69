//! `freshet sql`: DDL errors name the problem and change nothing; scripts with several
//! statements; DROP STREAM; the catalog persists between invocations.

use super::support::{Env, bid_ddl};

/// Run `sql`, which must fail with exit code 1 and a stderr containing every `needle`; the
/// catalog must be left unchanged.
fn assert_refused(env: &Env, sql: &str, needles: &[&str]) {
    let before = env.stream_names();
    let run = env.run(&["sql", sql]);
    assert_eq!(
        run.code,
        Some(1),
        "{sql}\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr for {sql:?} should mention {needle:?}:\n{}",
            run.stderr
        );
    }
    assert_eq!(
        env.stream_names(),
        before,
        "a failed statement changes nothing"
    );
}

#[test]
fn bad_ddl_is_refused_with_the_problem_named() {
    let env = Env::new();
    assert_refused(
        &env,
        "CREATE STREAM s (ts TIMESTAMP, v FOOBAR, WATERMARK FOR ts AS ts)",
        &["unknown type `FOOBAR` for column `v`", "line 1"],
    );
    assert_refused(
        &env,
        "CREATE STREAM s (v BIGINT)",
        &["no event-time column"],
    );
    assert_refused(
        &env,
        "CREATE STREAM s (v BIGINT, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)",
        &["event-time column `ts` is not a column of stream `s`"],
    );
    assert_refused(
        &env,
        "CREATE STREAM s (v BIGINT, WATERMARK FOR v AS v)",
        &["must be a TIMESTAMP"],
    );
    assert_refused(
        &env,
        "CREATE STREAM s (ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (partition_key = 'nope')",
        &["partition_key `nope` is not a column of stream `s`"],
    );
    assert_refused(
        &env,
        "CREATE STREAM s (ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (colour = 'red')",
        &["unknown stream option `colour`"],
    );
    assert_refused(
        &env,
        "CREATE STREAM s (ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (partitions = 0)",
        &["partitions", "1 to 1024"],
    );
    assert_refused(
        &env,
        "CREATE STREAM s (ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (fsync = 'sometimes')",
        &["fsync", "'always', 'interval' or 'never'"],
    );
    assert_refused(
        &env,
        "CREATE STREAM s (ts TIMESTAMP,, WATERMARK FOR ts AS ts)",
        &["cannot parse CREATE STREAM"],
    );
    assert_refused(&env, "SELECT 1", &["unsupported statement"]);
    assert_refused(&env, "DROP STREAM nosuch", &["unknown stream `nosuch`"]);
    assert_eq!(env.stream_names(), Vec::<String>::new());
}

#[test]
fn a_script_file_runs_every_statement() {
    let env = Env::new();
    let script = format!(
        "-- the Nexmark bid stream and a small one\n{BID_DDL};\n\
         CREATE STREAM clicks (\n  user_id BIGINT NOT NULL,\n  url TEXT,\n  at TIMESTAMP NOT NULL,\n  \
         WATERMARK FOR at AS at - INTERVAL '2' SECOND\n) WITH (partitions = 2, fsync = 'interval');\n\
         CREATE STREAM IF NOT EXISTS bid (x BIGINT, t TIMESTAMP, WATERMARK FOR t AS t);\n\
         SHOW STREAMS;\n",
        BID_DDL = bid_ddl()
    );
    let file = env.write("schema.sql", script);
    let out = env.ok_json(&["sql", "-f", file.to_str().expect("UTF-8 path")]);
    assert_eq!(
        out["results"],
        serde_json::json!([
            "CREATE STREAM bid",
            "CREATE STREAM clicks",
            "stream bid already exists, skipped",
            "bid\nclicks",
        ]),
        "{out}"
    );
    assert_eq!(env.stream_names(), vec!["bid", "clicks"]);
    let clicks = env.stream_info("clicks");
    assert_eq!(clicks["partitions"], 2);
    assert_eq!(clicks["watermark_delay_ms"], 2000);
    assert_eq!(clicks["partition_key"], serde_json::Value::Null);
    assert_eq!(
        clicks["columns"],
        serde_json::json!([
            "user_id BIGINT NOT NULL",
            "url TEXT",
            "at TIMESTAMP NOT NULL"
        ])
    );
    // IF NOT EXISTS kept the original definition.
    assert_eq!(env.stream_info("bid")["partitions"], 4);

    // A failing statement in a script is named by its position.
    let bad = env.write(
        "bad.sql",
        "CREATE STREAM IF NOT EXISTS clicks (at TIMESTAMP, WATERMARK FOR at AS at);\n\
         CREATE STREAM broken (v FOOBAR, at TIMESTAMP, WATERMARK FOR at AS at);",
    );
    let run = env.run(&["sql", "-f", bad.to_str().expect("UTF-8 path")]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("statement 2 of 2 failed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("unknown type `FOOBAR`"),
        "{}",
        run.stderr
    );
    assert_eq!(env.stream_names(), vec!["bid", "clicks"]);

    let missing = env.path("missing.sql");
    let run = env.run(&["sql", "-f", missing.to_str().expect("UTF-8 path")]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("cannot read SQL file"),
        "{}",
        run.stderr
    );
}

#[test]
fn drop_stream_removes_it_and_its_data() {
    let env = Env::new();
    env.create_bid_stream();
    let file = env.write("bids.ndjson", env.generate_bids(50).join("\n"));
    env.ok(&["ingest", "bid", file.to_str().expect("UTF-8 path")]);
    assert_eq!(env.events("bid"), 50);
    let stream_dir = env.data_dir().join("streams").join("bid");
    assert!(stream_dir.exists());

    assert_eq!(
        env.ok(&["sql", "DROP STREAM bid"]).trim(),
        "DROP STREAM bid"
    );
    assert_eq!(env.stream_names(), Vec::<String>::new());
    assert!(!stream_dir.exists(), "its data is deleted");
    let run = env.run(&["ingest", "bid", file.to_str().expect("UTF-8 path")]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("unknown stream `bid`"),
        "{}",
        run.stderr
    );
    assert_eq!(
        env.ok(&["sql", "DROP STREAM IF EXISTS bid"]).trim(),
        "stream bid does not exist, skipped"
    );

    // Created again, it starts empty.
    env.create_bid_stream();
    assert_eq!(env.events("bid"), 0);
    assert_eq!(env.dead_letter_count("bid"), 0);
}

#[test]
fn the_catalog_survives_between_invocations() {
    let env = Env::new();
    env.create_bid_stream();
    // Every command below is a new process reading the catalog from disk.
    assert_eq!(env.stream_names(), vec!["bid"]);
    assert_eq!(env.ok(&["sql", "SHOW STREAMS"]).trim(), "bid");
    let run = env.run(&["sql", &bid_ddl()]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("stream `bid` already exists"),
        "{}",
        run.stderr
    );
    let info = env.stream_info("bid");
    assert_eq!(info["partitions"], 4);
    assert_eq!(info["partition_key"], "auction");
    assert_eq!(info["watermark_delay_ms"], 4000);
    let streams = env.ok(&["streams"]);
    assert!(
        streams.starts_with("STREAM"),
        "a table with a header: {streams}"
    );
    assert!(streams.contains("bid"), "{streams}");
}
