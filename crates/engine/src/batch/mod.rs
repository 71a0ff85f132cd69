//! Batch execution: SQL over the log run by DataFusion itself.
//!
//! Streams are [`LogTable`]s (the log read frame by frame, projected, frames outside the time
//! range skipped), `TUMBLE` and `HOP` are plain plans over them ([`windows`]), and views are
//! either recomputed from the log (a view's batch run, for reconciliation and backfill) or
//! read from the result store ([`StoreTable`], for ad-hoc queries). DataFusion plans,
//! optimises and executes the rest: joins, aggregates, sorts, with one scan partition per
//! log partition.

mod history;
mod log_table;
mod prepared;
mod select;
mod session;
mod store_table;
mod windows;

pub use history::{HistoryCounters, HistoryFile};
pub use log_table::LogTable;
pub use prepared::{Described, QueryError, QueryErrorKind};
pub use select::TimeRange;
pub(crate) use select::in_range;
pub use store_table::{SharedStore, StoreTable};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::catalog::view::ViewTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryPool, PeakRecordingPool, TrackConsumersPool, UnboundedMemoryPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use freshet_streams::StreamDef;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::error::{EngineError, Result};
use crate::sql::register_window_function;
use crate::views::ViewDef;
use windows::BatchWindowFunction;

/// What the views of a batch session are.
pub enum Views<'a> {
    /// Each view is its query, recomputed from the log (in creation order, so that a view
    /// may read earlier ones).
    Recomputed(&'a [ViewDef]),
    /// Each view is its stored results table (with `_state` and `_updated_at`).
    Stored(Vec<(String, Arc<dyn TableProvider>)>),
}

/// A DataFusion session over a data directory's log.
pub struct BatchSession {
    ctx: SessionContext,
    runtime: tokio::runtime::Runtime,
    scanned: Arc<AtomicU64>,
    /// The streams, for rewriting `SESSION` windows.
    streams: Arc<HashMap<String, StreamDef>>,
    history: Arc<HistoryCounters>,
    /// DataFusion's memory reservations (hash tables, sorts), with their high-water mark.
    memory: Arc<PeakRecordingPool>,
    /// Log rows the scans returned.
    rows: Arc<AtomicU64>,
}

impl BatchSession {
    /// A session over the streams of the data directory at `root`, each limited to `range`,
    /// with `history` files read beside their streams' logs ([`HistoryFile`]).
    pub fn new(
        root: &Path,
        streams: &[StreamDef],
        views: Views<'_>,
        range: TimeRange,
        history: &[HistoryFile],
    ) -> Result<BatchSession> {
        Self::build(root, streams, views, range, history, &HashMap::new(), None)
    }

    /// A session like [`BatchSession::new`] for people's queries (`freshet query`, `COPY`,
    /// the PostgreSQL endpoint): DataFusion may reserve at most `memory_max` bytes, sorts
    /// and aggregations spilling to disk beyond it, and a query that needs more than that
    /// otherwise fails with [`EngineError::QueryMemory`] instead of taking the process's
    /// memory.
    pub fn for_queries(
        root: &Path,
        streams: &[StreamDef],
        views: Views<'_>,
        history: &[HistoryFile],
        memory_max: usize,
    ) -> Result<BatchSession> {
        Self::build(
            root,
            streams,
            views,
            TimeRange::default(),
            history,
            &HashMap::new(),
            Some(memory_max),
        )
    }

    /// A session like [`BatchSession::new`] (without history) whose scans of each stream
    /// named in `bounds` read only its partitions' offsets `[start, end)` there: a running
    /// view's batch run reads exactly the offsets it has claimed.
    pub fn within(
        root: &Path,
        streams: &[StreamDef],
        views: Views<'_>,
        range: TimeRange,
        bounds: &HashMap<String, Vec<(u64, u64)>>,
    ) -> Result<BatchSession> {
        Self::build(root, streams, views, range, &[], bounds, None)
    }

    fn build(
        root: &Path,
        streams: &[StreamDef],
        views: Views<'_>,
        range: TimeRange,
        history: &[HistoryFile],
        bounds: &HashMap<String, Vec<(u64, u64)>>,
        memory_max: Option<usize>,
    ) -> Result<BatchSession> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let config = SessionConfig::new()
            .with_target_partitions(threads)
            .with_information_schema(true);
        let pool: Arc<dyn MemoryPool> = match memory_max {
            // The error then names the operators that hold the most.
            Some(max) => Arc::new(TrackConsumersPool::new(
                FairSpillPool::new(max),
                std::num::NonZeroUsize::new(3).expect("3 is not 0"),
            )),
            None => Arc::new(UnboundedMemoryPool::default()),
        };
        let memory = Arc::new(PeakRecordingPool::new(pool));
        let runtime_env = RuntimeEnvBuilder::new()
            .with_memory_pool(memory.clone())
            .build_arc()?;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime_env)
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        let streams_dir = root.join("streams");
        let scanned = Arc::new(AtomicU64::new(0));
        let by_name: Arc<HashMap<String, StreamDef>> = Arc::new(
            streams
                .iter()
                .map(|s| (s.name.clone(), s.clone()))
                .collect(),
        );
        if let Some(file) = history.iter().find(|f| !by_name.contains_key(&f.stream)) {
            return Err(EngineError::Input(format!(
                "history file {} is for stream '{}', which does not exist",
                file.path.display(),
                file.stream
            )));
        }
        let history_counters = Arc::new(HistoryCounters::default());
        let rows = Arc::new(AtomicU64::new(0));
        let mut tables = HashMap::new();
        for def in streams {
            let files = history
                .iter()
                .filter(|f| f.stream == def.name)
                .cloned()
                .collect();
            let mut table = LogTable::new(def, streams_dir.join(&def.name), range, scanned.clone())
                .counting_rows(rows.clone())
                .with_history(files, history_counters.clone())?;
            if let Some(bounds) = bounds.get(&def.name) {
                table = table.within(bounds.clone());
            }
            tables.insert(def.name.clone(), Arc::new(table));
        }
        let tables = Arc::new(tables);
        for name in ["tumble", "hop", "session"] {
            let function = Arc::new(BatchWindowFunction {
                name,
                streams: by_name.clone(),
                tables: tables.clone(),
            });
            register_window_function(&ctx, name, function);
        }
        for (name, table) in tables.iter() {
            ctx.register_table(name, table.clone())?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .map_err(|source| EngineError::Io {
                context: "start the batch runtime".into(),
                source,
            })?;
        let session = BatchSession {
            ctx,
            runtime,
            scanned,
            streams: by_name,
            history: history_counters,
            memory,
            rows,
        };
        match views {
            Views::Recomputed(views) => {
                for view in views {
                    let plan = session.logical_plan(&view.query)?;
                    session.ctx.register_table(
                        &view.name,
                        Arc::new(ViewTable::new(plan, Some(view.query.clone()))),
                    )?;
                }
            }
            Views::Stored(tables) => {
                for (name, table) in tables {
                    session.ctx.register_table(&name, table)?;
                }
            }
        }
        Ok(session)
    }

    /// The most memory DataFusion's operators held at once so far, in bytes (what they
    /// reserve: hash tables, sort buffers; not the batches in flight between them).
    pub fn peak_memory(&self) -> usize {
        self.memory.peak_reserved()
    }

    /// Log rows the session's scans returned so far (within their ranges).
    pub fn rows_scanned(&self) -> u64 {
        self.rows.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the session's scans of history files read so far.
    pub fn history(&self) -> &HistoryCounters {
        &self.history
    }

    /// Bytes of log frames the session's scans have read so far (a progress measure: a
    /// whole-log scan reads every byte of its streams' partitions).
    pub fn scanned(&self) -> Arc<AtomicU64> {
        self.scanned.clone()
    }

    fn logical_plan(&self, sql: &str) -> Result<LogicalPlan> {
        let sql = session::rewrite(sql, &self.streams);
        let state = self.ctx.state();
        let plan = self
            .runtime
            .block_on(state.create_logical_plan(&sql))
            .map_err(EngineError::from)?;
        refuse_non_queries(&plan)?;
        Ok(plan)
    }

    /// Runs a query, handing each result batch to `each` as it is produced (nothing is
    /// held beyond what DataFusion's operators need); returns the result schema.
    pub fn for_each(
        &self,
        sql: &str,
        mut each: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<SchemaRef> {
        use futures::StreamExt;
        let plan = self.logical_plan(sql)?;
        self.runtime.block_on(async {
            let frame = self.ctx.execute_logical_plan(plan).await?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let mut stream = frame.execute_stream().await?;
            while let Some(batch) = stream.next().await {
                each(&batch?)?;
            }
            Ok(schema)
        })
    }

    /// Runs a query to completion: its schema and every result batch.
    pub fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let plan = self.logical_plan(sql)?;
        self.runtime.block_on(async {
            let frame = self.ctx.execute_logical_plan(plan).await?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await?;
            Ok((schema, batches))
        })
    }
}

/// Refuses a plan that anywhere in it writes (`INSERT`, `COPY ... TO`), defines tables or
/// sets options: a session only runs queries. The whole plan is walked, subqueries and
/// `EXPLAIN ANALYZE` (which runs its input) included, so a write cannot hide below the top.
pub(crate) fn refuse_non_queries(plan: &LogicalPlan) -> Result<()> {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(plan)
        .map_err(|_| {
            EngineError::Sql(
                "only queries run here; they cannot write, define tables or set options".into(),
            )
        })
}
