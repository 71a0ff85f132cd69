//! Opening real directories (FileStorage) that were damaged in specific ways: a torn tail
//! is cut and reported, damage elsewhere is refused naming file, byte and offset, empty
//! segments and missing or wrong indexes are repaired.

use super::common::{
    Written, append_all, config, flip_byte, index_path, outside_reader, raw_frames_of, read_all,
    segment_bases, segment_path,
};
use freshet_log::{FileStorage, LogError, Partition, PartitionConfig, RecoveryReport, Storage};
use freshet_types::Offset;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Every frame is 264 bytes (200 of payload), so a 2112-byte segment holds exactly 8 frames
/// and, with a 600-byte index interval, indexes frames 0, 3 and 6 (bytes 0, 792, 1584).
pub const PAYLOAD: usize = 200;
pub const FRAME: u64 = 264;
pub fn cfg() -> PartitionConfig {
    config(8 * FRAME, 600)
}

pub fn storage() -> Arc<dyn Storage> {
    Arc::new(FileStorage)
}

/// A partition in a fresh temporary directory holding `n` frames of 1, 2, 3, 1, 2, 3, …
/// records; the writer is closed.
pub fn fixture(n: usize) -> (tempfile::TempDir, PathBuf, Vec<Written>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p0");
    let (p, _) = Partition::open(storage(), &dir, cfg()).expect("open");
    let frames: Vec<(usize, u32)> = (0..n).map(|i| (PAYLOAD, (i % 3) as u32 + 1)).collect();
    let written = append_all(&p, &frames);
    drop(p);
    (tmp, dir, written)
}

fn reopen(dir: &Path) -> freshet_log::Result<(Partition, RecoveryReport)> {
    Partition::open(storage(), dir, cfg())
}

fn assert_reads_back(dir: &Path, written: &[Written]) {
    let mut reader = outside_reader(&storage(), dir);
    let frames = read_all(&mut reader, Offset(0)).expect("read");
    assert_eq!(frames.len(), written.len());
    for (f, w) in frames.iter().zip(written) {
        super::common::assert_frame(f, w);
    }
}

fn expect_corrupt<T>(
    result: freshet_log::Result<T>,
    file: &Path,
    position: u64,
    offset: u64,
) -> String {
    let Err(err) = result else {
        panic!(
            "expected a Corrupt error at {} byte {position}",
            file.display()
        );
    };
    let message = err.to_string();
    match err {
        LogError::Corrupt {
            file: f,
            position: pos,
            offset: off,
            ..
        } => {
            assert_eq!(f, file, "file named by {message}");
            assert_eq!(pos, position, "byte position in {message}");
            assert_eq!(off, Offset(offset), "offset in {message}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains(&format!("byte {position}")), "{message}");
    assert!(message.contains(&format!("offset {offset}")), "{message}");
    message
}

#[test]
fn fixture_layout_is_what_the_tests_assume() {
    let (_tmp, dir, w) = fixture(20);
    assert_eq!(segment_bases(&dir), vec![0, w[8].base, w[16].base]);
    let frames = raw_frames_of(&segment_path(&dir, 0));
    assert_eq!(frames.len(), 8);
    assert!(frames.iter().all(|f| f.len == FRAME));
    let index = std::fs::read(index_path(&dir, 0)).expect("index");
    assert_eq!(index.len(), 3 * 16, "entries for frames 0, 3 and 6");
}

#[test]
fn truncated_tail_is_cut_and_reported() {
    let (_tmp, dir, w) = fixture(11);
    let last = segment_path(&dir, w[8].base);
    let torn_at = 2 * FRAME;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open");
    file.set_len(torn_at + FRAME / 2).expect("set_len");
    drop(file);

    let (p, report) = reopen(&dir).expect("a torn tail is not a reason to refuse");
    let torn = report.truncated.expect("the torn tail is reported");
    assert_eq!(torn.file, last);
    assert_eq!(torn.position, torn_at);
    assert_eq!(torn.bytes, FRAME / 2);
    assert_eq!(std::fs::metadata(&last).expect("stat").len(), torn_at);
    assert_eq!(p.end_offset(), Offset(w[9].end()));
    drop(p);
    assert_reads_back(&dir, &w[..10]);

    let (p, report) = reopen(&dir).expect("reopen");
    assert!(report.truncated.is_none(), "nothing left to cut");
    let more = append_all(&p, &[(PAYLOAD, 4)]);
    assert_eq!(
        more[0].base,
        w[9].end(),
        "appends continue where the valid data ends"
    );
    drop(p);
    let mut expected = w[..10].to_vec();
    expected.extend(more);
    assert_reads_back(&dir, &expected);
}

#[test]
fn tail_cut_inside_a_header_is_a_torn_tail() {
    let (_tmp, dir, w) = fixture(10);
    let last = segment_path(&dir, w[8].base);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open");
    file.set_len(FRAME + 20).expect("set_len");
    drop(file);
    let (p, report) = reopen(&dir).expect("open");
    assert_eq!(report.truncated.expect("reported").position, FRAME);
    assert_eq!(p.end_offset(), Offset(w[8].end()));
}

#[test]
fn flipped_byte_in_the_middle_of_the_last_segment_is_refused() {
    for delta in [100, 12, 20, 2] {
        // payload, record count, base offset, length field
        let (_tmp, dir, w) = fixture(12);
        let last = segment_path(&dir, w[8].base);
        let before = std::fs::read(&last).expect("read");
        flip_byte(&last, FRAME + delta);
        let message = expect_corrupt(reopen(&dir), &last, FRAME, w[9].base);
        assert!(message.contains("corrupt"), "{message}");
        let mut after = std::fs::read(&last).expect("read");
        after[(FRAME + delta) as usize] ^= 0x10;
        assert!(
            after == before,
            "a refused open must not change the segment"
        );
    }
}

#[test]
fn flipped_byte_in_a_sealed_segment_fails_reads_and_verify() {
    let (_tmp, dir, w) = fixture(20);
    let sealed = segment_path(&dir, 0);
    // Frame 1 lies between index entries (frames 0 and 3): open trusts the index and does
    // not look at it; every read that has to pass it must fail.
    flip_byte(&sealed, FRAME + 100);
    let (p, _) = reopen(&dir).expect("open checks a sealed segment only after its last entry");
    drop(p);
    let storage = storage();
    for from in [w[0].base, w[1].base, w[2].base, w[2].base + 1] {
        let mut reader = outside_reader(&storage, &dir);
        expect_corrupt(
            read_all(&mut reader, Offset(from)),
            &sealed,
            FRAME,
            w[1].base,
        );
    }
    // Past the damage the data is still readable.
    let mut reader = outside_reader(&storage, &dir);
    let rest = read_all(&mut reader, Offset(w[3].base)).expect("read");
    assert_eq!(rest.len(), 17);

    let report = freshet_log::verify_partition(storage.as_ref(), &dir).expect("verify");
    assert!(!report.is_ok());
    let fatal: Vec<_> = report.problems.iter().filter(|p| p.fatal).collect();
    assert_eq!(fatal.len(), 1, "{:?}", report.problems);
    assert_eq!(fatal[0].file, sealed);
    assert_eq!(fatal[0].position, FRAME);
    assert_eq!(fatal[0].offset, Offset(w[1].base));
}

#[test]
fn flipped_byte_after_the_last_index_entry_of_a_sealed_segment_is_refused_on_open() {
    let (_tmp, dir, w) = fixture(20);
    let sealed = segment_path(&dir, w[8].base);
    flip_byte(&sealed, 7 * FRAME + 100);
    expect_corrupt(reopen(&dir), &sealed, 7 * FRAME, w[15].base);
}

#[test]
fn empty_last_segment_after_a_roll_is_fine() {
    let (_tmp, dir, w) = fixture(8);
    let end = w[7].end();
    // A crash right after the roll created the next segment.
    std::fs::File::create(segment_path(&dir, end)).expect("create");
    let (p, report) = reopen(&dir).expect("open");
    assert!(report.truncated.is_none());
    assert!(report.removed_empty_segments.is_empty());
    let stats = p.stats();
    assert_eq!((stats.segments, stats.end), (2, Offset(end)));
    let more = append_all(&p, &[(PAYLOAD, 1)]);
    assert_eq!(more[0].base, end);
    drop(p);
    assert_eq!(raw_frames_of(&segment_path(&dir, end)).len(), 1);
    assert_eq!(raw_frames_of(&segment_path(&dir, 0)).len(), 8);
    let mut expected = w;
    expected.extend(more);
    assert_reads_back(&dir, &expected);
}

#[test]
fn stray_empty_segment_in_the_middle_is_removed_and_reported() {
    let (_tmp, dir, w) = fixture(20);
    // An empty file whose name falls inside the first segment's offsets: it holds
    // nothing, and the segments around it are contiguous without it.
    let stray = segment_path(&dir, w[3].base);
    std::fs::File::create(&stray).expect("create");
    let (p, report) = reopen(&dir).expect("an empty segment holds nothing to lose");
    assert_eq!(report.removed_empty_segments, vec![stray.clone()]);
    assert!(!stray.exists());
    assert_eq!(p.stats().segments, 3);
    drop(p);
    assert_reads_back(&dir, &w);
}

#[test]
fn emptied_middle_segment_is_refused_as_a_gap() {
    let (_tmp, dir, w) = fixture(20);
    let middle = segment_path(&dir, w[8].base);
    std::fs::File::create(&middle).expect("truncate");
    let next = segment_path(&dir, w[16].base);
    let message = expect_corrupt(reopen(&dir), &next, 0, w[8].base);
    assert!(message.contains(&format!("{}", w[16].base)), "{message}");
    assert!(
        middle.exists(),
        "a refused open must leave the evidence in place"
    );
}

#[test]
fn missing_indexes_are_rebuilt() {
    let (_tmp, dir, w) = fixture(20);
    let bases = segment_bases(&dir);
    let originals: Vec<Vec<u8>> = bases
        .iter()
        .map(|&b| std::fs::read(index_path(&dir, b)).expect("index"))
        .collect();
    for &b in &bases {
        std::fs::remove_file(index_path(&dir, b)).expect("remove");
    }
    let (p, report) = reopen(&dir).expect("open");
    let mut rebuilt = report.rebuilt_indexes.clone();
    rebuilt.sort();
    let expected: Vec<PathBuf> = bases.iter().map(|&b| index_path(&dir, b)).collect();
    assert_eq!(rebuilt, expected);
    for (&b, original) in bases.iter().zip(&originals) {
        let now = std::fs::read(index_path(&dir, b)).expect("rebuilt index");
        assert!(
            &now == original,
            "the rebuilt index of {b} equals the one written live"
        );
    }
    drop(p);
    assert_reads_from_every_offset(&dir, &w);
}

#[test]
fn empty_index_of_a_sealed_segment_is_rebuilt() {
    // Indexes are never synced: after a power loss a sealed segment's index can be empty.
    let (_tmp, dir, w) = fixture(20);
    let idx = index_path(&dir, 0);
    let original = std::fs::read(&idx).expect("index");
    std::fs::write(&idx, b"").expect("empty it");
    let (_p, report) = reopen(&dir).expect("open");
    assert_eq!(report.rebuilt_indexes, vec![idx.clone()]);
    assert_eq!(std::fs::read(&idx).expect("index"), original);
    assert_reads_from_every_offset(&dir, &w);
}

fn entry(offset: u64, position: u64) -> Vec<u8> {
    let mut e = offset.to_le_bytes().to_vec();
    e.extend_from_slice(&position.to_le_bytes());
    e
}

#[test]
fn garbage_indexes_are_rebuilt() {
    let (_tmp, dir, w) = fixture(20);
    let bases = segment_bases(&dir);
    for &b in &bases {
        std::fs::write(index_path(&dir, b), super::common::payload(b, 37)).expect("garble");
    }
    let (p, report) = reopen(&dir).expect("open");
    assert_eq!(
        report.rebuilt_indexes.len(),
        3,
        "{:?}",
        report.rebuilt_indexes
    );
    drop(p);
    assert_reads_from_every_offset(&dir, &w);
}

#[test]
fn index_whose_last_entry_points_inside_a_frames_offsets_is_rebuilt() {
    let (_tmp, dir, w) = fixture(20);
    // Frame 5 holds 3 records; an entry naming its second record at its position is
    // well-formed but wrong.
    assert_eq!(w[5].count, 3);
    let mut index = entry(0, 0);
    index.extend(entry(w[5].base + 1, 5 * FRAME));
    let idx = index_path(&dir, 0);
    std::fs::write(&idx, index).expect("write");
    let (_p, report) = reopen(&dir).expect("a wrong index is derived data, not damage");
    assert_eq!(report.rebuilt_indexes, vec![idx]);
    assert_reads_from_every_offset(&dir, &w);
}

#[test]
fn index_with_a_wrong_middle_entry_still_reads_correctly() {
    let (_tmp, dir, w) = fixture(20);
    let mut index = entry(0, 0);
    index.extend(entry(w[3].base, 3 * FRAME + 8)); // not a frame start
    index.extend(entry(w[6].base, 6 * FRAME));
    std::fs::write(index_path(&dir, 0), index).expect("write");
    let (p, _) = reopen(&dir).expect("open");
    drop(p);
    assert_reads_from_every_offset(&dir, &w);
}

/// A fresh reader positioned at every offset returns the frame holding it and then the
/// rest of the log.
pub fn assert_reads_from_every_offset(dir: &Path, w: &[Written]) {
    let storage = storage();
    for (i, f) in w.iter().enumerate() {
        for o in f.base..f.end() {
            let mut reader = outside_reader(&storage, dir);
            let frames =
                read_all(&mut reader, Offset(o)).unwrap_or_else(|e| panic!("read from {o}: {e}"));
            assert_eq!(frames.len(), w.len() - i, "frames read from {o}");
            for (got, want) in frames.iter().zip(&w[i..]) {
                super::common::assert_frame(got, want);
            }
        }
    }
}
