//! The PostgreSQL store over TLS and its bounded pool, through the real binary (issue 19).
//!
//! TLS runs against a private PostgreSQL server each test starts for itself on a free
//! loopback port, with TLS on, a certificate the test makes, password authentication, and
//! `pg_hba.conf` accepting only TLS connections (`hostssl`; `hostnossl ... reject`). The
//! machine's shared server is never reconfigured. Covered: `verify-full` with the right
//! root certificate writes a view's results and reads them back; `require` works without
//! one; a wrong root, a wrong host name and `disable` are refused with a clear error; a
//! wrong password too; and no password is ever printed, by any command.
//!
//! The pool runs against the shared server of `FRESHET_TEST_POSTGRES_URL`: 200 concurrent
//! HTTP readers against a server whose pool holds 4 connections never see it hold more,
//! and every answer is a 200 or a clean 503 `store_busy`.
//!
//! Without the PostgreSQL binaries, or without root (to run them as `postgres`), the TLS
//! tests print a loud SKIPPED line and pass, except under `FRESHET_CI`, where they fail.

use crate::e2e::certs::{Ca, Leaf};
use crate::e2e::http_views::{STREAM, VIEW, bid};
use crate::e2e::support::{Env, Run, Server};
use crate::pg::PgSchema;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest the private server may take to accept connections.
const PG_START_DEADLINE: Duration = Duration::from_secs(60);

/// The private server's password: it must never appear in anything Freshet prints.
const PASSWORD: &str = "pw-Zq8-never-printed";

/// The directory of the newest PostgreSQL server binaries installed (15 or newer).
fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (version >= 15 && bin.join("postgres").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Says loudly why the test does not run, or fails under `FRESHET_CI`.
fn skip(why: &str) {
    assert!(
        std::env::var_os("FRESHET_CI").is_none(),
        "{why}; CI runs the PostgreSQL TLS tests"
    );
    eprintln!("SKIPPED: {why}, so PostgreSQL over TLS is not tested");
}

/// A PostgreSQL server of the test's own, with TLS on; stopped when dropped.
struct PrivatePg {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn as_postgres(bin: &Path, program: &str) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"])
        .arg(bin.join(program))
        .stdin(Stdio::null());
    cmd
}

fn ok(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chown_postgres(path: &Path) {
    let mut cmd = Command::new("chown");
    cmd.args(["-R", "postgres:postgres"]).arg(path);
    ok(cmd, "chown to postgres");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl PrivatePg {
    /// Starts a server presenting `leaf`; `None` (said loudly) if it cannot run here.
    fn start(leaf: &Leaf) -> Option<PrivatePg> {
        let Some(bin) = pg_bin() else {
            skip("no PostgreSQL 15+ server binaries under /usr/lib/postgresql");
            return None;
        };
        if !is_root() {
            skip("the tests are not running as root, so cannot run PostgreSQL as postgres");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("freshet-pg-tls-")
            .tempdir()
            .expect("a temporary directory");
        let data = dir.path().join("data");
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, PASSWORD).expect("write the password file");
        chown_postgres(dir.path());
        let mut initdb = as_postgres(&bin, "initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "freshet", "--auth=scram-sha-256", "--no-sync"])
            .args(["-E", "UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", password_file.display()));
        ok(initdb, "initdb");
        std::fs::write(data.join("server.crt"), &leaf.cert).expect("write the certificate");
        std::fs::write(data.join("server.key"), &leaf.key).expect("write the key");
        let port = free_port();
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        use std::io::Write;
        write!(
            conf,
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\nssl = on\n\
             ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             fsync = off\nmax_connections = 40\n",
            dir.path().display()
        )
        .expect("write postgresql.conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all scram-sha-256\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("write pg_hba.conf");
        chown_postgres(dir.path());
        let mut chmod = Command::new("chmod");
        chmod.arg("600").arg(data.join("server.key"));
        ok(chmod, "chmod the key");
        let log = dir.path().join("postgres.log");
        let log_file = std::fs::File::create(&log).expect("create the server log");
        let child = as_postgres(&bin, "postgres")
            .arg("-D")
            .arg(&data)
            .stdout(log_file.try_clone().expect("clone the log"))
            .stderr(log_file)
            .spawn()
            .expect("start postgres");
        let server = PrivatePg {
            bin,
            data,
            port,
            child,
            log,
            _dir: dir,
        };
        server.wait_ready();
        Some(server)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + PG_START_DEADLINE;
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private PostgreSQL never became ready:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A store URL for this server: `host` as the client names it (connecting to
    /// 127.0.0.1 whatever it is), then `params`.
    fn url(&self, host: &str, params: &str) -> String {
        format!(
            "postgres://freshet:{PASSWORD}@{host}:{}/postgres?hostaddr=127.0.0.1&\
             application_name=freshet_tls_test&{params}",
            self.port
        )
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let mut stop = as_postgres(&self.bin, "pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = stop.status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `args` in `env` and checks that nothing it printed holds the password.
fn run(env: &Env, args: &[&str]) -> Run {
    let run = env.run(args);
    for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains(PASSWORD),
            "freshet {args:?} printed the password on {what}:\n{text}"
        );
    }
    run
}

fn ok_json(env: &Env, args: &[&str]) -> serde_json::Value {
    let run = run(env, args);
    assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
    run.json()
}

/// A stream, a view and 30 bids in 3 auctions, drained into the store of `env`.
fn write_results(env: &Env) {
    for sql in [STREAM, VIEW] {
        let done = run(env, &["sql", sql]);
        assert_eq!(done.code, Some(0), "{done:?}");
    }
    let events: Vec<String> = (0..30).map(|i| bid(i % 3, 10 + i, i as u32)).collect();
    let file = env.write("bids.ndjson", events.join("\n"));
    let ingested = run(env, &["ingest", "bid", file.to_str().expect("UTF-8 path")]);
    assert_eq!(ingested.code, Some(0), "{ingested:?}");
    let drained = run(
        env,
        &["run", "--drain", "--end-of-stream", "--view", "counts"],
    );
    assert_eq!(drained.code, Some(0), "{drained:?}");
}

/// The bids counted per row of `counts`, summed.
fn counted(env: &Env) -> i64 {
    let page = ok_json(env, &["results", "counts", "--json", "--limit", "1000"]);
    page["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("rows: {page}"))
        .iter()
        .map(|row| row["bids"].as_i64().expect("a count"))
        .sum()
}

/// A command that must fail to reach the store: its error, which must name the cause.
fn refused(env: &Env, expected: &[&str]) -> String {
    let run = run(env, &["results", "counts", "--json"]);
    assert_ne!(run.code, Some(0), "{run:?}");
    for text in expected {
        assert!(
            run.stderr.contains(text),
            "the error names {text:?}: {}",
            run.stderr
        );
    }
    run.stderr
}

#[test]
fn pg_tls_verify_full_writes_and_reads_results_and_require_works() {
    let ca = Ca::new("pg test CA");
    let Some(pg) = PrivatePg::start(&ca.issue(&["localhost"])) else {
        return;
    };
    let scratch = Env::new();
    let root = scratch.write("root.pem", ca.pem());
    let root = root.to_str().expect("UTF-8 path");
    let verified = Env::with_store(pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={root}&schema=tls"),
    ));
    write_results(&verified);
    assert_eq!(counted(&verified), 30, "every bid counted once");

    // The same results, read over `require` (encrypted, unverified), and over `verify-ca`
    // (the chain only: the host name 127.0.0.1 is not in the certificate).
    for params in [
        "sslmode=require&schema=tls".to_owned(),
        format!("sslmode=verify-ca&sslrootcert={root}&schema=tls"),
    ] {
        let reader = Env::with_store(pg.url("127.0.0.1", &params));
        assert_eq!(counted(&reader), 30, "{params}");
    }
    // The default, `prefer`, takes TLS when offered.
    let preferred = Env::with_store(pg.url("127.0.0.1", "schema=tls"));
    assert_eq!(counted(&preferred), 30);
}

#[test]
fn pg_tls_refuses_a_wrong_root_a_wrong_host_plaintext_and_a_wrong_password() {
    let ca = Ca::new("pg test CA");
    let Some(pg) = PrivatePg::start(&ca.issue(&["localhost"])) else {
        return;
    };
    let scratch = Env::new();
    let root = scratch.write("root.pem", ca.pem());
    let root = root.to_str().expect("UTF-8 path");
    let other = scratch.write("other.pem", Ca::new("another CA").pem());
    let other = other.to_str().expect("UTF-8 path");

    let wrong_root = Env::with_store(pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={other}"),
    ));
    refused(
        &wrong_root,
        &[
            "sslmode=verify-full",
            "invalid peer certificate",
            "UnknownIssuer",
        ],
    );

    let wrong_host = Env::with_store(pg.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ));
    refused(
        &wrong_host,
        &[
            "sslmode=verify-full",
            "invalid peer certificate",
            "not valid for name",
        ],
    );

    let plaintext = Env::with_store(pg.url("127.0.0.1", "sslmode=disable"));
    refused(&plaintext, &["sslmode=disable", "no encryption"]);

    let without_root = Env::with_store(pg.url("localhost", "sslmode=verify-full"));
    refused(&without_root, &["sslrootcert"]);

    let bad_password = Env::with_store(
        pg.url("127.0.0.1", "sslmode=require")
            .replace(PASSWORD, "pw-wrong-Zq8-not-printed"),
    );
    let error = refused(&bad_password, &["password authentication failed"]);
    assert!(!error.contains("pw-wrong-Zq8-not-printed"), "{error}");

    // The password is not in what a running server prints either (its log at debug).
    let env = Env::with_store(pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={root}&password={PASSWORD}"),
    ));
    let mut command = env.command(&["serve", "--listen", "127.0.0.1:0"]);
    command.env("FRESHET_LOG", "debug");
    let mut server = Server::start_from(&env, command, crate::e2e::support::START_DEADLINE);
    let (status, created) = server.post_json("/v1/sql", &json!({ "sql": STREAM }));
    assert_eq!(status, 200, "{created}");
    let (status, created) = server.post_json("/v1/sql", &json!({ "sql": VIEW }));
    assert_eq!(status, 200, "{created}");
    let (status, answer) = server.get("/v1/status");
    assert_eq!(status, 200, "{answer}");
    assert!(!answer.to_string().contains(PASSWORD), "{answer}");
    let status_command = run(
        &env,
        &["status", "--url", &format!("http://{}", server.addr)],
    );
    assert_eq!(status_command.code, Some(0), "{status_command:?}");
    server.terminate();
    let log = server.log_text();
    assert!(log.contains("result store opened"), "{log}");
    assert!(
        !log.contains(PASSWORD),
        "the server printed the password:\n{log}"
    );
}

#[test]
fn pg_pool_bound_holds_under_200_concurrent_readers() {
    const POOL_MAX: i64 = 4;
    const READERS: usize = 200;
    let Some(schema) = PgSchema::new("e2e_pool") else {
        return;
    };
    let application = format!("freshet_pool_{}", std::process::id());
    let env = Env::with_store(format!(
        "{}&pool_max={POOL_MAX}&application_name={application}",
        schema.store_url()
    ));
    let server = Server::start(&env);
    let sql = format!("{STREAM}; {VIEW}");
    let (status, created) = server.post_json("/v1/sql", &json!({ "sql": sql }));
    assert_eq!(status, 200, "{created}");
    let events: Vec<String> = (0..30).map(|i| bid(i % 3, 10 + i, i as u32)).collect();
    let (status, ingested) = server.post_events("bid", events.join("\n").as_bytes(), &[]);
    assert_eq!(status, 200, "{ingested}");
    crate::e2e::http_views::results_until(&server, "", |page| {
        page["rows"].as_array().is_some_and(|rows| !rows.is_empty())
    });

    let done = AtomicBool::new(false);
    let held_max = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut client = schema.client();
            let mut max = 0i64;
            while !done.load(Ordering::SeqCst) {
                let held: i64 = client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                        &[&application],
                    )
                    .expect("count the server's connections")
                    .get(0);
                max = max.max(held);
                std::thread::sleep(Duration::from_millis(5));
            }
            max
        });
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                scope.spawn(|| {
                    (0..3)
                        .map(|_| server.call("GET", "/v1/views/counts/results", None, ""))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let answers: Vec<_> = readers
            .into_iter()
            .flat_map(|r| r.join().expect("a reader"))
            .collect();
        done.store(true, Ordering::SeqCst);
        let mut ok = 0;
        for answer in &answers {
            match answer.status {
                200 => ok += 1,
                503 => {
                    assert_eq!(answer.code(), "store_busy", "{answer:?}");
                    assert!(answer.retry_after.is_some(), "{answer:?}");
                }
                _ => panic!("neither 200 nor a clean 503: {answer:?}"),
            }
        }
        assert!(ok > 0, "some readers got results");
        sampler.join().expect("the sampler")
    });
    assert!(held_max > 0, "the sampler saw the server's connections");
    // Readers share POOL_MAX; the view's writer and the DDL writer have their own.
    let writers = 2;
    assert!(
        held_max <= POOL_MAX + writers,
        "the server held {held_max} connections; its readers' pool allows {POOL_MAX}, \
         besides {writers} writers"
    );
}
