//! An open stream: its partitions, its dead-letter log and its idempotency table.
//!
//! Appending is two steps so that the CPU work can run apart from the I/O: [`Stream::prepare`]
//! splits good rows by partition and encodes one Arrow IPC payload per partition (and one
//! dead-letter payload); [`Stream::commit`] appends those frames and makes them durable
//! under the stream's fsync policy. Under `fsync = always` nothing is reported accepted
//! before every frame of the request is on disk.

use crate::commit_order::CommitOrder;
use crate::decode::{Decoded, NdjsonDecoder, Reject};
use crate::def::{FsyncMode, StreamDef};
use crate::error::{Result, StreamError};
use crate::idempotency::{Claim, IdempotencyTable, RecoveredTag, tag_id};
use crate::jetstream::{DeadLetters, JetStreamLog};
pub use crate::outcome::{AppendOutcome, PartitionRange, RejectSummary};
use crate::{dlq, partitioner, payload};
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use freshet_log::{AppendRecord, Appended, Partition, ProducerTag, RecoveryReport, Storage};
use freshet_types::limits::HTTP_REJECTS_LISTED_MAX;
use freshet_types::{EventTime, IngestTime, Offset};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One frame ready to append.
#[derive(Debug, Clone)]
pub struct PreparedFrame {
    /// Target partition (ignored for the dead-letter frame).
    pub partition: u32,
    /// Arrow IPC payload.
    pub payload: Vec<u8>,
    /// Rows in it.
    pub rows: u32,
    /// Event-time bounds.
    pub min_event_time: i64,
    /// Event-time bounds.
    pub max_event_time: i64,
}

/// The encoded form of one decoded chunk.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// One frame per partition that gets rows.
    pub frames: Vec<PreparedFrame>,
    /// The dead-letter frame, if any row was rejected.
    pub dead_letters: Option<PreparedFrame>,
    /// Good rows.
    pub accepted: u64,
    /// Hash of the request that produced this (HTTP bodies), so that an idempotency key
    /// reused for a different request is refused. None when unknown.
    pub fingerprint: Option<u64>,
    /// The rejected rows (kept for reporting).
    pub rejects: Vec<Reject>,
}

/// Running totals since the stream was opened.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Rows accepted.
    pub accepted: AtomicU64,
    /// Rows rejected.
    pub rejected: AtomicU64,
    /// Payload bytes appended.
    pub bytes: AtomicU64,
}

/// An open stream.
pub struct Stream {
    def: StreamDef,
    dir: PathBuf,
    partitions: Vec<Arc<Partition>>,
    dead_letters: Arc<Partition>,
    round_robin: AtomicU32,
    idempotency: Mutex<IdempotencyTable>,
    counters: StreamCounters,
    ndjson: NdjsonDecoder,
    order: CommitOrder,
    /// The log, when it is JetStream rather than the embedded partitions (then empty).
    jetstream: Option<JetStreamLog>,
    /// Per partition on JetStream, the last sequence sent to the dead letters.
    dead_lettered: Mutex<Vec<u64>>,
}

impl Stream {
    /// Open (and recover) the stream's partitions under `dir`.
    pub fn open(
        storage: Arc<dyn Storage>,
        def: StreamDef,
        dir: PathBuf,
    ) -> Result<(Stream, Vec<(PathBuf, RecoveryReport)>)> {
        let config = def.partition_config();
        let mut reports = Vec::new();
        let mut partitions = Vec::new();
        let jetstream = match def.options.jetstream {
            Some(_) => Some(JetStreamLog::open(&def)?),
            None => None,
        };
        let embedded = if jetstream.is_some() {
            0
        } else {
            def.partitions
        };
        for p in 0..embedded {
            let pdir = dir.join(p.to_string());
            let (partition, report) = Partition::open(storage.clone(), &pdir, config.clone())?;
            reports.push((pdir, report));
            partitions.push(Arc::new(partition));
        }
        let ddir = dir.join("dlq");
        let (dead_letters, report) = Partition::open(storage.clone(), &ddir, config)?;
        let dead_letters = Arc::new(dead_letters);
        reports.push((ddir, report));
        for p in partitions.iter().chain(std::iter::once(&dead_letters)) {
            p.gate();
        }
        let mut idempotency = IdempotencyTable::open(&dir)?;
        idempotency.add_recovered(recover_tags(&storage, &partitions, &dead_letters)?);
        let ndjson = NdjsonDecoder::new(&def);
        let dead_lettered = match &jetstream {
            Some(log) => dead_lettered(&dead_letters, log.def(), def.partitions)?,
            None => Vec::new(),
        };
        Ok((
            Stream {
                def,
                dir,
                partitions,
                dead_letters,
                round_robin: AtomicU32::new(0),
                idempotency: Mutex::new(idempotency),
                counters: StreamCounters::default(),
                ndjson,
                order: CommitOrder::default(),
                jetstream,
                dead_lettered: Mutex::new(dead_lettered),
            },
            reports,
        ))
    }

    /// The stream's definition.
    pub fn def(&self) -> &StreamDef {
        &self.def
    }

    /// The NDJSON decoder for this stream's schema, built once at open.
    pub fn ndjson(&self) -> &NdjsonDecoder {
        &self.ndjson
    }

    /// The stream's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The embedded log's partitions, by index (none when the log is JetStream).
    pub fn partitions(&self) -> &[Arc<Partition>] {
        &self.partitions
    }

    /// One past the last offset readers may read, by partition (asking JetStream, for a
    /// log there).
    pub fn partition_ends(&self) -> Result<Vec<u64>> {
        match &self.jetstream {
            Some(log) => log.ends(),
            None => Ok(self.partitions.iter().map(|p| p.visible_end().0).collect()),
        }
    }

    /// The stream's log on JetStream, if that is where it is.
    pub fn jetstream(&self) -> Option<&JetStreamLog> {
        self.jetstream.as_ref()
    }

    /// A view's reader of each partition, by index (the input seam). Readers of a log on
    /// JetStream send the messages that do not decode to this stream's dead letters.
    pub fn inputs(self: &Arc<Self>) -> Vec<Box<dyn crate::input::PartitionInput>> {
        if let Some(log) = &self.jetstream {
            let dead_letters: Arc<dyn DeadLetters> = self.clone();
            return (0..self.def.partitions)
                .map(|p| {
                    Box::new(log.input(&self.def, p, Some(dead_letters.clone())))
                        as Box<dyn crate::input::PartitionInput>
                })
                .collect();
        }
        self.partitions
            .iter()
            .map(|p| {
                Box::new(crate::input::EmbeddedInput::new(p.clone()))
                    as Box<dyn crate::input::PartitionInput>
            })
            .collect()
    }

    /// The dead-letter log.
    pub fn dead_letters(&self) -> &Arc<Partition> {
        &self.dead_letters
    }

    /// Totals since open.
    pub fn counters(&self) -> &StreamCounters {
        &self.counters
    }

    /// Split and encode a decoded chunk (CPU only; no I/O).
    pub fn prepare(&self, decoded: Decoded, source: &str) -> Result<Prepared> {
        let mut prepared = Prepared {
            accepted: decoded.accepted() as u64,
            ..Prepared::default()
        };
        if let Some(batch) = &decoded.batch {
            let rr = self.round_robin.fetch_add(1, Ordering::Relaxed);
            let parts = partitioner::split(
                batch,
                self.def.partition_key_index(),
                self.def.partitions,
                rr,
            )?;
            let et = self.def.event_time_index();
            for (p, part) in parts.into_iter().enumerate() {
                let Some(part) = part else { continue };
                let times = part.column(et).as_primitive::<TimestampMillisecondType>();
                let min = arrow_arith::aggregate::min(times).expect("event times are non-null");
                let max = arrow_arith::aggregate::max(times).expect("event times are non-null");
                // The part's buffers (at most a decoded chunk's, and usually sized to the
                // part) plus room for the messages around them, so the payload is written
                // without growing.
                let mut bytes = Vec::with_capacity(part.get_array_memory_size() + 4096);
                payload::encode(&part, &mut bytes)?;
                prepared.frames.push(PreparedFrame {
                    partition: p as u32,
                    payload: bytes,
                    rows: part.num_rows() as u32,
                    min_event_time: min,
                    max_event_time: max,
                });
            }
        }
        if !decoded.rejects.is_empty() {
            let now = IngestTime::now().0;
            let batch = dlq::to_batch(source, &decoded.rejects, now)?;
            let mut bytes = Vec::new();
            payload::encode(&batch, &mut bytes)?;
            prepared.dead_letters = Some(PreparedFrame {
                partition: 0,
                payload: bytes,
                rows: decoded.rejects.len() as u32,
                min_event_time: now,
                max_event_time: now,
            });
        }
        prepared.rejects = decoded.rejects;
        Ok(prepared)
    }

    /// Append prepared frames and make them durable per the fsync policy. With an
    /// idempotency key, a request already applied is answered from its stored outcome.
    pub fn commit(&self, prepared: Prepared, key: Option<&str>) -> Result<AppendOutcome> {
        let Some(key) = key else {
            return self.commit_frames(prepared, None, None);
        };
        let claim = self
            .idempotency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .claim(key, prepared.fingerprint)?;
        let parts = prepared.frames.len() + usize::from(prepared.dead_letters.is_some());
        let tag = ProducerTag {
            id: tag_id(key),
            parts: parts.min(usize::from(u16::MAX)) as u16,
        };
        let fingerprint = prepared.fingerprint;
        let (result, resumed) = match claim {
            Claim::Replay(outcome) => return Ok(*outcome),
            Claim::Apply => (self.commit_frames(prepared, Some(tag), Some(key)), None),
            Claim::Resume(found) => (self.resume(prepared, tag, key, found.clone()), Some(found)),
        };
        let mut table = self.idempotency.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(outcome) => table.complete(key, outcome, fingerprint)?,
            Err(_) => table.abandon(key, resumed),
        }
        result
    }

    /// Finish a request some of whose frames reached the log before a crash: append only
    /// the frames that are missing, and answer for the whole request.
    fn resume(
        &self,
        mut prepared: Prepared,
        tag: ProducerTag,
        key: &str,
        found: RecoveredTag,
    ) -> Result<AppendOutcome> {
        if self.def.partition_key.is_none() && !found.data.is_empty() {
            // Round-robin: the rows went to one partition, whichever it was.
            prepared.frames.clear();
        } else {
            prepared
                .frames
                .retain(|f| !found.data.iter().any(|d| d.partition == f.partition));
        }
        if found.dead_letters.is_some() {
            prepared.dead_letters = None;
        }
        let mut outcome = self.commit_frames(prepared, Some(tag), Some(key))?;
        outcome.partitions.extend(found.data);
        outcome.partitions.sort_by_key(|p| p.partition);
        if let Some((range, _, _)) = found.dead_letters {
            outcome.dead_letters = Some(range);
        }
        Ok(outcome)
    }

    /// Appends the frames (or, for a log on JetStream, publishes their rows with message
    /// ids made from `key`) and the dead-letter frame, and counts them.
    fn commit_frames(
        &self,
        prepared: Prepared,
        tag: Option<ProducerTag>,
        key: Option<&str>,
    ) -> Result<AppendOutcome> {
        let ingest_time = IngestTime::now();
        let mut outcome = AppendOutcome {
            accepted: prepared.accepted,
            rejected: prepared.rejects.len() as u64,
            rejects_truncated: prepared.rejects.len() > HTTP_REJECTS_LISTED_MAX,
            rejects: prepared
                .rejects
                .iter()
                .take(HTTP_REJECTS_LISTED_MAX)
                .map(|r| RejectSummary {
                    line: r.line,
                    code: r.code.as_str().to_string(),
                    reason: r.reason.clone(),
                })
                .collect(),
            ..AppendOutcome::default()
        };
        let published = match &self.jetstream {
            Some(log) => Some(log.publish(&prepared.frames, key)?),
            None => None,
        };
        let data_frames: &[PreparedFrame] = match published {
            Some(_) => &[],
            None => &prepared.frames,
        };
        let mut writes = Vec::with_capacity(prepared.frames.len() + 1);
        for frame in data_frames {
            let partition = self
                .partitions
                .get(frame.partition as usize)
                .ok_or_else(|| {
                    StreamError::BadInput(format!("partition {} does not exist", frame.partition))
                })?;
            writes.push((partition, record(frame, ingest_time, tag)));
        }
        if let Some(frame) = &prepared.dead_letters {
            writes.push((&self.dead_letters, record(frame, ingest_time, tag)));
        }
        let appended = self
            .order
            .commit(&writes, |touched| self.settle(touched))
            .map_err(|e| match published {
                // The rows are in JetStream already: a retry without the same key would
                // store them twice.
                Some(_) => StreamError::NotUndone(format!(
                    "the rows were published to JetStream, but their dead letters could not \
                     be written ({e}); retry only with the same Idempotency-Key"
                )),
                None => e,
            })?;
        let bytes: u64 = prepared.frames.iter().map(|f| f.payload.len() as u64).sum();
        let range = |(frame, appended): (&PreparedFrame, &Appended)| PartitionRange {
            partition: frame.partition,
            start: appended.base_offset.0,
            end: appended.end_offset.0,
        };
        outcome.partitions = match published {
            Some(ranges) => ranges,
            None => prepared.frames.iter().zip(&appended).map(range).collect(),
        };
        if let Some(frame) = &prepared.dead_letters {
            let last = appended.last().expect("the dead-letter frame was appended");
            outcome.dead_letters = Some(PartitionRange {
                partition: 0,
                ..range((frame, last))
            });
        }
        self.counters
            .accepted
            .fetch_add(outcome.accepted, Ordering::Relaxed);
        self.counters
            .rejected
            .fetch_add(outcome.rejected, Ordering::Relaxed);
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(outcome)
    }

    /// Apply the fsync policy to the partitions a commit touched.
    fn settle(&self, touched: &[(&Arc<Partition>, Offset)]) -> Result<()> {
        match self.def.options.fsync {
            FsyncMode::Always if touched.len() > 1 => {
                // Sync the partitions in parallel: each is its own file.
                std::thread::scope(|s| {
                    let handles: Vec<_> = touched
                        .iter()
                        .map(|(p, end)| s.spawn(move || p.sync_through(*end)))
                        .collect();
                    for h in handles {
                        h.join().expect("a sync thread does not panic")?;
                    }
                    Ok::<(), freshet_log::LogError>(())
                })?;
            }
            FsyncMode::Always => {
                for (p, end) in touched {
                    p.sync_through(*end)?;
                }
            }
            FsyncMode::Interval => {
                let every = std::time::Duration::from_millis(self.def.options.fsync_interval_ms);
                for (p, _) in touched {
                    p.sync_if_older_than(every)?;
                }
            }
            FsyncMode::Never => {}
        }
        Ok(())
    }

    /// Apply the retention policy to every partition and the dead-letter log, never
    /// removing what a registered consumer still needs. Returns segments and bytes freed.
    pub fn apply_retention(&self) -> Result<(usize, u64)> {
        if self.def.options.retention_age_ms.is_none() && self.def.options.retention_bytes.is_none()
        {
            return Ok((0, 0));
        }
        let now = IngestTime::now();
        let mut freed = (0, 0);
        for p in self
            .partitions
            .iter()
            .chain(std::iter::once(&self.dead_letters))
        {
            let r = p.apply_retention(now)?;
            freed.0 += r.removed_segments;
            freed.1 += r.removed_bytes;
        }
        Ok(freed)
    }

    /// Make everything written so far durable (for shutdown and the interval flusher).
    pub fn sync_all(&self) -> Result<()> {
        for p in &self.partitions {
            p.sync()?;
        }
        self.dead_letters.sync()?;
        Ok(())
    }
}

fn record(
    frame: &PreparedFrame,
    ingest_time: IngestTime,
    tag: Option<ProducerTag>,
) -> AppendRecord<'_> {
    AppendRecord {
        payload: &frame.payload,
        record_count: frame.rows,
        min_event_time: EventTime(frame.min_event_time),
        max_event_time: EventTime(frame.max_event_time),
        ingest_time,
        tag,
    }
}

impl DeadLetters for Stream {
    fn dead_letter(&self, partition: u32, subject: &str, rejects: Vec<Reject>) -> Result<()> {
        let mut done = self.dead_lettered.lock().unwrap_or_else(|e| e.into_inner());
        let Some(through) = done.get_mut(partition as usize) else {
            return Ok(());
        };
        let last = rejects.iter().map(|r| r.line).max().unwrap_or(0);
        let rejects: Vec<Reject> = rejects.into_iter().filter(|r| r.line > *through).collect();
        if rejects.is_empty() {
            return Ok(());
        }
        let decoded = Decoded {
            batch: None,
            rejects,
        };
        let prepared = self.prepare(decoded, &crate::jetstream::source_of(subject))?;
        self.commit_frames(prepared, None, None)?;
        *through = last;
        Ok(())
    }
}

/// Per partition on JetStream, the last sequence the dead letters hold (their source
/// names the partition's subject, their line the sequence).
fn dead_lettered(
    dead_letters: &Arc<Partition>,
    def: &crate::def::JetStreamDef,
    partitions: u32,
) -> Result<Vec<u64>> {
    let sources: Vec<String> = (0..partitions)
        .map(|p| crate::jetstream::source_of(&def.partition_subject(p)))
        .collect();
    let mut through = vec![0; partitions as usize];
    let mut reader = dead_letters.reader();
    let mut at = reader.start_offset()?;
    loop {
        let frames = reader.read(at, 1 << 20)?;
        let Some(last) = frames.last() else { break };
        at = last.header.end_offset();
        for frame in frames {
            for batch in payload::decode(&frame.payload)? {
                for d in dlq::from_batch(&batch, 0) {
                    if let Some(p) = sources.iter().position(|s| *s == d.source) {
                        through[p] = through[p].max(d.line);
                    }
                }
            }
        }
    }
    Ok(through)
}

fn is_tagged(h: &freshet_log::FrameHeader) -> bool {
    h.tag.is_some()
}

/// Read the producer tags of the newest frames (the last two segments of each partition
/// and of the dead-letter log): the requests that may have reached the log without their
/// idempotency record.
fn recover_tags(
    storage: &Arc<dyn Storage>,
    partitions: &[Arc<Partition>],
    dead_letters: &Arc<Partition>,
) -> Result<std::collections::HashMap<u128, RecoveredTag>> {
    let mut tags: std::collections::HashMap<u128, RecoveredTag> = Default::default();
    for (p, partition) in partitions.iter().enumerate() {
        for h in freshet_log::tail_headers(storage.as_ref(), partition.dir(), 2, is_tagged)? {
            if let Some(tag) = h.tag {
                let entry = tags.entry(tag.id).or_default();
                entry.parts = tag.parts;
                entry.data.push(PartitionRange {
                    partition: p as u32,
                    start: h.base_offset.0,
                    end: h.end_offset().0,
                });
            }
        }
    }
    let tagged = freshet_log::tail_headers(storage.as_ref(), dead_letters.dir(), 2, is_tagged)?;
    if !tagged.is_empty() {
        let mut reader = dead_letters.reader();
        for h in tagged {
            let tag = h.tag.expect("filtered to tagged frames");
            let Some(frame) = reader
                .read(h.base_offset, 1)?
                .into_iter()
                .find(|f| f.header.base_offset == h.base_offset)
            else {
                continue;
            };
            let mut rejects = Vec::new();
            for batch in payload::decode(&frame.payload)? {
                rejects.extend(
                    dlq::from_batch(&batch, h.base_offset.0)
                        .into_iter()
                        .map(|d| RejectSummary {
                            line: d.line,
                            code: d.code,
                            reason: d.reason,
                        }),
                );
            }
            rejects.truncate(HTTP_REJECTS_LISTED_MAX);
            let entry = tags.entry(tag.id).or_default();
            entry.parts = tag.parts;
            entry.dead_letters = Some((
                PartitionRange {
                    partition: 0,
                    start: h.base_offset.0,
                    end: h.end_offset().0,
                },
                u64::from(h.record_count),
                rejects,
            ));
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ddl::{StreamStatement, parse_stream_statement};
    use crate::decode::NdjsonDecoder;
    use freshet_log::FileStorage;

    fn def() -> StreamDef {
        let sql = "CREATE STREAM t (k BIGINT NOT NULL, ts TIMESTAMP NOT NULL,
                   WATERMARK FOR ts AS ts) WITH (partitions = 4, partition_key = 'k')";
        match parse_stream_statement(sql).expect("valid DDL") {
            Some(StreamStatement::Create { def, .. }) => def,
            other => panic!("{other:?}"),
        }
    }

    fn open(dir: &Path) -> Stream {
        Stream::open(Arc::new(FileStorage), def(), dir.to_path_buf())
            .expect("opens")
            .0
    }

    fn body() -> Vec<u8> {
        let mut text = String::new();
        for k in 0..200 {
            text.push_str(&format!("{{\"k\":{k},\"ts\":{k}}}\n"));
        }
        text.push_str("not json\n");
        text.into_bytes()
    }

    fn prepared(stream: &Stream) -> Prepared {
        let decoded = NdjsonDecoder::new(stream.def())
            .decode(&body(), 1)
            .expect("decodes");
        stream.prepare(decoded, "test").expect("prepares")
    }

    fn total(stream: &Stream) -> u64 {
        stream.partitions().iter().map(|p| p.end_offset().0).sum()
    }

    /// A crash after some of a keyed request's frames reached the log, but before its
    /// journal line: the retry writes only the missing frames.
    #[test]
    fn a_retry_after_a_partial_commit_writes_only_the_missing_frames() {
        let dir = tempfile::tempdir().expect("temp dir");
        let stream = open(dir.path());
        let full = prepared(&stream);
        assert!(full.frames.len() >= 2, "rows spread over partitions");
        let parts = (full.frames.len() + 1) as u16;
        // Only the first partition's frame lands, tagged as the request would tag it.
        let first = &full.frames[0];
        let tag = ProducerTag {
            id: tag_id("k1"),
            parts,
        };
        let p = &stream.partitions()[first.partition as usize];
        let appended = p
            .append(&record(first, IngestTime::now(), Some(tag)))
            .expect("appends");
        p.sync_through(appended.end_offset).expect("syncs");
        let landed = u64::from(first.rows);
        drop(stream);

        let stream = open(dir.path());
        assert_eq!(total(&stream), landed);
        let outcome = stream
            .commit(prepared(&stream), Some("k1"))
            .expect("commits");
        assert_eq!(outcome.accepted, 200);
        assert_eq!(outcome.rejected, 1);
        assert_eq!(total(&stream), 200, "no row written twice");
        assert_eq!(stream.dead_letters().end_offset(), Offset(1));
        let again = stream
            .commit(prepared(&stream), Some("k1"))
            .expect("replays");
        assert!(again.replayed);
        assert_eq!(total(&stream), 200);
    }

    /// All frames landed but the journal line did not: a retry replays without appending.
    #[test]
    fn a_retry_after_a_complete_commit_without_journal_replays() {
        let dir = tempfile::tempdir().expect("temp dir");
        let stream = open(dir.path());
        let outcome = stream
            .commit(prepared(&stream), Some("k2"))
            .expect("commits");
        drop(stream);
        std::fs::write(dir.path().join("idempotency.jsonl"), b"").expect("empties the journal");
        let stream = open(dir.path());
        let again = stream
            .commit(prepared(&stream), Some("k2"))
            .expect("replays");
        assert!(again.replayed);
        assert_eq!(again.accepted, outcome.accepted);
        assert_eq!(again.rejected, outcome.rejected);
        assert_eq!(again.rejects, outcome.rejects);
        assert_eq!(total(&stream), 200);
    }
}
