//! `freshet serve` over HTTPS through the real binary (issue 19), with certificates the
//! test makes and curl as the client, verifying the chain and the host name:
//!
//! - a request over HTTPS is answered, tokens are required over TLS as over plaintext,
//!   and plaintext to the TLS port gets no answer;
//! - SIGHUP with a new certificate: new connections see it (a client that trusts only the
//!   new authority gets in, one that trusts only the old is refused); SIGHUP with a broken
//!   certificate file keeps the pair in use, and the server says so;
//! - `--tls-cert` without `--tls-key` is refused, and a non-loopback address without
//!   tokens is refused with TLS as without;
//! - SIGTERM still stops the server cleanly.
//!
//! curl must be installed; under `FRESHET_CI` a missing curl fails the test.

use crate::e2e::certs::{Ca, Leaf};
use crate::e2e::http_views::{STREAM, bid};
use crate::e2e::support::{Env, START_DEADLINE, Server};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Longest the server may take to apply a SIGHUP.
const RELOAD_DEADLINE: Duration = Duration::from_secs(10);

/// What curl got: its exit code, and the HTTP status and body if there was an answer.
#[derive(Debug)]
struct Curl {
    exit: Option<i32>,
    status: u16,
    body: String,
    stderr: String,
}

fn curl_present() -> bool {
    let present = Command::new("curl").arg("--version").output().is_ok();
    if !present {
        assert!(
            std::env::var_os("FRESHET_CI").is_none(),
            "curl is not installed; CI runs the HTTPS tests"
        );
        eprintln!("SKIPPED: curl is not installed, so HTTPS is not tested");
    }
    present
}

/// `curl` to `url`, trusting only `ca` (PEM file), with a bearer `token` if given.
fn curl(url: &str, ca: Option<&Path>, token: Option<&str>) -> Curl {
    curl_post(url, ca, token, None)
}

/// Like [`curl`], POSTing the file `body` if given.
fn curl_post(url: &str, ca: Option<&Path>, token: Option<&str>, body: Option<&Path>) -> Curl {
    let mut cmd = Command::new("curl");
    if let Some(body) = body {
        cmd.arg("--data-binary").arg(format!("@{}", body.display()));
    }
    cmd.args(["--silent", "--show-error", "--max-time", "10"])
        .args(["--output", "-", "--write-out", "\n%{http_code}"]);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    if let Some(token) = token {
        cmd.arg("--header")
            .arg(format!("Authorization: Bearer {token}"));
    }
    let out = cmd.arg(url).output().expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Curl {
        exit: out.status.code(),
        status: status.trim().parse().unwrap_or(0),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The authority's certificate and a server certificate it signed, written into `env`.
struct Pair {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn write_pair(env: &Env, name: &str, ca: &Ca, leaf: &Leaf) -> Pair {
    Pair {
        ca: env.write(&format!("{name}-ca.pem"), ca.pem()),
        cert: env.write(&format!("{name}-cert.pem"), &leaf.cert),
        key: env.write(&format!("{name}-key.pem"), &leaf.key),
    }
}

fn https_server(env: &Env, pair: &Pair, extra: &[(&str, &str)]) -> Server {
    let mut command = env.command(&["serve", "--listen", "127.0.0.1:0"]);
    // Reloads are logged at info.
    command
        .env("FRESHET_LOG", "info")
        .env("FRESHET_TLS_CERT", &pair.cert)
        .env("FRESHET_TLS_KEY", &pair.key)
        .envs(extra.iter().copied());
    let server = Server::start_from(env, command, START_DEADLINE);
    // Up once a verified request gets an answer.
    let url = format!("https://{}/healthz", server.addr);
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        let answer = curl(&url, Some(&pair.ca), None);
        if answer.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the HTTPS server never answered: {answer:?}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn hangup(server: &Server) {
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -HUP failed");
}

/// Waits until the server's log holds `text` `count` times.
fn wait_for_log(server: &Server, text: &str, count: usize) {
    let deadline = Instant::now() + RELOAD_DEADLINE;
    while server.log_text().matches(text).count() < count {
        assert!(
            Instant::now() < deadline,
            "the server never logged {text:?} {count} times:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn https_serves_verified_requests_with_tokens_and_refuses_plaintext() {
    if !curl_present() {
        return;
    }
    let env = Env::new();
    let ca = Ca::new("freshet test CA");
    let pair = write_pair(&env, "a", &ca, &ca.issue(&["localhost", "127.0.0.1"]));
    let admin = "tls-test-admin-token-0123456789";
    let mut server = https_server(
        &env,
        &pair,
        &[("FRESHET_TOKENS", &format!("admin:{admin}"))],
    );
    let base = format!("https://{}", server.addr);

    // A verified request over HTTPS, by IP address and by host name.
    let health = curl(&format!("{base}/healthz"), Some(&pair.ca), None);
    assert_eq!((health.exit, health.status), (Some(0), 200), "{health:?}");
    assert!(health.body.contains("\"ok\""), "{health:?}");
    let port = server.addr.rsplit_once(':').expect("host:port").1;
    let by_name = curl(
        &format!("https://localhost:{port}/healthz"),
        Some(&pair.ca),
        None,
    );
    assert_eq!(by_name.status, 200, "{by_name:?}");

    // Tokens hold over TLS: none is 401, the admin's reads.
    let anonymous = curl(&format!("{base}/v1/views"), Some(&pair.ca), None);
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert!(anonymous.body.contains("unauthorized"), "{anonymous:?}");
    let views = curl(&format!("{base}/v1/views"), Some(&pair.ca), Some(admin));
    assert_eq!(views.status, 200, "{views:?}");
    // Request bodies go through TLS as through plaintext: DDL, then events.
    let ddl = env.write("ddl.json", json!({ "sql": STREAM }).to_string());
    let sql_url = format!("{base}/v1/sql");
    let created = curl_post(&sql_url, Some(&pair.ca), Some(admin), Some(&ddl));
    assert_eq!(created.status, 200, "{created:?}");
    let events = env.write(
        "bids.ndjson",
        format!("{}\n{}\n", bid(1, 5, 1), bid(2, 6, 2)),
    );
    let events_url = format!("{base}/v1/streams/bid/events");
    let ingested = curl_post(&events_url, Some(&pair.ca), Some(admin), Some(&events));
    assert_eq!(ingested.status, 200, "{ingested:?}");
    assert!(ingested.body.contains("\"accepted\":2"), "{ingested:?}");

    // A client that does not trust the authority is refused by its own check.
    let untrusted = curl(&format!("{base}/healthz"), None, None);
    assert_ne!(untrusted.exit, Some(0), "{untrusted:?}");
    assert_eq!(untrusted.status, 0, "{untrusted:?}");
    assert!(
        untrusted.stderr.to_lowercase().contains("certificate"),
        "{untrusted:?}"
    );

    // Plaintext to the TLS port gets no HTTP answer.
    let plain = curl(&format!("http://{}/healthz", server.addr), None, None);
    assert_ne!(plain.exit, Some(0), "{plain:?}");
    assert_eq!(plain.status, 0, "{plain:?}");
    // Nor does it harm the server.
    let again = curl(&format!("{base}/healthz"), Some(&pair.ca), None);
    assert_eq!(again.status, 200, "{again:?}");

    let status = server.terminate();
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    assert!(
        server.log_text().contains("in-flight requests finished"),
        "a graceful stop: {}",
        server.log_text()
    );
}

#[test]
fn sighup_loads_a_new_certificate_and_keeps_the_old_one_if_the_new_is_broken() {
    if !curl_present() {
        return;
    }
    let env = Env::new();
    let old_ca = Ca::new("old test CA");
    let pair = write_pair(&env, "live", &old_ca, &old_ca.issue(&["127.0.0.1"]));
    let server = https_server(&env, &pair, &[]);
    let url = format!("https://{}/healthz", server.addr);
    let old_ca_file = env.write("old-ca.pem", old_ca.pem());

    // A new authority's certificate in place of the old, then SIGHUP.
    let new_ca = Ca::new("new test CA");
    let new_ca_file = env.write("new-ca.pem", new_ca.pem());
    let new = new_ca.issue(&["127.0.0.1"]);
    std::fs::write(&pair.cert, &new.cert).expect("write the new certificate");
    std::fs::write(&pair.key, &new.key).expect("write the new key");
    // Until the signal, the files changed but the server still shows the old pair.
    assert_eq!(curl(&url, Some(&old_ca_file), None).status, 200);
    hangup(&server);
    wait_for_log(&server, "TLS certificate reloaded", 1);
    let with_new = curl(&url, Some(&new_ca_file), None);
    assert_eq!(with_new.status, 200, "{with_new:?}");
    let with_old = curl(&url, Some(&old_ca_file), None);
    assert_eq!(
        with_old.status, 0,
        "the old authority no longer vouches: {with_old:?}"
    );

    // A broken certificate file: refused, logged, and the new pair stays in use.
    std::fs::write(&pair.cert, "-----BEGIN CERTIFICATE-----\nbroken\n").expect("write");
    hangup(&server);
    wait_for_log(&server, "TLS certificate not reloaded", 1);
    let kept = curl(&url, Some(&new_ca_file), None);
    assert_eq!(kept.status, 200, "{kept:?}\n{}", server.log_text());
    // A key that does not go with the certificate: the same.
    std::fs::write(&pair.cert, &new.cert).expect("write");
    std::fs::write(&pair.key, old_ca.issue(&["127.0.0.1"]).key).expect("write");
    hangup(&server);
    wait_for_log(&server, "TLS certificate not reloaded", 2);
    let log = server.log_text();
    assert!(log.contains("does not go with"), "{log}");
    assert_eq!(curl(&url, Some(&new_ca_file), None).status, 200);
    // And never plaintext.
    let plain = curl(&format!("http://{}/healthz", server.addr), None, None);
    assert_eq!(plain.status, 0, "{plain:?}");
}

#[test]
fn tls_settings_are_checked_before_serving() {
    let env = Env::new();
    let ca = Ca::new("test CA");
    let pair = write_pair(&env, "a", &ca, &ca.issue(&["127.0.0.1"]));
    let cert = pair.cert.to_str().expect("UTF-8 path");
    let key = pair.key.to_str().expect("UTF-8 path");

    let alone = env.run(&["serve", "--listen", "127.0.0.1:0", "--tls-cert", cert]);
    assert_ne!(alone.code, Some(0), "{alone:?}");
    assert!(alone.stderr.contains("--tls-key"), "{alone:?}");

    // The loopback rule is the same over TLS: no token, no other address.
    let exposed = env.run(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ]);
    assert_ne!(exposed.code, Some(0), "{exposed:?}");
    assert!(exposed.stderr.contains("--insecure-no-auth"), "{exposed:?}");

    // A key that is not a key: refused at startup, naming the file, not its bytes.
    let bad_key = env.write("bad-key.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n");
    let refused = env.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert,
        "--tls-key",
        bad_key.to_str().expect("UTF-8 path"),
    ]);
    assert_ne!(refused.code, Some(0), "{refused:?}");
    assert!(refused.stderr.contains("bad-key.pem"), "{refused:?}");
}
