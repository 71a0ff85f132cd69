//! The tokens a running server accepts, kept current without a restart: those of
//! `<data dir>/tokens.json`, those of `FRESHET_TOKENS` (read once at start) and the
//! process's own (the demo's feeder). Requests read the current [`Access`] from memory; a
//! task looks at the token file's stamp (modification time, length, inode) once a second
//! and re-reads the file only when it changed, plus once in a while in case a change kept
//! the stamp.
//!
//! A file that cannot be read, or that is damaged, fails closed: its keys are dropped (a
//! token revoked by the rewrite that made it unreadable must not keep working), the
//! environment's and the process's own stay, tokens are required, and an ERROR says so
//! until the file can be read again. At start, such a file stops the server instead.
//!
//! Whether tokens are required at all: from the moment one is configured (file or
//! environment) until the server stops, and always on a server that listens beyond
//! loopback without `--insecure-no-auth`. Revoking the last token or removing `tokens.json`
//! never opens a running server: it answers 401 until a token exists again, and a WARN
//! says that only a restart serves without tokens (on loopback).

use crate::app::auth::{self, Key, Keyring, Source, Stamp, TokenError};
use freshet_types::limits::{TOKENS_CHECK_INTERVAL, TOKENS_REREAD_INTERVAL};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// What the server accepts at one moment: requests take one `Access` and decide by it
/// alone, so that the keys and whether one is required always belong together.
#[derive(Debug)]
pub struct Access {
    /// The keys accepted.
    pub keyring: Keyring,
    /// Whether a request must carry one of them (routes that are open aside).
    pub required: bool,
}

/// What the server knows of the token file it last looked at.
struct FileSeen {
    /// Its stamp then.
    stamp: Option<Stamp>,
    /// When it was last read (or found unreadable).
    at: Instant,
    /// Whether that read failed: its keys are dropped until a read succeeds.
    failed: bool,
}

/// What the server accepts now.
pub struct Credentials {
    data_dir: PathBuf,
    /// Keys that do not come from the file: the environment's and the process's own.
    fixed: Vec<Key>,
    current: RwLock<Arc<Access>>,
    seen: Mutex<FileSeen>,
    /// Listening beyond loopback without `--insecure-no-auth`: tokens are required even
    /// while none exists.
    exposed: bool,
    /// `--metrics-open`.
    metrics_open: bool,
}

impl Credentials {
    /// Reads the token file of `data_dir`; an unreadable one is an error, so a server never
    /// starts open because its tokens could not be read.
    pub fn open(
        data_dir: &Path,
        fixed: Vec<Key>,
        exposed: bool,
        metrics_open: bool,
    ) -> Result<Credentials, TokenError> {
        let stamp = auth::stamp(data_dir);
        let keyring = keyring(data_dir, &fixed)?;
        let required = exposed || keyring.configured();
        Ok(Credentials {
            data_dir: data_dir.to_path_buf(),
            fixed,
            current: RwLock::new(Arc::new(Access { keyring, required })),
            seen: Mutex::new(FileSeen {
                stamp,
                at: Instant::now(),
                failed: false,
            }),
            exposed,
            metrics_open,
        })
    }

    /// The keys accepted now, and whether one is required.
    pub fn access(&self) -> Arc<Access> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether `/metrics` is open whatever tokens exist (`--metrics-open`).
    pub fn metrics_open(&self) -> bool {
        self.metrics_open
    }

    /// Re-read the token file if its stamp changed, or if it was last read longer ago
    /// than [`TOKENS_REREAD_INTERVAL`]. Blocking (a stat, sometimes a read).
    pub fn refresh(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = auth::stamp(&self.data_dir);
        if stamp == seen.stamp && seen.at.elapsed() < TOKENS_REREAD_INTERVAL {
            return;
        }
        let before = self.access();
        let (keyring, failed) = match keyring(&self.data_dir, &self.fixed) {
            Ok(keyring) => (keyring, false),
            Err(e) => {
                // Only a change is worth reporting again.
                if !seen.failed || stamp != seen.stamp {
                    tracing::error!(
                        error = %e,
                        "cannot read the API tokens; until the file can be read, none of \
                         its tokens is accepted, only those of FRESHET_TOKENS, and every \
                         route but the open ones requires one"
                    );
                }
                let fixed = Keyring::new(self.fixed.clone())
                    .expect("the fixed keys were accepted together at start");
                (fixed, true)
            }
        };
        if !failed {
            if seen.failed {
                tracing::info!("the API tokens can be read again");
            }
            if !same_keys(&before.keyring, &keyring) {
                tracing::info!(
                    tokens = keyring.keys().len(),
                    "the API tokens changed; the new set applies now"
                );
            }
        }
        // Once required, always required: nothing the file does opens a running server.
        let required = before.required || failed || keyring.configured();
        let none_left = required && !failed && !keyring.configured();
        let had_none = before.required && !seen.failed && !before.keyring.configured();
        if none_left && !had_none {
            if self.exposed {
                tracing::warn!(
                    "no API token is left; this server listens beyond loopback, so it keeps \
                     requiring one and answers 401 until `freshet token create` makes one"
                );
            } else {
                tracing::warn!(
                    "no API token is left; this server keeps requiring one, as it did, and \
                     answers 401 until `freshet token create` makes one. To serve without \
                     tokens, restart it"
                );
            }
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Access { keyring, required });
        *seen = FileSeen {
            stamp,
            at: Instant::now(),
            failed,
        };
    }

    /// Follow the token file until the server stops.
    pub async fn follow(self: Arc<Self>) {
        let mut tick = tokio::time::interval(TOKENS_CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let this = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || this.refresh()).await {
                tracing::error!(error = %e, "reloading the API tokens panicked");
            }
        }
    }
}

/// The file's keys and the fixed ones.
fn keyring(data_dir: &Path, fixed: &[Key]) -> Result<Keyring, TokenError> {
    let mut keys: Vec<Key> = auth::read(data_dir)?
        .into_iter()
        .map(|r| Key {
            name: r.name,
            role: r.role,
            hash: r.sha256,
            source: Source::File,
        })
        .collect();
    keys.extend(fixed.iter().cloned());
    Keyring::new(keys)
}

/// Whether two keyrings hold the same names and roles (for the log only: the keyring is
/// replaced either way).
fn same_keys(a: &Keyring, b: &Keyring) -> bool {
    let names = |k: &Keyring| -> Vec<(String, auth::Role)> {
        k.keys().iter().map(|k| (k.name.clone(), k.role)).collect()
    };
    names(a) == names(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::auth::{Role, Secret, TokenHash};

    const NOW: &str = "2026-12-06T06:44:00.000Z";

    /// What `f` logs, one line per event, level first.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = lines.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// The lines of `log` at `level`.
    fn at_level<'a>(log: &'a str, level: &'a str) -> impl Iterator<Item = &'a str> {
        log.lines()
            .filter(move |l| l.trim_start().starts_with(level))
    }

    fn own_key(secret: &Secret, source: Source) -> Vec<Key> {
        vec![Key {
            name: "fixed".into(),
            role: Role::Ingest,
            hash: secret.hash(),
            source,
        }]
    }

    #[test]
    fn refresh_picks_up_created_and_revoked_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let own = Secret::generate().unwrap();
        let creds = Credentials::open(d, own_key(&own, Source::Process), false, false)
            .expect("no file is fine");
        assert!(!creds.access().required, "only the process's own key");
        let (_, query) = auth::create(d, Role::Query, None, NOW.into()).unwrap();
        assert_eq!(
            creds.access().keyring.role_of(&query.hash()),
            None,
            "not read yet"
        );
        creds.refresh();
        let access = creds.access();
        assert_eq!(access.keyring.role_of(&query.hash()), Some(Role::Query));
        assert_eq!(access.keyring.role_of(&own.hash()), Some(Role::Ingest));
        assert!(access.required);

        auth::create(d, Role::Admin, None, NOW.into()).unwrap();
        auth::revoke(d, "query-1").unwrap();
        creds.refresh();
        let access = creds.access();
        assert_eq!(access.keyring.role_of(&query.hash()), None, "revoked");
        assert_eq!(access.keyring.role_of(&TokenHash::of(b"anything")), None);
        assert_eq!(access.keyring.keys().len(), 2, "admin-1 and the own key");
    }

    /// A rewrite that leaves the file unreadable (a root-owned copy, a bad edit) may be
    /// the very one that revoked a token: the file's keys go, the environment's stay,
    /// tokens stay required, and an ERROR says so once per change.
    #[test]
    fn a_token_file_that_can_no_longer_be_read_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let env = Secret::generate().unwrap();
        let (_, query) = auth::create(d, Role::Query, None, NOW.into()).unwrap();
        let creds = Credentials::open(d, own_key(&env, Source::Env), false, false).unwrap();
        assert_eq!(
            creds.access().keyring.role_of(&query.hash()),
            Some(Role::Query)
        );
        let path = d.join(auth::TOKENS_FILE);
        let good = std::fs::read(&path).unwrap();
        let damaged = |e: &str| {
            let log = logged(|| creds.refresh());
            let access = creds.access();
            assert_eq!(access.keyring.role_of(&query.hash()), None, "{e}");
            assert_eq!(
                access.keyring.role_of(&env.hash()),
                Some(Role::Ingest),
                "{e}"
            );
            assert!(access.required, "{e}");
            log
        };

        std::fs::write(&path, "{ damaged").unwrap();
        let log = damaged("a damaged file");
        assert!(
            at_level(&log, "ERROR").any(|l| l.contains("cannot read the API tokens")),
            "{log}"
        );
        // Not reported again until it changes.
        let again = logged(|| {
            let mut seen = creds.seen.lock().unwrap();
            // As if the time for an unconditional re-read had come.
            seen.at = seen
                .at
                .checked_sub(TOKENS_REREAD_INTERVAL)
                .unwrap_or(seen.at);
            drop(seen);
            creds.refresh();
        });
        assert!(again.is_empty(), "{again}");

        // Unreadable: something that is not a file where the file was (root, reading as
        // root, cannot be kept from a file by its mode).
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let log = damaged("an unreadable file");
        assert_eq!(at_level(&log, "ERROR").count(), 1, "{log}");

        std::fs::remove_dir(&path).unwrap();
        std::fs::write(&path, &good).unwrap();
        let log = logged(|| creds.refresh());
        assert!(log.contains("can be read again"), "{log}");
        assert_eq!(
            creds.access().keyring.role_of(&query.hash()),
            Some(Role::Query)
        );
    }

    /// With no token configured and the file unreadable, a server on loopback still fails
    /// closed: it cannot know which tokens the file holds.
    #[test]
    fn an_unreadable_token_file_closes_a_server_that_had_no_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let creds = Credentials::open(d, Vec::new(), false, false).unwrap();
        assert!(!creds.access().required);
        std::fs::write(d.join(auth::TOKENS_FILE), "[]").unwrap();
        creds.refresh();
        assert!(creds.access().required);
    }

    /// A server on loopback that required tokens keeps requiring them when the last one
    /// is revoked or the file removed: only a restart opens it.
    #[test]
    fn revoking_the_last_token_does_not_open_a_running_server() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (_, query) = auth::create(d, Role::Query, None, NOW.into()).unwrap();
        let creds = Credentials::open(d, Vec::new(), false, false).unwrap();
        assert!(creds.access().required);
        auth::revoke(d, "query-1").unwrap();
        let log = logged(|| creds.refresh());
        let access = creds.access();
        assert!(access.required, "still closed");
        assert_eq!(access.keyring.role_of(&query.hash()), None);
        assert!(
            at_level(&log, "WARN").any(|l| l.contains("restart")),
            "says how to open it: {log}"
        );
        // Said once, not at every look.
        auth::create(d, Role::Query, Some("q"), NOW.into()).unwrap();
        auth::revoke(d, "q").unwrap();
        creds.refresh();
        std::fs::remove_file(d.join(auth::TOKENS_FILE)).unwrap();
        let quiet = logged(|| creds.refresh());
        assert_eq!(at_level(&quiet, "WARN").count(), 0, "{quiet}");
        assert!(creds.access().required, "no file: still closed");
        // A server started now, with no token, is open: the restart the WARN speaks of.
        let restarted = Credentials::open(d, Vec::new(), false, false).unwrap();
        assert!(!restarted.access().required);
    }

    #[test]
    fn an_exposed_server_requires_tokens_even_when_none_exist() {
        let dir = tempfile::tempdir().unwrap();
        let creds = Credentials::open(dir.path(), Vec::new(), true, false).unwrap();
        assert!(creds.access().required);
        let creds = Credentials::open(dir.path(), Vec::new(), false, false).unwrap();
        assert!(!creds.access().required);
    }

    #[test]
    fn a_token_of_the_file_also_in_the_environment_stops_the_server_from_starting() {
        let dir = tempfile::tempdir().unwrap();
        let (_, secret) = auth::create(dir.path(), Role::Query, None, NOW.into()).unwrap();
        let env = vec![Key {
            name: "env-1".into(),
            role: Role::Admin,
            hash: secret.hash(),
            source: Source::Env,
        }];
        let e = Credentials::open(dir.path(), env, false, false)
            .err()
            .expect("the same secret twice");
        assert!(matches!(e, TokenError::SameToken { .. }), "{e}");
        assert!(e.to_string().contains("'query-1' (tokens.json"), "{e}");
    }

    #[test]
    fn an_unreadable_token_file_stops_the_server_from_starting() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(auth::TOKENS_FILE), "[]").unwrap();
        assert!(Credentials::open(dir.path(), Vec::new(), false, false).is_err());
    }
}
