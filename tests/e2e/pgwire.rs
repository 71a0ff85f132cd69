//! The PostgreSQL endpoint (`serve --pg-listen`) through real clients: `psql` reads a view
//! with data, a stream, `SHOW VIEWS`, `freshet_freshness`, runs DDL, gets SQLSTATEs for bad
//! SQL on a connection that stays usable, and logs in with API tokens whose roles hold; the
//! Python driver psycopg binds parameters (extended protocol) and reads typed values, in
//! text and binary; a connection over the limit is refused until one closes. Without `psql` or psycopg these tests skip, except under `FRESHET_CI`,
//! where they fail.

use crate::e2e::auth::create_token;
use crate::e2e::http_views::{STREAM, VIEW, bid, results_until};
use crate::e2e::support::{Env, Run, START_DEADLINE, Server, run_bounded};
use freshet_types::limits::PG_CONNECTIONS_MAX;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

/// Longest a running server may take to see a token created meanwhile.
const RELOAD_DEADLINE: Duration = Duration::from_secs(10);

/// `psql`, or `None` (said loudly; a failure under `FRESHET_CI`).
fn psql_or_skip() -> Option<&'static str> {
    let found = Command::new("psql")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("FRESHET_CI").is_none(),
            "psql is missing in CI: install PostgreSQL's client (postgresql-client)"
        );
        eprintln!("SKIPPED: no psql on PATH");
        return None;
    }
    Some("psql")
}

/// A Python with psycopg: `FRESHET_TEST_PYTHON` (set by `.ci/run`), else `python3`.
fn python_or_skip() -> Option<String> {
    let python = std::env::var("FRESHET_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import psycopg"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let why = format!(
        "{python} lacks psycopg: run scripts/install-python-test-deps.sh and set \
         FRESHET_TEST_PYTHON to the path it prints"
    );
    assert!(std::env::var_os("FRESHET_CI").is_none(), "{why}");
    eprintln!("SKIPPED: {why}");
    None
}

/// `freshet serve` on loopback with its PostgreSQL endpoint on a free port.
fn serve(env: &Env) -> (Server, u16) {
    let server = Server::start_command(
        env,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--pg-listen",
            "127.0.0.1:0",
        ],
        START_DEADLINE,
    );
    let pg = server
        .pg_addr
        .clone()
        .expect("the server prints its PostgreSQL address");
    let port = pg
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p != 0)
        .unwrap_or_else(|| panic!("a bound loopback port: {pg}"));
    (server, port)
}

/// Runs psql against `port` with `password` (none: `-w`, never prompt), each of `commands`
/// as one `-c`, unaligned and tuples only, stopping at the first error.
fn psql(port: u16, password: Option<&str>, commands: &[&str]) -> Run {
    let port = port.to_string();
    let mut args = vec![
        "-X",
        "-w",
        "-A",
        "-t",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "anyone",
        "-d",
        "anydb",
        "-v",
        "ON_ERROR_STOP=1",
        "-v",
        "VERBOSITY=verbose",
    ];
    for c in commands {
        args.extend(["-c", c]);
    }
    let mut cmd = Command::new("psql");
    cmd.args(&args)
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .env("PGCONNECT_TIMEOUT", "10");
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    run_bounded(cmd, &args)
}

fn ok(run: &Run) -> &str {
    assert_eq!(run.code, Some(0), "psql failed: {run:?}");
    run.stdout.trim_end()
}

/// Creates the `bid` stream and the `counts` view (over HTTP, with `token`), ingests bids
/// and waits until the view reflects all of them.
fn with_results(server: &Server, token: Option<&str>) {
    let answer = server.call(
        "POST",
        "/v1/sql",
        token,
        &json!({ "sql": format!("{STREAM}; {VIEW}") }).to_string(),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    // Windows [0,10) and [10,20) of auction 1, [0,10) of auction 2; the bid at 40 s moves
    // the watermark past them.
    let lines = [
        bid(1, 5, 1),
        bid(1, 9, 3),
        bid(2, 4, 8),
        bid(1, 2, 12),
        bid(3, 1, 40),
    ];
    let answer = server.call("POST", "/v1/streams/bid/events", token, &lines.join("\n"));
    assert_eq!(answer.status, 200, "{answer:?}");
    if token.is_none() {
        results_until(server, "", |p| {
            p["freshness"]["lag_events"] == 0 && p["rows"].as_array().is_some_and(|r| r.len() == 3)
        });
    }
}

#[test]
fn psql_reads_views_streams_and_freshness_and_runs_ddl() {
    let Some(_) = psql_or_skip() else { return };
    let env = Env::new();
    let (mut server, port) = serve(&env);
    with_results(&server, None);

    // A view with data, and its typed columns.
    let rows = psql(
        port,
        None,
        &["SELECT auction, window_start, bids, \"top\" FROM counts ORDER BY auction, window_start"],
    );
    assert_eq!(
        ok(&rows),
        "1|2015-07-15 00:00:00|2|9\n1|2015-07-15 00:00:10|1|2\n2|2015-07-15 00:00:00|1|4"
    );
    // A stream, read from the log.
    let stream = psql(port, None, &["SELECT count(*), sum(price) FROM bid"]);
    assert_eq!(ok(&stream), "5|21");
    // Freshet's statements.
    assert_eq!(ok(&psql(port, None, &["SHOW VIEWS"])), "counts");
    assert_eq!(ok(&psql(port, None, &["SHOW STREAMS"])), "bid");
    let described = psql(port, None, &["DESCRIBE VIEW counts"]);
    assert!(
        ok(&described).contains("results table \"counts\""),
        "{described:?}"
    );
    // Freshness, as /v1/status shows it.
    let freshness = psql(
        port,
        None,
        &[
            "SELECT view, mode, lag_events, staleness_ms, sla_ms, sla_met, \
           committed_at IS NOT NULL, watermark FROM freshet_freshness",
        ],
    );
    assert_eq!(
        ok(&freshness),
        "counts|streaming|0|0|200|t|t|2015-07-15T00:00:36.000Z"
    );
    let (_, status) = server.get("/v1/status");
    assert_eq!(
        status["views"][0]["freshness"]["watermark"],
        "2015-07-15T00:00:36.000Z"
    );

    // DDL, with PostgreSQL's command tags.
    let ddl = psql(
        port,
        None,
        &[
            "CREATE VIEW tops WITH (freshness = '1s') AS SELECT auction, MAX(price) AS top \
             FROM bid GROUP BY auction",
            "DROP VIEW tops",
            "CREATE STREAM IF NOT EXISTS bid (a BIGINT NOT NULL, t TIMESTAMP NOT NULL, \
             WATERMARK FOR t AS t)",
        ],
    );
    assert_eq!(ok(&ddl), "CREATE VIEW\nDROP VIEW\nCREATE STREAM", "{ddl:?}");
    assert!(
        ddl.stderr.contains("already exists"),
        "a notice says so: {ddl:?}"
    );
    assert_eq!(ok(&psql(port, None, &["SHOW VIEWS"])), "counts");

    // Bad SQL: an error with its SQLSTATE; the connection stays usable.
    for (sql, state) in [
        ("SELEC 1", "42601"),
        ("SELECT * FROM nowhere", "42P01"),
        ("SELECT nothing FROM counts", "42703"),
        ("CREATE TABLE t (a INT)", "0A000"),
        ("INSERT INTO counts VALUES (1)", "0A000"),
    ] {
        let failed = psql(port, None, &[sql]);
        assert_eq!(failed.code, Some(1), "{sql}: {failed:?}");
        assert!(
            failed.stderr.contains(&format!("ERROR:  {state}:")),
            "{sql}: SQLSTATE {state}: {failed:?}"
        );
    }
    let mut script = Command::new("psql");
    let port_text = port.to_string();
    let args = [
        "-X",
        "-w",
        "-A",
        "-t",
        "-h",
        "127.0.0.1",
        "-p",
        &port_text,
        "-U",
        "u",
        "-d",
        "d",
        "-v",
        "VERBOSITY=verbose",
        "-f",
        "-",
    ];
    script.args(args).env("PGCONNECT_TIMEOUT", "10");
    let script_path = env.write(
        "script.sql",
        "SELECT * FROM nowhere;\nSELECT 41 + 1;\nSELECT count(*) FROM counts;\n",
    );
    script.stdin(std::fs::File::open(&script_path).expect("the script"));
    let session = run_bounded(script, &args);
    assert!(session.stderr.contains("42P01"), "{session:?}");
    assert_eq!(session.stdout.trim_end(), "42\n3", "{session:?}");

    // SIGTERM stops the server, the PostgreSQL endpoint with it.
    let status = server.terminate();
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    let gone = psql(port, None, &["SELECT 1"]);
    assert_eq!(gone.code, Some(2), "nothing listens any more: {gone:?}");
}

#[test]
fn psql_logs_in_with_an_api_token_whose_role_holds() {
    let Some(_) = psql_or_skip() else { return };
    let env = Env::new();
    let admin = create_token(&env, "admin", Some("pg-admin"));
    let query = create_token(&env, "query", Some("pg-query"));
    let (server, port) = serve(&env);
    with_results(&server, Some(&admin));

    // No password, or one that is not a token: refused.
    let none = psql(port, None, &["SELECT 1"]);
    assert_eq!(none.code, Some(2), "{none:?}");
    assert!(none.stderr.contains("no password supplied"), "{none:?}");
    let wrong = psql(port, Some("fsh_not-a-token"), &["SELECT 1"]);
    assert_eq!(wrong.code, Some(2), "{wrong:?}");
    assert!(
        wrong.stderr.contains("password authentication failed"),
        "{wrong:?}"
    );

    // A query token reads, and may not run DDL.
    assert_eq!(
        ok(&psql(port, Some(&query), &["SELECT count(*) FROM bid"])),
        "5"
    );
    assert_eq!(ok(&psql(port, Some(&query), &["SHOW VIEWS"])), "counts");
    let refused = psql(port, Some(&query), &["DROP VIEW counts"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(refused.stderr.contains("ERROR:  42501:"), "{refused:?}");
    assert!(refused.stderr.contains("role admin"), "{refused:?}");
    let copy = psql(port, Some(&query), &["COPY counts TO '/tmp/never.csv'"]);
    assert!(copy.stderr.contains("ERROR:  42501:"), "{copy:?}");
    // Nor write a file by hiding a COPY or an INSERT under EXPLAIN ANALYZE (issue 20).
    let target = env.path("explained.csv");
    for sql in [
        format!("EXPLAIN ANALYZE COPY (SELECT 1) TO '{}'", target.display()),
        "EXPLAIN ANALYZE INSERT INTO bid SELECT * FROM bid".to_string(),
    ] {
        let hidden = psql(port, Some(&query), &[&sql]);
        assert!(hidden.stderr.contains("ERROR:  0A000:"), "{hidden:?}");
        assert!(
            hidden.stderr.contains("only queries run here"),
            "{hidden:?}"
        );
    }
    assert!(!target.exists(), "EXPLAIN ANALYZE COPY wrote {target:?}");
    // The admin token may.
    let dropped = psql(port, Some(&admin), &["DROP VIEW counts"]);
    assert_eq!(ok(&dropped), "DROP VIEW");

    // A token created while the server runs is accepted without a restart.
    let late = create_token(&env, "query", Some("pg-late"));
    let deadline = Instant::now() + RELOAD_DEADLINE;
    loop {
        let run = psql(port, Some(&late), &["SHOW STREAMS"]);
        if run.code == Some(0) {
            assert_eq!(run.stdout.trim_end(), "bid");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new token was never accepted: {run:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A revoked one no longer is.
    env.ok(&["token", "revoke", "pg-query"]);
    let deadline = Instant::now() + RELOAD_DEADLINE;
    loop {
        let run = psql(port, Some(&query), &["SELECT 1"]);
        if run.code == Some(2) {
            assert!(
                run.stderr.contains("password authentication failed"),
                "{run:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked token still works: {run:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the psycopg script checks: a parameterised query (extended protocol) in text and in
/// binary, typed values, an error's SQLSTATE and the connection after it.
const PSYCOPG_SCRIPT: &str = r#"
import datetime, decimal, json, sys
import psycopg

def plain(v):
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    return v

out = {}
with psycopg.connect(host="127.0.0.1", port=int(sys.argv[1]), user="anyone",
                     dbname="anydb", connect_timeout=10) as conn:
    cur = conn.cursor()
    cur.execute(
        'SELECT auction, bids, window_start, CAST("top" AS DOUBLE) / bids AS mean '
        'FROM counts WHERE auction = %s ORDER BY window_start', (1,))
    rows = cur.fetchall()
    out["columns"] = [d.name for d in cur.description]
    out["types"] = [type(v).__name__ for v in rows[0]]
    out["rows"] = [[plain(v) for v in r] for r in rows]
    try:
        cur.execute("SELECT * FROM nowhere WHERE auction = %s", (1,))
    except psycopg.Error as e:
        out["error"] = e.sqlstate
    conn.rollback()
    cur.execute("SELECT count(*) FROM bid WHERE price > %s AND date_time < %s",
                (4, datetime.datetime(2015, 7, 15, 0, 0, 30)))
    out["after_error"] = cur.fetchone()[0]
    cur = conn.cursor(binary=True)
    cur.execute(
        'SELECT auction, "top", window_start, CAST("top" AS DECIMAL(10, 2)) AS d, '
        '"top" > %s AS big FROM counts WHERE auction = %s', (3, 2))
    row = cur.fetchone()
    out["binary_types"] = [type(v).__name__ for v in row]
    out["binary"] = [plain(v) for v in row]
print(json.dumps(out))
"#;

#[test]
fn psycopg_binds_parameters_and_reads_typed_values() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let env = Env::new();
    let (server, port) = serve(&env);
    with_results(&server, None);
    let mut cmd = Command::new(&python);
    let port = port.to_string();
    let args = ["-c", PSYCOPG_SCRIPT, &port];
    cmd.args(args);
    let run = run_bounded(cmd, &args);
    assert_eq!(run.code, Some(0), "{run:?}\n{}", server.log_text());
    let out: Value = serde_json::from_str(run.stdout.trim()).expect("the script prints JSON");
    assert_eq!(
        out["columns"],
        json!(["auction", "bids", "window_start", "mean"]),
        "{out}"
    );
    assert_eq!(
        out["types"],
        json!(["int", "int", "datetime", "float"]),
        "{out}"
    );
    assert_eq!(
        out["rows"],
        json!([
            [1, 2, "2015-07-15T00:00:00", 4.5],
            [1, 1, "2015-07-15T00:00:10", 2.0]
        ]),
        "{out}"
    );
    assert_eq!(out["error"], "42P01", "{out}");
    assert_eq!(out["after_error"], 2, "bids over 4 before 00:00:30: {out}");
    assert_eq!(
        out["binary_types"],
        json!(["int", "int", "datetime", "Decimal", "bool"]),
        "{out}"
    );
    assert_eq!(
        out["binary"],
        json!([2, 4, "2015-07-15T00:00:00", "4.00", true]),
        "{out}"
    );
}

#[test]
fn connections_over_the_limit_are_refused_until_one_closes() {
    let Some(_) = psql_or_skip() else { return };
    let env = Env::new();
    let (server, port) = serve(&env);
    // Connections that never finish their startup hold their slots.
    let held: Vec<std::net::TcpStream> = (0..PG_CONNECTIONS_MAX)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    let until = |what: &str, done: &dyn Fn(&Run) -> bool| {
        let deadline = Instant::now() + RELOAD_DEADLINE;
        loop {
            let run = psql(port, None, &["SELECT 1"]);
            if done(&run) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {run:?}\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    until("one more is refused", &|run| {
        run.code == Some(2) && run.stderr.contains("too many clients")
    });
    drop(held);
    until("a closed connection frees its slot", &|run| {
        run.code == Some(0) && run.stdout.trim() == "1"
    });
}
