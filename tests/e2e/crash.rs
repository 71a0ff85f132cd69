//! Exactly-once through crashes: `freshet run` is killed with SIGKILL at random moments while
//! its views work through millions of Nexmark events, and restarted each time. The final
//! results must equal, row for row, those of the same views run once without interruption.
//!
//! The same data directory holds both: `crash_*` views (killed and restarted) and `ref_*`
//! views with the same SQL (drained in one go). Each kill is checked to leave committed
//! progress that never goes backwards.

use super::support::Env;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Nexmark events generated (about 92% are bids).
const EVENTS: u64 = 3_000_000;

/// SIGKILLs before the final, uninterrupted drain.
const KILLS: u32 = 20;

/// Per-auction hopping counts (each bid in five windows) and sessions per bidder: windowed
/// state of two shapes, each committed every 50 ms. (The golden pipelines restore cascades
/// and joins from checkpoints; here the point is many crashes over much data.)
pub fn views(prefix: &str) -> String {
    format!(
        "CREATE VIEW {prefix}_counts WITH (freshness = '200ms') AS \
         SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS top \
         FROM HOP(bid, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) \
         GROUP BY auction, window_start, window_end; \
         CREATE VIEW {prefix}_sessions WITH (freshness = '200ms') AS \
         SELECT bidder, window_start, window_end, COUNT(*) AS bids, SUM(price) AS spent \
         FROM SESSION(bid, date_time, INTERVAL '2' SECOND) \
         GROUP BY bidder, window_start, window_end"
    )
}

/// Drains the `ref_*` views (same SQL, never killed) to the end of the streams.
pub fn drain_reference(env: &Env) {
    env.ok(&[
        "run",
        "--drain",
        "--end-of-stream",
        "--view",
        "ref_counts",
        "--view",
        "ref_sessions",
    ]);
}

/// A small deterministic generator for kill delays (xorshift64*), seeded per run.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn db(env: &Env) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        env.data_dir().join("results.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open results.db read-only")
}

/// Committed input events of the crash views (sum of next offsets), 0 before any commit.
fn crash_progress(env: &Env) -> i64 {
    db(env)
        .query_row(
            "SELECT coalesce(sum(next_offset), 0) FROM freshet_progress \
             WHERE view LIKE 'crash\\_%' ESCAPE '\\'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
}

/// Every row of a view's results table, all columns but `_updated_at`, in key order.
fn table(env: &Env, view: &str) -> Vec<String> {
    let conn = db(env);
    let columns: Vec<String> = conn
        .prepare(&format!("SELECT * FROM \"{view}\" LIMIT 0"))
        .expect("the results table exists")
        .column_names()
        .filter(|c| *c != "_updated_at")
        .map(|c| format!("quote(\"{c}\")"))
        .collect();
    let list = columns.join(" || '|' || ");
    let mut stmt = conn
        .prepare(&format!("SELECT {list} FROM \"{view}\" ORDER BY 1"))
        .expect("select the rows");
    let mut rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|r| r.expect("a row"))
        .collect();
    rows.sort();
    rows
}

#[test]
fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    let env = Env::new();
    let events = EVENTS.to_string();
    env.ok(&["gen", "nexmark", "--events", &events, "--to-streams"]);
    env.ok(&["sql", &views("ref")]);
    env.ok(&["sql", &views("crash")]);
    crash_and_compare(&env, &["counts", "sessions"], KILLS);
}

/// Views whose results lose rows as they go, each committed every 50 ms: a top 3 per
/// auction (a row pushed out is deleted), an unbounded count kept only while even (a group
/// deleted and written again at every other bid), and sessions written as provisional
/// rows while they grow (the row under the old bounds deleted).
fn changelog_views(prefix: &str) -> String {
    format!(
        "CREATE VIEW {prefix}_top WITH (freshness = '200ms') AS \
         SELECT auction, bidder, price, rn FROM (SELECT *, ROW_NUMBER() OVER \
         (PARTITION BY auction ORDER BY price DESC) AS rn FROM bid) WHERE rn <= 3; \
         CREATE VIEW {prefix}_even WITH (freshness = '200ms') AS \
         SELECT auction, COUNT(*) AS bids FROM bid GROUP BY auction HAVING COUNT(*) % 2 = 0; \
         CREATE VIEW {prefix}_live WITH (freshness = '200ms', emit = 'on_update', \
         emit_interval = '100ms') AS SELECT bidder, window_start, window_end, COUNT(*) AS bids \
         FROM SESSION(bid, date_time, INTERVAL '2' SECOND) \
         GROUP BY bidder, window_start, window_end"
    )
}

/// Issue 16: deletions are part of the commit, so a SIGKILL at any moment neither leaves a
/// row that should have gone nor loses one that should stay.
#[test]
fn issue_16_deletions_are_exactly_once_under_sigkill() {
    let env = Env::new();
    // As many events as the test above: fewer let the views catch up before most kills.
    let events = EVENTS.to_string();
    env.ok(&["gen", "nexmark", "--events", &events, "--to-streams"]);
    env.ok(&["sql", &changelog_views("ref")]);
    env.ok(&["sql", &changelog_views("crash")]);
    crash_and_compare(&env, &["top", "even", "live"], KILLS / 2);
}

/// Kills `freshet run` of the `crash_<shape>` views `kills` times at random moments, then
/// drains them and the `ref_<shape>` views (same SQL, never killed) to the end of the
/// streams and compares them row for row.
fn crash_and_compare(env: &Env, shapes: &[&str], kills: u32) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
        | 1;
    eprintln!("kill delays seeded with {seed}");
    let mut rng = Rng(seed);
    let views =
        |prefix: &str| -> Vec<String> { shapes.iter().map(|s| format!("{prefix}_{s}")).collect() };
    let crash_views = views("crash");
    let run_args: Vec<&str> = std::iter::once("run")
        .chain(crash_views.iter().flat_map(|v| ["--view", v.as_str()]))
        .collect();

    // Each crash view reads every bid.
    let total = shapes.len() as i64 * env.events("bid") as i64;
    let mut last = 0i64;
    let mut mid_run_kills = 0u32;
    let started = Instant::now();
    for kill in 0..kills {
        let mut child = env
            .command(&run_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start freshet run");
        std::thread::sleep(Duration::from_millis(100 + rng.below(900)));
        child.kill().expect("SIGKILL freshet run");
        child.wait().expect("reap freshet run");
        let progress = crash_progress(env);
        assert!(
            progress >= last,
            "kill {kill}: committed progress went back from {last} to {progress}"
        );
        if progress < total {
            mid_run_kills += 1;
        }
        last = progress;
    }
    eprintln!(
        "{kills} kills in {:?}; {mid_run_kills} before the views caught up; \
         {last} of {total} input events committed",
        started.elapsed()
    );
    assert!(
        mid_run_kills >= kills / 2,
        "most kills must land while the views work: only {mid_run_kills} of {kills} did"
    );

    let drain = |views: &[String]| {
        let args: Vec<&str> = ["run", "--drain", "--end-of-stream"]
            .into_iter()
            .chain(views.iter().flat_map(|v| ["--view", v.as_str()]))
            .collect();
        env.ok(&args);
    };
    drain(&crash_views);
    drain(&views("ref"));
    for shape in shapes {
        let crashed = table(env, &format!("crash_{shape}"));
        let reference = table(env, &format!("ref_{shape}"));
        assert!(!reference.is_empty(), "ref_{shape} has rows");
        assert_eq!(crashed.len(), reference.len(), "row count of {shape}");
        for (i, (c, r)) in crashed.iter().zip(&reference).enumerate() {
            assert_eq!(c, r, "{shape}: row {i} differs after crashes");
        }
    }
}
