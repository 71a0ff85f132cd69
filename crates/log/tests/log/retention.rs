//! Retention by size and by age: only the oldest sealed segments go, never the active one,
//! never one holding an offset a registered consumer still needs.

use super::common::{Written, read_all, segment_bases};
use super::recovery::{FRAME, cfg, fixture, storage};
use freshet_log::{LogError, Partition, PartitionConfig};
use freshet_types::{IngestTime, Offset};
use std::path::Path;
use std::time::Duration;

const SEGMENT: u64 = 8 * FRAME;

/// 28 frames: sealed segments at frames 0, 8, 16 and an active one holding frames 24..28.
fn four_segments() -> (tempfile::TempDir, std::path::PathBuf, Vec<Written>) {
    let (tmp, dir, w) = fixture(28);
    assert_eq!(
        segment_bases(&dir),
        vec![0, w[8].base, w[16].base, w[24].base]
    );
    (tmp, dir, w)
}

fn open_with(dir: &Path, f: impl FnOnce(&mut PartitionConfig)) -> Partition {
    let mut c = cfg();
    f(&mut c);
    Partition::open(storage(), dir, c).expect("open").0
}

fn assert_start(p: &Partition, dir: &Path, start: u64) {
    assert_eq!(p.stats().start, Offset(start));
    let mut reader = super::common::outside_reader(&storage(), dir);
    assert_eq!(reader.start_offset().expect("start"), Offset(start));
    if start > 0 {
        assert!(matches!(
            reader.read(Offset(start - 1), 10),
            Err(LogError::OffsetOutOfRange { earliest, .. }) if earliest == Offset(start)
        ));
    }
    let frames = read_all(&mut reader, Offset(start)).expect("read from the start");
    assert_eq!(frames[0].header.base_offset, Offset(start));
}

#[test]
fn size_removes_oldest_sealed_segments() {
    let (_tmp, dir, w) = four_segments();
    let total = 28 * FRAME;
    // Over the limit by a little more than one segment: the two oldest go.
    let p = open_with(&dir, |c| c.retention_bytes = Some(total - SEGMENT - 1));
    let report = p.apply_retention(IngestTime(0)).expect("retention");
    assert_eq!(report.removed_segments, 2);
    assert_eq!(report.removed_bytes, 2 * SEGMENT);
    assert_eq!(report.start, Offset(w[16].base));
    assert_eq!(segment_bases(&dir), vec![w[16].base, w[24].base]);
    assert!(
        !super::common::index_path(&dir, 0).exists(),
        "the index goes too"
    );
    assert_eq!(p.stats().bytes, total - 2 * SEGMENT);
    assert_start(&p, &dir, w[16].base);
    // Nothing more to do.
    assert_eq!(
        p.apply_retention(IngestTime(0))
            .expect("again")
            .removed_segments,
        0
    );
}

#[test]
fn size_never_removes_the_active_segment() {
    let (_tmp, dir, w) = four_segments();
    let p = open_with(&dir, |c| c.retention_bytes = Some(0));
    let report = p.apply_retention(IngestTime(0)).expect("retention");
    assert_eq!(report.removed_segments, 3);
    assert_eq!(segment_bases(&dir), vec![w[24].base]);
    assert_eq!(p.stats().segments, 1);
    assert_start(&p, &dir, w[24].base);
    // The partition keeps working.
    let more = super::common::append_all(&p, &[(10, 1)]);
    assert_eq!(more[0].base, w[27].end());
}

#[test]
fn age_removes_segments_whose_newest_frame_is_old() {
    let (_tmp, dir, w) = four_segments();
    // Frame i was ingested at 1000 * (i + 1) ms: segment k's newest frame at 8000 * (k + 1).
    let p = open_with(&dir, |c| c.retention_age = Some(Duration::from_secs(10)));
    let report = p.apply_retention(IngestTime(27_000)).expect("retention");
    assert_eq!(report.removed_segments, 2, "{report:?}");
    assert_start(&p, &dir, w[16].base);
    // Much later, every sealed segment is old; the active one stays.
    let report = p.apply_retention(IngestTime(1 << 40)).expect("retention");
    assert_eq!(report.removed_segments, 1);
    assert_eq!(segment_bases(&dir), vec![w[24].base]);
}

#[test]
fn age_survives_a_reopen() {
    // The newest ingest time of a sealed segment is recovered on open, not remembered.
    let (_tmp, dir, w) = four_segments();
    let p = open_with(&dir, |c| c.retention_age = Some(Duration::from_secs(10)));
    let report = p.apply_retention(IngestTime(17_000)).expect("retention");
    assert_eq!(
        report.removed_segments, 0,
        "segment 0's newest frame is 9 s old"
    );
    let report = p.apply_retention(IngestTime(18_001)).expect("retention");
    assert_eq!(report.removed_segments, 1);
    assert_eq!(report.start, Offset(w[8].base));
}

#[test]
fn a_consumer_pins_the_segments_it_still_needs() {
    let (_tmp, dir, w) = four_segments();
    let p = open_with(&dir, |c| c.retention_bytes = Some(0));
    // Offset inside the second segment: the first may go, the second may not.
    p.consumers()
        .set("view_a", Offset(w[10].base + 1))
        .expect("set");
    p.consumers()
        .set("view_b", Offset(w[27].base))
        .expect("set");
    let report = p.apply_retention(IngestTime(0)).expect("retention");
    assert_eq!(report.removed_segments, 1);
    assert_start(&p, &dir, w[8].base);
    drop(p);

    // The registration survives a restart.
    let p = open_with(&dir, |c| c.retention_bytes = Some(0));
    assert_eq!(p.consumers().min_offset(), Some(Offset(w[10].base + 1)));
    assert_eq!(
        p.apply_retention(IngestTime(0))
            .expect("again")
            .removed_segments,
        0
    );

    // Exactly at a segment's base: everything before it may go, that segment may not.
    p.consumers()
        .set("view_a", Offset(w[16].base))
        .expect("move");
    let report = p.apply_retention(IngestTime(0)).expect("retention");
    assert_eq!(report.removed_segments, 1);
    assert_start(&p, &dir, w[16].base);

    p.consumers().remove("view_a").expect("remove");
    let report = p.apply_retention(IngestTime(0)).expect("retention");
    assert_eq!(
        report.removed_segments, 1,
        "view_b needs only the active segment"
    );
    assert_eq!(segment_bases(&dir), vec![w[24].base]);
}

#[test]
fn a_consumer_at_the_start_pins_everything() {
    let (_tmp, dir, _w) = four_segments();
    let p = open_with(&dir, |c| {
        c.retention_bytes = Some(0);
        c.retention_age = Some(Duration::ZERO);
    });
    p.consumers().set("replay", Offset(0)).expect("set");
    let report = p.apply_retention(IngestTime(1 << 40)).expect("retention");
    assert_eq!(report.removed_segments, 0);
    assert_eq!(segment_bases(&dir).len(), 4);
}
