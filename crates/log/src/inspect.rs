//! Read-only extent of a partition, cheap enough for listings: sums segment sizes and walks
//! only the newest segment's frames after its last index entry.

use crate::error::{Result, io_err};
use crate::partition::PartitionStats;
use crate::segment::{self, index_path, log_path, read_index};
use crate::storage::Storage;
use freshet_types::Offset;
use std::path::Path;

/// Extent and size of the partition in `dir`, without opening it for writing. An
/// incomplete frame at the end (a write in progress, or a torn tail) is not counted.
pub fn inspect_partition(storage: &dyn Storage, dir: &Path) -> Result<PartitionStats> {
    let (bases, _) = segment::list_segments(storage, dir)?;
    let Some(&last) = bases.last() else {
        return Ok(PartitionStats {
            start: Offset(0),
            end: Offset(0),
            bytes: 0,
            segments: 0,
        });
    };
    let mut bytes = 0;
    for &base in &bases {
        let path = log_path(dir, base);
        let file = storage.open(&path, false).map_err(io_err("open", &path))?;
        bytes += file.len().map_err(io_err("stat", &path))?;
    }
    let path = log_path(dir, last);
    let file = storage.open(&path, false).map_err(io_err("open", &path))?;
    let len = file.len().map_err(io_err("stat", &path))?;
    let index = read_index(storage, &index_path(dir, last), last, len).unwrap_or_default();
    // The index is derived data: start from its last entry only if that entry is right.
    let (mut next, mut position) = index
        .last()
        .filter(|e| segment::entry_is_frame_start(file.as_ref(), &path, len, e))
        .map_or((last, 0), |e| (e.offset, e.position));
    while let Ok(Ok((header, _))) =
        segment::read_frame_at(file.as_ref(), &path, position, len, next)
    {
        position += u64::from(header.frame_bytes);
        next = header.end_offset();
    }
    Ok(PartitionStats {
        start: bases[0],
        end: next,
        bytes,
        segments: bases.len(),
    })
}

/// Headers of the frames in the newest `segments` segments of the partition in `dir` for
/// which `keep` is true, oldest first. Payloads are skipped, not read or checked: this is for cheap scans of
/// recent frames (such as finding producer tags after a crash) in a partition that was
/// just opened, and so verified, for writing. Stops at the first incomplete frame.
pub fn tail_headers(
    storage: &dyn Storage,
    dir: &Path,
    segments: usize,
    keep: impl Fn(&crate::frame::FrameHeader) -> bool,
) -> Result<Vec<crate::frame::FrameHeader>> {
    let (bases, _) = segment::list_segments(storage, dir)?;
    let mut out = Vec::new();
    for &base in bases.iter().rev().take(segments).rev() {
        let path = log_path(dir, base);
        let file = storage.open(&path, false).map_err(io_err("open", &path))?;
        let len = file.len().map_err(io_err("stat", &path))?;
        // Read in large blocks: a segment of small frames would otherwise cost one read
        // call per frame, and this runs when a stream opens.
        const BLOCK: u64 = 1 << 20;
        let header_len = crate::frame::HEADER_BYTES as u64;
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
            let header = &block[at..at + crate::frame::HEADER_BYTES];
            let Ok(total) = crate::frame::frame_len(header, len - position) else {
                break;
            };
            let decoded = crate::frame::decode_header(header);
            if keep(&decoded) {
                out.push(decoded);
            }
            position += total;
        }
    }
    Ok(out)
}
