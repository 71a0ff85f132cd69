//! The consumer registry: persisted atomically, and never ahead of what is on disk.

use super::common::config;
use freshet_log::{LogError, MemStorage, Partition, Storage};
use freshet_types::Offset;
use std::path::Path;
use std::sync::Arc;

fn open(storage: &MemStorage) -> freshet_log::Result<Partition> {
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    Partition::open(shared, "/p", config(4096, 512)).map(|(p, _)| p)
}

#[test]
fn consumers_persist_across_reopen() {
    let storage = MemStorage::new();
    let p = open(&storage).expect("open");
    assert_eq!(p.consumers().min_offset(), None);
    p.consumers().set("b", Offset(7)).expect("set");
    p.consumers().set("a", Offset(3)).expect("set");
    p.consumers().set("b", Offset(9)).expect("move");
    drop(p);
    let p = open(&storage.crash(freshet_log::CrashMode::LoseUnsynced)).expect("open");
    assert_eq!(
        p.consumers().list(),
        vec![("a".to_string(), Offset(3)), ("b".to_string(), Offset(9))]
    );
    assert_eq!(p.consumers().min_offset(), Some(Offset(3)));
    p.consumers().remove("a").expect("remove");
    p.consumers()
        .remove("nobody")
        .expect("removing an unknown consumer is a no-op");
    assert_eq!(p.consumers().min_offset(), Some(Offset(9)));
}

#[test]
fn invalid_consumer_names_are_refused() {
    let p = open(&MemStorage::new()).expect("open");
    for name in ["", "two words", "line\nbreak"] {
        assert!(matches!(
            p.consumers().set(name, Offset(0)),
            Err(LogError::Invalid(_))
        ));
    }
    assert!(p.consumers().list().is_empty());
}

#[test]
fn a_failed_persist_does_not_move_the_pin() {
    // If the new offset is not on disk, retention must keep honouring the old one: after a
    // restart the consumer resumes from the old offset.
    let storage = MemStorage::new();
    let p = open(&storage).expect("open");
    p.consumers().set("view", Offset(5)).expect("set");
    storage.fail_next_syncs(1);
    assert!(p.consumers().set("view", Offset(50)).is_err());
    assert_eq!(p.consumers().min_offset(), Some(Offset(5)));
    assert_eq!(p.consumers().list(), vec![("view".to_string(), Offset(5))]);
    storage.fail_next_syncs(1);
    assert!(p.consumers().remove("view").is_err());
    assert_eq!(p.consumers().min_offset(), Some(Offset(5)));
}

#[test]
fn malformed_consumers_file_is_refused_naming_the_line() {
    let storage = MemStorage::new();
    drop(open(&storage).expect("open"));
    let path = Path::new("/p/consumers");
    storage.set_file_bytes(path, b"view 12\nbroken\n".to_vec());
    let Err(err) = open(&storage) else {
        panic!("a malformed consumers file must be refused")
    };
    match &err {
        LogError::Corrupt { file, position, .. } => {
            assert_eq!(file, path);
            assert_eq!(*position, 8, "byte position of the bad line");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    assert!(err.to_string().contains("line 2"), "{err}");
}
