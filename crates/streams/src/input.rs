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

use crate::error::Result;
use crate::payload;
use arrow_array::RecordBatch;
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
    /// Arrow IPC payload of events at dense offsets from `first`.
    payload: Vec<u8>,
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
            payload: frame.payload,
        }
    }

    /// How many of its events have offsets in `[from, to)`.
    pub fn events_within(&self, from: Offset, to: Offset) -> u64 {
        let lo = self.first.max(from);
        let hi = self.next.min(to);
        hi.0.saturating_sub(lo.0)
    }

    /// Its events with offsets in `[from, to)`, decoded, one batch per payload batch that
    /// holds any (none empty).
    pub fn decode_within(&self, from: Offset, to: Offset) -> Result<Vec<OffsetBatch>> {
        let mut out = Vec::new();
        let mut at = self.first.0;
        for batch in payload::decode(&self.payload)? {
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

/// A reader of the embedded log's partition in `dir` that works beside the process writing
/// it (no lock), or `None` if the partition does not exist.
pub fn open_reader(dir: &Path) -> Result<Option<Box<dyn ChunkReader>>> {
    if !dir.exists() {
        return Ok(None);
    }
    Ok(Some(Box::new(PartitionReader::open(
        Arc::new(FileStorage),
        dir,
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
            payload: bytes,
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
