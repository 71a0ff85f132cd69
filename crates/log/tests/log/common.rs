//! Helpers shared by the log's integration tests: deterministic payloads, small configs,
//! reading a whole partition, and an independent decoder of the on-disk frame layout so
//! tests can find byte positions without trusting the code under test.

use freshet_log::{
    AppendRecord, Frame, FsyncPolicy, Partition, PartitionConfig, PartitionReader, Storage,
};
use freshet_types::{EventTime, IngestTime, Offset};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Deterministic pseudo-random bytes (xorshift64*), different for every `seed`.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// A frame to append with `count` records, ingested at `ingest` ms.
pub fn record(payload: &[u8], count: u32, ingest: i64) -> AppendRecord<'_> {
    AppendRecord {
        payload,
        record_count: count,
        min_event_time: EventTime(ingest - 5),
        max_event_time: EventTime(ingest),
        ingest_time: IngestTime(ingest),
        tag: None,
    }
}

/// A config with small segments and a dense index so tests roll and index often.
pub fn config(segment_bytes: u64, index_interval_bytes: u64) -> PartitionConfig {
    PartitionConfig {
        fsync: FsyncPolicy::Always,
        segment_bytes,
        index_interval_bytes,
        retention_age: None,
        retention_bytes: None,
    }
}

/// What a test wrote: one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub base: u64,
    pub count: u32,
    pub payload: Vec<u8>,
    pub ingest: i64,
}

impl Written {
    pub fn end(&self) -> u64 {
        self.base + u64::from(self.count)
    }
}

/// Append `frames` as `(payload length, record count)` with `append_durable`; frame `i` is
/// ingested at `1000 * (i + 1)` ms.
pub fn append_all(p: &Partition, frames: &[(usize, u32)]) -> Vec<Written> {
    let start = p.end_offset().0;
    frames
        .iter()
        .enumerate()
        .map(|(i, &(len, count))| {
            let data = payload(start + i as u64 + 1, len);
            let ingest = 1000 * (i as i64 + 1);
            let a = p
                .append_durable(&record(&data, count, ingest))
                .expect("append");
            Written {
                base: a.base_offset.0,
                count,
                payload: data,
                ingest,
            }
        })
        .collect()
}

/// Assert that `frame` is exactly `w`.
pub fn assert_frame(frame: &Frame, w: &Written) {
    assert_eq!(frame.header.base_offset, Offset(w.base), "base offset");
    assert_eq!(
        frame.header.record_count, w.count,
        "record count at {}",
        w.base
    );
    assert_eq!(
        frame.header.ingest_time,
        IngestTime(w.ingest),
        "ingest at {}",
        w.base
    );
    assert!(
        frame.payload == w.payload,
        "payload of the frame at {} differs",
        w.base
    );
}

/// Every frame from `from` to the end of the readable data.
pub fn read_all(reader: &mut PartitionReader, from: Offset) -> freshet_log::Result<Vec<Frame>> {
    let mut out: Vec<Frame> = Vec::new();
    let mut at = from;
    loop {
        let frames = reader.read(at, 10_000)?;
        let Some(last) = frames.last() else {
            return Ok(out);
        };
        at = last.header.end_offset();
        out.extend(frames);
    }
}

/// A reader of `dir` opened the way another process would.
pub fn outside_reader(storage: &Arc<dyn Storage>, dir: &Path) -> PartitionReader {
    PartitionReader::open(storage.clone(), dir).expect("open reader")
}

pub fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

pub fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

/// Base offsets of the segment files in a real directory, ascending.
pub fn segment_bases(dir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().expect("utf-8");
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort();
    bases
}

/// A frame found by decoding a segment file by hand, following docs/log-format: a u32 LE
/// length of what follows the length field, the base offset at byte 16, the record count
/// at byte 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame {
    pub position: u64,
    pub len: u64,
    pub base: u64,
    pub count: u32,
}

pub fn raw_frames(bytes: &[u8]) -> Vec<RawFrame> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 64 <= bytes.len() {
        let le32 = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4"));
        let len = le32(pos) as usize + 4;
        if pos + len > bytes.len() {
            break;
        }
        out.push(RawFrame {
            position: pos as u64,
            len: len as u64,
            base: u64::from_le_bytes(bytes[pos + 16..pos + 24].try_into().expect("8")),
            count: le32(pos + 12),
        });
        pos += len;
    }
    out
}

pub fn raw_frames_of(path: &Path) -> Vec<RawFrame> {
    raw_frames(&std::fs::read(path).expect("read segment"))
}

/// Flip one bit of the byte at `pos` in a real file.
pub fn flip_byte(path: &Path, pos: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[pos as usize] ^= 0x10;
    std::fs::write(path, bytes).expect("write");
}
