//! The input seam: a partition of a stream as a view or a batch scan reads it.
//!
//! Everything that reads events (a running view, its batch runs, the batch engine's log
//! scans) reads through [`ChunkReader`] and, when it follows the live log, through
//! [`PartitionInput`]; none of them sees the embedded log's frames or readers. Another log
//! (a message system) plugs in by implementing these two traits.
//!
//! A [`Chunk`] is the unit of reading: a run of events with its offsets, event-time bounds
//! and ingest time, which readers can judge by its header alone and decode only when
//! they need the rows. Offsets strictly increase within and across chunks, but need not
//! be dense: a chunk says where the next one starts ([`Chunk::next`]) and decodes into
//! batches that carry their own offsets ([`RowOffsets`]).
//!
//! Not here: watermarks and idleness (the engine), or what a reader does with the rows.

use crate::def::StreamDef;
use crate::error::Result;
use crate::payload;
use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use freshet_log::{FileStorage, Frame, Partition, PartitionReader};
use freshet_types::{EventTime, IngestTime, Offset, RowOffsets};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A run of events of one partition, as read.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The offset of its first event.
    pub first: Offset,
    /// The offset after its last event: where the next read goes on.
    pub next: Offset,
    /// Its earliest event time.
    pub min_event_time: EventTime,
    /// Its latest event time.
    pub max_event_time: EventTime,
    /// When the log accepted it.
    pub ingest_time: IngestTime,
    /// Its size in the log, bytes (for progress reports).
    pub bytes: u64,
    payload: Payload,
}

/// A chunk's events: as the embedded log stores them, or already decoded (a log whose
/// messages are decoded as they are read).
#[derive(Debug, Clone)]
enum Payload {
    /// Arrow IPC payload of events at dense offsets from `first`.
    Ipc(Vec<u8>),
    /// Decoded events, each with its offset.
    Decoded(OffsetBatch),
}

/// Decoded events with their offsets.
#[derive(Debug, Clone)]
pub struct OffsetBatch {
    /// Each row's offset.
    pub offsets: RowOffsets,
    /// The rows, in the stream's schema.
    pub batch: RecordBatch,
}

impl Chunk {
    fn from_frame(frame: Frame) -> Chunk {
        let h = frame.header;
        Chunk {
            first: h.base_offset,
            next: h.end_offset(),
            min_event_time: h.min_event_time,
            max_event_time: h.max_event_time,
            ingest_time: h.ingest_time,
            bytes: u64::from(h.frame_bytes),
            payload: Payload::Ipc(frame.payload),
        }
    }

    /// A chunk of the offsets `[first, next)` whose good events are `rows` (already
    /// decoded); its event-time bounds are its rows' (with none, the lowest time, which
    /// moves no watermark).
    pub fn decoded(
        first: Offset,
        next: Offset,
        rows: OffsetBatch,
        event_time: usize,
        ingest_time: IngestTime,
        bytes: u64,
    ) -> Chunk {
        let times = rows
            .batch
            .column(event_time)
            .as_primitive::<TimestampMillisecondType>();
        let min = arrow_arith::aggregate::min(times).unwrap_or(i64::MIN);
        let max = arrow_arith::aggregate::max(times).unwrap_or(i64::MIN);
        Chunk {
            first,
            next,
            min_event_time: EventTime(min),
            max_event_time: EventTime(max),
            ingest_time,
            bytes,
            payload: Payload::Decoded(rows),
        }
    }

    /// How many of its events have offsets in `[from, to)`.
    pub fn events_within(&self, from: Offset, to: Offset) -> u64 {
        if let Payload::Decoded(rows) = &self.payload {
            let skip = rows.offsets.position(from.0);
            return rows.offsets.position(to.0).saturating_sub(skip) as u64;
        }
        let lo = self.first.max(from);
        let hi = self.next.min(to);
        hi.0.saturating_sub(lo.0)
    }

    /// Its events with offsets in `[from, to)`, decoded, one batch per payload batch that
    /// holds any (none empty).
    pub fn decode_within(&self, from: Offset, to: Offset) -> Result<Vec<OffsetBatch>> {
        let ipc = match &self.payload {
            Payload::Ipc(ipc) => ipc,
            Payload::Decoded(rows) => {
                let skip = rows.offsets.position(from.0);
                let keep = rows.offsets.position(to.0).saturating_sub(skip);
                return Ok(match keep {
                    0 => Vec::new(),
                    _ => vec![OffsetBatch {
                        offsets: rows.offsets.slice(skip, keep),
                        batch: rows.batch.slice(skip, keep),
                    }],
                });
            }
        };
        let mut out = Vec::new();
        let mut at = self.first.0;
        for batch in payload::decode(ipc)? {
            let n = batch.num_rows();
            let offsets = RowOffsets::Dense { first: at, len: n };
            at += n as u64;
            let skip = offsets.position(from.0);
            let keep = offsets.position(to.0).saturating_sub(skip);
            if keep == 0 {
                continue;
            }
            out.push(if keep == n {
                OffsetBatch { offsets, batch }
            } else {
                OffsetBatch {
                    offsets: offsets.slice(skip, keep),
                    batch: batch.slice(skip, keep),
                }
            });
        }
        Ok(out)
    }
}

/// Reads a partition from any offset.
pub trait ChunkReader: Send + Sync {
    /// The first offset still held: retention removed everything before it.
    fn start(&mut self) -> Result<Offset>;

    /// Chunks holding offsets from `from` on, about `bytes_max` bytes of them (at least one
    /// when any is there). The first may begin before `from`: callers skip its events
    /// before it. Empty at the end of the data.
    fn read(&mut self, from: Offset, bytes_max: usize) -> Result<Vec<Chunk>>;

    /// The earliest event time the partition holds; `None` if it holds no event. It counts
    /// every complete chunk on disk, including any the writer has not acknowledged yet
    /// (a lower bound, which is what history files need).
    fn earliest_event_time(&mut self) -> Result<Option<EventTime>>;
}

/// A partition of a live stream that a view reads: a reader, plus the log's end, waiting
/// for more, and pinning what the view still needs.
pub trait PartitionInput: ChunkReader {
    /// One past the last offset appended.
    fn end(&self) -> Offset;

    /// One past the last offset appended, as this input last learnt it, without asking a
    /// server (for reports that must not wait on one); by default [`PartitionInput::end`].
    fn end_known(&self) -> Offset {
        self.end()
    }

    /// Waits up to `timeout` for an event at or beyond `offset`.
    fn wait_beyond(&self, offset: Offset, timeout: Duration);

    /// Keeps everything from `from` on for `consumer`: retention frees only what lies
    /// before every consumer's position.
    fn pin(&self, consumer: &str, from: Offset) -> Result<()>;
}

impl ChunkReader for PartitionReader {
    fn start(&mut self) -> Result<Offset> {
        Ok(self.start_offset()?)
    }

    fn read(&mut self, from: Offset, bytes_max: usize) -> Result<Vec<Chunk>> {
        Ok(PartitionReader::read(self, from, bytes_max)?
            .into_iter()
            .map(Chunk::from_frame)
            .collect())
    }

    fn earliest_event_time(&mut self) -> Result<Option<EventTime>> {
        Ok(PartitionReader::earliest_event_time(self)?)
    }
}

/// A partition of the embedded log, read by a view in the process that writes it.
pub struct EmbeddedInput {
    partition: Arc<Partition>,
    reader: PartitionReader,
}

impl EmbeddedInput {
    /// Reads `partition`.
    pub fn new(partition: Arc<Partition>) -> EmbeddedInput {
        EmbeddedInput {
            reader: partition.reader(),
            partition,
        }
    }
}

impl ChunkReader for EmbeddedInput {
    fn start(&mut self) -> Result<Offset> {
        self.reader.start()
    }

    fn read(&mut self, from: Offset, bytes_max: usize) -> Result<Vec<Chunk>> {
        ChunkReader::read(&mut self.reader, from, bytes_max)
    }

    fn earliest_event_time(&mut self) -> Result<Option<EventTime>> {
        ChunkReader::earliest_event_time(&mut self.reader)
    }
}

impl PartitionInput for EmbeddedInput {
    fn end(&self) -> Offset {
        self.partition.end_offset()
    }

    fn wait_beyond(&self, offset: Offset, timeout: Duration) {
        self.partition.wait_beyond(offset, timeout);
    }

    fn pin(&self, consumer: &str, from: Offset) -> Result<()> {
        Ok(self.partition.consumers().set(consumer, from)?)
    }
}

/// A reader of partition `partition` of stream `def`, whose embedded log is under
/// `stream_dir`, that works beside the process writing it (no lock), or `None` if the
/// partition does not exist. A log on JetStream is read as it is (its bad messages are
/// skipped: the process running the views sends them to the dead letters).
pub fn open_reader(
    def: &StreamDef,
    stream_dir: &Path,
    partition: u32,
) -> Result<Option<Box<dyn ChunkReader>>> {
    if def.options.jetstream.is_some() {
        return Ok(Some(Box::new(crate::jetstream::JetStreamLog::reader(
            def, partition,
        )?)));
    }
    let dir = stream_dir.join(partition.to_string());
    if !dir.exists() {
        return Ok(None);
    }
    Ok(Some(Box::new(PartitionReader::open(
        Arc::new(FileStorage),
        &dir,
    )?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};

    fn chunk(first: u64, rows: &[i64]) -> Chunk {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(rows.to_vec()))])
            .expect("a batch");
        let mut bytes = Vec::new();
        payload::encode(&batch, &mut bytes).expect("encode");
        Chunk {
            first: Offset(first),
            next: Offset(first + rows.len() as u64),
            min_event_time: EventTime(0),
            max_event_time: EventTime(0),
            ingest_time: IngestTime(0),
            bytes: bytes.len() as u64,
            payload: Payload::Ipc(bytes),
        }
    }

    #[test]
    fn a_chunk_decodes_only_the_offsets_asked_for() {
        let c = chunk(10, &[1, 2, 3, 4]);
        assert_eq!(c.events_within(Offset(12), Offset(100)), 2);
        assert_eq!(c.events_within(Offset(0), Offset(11)), 1);
        assert_eq!(c.events_within(Offset(14), Offset(100)), 0);
        let parts = c.decode_within(Offset(11), Offset(13)).expect("decode");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].offsets.iter().collect::<Vec<_>>(), vec![11, 12]);
        let x = parts[0]
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("ints");
        assert_eq!(x.values(), &[2, 3]);
        assert!(
            c.decode_within(Offset(14), Offset(20))
                .expect("decode")
                .is_empty()
        );
    }
}
