//! Helpers shared by the end-to-end tests: a scratch data directory per test, running the
//! `freshet` binary with a deadline, a guard around a running `freshet serve`, and the
//! mixed good-and-bad input every ingest test feeds in (with the rejects it must produce).
//!
//! Every wait here is bounded: commands get [`COMMAND_DEADLINE`], the server gets
//! [`START_DEADLINE`] to print its address and a bounded number of `/healthz` polls.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_freshet");

/// Longest a single CLI invocation may take before the test fails.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// Longest `freshet serve` may take to print the address it listens on.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// Longest the server may take to exit after SIGTERM.
pub const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// `limits::ROW_BYTES_MAX`, restated: the binary's limits are what is under test.
pub const ROW_BYTES_MAX: usize = 1024 * 1024;

/// `limits::DLQ_RAW_BYTES_MAX`, restated.
pub const DLQ_RAW_BYTES_MAX: usize = 64 * 1024;

/// `limits::HTTP_BODY_BYTES_MAX`, restated.
pub const HTTP_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// `limits::HTTP_ROWS_PER_REQUEST_MAX`, restated.
pub const HTTP_ROWS_PER_REQUEST_MAX: usize = 100_000;

/// The Nexmark bid stream as the tests declare it.
pub fn bid_ddl() -> String {
    freshet_nexmark::EventKind::Bid.ddl(4)
}

/// The bid columns in declaration order (the CSV header).
pub const BID_COLUMNS: [&str; 7] = [
    "auction",
    "bidder",
    "price",
    "channel",
    "url",
    "date_time",
    "extra",
];

/// What one finished CLI invocation did.
#[derive(Debug)]
pub struct Run {
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Everything printed on stdout.
    pub stdout: String,
    /// Everything printed on stderr.
    pub stderr: String,
}

impl Run {
    /// Stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A scratch directory holding a data directory (`data/`) and the test's input files.
/// Deleted when dropped.
pub struct Env {
    tmp: tempfile::TempDir,
    logs: AtomicU32,
    /// `FRESHET_STORE` for every command, if not the data directory's SQLite file.
    store: Option<String>,
}

impl Env {
    /// A fresh, empty environment.
    pub fn new() -> Env {
        Env {
            tmp: tempfile::Builder::new()
                .prefix("freshet-e2e-")
                .tempdir()
                .expect("create a temporary directory"),
            logs: AtomicU32::new(0),
            store: None,
        }
    }

    /// A fresh environment whose commands keep results in `store` (`FRESHET_STORE`).
    pub fn with_store(store: String) -> Env {
        Env {
            store: Some(store),
            ..Env::new()
        }
    }

    /// The data directory every command of this environment uses.
    pub fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// A path for a scratch file (outside the data directory).
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `freshet --data-dir <data> <args>`, isolated from the caller's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .env_remove("FRESHET_DATA_DIR")
            .env("FRESHET_LOG", "warn")
            .stdin(Stdio::null());
        self.isolate_store(&mut cmd);
        isolate_tokens(&mut cmd);
        cmd
    }

    /// Like [`Env::command`], run by bash after `prelude` (shell commands such as
    /// `ulimit -f 2048`), which then `exec`s the binary in its place.
    pub fn command_in_shell(&self, prelude: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(format!("{prelude}; exec \"$0\" \"$@\""))
            .arg(BIN)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .env_remove("FRESHET_DATA_DIR")
            .env("FRESHET_LOG", "warn")
            .stdin(Stdio::null());
        self.isolate_store(&mut cmd);
        isolate_tokens(&mut cmd);
        cmd
    }

    fn isolate_store(&self, cmd: &mut Command) {
        match &self.store {
            Some(store) => cmd.env("FRESHET_STORE", store),
            None => cmd.env_remove("FRESHET_STORE"),
        };
    }

    /// Run `freshet <args>` to completion (bounded by [`COMMAND_DEADLINE`]).
    pub fn run(&self, args: &[&str]) -> Run {
        run_bounded(self.command(args), args)
    }

    /// Like [`Env::run`] with environment variables set for the command.
    pub fn run_with_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        cmd.envs(vars.iter().copied());
        run_bounded(cmd, args)
    }

    /// Run `freshet <args>`, which must succeed.
    fn run_ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code,
            Some(0),
            "freshet {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
        run
    }

    /// Run `freshet <args>`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.run_ok(args).stdout
    }

    /// Run `freshet <args> --json`, which must succeed; its output.
    pub fn ok_json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        self.run_ok(&args).json()
    }

    /// Names of the streams `freshet streams --json` lists.
    pub fn stream_names(&self) -> Vec<String> {
        self.ok_json(&["streams"])["streams"]
            .as_array()
            .expect("streams is an array")
            .iter()
            .map(|s| s["name"].as_str().expect("a name").to_string())
            .collect()
    }

    /// The entry of stream `name` in `freshet streams --json`.
    pub fn stream_info(&self, name: &str) -> Value {
        let all = self.ok_json(&["streams"]);
        all["streams"]
            .as_array()
            .expect("streams is an array")
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("stream {name} not listed: {all}"))
            .clone()
    }

    /// Events stream `name` holds, checked against the sum of its partitions' extents.
    pub fn events(&self, name: &str) -> u64 {
        let info = self.stream_info(name);
        let total = info["events"].as_u64().expect("events is a number");
        let by_partition: u64 = info["partition_info"]
            .as_array()
            .expect("partition_info is an array")
            .iter()
            .map(|p| p["end"].as_u64().expect("end") - p["start"].as_u64().expect("start"))
            .sum();
        assert_eq!(
            total, by_partition,
            "events disagrees with the partitions: {info}"
        );
        total
    }

    /// Rows in stream `name`'s dead-letter stream per `freshet streams --json`.
    pub fn dead_letter_count(&self, name: &str) -> u64 {
        self.stream_info(name)["dead_letters"]
            .as_u64()
            .expect("dead_letters is a number")
    }

    /// Every dead letter of stream `name` (`freshet dlq NAME --json`).
    pub fn dead_letters(&self, name: &str) -> Vec<Value> {
        let out = self.ok_json(&["dlq", name, "--limit", "10000"]);
        assert_eq!(out["stream"], name);
        out["dead_letters"]
            .as_array()
            .expect("dead_letters is an array")
            .clone()
    }

    /// Declare the bid stream.
    pub fn create_bid_stream(&self) {
        let out = self.ok(&["sql", &bid_ddl()]);
        assert_eq!(out.trim(), "CREATE STREAM bid");
    }

    /// `freshet log verify --json` must exit 0 and report every partition ok.
    pub fn assert_log_verifies(&self) {
        let run = self.run(&["log", "verify", "--json"]);
        assert_eq!(
            run.code,
            Some(0),
            "log verify failed\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
        let report = run.json();
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["problems"], serde_json::json!([]), "{report}");
        for p in report["partitions"].as_array().expect("partitions") {
            assert_eq!(p["ok"], true, "{report}");
        }
    }

    /// `n` Nexmark bids from the generator, one NDJSON line each (no newline).
    pub fn generate_bids(&self, n: u64) -> Vec<String> {
        let out = self.path("generated-bids.ndjson");
        let out_arg = out.to_str().expect("temporary paths are UTF-8");
        let n_arg = n.to_string();
        let printed = self.ok(&[
            "gen", "nexmark", "--events", &n_arg, "--only", "bid", "--out", out_arg,
        ]);
        assert!(printed.contains(&format!("bid {n})")), "{printed}");
        let text = std::fs::read_to_string(&out).expect("read the generated bids");
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        assert_eq!(
            lines.len() as u64,
            n,
            "the generator wrote {} lines",
            lines.len()
        );
        lines
    }

    /// Write `text` to a scratch file; its absolute path.
    pub fn write(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write a scratch file");
        path
    }

    /// A new file for a server's stderr.
    fn log_file(&self) -> (PathBuf, std::fs::File) {
        let n = self.logs.fetch_add(1, Ordering::Relaxed);
        let path = self.path(&format!("serve-{n}.log"));
        let file = std::fs::File::create(&path).expect("create a server log file");
        (path, file)
    }
}

/// API tokens come only from what a test sets: the caller's `FRESHET_TOKENS` (a server's)
/// and `FRESHET_TOKEN` (a client's) are not passed on.
fn isolate_tokens(cmd: &mut Command) {
    cmd.env_remove("FRESHET_TOKENS")
        .env_remove("FRESHET_TOKEN")
        .env_remove("FRESHET_TLS_CERT")
        .env_remove("FRESHET_TLS_KEY");
}

/// Run `cmd` with stdout and stderr captured, killing it after [`COMMAND_DEADLINE`]
/// (`args` name it in a failure).
pub fn run_bounded(mut cmd: Command, args: &[&str]) -> Run {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start freshet");
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let status = wait_bounded(&mut child, COMMAND_DEADLINE)
        .unwrap_or_else(|| panic!("freshet {args:?} did not finish within {COMMAND_DEADLINE:?}"));
    Run {
        code: status.code(),
        stdout: stdout.join().expect("the stdout reader does not panic"),
        stderr: stderr.join().expect("the stderr reader does not panic"),
    }
}

/// Read a pipe to its end on a thread (so a full pipe never blocks the child).
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Wait for `child` to exit for at most `deadline`; on timeout kill it and return None.
pub fn wait_bounded(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return Some(status);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// A running `freshet serve`, killed (SIGKILL) when dropped if still running.
pub struct Server {
    child: Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// `host:port` of its PostgreSQL endpoint, if it was given `--pg-listen`.
    pub pg_addr: Option<String>,
    log: PathBuf,
    agent: ureq::Agent,
}

impl Server {
    /// Start `freshet serve --listen 127.0.0.1:0` on `env`'s data directory, read the port
    /// from its first line of output and wait until `/healthz` answers.
    pub fn start(env: &Env) -> Server {
        Server::start_command(env, &["serve", "--listen", "127.0.0.1:0"], START_DEADLINE)
    }

    /// Start a command that serves (`serve`, `demo`) with `--listen 127.0.0.1:0` among
    /// `args`: wait up to `deadline` for its "freshet serving on" line, then for `/healthz`.
    pub fn start_command(env: &Env, args: &[&str], deadline: Duration) -> Server {
        Server::start_from(env, env.command(args), deadline)
    }

    /// Like [`Server::start_command`] for a command built by the caller (for example
    /// [`Env::command_in_shell`], to set resource limits first).
    pub fn start_from(env: &Env, mut command: Command, deadline: Duration) -> Server {
        let args = format!("{command:?}");
        let (log, log_file) = env.log_file();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start the serving command");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::sync_channel::<Option<(String, Option<String>)>>(1);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            // The PostgreSQL endpoint's line comes first, when there is one.
            let mut pg = None;
            let found = loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(n) if n > 0 => {
                        if let Some(addr) = line.strip_prefix("freshet PostgreSQL protocol on ") {
                            pg = Some(addr.trim().to_string());
                        }
                        if line.starts_with("freshet serving on ") {
                            break Some((line.clone(), pg));
                        }
                    }
                    _ => break None,
                }
            };
            let _ = tx.send(found);
            // Keep draining so the server can never block on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut server = Server {
            child,
            addr: String::new(),
            pg_addr: None,
            log,
            agent,
        };
        let line = match rx.recv_timeout(deadline) {
            Ok(Some((line, pg))) => {
                server.pg_addr = pg;
                line
            }
            Ok(None) => panic!("{args} exited before serving:\n{}", server.log_text()),
            Err(_) => panic!(
                "{args} did not start serving within {deadline:?}:\n{}",
                server.log_text()
            ),
        };
        let line = line.trim();
        let (https, addr) = match line.strip_prefix("freshet serving on https://") {
            Some(addr) => (true, addr),
            None => (
                false,
                line.strip_prefix("freshet serving on http://")
                    .unwrap_or_else(|| panic!("unexpected serving line: {line:?}")),
            ),
        };
        server.addr = addr.to_string();
        assert!(
            server.addr.starts_with("127.0.0.1:") && !server.addr.ends_with(":0"),
            "the server must print the port it bound, not the one asked for: {line:?}"
        );
        // The helpers here speak plaintext; an HTTPS server's test waits with its own
        // client (tls.rs).
        if !https {
            server.wait_healthy();
        }
        server
    }

    fn wait_healthy(&self) {
        const TRIES: u32 = 200;
        for _ in 0..TRIES {
            if let Ok(mut r) = self.agent.get(&self.url("/healthz")).call()
                && r.status() == 200
            {
                let body: Value = r.body_mut().read_json().expect("healthz answers JSON");
                assert_eq!(body["status"], "ok", "{body}");
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "/healthz did not answer 200 after {TRIES} tries:\n{}",
            self.log_text()
        );
    }

    /// What the server wrote on stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET `path`: status and JSON body.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let mut r = self
            .agent
            .get(&self.url(path))
            .call()
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}\n{}", self.log_text()));
        let status = r.status().as_u16();
        (status, r.body_mut().read_json().expect("a JSON body"))
    }

    /// GET `path` expecting 200 and a text body.
    pub fn get_text(&self, path: &str) -> String {
        let mut r = self
            .agent
            .get(&self.url(path))
            .call()
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}\n{}", self.log_text()));
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.body_mut().read_to_string().expect("a text body")
    }

    /// POST a JSON body to `path`: status and JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut r = self
            .agent
            .post(&self.url(path))
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("POST {path} failed: {e}\n{}", self.log_text()));
        let status = r.status().as_u16();
        (status, r.body_mut().read_json().expect("a JSON body"))
    }

    /// POST an NDJSON body to `/v1/streams/{stream}/events` with extra headers; the status
    /// and JSON body, or the transport error.
    pub fn try_post_events(
        &self,
        stream: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value), ureq::Error> {
        let mut req = self
            .agent
            .post(&self.url(&format!("/v1/streams/{stream}/events")))
            .header("content-type", "application/x-ndjson");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut r = req.send(body)?;
        let status = r.status().as_u16();
        let json = r.body_mut().read_json()?;
        Ok((status, json))
    }

    /// Like [`Server::try_post_events`]; a transport error fails the test.
    pub fn post_events(&self, stream: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, Value) {
        self.try_post_events(stream, body, headers)
            .unwrap_or_else(|e| panic!("POST to {stream} failed: {e}\n{}", self.log_text()))
    }

    /// A request to `path` with `Authorization: Bearer <token>` if `token` is given (and a
    /// JSON `body` for a POST): what came back.
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> Answer {
        let url = self.url(path);
        let auth = token.map(|t| format!("Bearer {t}"));
        let with = |mut r: ureq::RequestBuilder<ureq::typestate::WithoutBody>| {
            if let Some(a) = &auth {
                r = r.header("authorization", a);
            }
            r.call()
        };
        let sent = match method {
            "GET" => with(self.agent.get(&url)),
            "DELETE" => with(self.agent.delete(&url)),
            "POST" => {
                let mut r = self.agent.post(&url);
                if let Some(a) = &auth {
                    r = r.header("authorization", a);
                }
                r.send(body.as_bytes())
            }
            other => panic!("no helper for {other}"),
        };
        let mut r =
            sent.unwrap_or_else(|e| panic!("{method} {path} failed: {e}\n{}", self.log_text()));
        let header = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().expect("an ASCII header").to_string())
        };
        let challenge = header("www-authenticate");
        let retry_after = header("retry-after");
        let text = r.body_mut().read_to_string().expect("a text body");
        Answer {
            status: r.status().as_u16(),
            challenge,
            retry_after,
            text,
        }
    }

    /// Send SIGTERM and wait (bounded) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        wait_bounded(&mut self.child, STOP_DEADLINE).unwrap_or_else(|| {
            panic!(
                "freshet serve did not exit within {STOP_DEADLINE:?} of SIGTERM:\n{}",
                self.log_text()
            )
        })
    }

    /// The exit status if the process has exited by itself.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll the server")
    }

    /// SIGKILL: no chance to sync or clean up.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What one [`Server::call`] got back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// `WWW-Authenticate`, if present.
    pub challenge: Option<String>,
    /// `Retry-After`, if present.
    pub retry_after: Option<String>,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// The body parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    /// The `error.code` of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code: {} {}", self.status, self.text))
            .to_string()
    }
}

/// A rejected row the tests expect: where, why, and its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// 1-based line (or Parquet row) in the input.
    pub line: u64,
    /// The stable reason code.
    pub code: &'static str,
    /// The input line as written (for Parquet, empty: raw rows are re-rendered).
    pub raw: String,
}

/// Mixed input and what ingesting it must do.
pub struct Mixed {
    /// The input text.
    pub text: String,
    /// Rows that must be accepted.
    pub accepted: u64,
    /// Rows that must be rejected, in line order.
    pub rejects: Vec<Expected>,
}

/// A bid object with the given raw JSON values (each already JSON).
pub fn bid_json(auction: &str, bidder: &str, price: &str, date_time: &str, extra: &str) -> String {
    format!(
        r#"{{"auction":{auction},"bidder":{bidder},"price":{price},"channel":"Google","url":"https://e.x/a","date_time":{date_time},"extra":{extra}}}"#
    )
}

const T0: &str = r#""2015-07-15T00:00:00.000Z""#;

/// Interleave `bad` among `good`, each bad row after an evenly spaced good row; also a
/// blank line (skipped, but counted in line numbers). The last line has no newline.
fn interleave(
    good: &[String],
    bad: Vec<(&'static str, String)>,
    first_line: u64,
    header: Option<&str>,
) -> Mixed {
    let mut text = String::new();
    if let Some(h) = header {
        text.push_str(h);
        text.push('\n');
    }
    let mut line = first_line;
    let mut rejects = Vec::new();
    let mut bad = bad.into_iter().peekable();
    let slots = bad.len() as u64 + 1;
    let mut lines: Vec<String> = Vec::new();
    for (i, g) in good.iter().enumerate() {
        lines.push(g.clone());
        line += 1;
        if i == 2 {
            lines.push(String::new());
            line += 1;
        }
        let due = (rejects.len() as u64 + 1) * good.len() as u64 / slots;
        if i as u64 + 1 == due
            && let Some((code, raw)) = bad.next()
        {
            rejects.push(Expected {
                line,
                code,
                raw: raw.clone(),
            });
            lines.push(raw);
            line += 1;
        }
    }
    assert!(bad.peek().is_none(), "every bad row was placed");
    text.push_str(&lines.join("\n"));
    Mixed {
        text,
        accepted: good.len() as u64,
        rejects,
    }
}

/// NDJSON: the `good` lines, two boundary-time rows that must be accepted, and one row of
/// every kind of bad input: bad JSON, wrong types (a text that is no number, and JSON values
/// of the wrong kind), NULL in a NOT NULL column, a missing NOT NULL field, a row over
/// `ROW_BYTES_MAX`, event times after 2999 and before 1900, and two objects on one line.
pub fn mixed_ndjson(good: &[String]) -> Mixed {
    let mut good = good.to_vec();
    good.push(bid_json(
        "7",
        "8",
        "9",
        r#""1900-01-01T00:00:00.000Z""#,
        r#""min""#,
    ));
    good.push(bid_json(
        "7",
        "8",
        "9",
        r#""2999-12-31T23:59:59.999Z""#,
        r#""max""#,
    ));
    let huge = format!(r#""{}""#, "h".repeat(ROW_BYTES_MAX));
    let bad = vec![
        (
            "bad_json",
            r#"{"auction":1,"bidder":2,"price":"#.to_string(),
        ),
        ("wrong_type", bid_json(r#""x""#, "2", "3", T0, r#""""#)),
        // A JSON value of another kind than the column's: still a wrong type, not bad JSON.
        ("wrong_type", bid_json("1", "true", "3", T0, "5")),
        ("null_in_not_null", bid_json("1", "null", "3", T0, r#""""#)),
        (
            "null_in_not_null",
            format!(
                r#"{{"auction":1,"bidder":2,"channel":"c","url":"u","date_time":{T0},"extra":""}}"#
            ),
        ),
        ("row_too_large", bid_json("1", "2", "3", T0, &huge)),
        (
            "timestamp_out_of_range",
            bid_json("1", "2", "3", r#""3000-01-01T00:00:00.000Z""#, r#""""#),
        ),
        (
            "timestamp_out_of_range",
            bid_json("1", "2", "3", r#""1899-12-31T23:59:59.999Z""#, r#""""#),
        ),
        (
            "bad_json",
            format!(
                "{}{}",
                bid_json("1", "2", "3", T0, r#""""#),
                bid_json("4", "5", "6", T0, r#""""#)
            ),
        ),
    ];
    interleave(&good, bad, 1, None)
}

/// One CSV field, quoted when it must be.
fn csv_field(v: &Value) -> String {
    match v {
        Value::String(s) if s.contains([',', '"', '\n', '\r']) => {
            format!("\"{}\"", s.replace('"', "\"\""))
        }
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The same rows as [`mixed_ndjson`] as CSV with a header row, with the CSV forms of the bad
/// rows: a record with too few fields, two wrong types, an empty NOT NULL field, another one,
/// a row over `ROW_BYTES_MAX`, event times after 2999 and before 1900, and two records on one
/// line.
pub fn mixed_csv(good_ndjson: &[String]) -> Mixed {
    let mut good: Vec<String> = good_ndjson
        .iter()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("generated bids are JSON");
            BID_COLUMNS
                .iter()
                .map(|c| csv_field(&v[*c]))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    good.push("7,8,9,Google,u,1900-01-01T00:00:00.000Z,min".into());
    good.push("7,8,9,Google,u,2999-12-31T23:59:59.999Z,max".into());
    let row = |auction: &str, bidder: &str, price: &str, time: &str, extra: &str| {
        format!("{auction},{bidder},{price},Google,\"https://e.x/a,b\",{time},{extra}")
    };
    let t0 = "2015-07-15T00:00:00.000Z";
    let bad = vec![
        ("bad_csv", "1,2,3".to_string()),
        ("wrong_type", row("x", "2", "3", t0, "")),
        ("wrong_type", row("1", "true", "3", t0, "5")),
        ("null_in_not_null", row("1", "", "3", t0, "e")),
        ("null_in_not_null", row("1", "2", "", t0, "e")),
        (
            "row_too_large",
            row("1", "2", "3", t0, &"h".repeat(ROW_BYTES_MAX)),
        ),
        (
            "timestamp_out_of_range",
            row("1", "2", "3", "3000-01-01T00:00:00.000Z", "e"),
        ),
        (
            "timestamp_out_of_range",
            row("1", "2", "3", "1899-12-31T23:59:59.999Z", "e"),
        ),
        (
            "bad_csv",
            format!(
                "{},{}",
                row("1", "2", "3", t0, "e"),
                row("4", "5", "6", t0, "e")
            ),
        ),
    ];
    interleave(&good, bad, 2, Some(&BID_COLUMNS.join(",")))
}

/// Whether a rejected row listed in a response or summary is `expected`.
pub fn assert_rejects_listed(listed: &Value, expected: &[Expected]) {
    let listed = listed.as_array().expect("rejects is an array");
    let got: Vec<(u64, &str)> = listed
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().expect("line"),
                r["code"].as_str().expect("code"),
            )
        })
        .collect();
    let want: Vec<(u64, &str)> = expected.iter().map(|e| (e.line, e.code)).collect();
    assert_eq!(got, want, "rejects listed: {listed:?}");
    for r in listed {
        assert!(
            !r["reason"].as_str().expect("reason").is_empty(),
            "every reject has a reason: {r}"
        );
    }
}

/// Check dead letters against the expected rejects: code, line, source and raw bytes (cut at
/// `DLQ_RAW_BYTES_MAX` and marked truncated when longer).
pub fn assert_dead_letters(rows: &[Value], expected: &[Expected], source: &str) {
    assert_eq!(
        rows.len(),
        expected.len(),
        "dead letters: {:?}",
        rows.iter()
            .map(|r| (&r["line"], &r["code"]))
            .collect::<Vec<_>>()
    );
    for (i, (row, want)) in rows.iter().zip(expected).enumerate() {
        assert_eq!(
            row["offset"], i as u64,
            "dead-letter offsets are dense: {row}"
        );
        assert_eq!(row["line"], want.line, "line of {want:?}");
        assert_eq!(row["code"], want.code, "code at line {}", want.line);
        assert_eq!(row["source"], source, "source at line {}", want.line);
        assert!(
            !row["reason"].as_str().expect("reason").is_empty(),
            "reason at line {}",
            want.line
        );
        let raw = row["raw"].as_str().expect("raw");
        if want.raw.len() > DLQ_RAW_BYTES_MAX {
            assert_eq!(row["raw_truncated"], true, "line {}", want.line);
            assert_eq!(raw.len(), DLQ_RAW_BYTES_MAX, "line {}", want.line);
            assert_eq!(raw, &want.raw[..DLQ_RAW_BYTES_MAX], "line {}", want.line);
        } else {
            assert_eq!(row["raw_truncated"], false, "line {}", want.line);
            assert_eq!(raw, want.raw, "raw bytes of line {}", want.line);
        }
    }
}

/// The absolute path as the CLI prints it.
pub fn display(path: &Path) -> String {
    path.display().to_string()
}
