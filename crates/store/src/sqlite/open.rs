//! Opening a SQLite store: the connection's settings (busy timeout, WAL,
//! `synchronous = NORMAL`, no foreign keys, the writer's page cache, the statement cache)
//! and the schema version in `PRAGMA user_version`.
//!
//! A writer creates the store's own tables and records the version if the file has none; a
//! reader only checks. Either refuses a file written by a newer Freshet rather than guess.

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

use super::ddl::INTERNAL_DDL;
use super::store::SqliteStore;
use crate::StoreError;
use crate::error::SqliteContext;
use crate::schema::SCHEMA_VERSION;

/// How long a statement waits for another connection's lock before failing with a
/// retriable error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection: the shared commit statements plus two upserts
/// (one row, many rows) and a delete per view, with room for the read queries of a few
/// filter shapes.
const STATEMENT_CACHE_CAPACITY: usize = 64;

/// Page cache of the writer's connection, in KiB (SQLite's default is 2 MiB), filled only
/// as pages are read. A commit touches pages all over the results tables' B-trees; a
/// cache that holds them saves reading them back from the OS, and spilling dirty pages of
/// a large commit to the WAL before it ends (256 MiB against 64: about 14 % less CPU for a
/// deduplication writing a row per event, BENCHMARKS.md).
const WRITER_CACHE_KIB: i64 = 256 * 1024;

impl SqliteStore {
    /// Opens the store for writing, creating the file and its tables if needed. Opening an
    /// existing store changes nothing; a store written by a newer Freshet is refused.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path)
            .context(|| format!("opening the result store {}", path.display()))?;
        let at = || format!("configuring the result store {}", path.display());
        conn.busy_timeout(BUSY_TIMEOUT).context(at)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .context(at)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::user(format!(
                "the result store {} cannot use WAL mode (journal mode is '{mode}'); put it \
                 on a local file system",
                path.display()
            )));
        }
        // Consistency is what exactly-once needs: a power loss may lose the last commits
        // but never splits one.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .context(at)?;
        conn.pragma_update(None, "foreign_keys", "OFF")
            .context(at)?;
        // A negative cache_size is in KiB rather than pages.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .context(at)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);

        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(at)?;
        let version = schema_version(&tx, path)?;
        if version > SCHEMA_VERSION {
            return Err(newer_version(path, version));
        }
        tx.execute_batch(INTERNAL_DDL)
            .context(|| format!("creating the tables of {}", path.display()))?;
        if version < SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .context(at)?;
        }
        tx.commit().context(at)?;
        tracing::info!(path = %path.display(), schema_version = SCHEMA_VERSION, "result store opened");
        Ok(SqliteStore::new(conn, path.to_owned(), false))
    }

    /// Opens a scratch store at `path` (created if needed): it keeps what it is given, so
    /// commits cost what they cost, but says it is not
    /// [`durable`](crate::ResultStore::durable), so that nothing treats its commits as
    /// progress (`freshet explain`'s sample runs).
    pub fn open_scratch(path: &Path) -> Result<SqliteStore, StoreError> {
        Ok(SqliteStore {
            durable: false,
            ..SqliteStore::open(path)?
        })
    }

    /// Opens an existing store for reading only; it never blocks the writer.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        match std::fs::metadata(path) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::user(format!(
                    "there is no result store at {}: the file does not exist",
                    path.display()
                )));
            }
            Err(error) => {
                return Err(StoreError::io(
                    format!("looking for the result store {}", path.display()),
                    error,
                ));
            }
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .context(|| format!("opening the result store {} read-only", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .context(|| format!("configuring the result store {}", path.display()))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        let version = schema_version(&conn, path)?;
        if version == 0 {
            return Err(StoreError::user(format!(
                "{} is not a Freshet result store (its schema version is 0)",
                path.display()
            )));
        }
        if version > SCHEMA_VERSION {
            return Err(newer_version(path, version));
        }
        Ok(SqliteStore::new(conn, path.to_owned(), true))
    }
}

fn schema_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .context(|| format!("reading the schema version of {}", path.display()))
}

fn newer_version(path: &Path, version: i64) -> StoreError {
    StoreError::user(format!(
        "the result store {} has schema version {version}, written by a newer Freshet; this \
         build knows version {SCHEMA_VERSION}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::store::temp_store;

    #[test]
    fn open_is_idempotent_and_sets_wal_and_the_schema_version() {
        let (dir, store) = temp_store();
        drop(store);
        let store = SqliteStore::open(&dir.path().join("results.db")).expect("reopen");
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        store
            .conn
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("pretend a newer version wrote the file");
        drop(store);
        let error = SqliteStore::open(&dir.path().join("results.db")).expect_err("newer");
        assert!(error.to_string().contains("newer Freshet"), "{error}");
    }

    /// Issue 19: SQLite before 3.51.3 can corrupt a WAL database when a checkpoint resets
    /// the WAL while another connection writes, which is the default store's pattern.
    #[test]
    fn issue_19_the_linked_sqlite_has_the_wal_reset_fix() {
        let (_dir, store) = temp_store();
        let version: String = store
            .conn
            .query_row("SELECT sqlite_version()", [], |r| r.get(0))
            .expect("the version");
        let parts: Vec<u32> = version
            .split('.')
            .map(|p| p.parse().expect("a numeric version part"))
            .collect();
        assert!(
            parts.as_slice() >= [3, 51, 3].as_slice(),
            "SQLite {version} is linked; 3.51.3 or later is needed (the WAL-reset bug)"
        );
    }

    #[test]
    fn open_read_only_refuses_a_missing_file() {
        let (dir, _store) = temp_store();
        let error =
            SqliteStore::open_read_only(&dir.path().join("missing.db")).expect_err("no such file");
        assert!(matches!(error, StoreError::User { .. }));
        assert!(error.to_string().contains("does not exist"), "{error}");
    }
}
