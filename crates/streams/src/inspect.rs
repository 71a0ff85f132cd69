//! Read-only views of a data directory for listings and checks: stream extents, dead
//! letters, and frame-by-frame verification. Safe while another process writes.

use crate::catalog::Catalog;
use crate::datadir::stream_dir;
use crate::def::StreamDef;
use crate::dlq::{self, DeadLetter};
use crate::error::{Result, StreamError};
use crate::payload;
use freshet_log::{
    FileStorage, PartitionReader, VerifyReport, inspect_partition, verify_partition,
};
use freshet_types::Offset;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// Extent of one partition (or of the dead-letter log).
#[derive(Debug, Clone, Serialize)]
pub struct PartitionInfo {
    /// Partition index, or `dlq`.
    pub partition: String,
    /// Earliest offset held.
    pub start: u64,
    /// One past the last offset.
    pub end: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Segment files.
    pub segments: usize,
}

/// A stream and its extent.
#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    /// Name.
    pub name: String,
    /// Columns, `name TYPE [NOT NULL]`.
    pub columns: Vec<String>,
    /// Event-time column.
    pub event_time: String,
    /// Watermark delay, ms.
    pub watermark_delay_ms: u64,
    /// Partition count.
    pub partitions: u32,
    /// Partition key.
    pub partition_key: Option<String>,
    /// Events held, all partitions.
    pub events: u64,
    /// Bytes on disk, all partitions.
    pub bytes: u64,
    /// Rows in the dead-letter stream.
    pub dead_letters: u64,
    /// Per partition.
    pub partition_info: Vec<PartitionInfo>,
    /// The dead-letter log.
    pub dlq_info: PartitionInfo,
    /// Where the events are: `embedded`, or `nats://...` (docs/scale-out.md).
    pub log: String,
    /// For a log on JetStream: the subject prefix (partition `p` is `<subject>.<p>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// For a log on JetStream: replicas of each partition's JetStream stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

fn info(dir: &Path, label: String) -> Result<PartitionInfo> {
    if !dir.exists() {
        return Ok(PartitionInfo {
            partition: label,
            start: 0,
            end: 0,
            bytes: 0,
            segments: 0,
        });
    }
    let s = inspect_partition(&FileStorage, dir)?;
    Ok(PartitionInfo {
        partition: label,
        start: s.start.0,
        end: s.end.0,
        bytes: s.bytes,
        segments: s.segments,
    })
}

/// Extent of every partition of `def`.
pub fn stream_info(root: &Path, def: &StreamDef) -> Result<StreamInfo> {
    let dir = stream_dir(root, &def.name);
    let mut parts = Vec::new();
    for p in 0..def.partitions {
        parts.push(match &def.options.jetstream {
            Some(_) => jetstream_info(def, p),
            None => info(&dir.join(p.to_string()), p.to_string())?,
        });
    }
    let dlq_info = info(&dir.join("dlq"), "dlq".into())?;
    Ok(StreamInfo {
        name: def.name.clone(),
        columns: def
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    c.name,
                    c.sql_type,
                    if c.nullable { "" } else { " NOT NULL" }
                )
            })
            .collect(),
        event_time: def.event_time.clone(),
        watermark_delay_ms: def.watermark_delay_ms,
        partitions: def.partitions,
        partition_key: def.partition_key.clone(),
        events: parts.iter().map(|p| p.end - p.start).sum(),
        bytes: parts.iter().map(|p| p.bytes).sum(),
        dead_letters: dlq_info.end - dlq_info.start,
        partition_info: parts,
        dlq_info,
        log: def
            .options
            .jetstream
            .as_ref()
            .map_or_else(|| "embedded".to_string(), |j| j.servers.clone()),
        subject: def.options.jetstream.as_ref().map(|j| j.subject.clone()),
        replicas: def.options.jetstream.as_ref().map(|j| j.replicas),
    })
}

/// Extent of partition `p` of a stream on JetStream, in sequence numbers (JetStream holds
/// the bytes); empty, with a warning, while JetStream cannot be asked.
fn jetstream_info(def: &StreamDef, p: u32) -> PartitionInfo {
    use crate::input::{ChunkReader, PartitionInput};
    let extent = crate::jetstream::JetStreamLog::reader(def, p)
        .and_then(|mut r| Ok((r.start()?.0.max(1), r.end().0)));
    let (start, end) = extent.unwrap_or_else(|e| {
        tracing::warn!(stream = %def.name, partition = p, error = %e, "cannot ask JetStream");
        (0, 0)
    });
    PartitionInfo {
        partition: p.to_string(),
        start,
        end: end.max(start),
        bytes: 0,
        segments: 0,
    }
}

/// The stream definition `name` from the catalog of `root`.
pub fn lookup(root: &Path, name: &str) -> Result<StreamDef> {
    Catalog::load(root)?
        .get(name)
        .cloned()
        .ok_or_else(|| StreamError::UnknownStream(name.to_string()))
}

/// Dead letters of stream `name` from offset `from`, at most `limit` of them.
pub fn dead_letters(root: &Path, name: &str, from: u64, limit: usize) -> Result<Vec<DeadLetter>> {
    lookup(root, name)?;
    let dir = stream_dir(root, name).join("dlq");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut reader = PartitionReader::open(Arc::new(FileStorage), &dir)?;
    let mut out = Vec::new();
    let mut next = Offset(from.max(reader.start_offset()?.0));
    while out.len() < limit {
        let frames = reader.read(next, 1 << 20)?;
        if frames.is_empty() {
            break;
        }
        for frame in frames {
            let base = frame.header.base_offset.0;
            for batch in payload::decode(&frame.payload)? {
                for row in dlq::from_batch(&batch, base) {
                    if row.offset >= next.0 && out.len() < limit {
                        out.push(row);
                    }
                }
            }
            next = frame.header.end_offset();
        }
    }
    Ok(out)
}

/// Verify every partition and the dead-letter log of `def`.
pub fn verify_stream(root: &Path, def: &StreamDef) -> Result<Vec<(String, VerifyReport)>> {
    let dir = stream_dir(root, &def.name);
    let mut out = Vec::new();
    let labels = (0..def.partitions)
        .map(|p| p.to_string())
        .chain(std::iter::once("dlq".to_string()));
    for label in labels {
        let pdir = dir.join(&label);
        let report = if pdir.exists() {
            verify_partition(&FileStorage, &pdir)?
        } else {
            VerifyReport::default()
        };
        out.push((label, report));
    }
    Ok(out)
}
