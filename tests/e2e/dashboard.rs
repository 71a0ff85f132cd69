//! The dashboard in a real browser: headless Chromium loads `/`, runs its script, renders
//! the streams and views tables and the charts without console errors, and re-renders
//! with new figures as events arrive; when the server requires API tokens, the page asks
//! for one instead, and renders with one. Chromium comes from
//! `scripts/install-test-deps.sh` (run by `.ci/run`); without it the tests say so loudly
//! and skip, except in CI (`FRESHET_CI` set), where they fail.

use crate::e2e::support::{Env, Server};
use serde_json::json;
use std::process::{Command, Output};
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
    let started = Instant::now();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=8000",
            "--dump-dom",
            url,
        ])
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {out:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    out
}

/// How many times the page rendered fresh figures.
fn renders(dom: &str) -> Option<u32> {
    dom.split("data-updates=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
}

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

    // Events keep arriving while the page runs.
    let url = server.url("/");
    let dom = std::thread::scope(|scope| {
        let feeding = scope.spawn(|| {
            for i in 1..=40 {
                let (status, _) = server.post_events("bid", event(i).as_bytes(), &[]);
                assert_eq!(status, 200);
                std::thread::sleep(Duration::from_millis(25));
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        let out = load(browser, &url);
        feeding.join().expect("the feeder");
        let log = String::from_utf8_lossy(&out.stderr).to_string();
        for line in log.lines().filter(|l| l.contains("CONSOLE")) {
            assert!(
                !line.contains("Uncaught") && !line.to_lowercase().contains("error"),
                "console error: {line}\n{log}"
            );
        }
        String::from_utf8(out.stdout).expect("UTF-8 DOM")
    });
    assert!(dom.contains("<td>bid</td>"), "the streams table: {dom}");
    assert!(dom.contains("<td>counts</td>"), "the views table: {dom}");
    assert!(dom.contains("<td>streaming</td>"), "{dom}");
    assert!(dom.contains("<polyline"), "the charts: {dom}");
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
