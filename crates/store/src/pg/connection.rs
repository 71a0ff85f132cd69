//! A PostgreSQL store's connection: taken from the store's pool ([`super::pool`]) for a
//! reader's call or a writer's life, opened lazily (over TLS as `sslmode` says), checked
//! for a server new enough (15, for `NULLS NOT DISTINCT` keys), and opened again after it
//! is lost. After a retriable error the connection is dropped, so the next call starts on
//! a fresh one; a fresh connection takes the store's writer locks again before anything
//! else runs on it, and fails if another process took one meanwhile.
//!
//! Statements are prepared once per connection and kept by their text.
//!
//! One writer per view: a session-level advisory lock keyed by the schema and the view,
//! taken before a view loads its checkpoint and held for as long as the connection lives.
//! Another process claiming the same view is refused with a message naming the holder
//! (backend pid, application name, client address); the lock goes when the holder's
//! connection does, whether it exits, crashes or has its backend terminated.

use postgres::{Client, Statement, Transaction};
use std::collections::HashMap;

use super::store::{Connection, PgStore};
use crate::StoreError;
use crate::error::PostgresContext;

/// NULLS NOT DISTINCT keys need PostgreSQL 15.
const SERVER_VERSION_MIN: i32 = 150_000;
/// A reader connection idle in the pool this long is checked before it is used.
const IDLE_CHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(5);
/// How long that check may take before the connection is replaced.
const IDLE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl PgStore {
    /// Runs `f` on a live connection, taking a place in the pool and connecting (and
    /// re-taking writer locks) first if needed. A retriable error drops the connection, so
    /// the next call opens a new one. A reader gives its place back after the call.
    pub(super) fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client, &mut HashMap<String, Statement>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.read_only {
            // A reader's lease is local, so that it goes back to the pool even if `f`
            // panics. A connection idle for a while may have been closed by the server
            // (a restart, an idle timeout) without the client knowing: check it first.
            let mut lease = self.location.pool.lease(true, &self.location)?;
            if lease.idle_for.is_some_and(|idle| idle >= IDLE_CHECK_AFTER)
                && let Some(client) = &mut lease.conn.client
                && client.is_valid(IDLE_CHECK_TIMEOUT).is_err()
            {
                lease.conn.client = None;
            }
            return self.on_lease(&mut lease.conn, f);
        }
        let mut lease = self.lease.borrow_mut();
        if lease.is_none() {
            *lease = Some(self.location.pool.lease(false, &self.location)?);
        }
        self.on_lease(&mut lease.as_mut().expect("leased above").conn, f)
    }

    /// [`PgStore::with_client`] on the connection of the store's lease.
    fn on_lease<T>(
        &self,
        conn: &mut Connection,
        f: impl FnOnce(&mut Client, &mut HashMap<String, Statement>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Connection { client, statements } = conn;
        if client.as_ref().is_none_or(Client::is_closed) {
            statements.clear();
            *client = None;
            let mut fresh = self.connect()?;
            for view in self.claimed.borrow().iter() {
                if let Err(error) = self.try_lock(&mut fresh, view) {
                    return Err(match error {
                        StoreError::User { message } => StoreError::user(format!(
                            "lost the right to write view '{view}' while the connection to \
                             {} was down: {message}",
                            self.location
                        )),
                        other => other,
                    });
                }
            }
            *client = Some(fresh);
        }
        let Some(live) = client.as_mut() else {
            return Err(StoreError::bug("no connection after connecting"));
        };
        let result = f(live, statements);
        if let Err(error) = &result
            && error.retriable()
        {
            *client = None;
            statements.clear();
        }
        result
    }

    fn connect(&self) -> Result<Client, StoreError> {
        let mut client = self
            .location
            .config
            .connect(self.location.tls.clone())
            .context(|| {
                format!(
                    "connecting to {} (sslmode={})",
                    self.location,
                    self.location.ssl_mode.name()
                )
            })?;
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .context(|| format!("reading the server version of {}", self.location))?
            .get(0);
        if version < SERVER_VERSION_MIN {
            return Err(StoreError::user(format!(
                "{} runs PostgreSQL {}.{}; the result store needs 15 or newer",
                self.location,
                version / 10_000,
                version % 10_000
            )));
        }
        Ok(client)
    }
}

/// A statement prepared once per connection.
pub(super) fn prepared(
    tx: &mut Transaction<'_>,
    statements: &mut HashMap<String, Statement>,
    sql: &str,
) -> Result<Statement, postgres::Error> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = tx.prepare(sql)?;
    statements.insert(sql.to_owned(), statement.clone());
    Ok(statement)
}

/// The advisory lock key of a view's writer (`view` empty: the schema's DDL lock).
pub(super) fn lock_key(schema: &str, view: &str) -> i64 {
    let key = xxhash_rust::xxh3::xxh3_64(format!("freshet\0{schema}\0{view}").as_bytes());
    i64::from_ne_bytes(key.to_ne_bytes())
}

impl PgStore {
    /// Takes the writer lock of `view` on `client`; a user error naming the holder if
    /// another session has it.
    pub(super) fn try_lock(&self, client: &mut Client, view: &str) -> Result<(), StoreError> {
        let key = lock_key(&self.location.schema, view);
        let at = || format!("taking the writer lock of view '{view}'");
        let taken: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .context(at)?
            .get(0);
        if taken {
            return Ok(());
        }
        let holder = client
            .query_opt(
                "SELECT a.pid, coalesce(a.application_name, ''), \
                 coalesce(host(a.client_addr), 'local socket'), a.backend_start::text \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                 AND l.classid::bigint = $1 AND l.objid::bigint = $2",
                &[&((key >> 32) & 0xffff_ffff), &(key & 0xffff_ffff)],
            )
            .context(at)?
            .map(|row| {
                format!(
                    "PostgreSQL backend {} ({}) from {} since {}",
                    row.get::<_, i32>(0),
                    row.get::<_, String>(1),
                    row.get::<_, String>(2),
                    row.get::<_, String>(3)
                )
            })
            .unwrap_or_else(|| "a session that has just let go; try again".to_owned());
        Err(StoreError::user(format!(
            "view '{view}' in {} is being written by another Freshet process: {holder}. \
             Stop that process, or run this one with --role query",
            self.location
        )))
    }
}

/// [`ResultStore::claim_writer`](crate::ResultStore::claim_writer).
pub(super) fn claim_writer(store: &mut PgStore, view: &str) -> Result<(), StoreError> {
    store.check_writable()?;
    if store.claimed.borrow().iter().any(|v| v == view) {
        return Ok(());
    }
    store.with_client(|client, _| store.try_lock(client, view))?;
    store.claimed.borrow_mut().push(view.to_owned());
    tracing::info!(view, store = %store.location, "holding the writer lock");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_differ_by_schema_and_view() {
        assert_ne!(lock_key("a", "v"), lock_key("b", "v"));
        assert_ne!(lock_key("a", "v"), lock_key("a", "w"));
        assert_ne!(lock_key("a", "v"), lock_key("a", ""));
    }
}
