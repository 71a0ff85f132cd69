//! Appending: what the writer refuses, and what a failed fsync does to it.

use super::common::{config, read_all, record};
use freshet_log::{LogError, MemStorage, Partition, Storage};
use freshet_types::Offset;
use std::sync::Arc;

fn open(storage: &MemStorage) -> Partition {
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    Partition::open(shared, "/p", config(4096, 512))
        .expect("open")
        .0
}

#[test]
fn sync_through_an_offset_never_written_is_refused() {
    let p = open(&MemStorage::new());
    p.append_durable(&record(b"a", 2, 1)).expect("append");
    p.sync_through(Offset(2)).expect("written and durable");
    // Returning Ok would claim that records which do not exist are durable.
    assert!(matches!(
        p.sync_through(Offset(3)),
        Err(LogError::Invalid(_))
    ));
    assert_eq!(p.durable_end(), Offset(2));
}

#[test]
fn a_frame_without_records_is_refused() {
    let p = open(&MemStorage::new());
    assert!(matches!(
        p.append(&record(b"a", 0, 1)),
        Err(LogError::Invalid(_))
    ));
    assert_eq!(p.end_offset(), Offset(0));
}

#[test]
fn a_failed_fsync_poisons_the_partition_until_reopened() {
    let storage = MemStorage::new();
    let p = open(&storage);
    p.append_durable(&record(b"a", 1, 1)).expect("append");
    storage.fail_next_syncs(1);
    let err = p
        .append_durable(&record(b"b", 1, 2))
        .expect_err("fsync fails");
    assert!(matches!(err, LogError::Io { op: "fsync", .. }), "{err}");
    assert!(err.retriable());
    assert_eq!(
        p.durable_end(),
        Offset(1),
        "nothing after the failure is durable"
    );
    let err = p.append(&record(b"c", 1, 3)).expect_err("poisoned");
    assert!(matches!(err, LogError::Poisoned { .. }), "{err}");
    assert!(err.to_string().contains("/p"), "{err}");
    assert!(matches!(p.sync(), Err(LogError::Poisoned { .. })));
    drop(p);
    let p = open(&storage);
    let a = p
        .append_durable(&record(b"d", 1, 4))
        .expect("a reopened partition writes");
    assert_eq!(
        a.base_offset,
        Offset(2),
        "the unacknowledged frame survived the reopen"
    );
}

/// A gated partition: unpublished frames are not read, a cut removes them durably and keeps
/// the index true, and a roll waits until the tail is published.
#[test]
fn a_gated_partition_reads_only_published_frames_and_cuts_the_rest() {
    let storage = MemStorage::new();
    let p = Arc::new(open(&storage));
    p.gate();
    let a = p.append(&record(&[1; 100], 2, 1)).expect("append");
    p.sync().expect("sync");
    assert_eq!(p.visible_end(), Offset(0), "synced but not published");
    p.publish_through(a.end_offset);
    assert_eq!(p.visible_end(), Offset(2));
    // Enough unpublished frames to pass several index entries (every 512 bytes).
    let first = p.append(&record(&[2; 300], 3, 2)).expect("append");
    for i in 0..5 {
        p.append(&record(&[3; 300], 1, 3 + i)).expect("append");
    }
    p.sync().expect("sync");
    assert_eq!(p.visible_end(), Offset(2));
    assert_eq!(
        read_all(&mut p.reader(), Offset(0)).expect("reads").len(),
        1
    );
    p.truncate_unpublished(&first).expect("cuts");
    assert_eq!(p.end_offset(), Offset(2));
    assert_eq!(p.durable_end(), Offset(2));
    assert!(matches!(
        p.truncate_unpublished(&a),
        Err(LogError::Invalid(_))
    ));
    let b = p
        .append(&record(&[4; 50], 1, 9))
        .expect("append after the cut");
    assert_eq!(b.base_offset, Offset(2), "offsets go on from the cut");
    p.sync().expect("sync");
    p.publish_through(b.end_offset);
    // A frame that does not fit makes the segment roll only once the tail is published.
    let c = p.append(&record(&[5; 4000], 1, 10)).expect("append");
    let roller = {
        let p = p.clone();
        std::thread::spawn(move || p.append(&record(&[6; 4000], 1, 11)).expect("append"))
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(
        !roller.is_finished(),
        "the roll waits for the unpublished frame"
    );
    p.sync().expect("sync");
    p.publish_through(c.end_offset);
    let d = roller.join().expect("no panic");
    assert_eq!(d.segment, d.base_offset, "a new segment");
    drop(p);
    // The index lost its entries past the cut (it is checked before the crash, which loses
    // unsynced index bytes).
    let report =
        freshet_log::verify_partition(&storage, std::path::Path::new("/p")).expect("verifies");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let crashed = storage.crash(freshet_log::CrashMode::LoseUnsynced);
    let p = Arc::new(open(&crashed));
    let frames = read_all(&mut p.reader(), Offset(0)).expect("reads after reopen");
    let counts: Vec<u32> = frames.iter().map(|f| f.header.record_count).collect();
    // a, b and c: the cut frames never come back, and d was never synced.
    assert_eq!(counts, vec![2, 1, 1]);
}
