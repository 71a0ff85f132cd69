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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;
    use crate::segment::{IndexEntry, encode_index};
    use crate::storage::MemStorage;
    use freshet_types::{EventTime, IngestTime};
    use std::sync::Arc;

    /// Issue 19 (found by fuzz/fuzz_targets/frame.rs; its input reduced by hand to this):
    /// an index entry pointing at a frame with a valid CRC whose offsets overflow u64 made
    /// `inspect_partition` (`freshet streams`) panic computing the frame's end offset. Such
    /// a frame is damage now: the listing stops before it, and `log verify` names it.
    #[test]
    fn issue_19_a_frame_whose_offsets_overflow_is_damage_not_a_panic() {
        let storage = MemStorage::new();
        let dir = Path::new("/stream/0");
        storage.create_dir_all(dir).expect("in memory");
        let t = EventTime(0);
        let mut seg = Vec::new();
        frame::encode(&mut seg, Offset(0), 1, t, t, IngestTime(0), None, b"a");
        let second = seg.len() as u64;
        let huge = Offset(u64::MAX - 1);
        frame::encode(&mut seg, huge, 3, t, t, IngestTime(0), None, b"b");
        storage.set_file_bytes(&log_path(dir, Offset(0)), seg);
        let entries = [
            IndexEntry {
                offset: Offset(0),
                position: 0,
            },
            IndexEntry {
                offset: huge,
                position: second,
            },
        ];
        storage.set_file_bytes(&index_path(dir, Offset(0)), encode_index(&entries));

        let stats = inspect_partition(&storage, dir).expect("inspect");
        assert_eq!(stats.end, Offset(1));
        let report = crate::verify_partition(&storage, dir).expect("verify");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.detail.contains("past the largest offset")),
            "{report:?}"
        );
        let shared: Arc<dyn Storage> = Arc::new(storage.clone());
        let mut reader = crate::PartitionReader::open(shared, dir).expect("a reader");
        let frames = reader
            .read(Offset(0), 1 << 20)
            .expect("the first frame reads");
        assert_eq!(frames.len(), 1);
    }
}
