//! The stores the contract tests run against: a SQLite file in a temporary directory, or a
//! schema of its own on the PostgreSQL server of `FRESHET_TEST_POSTGRES_URL`, dropped when
//! the test ends.
//!
//! A test opens stores through [`TestStore`], the factory, exactly as the binary does
//! (through [`StoreLocation`]), so it sees only the [`ResultStore`] interface. The few
//! checks that the interface cannot express (a table is gone, a row is counted once, a
//! writer holds a transaction open) go through a raw connection of the test's own, with
//! SQL that both backends read alike.
//!
//! Without the variable the PostgreSQL half of each test says `SKIPPED` loudly and passes;
//! under `FRESHET_CI` it fails instead, since CI must not skip.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{ResultStore, StoreLocation};

/// The server's URL from `FRESHET_TEST_POSTGRES_URL`, or `None` (said loudly) when none is
/// configured. Under `FRESHET_CI` a missing server fails the test instead.
fn postgres_url() -> Option<String> {
    match std::env::var("FRESHET_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("FRESHET_CI").is_some() => {
            panic!("FRESHET_TEST_POSTGRES_URL is not set; CI runs the PostgreSQL store tests")
        }
        _ => {
            eprintln!(
                "SKIPPED: FRESHET_TEST_POSTGRES_URL is not set, so the PostgreSQL store is not \
                 tested (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// A schema of its own on the test server, dropped with everything in it when the test
/// ends, so that tests never see each other's data.
struct PgSchema {
    url: String,
    name: String,
}

impl PgSchema {
    /// A new schema name for `test`, unique per process and test; `None` without a server.
    fn new(test: &str) -> Option<PgSchema> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // PostgreSQL names hold 63 bytes; the store refuses longer ones rather than have
        // them cut. The test's name is kept to a prefix, for whoever looks at the server.
        let test: String = test.chars().take(24).collect();
        Some(PgSchema {
            url: postgres_url()?,
            name: format!(
                "t_store_{test}_{}_{}_{nanos:x}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ),
        })
    }

    /// The store URL of `schema` on this server.
    fn store_url(&self, schema: &str) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}schema={schema}", self.url)
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to PostgreSQL")
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ =
                client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
        }
    }
}

/// Where the test's store lives, kept for as long as the test runs.
enum Place {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(PgSchema),
}

/// One test's store: opens it (again, read-only, or as another process would) and looks at
/// its tables directly.
pub(crate) struct TestStore {
    location: StoreLocation,
    place: Place,
}

impl TestStore {
    /// A SQLite file of its own.
    pub(crate) fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("results.db");
        TestStore {
            location: StoreLocation::Sqlite(path.clone()),
            place: Place::Sqlite { _dir: dir, path },
        }
    }

    /// A PostgreSQL schema of its own for `test`; `None` (said loudly) without a server.
    pub(crate) fn postgres(test: &str) -> Option<TestStore> {
        let schema = PgSchema::new(test)?;
        let location = StoreLocation::parse(&schema.store_url(&schema.name))
            .expect("the test server's URL is valid");
        Some(TestStore {
            location,
            place: Place::Postgres(schema),
        })
    }

    /// Opens the store for writing, as a process starting up would.
    pub(crate) fn open(&self) -> Box<dyn ResultStore> {
        self.location.open().expect("open the store")
    }

    /// Opens the store for reading only, as a reader beside the writer would.
    pub(crate) fn open_read_only(&self) -> Box<dyn ResultStore> {
        self.location
            .open_read_only()
            .expect("open the store read-only")
    }

    /// A location of the same kind where no store was ever created.
    pub(crate) fn missing(&self) -> StoreLocation {
        match &self.place {
            Place::Sqlite { path, .. } => StoreLocation::Sqlite(path.with_file_name("missing.db")),
            Place::Postgres(schema) => {
                StoreLocation::parse(&schema.store_url(&format!("{}_none", schema.name)))
                    .expect("the test server's URL is valid")
            }
        }
    }

    /// `table` of the store, quoted (and qualified by the schema in PostgreSQL).
    pub(crate) fn table(&self, table: &str) -> String {
        match &self.place {
            Place::Sqlite { .. } => format!("\"{table}\""),
            Place::Postgres(schema) => format!("\"{}\".\"{table}\"", schema.name),
        }
    }

    /// How many rows `table` holds, counted on a connection of the test's own.
    pub(crate) fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {}", self.table(table));
        match &self.place {
            Place::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .and_then(|conn| conn.query_row(&sql, [], |row| row.get(0)))
                .expect("count the rows"),
            Place::Postgres(schema) => schema
                .client()
                .query_one(&sql, &[])
                .expect("count the rows")
                .get(0),
        }
    }

    /// Whether the store holds a table named `table`.
    pub(crate) fn has_table(&self, table: &str) -> bool {
        match &self.place {
            Place::Sqlite { path, .. } => {
                let tables: i64 = rusqlite::Connection::open(path)
                    .and_then(|conn| {
                        conn.query_row(
                            "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                            [table],
                            |row| row.get(0),
                        )
                    })
                    .expect("look the table up");
                tables > 0
            }
            Place::Postgres(_) => self
                .postgres_client()
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.table(table)])
                .expect("look the table up")
                .get(0),
        }
    }

    /// Runs `sql` in a write transaction on a connection of the test's own, and leaves the
    /// transaction open until [`Uncommitted::commit`].
    pub(crate) fn uncommitted(&self, sql: &str) -> Uncommitted {
        match &self.place {
            Place::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).expect("open a connection");
                conn.execute_batch(&format!("BEGIN IMMEDIATE; {sql}"))
                    .expect("open a write transaction");
                Uncommitted::Sqlite(conn)
            }
            Place::Postgres(_) => {
                let mut client = self.postgres_client();
                client
                    .batch_execute(&format!("BEGIN; {sql}"))
                    .expect("open a write transaction");
                Uncommitted::Postgres(Box::new(client))
            }
        }
    }

    fn postgres_client(&self) -> postgres::Client {
        match &self.place {
            Place::Postgres(schema) => schema.client(),
            Place::Sqlite { .. } => unreachable!("a SQLite store has no PostgreSQL client"),
        }
    }
}

/// A write transaction a test holds open on its own connection.
pub(crate) enum Uncommitted {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

impl Uncommitted {
    /// Commits the transaction.
    pub(crate) fn commit(self) {
        match self {
            Uncommitted::Sqlite(conn) => conn.execute_batch("COMMIT").expect("commit"),
            Uncommitted::Postgres(mut client) => client.batch_execute("COMMIT").expect("commit"),
        }
    }
}
