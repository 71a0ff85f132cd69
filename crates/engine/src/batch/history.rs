//! History files: NDJSON, CSV or Parquet files of a stream's events from before its log
//! (an archive, or an export of the system Freshet replaces), read by batch queries beside
//! the log, decoded against the stream's schema exactly as ingest decodes them.
//!
//! The log wins where the two meet: a history row is read only if its event time is before
//! the log's first event (the earliest event time of any frame in the stream's partitions),
//! so no event is read from both. Rows at or after that instant are counted as overlapping
//! and left to the log. A row the stream's schema rejects fails the query with its file,
//! line and reason: a batch result that silently missed events would be wrong.

use arrow_array::{Array, RecordBatch};
use arrow_schema::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::memory::LazyBatchGenerator;
use freshet_streams::input::open_reader;
use freshet_streams::{FileDecoder, Format, StreamDef};
use parking_lot::RwLock;
use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::select::{TimeRange, select_rows};
use crate::error::{EngineError, Result};
use crate::source::times_ms;

/// One history file of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryFile {
    /// The stream whose events it holds.
    pub stream: String,
    /// The file.
    pub path: PathBuf,
    /// Its format, from its extension.
    pub format: Format,
    /// Its size, for progress.
    pub bytes: u64,
}

impl HistoryFile {
    /// The files `path` names for `stream`: the file itself (its format from its
    /// extension), or the files of the directory `path` whose extension names a format, in
    /// name order. A directory with none is an error, as is a file of unknown format.
    pub fn expand(stream: &str, path: &Path) -> Result<Vec<HistoryFile>> {
        let io = |source| EngineError::Io {
            context: format!("read the history path {}", path.display()),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        let one = |path: PathBuf, bytes: u64| -> Option<HistoryFile> {
            Some(HistoryFile {
                stream: stream.to_string(),
                format: Format::from_path(&path)?,
                path,
                bytes,
            })
        };
        if !meta.is_dir() {
            return one(path.to_path_buf(), meta.len())
                .map(|f| vec![f])
                .ok_or_else(|| {
                    EngineError::Input(format!(
                        "history file {}: unknown format; name it .ndjson, .jsonl, .json, \
                         .csv or .parquet",
                        path.display()
                    ))
                });
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(io)? {
            let entry = entry.map_err(io)?;
            let meta = entry.metadata().map_err(io)?;
            if meta.is_file()
                && let Some(file) = one(entry.path(), meta.len())
            {
                files.push(file);
            }
        }
        if files.is_empty() {
            return Err(EngineError::Input(format!(
                "history directory {} holds no .ndjson, .jsonl, .json, .csv or .parquet file",
                path.display()
            )));
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

/// What a session's history scans read.
#[derive(Debug, Default)]
pub struct HistoryCounters {
    /// Rows read from history files and kept (before the log's first event).
    pub rows: AtomicU64,
    /// Rows at or after the log's first event, left to the log.
    pub overlapping: AtomicU64,
}

/// The earliest event time in the log of `def` under `dir` (through the input seam, from
/// chunk headers alone); `None` if the log holds no event.
pub fn log_start_ms(def: &StreamDef, dir: &Path) -> Result<Option<i64>> {
    let mut earliest = None::<i64>;
    for partition in 0..def.partitions {
        let Some(mut reader) = open_reader(def, dir, partition)? else {
            continue;
        };
        if let Some(t) = reader.earliest_event_time()? {
            earliest = Some(earliest.map_or(t.0, |e| e.min(t.0)));
        }
    }
    Ok(earliest)
}

/// One history file scanned as one partition of its stream's table.
pub(super) struct HistoryScan {
    pub def: StreamDef,
    pub file: HistoryFile,
    /// Opened on the first pull. (Behind a mutex only because generators must be `Sync`
    /// and a Parquet reader is not; it is only ever reached through `&mut self`.)
    pub decoder: Option<Mutex<FileDecoder>>,
    /// Rows at or after this are the log's.
    pub log_start_ms: Option<i64>,
    pub range: TimeRange,
    pub projection: Vec<usize>,
    pub schema: SchemaRef,
    pub time_column: usize,
    pub scanned: Arc<AtomicU64>,
    pub counters: Arc<HistoryCounters>,
    /// Bytes of the file already added to `scanned`.
    pub reported: u64,
}

impl fmt::Debug for HistoryScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HistoryScan({})", self.file.path.display())
    }
}

impl fmt::Display for HistoryScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "history scan of {} ({})",
            self.file.stream,
            self.file.path.display()
        )
    }
}

fn failed(file: &HistoryFile, message: impl fmt::Display) -> DataFusionError {
    DataFusionError::External(Box::new(EngineError::Input(format!(
        "history file {} of stream '{}': {message}",
        file.path.display(),
        file.stream
    ))))
}

impl HistoryScan {
    /// The kept rows of the next decoded piece of the file; `None` at its end.
    fn next_piece(&mut self) -> datafusion::error::Result<Option<RecordBatch>> {
        if self.decoder.is_none() {
            let decoder = FileDecoder::open(&self.def, &self.file.path, self.file.format)
                .map_err(|e| failed(&self.file, e))?;
            self.decoder = Some(Mutex::new(decoder));
        }
        let decoder = self
            .decoder
            .as_mut()
            .expect("opened above")
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        let decoded = decoder.next().map_err(|e| failed(&self.file, e))?;
        let read = decoder.bytes_read();
        self.scanned
            .fetch_add(read.saturating_sub(self.reported), Ordering::Relaxed);
        self.reported = read;
        let Some(decoded) = decoded else {
            return Ok(None);
        };
        if let Some(reject) = decoded.rejects.first() {
            return Err(failed(
                &self.file,
                format!(
                    "line {}: {} ({}); history rows are not set aside, so the query stops \
                     rather than leave the row out",
                    reject.line,
                    reject.reason,
                    reject.code.as_str()
                ),
            ));
        }
        let Some(batch) = decoded.batch else {
            return Ok(Some(RecordBatch::new_empty(self.schema.clone())));
        };
        let times = times_ms(batch.column(self.time_column))
            .map_err(|e| DataFusionError::Execution(e.to_string()))?;
        let start = self.log_start_ms;
        let range = self.range;
        let overlapping = start.map_or(0, |s| {
            (0..times.len())
                .filter(|&i| {
                    times.is_valid(i) && times.value(i) >= s && range.contains(times.value(i))
                })
                .count()
        });
        let kept = select_rows(
            &batch,
            self.time_column,
            |t| range.contains(t) && start.is_none_or(|s| t < s),
            &self.projection,
            &self.schema,
        )?;
        self.counters
            .overlapping
            .fetch_add(overlapping as u64, Ordering::Relaxed);
        self.counters
            .rows
            .fetch_add(kept.num_rows() as u64, Ordering::Relaxed);
        Ok(Some(kept))
    }

    fn fresh(&self) -> HistoryScan {
        HistoryScan {
            def: self.def.clone(),
            file: self.file.clone(),
            decoder: None,
            log_start_ms: self.log_start_ms,
            range: self.range,
            projection: self.projection.clone(),
            schema: self.schema.clone(),
            time_column: self.time_column,
            scanned: self.scanned.clone(),
            counters: self.counters.clone(),
            reported: 0,
        }
    }
}

impl LazyBatchGenerator for HistoryScan {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn generate_next_batch(&mut self) -> datafusion::error::Result<Option<RecordBatch>> {
        while let Some(batch) = self.next_piece()? {
            if batch.num_rows() > 0 {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    fn reset_state(&self) -> Arc<RwLock<dyn LazyBatchGenerator>> {
        Arc::new(RwLock::new(self.fresh()))
    }
}
