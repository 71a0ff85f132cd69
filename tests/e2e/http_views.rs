//! Views over HTTP through the real binary: `POST /v1/sql` creates a view while `serve`
//! runs, events ingested over HTTP reach it, and `GET /v1/views/{name}/results` answers the
//! right rows with freshness metadata that is right: lag and staleness reach 0 once the view
//! has caught up, and final rows never change afterwards.

use crate::e2e::support::{Env, Server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// One partition, so that the watermark is that of every event in order.
pub const STREAM: &str = "CREATE STREAM bid (auction BIGINT NOT NULL, bidder BIGINT NOT NULL, \
    price BIGINT NOT NULL, date_time TIMESTAMP NOT NULL, \
    WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND) WITH (partitions = 1)";

pub const VIEW: &str = "CREATE VIEW counts WITH (freshness = '200ms') AS \
    SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS top \
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) \
    GROUP BY auction, window_start, window_end";

/// One bid as NDJSON at `second` seconds after 2015-07-15T00:00:00Z.
pub fn bid(auction: i64, price: i64, second: u32) -> String {
    json!({
        "auction": auction, "bidder": 1, "price": price, "channel": "web", "url": "u",
        "date_time": format!("2015-07-15T00:{:02}:{:02}Z", second / 60, second % 60),
        "extra": ""
    })
    .to_string()
}

/// Poll the results until `done` holds for the answer, or fail after 30 s.
pub fn results_until(server: &Server, query: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, page) = server.get(&format!("/v1/views/counts/results{query}"));
        assert_eq!(status, 200, "{page}");
        if done(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "results never reached the expected state: {page}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn views_are_created_queried_and_described_over_http() {
    let env = Env::new();
    let server = Server::start(&env);

    let sql = format!("{STREAM}; {VIEW}");
    let (status, created) = server.post_json("/v1/sql", &json!({ "sql": sql }));
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["results"][1], "created view counts", "{created}");

    // Before any event: no rows, and no freshness claim.
    let (status, empty) = server.get("/v1/views/counts/results");
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["rows"], json!([]), "{empty}");
    assert_eq!(empty["freshness"]["sla_ms"], 200, "{empty}");

    // Windows [0,10) and [10,20) for auctions 1 and 2; an event at 40 s moves the watermark
    // (40 s - 4 s delay) past both.
    let mut lines = vec![bid(1, 5, 1), bid(1, 9, 3), bid(2, 4, 8), bid(1, 2, 12)];
    lines.push(bid(3, 1, 40));
    let (status, reply) = server.post_events("bid", lines.join("\n").as_bytes(), &[]);
    assert_eq!(status, 200, "{reply}");
    let page = results_until(&server, "", |p| {
        p["freshness"]["lag_events"] == 0 && p["rows"].as_array().is_some_and(|r| r.len() == 3)
    });
    let f = &page["freshness"];
    assert_eq!(f["staleness_ms"], 0, "caught up: {page}");
    assert_eq!(f["sla_met"], true, "{page}");
    assert_eq!(f["watermark"], "2015-07-15T00:00:36.000Z", "{page}");
    let offsets: u64 = f["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| o["next_offset"].as_u64().expect("next_offset"))
        .sum();
    assert_eq!(offsets, 5, "the answer reflects all five events: {page}");
    let rows = page["rows"].as_array().expect("rows");
    assert_eq!(
        rows[0],
        json!({
            "auction": 1, "window_start": "2015-07-15T00:00:00.000Z",
            "window_end": "2015-07-15T00:00:10.000Z", "bids": 2, "top": 9, "_state": "final",
            "_updated_at": rows[0]["_updated_at"]
        }),
        "{page}"
    );
    assert_eq!(rows[1]["auction"], 1, "{page}");
    assert_eq!(
        rows[1]["window_start"], "2015-07-15T00:00:10.000Z",
        "{page}"
    );
    assert_eq!(rows[2]["auction"], 2, "{page}");
    assert!(rows.iter().all(|r| r["_state"] == "final"), "{page}");

    // Filters by key and window range, and pages.
    let (_, one) = server.get("/v1/views/counts/results?auction=1&from=2015-07-15T00:00:10Z");
    assert_eq!(one["rows"].as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one["rows"][0]["bids"], 1, "{one}");
    let (_, first) = server.get("/v1/views/counts/results?limit=2");
    assert_eq!(first["has_more"], true, "{first}");
    assert_eq!(first["next_offset"], 2, "{first}");
    let (_, rest) = server.get("/v1/views/counts/results?limit=2&offset=2");
    assert_eq!(rest["rows"][0], rows[2], "{rest}");
    assert_eq!(rest["has_more"], false, "{rest}");

    // More events: later windows appear, and final rows never change.
    let more = [bid(4, 7, 45), bid(4, 8, 61)];
    let (status, _) = server.post_events("bid", more.join("\n").as_bytes(), &[]);
    assert_eq!(status, 200);
    let later = results_until(&server, "", |p| {
        p["freshness"]["lag_events"] == 0
            && p["rows"]
                .as_array()
                .is_some_and(|r| r.iter().any(|row| row["auction"] == 3))
    });
    for row in rows {
        assert!(
            later["rows"].as_array().expect("rows").contains(row),
            "final row {row} changed: {later}"
        );
    }

    // Describe, list, status, readiness.
    let (status, described) = server.get("/v1/views/counts");
    assert_eq!(status, 200, "{described}");
    assert_eq!(described["name"], "counts");
    assert_eq!(described["mode"], "streaming");
    assert!(
        described["description"]
            .as_str()
            .is_some_and(|d| d.contains("TUMBLE(10s)")),
        "{described}"
    );
    let (_, listed) = server.get("/v1/views");
    assert_eq!(listed["views"][0]["name"], "counts", "{listed}");
    let (_, status_page) = server.get("/v1/status");
    assert_eq!(status_page["streams"][0]["events"], 7, "{status_page}");
    assert_eq!(
        status_page["views"][0]["stats"]["input_events"], 7,
        "{status_page}"
    );
    assert_eq!(status_page["views_error"], Value::Null, "{status_page}");
    assert_eq!(server.get("/readyz").0, 200);
    let page = server.get_text("/");
    assert!(
        page.contains("/v1/status") && page.contains("<table id=\"views\""),
        "{page}"
    );
    let shown = env.ok(&["status", "--url", &server.url("")]);
    for needle in ["stream", "bid", "counts", "streaming", "ms met"] {
        assert!(shown.contains(needle), "{needle} in:\n{shown}");
    }
}

#[test]
fn bad_requests_get_json_errors_with_stable_codes() {
    let env = Env::new();
    let server = Server::start(&env);
    let sql = format!("{STREAM}; {VIEW}");
    let (status, _) = server.post_json("/v1/sql", &json!({ "sql": sql }));
    assert_eq!(status, 200);

    let cases: [(&str, u16, &str); 11] = [
        ("/v1/views/nope/results", 404, "unknown_view"),
        ("/v1/views/nope", 404, "unknown_view"),
        ("/v1/views/counts/results?limit=0", 400, "bad_request"),
        (
            "/v1/views/counts/results?from=yesterday",
            400,
            "bad_request",
        ),
        ("/v1/views/counts/results?bids=3", 400, "bad_request"),
        // Issue 19: the edges of what docs/openapi.yaml allows, as schemathesis tries them.
        ("/v1/views/counts/results?from=", 400, "bad_request"),
        ("/v1/views/counts/results?to=1e5", 400, "bad_request"),
        ("/v1/views/counts/results?limit=10001", 400, "bad_request"),
        (
            "/v1/views/counts/results?offset=18446744073709551616",
            400,
            "bad_request",
        ),
        ("/v1/views/%FF/results", 400, "bad_request"),
        ("/v1/views/counts/results?auction=", 400, "bad_request"),
    ];
    for (path, want_status, code) in cases {
        let (status, body) = server.get(path);
        assert_eq!(status, want_status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
    // Issue 19: schemathesis found the spec's offset (an int64) stricter than the server,
    // which takes any u64 and answers an empty page past the end.
    let (status, page) = server.get("/v1/views/counts/results?offset=18446744073709551615");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["rows"], json!([]), "{page}");
    assert_eq!(page["has_more"], false, "{page}");
    let (status, body) = server.post_json("/v1/sql", &json!({ "sql": "" }));
    assert_eq!((status, &body["error"]["code"]), (400, &json!("sql_error")));

    let (status, body) = server.post_json(
        "/v1/sql",
        &json!({ "sql": "CREATE VIEW v AS SELECT nope FROM bid" }),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "sql_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nope")),
        "{body}"
    );
    for writes in [
        "INSERT INTO bid VALUES (1, 1, 1, TIMESTAMP '2015-07-15 00:00:00')",
        "DELETE FROM bid",
        "UPDATE counts SET bids = 0",
    ] {
        let (status, body) = server.post_json("/v1/sql", &json!({ "sql": writes }));
        assert_eq!(status, 400, "{writes}: {body}");
        assert_eq!(body["error"]["code"], "sql_error", "{writes}: {body}");
    }
    let (status, body) = server.post_json("/v1/sql", &json!({ "query": "x" }));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_body", "{body}");

    // Dropping the view over HTTP stops it and removes its results.
    let (status, body) = server.post_json("/v1/sql", &json!({ "sql": "DROP VIEW counts" }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.get("/v1/views/counts/results").0, 404);
    assert_eq!(
        server.get("/readyz").0,
        200,
        "the views thread survived: {}",
        server.log_text()
    );
}

#[test]
fn metrics_parse_and_count_what_happened() {
    let env = Env::new();
    let server = Server::start(&env);
    let sql = format!("{STREAM}; {VIEW}");
    assert_eq!(server.post_json("/v1/sql", &json!({ "sql": sql })).0, 200);

    // Three good rows and two bad ones; then, once [0,10) is final, one late row.
    let body = [
        bid(1, 5, 1),
        "{not json".into(),
        bid(2, 4, 3),
        r#"{"auction":"x"}"#.into(),
        bid(3, 1, 40),
    ];
    let (status, reply) = server.post_events("bid", body.join("\n").as_bytes(), &[]);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["rejected"], 2, "{reply}");
    results_until(&server, "", |p| {
        p["freshness"]["lag_events"] == 0 && p["rows"].as_array().is_some_and(|r| r.len() == 2)
    });
    let (status, _) = server.post_events("bid", bid(1, 7, 2).as_bytes(), &[]);
    assert_eq!(status, 200);
    results_until(&server, "", |p| p["freshness"]["lag_events"] == 0);

    let text = server.get_text("/metrics");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the exposition parses");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"));
        match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name} is not a number: {other:?}"),
        }
    };
    let bid_stream = [("stream", "bid")];
    let view = [("view", "counts")];
    assert_eq!(value("freshet_ingest_events_total", &bid_stream), 4.0);
    assert_eq!(
        value("freshet_ingest_rejected_events_total", &bid_stream),
        2.0
    );
    assert_eq!(value("freshet_log_dead_letters_events", &bid_stream), 2.0);
    assert_eq!(
        value(
            "freshet_log_end_offset_events",
            &[("stream", "bid"), ("partition", "0")]
        ),
        4.0
    );
    assert_eq!(value("freshet_view_input_events_total", &view), 4.0);
    assert_eq!(value("freshet_view_lag_events", &view), 0.0);
    assert_eq!(value("freshet_view_staleness_seconds", &view), 0.0);
    assert_eq!(value("freshet_view_sla_met_ratio", &view), 1.0);
    assert_eq!(value("freshet_view_freshness_sla_seconds", &view), 0.2);
    assert_eq!(
        value(
            "freshet_view_late_events_total",
            &[("view", "counts"), ("policy", "dead_letter")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "freshet_view_late_events_total",
            &[("view", "counts"), ("policy", "drop")]
        ),
        0.0
    );
    assert_eq!(
        value("freshet_view_watermark_seconds", &view),
        1_436_918_436.0
    );
    assert_eq!(value("freshet_views_up_ratio", &[]), 1.0);
    for s in &scrape.samples {
        assert!(
            s.metric.starts_with("freshet_") || s.metric.starts_with("process_"),
            "{} is not named freshet_* or process_*",
            s.metric
        );
    }
    assert_eq!(value("freshet_build_info", &[]), 1.0);
    assert!(value("process_resident_memory_bytes", &[]) > 1e6);
    assert!(value("process_open_fds", &[]) >= 3.0);
    // Every metric the Grafana dashboard charts is one the server exports.
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana/freshet.json"),
    )
    .expect("the dashboard file");
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let charted = dashboard_metrics(&dashboard);
    assert!(charted.len() >= 10, "{charted:?}");
    for name in &charted {
        assert!(
            scrape.samples.iter().any(|s| &s.metric == name),
            "the dashboard charts {name}, which /metrics does not export:\n{text}"
        );
    }
    // Every event read has one ingest-to-commit latency; every bucket bound is in seconds.
    let latency = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "freshet_view_ingest_to_commit_seconds"
                && s.labels.get("view") == Some("counts")
        })
        .unwrap_or_else(|| panic!("no latency histogram in:\n{text}"));
    match &latency.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let last = buckets.last().expect("buckets");
            assert!(last.less_than.is_infinite(), "{buckets:?}");
            assert_eq!(last.count, 4.0, "one observation per event: {buckets:?}");
            assert!(
                buckets.windows(2).all(|w| w[0].count <= w[1].count),
                "cumulative: {buckets:?}"
            );
        }
        other => panic!("the latency is not a histogram: {other:?}"),
    }
}

/// `bid`s for seconds `range`, auction `s % 3`, price `s`.
fn bids_for(range: std::ops::Range<u32>) -> Vec<String> {
    range
        .map(|s| bid(i64::from(s % 3), i64::from(s), s))
        .collect()
}

/// The rows `counts` must hold for bids of seconds 0..60 once the watermark passed 60 s:
/// (auction, window start) -> (bids, top).
fn expected_counts() -> std::collections::BTreeMap<(i64, String), (i64, i64)> {
    let mut want = std::collections::BTreeMap::new();
    for s in 0..60i64 {
        let start = format!(
            "2015-07-15T00:{:02}:{:02}.000Z",
            (s / 10 * 10) / 60,
            (s / 10 * 10) % 60
        );
        let e = want.entry((s % 3, start)).or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.max(s);
    }
    want
}

/// A server whose view committed 30 bids, then a store outage (another connection holds
/// SQLite's write lock, returned) during which 31 more bids are ingested.
fn outage_after_30_bids(env: &Env) -> (Server, rusqlite::Connection) {
    let server = Server::start(env);
    let sql = format!("{STREAM}; {VIEW}");
    assert_eq!(server.post_json("/v1/sql", &json!({ "sql": sql })).0, 200);
    let (status, _) = server.post_events("bid", bids_for(0..30).join("\n").as_bytes(), &[]);
    assert_eq!(status, 200);
    results_until(&server, "", |p| {
        p["freshness"]["lag_events"] == 0 && p["freshness"]["staleness_ms"] == 0
    });

    let blocker =
        rusqlite::Connection::open(env.data_dir().join("results.db")).expect("open results.db");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let mut more = bids_for(30..60);
    more.push(bid(9, 1, 200));
    let (status, reply) = server.post_events("bid", more.join("\n").as_bytes(), &[]);
    assert_eq!(status, 200, "ingest goes on during a store outage: {reply}");
    (server, blocker)
}

/// The rows of a results page by (auction, window start): (bids, top); every row final.
fn final_counts(page: &Value) -> std::collections::BTreeMap<(i64, String), (i64, i64)> {
    page["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            assert_eq!(r["_state"], "final", "{r}");
            (
                (
                    r["auction"].as_i64().expect("auction"),
                    r["window_start"].as_str().expect("start").to_string(),
                ),
                (
                    r["bids"].as_i64().expect("bids"),
                    r["top"].as_i64().expect("top"),
                ),
            )
        })
        .collect()
}

#[test]
fn sigterm_during_a_store_outage_exits_0_and_a_restart_catches_up() {
    let env = Env::new();
    let (mut server, blocker) = outage_after_30_bids(&env);
    std::thread::sleep(Duration::from_millis(300));
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    assert!(
        server
            .log_text()
            .contains("skipped: the result store is unavailable"),
        "{}",
        server.log_text()
    );
    blocker
        .execute_batch("ROLLBACK")
        .expect("release the write lock");
    drop(blocker);

    let server = Server::start(&env);
    let page = results_until(&server, "?limit=1000", |p| {
        p["freshness"]["lag_events"] == 0 && p["freshness"]["staleness_ms"] == 0
    });
    assert_eq!(final_counts(&page), expected_counts());
}

#[test]
fn a_store_outage_pauses_the_views_and_they_catch_up_after() {
    let env = Env::new();
    let (server, blocker) = outage_after_30_bids(&env);

    // Queries keep answering from what is stored, with the staleness rising.
    let (_, first) = server.get("/v1/views/counts/results?limit=1");
    std::thread::sleep(Duration::from_millis(1_500));
    let (status, second) = server.get("/v1/views/counts/results?limit=1");
    assert_eq!(status, 200, "{second}");
    let f1 = &first["freshness"];
    let f2 = &second["freshness"];
    assert_eq!(f2["lag_events"], 31, "{second}");
    assert!(
        f2["staleness_ms"].as_i64() > f1["staleness_ms"].as_i64()
            && f2["staleness_ms"].as_i64() > Some(1_000),
        "staleness rises while the store is down: {f1} then {f2}"
    );
    assert_eq!(f2["sla_met"], false, "{second}");
    // Long enough for at least one commit attempt to time out (SQLite waits 5 s when busy).
    std::thread::sleep(Duration::from_millis(5_000));
    assert_eq!(
        server.get("/readyz").0,
        200,
        "the views wait, they do not stop"
    );
    blocker
        .execute_batch("ROLLBACK")
        .expect("release the write lock");
    drop(blocker);

    // The view catches up; the results equal an undisturbed run's.
    let page = results_until(&server, "?limit=1000", |p| {
        p["freshness"]["lag_events"] == 0 && p["freshness"]["staleness_ms"] == 0
    });
    assert_eq!(final_counts(&page), expected_counts());
    // Retries are counted with the commit after the one that was retried.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = server.get_text("/metrics");
        let retries = metrics
            .lines()
            .find(|l| l.starts_with("freshet_store_commit_retries_total{view=\"counts\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no retries metric in:\n{metrics}"));
        if retries >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outage was not counted as retries:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn many_concurrent_clients_get_no_errors() {
    let env = Env::new();
    let server = Server::start(&env);
    let sql = format!("{STREAM}; {VIEW}");
    assert_eq!(server.post_json("/v1/sql", &json!({ "sql": sql })).0, 200);
    const WRITERS: u32 = 6;
    const READERS: u32 = 6;
    const REQUESTS: u32 = 30;
    const EVENTS: u32 = 20;
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let server = &server;
            scope.spawn(move || {
                for r in 0..REQUESTS {
                    let body: Vec<String> = (0..EVENTS)
                        .map(|e| bid(i64::from(w), i64::from(e), (r * EVENTS + e) % 600))
                        .collect();
                    let (status, reply) =
                        server.post_events("bid", body.join("\n").as_bytes(), &[]);
                    assert_eq!(status, 200, "{reply}");
                    assert_eq!(reply["accepted"], EVENTS, "{reply}");
                }
            });
        }
        for r in 0..READERS {
            let server = &server;
            scope.spawn(move || {
                for i in 0..REQUESTS {
                    let path = match i % 3 {
                        0 => format!("/v1/views/counts/results?auction={r}"),
                        1 => "/v1/views".to_string(),
                        _ => "/v1/status".to_string(),
                    };
                    let (status, body) = server.get(&path);
                    assert_eq!(status, 200, "{path}: {body}");
                    assert!(!server.get_text("/metrics").is_empty());
                }
            });
        }
    });
    let total = u64::from(WRITERS * REQUESTS * EVENTS);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, status) = server.get("/v1/status");
        if status["views"][0]["stats"]["input_events"] == total {
            assert_eq!(status["streams"][0]["events"], total, "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the view did not read all {total} events: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.get("/readyz").0, 200, "{}", server.log_text());
}

#[test]
fn scheduled_reconciliation_reports_and_exports_its_figures() {
    let env = Env::new();
    let server = Server::start(&env);
    let view = VIEW.replace(
        "WITH (freshness = '200ms')",
        "WITH (freshness = '200ms', reconcile_every = '1s')",
    );
    let (status, created) =
        server.post_json("/v1/sql", &json!({ "sql": format!("{STREAM}; {view}") }));
    assert_eq!(status, 200, "{created}");
    let body = [bid(1, 10, 1), bid(1, 30, 2), bid(2, 5, 3), bid(1, 7, 25)].join("\n");
    assert_eq!(server.post_events("bid", body.as_bytes(), &[]).0, 200);

    // The two final rows (window [0 s, 10 s)) are compared and match.
    let deadline = Instant::now() + Duration::from_secs(30);
    let figures = loop {
        let (_, v) = server.get("/v1/views/counts");
        let r = &v["reconciliation"];
        if r["matched"] == 2 {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "no reconciliation: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(figures["mismatched"], 0, "{figures}");
    assert_eq!(figures["ratio"], 1.0, "{figures}");

    // Later runs compare the windows finalised since: a row the store holds for a window
    // that is about to close, and that the events do not produce, is found as extra (and
    // not repaired).
    let db = rusqlite::Connection::open(env.data_dir().join("results.db")).expect("open");
    db.execute(
        "INSERT INTO counts VALUES (99, '2015-07-15 00:00:30.000', '2015-07-15 00:00:40.000', \
         1, 1, 'final', '2026-01-01 00:00:00.000')",
        [],
    )
    .expect("plant a row");
    assert_eq!(
        server.post_events("bid", bid(1, 5, 50).as_bytes(), &[]).0,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = server.get("/v1/views/counts");
        if v["reconciliation"]["extra"] == 1 {
            assert_eq!(
                v["reconciliation"]["matched"], 1,
                "window [20 s, 30 s): {v}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the planted row was not found: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = server.get_text("/metrics");
    let parsed = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses");
    let sample = |name: &str, result: Option<&str>| {
        parsed
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && s.labels.get("view") == Some("counts")
                    && result.is_none_or(|r| s.labels.get("result") == Some(r))
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                _ => f64::NAN,
            })
    };
    assert!(sample("freshet_reconcile_runs_total", None).is_some_and(|v| v >= 2.0));
    assert!(sample("freshet_reconcile_rows_total", Some("extra")).is_some_and(|v| v >= 1.0));
    assert!(sample("freshet_reconcile_correctness_ratio", None).is_some_and(|v| v < 1.0));

    // The figures are kept: a query-only server beside the writer shows them, and so does
    // the writer after a restart, before it runs again; the totals go on from there.
    let (_, before) = server.get("/v1/views/counts");
    let reader = Server::start_command(
        &env,
        &["serve", "--listen", "127.0.0.1:0", "--role", "query"],
        Duration::from_secs(30),
    );
    let (_, seen) = reader.get("/v1/views/counts");
    assert!(
        seen["reconciliation"]["runs"].as_u64() >= before["reconciliation"]["runs"].as_u64()
            && seen["reconciliation"]["total_extra"].as_u64() >= Some(1),
        "{seen}"
    );
    drop(reader);
    let mut server = server;
    assert_eq!(server.terminate().code(), Some(0));
    let kept = before["reconciliation"].clone();
    let server = Server::start(&env);
    let (_, after) = server.get("/v1/views/counts");
    let r = &after["reconciliation"];
    assert!(r["runs"].as_u64() >= kept["runs"].as_u64(), "{after}");
    assert!(r["total_extra"].as_u64() >= Some(1), "{after}");
    assert!(
        r["total_matched"].as_u64() >= kept["total_matched"].as_u64(),
        "{after}"
    );
}

/// The metric families a Grafana dashboard's queries name (a histogram's `_bucket`, `_sum`
/// and `_count` series count as the histogram).
fn dashboard_metrics(dashboard: &serde_json::Value) -> std::collections::BTreeSet<String> {
    let mut exprs = Vec::new();
    let mut stack = vec![dashboard];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(expr)) = map.get("expr") {
                    exprs.push(expr.clone());
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for expr in exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("freshet_") || word.starts_with("process_") {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| word.strip_suffix(suffix))
                    .unwrap_or(word);
                names.insert(family.to_string());
            }
        }
    }
    names
}
