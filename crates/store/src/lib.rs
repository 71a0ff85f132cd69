//! Freshet's result store: per SQL view, the results table, the view's operator state and
//! its progress over each input partition, committed together.
//!
//! # Invariant: one commit, one transaction
//!
//! [`ResultStore::commit`] writes a view's changed result rows, its changed operator state,
//! its late events and the progress it reached (next offset and watermark per input
//! partition) in **one** SQLite transaction. A crash at any point leaves the last complete
//! checkpoint: on restart the engine [`load`](ResultStore::load)s state and progress and
//! resumes from those offsets, so no event counts twice and none is lost (exactly-once).
//! Result rows are keyed by the view's group key and window, so writing a row again replaces
//! it instead of adding one.
//!
//! # The SQLite file
//!
//! [`SqliteStore`] keeps everything in one file (`results.db`) in WAL mode with
//! `synchronous = NORMAL`: a power loss may lose the last commits but never splits one, which
//! is what exactly-once needs. Readers (other connections, other processes, the `sqlite3`
//! shell) never block the writer, and the writer never blocks them. `busy_timeout` is 5 s;
//! foreign keys are off. `PRAGMA user_version` holds the schema version, 2; opening creates
//! or checks the schema (a writer adds what an older version lacks), and refuses a file
//! written by a newer version. The full description
//! for people reading the file is `docs/store-schema.md`.
//!
//! ## Results tables
//!
//! One table per view, named exactly as the view. Its columns are the view's result columns
//! in order, then:
//!
//! - `_state TEXT NOT NULL`: `'provisional'` (the row may still change) or `'final'`;
//! - `_updated_at TEXT NOT NULL`: when the row was last written, UTC
//!   `YYYY-MM-DD HH:MM:SS.fff`;
//!
//! and `PRIMARY KEY (<key columns>)` (the group keys and window columns). Arrow types map to
//! SQLite as follows; reading gives back the same Arrow types.
//!
//! | Arrow | SQLite | stored as |
//! |---|---|---|
//! | Int8/16/32/64, UInt8/16/32 | INTEGER (BIGINT for a one-column key: never the rowid) | the number |
//! | UInt64 | INTEGER | the number; above `i64::MAX` is refused |
//! | Float32/64 | REAL | the number; SQLite stores NaN as NULL |
//! | Boolean | INTEGER | 0 or 1 |
//! | Utf8, LargeUtf8, Utf8View | TEXT | the string |
//! | Timestamp(unit, tz) | TEXT | UTC `YYYY-MM-DD HH:MM:SS` + `.` and 3/6/9 digits for ms/us/ns |
//! | Date32 | TEXT | `YYYY-MM-DD` |
//! | Decimal128(p, s) | TEXT | Arrow's display, e.g. `123.45` |
//! | Binary, LargeBinary, BinaryView | BLOB | the bytes |
//!
//! Nulls are NULL. Times are UTC text of fixed width, so SQLite's date functions read them
//! and text order is time order; years outside 0000–9999 are refused. Other Arrow types are
//! refused when the view is created.
//!
//! ## Internal tables
//!
//! Named `freshet_*` (view names may not start with `freshet_`):
//!
//! - `freshet_views(view PRIMARY KEY, key_columns, schema, created_at_ms)`: each view's key
//!   columns (JSON array of names) and columns (JSON array of `{"name", "type", …,
//!   "nullable"}`).
//! - `freshet_progress(view, stream, partition, next_offset, watermark_ms)`, primary key
//!   `(view, stream, partition)`: the first offset not yet reflected, per input partition.
//! - `freshet_view_status(view PRIMARY KEY, watermark_ms, committed_at_ms, stats)`: the view's
//!   watermark, when it last committed (ms since the epoch) and the engine's counters (JSON).
//! - `freshet_state(view, key, value)`, primary key `(view, key)`, `WITHOUT ROWID`: opaque
//!   operator state.
//! - `freshet_late_events(view, stream, partition, offset, event_time, reason, row)`, primary
//!   key `(view, stream, partition, offset)`: late events kept by the view's policy; storing
//!   one again (a replay after a crash) keeps one row.
//! - `freshet_changes(view, seq, committed_at_ms, kind, progress, deletes, upserts)`, primary
//!   key `(view, seq)`: the change log, one entry per commit or repair that changed rows,
//!   written in its transaction and pruned to [`ChangeRetention`] (see [`ChangeEntry`]).
//!
//! # What this crate does not do
//!
//! It does not decide what to write: the engine computes results, state and progress, and
//! retries [`retriable`](StoreError::retriable) errors. It does not serialise operator
//! state (values are opaque bytes). It assumes one writing process per file, which the data
//! directory's lock guarantees.
#![deny(missing_docs)]

mod cells;
mod changes;
#[cfg(test)]
mod contract_tests;
mod definition;
mod discard;
mod error;
mod location;
mod model;
mod pg;
mod schema;
mod sql;
mod sqlite;

pub use changes::{
    ChangeEntry, ChangeKind, ChangeLog, ChangeRetention, ENTRY_BYTES_ENV, RETAIN_COMMITS_ENV,
};
pub use discard::DiscardStore;
pub use error::StoreError;
pub use location::StoreLocation;
pub use model::{
    Checkpoint, Commit, LateEvent, PartitionProgress, Progress, ResultBatch, ResultQuery,
    ResultRows, ResultTable, RowState, Task, ViewStatus,
};
pub use pg::{Cluster, Holder, LeaseRecord, PgLocation, PgStore, WorkerRecord};
pub use schema::SCHEMA_VERSION;
pub use sqlite::SqliteStore;

/// Where views keep their results, operator state and progress.
///
/// Every method that names a view fails with [`StoreError::User`] ("unknown view 'x'") if the
/// view was never created, except [`ResultStore::drop_view`], which is idempotent.
pub trait ResultStore: Send {
    /// Creates the view's results table and registers it. Creating a view that exists with
    /// the same columns, types and key does nothing; with different ones it is a user error
    /// naming the first difference.
    fn create_view(&mut self, table: &ResultTable) -> Result<(), StoreError>;

    /// Removes the view's results table, state, progress and late events, in one
    /// transaction; its change log is replaced by one [`ChangeKind::Dropped`] entry, so
    /// that a view created again under the name numbers on after it. Dropping a view
    /// that does not exist does nothing.
    fn drop_view(&mut self, view: &str) -> Result<(), StoreError>;

    /// The view's last committed progress and all its operator state: this store's
    /// task's ([`ResultStore::set_task`]), its partitions only.
    fn load(&self, view: &str) -> Result<Checkpoint, StoreError>;

    /// Applies one checkpoint in one transaction: upserts result rows by key, puts then
    /// deletes state entries, stores late events not already stored, and upserts the
    /// progress of each partition named and the view's watermark, stats and commit time.
    /// If rows are deleted or upserted, adds them to the view's change log
    /// ([`ResultStore::read_changes`]) and prunes it. On any error nothing is changed.
    fn commit(&mut self, view: &str, commit: &Commit) -> Result<(), StoreError>;

    /// Reads result rows in key order, at most
    /// [`RESULT_ROWS_PER_PAGE_MAX`](freshet_types::limits::RESULT_ROWS_PER_PAGE_MAX) at a time.
    ///
    /// `equals` may name key columns only. The time range keeps rows whose window overlaps
    /// `[from_ms, to_ms)` (`window_end > from` and `window_start < to`) if the table has
    /// `window_start` and `window_end` timestamp columns; otherwise rows whose only timestamp
    /// column is in `[from_ms, to_ms)`; a table with neither cannot be filtered by time.
    fn read_results(&self, view: &str, query: &ResultQuery) -> Result<ResultRows, StoreError>;

    /// The view's last committed progress and when it was committed. A view run per
    /// partition answers for its tasks together: every task's partitions (those of a task
    /// that has not committed yet at offset 0), the least of their watermarks (unknown
    /// until every task has one), the oldest task's commit time, and as stats a JSON array
    /// holding each task's, in partition order (null for a task not committed yet).
    fn status(&self, view: &str) -> Result<ViewStatus, StoreError>;

    /// The view's status and a page of its results, as [`ResultStore::status`] and
    /// [`ResultStore::read_results`] give them. The SQLite store reads both from one
    /// snapshot, so the freshness stated with the rows is exactly theirs; by default the
    /// status is read first and the rows may be newer than it says.
    fn read_page(
        &self,
        view: &str,
        query: &ResultQuery,
    ) -> Result<(ViewStatus, ResultRows), StoreError> {
        Ok((self.status(view)?, self.read_results(view, query)?))
    }

    /// Corrects result rows outside the streaming protocol (reconciliation and backfill), in
    /// one transaction: deletes the rows whose keys are those of the rows in `deletes`, then
    /// upserts `upserts` by key. Progress, state and status are untouched; the change log
    /// gains an entry of kind [`ChangeKind::Repair`] if rows changed.
    fn repair(
        &mut self,
        view: &str,
        upserts: &[ResultBatch],
        deletes: &[arrow_array::RecordBatch],
    ) -> Result<(), StoreError>;

    /// Reads the view's change log: its oldest and newest positions, and up to `limit`
    /// (at most [`CHANGE_READ_ENTRIES_MAX`](freshet_types::limits::CHANGE_READ_ENTRIES_MAX))
    /// entries after position `after_seq`, oldest first, all from one snapshot. Every
    /// commit and repair that changes rows adds an entry in its own transaction (see
    /// [`ChangeEntry`]); the log keeps the last [`ChangeRetention`] of them.
    fn read_changes(
        &self,
        view: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<ChangeLog, StoreError>;

    /// How much of each view's change log later commits keep (by default
    /// [`ChangeRetention::default`]). A store that keeps no log ignores it.
    fn set_change_retention(&mut self, _retention: ChangeRetention) {}

    /// Keeps a copy of the data directory's catalog files (`(file name, contents)`: the
    /// streams' and the views' declarations), replacing the last copy whole, where
    /// processes on other machines read it: the PostgreSQL store does, for workers
    /// ([`Cluster::catalog`]); a store inside the data directory has no need and ignores
    /// it.
    fn publish_catalog(&mut self, _files: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        Ok(())
    }

    /// The tasks `view` runs as, as its commits recorded them: the whole view, or one
    /// task per partition (see [`Task`]); the whole view if it never committed.
    fn tasks(&self, _view: &str) -> Result<Vec<Task>, StoreError> {
        Ok(vec![Task::Whole])
    }

    /// Makes this store write one task of the views it writes (the whole view unless
    /// told otherwise): their leases, operator state, progress and status are the task's.
    /// Only the PostgreSQL store runs a view per partition; the others refuse any task but
    /// the whole view. Called before [`ResultStore::claim_writer`].
    fn set_task(&mut self, task: Task) -> Result<(), StoreError> {
        match task {
            Task::Whole => Ok(()),
            Task::Partition { .. } => Err(StoreError::user(format!(
                "{task} of a view: only the PostgreSQL result store runs a view as one task \
                 per partition"
            ))),
        }
    }

    /// Makes this process the only writer of `view` until it exits or gives it up: a
    /// store that other processes can write (PostgreSQL) takes the view's lease, refusing,
    /// with a message naming the holder, while another process holds it, and returns the
    /// lease's epoch (the fencing token its commits carry). The SQLite store relies on its
    /// data directory's lock, always agrees and has no epoch. Called before a view loads
    /// its checkpoint.
    fn claim_writer(&mut self, _view: &str) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }

    /// Makes this process the only writer of `view`'s results for a repair (`reconcile
    /// --repair`, `backfill`): as [`ResultStore::claim_writer`] for a view run whole; for a
    /// view run per partition, the lease of every task, all or none (refused while a live
    /// process holds any). Its repairs are then checked against every lease it took.
    fn claim_for_repair(&mut self, view: &str) -> Result<(), StoreError> {
        self.claim_writer(view).map(|_| ())
    }

    /// Gives up what [`ResultStore::claim_writer`] took, once the view's last commit
    /// landed, so that another process may write it at once (a worker handing a view
    /// over). Does nothing for a view this store did not claim.
    fn release_writer(&mut self, _view: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether commits are kept. Only [`DiscardStore`] says no: a view run on it must not
    /// record its progress anywhere else either (such as the log's consumer positions).
    fn durable(&self) -> bool {
        true
    }
}
