//! API tokens through the real binary (issue 19): `freshet token create | list | revoke`,
//! and `serve` requiring a token once one exists: each role reaches its routes and gets 403
//! elsewhere, a missing or wrong token gets 401 with a JSON body and a `WWW-Authenticate`
//! challenge, the open routes stay open, a revoked token stops working on a running server,
//! which stays closed when its last token goes, `FRESHET_TOKENS` works, a query-only server
//! enforces the same tokens, clients send `FRESHET_TOKEN`, `demo` feeds itself with a token
//! of its own, and a server without tokens refuses a non-loopback address.

use crate::e2e::http_views::{STREAM, VIEW, bid};
use crate::e2e::support::{
    Answer, COMMAND_DEADLINE, Env, START_DEADLINE, Server, display, run_bounded, wait_bounded,
};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Longest a running server may take to apply a `token create` or `token revoke` (it looks
/// at the token file once a second).
const RELOAD_DEADLINE: Duration = Duration::from_secs(10);

/// `freshet token create --role ROLE [--name NAME]`: the token, its last line of output.
pub fn create_token(env: &Env, role: &str, name: Option<&str>) -> String {
    let mut args = vec!["token", "create", "--role", role];
    if let Some(name) = name {
        args.extend(["--name", name]);
    }
    let run = env.run(&args);
    assert_eq!(run.code, Some(0), "{run:?}");
    let token = run.stdout.lines().last().expect("a last line").to_string();
    assert!(
        token.starts_with("fsh_"),
        "the last line is the token: {run:?}"
    );
    token
}

/// A 401 `unauthorized` with a JSON body and a Bearer challenge.
fn assert_unauthorized(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 401, "{what}: {answer:?}");
    assert_eq!(answer.code(), "unauthorized", "{what}: {answer:?}");
    assert!(
        !answer.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{what}: {answer:?}"
    );
    let challenge = answer.challenge.as_deref().unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{what}: {answer:?}");
}

/// A 403 `forbidden` whose message names the role needed.
fn assert_forbidden(answer: &Answer, needed: &str, what: &str) {
    assert_eq!(answer.status, 403, "{what}: {answer:?}");
    assert_eq!(answer.code(), "forbidden", "{what}: {answer:?}");
    let message = answer.json()["error"]["message"].to_string();
    assert!(
        message.contains(&format!("role {needed}")),
        "{what}: the role needed is named: {message}"
    );
}

/// Poll `probe` until it returns true, failing after [`RELOAD_DEADLINE`].
fn eventually(server: &Server, what: &str, probe: impl Fn() -> bool) {
    let deadline = Instant::now() + RELOAD_DEADLINE;
    while !probe() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {RELOAD_DEADLINE:?}:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The stream and the view of `http_views`, created with `admin`.
fn create_stream_and_view(server: &Server, admin: &str) {
    let sql = json!({ "sql": format!("{STREAM}; {VIEW}") }).to_string();
    let answer = server.call("POST", "/v1/sql", Some(admin), &sql);
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[test]
fn issue_19_each_role_reaches_its_routes_and_gets_403_for_the_rest() {
    let env = Env::new();
    let admin = create_token(&env, "admin", None);
    let ingest = create_token(&env, "ingest", None);
    let query = create_token(&env, "query", None);
    let server = Server::start(&env);

    // admin: DDL. ingest and query: not.
    create_stream_and_view(&server, &admin);
    let sql = json!({"sql": "SHOW STREAMS"}).to_string();
    assert_forbidden(
        &server.call("POST", "/v1/sql", Some(&ingest), &sql),
        "admin",
        "ingest token on /v1/sql",
    );
    assert_forbidden(
        &server.call("POST", "/v1/sql", Some(&query), &sql),
        "admin",
        "query token on /v1/sql",
    );

    // ingest and admin: events. query: not.
    let events = "/v1/streams/bid/events";
    for (token, second) in [(&ingest, 1), (&admin, 2)] {
        let answer = server.call("POST", events, Some(token), &bid(7, 100, second));
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.json()["accepted"], 1, "{answer:?}");
    }
    assert_forbidden(
        &server.call("POST", events, Some(&query), &bid(7, 1, 3)),
        "ingest",
        "query token on ingest",
    );

    // query and admin: every read. ingest: none.
    for path in [
        "/v1/views",
        "/v1/views/counts",
        "/v1/views/counts/results",
        "/v1/status",
        "/metrics",
    ] {
        for token in [&query, &admin] {
            let answer = server.call("GET", path, Some(token), "");
            assert_eq!(answer.status, 200, "GET {path}: {answer:?}");
        }
        assert_forbidden(
            &server.call("GET", path, Some(&ingest), ""),
            "query",
            &format!("ingest token on GET {path}"),
        );
    }
    let status = server.call("GET", "/v1/status", Some(&query), "").json();
    assert_eq!(status["streams"][0]["events"], 2, "{status}");

    // Unknown routes: 404 to a valid token of any role, 401 to anyone else. A known path
    // with a method the role table does not list needs admin (fail closed): 405 to admin,
    // 403 to the others.
    for token in [&ingest, &query, &admin] {
        let answer = server.call("GET", "/v1/nothing/here", Some(token), "");
        assert_eq!(answer.status, 404, "{answer:?}");
        assert_eq!(answer.code(), "not_found", "{answer:?}");
    }
    assert_eq!(
        server.call("DELETE", "/v1/views", Some(&admin), "").status,
        405
    );
    for token in [&ingest, &query] {
        assert_forbidden(
            &server.call("DELETE", "/v1/views", Some(token), ""),
            "admin",
            "another method on a known path",
        );
    }
    assert_unauthorized(
        &server.call("GET", "/v1/nothing/here", None, ""),
        "unknown route without a token",
    );
    assert_unauthorized(
        &server.call("DELETE", "/v1/views", None, ""),
        "other method without a token",
    );
}

#[test]
fn issue_19_missing_or_wrong_tokens_get_401_and_open_routes_stay_open() {
    let env = Env::new();
    let query = create_token(&env, "query", None);
    let server = Server::start(&env);
    let wrong = "fsh_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let truncated = &query[..query.len() - 1];
    for (method, path) in [
        ("GET", "/v1/status"),
        ("GET", "/v1/views"),
        ("GET", "/v1/views/counts/results"),
        ("GET", "/metrics"),
        ("POST", "/v1/sql"),
        ("POST", "/v1/streams/bid/events"),
    ] {
        for token in [None, Some(wrong), Some(truncated)] {
            assert_unauthorized(
                &server.call(method, path, token, "{}"),
                &format!("{method} {path} with {token:?}"),
            );
        }
    }
    // The challenge says whether a token was missing or refused (RFC 6750).
    let missing = server.call("GET", "/v1/status", None, "");
    assert_eq!(missing.challenge.as_deref(), Some("Bearer"));
    let refused = server.call("GET", "/v1/status", Some(wrong), "");
    assert_eq!(
        refused.challenge.as_deref(),
        Some("Bearer error=\"invalid_token\"")
    );
    // The open routes answer without a token, and ignore a wrong one.
    for token in [None, Some(wrong)] {
        let page = server.call("GET", "/", token, "");
        assert_eq!(page.status, 200, "{page:?}");
        assert!(page.text.contains("<title>Freshet</title>"), "{page:?}");
        assert_eq!(server.call("GET", "/healthz", token, "").status, 200);
        assert_eq!(server.call("GET", "/readyz", token, "").status, 200);
    }
    drop(server);

    // --metrics-open opens /metrics and nothing else.
    let server = Server::start_command(
        &env,
        &["serve", "--listen", "127.0.0.1:0", "--metrics-open"],
        START_DEADLINE,
    );
    let metrics = server.call("GET", "/metrics", None, "");
    assert_eq!(metrics.status, 200, "{metrics:?}");
    assert!(
        metrics.text.contains("freshet_views_up_ratio"),
        "{metrics:?}"
    );
    assert_unauthorized(
        &server.call("GET", "/v1/status", None, ""),
        "status beside open metrics",
    );
}

#[test]
fn issue_19_token_create_shows_the_token_once_and_keeps_only_its_hash() {
    let env = Env::new();
    let run = env.run(&["token", "create", "--role", "query"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let token = run.stdout.lines().last().expect("a last line");
    assert!(token.starts_with("fsh_") && token.len() > 40, "{run:?}");
    assert_eq!(
        run.stdout.matches(token).count(),
        1,
        "printed once: {run:?}"
    );
    assert!(run.stdout.contains("query-1"), "{run:?}");
    let file = env.data_dir().join("tokens.json");
    let text = std::fs::read_to_string(&file).expect("tokens.json");
    assert!(!text.contains(token), "{text}");
    assert!(!text.contains(&token[4..]), "{text}");
    assert!(text.contains("query-1"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "tokens.json mode {mode:o}");

    let ingest = create_token(&env, "ingest", Some("feeder"));
    let taken = env.run(&["token", "create", "--role", "admin", "--name", "feeder"]);
    assert_ne!(taken.code, Some(0), "{taken:?}");
    assert!(taken.stderr.contains("exists already"), "{taken:?}");
    assert!(taken.stdout.is_empty(), "no token shown: {taken:?}");

    let listed = env.ok(&["token", "list"]);
    for expected in ["name", "role", "created", "query-1", "feeder", "ingest"] {
        assert!(listed.contains(expected), "{expected}: {listed}");
    }
    let json = env.ok_json(&["token", "list"]);
    let tokens = json["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 2, "{json}");
    for t in tokens {
        let mut keys: Vec<&String> = t.as_object().expect("an object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["created", "name", "role"], "{json}");
    }
    assert_eq!(tokens[1]["name"], "feeder");
    assert_eq!(tokens[1]["role"], "ingest");
    for shown in [&listed, &json.to_string()] {
        assert!(
            !shown.contains(token) && !shown.contains(&ingest),
            "{shown}"
        );
    }

    let revoked = env.ok(&["token", "revoke", "feeder"]);
    assert!(revoked.contains("revoked token feeder"), "{revoked}");
    assert_eq!(
        env.ok_json(&["token", "list"])["tokens"][0]["name"],
        "query-1"
    );
    let unknown = env.run(&["token", "revoke", "feeder"]);
    assert_ne!(unknown.code, Some(0), "{unknown:?}");
    assert!(
        unknown.stderr.contains("no token named 'feeder'"),
        "{unknown:?}"
    );
    let bad_role = env.run(&["token", "create", "--role", "root"]);
    assert_eq!(bad_role.code, Some(2), "{bad_role:?}");
}

/// `token create` whose output cannot be written (a closed pipe, a full disk) fails, says
/// so, and leaves no token behind: none may stay valid that nobody saw.
#[test]
fn issue_19_a_token_that_cannot_be_shown_is_not_kept() {
    let env = Env::new();
    let (reader, closed) = std::io::pipe().expect("a pipe");
    drop(reader);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    for (what, stdout) in [
        ("a closed pipe", Stdio::from(closed)),
        ("a full disk", Stdio::from(full)),
    ] {
        let mut command = env.command(&["token", "create", "--role", "admin"]);
        command.stdout(stdout).stderr(Stdio::piped());
        let mut child = command.spawn().expect("start freshet");
        let status = wait_bounded(&mut child, COMMAND_DEADLINE).expect("it finishes");
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut stderr)
            .expect("read stderr");
        assert_eq!(status.code(), Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains("could not be written") && stderr.contains("removed again"),
            "{what}: {stderr}"
        );
        let listed = env.ok_json(&["token", "list"]);
        assert_eq!(listed["tokens"], json!([]), "{what}: {listed}");
    }
}

#[test]
fn issue_19_token_changes_apply_to_a_running_server_without_a_restart() {
    let env = Env::new();
    let admin = create_token(&env, "admin", None);
    let query = create_token(&env, "query", Some("dashboard"));
    let server = Server::start(&env);
    assert_eq!(
        server.call("GET", "/v1/status", Some(&query), "").status,
        200
    );

    // The token commands run beside the server, which holds the data directory's LOCK.
    let revoked = env.run(&["token", "revoke", "dashboard"]);
    assert_eq!(revoked.code, Some(0), "{revoked:?}");
    eventually(&server, "the revoked token being refused", || {
        server.call("GET", "/v1/status", Some(&query), "").status == 401
    });
    assert_unauthorized(
        &server.call("GET", "/v1/status", Some(&query), ""),
        "a revoked token",
    );
    assert_eq!(
        server.call("GET", "/v1/status", Some(&admin), "").status,
        200,
        "the other tokens still work"
    );

    // A token created while the server runs works without a restart.
    let late = create_token(&env, "ingest", None);
    eventually(&server, "the new token being accepted", || {
        server
            .call("POST", "/v1/streams/nope/events", Some(&late), "{}")
            .status
            != 401
    });
    let answer = server.call("POST", "/v1/streams/nope/events", Some(&late), "{}");
    assert_eq!(answer.status, 404, "accepted, no such stream: {answer:?}");
    assert_eq!(answer.code(), "unknown_stream");
}

/// A running server never opens because its tokens went away: after the last token is
/// revoked it keeps requiring one (a restart opens it), and a `tokens.json` that can no
/// longer be read drops its tokens rather than keeping them.
#[test]
fn issue_19_a_running_server_stays_closed_when_its_tokens_go_away() {
    let env = Env::new();
    let admin = create_token(&env, "admin", None);
    let server = Server::start(&env);
    let status = |token: Option<&str>| server.call("GET", "/v1/status", token, "").status;
    env.ok(&["token", "revoke", "admin-1"]);
    eventually(&server, "the last token being refused", || {
        status(Some(&admin)) == 401
    });
    assert_unauthorized(
        &server.call("GET", "/v1/status", None, ""),
        "no token, after the last one was revoked",
    );
    let log = server.log_text();
    assert!(
        log.contains("WARN") && log.contains("no API token is left") && log.contains("restart"),
        "{log}"
    );

    let query = create_token(&env, "query", None);
    eventually(&server, "a new token being accepted", || {
        status(Some(&query)) == 200
    });
    std::fs::write(env.data_dir().join("tokens.json"), "{ damaged").expect("damage");
    eventually(&server, "the damaged file's token being refused", || {
        status(Some(&query)) == 401
    });
    assert_eq!(status(None), 401, "still closed");
    let log = server.log_text();
    assert!(
        log.contains("ERROR") && log.contains("cannot read the API tokens"),
        "{log}"
    );
    drop(server);

    // Restarted with no token left, on loopback: open, as the warning said.
    std::fs::remove_file(env.data_dir().join("tokens.json")).expect("remove");
    let server = Server::start(&env);
    assert_eq!(server.call("GET", "/v1/status", None, "").status, 200);
}

/// A `token` command whose user may not give the rewritten `tokens.json` back to its owner
/// refuses and leaves the file as it was, so that a server running as the owner can read
/// every version; root's rewrite gives it back. Needs root (to make a file another user
/// owns, and to run the command as a third); skips, saying so, otherwise.
#[test]
fn issue_19_a_token_command_that_cannot_keep_the_files_owner_changes_nothing() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
    use std::os::unix::process::CommandExt;
    /// The user `freshet serve` runs as, who owns the token file.
    const OWNER: u32 = 4242;
    /// Another user, without root's right to give files away.
    const OTHER: u32 = 65534;
    let env = Env::new();
    create_token(&env, "admin", None);
    let file = env.data_dir().join("tokens.json");
    if let Err(e) = chown(&file, Some(OWNER), Some(OWNER)) {
        eprintln!("SKIPPED: giving a file to another user needs root: {e}");
        return;
    }
    // The other user can reach the data directory, write in it and read the file (as
    // after a careless chmod): only the owner cannot be kept.
    let mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    mode(
        env.data_dir()
            .parent()
            .expect("the environment's directory"),
        0o755,
    );
    mode(&env.data_dir(), 0o777);
    mode(&env.data_dir().join("tokens.lock"), 0o666);
    mode(&file, 0o644);
    let before = std::fs::read(&file).expect("tokens.json");

    let mut command = env.command(&["token", "create", "--role", "query"]);
    command.uid(OTHER).gid(OTHER);
    let run = run_bounded(command, &["token", "create", "as another user"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    for says in [
        "belongs to uid 4242 (gid 4242)",
        "Run `freshet token` as that user, or as root",
    ] {
        assert!(run.stderr.contains(says), "{says}: {run:?}");
    }
    assert!(run.stdout.is_empty(), "no token shown: {run:?}");
    assert_eq!(std::fs::read(&file).expect("tokens.json"), before);
    let meta = std::fs::metadata(&file).expect("stat");
    assert_eq!((meta.uid(), meta.gid()), (OWNER, OWNER));
    assert!(!env.data_dir().join("tokens.json.tmp").exists());

    // Root may give it back: its rewrite keeps the owner, and the mode private.
    create_token(&env, "query", None);
    let meta = std::fs::metadata(&file).expect("stat");
    assert_eq!((meta.uid(), meta.gid()), (OWNER, OWNER));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

/// Run a serving command that must refuse to start: it fails the test (and is killed at
/// once) if it starts serving.
fn refused(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let mut child = env
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start freshet");
    let stdout = child.stdout.take().expect("stdout is piped");
    let served = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.starts_with("freshet serving on"))
    });
    let stderr = child.stderr.take().expect("stderr is piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });
    let status = wait_bounded(&mut child, COMMAND_DEADLINE);
    let served = served.join().expect("the stdout reader");
    let stderr = errors.join().expect("the stderr reader");
    assert!(
        !served,
        "freshet {args:?} served on a non-loopback address:\n{stderr}"
    );
    let status = status.unwrap_or_else(|| panic!("freshet {args:?} neither served nor exited"));
    (status.code(), stderr)
}

#[test]
fn issue_19_a_non_loopback_address_without_tokens_is_refused_before_anything_starts() {
    let env = Env::new();
    for args in [
        &["serve", "--listen", "0.0.0.0:0"][..],
        &["serve", "--listen", "0.0.0.0:0", "--role", "query"][..],
        &["demo", "--events", "1000", "--listen", "0.0.0.0:0"][..],
    ] {
        let (code, stderr) = refused(&env, args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        for says in [
            "refusing to serve on 0.0.0.0:0",
            "not a loopback address",
            "freshet token create",
            "--insecure-no-auth",
        ] {
            assert!(stderr.contains(says), "{args:?} says {says:?}: {stderr}");
        }
        // Refused before the data directory was opened, let alone the demo's history made.
        assert!(
            !env.data_dir().exists(),
            "{args:?}: {}",
            display(&env.data_dir())
        );
    }
}

#[test]
fn issue_19_tokens_from_freshet_tokens_are_accepted_and_bad_entries_refused() {
    let env = Env::new();
    let admin = "admin-token-from-the-environment";
    let query = "query-token-from-the-environment";
    let mut serve = env.command(&["serve", "--listen", "127.0.0.1:0"]);
    serve.env("FRESHET_TOKENS", format!("admin:{admin}, query:{query}"));
    let server = Server::start_from(&env, serve, START_DEADLINE);
    assert_unauthorized(&server.call("GET", "/v1/status", None, ""), "no token");
    assert_eq!(
        server.call("GET", "/v1/status", Some(query), "").status,
        200
    );
    assert_forbidden(
        &server.call("POST", "/v1/sql", Some(query), r#"{"sql": "SHOW STREAMS"}"#),
        "admin",
        "an environment query token on /v1/sql",
    );
    create_stream_and_view(&server, admin);
    assert!(
        !env.data_dir().join("tokens.json").exists(),
        "environment tokens are never written"
    );
    drop(server);

    let bad = format!("admin:{admin},reader:{query}");
    let run = env.run_with_env(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("FRESHET_TOKENS", &bad)],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("FRESHET_TOKENS entry 2")
            && run.stderr.contains("unknown role 'reader'"),
        "{run:?}"
    );
    assert!(
        !run.stderr.contains(query),
        "the token is not shown: {run:?}"
    );
}

#[test]
fn issue_19_a_query_only_server_enforces_the_same_tokens() {
    let env = Env::new();
    let admin = create_token(&env, "admin", None);
    let query = create_token(&env, "query", Some("reader"));
    let ingest = create_token(&env, "ingest", None);
    let writer = Server::start(&env);
    create_stream_and_view(&writer, &admin);
    let reader = Server::start_command(
        &env,
        &["serve", "--listen", "127.0.0.1:0", "--role", "query"],
        START_DEADLINE,
    );
    assert_unauthorized(&reader.call("GET", "/v1/status", None, ""), "no token");
    assert_eq!(
        reader.call("GET", "/v1/views", Some(&query), "").status,
        200
    );
    assert_forbidden(
        &reader.call("GET", "/v1/status", Some(&ingest), ""),
        "query",
        "an ingest token on a query-only server",
    );
    // A role check first, then what a query-only server refuses anyway.
    let sql = r#"{"sql": "SHOW STREAMS"}"#;
    assert_forbidden(
        &reader.call("POST", "/v1/sql", Some(&query), sql),
        "admin",
        "a query token's DDL",
    );
    let answer = reader.call("POST", "/v1/sql", Some(&admin), sql);
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (403, "query_only"),
        "{answer:?}"
    );
    env.ok(&["token", "revoke", "reader"]);
    eventually(
        &reader,
        "the query-only server refusing a revoked token",
        || reader.call("GET", "/v1/views", Some(&query), "").status == 401,
    );
    drop(writer);
}

#[test]
fn issue_19_freshet_status_sends_freshet_token() {
    let env = Env::new();
    let query = create_token(&env, "query", None);
    let ingest = create_token(&env, "ingest", None);
    let server = Server::start(&env);
    let url = server.url("");
    let args = ["status", "--url", url.as_str()];

    let without = env.run(&args);
    assert_eq!(without.code, Some(1), "{without:?}");
    assert!(
        without.stderr.contains("401") && without.stderr.contains("FRESHET_TOKEN"),
        "{without:?}"
    );
    let wrong_role = env.run_with_env(&args, &[("FRESHET_TOKEN", &ingest)]);
    assert_eq!(wrong_role.code, Some(1), "{wrong_role:?}");
    assert!(wrong_role.stderr.contains("403"), "{wrong_role:?}");

    let with = env.run_with_env(&args, &[("FRESHET_TOKEN", &query)]);
    assert_eq!(with.code, Some(0), "{with:?}");
    assert!(
        with.stdout.contains("stream") && with.stdout.contains("view"),
        "{with:?}"
    );
    let json = env.run_with_env(
        &[&args[..], &["--json"][..]].concat(),
        &[("FRESHET_TOKEN", &query)],
    );
    assert_eq!(json.code, Some(0), "{json:?}");
    assert!(json.json()["streams"].is_array(), "{json:?}");
}

#[test]
fn issue_19_demo_feeds_its_live_events_with_a_token_of_its_own() {
    let env = Env::new();
    let query = create_token(&env, "query", None);
    let mut demo = Server::start_command(
        &env,
        &[
            "demo",
            "--events",
            "2000",
            "--rate",
            "500",
            "--listen",
            "127.0.0.1:0",
        ],
        Duration::from_secs(120),
    );
    assert_unauthorized(&demo.call("GET", "/v1/views", None, ""), "the demo's views");
    // The history's bids (92% of 2,000), then live ones posted by the demo's feeder.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = demo.call("GET", "/v1/views", Some(&query), "");
        assert_eq!(answer.status, 200, "{answer:?}");
        let read = answer.json()["views"][0]["stats"]["input_events"]
            .as_u64()
            .unwrap_or(0);
        if read > 1_840 + 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hot_auctions read {read} events; the feeder's events never arrived:\n{}",
            demo.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The feeder's token lives in the demo's memory only.
    let listed = env.ok_json(&["token", "list"]);
    assert_eq!(
        listed["tokens"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let status = demo.terminate();
    assert!(status.success(), "{status:?}\n{}", demo.log_text());
}
