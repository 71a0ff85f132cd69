//! One writer per view: a session-level advisory lock keyed by the schema and the view,
//! taken before a view loads its checkpoint and held for as long as the connection lives.
//!
//! Another process claiming the same view is refused with a message naming the holder
//! (backend pid, application name, client address); the lock goes when the holder's
//! connection does, whether it exits, crashes or has its backend terminated.

use postgres::Client;

use super::store::PgStore;
use crate::StoreError;
use crate::error::PostgresContext;

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
