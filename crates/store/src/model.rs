//! The plain values that cross the store's interface: what a view's results table looks like,
//! what one commit carries, and what a load or a query gives back.
//!
//! These types hold no connection and do no I/O; every store implementation (SQLite today,
//! PostgreSQL later) speaks them.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde::{Deserialize, Serialize};
use std::fmt;

use freshet_types::limits::RESULT_ROWS_PER_PAGE_MAX;

/// Whether a result row may still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowState {
    /// The row's window is open or within allowed lateness: a later commit may change it.
    Provisional,
    /// The row's window has closed for good: no later commit changes it.
    Final,
}

impl RowState {
    /// The text stored in the `_state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Provisional => "provisional",
            RowState::Final => "final",
        }
    }

    /// Reads the text stored in the `_state` column.
    pub fn parse(text: &str) -> Option<RowState> {
        match text {
            "provisional" => Some(RowState::Provisional),
            "final" => Some(RowState::Final),
            _ => None,
        }
    }
}

impl fmt::Display for RowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shape of one view's results table.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultTable {
    /// The view's name, which is also the table's name.
    pub view: String,
    /// The result columns, in order.
    pub schema: SchemaRef,
    /// Names of the columns forming the primary key (group keys and window columns); never
    /// empty.
    pub key: Vec<String>,
}

/// Result rows to insert or replace, all in one state.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultBatch {
    /// The rows; the schema has the table's column names and types, in order.
    pub batch: RecordBatch,
    /// The state every row of the batch is stored with.
    pub state: RowState,
}

/// How far a view has consumed one input partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionProgress {
    /// The input stream.
    pub stream: String,
    /// The partition of that stream.
    pub partition: u32,
    /// The first offset not yet reflected in the view's results and state.
    pub next_offset: u64,
    /// The partition's watermark, in ms since the epoch, if one has been seen.
    pub watermark_ms: Option<i64>,
}

/// A view's progress over all its inputs, committed with its results and state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// One entry per input partition.
    pub partitions: Vec<PartitionProgress>,
    /// The view's watermark (the least of its inputs'), in ms since the epoch.
    pub watermark_ms: Option<i64>,
    /// Counters the engine keeps with the checkpoint (for example late events by policy);
    /// stored as JSON text.
    pub stats: serde_json::Value,
}

/// An event that arrived after its window closed and that the view's policy keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateEvent {
    /// The input stream.
    pub stream: String,
    /// The partition of that stream.
    pub partition: u32,
    /// The event's offset in that partition; with stream and partition, it identifies the
    /// event, so storing it twice keeps one row.
    pub offset: u64,
    /// The event's time, in ms since the epoch.
    pub event_time_ms: i64,
    /// Why the event was set aside (for example `after_allowed_lateness`).
    pub reason: String,
    /// The event as a JSON object.
    pub row_json: String,
}

/// Everything one checkpoint changes, applied in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// Result rows to remove, by key (rows in the table's shape; only their key columns are
    /// read), applied before the upserts. Deleting a key the table does not hold does
    /// nothing.
    pub deletes: Vec<RecordBatch>,
    /// Result rows to insert or replace, by key.
    pub upserts: Vec<ResultBatch>,
    /// Operator state entries to insert or replace.
    pub state_puts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Operator state keys to remove, applied before the puts: a key in both keeps the
    /// put's value.
    pub state_deletes: Vec<Vec<u8>>,
    /// Remove every operator state entry of the view before the deletes and puts: a batch
    /// run recomputed the view from the log and kept no operator state.
    pub state_reset: bool,
    /// Late events to keep; one already stored is not stored again.
    pub late: Vec<LateEvent>,
    /// The progress this commit reaches.
    pub progress: Progress,
}

/// Which part of a view one writer runs.
///
/// A view whose every operator keeps its rows of one partition apart (it splits by
/// partition: `freshet_engine::parallelism`) may run as one task per partition, each
/// reading partition `index` of every stream the view reads and writing result rows no
/// other task writes; every other view runs whole. A task commits its own operator state,
/// progress and status; the view's status is then the tasks' taken together (see
/// [`crate::ResultStore::status`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    /// The whole view: every partition of every stream.
    #[default]
    Whole,
    /// Partition `index` of every stream the view reads, one of `count` tasks.
    Partition {
        /// The partition.
        index: u32,
        /// How many partitions (and tasks) the view's streams have.
        count: u32,
    },
}

impl Task {
    /// The task's name in the store's tables: `view` for the whole view, `p<index>` for a
    /// partition.
    pub fn name(self) -> String {
        match self {
            Task::Whole => "view".to_owned(),
            Task::Partition { index, .. } => format!("p{index}"),
        }
    }

    /// How many tasks run the view.
    pub fn count(self) -> u32 {
        match self {
            Task::Whole => 1,
            Task::Partition { count, .. } => count,
        }
    }

    /// Whether the task reads partition `partition` of its streams.
    pub fn reads(self, partition: u32) -> bool {
        match self {
            Task::Whole => true,
            Task::Partition { index, .. } => index == partition,
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Task::Whole => f.write_str("the whole view"),
            Task::Partition { index, count } => write!(f, "partition {index} of {count}"),
        }
    }
}

/// What a view restarts from.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The last committed progress; `None` if the view never committed.
    pub progress: Option<Progress>,
    /// Every operator state entry, ordered by key bytes.
    pub state: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Which result rows to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultQuery {
    /// `(column, value)` pairs that must all match; only key columns may be named. The value
    /// is text, converted to the column's type (timestamps as RFC 3339 or the stored form).
    pub equals: Vec<(String, String)>,
    /// Keep rows whose time reaches past this instant, in ms since the epoch (see
    /// [`crate::ResultStore::read_results`]).
    pub from_ms: Option<i64>,
    /// Keep rows whose time starts before this instant, in ms since the epoch.
    pub to_ms: Option<i64>,
    /// Most rows to return; capped at [`RESULT_ROWS_PER_PAGE_MAX`].
    pub limit: usize,
    /// Rows to skip first, in key order.
    pub offset: usize,
}

impl Default for ResultQuery {
    /// Every row, as many as one answer may hold.
    fn default() -> ResultQuery {
        ResultQuery {
            equals: Vec::new(),
            from_ms: None,
            to_ms: None,
            limit: RESULT_ROWS_PER_PAGE_MAX,
            offset: 0,
        }
    }
}

/// One page of result rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRows {
    /// The table's columns, then `_state` (Utf8) and `_updated_at` (Timestamp(ms, "UTC")).
    pub batch: RecordBatch,
    /// Whether more rows match beyond this page.
    pub has_more: bool,
}

/// What the store knows about a view's last commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewStatus {
    /// The view.
    pub view: String,
    /// The last committed progress; `None` if the view never committed.
    pub progress: Option<Progress>,
    /// When the last commit happened, in ms since the epoch (wall clock).
    pub committed_at_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_state_text_round_trips() {
        for state in [RowState::Provisional, RowState::Final] {
            assert_eq!(RowState::parse(state.as_str()), Some(state));
        }
        assert_eq!(RowState::parse("Final"), None);
    }
}
