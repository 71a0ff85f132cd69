//! Appending: what the writer refuses, and what a failed fsync does to it.

use super::common::{config, record};
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
