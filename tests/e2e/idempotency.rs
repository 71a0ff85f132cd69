//! `Idempotency-Key`: a request retried with the same key is applied once and answered with
//! the stored outcome, also after the server restarts; another key applies again.

use super::support::{Env, Server, mixed_ndjson};
use serde_json::Value;

/// The fields of an outcome that a replay must repeat exactly.
fn counts(body: &Value) -> Value {
    serde_json::json!({
        "accepted": body["accepted"],
        "rejected": body["rejected"],
        "rejects": body["rejects"],
        "partitions": body["partitions"],
        "dead_letters": body["dead_letters"],
    })
}

#[test]
fn a_key_is_applied_once_even_across_restarts() {
    let env = Env::new();
    env.create_bid_stream();
    let mixed = mixed_ndjson(&env.generate_bids(2_000));
    let body = mixed.text.as_bytes();
    let rejected = mixed.rejects.len() as u64;
    let mut server = Server::start(&env);

    let (status, first) = server.post_events("bid", body, &[("idempotency-key", "key-1")]);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["replayed"], false);
    assert_eq!(first["accepted"], mixed.accepted);
    assert_eq!(first["rejected"], rejected);
    assert_eq!(env.events("bid"), mixed.accepted);

    let (status, retry) = server.post_events(
        "bid",
        body,
        &[("idempotency-key", "key-1"), ("x-request-id", "retry-1")],
    );
    assert_eq!(status, 200, "{retry}");
    assert_eq!(retry["replayed"], true, "{retry}");
    assert_eq!(counts(&retry), counts(&first));
    assert_eq!(
        env.events("bid"),
        mixed.accepted,
        "a replay appends nothing"
    );
    assert_eq!(
        env.dead_letter_count("bid"),
        rejected,
        "a replay dead-letters nothing"
    );

    let (status, other) = server.post_events("bid", body, &[("idempotency-key", "key-2")]);
    assert_eq!(status, 200, "{other}");
    assert_eq!(other["replayed"], false, "{other}");
    assert_eq!(other["accepted"], mixed.accepted);
    assert_ne!(other["partitions"], first["partitions"], "new offsets");
    assert_eq!(env.events("bid"), 2 * mixed.accepted);
    assert_eq!(env.dead_letter_count("bid"), 2 * rejected);

    let status = server.terminate();
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    drop(server);
    let server = Server::start(&env);

    for (key, original) in [("key-1", &first), ("key-2", &other)] {
        let (status, again) = server.post_events("bid", body, &[("idempotency-key", key)]);
        assert_eq!(status, 200, "{again}");
        assert_eq!(
            again["replayed"], true,
            "{key} is remembered across a restart: {again}"
        );
        assert_eq!(counts(&again), counts(original), "{key}");
    }
    assert_eq!(env.events("bid"), 2 * mixed.accepted);
    assert_eq!(env.dead_letter_count("bid"), 2 * rejected);

    // Without a key every request applies.
    let (status, plain) = server.post_events("bid", body, &[]);
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["replayed"], false);
    assert_eq!(env.events("bid"), 3 * mixed.accepted);
}

#[test]
fn keys_are_per_stream() {
    let env = Env::new();
    env.create_bid_stream();
    env.ok(&[
        "sql",
        "CREATE STREAM other (v BIGINT, ts TIMESTAMP NOT NULL, \
         WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)",
    ]);
    let server = Server::start(&env);
    let bid = env.generate_bids(3).join("\n");
    let (status, a) = server.post_events("bid", bid.as_bytes(), &[("idempotency-key", "same")]);
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["accepted"], 3);
    let row = br#"{"v":1,"ts":"2015-07-15T00:00:00Z"}"#;
    let (status, b) = server.post_events("other", row, &[("idempotency-key", "same")]);
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        b["replayed"], false,
        "a key used on another stream is not a retry: {b}"
    );
    assert_eq!(b["accepted"], 1);
    assert_eq!(env.events("other"), 1);
}

/// The stream's table of remembered keys.
fn key_table(env: &Env) -> std::path::PathBuf {
    env.data_dir()
        .join("streams")
        .join("bid")
        .join("idempotency.jsonl")
}

#[test]
fn a_torn_key_record_does_not_cost_the_next_key() {
    let env = Env::new();
    env.create_bid_stream();
    let bids = env.generate_bids(100);
    let body = bids.join("\n");
    let mut server = Server::start(&env);
    let (status, _) = server.post_events("bid", body.as_bytes(), &[("idempotency-key", "k1")]);
    assert_eq!(status, 200);
    server.kill();
    drop(server);

    // A crash in the middle of writing some key's record leaves a partial line.
    let table = key_table(&env);
    let mut text = std::fs::read(&table).expect("the key table exists");
    text.extend_from_slice(br#"{"key":"torn","outcome":{"accep"#);
    std::fs::write(&table, text).expect("tear the table");

    let mut server = Server::start(&env);
    let (status, reply) = server.post_events("bid", body.as_bytes(), &[("idempotency-key", "k2")]);
    assert_eq!(
        (status, &reply["replayed"]),
        (200, &false.into()),
        "{reply}"
    );
    assert!(server.terminate().success());
    drop(server);
    assert_eq!(env.events("bid"), 200);

    let server = Server::start(&env);
    for key in ["k1", "k2"] {
        let (status, reply) =
            server.post_events("bid", body.as_bytes(), &[("idempotency-key", key)]);
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["replayed"], true, "{key} is remembered: {reply}");
    }
    assert_eq!(env.events("bid"), 200, "no retry applied twice");
}

#[test]
fn a_crash_after_the_append_but_before_the_key_record_does_not_apply_twice() {
    let env = Env::new();
    env.create_bid_stream();
    let body = env.generate_bids(100).join("\n");
    let mut server = Server::start(&env);
    let (status, _) = server.post_events("bid", body.as_bytes(), &[("idempotency-key", "k1")]);
    assert_eq!(status, 200);
    server.kill();
    drop(server);
    // The state a crash leaves when it lands after the frames were synced and before the
    // key's record was written: the events are in the log, the key is not in the table.
    std::fs::write(key_table(&env), b"").expect("empty the key table");
    assert_eq!(env.events("bid"), 100);

    let server = Server::start(&env);
    let (status, reply) = server.post_events("bid", body.as_bytes(), &[("idempotency-key", "k1")]);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        env.events("bid"),
        100,
        "the retry is not applied a second time: {reply}"
    );
}

#[test]
fn a_key_reused_with_a_different_body_is_refused() {
    let env = Env::new();
    env.create_bid_stream();
    let bids = env.generate_bids(20);
    let server = Server::start(&env);
    let first = bids[..10].join("\n");
    let (status, reply) = server.post_events("bid", first.as_bytes(), &[("idempotency-key", "k")]);
    assert_eq!(status, 200, "{reply}");
    let other = bids[10..].join("\n");
    let (status, reply) = server.post_events("bid", other.as_bytes(), &[("idempotency-key", "k")]);
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["error"]["code"], "idempotency_key_reused", "{reply}");
    assert_eq!(env.events("bid"), 10, "the second body was not applied");
    let (status, reply) = server.post_events("bid", first.as_bytes(), &[("idempotency-key", "k")]);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["replayed"], true,
        "the same body still replays: {reply}"
    );
}
