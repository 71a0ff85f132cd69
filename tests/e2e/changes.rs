//! The change feed (`GET /v1/views/{name}/changes`) through the real binary and a real
//! Server-Sent Events client (Python's httpx-sse): events read while events are ingested,
//! the client cut off, the server restarted, more events ingested, the client resumed with
//! `Last-Event-ID`; the union of what it saw is the view's final rows, each position seen
//! once and none skipped. Also: a query-only server beside the writer serves the same
//! feed; a position the log no longer holds is refused before streaming, and a feed that
//! meets one is reset; feeds are limited.

use crate::e2e::http_views::{STREAM, bid};
use crate::e2e::support::{Env, Server};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Counts per auction and ten-second window; `on_update` so that most commits change rows.
const VIEW: &str = "CREATE VIEW counts WITH (freshness = '200ms', emit = 'on_update', \
    emit_interval = '100ms') AS \
    SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS top \
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) \
    GROUP BY auction, window_start, window_end";

/// An SSE client: follows `url` (resuming after `last_id` if not empty) and writes each
/// event as a JSON line to `out`, until an event shows the view's offsets reached `target`
/// (`offsets`) or a commit event reaches position `target` (`position`), the server ends
/// the stream, or an event says the feed ended.
const CLIENT: &str = r#"
import json, sys
import httpx
from httpx_sse import connect_sse

url, out_path, last_id, mode, target = sys.argv[1:6]
target = int(target)
headers = {"Last-Event-ID": last_id} if last_id else {}

def reached(event, data):
    if mode == "position":
        return event == "commit" and data["position"] >= target
    offsets = data.get("offsets") if event == "commit" else data["freshness"].get("offsets")
    return bool(offsets) and sum(o["next_offset"] for o in offsets) >= target

with open(out_path, "a") as out:
    def note(record):
        out.write(json.dumps(record) + "\n")
        out.flush()
    try:
        with httpx.Client(timeout=httpx.Timeout(60.0)) as client:
            with connect_sse(client, "GET", url, headers=headers) as source:
                note({"event": "open", "status": source.response.status_code,
                      "content_type": source.response.headers.get("content-type")})
                for sse in source.iter_sse():
                    note({"event": sse.event, "id": sse.id, "data": sse.data})
                    if sse.event in ("reset", "dropped", "failure"):
                        break
                    if sse.event in ("commit", "progress") and reached(sse.event, json.loads(sse.data)):
                        note({"event": "reached"})
                        break
                else:
                    note({"event": "end"})
    except httpx.HTTPError as e:
        note({"event": "closed", "error": str(e)})
"#;

/// A Python with httpx and httpx-sse: `FRESHET_TEST_PYTHON`, else `python3`. Without them
/// the test says so and skips, except under `FRESHET_CI`, where it fails.
fn python_with_sse() -> Option<String> {
    let python = std::env::var("FRESHET_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import httpx, httpx_sse"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let why = format!(
        "{python} lacks httpx or httpx-sse: run scripts/install-python-test-deps.sh and set \
         FRESHET_TEST_PYTHON to the path it prints"
    );
    assert!(std::env::var_os("FRESHET_CI").is_none(), "{why}");
    eprintln!("SKIP: {why}");
    None
}

/// When an SSE client stops.
#[derive(Clone, Copy)]
enum Until {
    /// Once the view's offsets add up to this many events.
    Offsets(u64),
    /// Once it received the commit event of this position.
    Position(u64),
}

/// One SSE client run in the background.
struct Client {
    child: std::process::Child,
    out: PathBuf,
}

impl Client {
    fn start(
        python: &str,
        env: &Env,
        server: &Server,
        name: &str,
        last_id: &str,
        until: Until,
    ) -> Client {
        let (mode, target) = match until {
            Until::Offsets(n) => ("offsets", n),
            Until::Position(n) => ("position", n),
        };
        let script = env.write("sse_client.py", CLIENT);
        let out = env.path(&format!("{name}.jsonl"));
        let child = Command::new(python)
            .arg(&script)
            .arg(server.url("/v1/views/counts/changes"))
            .arg(&out)
            .arg(last_id)
            .arg(mode)
            .arg(target.to_string())
            .spawn()
            .expect("start the SSE client");
        Client { child, out }
    }

    /// The events written so far.
    fn events(&self) -> Vec<Value> {
        read_events(&self.out)
    }

    /// Waits until the client wrote an event named `name`.
    fn wait_for(&self, name: &str, server: &Server) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.events().iter().any(|e| e["event"] == name) {
            assert!(
                Instant::now() < deadline,
                "the SSE client never wrote '{name}': {:?}\n{}",
                self.events(),
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the client to exit.
    fn finish(mut self, server_log: &str) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.child.try_wait().expect("poll the client").is_some() {
                return self.events();
            }
            assert!(
                Instant::now() < deadline,
                "the SSE client did not finish: {:?}\n{server_log}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The `data` of every `commit` event, parsed.
fn commits(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["event"] == "commit")
        .map(|e| {
            let data: Value =
                serde_json::from_str(e["data"].as_str().expect("data")).expect("JSON data");
            assert_eq!(
                e["id"],
                data["position"].to_string(),
                "the id is the position"
            );
            data
        })
        .collect()
}

/// A row's key and the values compared: `(auction, window_start)` → `(bids, top, _state)`.
type Rows = BTreeMap<(i64, String), (i64, i64, String)>;

fn key(row: &Value) -> (i64, String) {
    (
        row["auction"].as_i64().expect("auction"),
        row["window_start"]
            .as_str()
            .expect("window_start")
            .to_string(),
    )
}

/// Applies commit events in order: deletes, then upserts.
fn apply(rows: &mut Rows, commit: &Value) {
    for row in commit["deletes"].as_array().expect("deletes") {
        rows.remove(&key(row));
    }
    for row in commit["upserts"].as_array().expect("upserts") {
        rows.insert(
            key(row),
            (
                row["bids"].as_i64().expect("bids"),
                row["top"].as_i64().expect("top"),
                row["_state"].as_str().expect("_state").to_string(),
            ),
        );
    }
}

/// The view's rows as `GET /results` gives them.
fn results(server: &Server) -> Rows {
    let (status, page) = server.get("/v1/views/counts/results?limit=10000");
    assert_eq!(status, 200, "{page}");
    let mut rows = Rows::new();
    for row in page["rows"].as_array().expect("rows") {
        rows.insert(
            key(row),
            (
                row["bids"].as_i64().expect("bids"),
                row["top"].as_i64().expect("top"),
                row["_state"].as_str().expect("_state").to_string(),
            ),
        );
    }
    rows
}

/// Ingests `lines` in requests of `per` events each, a short pause between, so that the
/// view commits several times.
fn ingest(server: &Server, lines: &[String], per: usize) {
    for chunk in lines.chunks(per) {
        let (status, reply) = server.post_events("bid", chunk.join("\n").as_bytes(), &[]);
        assert_eq!(status, 200, "{reply}");
        std::thread::sleep(Duration::from_millis(120));
    }
}

/// Bids over auctions 1–5 from second `from`, one a second.
fn bids(from: u32, n: u32) -> Vec<String> {
    (0..n)
        .map(|i| bid(i64::from(i % 5) + 1, i64::from(i * 7 % 100), from + i))
        .collect()
}

#[test]
fn a_client_resumes_after_a_restart_with_nothing_missed_or_repeated() {
    let Some(python) = python_with_sse() else {
        return;
    };
    let env = Env::new();
    let mut server = Server::start(&env);
    let (status, created) =
        server.post_json("/v1/sql", &json!({ "sql": format!("{STREAM}; {VIEW}") }));
    assert_eq!(status, 200, "{created}");

    // Phase 1: a client from the start reads while events are ingested.
    let first = bids(0, 60);
    let client = Client::start(
        &python,
        &env,
        &server,
        "first",
        "0",
        Until::Offsets(first.len() as u64),
    );
    client.wait_for("open", &server);
    ingest(&server, &first, 10);
    let seen_first = client.finish(&server.log_text());
    assert_eq!(seen_first[0]["status"], 200, "{seen_first:?}");
    assert!(
        seen_first[0]["content_type"]
            .as_str()
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{seen_first:?}"
    );
    assert!(
        seen_first.iter().any(|e| e["event"] == "reached"),
        "{seen_first:?}"
    );
    let mut seen = commits(&seen_first);
    assert!(seen.len() >= 2, "several commits: {seen_first:?}");

    // A client still connected when the server stops: the stop does not wait for it, and
    // the client sees the stream end.
    let last = seen.last().expect("a commit")["position"].to_string();
    let waiting = Client::start(
        &python,
        &env,
        &server,
        "waiting",
        &last,
        Until::Offsets(u64::MAX),
    );
    waiting.wait_for("open", &server);
    let stopped = server.terminate();
    assert!(stopped.success(), "{stopped:?}\n{}", server.log_text());
    let seen_waiting = waiting.finish(&server.log_text());
    assert!(
        seen_waiting
            .iter()
            .any(|e| e["event"] == "end" || e["event"] == "closed"),
        "{seen_waiting:?}"
    );
    seen.extend(commits(&seen_waiting));

    // Phase 2: a new server, more events; the client resumes with Last-Event-ID. The last
    // event moves the watermark past every window, so every row ends final.
    let server = Server::start(&env);
    let mut second = bids(60, 60);
    second.push(bid(9, 1, 400));
    let total = (first.len() + second.len()) as u64;
    ingest(&server, &second, 10);
    // Once the view has settled (every event counted, every closed window final), the
    // snapshot's id is the newest position, which the resumed client reads up to.
    let stored = settled(&server, total);
    let newest = latest_position(&server);
    let last = seen.last().expect("a commit")["position"].to_string();
    let resumed = Client::start(
        &python,
        &env,
        &server,
        "resumed",
        &last,
        Until::Position(newest),
    );
    let seen_resumed = resumed.finish(&server.log_text());
    assert!(
        seen_resumed.iter().any(|e| e["event"] == "reached"),
        "{seen_resumed:?}"
    );
    seen.extend(commits(&seen_resumed));

    // Every position once, in order, from 1.
    let positions: Vec<u64> = seen
        .iter()
        .map(|c| c["position"].as_u64().expect("position"))
        .collect();
    let expected: Vec<u64> = (1..=positions.len() as u64).collect();
    assert_eq!(positions, expected, "no position repeated or skipped");
    // The union of the changes is the view's rows.
    let mut rows = Rows::new();
    for commit in &seen {
        apply(&mut rows, commit);
    }
    assert_eq!(rows, stored);
    assert_eq!(results(&server), stored, "nothing changed since");
    // Each commit event carries its offsets, watermark and freshness.
    let last_commit = seen.last().expect("a commit");
    assert_eq!(last_commit["kind"], "commit", "{last_commit}");
    assert!(last_commit["watermark"].is_string(), "{last_commit}");
    assert_eq!(last_commit["freshness"]["sla_ms"], 200, "{last_commit}");
    assert!(
        last_commit["offsets"][0]["next_offset"].as_u64().is_some(),
        "{last_commit}"
    );

    // A query-only server beside the writer serves the same feed from the store, and a
    // snapshot with the position it is as of.
    let query = Server::start_command(
        &env,
        &["serve", "--role", "query", "--listen", "127.0.0.1:0"],
        Duration::from_secs(30),
    );
    let again = Client::start(&python, &env, &query, "query", "0", Until::Position(newest));
    let seen_again = commits(&again.finish(&query.log_text()));
    let strip = |commits: &[Value]| -> Vec<Value> {
        commits
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c["freshness"] = Value::Null;
                c
            })
            .collect()
    };
    assert_eq!(
        strip(&seen_again),
        strip(&seen),
        "the query server's feed is the writer's"
    );
    let snapshot = sse_text(
        &query.addr,
        "/v1/views/counts/changes?snapshot=true",
        Duration::from_secs(2),
    );
    assert!(snapshot.contains("event: snapshot"), "{snapshot}");
    assert!(snapshot.contains(&format!("id: {newest}\n")), "{snapshot}");
}

/// Waits until the view counted `total` events and every window before the last event's is
/// final; its rows.
fn settled(server: &Server, total: u64) -> Rows {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = results(server);
        let counted: i64 = rows.values().map(|(bids, _, _)| bids).sum();
        let closed_final = rows
            .iter()
            .filter(|((auction, _), _)| *auction != 9)
            .all(|(_, (_, _, state))| state == "final");
        if counted == total as i64 && closed_final {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "the view never settled: {rows:?}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The newest position, as the id of a snapshot's last event.
fn latest_position(server: &Server) -> u64 {
    let text = sse_text(
        &server.addr,
        "/v1/views/counts/changes?snapshot=true",
        Duration::from_secs(1),
    );
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap_or_else(|| panic!("a snapshot with an id: {text}"));
    id.trim().parse().expect("a position")
}

/// The raw text of a feed from the server at `addr`, read for `read_for` (or until the
/// server ends it).
fn sse_text(addr: &str, path: &str, read_for: Duration) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("send the request");
    let deadline = Instant::now() + read_for;
    let mut text = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the feed: {e}"),
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The status of a feed's response and, if refused, its error code.
fn feed_status(server: &Server, path: &str) -> (u16, String) {
    let text = sse_text(&server.addr, path, Duration::from_millis(500));
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {text}"));
    let code = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str::<Value>(body).ok())
        .and_then(|body| body["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

/// `n` bids, each on its own auction from `first`, at second `at`: one commit changing `n`
/// rows.
fn distinct_bids(first: i64, n: i64, at: u32) -> Vec<String> {
    (first..first + n)
        .map(|auction| bid(auction, 1, at))
        .collect()
}

#[test]
fn positions_the_log_does_not_hold_are_refused_and_feeds_are_bounded() {
    let env = Env::new();
    let mut command = env.command(&["serve", "--listen", "127.0.0.1:0"]);
    command.env("FRESHET_CHANGES_RETAIN_COMMITS", "2");
    // A commit of one row fits an entry; one of 2,000 rows (over 40 kB) does not.
    command.env("FRESHET_CHANGES_ENTRY_BYTES_MAX", "16384");
    let server = Server::start_from(&env, command, Duration::from_secs(30));
    let (status, created) =
        server.post_json("/v1/sql", &json!({ "sql": format!("{STREAM}; {VIEW}") }));
    assert_eq!(status, 200, "{created}");

    // Bad requests are refused before anything streams.
    assert_eq!(server.get("/v1/views/nope/changes").0, 404);
    let (status, body) = server.get("/v1/views/counts/changes?from=x");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );

    // Several commits that change rows, of which the log keeps two: a position before
    // them is refused with 410, which ends an EventSource (a stream that ends would make
    // it reconnect and be told again, forever).
    let lines = bids(0, 40);
    ingest(&server, &lines, 5);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, code) = feed_status(&server, "/v1/views/counts/changes?from=0");
        if status == 410 {
            assert_eq!(code, "expired");
            break;
        }
        assert_eq!(status, 200, "{code}");
        assert!(
            Instant::now() < deadline,
            "never refused\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A position past the newest (another store's) is refused too.
    assert_eq!(
        feed_status(&server, "/v1/views/counts/changes?from=100000"),
        (410, "unknown_position".to_string())
    );

    // A commit too large for one event: a live feed meets it and is reset, and resuming
    // from before it is refused; after it, the feed goes on.
    let live = {
        let addr = server.addr.clone();
        std::thread::spawn(move || {
            sse_text(&addr, "/v1/views/counts/changes", Duration::from_secs(8))
        })
    };
    std::thread::sleep(Duration::from_millis(1_000));
    let (status, reply) = server.post_events(
        "bid",
        distinct_bids(1_000, 2_000, 45).join("\n").as_bytes(),
        &[],
    );
    assert_eq!(status, 200, "{reply}");
    let text = live.join().expect("the live feed");
    assert!(text.contains("event: reset"), "{text}");
    let reset: Value = text
        .lines()
        .skip_while(|l| *l != "event: reset")
        .find_map(|l| l.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("JSON"))
        .unwrap_or_else(|| panic!("a reset with data: {text}"));
    assert_eq!(reset["reason"], "too_large", "{reset}");
    let at = reset["at"].as_u64().expect("the entry's position");
    assert_eq!(reset["position"].as_u64(), Some(at - 1), "{reset}");
    assert_eq!(
        feed_status(
            &server,
            &format!("/v1/views/counts/changes?from={}", at - 1)
        ),
        (410, "too_large".to_string())
    );
    // The reset carries the client's position as its id, so that a reconnecting
    // EventSource sends it and meets the 410.
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "event: reset")
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(
        block.contains(&format!("id: {}", at - 1).as_str()),
        "{text}"
    );
    // The 2,000 rows may have taken more than one commit, each too large: a feed from the
    // newest position gets the next commit, a small one.
    let newest = latest_position(&server);
    let next = {
        let addr = server.addr.clone();
        std::thread::spawn(move || {
            sse_text(
                &addr,
                &format!("/v1/views/counts/changes?from={newest}"),
                Duration::from_secs(6),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(1_000));
    let (status, reply) = server.post_events("bid", bids(45, 1)[0].as_bytes(), &[]);
    assert_eq!(status, 200, "{reply}");
    let text = next.join().expect("the feed after the large commit");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(&format!("id: {}\n", newest + 1)), "{text}");
    assert!(text.contains("event: commit"), "{text}");

    // A view dropped and created again numbers on after a mark, which a client of the old
    // view meets: it is told to start over rather than mix the two views' rows.
    let sql = format!("DROP VIEW counts; {VIEW}");
    let (status, replaced) = server.post_json("/v1/sql", &json!({ "sql": sql }));
    assert_eq!(status, 200, "{replaced}");
    let mark = latest_position(&server);
    assert!(mark > 1, "the old view's log was marked: {mark}");
    assert_eq!(
        feed_status(
            &server,
            &format!("/v1/views/counts/changes?from={}", mark - 1)
        ),
        (410, "view_recreated".to_string())
    );

    // At most CHANGE_FEEDS_MAX feeds at once; one that ends gives its place back.
    let feeds_max = freshet_types::limits::CHANGE_FEEDS_MAX;
    let mut open = Vec::new();
    for _ in 0..feeds_max {
        let mut stream = std::net::TcpStream::connect(&server.addr).expect("connect");
        write!(
            stream,
            "GET /v1/views/counts/changes HTTP/1.1\r\nHost: {}\r\n\r\n",
            server.addr
        )
        .expect("send");
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).expect("a status line");
        assert_eq!(&head, b"HTTP/1.1 200", "{}", String::from_utf8_lossy(&head));
        open.push(stream);
    }
    let refused = server.call("GET", "/v1/views/counts/changes", None, "");
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.code(), "too_many_feeds");
    assert!(refused.retry_after.is_some());
    // The server learns that a client left when it next writes to it: at the latest the
    // keep-alive comment, every 15 s.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let text = sse_text(
            &server.addr,
            "/v1/views/counts/changes",
            Duration::from_millis(300),
        );
        if text.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the place was never given back: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(open);

    // A view with more rows than a snapshot sends: refused before streaming.
    let (status, reply) = server.post_events(
        "bid",
        distinct_bids(10_000, 10_001, 46).join("\n").as_bytes(),
        &[],
    );
    assert_eq!(status, 200, "{reply}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, code) = feed_status(&server, "/v1/views/counts/changes?snapshot=true");
        if status == 422 {
            assert_eq!(code, "snapshot_too_large");
            break;
        }
        // 503: the feeds just closed hold their places until the server writes to them.
        assert!(status == 200 || status == 503, "{status} {code}");
        assert!(
            Instant::now() < deadline,
            "never refused\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
