//! A PostgreSQL store's one connection: opened lazily, checked for a server new enough
//! (15, for `NULLS NOT DISTINCT` keys), and opened again after it is lost. After a
//! retriable error the connection is dropped, so the next call starts on a fresh one; a
//! fresh connection takes the store's writer locks again before anything else runs on it,
//! and fails if another process took one meanwhile.
//!
//! Statements are prepared once per connection and kept by their text.

use postgres::{Client, NoTls, Statement, Transaction};
use std::collections::HashMap;

use super::store::PgStore;
use crate::StoreError;
use crate::error::PostgresContext;

/// NULLS NOT DISTINCT keys need PostgreSQL 15.
const SERVER_VERSION_MIN: i32 = 150_000;

/// The connection and what depends on it.
#[derive(Default)]
pub(super) struct Connection {
    client: Option<Client>,
    /// Prepared statements of the current connection, by SQL text.
    statements: HashMap<String, Statement>,
}

impl PgStore {
    /// Runs `f` on a live connection, connecting (and re-taking writer locks) first if
    /// needed. A retriable error drops the connection, so the next call opens a new one.
    pub(super) fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client, &mut HashMap<String, Statement>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.borrow_mut();
        let Connection { client, statements } = &mut *conn;
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
            .connect(NoTls)
            .context(|| format!("connecting to {}", self.location))?;
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
