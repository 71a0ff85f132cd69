//! A view's checkpoints: the result rows buffered since the last commit, building the
//! [`Commit`] that writes them with the state and offsets in one transaction, handing it
//! to the commit thread, recording what landed, and reading the last one back on open.
//!
//! Exactly once: nothing reaches the store except through a `Commit` built here, which
//! holds the result rows produced since the last commit, the operator state changed since
//! then, and each partition's next offset and watermark. After a crash the view loads the
//! last commit and reads on from its offsets, so every event counts once. The log's
//! consumer positions move only once a commit has landed, and only for a store that keeps
//! commits.

use super::inputs::{Inputs, part_key};
use crate::Stats;
use crate::committer::Committer;
use crate::compile::{Compiled, ResultKey, origin_key};
use crate::error::{EngineError, Result};
use crate::node::StateEntries;
use crate::rows::{Change, Rows};
use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use arrow_row::{RowConverter, SortField};
use foldhash::{HashSet, HashSetExt};
use freshet_store::{Commit, LateEvent, PartitionProgress, Progress, ResultBatch, ResultStore};
use freshet_types::limits::VIEW_ROWS_PER_COMMIT_MAX;
use freshet_types::{Offset, Watermark};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Commit durations a runner keeps for exact quantiles (`freshet run --drain --json`).
pub const RECENT_COMMITS: usize = 8_192;

/// Frames whose ingest times are kept between two commits for the latency histogram.
const UNCOMMITTED_FRAMES_TRACKED: usize = 4_096;

/// What a view's last commit says, read on open.
pub(super) struct Restored {
    /// Per `(stream, partition)`: the next offset and the partition's watermark.
    pub(super) positions: HashMap<(String, u32), (Offset, Option<Watermark>)>,
    /// The view's counters.
    pub(super) stats: Stats,
    /// Operator state by operator id.
    pub(super) state: HashMap<u16, StateEntries>,
    /// The streams had ended (the view's watermark was +∞).
    pub(super) ended: bool,
}

/// Reads a stored checkpoint.
pub(super) fn restore(checkpoint: freshet_store::Checkpoint) -> Result<Restored> {
    let progress = checkpoint.progress;
    let positions = progress
        .as_ref()
        .map(|p| {
            p.partitions
                .iter()
                .map(|pp| {
                    (
                        (pp.stream.clone(), pp.partition),
                        (Offset(pp.next_offset), pp.watermark_ms.map(Watermark)),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let stats: Stats = progress
        .as_ref()
        .and_then(|p| serde_json::from_value(p.stats.clone()).ok())
        .unwrap_or_default();
    let mut state: HashMap<u16, StateEntries> = HashMap::new();
    for (k, v) in checkpoint.state {
        if k.len() < 3 {
            return Err(EngineError::Bug(
                "a checkpoint key without an operator id".into(),
            ));
        }
        let id = u16::from_be_bytes([k[0], k[1]]);
        state.entry(id).or_default().push((k, v));
    }
    let ended = progress.as_ref().and_then(|p| p.watermark_ms) == Some(i64::MAX);
    Ok(Restored {
        positions,
        stats,
        state,
        ended,
    })
}

/// One batch a commit writes to the results table.
enum Write {
    /// Rows to insert or replace.
    Upsert(ResultBatch),
    /// Rows (in the table's shape) whose keys to delete.
    Delete(RecordBatch),
}

impl Write {
    fn batch(&self) -> &RecordBatch {
        match self {
            Write::Upsert(r) => &r.batch,
            Write::Delete(b) => b,
        }
    }
}

/// Deletions and upserts, each in the order made.
fn split(writes: Vec<Write>) -> (Vec<RecordBatch>, Vec<ResultBatch>) {
    let mut deletes = Vec::new();
    let mut upserts = Vec::new();
    for w in writes {
        match w {
            Write::Upsert(r) => upserts.push(r),
            Write::Delete(b) => deletes.push(b),
        }
    }
    (deletes, upserts)
}

/// The last write of each key (columns `key`), as applying every write in order would
/// leave the table: the store applies a commit's deletions before its upserts, so a key
/// deleted and then written again must not be deleted, nor one written and then deleted
/// written.
fn last_write_per_key(
    writes: Vec<Write>,
    key: &[usize],
) -> Result<(Vec<RecordBatch>, Vec<ResultBatch>)> {
    let Some(first) = writes.first() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let schema = first.batch().schema();
    let converter = RowConverter::new(
        key.iter()
            .map(|&k| SortField::new(schema.field(k).data_type().clone()))
            .collect(),
    )?;
    let keys = writes
        .iter()
        .map(|w| {
            let batch = w.batch();
            let columns: Vec<ArrayRef> = key.iter().map(|&k| batch.column(k).clone()).collect();
            Ok(converter.convert_columns(&columns)?)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut seen: HashSet<&[u8]> = HashSet::with_capacity(keys.iter().map(|r| r.num_rows()).sum());
    let mut masks = Vec::with_capacity(writes.len());
    for rows in keys.iter().rev() {
        let mut keep = vec![false; rows.num_rows()];
        for i in (0..rows.num_rows()).rev() {
            keep[i] = seen.insert(rows.row(i).data());
        }
        masks.push(BooleanArray::from(keep));
    }
    let mut kept = Vec::with_capacity(writes.len());
    for (w, mask) in writes.into_iter().zip(masks.into_iter().rev()) {
        let filter = |b: &RecordBatch| arrow_select::filter::filter_record_batch(b, &mask);
        kept.push(match w {
            Write::Upsert(r) => Write::Upsert(ResultBatch {
                batch: filter(&r.batch)?,
                state: r.state,
            }),
            Write::Delete(b) => Write::Delete(filter(&b)?),
        });
    }
    kept.retain(|w| w.batch().num_rows() > 0);
    Ok(split(kept))
}

/// Positions of a view's key columns in its results table.
fn key_columns(compiled: &Compiled) -> Result<Vec<usize>> {
    let names: Vec<String> = match &compiled.key {
        ResultKey::Columns(names) => names.clone(),
        ResultKey::Origin(positions) => {
            origin_key(*positions).into_iter().map(|(n, _)| n).collect()
        }
    };
    names
        .iter()
        .map(|n| {
            compiled
                .result_schema
                .index_of(n)
                .map_err(|_| EngineError::Bug(format!("key column '{n}' is not a result column")))
        })
        .collect()
}

/// What the operators hand a commit: their state changes since the last one, and their
/// state's size now.
pub(super) struct OperatorCheckpoint {
    pub(super) puts: StateEntries,
    pub(super) deletes: Vec<Vec<u8>>,
    pub(super) bytes: u64,
}

/// What a commit (or a drain) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progressed {
    /// Events read from the log.
    pub events: u64,
    /// Result rows written.
    pub rows: u64,
    /// Commits made.
    pub commits: u64,
}

/// The rows, state and timings between two commits, and the commit thread.
pub(super) struct Checkpointer {
    view: String,
    /// Writes checkpoints on a thread of its own (see [`crate::committer`]).
    committer: Committer,
    /// Whether the store keeps commits (else the log's consumer positions must not move).
    durable: bool,
    /// Retry retriable store failures until this is set, rather than a few times.
    patience: Option<Arc<AtomicBool>>,
    /// What the next commit writes to the results table, in the order it was made.
    pending: Vec<Write>,
    pending_rows: usize,
    /// The results table's key columns, once a deletion is pending: the commit then
    /// keeps only the last write of each key.
    delete_key: Option<Vec<usize>>,
    /// `(ingest time, events)` of the frames read since the last commit, at most
    /// [`UNCOMMITTED_FRAMES_TRACKED`] (older ones merged into the first).
    uncommitted: Vec<(i64, u64)>,
    /// Durations of the last [`RECENT_COMMITS`] commits, in µs, oldest overwritten first.
    recent_commit_us: Vec<u64>,
    /// Commits landed since the view was opened.
    commits: u64,
    /// The next commit removes the view's stored operator state first.
    reset_state: bool,
}

impl Checkpointer {
    /// Starts the commit thread of `view` over `store`.
    pub(super) fn start(view: &str, store: Box<dyn ResultStore>) -> Result<Checkpointer> {
        Ok(Checkpointer {
            view: view.to_owned(),
            durable: store.durable(),
            committer: Committer::start(view, store)?,
            patience: None,
            pending: Vec::new(),
            pending_rows: 0,
            delete_key: None,
            uncommitted: Vec::new(),
            recent_commit_us: Vec::new(),
            commits: 0,
            reset_state: false,
        })
    }

    /// Waits out store outages until `stop` is set.
    pub(super) fn retry_until(&mut self, stop: Arc<AtomicBool>) {
        self.patience = Some(stop);
    }

    /// Whether too many rows wait for a commit.
    pub(super) fn full(&self) -> bool {
        self.pending_rows >= VIEW_ROWS_PER_COMMIT_MAX
    }

    /// Commits landed since the view was opened.
    pub(super) fn commits(&self) -> u64 {
        self.commits
    }

    /// The next commit removes the stored operator state first.
    pub(super) fn reset_state(&mut self) {
        self.reset_state = true;
    }

    /// Buffers operator output for the next commit, in the results table's shape (rows
    /// keyed by input position carry it in three more columns).
    pub(super) fn buffer(&mut self, rows: Vec<Rows>, compiled: &Compiled) -> Result<()> {
        for r in rows {
            let n = r.batch.num_rows();
            if n == 0 {
                continue;
            }
            let batch = match (&compiled.key, &r.origin) {
                (ResultKey::Columns(_), _) => r.batch,
                (ResultKey::Origin(positions), Some(o)) => {
                    if o.positions() != *positions {
                        return Err(EngineError::Bug(format!(
                            "rows with {} input positions for a view keyed by {positions}",
                            o.positions()
                        )));
                    }
                    let mut columns: Vec<ArrayRef> = r.batch.columns().to_vec();
                    columns.extend(o.columns());
                    RecordBatch::try_new_with_options(
                        compiled.result_schema.clone(),
                        columns,
                        &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)),
                    )?
                }
                (ResultKey::Origin(_), None) => {
                    return Err(EngineError::Bug(
                        "rows keyed by origin lost their origin".into(),
                    ));
                }
            };
            match r.change {
                Change::Upsert(state) => self.push(ResultBatch { batch, state }),
                Change::Delete => {
                    if self.delete_key.is_none() {
                        self.delete_key = Some(key_columns(compiled)?);
                    }
                    self.pending_rows += n;
                    self.pending.push(Write::Delete(batch));
                }
            }
        }
        Ok(())
    }

    /// Buffers rows already in the results table's shape.
    pub(super) fn push(&mut self, batch: ResultBatch) {
        self.pending_rows += batch.batch.num_rows();
        self.pending.push(Write::Upsert(batch));
    }

    /// Notes `events` read from a chunk ingested at `ingest_ms`, for the latency histogram.
    pub(super) fn track(&mut self, ingest_ms: i64, events: u64) {
        if events == 0 {
            return;
        }
        if self.uncommitted.len() >= UNCOMMITTED_FRAMES_TRACKED {
            // Merge into the oldest entry: latencies are over-, never under-stated.
            self.uncommitted[0].1 += events;
        } else {
            self.uncommitted.push((ingest_ms, events));
        }
    }

    /// Builds the commit of everything since the last one and hands it to the commit
    /// thread. `stats` are the view's counters (updated here with what the commit records),
    /// `late` the late events to keep, `state` what the operators hand it; `ended` says
    /// the streams have ended. Returns the rows written.
    pub(super) fn commit(
        &mut self,
        inputs: &Inputs,
        stats: &mut Stats,
        late: Vec<LateEvent>,
        state: OperatorCheckpoint,
        ended: bool,
        now_ms: i64,
    ) -> Result<u64> {
        let writes = std::mem::take(&mut self.pending);
        let (deletes, upserts) = match self.delete_key.take() {
            Some(key) => last_write_per_key(writes, &key)?,
            None => split(writes),
        };
        let written: u64 = upserts.iter().map(|u| u.batch.num_rows() as u64).sum();
        stats.rows_deleted += deletes.iter().map(|d| d.num_rows() as u64).sum::<u64>();
        stats.needed_from.clear();
        for (s, p, part) in inputs.parts() {
            if stats.state_in_log {
                stats
                    .needed_from
                    .insert(part_key(&s.name, p), part.keep_from().0);
            }
            if let Some(t) = part.last_ingest {
                stats.last_ingest_ms.insert(part_key(&s.name, p), t.0);
            }
        }
        for (name, w) in inputs.watermarks.iter() {
            stats.watermarks.insert(name.to_owned(), w.0);
        }
        stats.rows_written += written;
        for (t, n) in self.uncommitted.drain(..) {
            let ms = now_ms.saturating_sub(t).max(0) as u64;
            stats.ingest_to_commit_ms.record(ms, n);
        }
        stats.reflected_ms = inputs.reflected_ms(now_ms);
        stats.state_bytes = state.bytes;
        stats.state_bytes_peak = stats.state_bytes_peak.max(stats.state_bytes);
        let watermark_ms = if ended {
            Some(i64::MAX)
        } else {
            inputs.watermark().map(|w| w.0)
        };
        let progress = Progress {
            partitions: inputs
                .parts()
                .map(|(s, p, part)| PartitionProgress {
                    stream: s.name.clone(),
                    partition: p,
                    next_offset: part.next.0,
                    watermark_ms: part.max_event.map(|m| m.0.saturating_sub(s.delay_ms)),
                })
                .collect(),
            watermark_ms,
            stats: serde_json::to_value(&*stats).expect("stats serialise"),
        };
        let commit = Commit {
            deletes,
            upserts,
            state_puts: state.puts,
            state_deletes: state.deletes,
            state_reset: std::mem::take(&mut self.reset_state),
            late,
            progress,
        };
        self.pending_rows = 0;
        self.committer
            .send(commit, self.patience.clone(), inputs.keep_positions())?;
        Ok(written)
    }

    /// Waits until the last commit has landed and records it: its duration and retries
    /// in `stats`, and the log's consumer positions it made durable. Returns the store's
    /// error if it failed for good.
    pub(super) fn flush(&mut self, inputs: &Inputs, stats: &mut Stats) -> Result<()> {
        let Some(landed) = self.committer.wait()? else {
            return Ok(());
        };
        let took_us = landed.took.as_micros() as u64;
        if self.recent_commit_us.len() < RECENT_COMMITS {
            self.recent_commit_us.push(took_us);
        } else {
            self.recent_commit_us[(self.commits as usize) % RECENT_COMMITS] = took_us;
        }
        self.commits += 1;
        // Both counted in the next commit's stats (this one's are already encoded).
        stats.commit_retries += landed.retries;
        stats.commit_ms.record(landed.took.as_millis() as u64, 1);
        // A store that keeps nothing must not let retention free what the next real run
        // will read again.
        if self.durable {
            inputs.pin(
                &super::blueprint::consumer_name(&self.view),
                &landed.positions,
            )?;
        }
        Ok(())
    }

    /// Gives up the right to write the view; every commit must have been flushed.
    pub(super) fn release(&mut self) -> Result<()> {
        self.committer.release()
    }

    /// The `q` quantile (0 to 1) of the recent commits' durations in ms; `None` before
    /// the first commit.
    pub(super) fn commit_ms_quantile(&self, q: f64) -> Option<f64> {
        let mut sorted = self.recent_commit_us.clone();
        sorted.sort_unstable();
        let last = sorted.len().checked_sub(1)?;
        let index = ((last as f64) * q.clamp(0.0, 1.0)).round() as usize;
        Some(sorted[index] as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use freshet_store::RowState;

    /// Rows `(k, v)` of a table keyed by `k`.
    fn rows(rows: &[(&str, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, false),
        ]));
        let k: StringArray = rows.iter().map(|r| Some(r.0)).collect();
        let v: Int64Array = rows.iter().map(|r| Some(r.1)).collect();
        RecordBatch::try_new(schema, vec![Arc::new(k), Arc::new(v)]).expect("a batch")
    }

    fn upsert(r: &[(&str, i64)]) -> Write {
        Write::Upsert(ResultBatch {
            batch: rows(r),
            state: RowState::Provisional,
        })
    }

    #[test]
    fn only_the_last_write_of_each_key_is_kept() {
        let writes = vec![
            upsert(&[("a", 1), ("b", 1), ("c", 1)]),
            Write::Delete(rows(&[("a", 0), ("b", 0)])),
            upsert(&[("b", 2), ("d", 2)]),
            Write::Delete(rows(&[("d", 0)])),
        ];
        let (deletes, upserts) = last_write_per_key(writes, &[0]).expect("consolidate");
        assert_eq!(deletes, vec![rows(&[("a", 0)]), rows(&[("d", 0)])]);
        let upserted: Vec<RecordBatch> = upserts.into_iter().map(|u| u.batch).collect();
        assert_eq!(upserted, vec![rows(&[("c", 1)]), rows(&[("b", 2)])]);
    }
}
