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
