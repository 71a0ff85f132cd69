//! Segment files, their sparse offset index, and the frame-by-frame scan that recovery,
//! verification and index rebuilding share.
//!
//! A segment is `<base offset, 20 digits>.log`; its index is `<base>.index`, a sequence of
//! 16-byte entries `(offset u64 LE, byte position u64 LE)`, one for the first frame and then
//! one whenever at least `index_interval_bytes` were written since the previous entry. The
//! index is derived data: it is never synced, and is rebuilt from the segment whenever it is
//! missing or disagrees with it.

use crate::error::{LogError, Result, io_err};
use crate::frame::{self, FrameDefect, FrameHeader, HEADER_BYTES};
use crate::storage::{Storage, StorageFile};
use freshet_types::{IngestTime, Offset};
use std::path::{Path, PathBuf};

/// One sparse-index entry: the frame starting at `position` has base offset `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Base offset of the frame.
    pub offset: Offset,
    /// Byte position of the frame in its segment.
    pub position: u64,
}

pub(crate) const INDEX_ENTRY_BYTES: usize = 16;

pub(crate) fn log_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{:020}.log", base.0))
}

pub(crate) fn index_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{:020}.index", base.0))
}

/// Base offsets of the segments in `dir`, ascending, and the names of index files that have
/// no segment.
pub(crate) fn list_segments(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<(Vec<Offset>, Vec<String>)> {
    let names = storage.list(dir).map_err(io_err("list", dir))?;
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    for name in &names {
        if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(base) = stem.parse::<u64>() {
                bases.push(Offset(base));
            }
        } else if let Some(stem) = name.strip_suffix(".index")
            && let Ok(base) = stem.parse::<u64>()
        {
            indexes.push((Offset(base), name.clone()));
        }
    }
    bases.sort();
    let orphans = indexes
        .into_iter()
        .filter(|(b, _)| bases.binary_search(b).is_err())
        .map(|(_, n)| n)
        .collect();
    Ok((bases, orphans))
}

pub(crate) fn encode_index(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * INDEX_ENTRY_BYTES);
    for e in entries {
        out.extend_from_slice(&e.offset.0.to_le_bytes());
        out.extend_from_slice(&e.position.to_le_bytes());
    }
    out
}

/// Read an index file; `None` when it is missing or malformed (not a multiple of the entry
/// size, not strictly increasing, pointing past `segment_len`, or empty although the segment
/// is not: the first frame always has an entry, and an index that lost it, as an unsynced
/// index can in a crash, would make every lookup scan the whole segment).
pub(crate) fn read_index(
    storage: &dyn Storage,
    path: &Path,
    base: Offset,
    segment_len: u64,
) -> Option<Vec<IndexEntry>> {
    let file = storage.open(path, false).ok()?;
    let len = file.len().ok()? as usize;
    if !len.is_multiple_of(INDEX_ENTRY_BYTES) {
        return None;
    }
    let mut bytes = vec![0; len];
    file.read_exact_at(0, &mut bytes).ok()?;
    let mut entries = Vec::with_capacity(len / INDEX_ENTRY_BYTES);
    for chunk in bytes.chunks_exact(INDEX_ENTRY_BYTES) {
        let offset = Offset(u64::from_le_bytes(chunk[0..8].try_into().expect("8 bytes")));
        let position = u64::from_le_bytes(chunk[8..16].try_into().expect("8 bytes"));
        if let Some(prev) = entries.last() {
            let prev: &IndexEntry = prev;
            if offset <= prev.offset || position <= prev.position {
                return None;
            }
        } else if offset != base || position != 0 {
            return None;
        }
        if position >= segment_len {
            return None;
        }
        entries.push(IndexEntry { offset, position });
    }
    if entries.is_empty() && segment_len > 0 {
        return None;
    }
    Some(entries)
}

/// Decides when a frame gets an index entry; shared by writers and rebuilders so a rebuilt
/// index equals the one written live.
#[derive(Debug, Clone)]
pub(crate) struct IndexCadence {
    interval: u64,
    last: Option<u64>,
}

impl IndexCadence {
    pub(crate) fn new(interval: u64) -> IndexCadence {
        IndexCadence {
            interval,
            last: None,
        }
    }
    pub(crate) fn resume(interval: u64, last_position: Option<u64>) -> IndexCadence {
        IndexCadence {
            interval,
            last: last_position,
        }
    }
    pub(crate) fn interval(&self) -> u64 {
        self.interval
    }
    /// Whether the frame at `position` gets an entry; records it if so.
    pub(crate) fn take(&mut self, position: u64) -> bool {
        let due = match self.last {
            None => true,
            Some(last) => position - last >= self.interval,
        };
        if due {
            self.last = Some(position);
        }
        due
    }
}

/// What a scan found where valid frames stop before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub file: PathBuf,
    /// Byte position where the valid frames end.
    pub position: u64,
    /// Bytes from there to the end of the file.
    pub bytes: u64,
    /// Why the bytes at `position` are not a frame.
    pub defect: String,
}

/// The result of scanning a segment frame by frame.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    /// Offset after the last valid frame.
    pub end: Offset,
    /// Byte position after the last valid frame.
    pub valid_bytes: u64,
    /// Index entries for the frames scanned, by the cadence.
    pub index: Vec<IndexEntry>,
    /// Ingest time of the last valid frame (or `IngestTime(i64::MIN)` if none).
    pub last_ingest: IngestTime,
    /// Frames and records that verified.
    pub frames: u64,
    /// Records in them.
    pub records: u64,
    /// Trailing bytes that are not valid frames, with no valid frame after them.
    pub torn: Option<TornTail>,
}

/// Scan `file` from `position` (where a frame with base `offset` must start) to its end,
/// verifying the CRC of every frame. Damage followed by a valid frame is corruption and an
/// error; damage at the very end is reported as a torn tail.
pub(crate) fn scan(
    file: &dyn StorageFile,
    path: &Path,
    mut position: u64,
    mut offset: Offset,
    mut cadence: IndexCadence,
    mut on_frame: impl FnMut(&FrameHeader, &[u8]),
) -> Result<Scan> {
    let len = file.len().map_err(io_err("stat", path))?;
    let mut out = Scan {
        end: offset,
        valid_bytes: position,
        index: Vec::new(),
        last_ingest: IngestTime(i64::MIN),
        frames: 0,
        records: 0,
        torn: None,
    };
    let mut buf = Vec::new();
    while position < len {
        let available = len - position;
        let mut header = [0u8; HEADER_BYTES];
        let head_len = available.min(HEADER_BYTES as u64) as usize;
        file.read_exact_at(position, &mut header[..head_len])
            .map_err(io_err("read", path))?;
        let defect = match frame::frame_len(&header[..head_len], available) {
            Err(defect) => Some(defect.to_string()),
            Ok(total) => {
                buf.resize(total as usize, 0);
                file.read_exact_at(position, &mut buf)
                    .map_err(io_err("read", path))?;
                match frame::check(&buf) {
                    Err(defect) => Some(defect.to_string()),
                    Ok(h) if h.base_offset != offset => Some(format!(
                        "frame has base offset {} where {} was expected",
                        h.base_offset, offset
                    )),
                    Ok(h) => {
                        if cadence.take(position) {
                            out.index.push(IndexEntry { offset, position });
                        }
                        on_frame(&h, &buf[HEADER_BYTES..]);
                        position += total;
                        offset = h.end_offset();
                        out.frames += 1;
                        out.records += u64::from(h.record_count);
                        out.last_ingest = h.ingest_time;
                        out.end = offset;
                        out.valid_bytes = position;
                        None
                    }
                }
            }
        };
        if let Some(detail) = defect {
            if let Some(later) = find_valid_frame_after(file, path, position, len)? {
                return Err(LogError::Corrupt {
                    file: path.to_path_buf(),
                    position,
                    offset,
                    detail: format!("{detail} (a valid frame follows at byte {later})"),
                });
            }
            out.torn = Some(TornTail {
                file: path.to_path_buf(),
                position,
                bytes: len - position,
                defect: detail,
            });
            break;
        }
    }
    Ok(out)
}

/// Position of the first valid frame that starts after `position`, if any. Only called on
/// damage, so a byte-by-byte search is acceptable.
fn find_valid_frame_after(
    file: &dyn StorageFile,
    path: &Path,
    position: u64,
    len: u64,
) -> Result<Option<u64>> {
    let start = position + 1;
    if start >= len {
        return Ok(None);
    }
    let mut rest = vec![0u8; (len - start) as usize];
    file.read_exact_at(start, &mut rest)
        .map_err(io_err("read", path))?;
    for i in 0..rest.len().saturating_sub(HEADER_BYTES - 1) {
        if rest[i + 8] != frame::MAGIC || rest[i + 9] != frame::VERSION {
            continue;
        }
        if frame::check(&rest[i..]).is_ok() {
            return Ok(Some(start + i as u64));
        }
    }
    Ok(None)
}

/// Whether a valid frame whose base offset is exactly `entry.offset` starts at
/// `entry.position`. Index entries are derived data that a crash can leave stale or wrong,
/// so they are checked with this before being trusted.
pub(crate) fn entry_is_frame_start(
    file: &dyn StorageFile,
    path: &Path,
    len: u64,
    entry: &IndexEntry,
) -> bool {
    matches!(
        read_frame_at(file, path, entry.position, len, entry.offset),
        Ok(Ok((h, _))) if h.base_offset == entry.offset
    )
}

/// Read the frame at `position` of an open segment, verifying it.
pub(crate) fn read_frame_at(
    file: &dyn StorageFile,
    path: &Path,
    position: u64,
    len: u64,
    expected: Offset,
) -> Result<std::result::Result<(FrameHeader, Vec<u8>), FrameDefect>> {
    if position >= len {
        return Ok(Err(FrameDefect::ShortHeader));
    }
    let mut header = [0u8; HEADER_BYTES];
    let head_len = (len - position).min(HEADER_BYTES as u64) as usize;
    file.read_exact_at(position, &mut header[..head_len])
        .map_err(io_err("read", path))?;
    let total = match frame::frame_len(&header[..head_len], len - position) {
        Ok(total) => total,
        Err(defect) => return Ok(Err(defect)),
    };
    let mut buf = vec![0u8; total as usize];
    file.read_exact_at(position, &mut buf)
        .map_err(io_err("read", path))?;
    match frame::check(&buf) {
        Ok(h) if h.base_offset > expected || h.end_offset() <= expected => Err(LogError::Corrupt {
            file: path.to_path_buf(),
            position,
            offset: expected,
            detail: format!(
                "frame covers [{}, {}) but offset {} was expected here",
                h.base_offset,
                h.end_offset(),
                expected
            ),
        }),
        Ok(h) => {
            buf.drain(..HEADER_BYTES);
            Ok(Ok((h, buf)))
        }
        Err(defect) => Ok(Err(defect)),
    }
}

/// Headers of the frames in the newest `segments` segments of the partition in `dir` for
/// which `keep` is true, oldest first. Payloads are skipped, not read or checked: this is for cheap scans of
/// recent frames (such as finding producer tags after a crash) in a partition that was
/// just opened, and so verified, for writing. Stops at the first incomplete frame.
pub fn tail_headers(
    storage: &dyn Storage,
    dir: &Path,
    segments: usize,
    keep: impl Fn(&FrameHeader) -> bool,
) -> Result<Vec<FrameHeader>> {
    let (bases, _) = list_segments(storage, dir)?;
    let mut out = Vec::new();
    for &base in bases.iter().rev().take(segments).rev() {
        let path = log_path(dir, base);
        let file = storage.open(&path, false).map_err(io_err("open", &path))?;
        let len = file.len().map_err(io_err("stat", &path))?;
        // Read in large blocks: a segment of small frames would otherwise cost one read
        // call per frame, and this runs when a stream opens.
        const BLOCK: u64 = 1 << 20;
        let header_len = HEADER_BYTES as u64;
        let mut block = Vec::new();
        let mut block_start = 0u64;
        let mut position = 0u64;
        while len - position >= header_len {
            if position < block_start || position + header_len > block_start + block.len() as u64 {
                block_start = position;
                block.resize(BLOCK.min(len - position) as usize, 0);
                file.read_exact_at(position, &mut block)
                    .map_err(io_err("read", &path))?;
            }
            let at = (position - block_start) as usize;
            let header = &block[at..at + HEADER_BYTES];
            let Ok(total) = frame::frame_len(header, len - position) else {
                break;
            };
            let decoded = frame::decode_header(header);
            if keep(&decoded) {
                out.push(decoded);
            }
            position += total;
        }
    }
    Ok(out)
}
