//! The dashboard in a real browser: headless Chromium loads `/`, runs its script, renders
//! the streams and views tables and the charts without console errors, the charts holding
//! the server's history from the first render, and re-renders with new figures as events
//! arrive; a view named in the address shows its mode and why, operators and results; a
//! screenshot shows the page. When the server requires API tokens, the page asks for one
//! instead, and renders with one. Chromium comes from
//! `scripts/install-test-deps.sh` (run by `.ci/run`); without it the tests say so loudly
//! and skip, except in CI (`FRESHET_CI` set), where they fail.

use crate::e2e::support::{Env, Server};
use serde_json::{Value, json};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|name| {
        Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Chromium, or `None` after saying the test skips (outside CI).
fn browser_or_skip() -> Option<&'static str> {
    let browser = chromium();
    if browser.is_none() {
        assert!(
            std::env::var_os("FRESHET_CI").is_none(),
            "Chromium is missing in CI: scripts/install-test-deps.sh should have installed it"
        );
        eprintln!("SKIPPED: no chromium on PATH; run scripts/install-test-deps.sh");
    }
    browser
}

/// Load `url` in headless Chromium, let its script run for 8 s of virtual time, and
/// return what it did (the DOM on stdout, the console on stderr).
fn load(browser: &str, url: &str) -> Output {
    run_chromium(browser, &["--dump-dom", url])
}

/// Headless Chromium with `args` after the common ones, 8 s of virtual time for the page's
/// script; it must succeed within a minute.
fn run_chromium(browser: &str, args: &[&str]) -> Output {
    let started = Instant::now();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=8000",
        ])
        .args(args)
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {out:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    out
}

/// No console line of Chromium's log reports an error.
fn assert_no_console_errors(out: &Output) {
    let log = String::from_utf8_lossy(&out.stderr);
    for line in log.lines().filter(|l| l.contains("CONSOLE")) {
        assert!(
            !line.contains("Uncaught") && !line.to_lowercase().contains("error"),
            "console error: {line}\n{log}"
        );
    }
}

/// How many times the page rendered fresh figures.
fn renders(dom: &str) -> Option<u32> {
    attribute(dom, "<body", "data-updates")
}

/// The number in attribute `name` of the first element whose text starts with `at`.
fn attribute(dom: &str, at: &str, name: &str) -> Option<u32> {
    let element = dom.split(at).nth(1)?.split('>').next()?;
    element
        .split(&format!("{name}=\""))
        .nth(1)?
        .split('"')
        .next()?
        .parse()
        .ok()
}

/// The points of the history's series `metric` of `name`, waiting up to 30 s until it
/// holds at least `n`.
fn history_points(server: &Server, kind: &str, name: &str, metric: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, history) = server.get("/v1/history");
        assert_eq!(status, 200, "{history}");
        let points = history["series"]
            .as_array()
            .expect("series")
            .iter()
            .find(|s| s["kind"] == kind && s["name"] == name && s["metric"] == metric)
            .map(|s| s["points"].as_array().expect("points").clone())
            .unwrap_or_default();
        if points.len() >= n {
            return points;
        }
        assert!(
            Instant::now() < deadline,
            "{kind} {name} {metric}: {} points, not {n}: {history}",
            points.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The dashboard with history: the server samples its figures from the start, so the
/// page's charts hold points at its first render; it shows the streams and views, a
/// stream's latest dead letters, and for the view in the address its mode and why, its
/// operators, its charts and its first results; and a screenshot shows it all.
#[test]
fn the_dashboard_renders_live_figures_in_headless_chromium() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let env = Env::new();
    let server = Server::start(&env);
    let sql = "CREATE STREAM bid (auction BIGINT NOT NULL, price BIGINT NOT NULL, \
        date_time TIMESTAMP NOT NULL, WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND) \
        WITH (partitions = 1); \
        CREATE VIEW counts AS SELECT auction, window_start, window_end, COUNT(*) AS n \
        FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) GROUP BY auction, window_start, window_end";
    assert_eq!(server.post_json("/v1/sql", &json!({ "sql": sql })).0, 200);
    let event = |i: u32| {
        json!({"auction": i % 3, "price": i, "date_time": format!("2015-07-15T00:{:02}:{:02}Z", i / 60 % 60, i % 60)})
            .to_string()
    };
    let (status, _) = server.post_events("bid", event(0).as_bytes(), &[]);
    assert_eq!(status, 200);
    // One row the stream rejects, for the dead letters.
    let bad = r#"{"auction": "one", "price": 1, "date_time": "2015-07-15T00:00:00Z"}"#;
    let (status, outcome) = server.post_events("bid", bad.as_bytes(), &[]);
    assert_eq!(
        (status, &outcome["rejected"]),
        (200, &json!(1)),
        "{outcome}"
    );

    // The dead letters over HTTP: the latest, with their reasons.
    let (status, letters) = server.get("/v1/streams/bid/dead-letters?limit=5");
    assert_eq!(status, 200, "{letters}");
    assert_eq!(letters["total"], 1, "{letters}");
    let code = letters["dead_letters"][0]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("a reason code: {letters}"))
        .to_string();
    assert_eq!(server.get("/v1/streams/nope/dead-letters").0, 404);
    assert_eq!(server.get("/v1/streams/bid/dead-letters?limit=0").0, 400);

    // Events keep arriving while the history fills and the page runs.
    let url = server.url("/#view=counts");
    let fed = AtomicBool::new(false);
    let (dom, screenshot) = std::thread::scope(|scope| {
        let feeding = scope.spawn(|| {
            for i in 1..=2_000 {
                if fed.load(Ordering::SeqCst) {
                    break;
                }
                let (status, _) = server.post_events("bid", event(i).as_bytes(), &[]);
                assert_eq!(status, 200);
                std::thread::sleep(Duration::from_millis(25));
            }
        });
        // Before the page loads, the history holds rates and gauges of more than one
        // sample; `since` answers only later points.
        let rates = history_points(&server, "view", "counts", "input", 2);
        history_points(&server, "view", "counts", "lag", 2);
        let ingest = history_points(&server, "stream", "bid", "events", 2);
        history_points(&server, "stream", "bid", "bytes", 2);
        assert!(
            ingest
                .iter()
                .any(|p| p[1].as_f64().is_some_and(|r| r > 0.0)),
            "events/s measured: {ingest:?}"
        );
        let last = rates.last().expect("a point")[0].as_f64().expect("a time") as i64;
        let (_, later) = server.get(&format!("/v1/history?since={last}"));
        for s in later["series"].as_array().expect("series") {
            for p in s["points"].as_array().expect("points") {
                assert!(p[0].as_f64().expect("a time") as i64 > last, "{later}");
            }
        }
        assert_eq!(server.get("/v1/history?since=yesterday").0, 400);
        // The planner looks at a running view every 10 s: then the view's description
        // says how it weighed the modes.
        let deadline = Instant::now() + Duration::from_secs(30);
        let planner = loop {
            let (status, view) = server.get("/v1/views/counts");
            assert_eq!(status, 200, "{view}");
            if !view["planner"].is_null() {
                break view["planner"].clone();
            }
            assert!(Instant::now() < deadline, "no planner figures: {view}");
            std::thread::sleep(Duration::from_millis(250));
        };
        assert_eq!(planner["mode"], "streaming", "{planner}");
        assert_eq!(planner["alternatives"].as_array().map(Vec::len), Some(3));

        let out = load(browser, &url);
        assert_no_console_errors(&out);
        let screenshot = env.path("dashboard.png");
        let shot = run_chromium(
            browser,
            &[
                &format!("--screenshot={}", screenshot.display()),
                "--window-size=1400,3200",
                "--hide-scrollbars",
                &url,
            ],
        );
        assert_no_console_errors(&shot);
        fed.store(true, Ordering::SeqCst);
        feeding.join().expect("the feeder");
        (
            String::from_utf8(out.stdout).expect("UTF-8 DOM"),
            screenshot,
        )
    });
    assert!(dom.contains("<td>bid</td>"), "the streams table: {dom}");
    assert!(
        dom.contains("<td><a href=\"#view=counts\">counts</a></td>"),
        "the views table: {dom}"
    );
    assert!(dom.contains("<td>streaming</td>"), "{dom}");
    assert!(
        dom.contains("<span id=\"error\"></span>"),
        "no fetch error shown: {dom}"
    );
    let updates = renders(&dom).unwrap_or_else(|| panic!("no data-updates on <body>: {dom}"));
    assert!(
        updates >= 2,
        "the page re-rendered on its own: {updates} renders"
    );
    // The events column of the bid row shows more than the one event there was before.
    let row = dom
        .split("<tr><td>bid</td>")
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .expect("the bid row");
    let events: u64 = row
        .split("<td>")
        .nth(2)
        .and_then(|c| c.split("</td>").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no events cell in {row}"));
    assert!(events > 1, "new events reached the page: {row}");

    // The charts held the server's history at the page's first render.
    for chart in [
        "view/counts/input",
        "view/counts/lag",
        "view/counts/state",
        "stream/bid/events",
    ] {
        let at = format!("data-chart=\"{chart}\"");
        let first = attribute(&dom, &at, "data-first-points")
            .unwrap_or_else(|| panic!("no chart {chart}: {dom}"));
        assert!(first > 1, "{chart} had {first} points at first: {dom}");
        assert!(dom.contains(&format!("{at} data-points=")), "{dom}");
    }
    assert!(dom.contains("<path d=\"M"), "lines drawn: {dom}");
    assert!(dom.contains("events/s"), "units: {dom}");
    // The stream's latest dead letter, with its reason.
    assert!(
        dom.contains(&format!("<strong>{code}</strong>")),
        "the dead letter's reason: {dom}"
    );
    // The view of the address: its mode and why, its operators, its results.
    assert!(
        dom.contains("data-view=\"counts\"><h3>View counts: streaming"),
        "{dom}"
    );
    assert!(dom.contains("The planner streams"), "why: {dom}");
    assert!(
        dom.contains("<table id=\"planner-table\">"),
        "the planner's table: {dom}"
    );
    assert!(
        dom.contains("<tr class=\"selected\"><td>streaming</td>"),
        "streaming chosen: {dom}"
    );
    let operators = attribute(&dom, "<ul class=\"ops\"", "data-operators")
        .unwrap_or_else(|| panic!("no operators: {dom}"));
    assert!(operators >= 2, "{dom}");
    assert!(dom.contains("Aggregate #"), "{dom}");
    assert!(
        dom.contains("class=\"tag updating\"") || dom.contains("class=\"tag append\""),
        "{dom}"
    );
    let results = attribute(&dom, "<div id=\"detail-results\"", "data-results")
        .unwrap_or_else(|| panic!("no results: {dom}"));
    assert!(results >= 1, "{dom}");
    assert!(dom.contains("<table id=\"results-table\">"), "{dom}");
    assert!(dom.contains("<th>window_start</th>"), "{dom}");

    // The screenshot: a PNG of the window's shape (at whatever device scale) and not
    // trivially small; what it shows, the DOM above checks. FRESHET_TEST_SCREENSHOTS names
    // a directory to keep it in.
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert_eq!(png.get(12..16), Some(&b"IHDR"[..]), "a PNG header");
    let dimension = |at: usize| u64::from(u32::from_be_bytes(png[at..at + 4].try_into().unwrap()));
    let (width, height) = (dimension(16), dimension(20));
    assert!(
        width > 0 && width * 3_200 == height * 1_400,
        "{width}x{height}"
    );
    assert!(png.len() > 5_000, "{} bytes", png.len());
    if let Some(dir) = std::env::var_os("FRESHET_TEST_SCREENSHOTS") {
        std::fs::copy(
            &screenshot,
            std::path::Path::new(&dir).join("dashboard.png"),
        )
        .expect("keep the screenshot");
    }
}

/// A query-only server beside the writer samples the same figures from the data directory
/// and the store (all but bytes/s: it ingests nothing), lists the dead letters, and has no
/// planner figures (it runs no views).
#[test]
fn a_query_only_server_keeps_history_and_lists_dead_letters() {
    let env = Env::new();
    let server = Server::start(&env);
    let sql = "CREATE STREAM bid (auction BIGINT NOT NULL, price BIGINT NOT NULL, \
        date_time TIMESTAMP NOT NULL, WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND); \
        CREATE VIEW counts AS SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction";
    assert_eq!(server.post_json("/v1/sql", &json!({ "sql": sql })).0, 200);
    let rows = r#"{"auction": 1, "price": 5, "date_time": "2015-07-15T00:00:00Z"}
{"auction": "one", "price": 5, "date_time": "2015-07-15T00:00:00Z"}
"#;
    assert_eq!(server.post_events("bid", rows.as_bytes(), &[]).0, 200);
    let reader = Server::start_command(
        &env,
        &["serve", "--listen", "127.0.0.1:0", "--role", "query"],
        Duration::from_secs(30),
    );
    history_points(&reader, "view", "counts", "lag", 2);
    history_points(&reader, "view", "counts", "input", 1);
    history_points(&reader, "stream", "bid", "events", 1);
    let (_, history) = reader.get("/v1/history");
    assert!(
        !history["series"]
            .as_array()
            .expect("series")
            .iter()
            .any(|s| s["metric"] == "bytes"),
        "{history}"
    );
    let (status, letters) = reader.get("/v1/streams/bid/dead-letters");
    assert_eq!(status, 200, "{letters}");
    assert_eq!(letters["total"], 1, "{letters}");
    assert_eq!(letters["dead_letters"][0]["line"], 2, "{letters}");
    let (_, view) = reader.get("/v1/views/counts");
    assert!(view["planner"].is_null(), "{view}");
}

/// Issue 19: with tokens required, the page asks for one (once, in the page) instead of
/// failing, and with a query token it renders as without tokens. The token comes in the URL
/// fragment, the one way to hand it to a page that `--dump-dom` drives; typing it into the
/// form goes through the same code after the form.
#[test]
fn issue_19_the_dashboard_asks_for_a_token_and_renders_with_one() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let env = Env::new();
    let token = |role: &str| -> String {
        let out = env.ok(&["token", "create", "--role", role]);
        out.lines().last().expect("the token").to_string()
    };
    let (admin, query, ingest) = (token("admin"), token("query"), token("ingest"));
    let server = Server::start(&env);
    let sql = json!({"sql": "CREATE STREAM bid (auction BIGINT NOT NULL, price BIGINT NOT NULL, \
        date_time TIMESTAMP NOT NULL, WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND)"});
    assert_eq!(
        server
            .call("POST", "/v1/sql", Some(&admin), &sql.to_string())
            .status,
        200
    );
    let event = r#"{"auction": 1, "price": 5, "date_time": "2015-07-15T00:00:00Z"}"#;
    assert_eq!(
        server
            .call("POST", "/v1/streams/bid/events", Some(&admin), event)
            .status,
        200
    );

    // Without a token: the form, shown once with the reason; no figures, no alert loop.
    let dom = String::from_utf8(load(browser, &server.url("/")).stdout).expect("UTF-8");
    assert!(
        dom.contains("<form id=\"token-form\">"),
        "the form is shown: {dom}"
    );
    assert!(dom.contains("requires an API token"), "{dom}");
    assert_eq!(renders(&dom), None, "{dom}");

    // A token of the wrong role is refused and asked for again, with the server's reason.
    let dom = String::from_utf8(load(browser, &server.url(&format!("/#token={ingest}"))).stdout)
        .expect("UTF-8");
    assert!(dom.contains("<form id=\"token-form\">"), "{dom}");
    assert!(
        dom.contains("refused this token") && dom.contains("role query"),
        "{dom}"
    );

    // Something that is no token (a header cannot carry it) is refused in the page and
    // asked for again, rather than failing every request.
    let out = load(browser, &server.url("/#token=%E2%82%AC%E2%82%AC%E2%82%AC"));
    let dom = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(
        dom.contains("<form id=\"token-form\">"),
        "asked again: {dom}"
    );
    assert!(dom.contains("visible ASCII"), "{dom}");
    assert!(
        dom.contains("<span id=\"error\"></span>"),
        "no failed fetch: {dom}"
    );
    assert_eq!(renders(&dom), None, "{dom}");
    let log = String::from_utf8_lossy(&out.stderr);
    for line in log.lines().filter(|l| l.contains("CONSOLE")) {
        assert!(!line.contains("Uncaught"), "console error: {line}\n{log}");
    }

    // With a query token: the figures, the form hidden, no error shown.
    let out = load(browser, &server.url(&format!("/#token={query}")));
    let dom = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(dom.contains("<td>bid</td>"), "the streams table: {dom}");
    assert!(dom.contains("<form id=\"token-form\" hidden"), "{dom}");
    assert!(dom.contains("<span id=\"error\"></span>"), "{dom}");
    assert!(renders(&dom).is_some_and(|n| n >= 2), "{dom}");
    assert!(
        !dom.contains(&query),
        "the token is not left in the page: {dom}"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    for line in log.lines().filter(|l| l.contains("CONSOLE")) {
        assert!(!line.contains("Uncaught"), "console error: {line}\n{log}");
    }
}
