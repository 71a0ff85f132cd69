//! Freshet's SQL views: planning with DataFusion, streaming operators, watermarks, and
//! exactly-once commits into the result store.
//!
//! A view's SQL is planned by DataFusion (`sql`), compiled into a tree of synchronous
//! operators (`compile`, `node`, `source`, `aggregate`, `join`), and run by a `runner`
//! that reads the log, tracks watermarks and commits results, operator state and input
//! offsets together. Vocabulary (`Offset`, `Watermark`, `Window`) lives in `freshet-types`.

#![deny(missing_docs)]

pub mod accumulate;
pub mod aggregate;
pub mod batch;
pub mod clock;
pub mod committer;
pub mod compile;
pub mod copy;
pub mod error;
pub mod explain;
pub mod flink_windows;
pub mod freshness;
pub mod grouping_sets;
pub mod histogram;
pub mod join;
pub mod manage;
pub mod node;
pub mod options;
pub mod over;
pub mod parallelism;
pub mod planner;
pub mod ranked;
pub mod reconcile;
pub mod rows;
pub mod runner;
pub mod source;
pub mod sql;
pub mod statement;
pub mod top_n;
pub mod views;
pub mod watermarks;
pub mod whole_partition;
pub mod window;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{EngineError, Result};
pub use options::{EmitPolicy, LatePolicy, ModeChoice, ViewOptions};
pub use runner::{Progressed, ViewRunner, compile_view, compile_view_over, result_table};
pub use statement::{LazyStore, Statement};
pub use views::{ViewCatalog, ViewDef, ViewStatement, parse_view_statement};

use freshet_store::LateEvent;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counters a view keeps across restarts (committed with its progress).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Events read from the log.
    pub input_events: u64,
    /// Late events discarded (`late_data = 'drop'`).
    pub late_dropped: u64,
    /// Late events kept in `freshet_late_events` (`late_data = 'dead_letter'`, or
    /// `'update'` beyond the allowed lateness).
    pub late_dead_lettered: u64,
    /// Events after the watermark, within the allowed lateness, that amended a written
    /// provisional row (`late_data = 'update'`).
    pub late_updated: u64,
    /// Result rows written (upserts, counting re-writes).
    pub rows_written: u64,
    /// Result rows deleted by key (groups that stopped qualifying, rows that left a top N,
    /// provisional sessions that grew), counting keys the store did not hold.
    pub rows_deleted: u64,
    /// Operator state at the last commit, in approximate bytes (what `state_bytes_max` caps).
    pub state_bytes: u64,
    /// The largest `state_bytes` seen at any commit.
    pub state_bytes_peak: u64,
    /// At the last commit, the time (ms since the epoch) before which every ingested event
    /// is reflected in the results: the commit time if every input partition was read to
    /// its end, else the ingest time of the last frame read from the least advanced
    /// partition (ingest times grow along a partition). `None` until known. A view's
    /// staleness is now minus this while it is behind the log, and 0 when caught up.
    pub reflected_ms: Option<i64>,
    /// Store commits that failed with a retriable error and were retried.
    pub commit_retries: u64,
    /// Per event read, from its ingest time to the start of the commit that made its
    /// effect durable (a windowed view's row may still wait for its window to close).
    pub ingest_to_commit_ms: histogram::Histogram,
    /// Duration of each successful store commit (recorded with the next commit).
    pub commit_ms: histogram::Histogram,
    /// Each input stream's watermark at the last commit.
    pub watermarks: BTreeMap<String, i64>,
    /// Times the planner moved the view to another mode.
    pub mode_switches: u64,
    /// The mode the view ran in at the last commit (`streaming`, `micro_batch`, `batch`).
    pub mode: Option<planner::Mode>,
    /// Its period then, ms (between commits under streaming, between runs otherwise).
    pub period_ms: u64,
    /// Newest ingest time read from each partition (`stream/partition`), so that idleness
    /// is judged the same after a restart.
    pub last_ingest_ms: BTreeMap<String, i64>,
    /// Batch runs executed by DataFusion (batch mode of a view it can run; see
    /// `runner::batch_run`).
    pub batch_runs: u64,
    /// The operators hold no state: batch runs recompute open windows from the log, and
    /// the state is rebuilt from the log before the operators run again.
    pub state_in_log: bool,
    /// While `state_in_log`: per partition (`stream/partition`), the first offset whose
    /// events an open window may still need (the log is kept from there).
    pub needed_from: BTreeMap<String, u64>,
    /// The last batch run's peak DataFusion memory, bytes, and the log rows its scans read
    /// (the planner's estimate of a run's memory per event).
    pub batch_run_memory_bytes: u64,
    /// See `batch_run_memory_bytes`.
    pub batch_run_events: u64,
}

/// What operators need to know while they run, and what they report back.
pub struct Ctx {
    /// The view's name, for errors.
    pub view: String,
    /// The late-data policy.
    pub late_policy: LatePolicy,
    /// The state cap.
    pub state_bytes_max: u64,
    /// Late events to dead-letter at the next commit.
    pub late: Vec<LateEvent>,
    /// Counters.
    pub stats: Stats,
    /// The streams have ended: everything becomes final.
    pub end_of_stream: bool,
    /// Provisional updates are due at this commit.
    pub emit_due: bool,
    /// Events are being read again to rebuild state: an event of a final window was
    /// handled when it was first read and is skipped without being counted.
    pub replaying: bool,
}

impl Ctx {
    /// An event too late to change any row that is not final: counted, and kept as a
    /// dead letter unless the view's policy drops it (`update`, which amends only rows
    /// that are not final yet, keeps it too). `event` is built only when it is kept.
    /// While state is rebuilt from the log the event was handled when first read: nothing.
    pub fn set_aside(
        &mut self,
        event: impl FnOnce() -> error::Result<LateEvent>,
    ) -> error::Result<()> {
        if self.replaying {
            return Ok(());
        }
        match self.late_policy {
            LatePolicy::Drop => self.stats.late_dropped += 1,
            LatePolicy::DeadLetter | LatePolicy::Update => {
                self.stats.late_dead_lettered += 1;
                self.late.push(event()?);
            }
        }
        Ok(())
    }

    /// Refuses an operator's state of `bytes` over the view's `state_bytes_max`: the view
    /// stops with a clear error rather than run out of memory.
    pub fn check_state(&self, bytes: usize) -> error::Result<()> {
        if bytes as u64 > self.state_bytes_max {
            return Err(error::EngineError::StateLimit {
                view: self.view.clone(),
                bytes: bytes as u64,
                cap: self.state_bytes_max,
            });
        }
        Ok(())
    }
}
