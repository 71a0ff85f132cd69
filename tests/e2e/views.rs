//! Views through the real binary: `freshet sql` creates a view over a stream that already
//! holds data, `freshet run --drain --end-of-stream` computes it, `freshet results` and the
//! plain SQLite file show the same rows, which equal a count computed here from the input;
//! `freshet serve` runs views over events ingested by HTTP; `freshet run` stops cleanly on
//! SIGTERM; bad SQL is refused.

use super::support::{Env, STOP_DEADLINE, Server, wait_bounded};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A 10-second tumbling count and max price per auction.
const HOT_AUCTIONS: &str = "CREATE VIEW hot_auctions WITH (freshness = '100ms', \
    allowed_lateness = '10s', late_data = 'dead_letter') AS \
    SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS top \
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) \
    GROUP BY auction, window_start, window_end";

/// (auction, window start as stored) -> (bids, top), computed from NDJSON bid lines.
type Expected = BTreeMap<(i64, String), (i64, i64)>;

/// The view's result computed directly from the input lines.
fn expected(lines: &[String]) -> Expected {
    let mut out = Expected::new();
    for line in lines {
        let bid: Value = serde_json::from_str(line).expect("generated bids are JSON");
        let at =
            chrono::DateTime::parse_from_rfc3339(bid["date_time"].as_str().expect("date_time"))
                .expect("RFC 3339 date_time")
                .timestamp_millis();
        let start = at.div_euclid(10_000) * 10_000;
        let key = (
            bid["auction"].as_i64().expect("auction"),
            sqlite_time(start),
        );
        let price = bid["price"].as_i64().expect("price");
        let entry = out.entry(key).or_insert((0, i64::MIN));
        entry.0 += 1;
        entry.1 = entry.1.max(price);
    }
    out
}

/// A time as the result store writes it (docs/store-schema.md).
fn sqlite_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a representable time")
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string()
}

/// Every row of `hot_auctions` read straight from `results.db`, read-only, as any SQLite
/// user would; also checks each row is final and its window is 10 s long.
fn stored(env: &Env) -> Expected {
    let db = rusqlite::Connection::open_with_flags(
        env.data_dir().join("results.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open results.db read-only");
    let mut stmt = db
        .prepare(
            "SELECT auction, window_start, window_end, bids, top, _state, \
             unixepoch(window_end, 'subsec') - unixepoch(window_start, 'subsec') \
             FROM hot_auctions",
        )
        .expect("the results table has the documented columns");
    let mut out = Expected::new();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, f64>(6)?,
            ))
        })
        .expect("query results");
    for row in rows {
        let (auction, start, bids, top, state, width) = row.expect("a row");
        assert_eq!(state, "final", "after --end-of-stream every row is final");
        assert_eq!(width, 10.0, "window {start} is 10 s long");
        assert!(
            out.insert((auction, start), (bids, top)).is_none(),
            "one row per key"
        );
    }
    out
}

/// Create the bid stream, ingest `n` bids, and return the lines.
fn ingested_bids(env: &Env, n: u64) -> Vec<String> {
    env.create_bid_stream();
    let lines = env.generate_bids(n);
    let file = env.write("bids.ndjson", lines.join("\n"));
    env.ok(&["ingest", "bid", file.to_str().expect("UTF-8 path")]);
    lines
}

#[test]
fn a_view_over_history_drains_into_a_plain_sqlite_table() {
    let env = Env::new();
    let lines = ingested_bids(&env, 20_000);
    assert_eq!(
        env.ok(&["sql", HOT_AUCTIONS]).trim(),
        "created view hot_auctions"
    );

    let shown = env.ok_json(&["sql", "SHOW VIEWS"]);
    assert_eq!(shown["results"][0], "hot_auctions", "{shown}");
    let described = env.ok(&["sql", "DESCRIBE VIEW hot_auctions"]);
    for needle in [
        "key: auction, window_start, window_end",
        "late_data=dead_letter",
        "allowed_lateness=10s",
        "plan:",
        "Aggregate #1 per window",
        "Source bid TUMBLE(10s)",
        "parallelism: by partition, 4 tasks: aggregate #1 groups by auction",
    ] {
        assert!(described.contains(needle), "{needle} in:\n{described}");
    }

    let summary = env.ok_json(&["run", "--drain", "--end-of-stream"]);
    let view = &summary["views"][0];
    assert_eq!(view["view"], "hot_auctions", "{summary}");
    assert_eq!(view["events"], 20_000, "{summary}");
    assert_eq!(
        view["late_dead_lettered"], 0,
        "the generator is in order: {summary}"
    );
    let want = expected(&lines);
    assert_eq!(
        stored(&env),
        want,
        "results.db equals the count over the input"
    );
    assert_eq!(view["rows_written"], want.len() as u64, "{summary}");

    // `freshet results` filters by key and window range and agrees with the file.
    let (&(auction, ref start), &(bids, top)) = want.iter().nth(want.len() / 2).expect("rows");
    let start_ms = chrono::NaiveDateTime::parse_from_str(start, "%Y-%m-%d %H:%M:%S%.3f")
        .expect("stored times parse")
        .and_utc()
        .timestamp_millis();
    let from = format!("{}Z", start.replace(' ', "T"));
    let to = (start_ms + 1).to_string();
    let key = format!("auction={auction}");
    let page = env.ok_json(&[
        "results",
        "hot_auctions",
        "--key",
        &key,
        "--from",
        &from,
        "--to",
        &to,
    ]);
    let rows = page["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "exactly the one window: {page}");
    assert_eq!(rows[0]["auction"], auction, "{page}");
    assert_eq!(rows[0]["_state"], "final", "{page}");
    assert_eq!(rows[0]["bids"], bids, "{page}");
    assert_eq!(rows[0]["top"], top, "{page}");
    assert_eq!(
        rows[0]["window_start"], from,
        "times are RFC 3339 in UTC: {page}"
    );
    let table = env.ok(&["results", "hot_auctions", "--limit", "3"]);
    assert!(table.starts_with("auction"), "{table}");
    assert!(table.contains("(more rows: use --offset 3)"), "{table}");

    // Running again finds nothing new and changes nothing.
    let again = env.ok_json(&["run", "--drain", "--end-of-stream"]);
    assert_eq!(again["views"][0]["events"], 0, "{again}");
    assert_eq!(stored(&env), want);
}

#[test]
fn views_follow_events_ingested_over_http_and_stop_cleanly() {
    let env = Env::new();
    let first = ingested_bids(&env, 5_000);
    env.ok(&["sql", HOT_AUCTIONS]);
    // `serve` runs every view while it ingests.
    let mut server = Server::start(&env);
    let more = env.generate_bids(8_000)[5_000..].to_vec();
    let (status, reply) = server.post_events("bid", more.join("\n").as_bytes(), &[]);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["accepted"], 3_000, "{reply}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let progress = committed_offsets(&env);
        if progress == 8_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the running view committed {progress} of 8000 events within 30 s:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = server.terminate();
    assert!(status.success(), "{status:?}\n{}", server.log_text());

    // What the live view committed plus the end of the stream equals the batch count.
    env.ok(&["run", "--drain", "--end-of-stream"]);
    let all: Vec<String> = first.into_iter().chain(more).collect();
    assert_eq!(stored(&env), expected(&all));
}

#[test]
fn run_stops_cleanly_on_sigterm() {
    let env = Env::new();
    ingested_bids(&env, 2_000);
    env.ok(&["sql", HOT_AUCTIONS]);
    let mut run = env
        .command(&["run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start freshet run");
    let deadline = Instant::now() + Duration::from_secs(30);
    while committed_offsets(&env) < 2_000 {
        assert!(
            Instant::now() < deadline,
            "no commit of all 2000 events within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = wait_bounded(&mut run, STOP_DEADLINE).expect("run exits after SIGTERM");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut run.stdout.take().expect("piped"), &mut out)
        .expect("read stdout");
    assert!(exit.success(), "{exit:?}\n{out}");
    assert!(out.contains("running 1 view(s): hot_auctions"), "{out}");
    assert!(out.contains("stopped; all views committed"), "{out}");
}

/// Sum of the view's committed next offsets over all partitions, from `freshet_progress`.
fn committed_offsets(env: &Env) -> i64 {
    let Ok(db) = rusqlite::Connection::open_with_flags(
        env.data_dir().join("results.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return 0;
    };
    db.query_row(
        "SELECT coalesce(sum(next_offset), 0) FROM freshet_progress WHERE view = 'hot_auctions'",
        [],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

#[test]
fn bad_view_sql_is_refused_with_the_problem_named() {
    let env = Env::new();
    env.create_bid_stream();
    for (sql, needle) in [
        ("CREATE VIEW v AS SELECT nope FROM bid", "nope"),
        (
            "CREATE VIEW v AS SELECT auction, COUNT(*) AS n \
             FROM TUMBLE(bid, price, INTERVAL '1' SECOND) GROUP BY auction",
            "event-time",
        ),
        (
            "CREATE VIEW v AS SELECT auction, approx_distinct(price) AS m FROM bid GROUP BY \
             auction",
            "approx_distinct",
        ),
        (
            "CREATE VIEW v WITH (late_data = 'sometimes') AS SELECT auction FROM bid",
            "late_data",
        ),
        ("DROP VIEW v", "v"),
    ] {
        let run = env.run(&["sql", sql]);
        assert_eq!(run.code, Some(1), "{sql}\n{}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(needle), "{sql}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    let run = env.run(&["run", "--drain"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("no views to run"), "{}", run.stderr);
}
