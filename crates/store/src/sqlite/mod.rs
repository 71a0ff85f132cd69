//! The SQLite result store: one file, WAL mode, one transaction per commit.
//!
//! The writer holds one connection and caches each view's column list and statements, so a
//! commit is a run of prepared-statement executions inside `BEGIN IMMEDIATE … COMMIT`.
//! Result rows are written up to 64 per statement, which saves SQLite's per-statement cost.
//! Taking the write lock at `BEGIN` means a busy database fails (after the busy timeout)
//! before anything was written, never halfway. Reads run on the same kind of connection,
//! opened read-only by other processes; each read sees one committed snapshot.
//!
//! The writer's cache of view definitions is only correct with one writer per file, which
//! the data directory's lock guarantees. A read-only connection caches definitions while
//! SQLite's schema cookie is unchanged and view statuses while no connection has committed
//! (`PRAGMA data_version`), so a key lookup costs the lookup, not the catalog.
//!
//! - [`store`]: the handle;
//! - [`result_store`]: the [`ResultStore`](crate::ResultStore) interface over the modules
//!   below;
//! - [`open`]: opening a file, its pragmas and its schema version;
//! - [`cache`]: view definitions with the statements that write them, and a reader's cache;
//! - [`catalog`]: loading and caching those definitions;
//! - [`statements`]: the SQL that writes result rows;
//! - [`ddl`]: the tables' SQL, creating and dropping views;
//! - [`read`]: snapshots, pages of results, statuses and checkpoints;
//! - [`write`](mod@write): commits, upserts and repairs.

mod cache;
mod catalog;
mod ddl;
mod open;
mod read;
mod result_store;
mod statements;
mod store;
mod write;

pub use store::SqliteStore;
