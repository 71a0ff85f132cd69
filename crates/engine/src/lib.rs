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

impl Stats {
    /// The counters a view's stored status holds (`freshet_store::ViewStatus`): one
    /// object, or, for a view run as one task per partition, an array of each task's
    /// (null for a task that has not committed), taken together here: counts and state
    /// added up, each stream's watermark and the reflected time the least (unknown if any
    /// task's is), latencies merged. Counters that cannot be read are zero, as for a view
    /// that never committed.
    pub fn from_stored(stored: &serde_json::Value) -> Stats {
        let read = |v: &serde_json::Value| Stats::deserialize(v).unwrap_or_default();
        match stored {
            serde_json::Value::Array(tasks) => {
                let mut all = tasks.iter().map(read);
                let first = all.next().unwrap_or_default();
                all.fold(first, Stats::with_task)
            }
            one => read(one),
        }
    }

    /// These counters and another task's of the same view (see [`Stats::from_stored`]).
    fn with_task(mut self, task: Stats) -> Stats {
        self.input_events += task.input_events;
        self.late_dropped += task.late_dropped;
        self.late_dead_lettered += task.late_dead_lettered;
        self.late_updated += task.late_updated;
        self.rows_written += task.rows_written;
        self.rows_deleted += task.rows_deleted;
        self.state_bytes += task.state_bytes;
        self.state_bytes_peak += task.state_bytes_peak;
        self.reflected_ms = self
            .reflected_ms
            .zip(task.reflected_ms)
            .map(|(a, b)| a.min(b));
        self.commit_retries += task.commit_retries;
        self.ingest_to_commit_ms.add(&task.ingest_to_commit_ms);
        self.commit_ms.add(&task.commit_ms);
        let streams: std::collections::BTreeSet<String> = self
            .watermarks
            .keys()
            .chain(task.watermarks.keys())
            .cloned()
            .collect();
        // A stream's watermark is known once every task has one.
        self.watermarks = streams
            .into_iter()
            .filter_map(|s| {
                let (a, b) = (self.watermarks.get(&s)?, task.watermarks.get(&s)?);
                Some((s, *a.min(b)))
            })
            .collect();
        self.mode_switches += task.mode_switches;
        self.period_ms = self.period_ms.max(task.period_ms);
        self.last_ingest_ms.extend(task.last_ingest_ms);
        self.batch_runs += task.batch_runs;
        self.state_in_log |= task.state_in_log;
        self.needed_from.extend(task.needed_from);
        self.batch_run_memory_bytes = self.batch_run_memory_bytes.max(task.batch_run_memory_bytes);
        self.batch_run_events += task.batch_run_events;
        self
    }
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
