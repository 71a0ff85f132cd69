//! A stream's log as a DataFusion table, for batch queries: one scan partition per log
//! partition, read frame by frame as DataFusion pulls batches (memory stays at one frame per
//! partition), only the projected columns kept, and frames whose event-time bounds miss the
//! query's time range skipped without decoding.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::memory::{LazyBatchGenerator, LazyMemoryExec};
use freshet_streams::StreamDef;
use freshet_streams::input::{ChunkReader, open_reader};
use freshet_types::Offset;
use parking_lot::RwLock;
use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::history::{HistoryCounters, HistoryFile, HistoryScan, log_start_ms};
use super::select::{TimeRange, project, select_rows};

/// Bytes of frames read from a partition at a time.
const READ_BYTES: usize = 4 << 20;

/// A stream's log, scanned in batch.
#[derive(Debug)]
pub struct LogTable {
    def: StreamDef,
    /// The stream's directory (`<data dir>/streams/<name>`).
    dir: PathBuf,
    /// Rows outside this range are never returned.
    range: TimeRange,
    time_column: usize,
    /// Bytes of frames read by every scan of this table, for progress reports.
    scanned: Arc<AtomicU64>,
    /// Log rows every scan of this table returned (within its range and bounds).
    rows: Arc<AtomicU64>,
    /// Files of the stream's events from before its log, each one more scan partition.
    history: Vec<HistoryFile>,
    /// The log's first event time: history rows at or after it are the log's.
    log_start_ms: Option<i64>,
    history_counters: Arc<HistoryCounters>,
    /// Per partition, the offsets `[start, end)` the scan reads (a running view's batch
    /// run reads exactly what it has claimed, from the first frame it may need); `None`
    /// reads everything.
    bounds: Option<Vec<(u64, u64)>>,
}

impl LogTable {
    /// The stream `def` whose partitions live under `dir`, limited to `range`; the bytes
    /// its scans read are added to `scanned`.
    pub fn new(
        def: &StreamDef,
        dir: PathBuf,
        range: TimeRange,
        scanned: Arc<AtomicU64>,
    ) -> LogTable {
        LogTable {
            time_column: def.column_index(&def.event_time).unwrap_or(0),
            def: def.clone(),
            dir,
            range,
            scanned,
            rows: Arc::default(),
            history: Vec::new(),
            log_start_ms: None,
            history_counters: Arc::default(),
            bounds: None,
        }
    }

    /// Adds the log rows its scans return to `rows`.
    pub fn counting_rows(mut self, rows: Arc<AtomicU64>) -> LogTable {
        self.rows = rows;
        self
    }

    /// Reads only the offsets `[start, end)` of each partition (`bounds[partition]`).
    pub fn within(mut self, bounds: Vec<(u64, u64)>) -> LogTable {
        self.bounds = Some(bounds);
        self
    }

    /// Adds history files of this stream (see [`super::history`]); the log's first event
    /// time is read from its frame headers now.
    pub fn with_history(
        mut self,
        history: Vec<HistoryFile>,
        counters: Arc<HistoryCounters>,
    ) -> crate::error::Result<LogTable> {
        if !history.is_empty() {
            self.log_start_ms = log_start_ms(&self.def, &self.dir)?;
        }
        self.history = history;
        self.history_counters = counters;
        Ok(self)
    }

    /// The event-time range a filter keeps, if it is a comparison of the time column with
    /// a timestamp literal (what DataFusion pushes down after coercion).
    fn filter_range(&self, filter: &Expr) -> Option<TimeRange> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
            return None;
        };
        let (column, value, op) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) => (c, v, *op),
            (Expr::Literal(v, _), Expr::Column(c)) => (c, v, op.swap()?),
            _ => return None,
        };
        if column.name != self.def.event_time {
            return None;
        }
        let ms = literal_ms(value)?;
        let mut range = TimeRange::default();
        match op {
            Operator::GtEq => range.from_ms = Some(ms),
            Operator::Gt => range.from_ms = Some(ms.saturating_add(1)),
            Operator::Lt => range.to_ms = Some(ms),
            Operator::LtEq => range.to_ms = Some(ms.saturating_add(1)),
            Operator::Eq => {
                range.from_ms = Some(ms);
                range.to_ms = Some(ms.saturating_add(1));
            }
            _ => return None,
        }
        Some(range)
    }
}

/// A timestamp literal in ms; `None` for anything else or a sub-millisecond instant (whose
/// bound could not be kept exactly).
fn literal_ms(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::TimestampSecond(Some(s), _) => s.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(ms), _) => Some(*ms),
        ScalarValue::TimestampMicrosecond(Some(us), _) if us % 1_000 == 0 => Some(us / 1_000),
        ScalarValue::TimestampNanosecond(Some(ns), _) if ns % 1_000_000 == 0 => {
            Some(ns / 1_000_000)
        }
        _ => None,
    }
}

#[async_trait]
impl TableProvider for LogTable {
    fn schema(&self) -> SchemaRef {
        self.def.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // Frames are skipped and rows cut by time, exactly; DataFusion still applies the
        // filter, which costs little and keeps every other filter correct.
        Ok(filters
            .iter()
            .map(|f| match self.filter_range(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let range = filters
            .iter()
            .filter_map(|f| self.filter_range(f))
            .fold(self.range, TimeRange::intersect);
        let full = self.def.schema();
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..full.fields().len()).collect(),
        };
        let schema = Arc::new(full.project(&projection)?);
        let mut generators: Vec<Arc<RwLock<dyn LazyBatchGenerator>>> = Vec::new();
        for p in 0..self.def.partitions {
            generators.push(Arc::new(RwLock::new(PartitionScan {
                def: self.def.clone(),
                partition: p,
                dir: self.dir.join(p.to_string()),
                reader: None,
                next: None,
                bounds: self
                    .bounds
                    .as_ref()
                    .map(|b| b.get(p as usize).copied().unwrap_or((0, 0))),
                pending: Vec::new(),
                projection: projection.clone(),
                schema: schema.clone(),
                time_column: self.time_column,
                range,
                scanned: self.scanned.clone(),
                rows: self.rows.clone(),
            })));
        }
        for file in &self.history {
            generators.push(Arc::new(RwLock::new(HistoryScan {
                def: self.def.clone(),
                file: file.clone(),
                decoder: None,
                log_start_ms: self.log_start_ms,
                range,
                projection: projection.clone(),
                schema: schema.clone(),
                time_column: self.time_column,
                scanned: self.scanned.clone(),
                counters: self.history_counters.clone(),
                reported: 0,
            })));
        }
        Ok(Arc::new(LazyMemoryExec::try_new(schema, generators)?))
    }
}

/// One partition of a scan: frames read as batches are asked for.
struct PartitionScan {
    def: StreamDef,
    partition: u32,
    /// The partition's directory in the embedded log (named in plans and errors).
    dir: PathBuf,
    reader: Option<Box<dyn ChunkReader>>,
    /// The next offset to read; `None` before the first read.
    next: Option<u64>,
    /// The offsets `[start, end)` read; `None` reads everything.
    bounds: Option<(u64, u64)>,
    /// Decoded batches of the current frames, not yet returned.
    pending: Vec<RecordBatch>,
    projection: Vec<usize>,
    schema: SchemaRef,
    time_column: usize,
    range: TimeRange,
    scanned: Arc<AtomicU64>,
    rows: Arc<AtomicU64>,
}

impl fmt::Debug for PartitionScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartitionScan({})", self.dir.display())
    }
}

impl fmt::Display for PartitionScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "log scan of {} ({})", self.def.name, self.dir.display())
    }
}

fn external(
    e: impl std::error::Error + Send + Sync + 'static,
) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(e))
}

impl PartitionScan {
    /// Reads the next chunks into `pending`; false at the end of the partition.
    fn fill(&mut self) -> datafusion::error::Result<bool> {
        if self.reader.is_none() {
            let stream_dir = self.dir.parent().unwrap_or(&self.dir);
            let Some(mut reader) =
                open_reader(&self.def, stream_dir, self.partition).map_err(external)?
            else {
                return Ok(false);
            };
            let start = reader.start().map_err(external)?.0;
            if let Some((from, end)) = self.bounds
                && start > from
                && from < end
            {
                return Err(external(crate::EngineError::LogRetention(format!(
                    "{} partition {}: retention removed offsets from {from} up to {start}, \
                     which this scan must read",
                    self.def.name, self.partition
                ))));
            }
            self.next = Some(start.max(self.bounds.map_or(0, |(from, _)| from)));
            self.reader = Some(reader);
        }
        let (Some(reader), Some(next)) = (self.reader.as_mut(), self.next) else {
            return Ok(false);
        };
        if self.bounds.is_some_and(|(_, end)| next >= end) {
            return Ok(false);
        }
        let chunks = reader.read(Offset(next), READ_BYTES).map_err(external)?;
        if chunks.is_empty() {
            return Ok(false);
        }
        let stop = self.bounds.map_or(u64::MAX, |(_, end)| end);
        for chunk in chunks {
            self.scanned.fetch_add(chunk.bytes, Ordering::Relaxed);
            if chunk.first.0 >= stop {
                self.next = Some(stop);
                break;
            }
            if chunk.next.0 <= next {
                continue;
            }
            self.next = Some(chunk.next.0.min(stop));
            if !self
                .range
                .admits_frame(chunk.min_event_time.0, chunk.max_event_time.0)
            {
                continue;
            }
            // Rows before `next` (read already) and from `stop` on (not claimed) are cut.
            for part in chunk
                .decode_within(Offset(next), Offset(stop))
                .map_err(external)?
            {
                let batch = self.cut(part.batch)?;
                if batch.num_rows() > 0 {
                    self.rows
                        .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                    self.pending.push(batch);
                }
            }
        }
        Ok(true)
    }

    /// The rows of `batch` within the time range, projected.
    fn cut(&self, batch: RecordBatch) -> datafusion::error::Result<RecordBatch> {
        let range = self.range;
        if range.is_all() {
            return project(&batch, &self.projection, &self.schema);
        }
        select_rows(
            &batch,
            self.time_column,
            |t| range.contains(t),
            &self.projection,
            &self.schema,
        )
    }
}

impl LazyBatchGenerator for PartitionScan {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn generate_next_batch(&mut self) -> datafusion::error::Result<Option<RecordBatch>> {
        loop {
            if let Some(batch) = self.pending.pop() {
                return Ok(Some(batch));
            }
            if !self.fill()? {
                return Ok(None);
            }
            // Batches come out in log order.
            self.pending.reverse();
        }
    }

    fn reset_state(&self) -> Arc<RwLock<dyn LazyBatchGenerator>> {
        Arc::new(RwLock::new(PartitionScan {
            def: self.def.clone(),
            partition: self.partition,
            dir: self.dir.clone(),
            reader: None,
            next: None,
            bounds: self.bounds,
            pending: Vec::new(),
            projection: self.projection.clone(),
            schema: self.schema.clone(),
            time_column: self.time_column,
            range: self.range,
            scanned: self.scanned.clone(),
            rows: self.rows.clone(),
        }))
    }
}
