//! Durability: under the default `fsync = 'always'`, an event acknowledged with a 200 is on
//! disk, so it survives a SIGKILL of the server right after the response. Damage to a
//! segment is found by `log verify` (exit code 3) and refused by writers; a torn tail is not
//! damage.

use super::support::{Env, Server, mixed_ndjson};

#[test]
fn acknowledged_events_survive_sigkill() {
    let env = Env::new();
    env.create_bid_stream();
    let bids = env.generate_bids(3_000);
    let mut server = Server::start(&env);

    let mut acknowledged = 0u64;
    for (i, chunk) in bids.chunks(1_000).enumerate() {
        let body = chunk.join("\n");
        let (status, reply) = server.post_events(
            "bid",
            body.as_bytes(),
            &[("idempotency-key", &format!("k{i}"))],
        );
        assert_eq!(status, 200, "{reply}");
        acknowledged += reply["accepted"].as_u64().expect("accepted");
    }
    let mixed = mixed_ndjson(&bids[..100]);
    let (status, reply) = server.post_events("bid", mixed.text.as_bytes(), &[]);
    assert_eq!(status, 200, "{reply}");
    acknowledged += reply["accepted"].as_u64().expect("accepted");
    server.kill();
    assert_eq!(acknowledged, 3_000 + mixed.accepted);

    assert_eq!(
        env.events("bid"),
        acknowledged,
        "every acknowledged event is on disk"
    );
    assert_eq!(env.dead_letter_count("bid"), mixed.rejects.len() as u64);
    env.assert_log_verifies();

    // The restarted server recovers the stream, still knows the keys, and appends after
    // the acknowledged events.
    let mut server = Server::start(&env);
    let (status, reply) = server.post_events(
        "bid",
        bids[..1_000].join("\n").as_bytes(),
        &[("idempotency-key", "k0")],
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["replayed"], true, "{reply}");
    let (status, reply) = server.post_events("bid", bids[..10].join("\n").as_bytes(), &[]);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["accepted"], 10);
    let status = server.terminate();
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    assert_eq!(env.events("bid"), acknowledged + 10);
    env.assert_log_verifies();
}

/// The one segment file of partition `p` of stream `bid`.
fn segment_file(env: &Env, p: &str) -> std::path::PathBuf {
    let dir = env.data_dir().join("streams").join("bid").join(p);
    let logs: Vec<_> = std::fs::read_dir(&dir)
        .expect("the partition directory exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    assert_eq!(logs.len(), 1, "one segment in {}: {logs:?}", dir.display());
    logs.into_iter().next().expect("one segment")
}

#[test]
fn damage_is_reported_with_exit_3_and_refused() {
    let env = Env::new();
    env.create_bid_stream();
    let file = env.write("bids.ndjson", env.generate_bids(2_000).join("\n"));
    let path = file.to_str().expect("UTF-8 path");
    env.ok(&["ingest", "bid", path]);
    env.ok(&["ingest", "bid", path]);
    env.assert_log_verifies();

    // A torn tail (bytes of a write that never completed) is not damage: verify notes it,
    // and the next writer cuts it off.
    let torn = segment_file(&env, "1");
    let mut bytes = std::fs::read(&torn).expect("read the segment");
    bytes.extend_from_slice(&[0xAB; 37]);
    std::fs::write(&torn, &bytes).expect("append a torn tail");
    let run = env.run(&["log", "verify", "--json"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let notes = report["problems"].as_array().expect("problems");
    assert!(
        notes
            .iter()
            .any(|p| p["fatal"] == false && p["partition"] == "1"),
        "the torn tail is noted: {report}"
    );
    env.ok(&["ingest", "bid", path]);
    assert_eq!(env.events("bid"), 6_000);
    env.assert_log_verifies();

    // A flipped bit in the first of several frames is damage.
    let damaged = segment_file(&env, "0");
    let mut bytes = std::fs::read(&damaged).expect("read the segment");
    let at = bytes.len() / 6;
    bytes[at] ^= 0x01;
    std::fs::write(&damaged, &bytes).expect("flip a bit");
    for args in [&["log", "verify"][..], &["log", "verify", "bid"][..]] {
        let run = env.run(args);
        assert_eq!(
            run.code,
            Some(3),
            "{args:?}\n{}\n{}",
            run.stdout,
            run.stderr
        );
        assert!(run.stdout.contains("DAMAGE"), "{}", run.stdout);
    }
    let run = env.run(&["log", "verify", "--json"]);
    assert_eq!(run.code, Some(3));
    let report = run.json();
    assert_eq!(report["ok"], false);
    let fatal: Vec<&serde_json::Value> = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter(|p| p["fatal"] == true)
        .collect();
    assert_eq!(fatal.len(), 1, "{report}");
    assert_eq!(fatal[0]["partition"], "0");
    assert_eq!(fatal[0]["file"], damaged.display().to_string());

    // Writing refuses to open past the damage, naming the file.
    let run = env.run(&["ingest", "bid", path]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&damaged.display().to_string()),
        "the error names the damaged file: {}",
        run.stderr
    );
}
