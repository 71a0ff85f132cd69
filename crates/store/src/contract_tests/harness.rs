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

use crate::{ResultStore, StoreLocation};

// The same schema-per-test helper the engine's and the end-to-end tests use; not every
// helper in it is needed here.
#[allow(dead_code)]
#[path = "../../../../tests/common/postgres.rs"]
mod pg;

use pg::PgSchema;

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
        let schema = PgSchema::new(&format!("store_{test}"))?;
        let location =
            StoreLocation::parse(&schema.store_url()).expect("the test server's URL is valid");
        assert!(
            location.is_shared(),
            "FRESHET_TEST_POSTGRES_URL must be a postgres:// URL, not {}",
            schema.url
        );
        Some(TestStore {
            location,
            place: Place::Postgres(schema),
        })
    }

    /// Where the store lives.
    pub(crate) fn location(&self) -> &StoreLocation {
        &self.location
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
                // `schema=` comes last in the URL: this names a schema never created.
                StoreLocation::parse(&format!("{}_none", schema.store_url()))
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

    /// Turns the store back into one of schema version 1, as an older Freshet left it: no
    /// change log, version 1 recorded.
    pub(crate) fn make_version_1(&self) {
        match &self.place {
            Place::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .and_then(|conn| {
                    conn.execute_batch("DROP TABLE freshet_changes; PRAGMA user_version = 1;")
                })
                .expect("downgrade"),
            Place::Postgres(_) => self
                .postgres_client()
                .batch_execute(&format!(
                    "DROP TABLE {}; UPDATE {} SET value = '1' WHERE key = 'schema_version'",
                    self.table("freshet_changes"),
                    self.table("freshet_meta")
                ))
                .expect("downgrade"),
        }
    }

    /// The schema version the store records.
    pub(crate) fn schema_version(&self) -> i64 {
        match &self.place {
            Place::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .and_then(|conn| conn.query_row("PRAGMA user_version", [], |row| row.get(0)))
                .expect("read the version"),
            Place::Postgres(_) => {
                let text: String = self
                    .postgres_client()
                    .query_one(
                        &format!(
                            "SELECT value FROM {} WHERE key = 'schema_version'",
                            self.table("freshet_meta")
                        ),
                        &[],
                    )
                    .expect("read the version")
                    .get(0);
                text.parse().expect("a number")
            }
        }
    }

    pub(crate) fn postgres_client(&self) -> postgres::Client {
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
