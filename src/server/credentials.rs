//! The tokens a running server accepts, kept current without a restart: those of
//! `<data dir>/tokens.json`, those of `FRESHET_TOKENS` (read once at start) and the
//! process's own (the demo's feeder). Requests read the current keyring from memory; a
//! task looks at the token file's stamp (modification time, length, inode) once a second
//! and re-reads the file only when it changed, plus once in a while in case a change kept
//! the stamp. A file that cannot be read leaves the keyring as it was (and says so), so a
//! bad edit never opens the server.
//!
//! Whether tokens are required at all: whenever one is configured (file or environment),
//! and always on a server that listens beyond loopback without `--insecure-no-auth`, so
//! revoking the last token locks such a server rather than opening it.

use crate::app::auth::{self, Key, Keyring, Source, Stamp, TokenError};
use freshet_types::limits::{TOKENS_CHECK_INTERVAL, TOKENS_REREAD_INTERVAL};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// What the server accepts now.
pub struct Credentials {
    data_dir: PathBuf,
    /// Keys that do not come from the file: the environment's and the process's own.
    fixed: Vec<Key>,
    current: RwLock<Arc<Keyring>>,
    /// The stamp of the file the current keyring was read from, and when it was read.
    read: Mutex<(Option<Stamp>, Instant)>,
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
        Ok(Credentials {
            data_dir: data_dir.to_path_buf(),
            fixed,
            current: RwLock::new(Arc::new(keyring)),
            read: Mutex::new((stamp, Instant::now())),
            exposed,
            metrics_open,
        })
    }

    /// The keys accepted now.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether requests must carry a token (given the keys accepted now).
    pub fn required(&self, keyring: &Keyring) -> bool {
        self.exposed || keyring.configured()
    }

    /// Whether `/metrics` is open whatever tokens exist (`--metrics-open`).
    pub fn metrics_open(&self) -> bool {
        self.metrics_open
    }

    /// Re-read the token file if its stamp changed, or if it was last read longer ago
    /// than [`TOKENS_REREAD_INTERVAL`]. Blocking (a stat, sometimes a read).
    pub fn refresh(&self) {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = auth::stamp(&self.data_dir);
        if stamp == read.0 && read.1.elapsed() < TOKENS_REREAD_INTERVAL {
            return;
        }
        match keyring(&self.data_dir, &self.fixed) {
            Ok(keyring) => {
                let before = self.keyring();
                if !same_keys(&before, &keyring) {
                    tracing::info!(
                        tokens = keyring.keys().len(),
                        "the API tokens changed; the new set applies now"
                    );
                }
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keyring);
                *read = (stamp, Instant::now());
            }
            Err(e) => {
                // Only a changed file is worth reporting again.
                if stamp != read.0 {
                    tracing::error!(
                        error = %e,
                        "cannot read the API tokens; the server keeps accepting the tokens it \
                         had until the file is fixed"
                    );
                }
                *read = (stamp, Instant::now());
            }
        }
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

    #[test]
    fn refresh_picks_up_created_and_revoked_tokens_and_survives_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let own = Secret::generate().unwrap();
        let fixed = vec![Key {
            name: "feeder".into(),
            role: Role::Ingest,
            hash: own.hash(),
            source: Source::Process,
        }];
        let creds = Credentials::open(d, fixed, false, false).expect("no file is fine");
        assert!(
            !creds.required(&creds.keyring()),
            "only the process's own key"
        );
        let (_, query) = auth::create(d, Role::Query, None, NOW.into()).unwrap();
        assert_eq!(creds.keyring().role_of(&query.hash()), None, "not read yet");
        creds.refresh();
        let ring = creds.keyring();
        assert_eq!(ring.role_of(&query.hash()), Some(Role::Query));
        assert_eq!(ring.role_of(&own.hash()), Some(Role::Ingest));
        assert!(creds.required(&ring));

        std::fs::write(d.join(auth::TOKENS_FILE), "{ damaged").unwrap();
        creds.refresh();
        assert_eq!(
            creds.keyring().role_of(&query.hash()),
            Some(Role::Query),
            "a damaged file keeps the last good tokens"
        );

        std::fs::remove_file(d.join(auth::TOKENS_FILE)).unwrap();
        auth::create(d, Role::Admin, None, NOW.into()).unwrap();
        creds.refresh();
        assert_eq!(creds.keyring().role_of(&query.hash()), None, "gone");
        assert_eq!(
            creds.keyring().role_of(&TokenHash::of(b"anything at all")),
            None
        );
    }

    #[test]
    fn an_exposed_server_requires_tokens_even_when_none_exist() {
        let dir = tempfile::tempdir().unwrap();
        let creds = Credentials::open(dir.path(), Vec::new(), true, false).unwrap();
        assert!(creds.required(&creds.keyring()));
        let creds = Credentials::open(dir.path(), Vec::new(), false, false).unwrap();
        assert!(!creds.required(&creds.keyring()));
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
