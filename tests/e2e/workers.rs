//! `freshet worker`: three workers over the JetStream cluster of `FRESHET_TEST_NATS_URL`
//! and one PostgreSQL schema of `FRESHET_TEST_POSTGRES_URL` share a data directory's views.
//! The per-auction views split by partition (the stream is partitioned by auction), so
//! each runs as four tasks, spread over the workers; a view grouped otherwise runs whole.
//! Workers join (the tasks are divided again), one is SIGKILLed (its tasks are taken over)
//! and restarted, one is SIGSTOPped past its lease (its tasks are taken over, and once it
//! resumes its commits are refused and counted as fenced), every worker's PostgreSQL
//! sessions are terminated, a view is created while they run, and one stops cleanly (its
//! tasks handed over). Events keep arriving throughout. Afterwards `freshet run` finishes
//! every view as the workers divided it, and every view equals a batch recompute over
//! exactly the events ingested, with each event counted once. Also: workers killed at
//! random moments and at named commit points, a worker elsewhere following the catalog
//! `freshet sql` published to the store, and a NATS node killed under running workers.

use super::batch::reconcile_view;
use super::jetstream::{PrivateCluster, bid_on_jetstream, nats_url, unique_subject};
use super::support::{Env, Server};
use crate::pg::PgSchema;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The lease's time to live the workers run with: short, so that the test is quick.
const LEASE_TTL: &str = "2s";

/// How long the workers may take to settle after a change (a few lease times to live).
const SETTLE: Duration = Duration::from_secs(60);

/// Bids per ingest.
const BATCH: u64 = 2_000;

/// The bid stream's partitions: a per-auction view runs as this many tasks.
const PARTITIONS: usize = 4;

/// A view that does not split by partition (it groups by channel): one task.
const CHANNELS_DDL: &str = "CREATE VIEW channels WITH (freshness = '200ms') AS \
     SELECT channel, COUNT(*) AS bids FROM bid GROUP BY channel";

/// A per-auction window count with a window of `i + 5` seconds: views that differ, so that
/// a row written by the wrong view's task would show.
fn view_ddl(i: usize) -> String {
    format!(
        "CREATE VIEW hot_{i} WITH (freshness = '200ms') AS \
         SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS high \
         FROM TUMBLE(bid, date_time, INTERVAL '{}' SECOND) \
         GROUP BY auction, window_start, window_end",
        i + 5
    )
}

/// Rows that differ between view `hot_i` and the same query in batch, both ways.
fn differences(i: usize) -> String {
    format!(
        "WITH recomputed AS (\
         SELECT auction, window_start, COUNT(*) AS bids, MAX(price) AS high \
         FROM TUMBLE(bid, date_time, INTERVAL '{}' SECOND) GROUP BY auction, window_start), \
         stored AS (SELECT auction, window_start, bids, high FROM hot_{i}) \
         SELECT (SELECT count(*) FROM (SELECT * FROM stored EXCEPT SELECT * FROM recomputed) a) \
         + (SELECT count(*) FROM (SELECT * FROM recomputed EXCEPT SELECT * FROM stored) b) AS n",
        i + 5
    )
}

fn number(env: &Env, sql: &str) -> u64 {
    let csv = env.ok(&["query", sql, "--format", "csv"]);
    csv.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("one number from {sql}: {csv}"))
}

fn start_worker(env: &Env, id: &str) -> Server {
    Server::start_from(env, worker_command(env, id), Duration::from_secs(60))
}

fn worker_command(env: &Env, id: &str) -> std::process::Command {
    env.command(&[
        "worker",
        "--id",
        id,
        "--lease-ttl",
        LEASE_TTL,
        "--listen",
        "127.0.0.1:0",
    ])
}

fn status(worker: &Server) -> Value {
    let (code, body) = worker.get("/v1/status");
    assert_eq!(code, 200, "{body}");
    body
}

/// The tasks (`view/task`) each worker of `workers` runs, by its report.
fn held(workers: &[&Server]) -> Vec<Vec<String>> {
    workers
        .iter()
        .map(|w| {
            let mut tasks: Vec<String> = status(w)["views"]
                .as_array()
                .expect("views")
                .iter()
                .map(|v| {
                    format!(
                        "{}/{}",
                        v["view"].as_str().expect("a name"),
                        v["task"].as_str().expect("a task")
                    )
                })
                .collect();
            tasks.sort();
            tasks
        })
        .collect()
}

/// Waits until `workers` run `tasks` tasks between them, each a fair share at most, no
/// task twice; returns how long it took.
fn settle(workers: &[&Server], tasks: usize, what: &str) -> Duration {
    let each = tasks.div_ceil(workers.len());
    let started = Instant::now();
    loop {
        let held = held(workers);
        let mut all: Vec<&String> = held.iter().flatten().collect();
        let total = all.len();
        all.sort();
        all.dedup();
        if total == tasks && all.len() == tasks && held.iter().all(|h| h.len() <= each) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < SETTLE,
            "{what}: the workers did not settle on {tasks} tasks, at most {each} each: \
             {held:?}\n{}",
            workers
                .iter()
                .map(|w| w.log_text())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ingest(env: &Env, lines: &[String], n: usize) {
    let file = env.write(&format!("bids-{n}.ndjson"), lines.join("\n"));
    let summary = env.ok_json(&["ingest", "bid", file.to_str().expect("UTF-8 path")]);
    assert_eq!(summary["accepted"], lines.len() as u64, "{summary}");
}

fn signal(worker: &Server, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &worker.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name}");
}

#[test]
fn workers_share_views_take_over_lost_ones_and_fence_a_paused_one() {
    let Some(url) = nats_url() else { return };
    let Some(schema) = PgSchema::new("e2e_workers") else {
        return;
    };
    let env = Env::with_store(schema.store_url());
    env.ok(&["sql", &bid_on_jetstream(&url, &unique_subject("workers"))]);
    for i in 0..6 {
        env.ok(&["sql", &view_ddl(i)]);
    }
    env.ok(&["sql", CHANNELS_DDL]);
    let explained = env.ok(&["explain", "hot_0"]);
    assert!(
        explained.contains(&format!("by partition, {PARTITIONS} tasks")),
        "{explained}"
    );
    let lines = env.generate_bids(6 * BATCH);
    let mut batches = lines.chunks(BATCH as usize).map(<[String]>::to_vec);
    ingest(&env, &batches.next().expect("a batch"), 0);
    // Six views of four tasks, and one that runs whole.
    let tasks = |views: usize| views * PARTITIONS + 1;

    // Two workers divide the tasks; a third joins and takes a fair share.
    let w1 = start_worker(&env, "w1");
    let w2 = start_worker(&env, "w2");
    settle(&[&w1, &w2], tasks(6), "two workers");
    let handed = || -> u64 {
        [&w1, &w2]
            .iter()
            .map(|w| status(w)["views_handed_over"].as_u64().expect("a count"))
            .sum()
    };
    let before = handed();
    let mut w3 = start_worker(&env, "w3");
    settle(&[&w1, &w2, &w3], tasks(6), "a third worker joined");
    // The tasks held beyond the new bound (25 over 3 workers: 9 each at most) move: 7 at
    // least, as two workers held 25 (more only if a slow heartbeat made a worker look
    // lost for a moment).
    assert!(handed() - before >= 7, "the join moved a fair share");
    // A view's tasks run on several workers.
    let spread = held(&[&w1, &w2, &w3])
        .iter()
        .filter(|h| h.iter().any(|t| t.starts_with("hot_0/")))
        .count();
    assert!(spread >= 2, "hot_0's tasks run on {spread} worker(s)");
    // Each task is its own series in a worker's metrics, never two samples of one.
    let metrics = w1.get_text("/metrics");
    let samples: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("freshet_worker_view_lag_events{"))
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series))
        .collect();
    let mut distinct = samples.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        !samples.is_empty() && distinct.len() == samples.len(),
        "{metrics}"
    );
    assert!(metrics.contains("task=\"p"), "{metrics}");
    let listed = env.ok(&["status", "--workers"]);
    for id in ["w1", "w2", "w3", "hot_0", "hot_5", "p3", "channels"] {
        assert!(listed.contains(id), "{id} in\n{listed}");
    }

    // A view created while they run is divided among them.
    env.ok(&["sql", &view_ddl(6)]);
    ingest(&env, &batches.next().expect("a batch"), 1);
    settle(&[&w1, &w2, &w3], tasks(7), "a view was created");

    // SIGKILL: the others take its tasks over (its sessions close with it), and it comes
    // back under the same identity.
    let mut w1 = w1;
    w1.kill();
    let took = settle(&[&w2, &w3], tasks(7), "w1 was killed");
    eprintln!("tasks of a SIGKILLed worker taken over in {took:?}");
    let w1 = start_worker(&env, "w1");
    settle(&[&w1, &w2, &w3], tasks(7), "w1 restarted");

    // SIGSTOP past the lease: the others take its tasks over; once resumed, it finds
    // out, by a refused (fenced) commit or by its next look at the leases, and stops
    // those tasks.
    signal(&w2, "STOP");
    ingest(&env, &batches.next().expect("a batch"), 2);
    settle(&[&w1, &w3], tasks(7), "w2 was paused");
    signal(&w2, "CONT");
    ingest(&env, &batches.next().expect("a batch"), 3);
    let deadline = Instant::now() + SETTLE;
    let noticed = |s: &Value| {
        s["fenced_commits"].as_u64().unwrap_or(0) + s["leases_lost"].as_u64().unwrap_or(0)
    };
    while noticed(&status(&w2)) == 0 {
        assert!(
            Instant::now() < deadline,
            "the paused worker never noticed its views were taken: {}\n{}",
            status(&w2),
            w2.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    settle(&[&w1, &w2, &w3], tasks(7), "w2 resumed");

    // Every worker's PostgreSQL sessions terminated by the server.
    let names: Vec<String> = [&w1, &w2, &w3]
        .iter()
        .map(|w| format!("freshet[{}]", w.pid()))
        .collect();
    let terminated = schema
        .client()
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = ANY($1)",
            &[&names],
        )
        .expect("terminate the workers' sessions");
    assert!(terminated.len() >= 3, "every worker had sessions");
    ingest(&env, &batches.next().expect("a batch"), 4);
    settle(&[&w1, &w2, &w3], tasks(7), "sessions terminated");

    // A clean stop hands its tasks over.
    let code = w3.terminate();
    assert!(code.success(), "w3 stops cleanly: {}", w3.log_text());
    ingest(&env, &batches.next().expect("a batch"), 5);
    settle(&[&w1, &w2], tasks(7), "w3 stopped");
    let (mut w1, mut w2) = (w1, w2);
    assert!(w1.terminate().success(), "{}", w1.log_text());
    assert!(w2.terminate().success(), "{}", w2.log_text());

    // A query server answers for a view's tasks together: every partition's offsets, and
    // a watermark once every task has committed.
    let query = Server::start_command(
        &env,
        &["serve", "--role", "query", "--listen", "127.0.0.1:0"],
        Duration::from_secs(60),
    );
    let (code, page) = query.get("/v1/views/hot_0?limit=1");
    assert_eq!(code, 200, "{page}");
    let offsets = page["freshness"]["offsets"].as_array().expect("offsets");
    assert_eq!(offsets.len(), PARTITIONS, "{page}");
    assert!(page["freshness"]["watermark_ms"].is_i64(), "{page}");

    // The last events, each task of each view run to the end by `freshet run`, then
    // every view against batch, each event counted once.
    let drained = env.ok_json(&["run", "--drain", "--end-of-stream"]);
    let runners = drained["views"].as_array().expect("views");
    assert_eq!(runners.len(), tasks(7), "{drained}");
    let (code, page) = query.get("/v1/views/hot_0?limit=1");
    assert_eq!(code, 200, "{page}");
    assert_eq!(page["freshness"]["watermark"], "+infinity", "{page}");
    assert_eq!(page["freshness"]["lag_events"], 0, "{page}");
    let (_, listed) = query.get("/v1/status");
    let hot_0 = listed["views"]
        .as_array()
        .expect("views")
        .iter()
        .find(|v| v["name"] == "hot_0")
        .unwrap_or_else(|| panic!("hot_0 in {listed}"));
    assert_eq!(
        hot_0["stats"]["input_events"],
        6 * BATCH,
        "the tasks' counters added up: {hot_0}"
    );

    // A repair of a view run per partition holds every task's lease: a damaged row is
    // found and put right.
    let table = schema.table("hot_0");
    schema
        .client()
        .batch_execute(&format!(
            "UPDATE {table} SET bids = bids + 1 WHERE (auction, window_start) = \
             (SELECT auction, window_start FROM {table} ORDER BY 1, 2 LIMIT 1)"
        ))
        .expect("damage a row");
    let reconcile = |repair| reconcile_view(&env, "hot_0", repair);
    let (damaged, code) = reconcile(false);
    assert_eq!(
        (code, &damaged["mismatched"]),
        (Some(3), &Value::from(1)),
        "{damaged}"
    );
    let (_, code) = reconcile(true);
    assert_eq!(code, Some(0));
    let (after, code) = reconcile(false);
    assert_eq!(code, Some(0), "{after}");
    assert_eq!(
        number(&env, "SELECT sum(bids) FROM channels"),
        6 * BATCH,
        "channels counts every event once"
    );
    for i in 0..7 {
        assert_eq!(
            number(&env, &format!("SELECT sum(bids) FROM hot_{i}")),
            6 * BATCH,
            "hot_{i} counts every event once"
        );
        assert_eq!(number(&env, &differences(i)), 0, "hot_{i} equals batch");
    }
}

/// A small generator of the test's own choices, seeded from the clock (printed, so that a
/// failure can be replayed by setting `FRESHET_TEST_SEED`).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("FRESHET_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("FRESHET_TEST_SEED={seed}");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % n
    }
}

/// A worker started with `FRESHET_ABORT_AT=<point>`: it aborts itself there.
fn start_worker_aborting_at(env: &Env, id: &str, point: &str) -> Server {
    let mut command = worker_command(env, id);
    command.env("FRESHET_ABORT_AT", point);
    Server::start_from(env, command, Duration::from_secs(60))
}

#[test]
fn workers_killed_at_random_moments_and_at_commits_lose_and_double_nothing() {
    let Some(url) = nats_url() else { return };
    let Some(schema) = PgSchema::new("e2e_worker_kills") else {
        return;
    };
    let env = Env::with_store(schema.store_url());
    env.ok(&[
        "sql",
        &bid_on_jetstream(&url, &unique_subject("worker_kills")),
    ]);
    const VIEWS: usize = 6;
    const KILLS: usize = 20;
    for i in 0..VIEWS {
        env.ok(&["sql", &view_ddl(i)]);
    }
    let per_kill = 500;
    let lines = env.generate_bids((KILLS * per_kill) as u64);
    let mut rng = Rng::new();
    let mut workers: Vec<Server> = (0..3)
        .map(|i| start_worker(&env, &format!("k{i}")))
        .collect();
    for (kill, batch) in lines.chunks(per_kill).enumerate() {
        let victim = rng.below(3) as usize;
        let id = format!("k{victim}");
        match kill {
            // Named points: the victim restarts asking to abort just before its second
            // commit's transaction, or just after its second commit landed.
            0 | 1 => {
                let point = if kill == 0 {
                    "before_commit:2"
                } else {
                    "after_commit:2"
                };
                workers[victim].kill();
                workers[victim] = start_worker_aborting_at(&env, &id, point);
                ingest(&env, batch, kill);
                let deadline = Instant::now() + SETTLE;
                while workers[victim].try_exit().is_none() {
                    assert!(
                        Instant::now() < deadline,
                        "{id} never reached {point}:\n{}",
                        workers[victim].log_text()
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            _ => {
                ingest(&env, batch, kill);
                std::thread::sleep(Duration::from_millis(rng.below(1500)));
                workers[victim].kill();
            }
        }
        workers[victim] = start_worker(&env, &id);
    }
    let refs: Vec<&Server> = workers.iter().collect();
    settle(&refs, VIEWS * PARTITIONS, "after the kills");
    for w in &mut workers {
        assert!(w.terminate().success(), "{}", w.log_text());
    }
    env.ok(&["run", "--drain", "--end-of-stream"]);
    for i in 0..VIEWS {
        assert_eq!(
            number(&env, &format!("SELECT sum(bids) FROM hot_{i}")),
            (KILLS * per_kill) as u64,
            "hot_{i} counts every event once"
        );
        assert_eq!(number(&env, &differences(i)), 0, "hot_{i} equals batch");
    }
}

/// Ingests `lines`, retrying while the NATS cluster cannot take them (a node was just
/// killed and its streams elect new leaders).
fn ingest_retrying(env: &Env, lines: &[String], n: usize) {
    let file = env.write(&format!("bids-{n}.ndjson"), lines.join("\n"));
    let path = file.to_str().expect("UTF-8 path");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let run = env.run(&["ingest", "bid", path, "--json"]);
        if run.code == Some(0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ingest {n} kept failing:\n{}",
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The events each view of `workers` has processed, by view: its tasks' added up.
fn processed(workers: &[&Server]) -> Vec<(String, u64)> {
    let mut views = std::collections::BTreeMap::new();
    for w in workers {
        for v in status(w)["views"].as_array().expect("views") {
            *views
                .entry(v["view"].as_str().expect("a name").to_owned())
                .or_insert(0) += v["input_events"].as_u64().expect("input_events");
        }
    }
    views.into_iter().collect()
}

#[test]
fn a_worker_on_another_machine_follows_the_catalog_published_to_the_store() {
    let Some(url) = nats_url() else { return };
    let Some(schema) = PgSchema::new("e2e_worker_catalog") else {
        return;
    };
    let env = Env::with_store(schema.store_url());
    // Another machine: the same store, a data directory of its own that holds nothing.
    let far = Env::with_store(schema.store_url());
    let far_args = [
        "worker",
        "--id",
        "far",
        "--lease-ttl",
        LEASE_TTL,
        "--listen",
        "127.0.0.1:0",
    ];
    let nothing = far.run(&far_args);
    assert_ne!(nothing.code, Some(0), "no catalog anywhere");
    assert!(
        nothing.stderr.contains("no streams to run"),
        "{}",
        nothing.stderr
    );

    env.ok(&["sql", &bid_on_jetstream(&url, &unique_subject("catalog"))]);
    env.ok(&["sql", &view_ddl(0)]);
    let worker = Server::start_from(&far, far.command(&far_args), Duration::from_secs(60));
    settle(&[&worker], PARTITIONS, "the published views");
    let lines = env.generate_bids(BATCH);
    ingest(&env, &lines, 0);
    // Declared while it runs: it follows the store's copy.
    env.ok(&["sql", CHANNELS_DDL]);
    settle(&[&worker], PARTITIONS + 1, "a view created elsewhere");
    env.ok(&["sql", "DROP VIEW hot_0"]);
    settle(&[&worker], 1, "a view dropped elsewhere");
    let deadline = Instant::now() + SETTLE;
    while processed(&[&worker]) != [("channels".to_owned(), BATCH)] {
        assert!(
            Instant::now() < deadline,
            "{:?}\n{}",
            processed(&[&worker]),
            worker.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut worker = worker;
    assert!(worker.terminate().success(), "{}", worker.log_text());
    assert_eq!(number(&env, "SELECT sum(bids) FROM channels"), BATCH);
}

#[test]
fn workers_go_on_while_a_nats_node_is_killed_and_restarted() {
    if nats_url().is_none() {
        return;
    }
    let Some(schema) = PgSchema::new("e2e_worker_nats_kill") else {
        return;
    };
    let cluster = PrivateCluster::start();
    let env = Env::with_store(schema.store_url());
    env.ok(&[
        "sql",
        &bid_on_jetstream(&cluster.urls, &unique_subject("worker_nats_kill")),
    ]);
    const VIEWS: usize = 3;
    for i in 0..VIEWS {
        env.ok(&["sql", &view_ddl(i)]);
    }
    let lines = env.generate_bids(6 * BATCH);
    let workers = [start_worker(&env, "n0"), start_worker(&env, "n1")];
    let refs: Vec<&Server> = workers.iter().collect();
    settle(&refs, VIEWS * PARTITIONS, "at start");
    for (n, batch) in lines.chunks(BATCH as usize).enumerate() {
        // The node is killed while the workers read and commit what came before, and
        // restarted two batches later.
        match n {
            2 => {
                cluster.script(&["kill", "1"]);
            }
            4 => {
                cluster.script(&["restart", "1"]);
            }
            _ => {}
        }
        ingest_retrying(&env, batch, n);
        std::thread::sleep(Duration::from_millis(300));
    }
    // A failed ingest that was retried may have kept part of its rows: the log holds
    // every acknowledged event, and what the views must count is what it holds.
    let events = number(&env, "SELECT count(*) FROM bid");
    assert!(events >= lines.len() as u64, "{events} events in the log");
    let started = Instant::now();
    loop {
        let seen = processed(&refs);
        if seen.len() == VIEWS && seen.iter().all(|(_, n)| *n == events) {
            break;
        }
        assert!(
            started.elapsed() < SETTLE,
            "the workers did not read all {events} events after the node came back: \
             {seen:?}\n{}",
            refs.iter()
                .map(|w| w.log_text())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for mut w in workers {
        assert!(w.terminate().success(), "{}", w.log_text());
    }
    env.ok(&["run", "--drain", "--end-of-stream"]);
    for i in 0..VIEWS {
        assert_eq!(
            number(&env, &format!("SELECT sum(bids) FROM hot_{i}")),
            events,
            "hot_{i} counts every event once"
        );
        assert_eq!(number(&env, &differences(i)), 0, "hot_{i} equals batch");
    }
}
