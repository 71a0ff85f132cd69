//! A PostgreSQL store's connection: taken from the store's pool ([`super::pool`]) for a
//! reader's call or a writer's life, opened lazily (over TLS as `sslmode` says), checked
//! for a server new enough (15, for `NULLS NOT DISTINCT` keys), and opened again after it
//! is lost. After a retriable error the connection is dropped, so the next call starts on
//! a fresh one; a fresh connection checks that the store still holds its views' leases
//! ([`super::lease`]) before anything else runs on it, and is fenced if another process
//! took one meanwhile.
//!
//! Statements are prepared once per connection and kept by their text.

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
            for held in self.claimed.borrow().iter() {
                self.keep_lease(&mut fresh, held)?;
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
        self.location.connect()
    }
}

impl super::PgLocation {
    /// A new connection to the store's server, checked to be new enough.
    pub(super) fn connect(&self) -> Result<Client, StoreError> {
        let mut client = self
            .config
            .connect(self.tls.clone())
            .context(|| format!("connecting to {self} (sslmode={})", self.ssl_mode.name()))?;
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .context(|| format!("reading the server version of {self}"))?
            .get(0);
        if version < SERVER_VERSION_MIN {
            return Err(StoreError::user(format!(
                "{self} runs PostgreSQL {}.{}; the result store needs 15 or newer",
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

/// The advisory lock key of the schema's DDL.
pub(super) fn ddl_lock_key(schema: &str) -> i64 {
    let key = xxhash_rust::xxh3::xxh3_64(format!("freshet\0{schema}\0").as_bytes());
    i64::from_ne_bytes(key.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_lock_keys_differ_by_schema() {
        assert_ne!(ddl_lock_key("a"), ddl_lock_key("b"));
    }
}
