//! `freshet demo`, the README's first command, through the real binary: it ingests its
//! history, creates three views with different SLAs, serves, and feeds live events that
//! reach the views; SIGTERM stops it cleanly.

use crate::e2e::support::{Env, Server};
use std::time::{Duration, Instant};

#[test]
fn demo_serves_three_views_fed_by_live_events() {
    let env = Env::new();
    let mut demo = Server::start_command(
        &env,
        &[
            "demo",
            "--events",
            "20000",
            "--rate",
            "1000",
            "--listen",
            "127.0.0.1:0",
        ],
        Duration::from_secs(120),
    );
    let views = |server: &Server| {
        let (status, listed) = server.get("/v1/views");
        assert_eq!(status, 200, "{listed}");
        listed["views"].as_array().expect("views").clone()
    };
    let names: Vec<String> = views(&demo)
        .iter()
        .map(|v| v["name"].as_str().expect("name").to_string())
        .collect();
    assert_eq!(names, ["hot_auctions", "channel_minutes", "hourly_volume"]);
    let slas: Vec<u64> = views(&demo)
        .iter()
        .map(|v| v["options"]["freshness_ms"].as_u64().expect("sla"))
        .collect();
    assert_eq!(slas, [1_000, 60_000, 3_600_000]);

    // The history's bids (92% of 20,000), then live ones on top.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let read = views(&demo)[0]["stats"]["input_events"]
            .as_u64()
            .unwrap_or(0);
        if read > 18_400 + 500 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hot_auctions read {read} events; live events never arrived:\n{}",
            demo.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Live event times move the watermark past the history's windows: they become final.
    loop {
        let (_, page) = demo.get("/v1/views/hot_auctions/results?limit=5");
        if page["rows"].as_array().map(Vec::len) == Some(5) {
            assert_eq!(page["rows"][0]["_state"], "final", "{page}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no final windows in hot_auctions: {page}\n{}",
            demo.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = demo.terminate();
    assert!(status.success(), "{status:?}\n{}", demo.log_text());
}
