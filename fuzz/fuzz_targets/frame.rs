//! The log's read path on arbitrary segment bytes: frame checks, `log verify`, a reader
//! reading everything, and recovery on open. None may panic. After recovery succeeds, the
//! partition must verify clean and read back to its end.
//!
//! Input: a flags byte, 8 bytes of segment base offset (used when flag 2 is set), 2 bytes of
//! index-file length (used when flag 4 is set), then the index file and the segment. With
//! flag 1 set, the CRC of every frame the length fields delimit is fixed up first, so that
//! the fuzzer gets past the checksum to the fields behind it.
#![no_main]

use freshet_log::frame::{self, HEADER_BYTES};
use freshet_log::{MemStorage, Partition, PartitionConfig, PartitionReader, Storage};
use freshet_types::Offset;
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::Arc;

/// Bytes read per `PartitionReader::read` call, small so that a segment takes several.
const READ_BYTES: usize = 4096;
/// Reads before a target run gives up (each reads at least one frame).
const READS_MAX: usize = 10_000;

fuzz_target!(|input: &[u8]| {
    let mut head = [0u8; 11];
    let n = input.len().min(head.len());
    head[..n].copy_from_slice(&input[..n]);
    let rest = &input[n..];
    let flags = head[0];
    let base = match flags & 2 {
        0 => 0,
        _ => u64::from_le_bytes(head[1..9].try_into().expect("8 bytes")),
    };
    let (index, segment) = match flags & 4 {
        0 => (None, rest),
        _ => {
            let len = usize::from(u16::from_le_bytes([head[9], head[10]])).min(rest.len());
            (Some(&rest[..len]), &rest[len..])
        }
    };
    let mut segment = segment.to_vec();
    if flags & 1 != 0 {
        fix_crcs(&mut segment);
    }

    let _ = frame::check(&segment);

    let storage = MemStorage::new();
    let dir = Path::new("/stream/0");
    storage.create_dir_all(dir).expect("in memory");
    storage.set_file_bytes(&dir.join(format!("{base:020}.log")), segment);
    if let Some(index) = index {
        storage.set_file_bytes(&dir.join(format!("{base:020}.index")), index.to_vec());
    }

    let _ = freshet_log::verify_partition(&storage, dir);
    let _ = freshet_log::inspect_partition(&storage, dir);
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    if let Ok(mut reader) = PartitionReader::open(shared.clone(), dir) {
        let _ = reader.earliest_event_time();
        let _ = read_all(&mut reader, Offset(base));
    }

    let Ok((partition, _)) = Partition::open(shared.clone(), dir, PartitionConfig::default())
    else {
        return;
    };
    let report = freshet_log::verify_partition(&storage, dir).expect("a recovered log verifies");
    assert!(report.is_ok(), "a recovered log verifies clean: {report:?}");
    let end = partition.end_offset();
    let mut reader = PartitionReader::open(shared, dir).expect("a recovered log opens");
    let read = read_all(&mut reader, Offset(base)).expect("a recovered log reads");
    assert_eq!(read, end, "a recovered log reads to its end");
});

/// Read from `from` to the end; the offset reached.
fn read_all(reader: &mut PartitionReader, from: Offset) -> freshet_log::Result<Offset> {
    let mut next = from;
    for _ in 0..READS_MAX {
        let frames = reader.read(next, READ_BYTES)?;
        let Some(last) = frames.last() else { break };
        let end = last.header.end_offset();
        assert!(end > next, "reading moves forward: {next} then {end}");
        next = end;
    }
    Ok(next)
}

/// Recompute the CRC of every frame whose length field fits, walking frame by frame.
fn fix_crcs(bytes: &mut [u8]) {
    let mut at = 0;
    while bytes.len() - at >= HEADER_BYTES {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let total = length.saturating_add(4);
        if length < HEADER_BYTES - 4 || total > bytes.len() - at {
            break;
        }
        let crc = crc32c(&bytes[at + 8..at + total]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at += total;
    }
}

/// CRC32C (Castagnoli), bit by bit: the harness needs no dependency of its own for it.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
