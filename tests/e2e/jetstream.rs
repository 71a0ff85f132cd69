//! A stream whose log is NATS JetStream, against the 3-node cluster `scripts/nats-cluster.sh`
//! starts (`FRESHET_TEST_NATS_URL`): `freshet ingest` publishes to JetStream, another
//! program publishes its own JSON (good and bad) on the partitions' subjects, a view drains
//! it all into SQLite and equals a batch recompute over the same JetStream streams, bad
//! messages are dead-lettered with their subject and sequence, a request retried with the
//! same idempotency key through another Freshet process is stored once, and a JetStream
//! stream deleted and created again is refused, not read as if nothing happened.

use super::support::{Env, Server, bid_ddl};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The cluster's client URLs from `FRESHET_TEST_NATS_URL`, or `None` (said loudly). Under
/// `FRESHET_CI` a missing cluster fails the test instead.
pub(super) fn nats_url() -> Option<String> {
    match std::env::var("FRESHET_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("FRESHET_CI").is_some() => {
            panic!("FRESHET_TEST_NATS_URL is not set; CI runs the JetStream tests")
        }
        _ => {
            eprintln!(
                "SKIPPED: FRESHET_TEST_NATS_URL is not set, so streams on JetStream are not \
                 tested (start a cluster with `scripts/nats-cluster.sh start`)"
            );
            None
        }
    }
}

/// A subject prefix of this test's own, so that runs never see each other's messages.
pub(super) fn unique_subject(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("freshet_test.{test}_{}_{nanos:x}", std::process::id())
}

/// The bid stream on JetStream: 4 partitions keyed by auction, 3 replicas.
pub(super) fn bid_on_jetstream(url: &str, subject: &str) -> String {
    let ddl = bid_ddl();
    let cut = ddl.rfind(')').expect("the DDL ends with its WITH list");
    format!(
        "{}, log = '{url}', subject = '{subject}', replicas = 3)",
        &ddl[..cut]
    )
}

/// Another program on the NATS protocol itself (plain text over TCP), to publish what
/// Freshet did not write and to call the JetStream API.
struct NatsClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    inbox: u64,
}

impl NatsClient {
    fn connect(urls: &str) -> NatsClient {
        let first = urls.split(',').next().expect("a URL");
        let addr = first.strip_prefix("nats://").expect("nats:// URL");
        let writer = TcpStream::connect(addr).expect("connect to NATS");
        writer
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut reader = BufReader::new(writer.try_clone().expect("clone the socket"));
        let mut info = String::new();
        reader.read_line(&mut info).expect("INFO");
        assert!(info.starts_with("INFO"), "{info}");
        let mut client = NatsClient {
            reader,
            writer,
            inbox: 0,
        };
        client.send(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n");
        client
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to NATS");
    }

    /// Sends `payload` on `subject` and waits for the one reply.
    fn request(&mut self, subject: &str, payload: &[u8]) -> Value {
        self.inbox += 1;
        let inbox = format!("_INBOX.freshet_test.{}.{}", std::process::id(), self.inbox);
        let mut msg = format!(
            "SUB {inbox} {n}\r\nPUB {subject} {inbox} {}\r\n",
            payload.len(),
            n = self.inbox
        )
        .into_bytes();
        msg.extend_from_slice(payload);
        msg.extend_from_slice(b"\r\n");
        self.send(&msg);
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("read from NATS");
            if line.starts_with("PING") {
                self.send(b"PONG\r\n");
            } else if line.starts_with("MSG") {
                let len: usize = line
                    .split_whitespace()
                    .last()
                    .and_then(|n| n.parse().ok())
                    .expect("MSG length");
                let mut body = vec![0; len + 2];
                self.reader.read_exact(&mut body).expect("MSG body");
                body.truncate(len);
                let unsub = format!("UNSUB {}\r\n", self.inbox);
                self.send(unsub.as_bytes());
                return serde_json::from_slice(&body).expect("JetStream answers in JSON");
            } else {
                assert!(
                    line.starts_with("+OK") || line.starts_with("PONG") || line.starts_with("INFO"),
                    "unexpected from NATS: {line}"
                );
            }
        }
    }

    /// Publishes to JetStream and returns the sequence it stored the message at.
    fn publish(&mut self, subject: &str, payload: &[u8]) -> u64 {
        let ack = self.request(subject, payload);
        ack["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("a publish acknowledgement: {ack}"))
    }

    /// The stream's message count and last sequence.
    fn stream_state(&mut self, name: &str) -> (u64, u64) {
        let info = self.request(&format!("$JS.API.STREAM.INFO.{name}"), b"");
        let state = &info["state"];
        (
            state["messages"]
                .as_u64()
                .unwrap_or_else(|| panic!("{info}")),
            state["last_seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("{info}")),
        )
    }

    fn delete_stream(&mut self, name: &str) {
        let answer = self.request(&format!("$JS.API.STREAM.DELETE.{name}"), b"");
        assert_eq!(answer["success"], true, "{answer}");
    }
}

/// The JetStream stream of a partition, as Freshet names it.
fn stream_name(subject: &str, p: u32) -> String {
    format!("FRESHET_{}_{p}", subject.replace(['.', '-'], "_"))
}

/// The hot-auctions view of tests/e2e/views.rs, over the bid stream.
const HOT: &str = "CREATE VIEW hot WITH (freshness = '100ms') AS \
    SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS high \
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) \
    GROUP BY auction, window_start, window_end";

/// Rows that differ between the view's stored rows and the same query run in batch over
/// the log, both ways.
const DIFFERENCES: &str = "WITH recomputed AS (\
    SELECT auction, window_start, COUNT(*) AS bids, MAX(price) AS high \
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) GROUP BY auction, window_start), \
    stored AS (SELECT auction, window_start, bids, high FROM hot) \
    SELECT (SELECT count(*) FROM (SELECT * FROM stored EXCEPT SELECT * FROM recomputed) a) \
         + (SELECT count(*) FROM (SELECT * FROM recomputed EXCEPT SELECT * FROM stored) b) AS n";

/// The bid stream on JetStream holding `bids` generated bids, and the view `hot` drained
/// over them.
fn drained_view(env: &Env, url: &str, subject: &str, bids: u64) {
    env.ok(&["sql", &bid_on_jetstream(url, subject)]);
    let file = env.write("bids.ndjson", env.generate_bids(bids).join("\n"));
    env.ok(&["ingest", "bid", file.to_str().expect("UTF-8 path")]);
    env.ok(&["sql", HOT]);
    env.ok(&["run", "--drain", "--end-of-stream"]);
}

fn query_number(env: &Env, sql: &str) -> u64 {
    let csv = env.ok(&["query", sql, "--format", "csv"]);
    csv.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("one number from {sql}: {csv}"))
}

#[test]
fn a_view_over_jetstream_equals_batch_and_bad_messages_are_dead_lettered() {
    let Some(url) = nats_url() else { return };
    let env = Env::new();
    let subject = unique_subject("view");
    env.ok(&["sql", &bid_on_jetstream(&url, &subject)]);
    let info = env.stream_info("bid");
    assert_eq!(info["log"], url.as_str(), "{info}");
    assert_eq!(info["subject"], subject.as_str(), "{info}");
    assert_eq!(info["replicas"], 3, "{info}");

    let lines = env.generate_bids(3000);
    let file = env.write("bids.ndjson", lines.join("\n"));
    let summary = env.ok_json(&["ingest", "bid", file.to_str().expect("UTF-8 path")]);
    assert_eq!(summary["accepted"], 3000, "{summary}");
    let mut nats = NatsClient::connect(&url);
    let stored: u64 = (0..4)
        .map(|p| nats.stream_state(&stream_name(&subject, p)).0)
        .sum();
    assert_eq!(stored, 3000, "one JetStream message per accepted row");
    assert_eq!(env.stream_info("bid")["events"], 3000);

    // Another program publishes a good bid with a line break inside, and three bad ones:
    // not JSON, a wrong type, and a good bid whose auction belongs to another partition.
    let p1 = format!("{subject}.1");
    let partition_of = |line: &String| {
        let bid: serde_json::Value = serde_json::from_str(line).expect("a JSON bid");
        freshet_streams::partitioner::partition_of_i64(
            bid["auction"].as_i64().expect("an auction"),
            4,
        )
    };
    let (own, other) = (
        lines
            .iter()
            .find(|l| partition_of(l) == 1)
            .expect("a bid of partition 1"),
        lines
            .iter()
            .find(|l| partition_of(l) != 1)
            .expect("a bid of another one"),
    );
    let good = own.replacen(',', ",\n", 1);
    nats.publish(&p1, good.as_bytes());
    let not_json = nats.publish(&p1, b"this is not JSON");
    let wrong = nats.publish(
        &p1,
        br#"{"auction": "x", "bidder": 1, "price": 1, "channel": "c", "url": "u", "date_time": "2026-01-01T00:00:00Z", "extra": ""}"#,
    );
    let misplaced = nats.publish(&p1, other.as_bytes());

    env.ok(&["sql", HOT]);
    let run = env.ok_json(&["run", "--drain", "--end-of-stream"]);
    assert_eq!(run["views"][0]["events"], 3001, "{run}");
    assert_eq!(query_number(&env, "SELECT count(*) FROM bid"), 3001);
    assert_eq!(query_number(&env, "SELECT sum(bids) FROM hot"), 3001);
    assert_eq!(
        query_number(&env, DIFFERENCES),
        0,
        "stored rows equal batch"
    );

    let dead = env.dead_letters("bid");
    let positions: Vec<(String, u64, String)> = dead
        .iter()
        .map(|d| {
            (
                d["source"].as_str().expect("source").to_string(),
                d["line"].as_u64().expect("line"),
                d["code"].as_str().expect("code").to_string(),
            )
        })
        .collect();
    assert_eq!(
        positions,
        vec![
            (format!("nats:{p1}"), not_json, "bad_json".to_string()),
            (format!("nats:{p1}"), wrong, "wrong_type".to_string()),
            (
                format!("nats:{p1}"),
                misplaced,
                "wrong_partition".to_string()
            ),
        ],
        "{dead:?}"
    );
    let reason = dead[2]["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("belongs to partition") && reason.contains(&p1),
        "{reason}"
    );

    // Reading again (a second drain, a batch query) dead-letters nothing twice.
    env.ok(&["run", "--drain", "--end-of-stream"]);
    assert_eq!(env.dead_letter_count("bid"), 3);
}

#[test]
fn a_request_retried_through_another_process_is_stored_once() {
    let Some(url) = nats_url() else { return };
    let subject = unique_subject("retry");
    let body = {
        let env = Env::new();
        env.generate_bids(500).join("\n")
    };
    let mut counts = Vec::new();
    for _ in 0..2 {
        // Two Freshet processes with data directories of their own over the same log, as
        // behind a load balancer: the second gets the same request with the same key.
        let env = Env::new();
        env.ok(&["sql", &bid_on_jetstream(&url, &subject)]);
        let server = Server::start(&env);
        let (status, outcome) =
            server.post_events("bid", body.as_bytes(), &[("Idempotency-Key", "order-7")]);
        assert_eq!(status, 200, "{outcome}");
        assert_eq!(outcome["accepted"], 500, "{outcome}");
        drop(server);
        counts.push(query_number(&env, "SELECT count(*) FROM bid"));
    }
    assert_eq!(counts, vec![500, 500], "the retry was stored once");
}

#[test]
fn a_jetstream_stream_created_again_is_refused() {
    let Some(url) = nats_url() else { return };
    let env = Env::new();
    let subject = unique_subject("recreated");
    drained_view(&env, &url, &subject, 200);

    let mut nats = NatsClient::connect(&url);
    nats.delete_stream(&stream_name(&subject, 2));
    let missing = env.run(&["run", "--drain", "--end-of-stream"]);
    assert_ne!(missing.code, Some(0));
    assert!(
        missing.stderr.contains(&stream_name(&subject, 2)),
        "names the missing stream: {}",
        missing.stderr
    );

    // Another data directory declares the stream again: JetStream creates it anew.
    let other = Env::new();
    other.ok(&["sql", &bid_on_jetstream(&url, &subject)]);
    let refused = env.run(&["run", "--drain", "--end-of-stream"]);
    assert_ne!(refused.code, Some(0));
    assert!(
        refused.stderr.contains("created again"),
        "says why: {}",
        refused.stderr
    );

    // What the refusal says to do works: drop the view and the stream, declare them again.
    env.ok(&["sql", "DROP VIEW hot"]);
    env.ok(&["sql", "DROP STREAM bid"]);
    env.ok(&["sql", &bid_on_jetstream(&url, &subject)]);
    env.ok(&["sql", HOT]);
    env.ok(&["run", "--drain", "--end-of-stream"]);
    assert_eq!(query_number(&env, DIFFERENCES), 0);
}

/// A 3-node cluster of this test's own (`scripts/nats-cluster.sh` with its own directory
/// and ports), for tests that kill its nodes; stopped, with its data, when dropped.
pub(super) struct PrivateCluster {
    dir: tempfile::TempDir,
    pub(super) urls: String,
}

impl PrivateCluster {
    pub(super) fn script(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/nats-cluster.sh"
            ))
            .args(args)
            .env("FRESHET_NATS_DIR", self.dir.path().join("cluster"))
            .output()
            .expect("run scripts/nats-cluster.sh");
        assert!(
            out.status.success(),
            "nats-cluster.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub(super) fn start() -> PrivateCluster {
        let mut cluster = PrivateCluster {
            dir: tempfile::tempdir().expect("a temporary directory"),
            urls: String::new(),
        };
        cluster.urls = cluster.script(&["start"]);
        cluster
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/nats-cluster.sh"
            ))
            .arg("stop")
            .env("FRESHET_NATS_DIR", self.dir.path().join("cluster"))
            .status();
    }
}

#[test]
fn ingest_and_views_go_on_while_a_nats_node_is_killed_and_restarted() {
    if nats_url().is_none() {
        return;
    }
    let cluster = PrivateCluster::start();
    let env = Env::new();
    let subject = unique_subject("node_kill");
    env.ok(&["sql", &bid_on_jetstream(&cluster.urls, &subject)]);
    env.ok(&["sql", HOT]);
    let lines = env.generate_bids(4000);
    let server = Server::start(&env);
    for (i, batch) in lines.chunks(200).enumerate() {
        match i {
            5 => {
                cluster.script(&["kill", "1"]);
            }
            12 => {
                cluster.script(&["restart", "1"]);
            }
            _ => {}
        }
        // A request that failed while the cluster moved its leaders is retried with the
        // same key until acknowledged, as a client would.
        let key = format!("batch-{i}");
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            match server.try_post_events(
                "bid",
                batch.join("\n").as_bytes(),
                &[("Idempotency-Key", &key)],
            ) {
                Ok((200, outcome)) => {
                    assert_eq!(outcome["accepted"], batch.len() as u64, "{outcome}");
                    break;
                }
                Ok((503, _)) | Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(500));
                }
                other => panic!("request {i}: {other:?}\n{}", server.log_text()),
            }
        }
    }
    drop(server);
    env.ok(&["run", "--drain", "--end-of-stream"]);
    assert_eq!(query_number(&env, "SELECT count(*) FROM bid"), 4000);
    assert_eq!(query_number(&env, "SELECT sum(bids) FROM hot"), 4000);
    assert_eq!(
        query_number(&env, DIFFERENCES),
        0,
        "stored rows equal batch"
    );
}

#[test]
fn an_existing_jetstream_stream_that_would_lose_or_double_messages_is_refused() {
    let Some(url) = nats_url() else { return };
    let subject = unique_subject("unsuitable");
    let mut nats = NatsClient::connect(&url);
    // An operator's stream for partition 0 that deletes what consumers took.
    let name = stream_name(&subject, 0);
    let config = serde_json::json!({
        "name": name, "subjects": [format!("{subject}.0")], "retention": "interest",
        "storage": "file", "num_replicas": 1, "duplicate_window": 600_000_000_000u64,
    });
    let created = nats.request(
        &format!("$JS.API.STREAM.CREATE.{name}"),
        config.to_string().as_bytes(),
    );
    assert!(created["error"].is_null(), "{created}");
    let env = Env::new();
    let sql = bid_on_jetstream(&url, &subject).replace("partitions = 4", "partitions = 1");
    let refused = env.run(&["sql", &sql]);
    assert_ne!(refused.code, Some(0));
    assert!(
        refused.stderr.contains("retention") && refused.stderr.contains(&name),
        "names the stream and why: {}",
        refused.stderr
    );
    nats.delete_stream(&name);
}

#[test]
fn sequences_removed_before_a_view_read_them_are_refused() {
    let Some(url) = nats_url() else { return };
    let env = Env::new();
    let subject = unique_subject("purged");
    drained_view(&env, &url, &subject, 400);

    // More events arrive, and JetStream's retention removes them (a purge stands in for
    // max_age or max_bytes) before the view reads them.
    let more = env.write("more.ndjson", env.generate_bids(400).join("\n"));
    env.ok(&["ingest", "bid", more.to_str().expect("UTF-8 path")]);
    let mut nats = NatsClient::connect(&url);
    let name = stream_name(&subject, 0);
    let purged = nats.request(&format!("$JS.API.STREAM.PURGE.{name}"), b"");
    assert_eq!(purged["success"], true, "{purged}");
    let refused = env.run(&["run", "--drain", "--end-of-stream"]);
    assert_ne!(refused.code, Some(0), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("retention") && refused.stderr.contains("partition 0"),
        "says what was removed: {}",
        refused.stderr
    );
}
