//! Group commit under concurrent writers: every acknowledged append survives a crash, and
//! a concurrent tail follower sees every frame exactly once, in offset order.

use super::common::{config, payload, read_all, record};
use freshet_log::{CrashMode, MemStorage, Partition, PartitionReader, Storage};
use freshet_types::Offset;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const WRITERS: u64 = 4;
const EACH: u64 = 40;

#[test]
fn concurrent_durable_appends_survive_a_crash() {
    let storage = MemStorage::new();
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    let (p, _) = Partition::open(shared, "/p", config(3000, 400)).expect("open");
    let p = Arc::new(p);
    let total = WRITERS * EACH;
    let follower = {
        let p = p.clone();
        std::thread::spawn(move || {
            let mut reader = p.reader();
            let mut at = Offset(0);
            let mut seen = Vec::new();
            while at < Offset(total) {
                p.wait_beyond(at, Duration::from_secs(60));
                for f in reader.read(at, usize::MAX).expect("read") {
                    assert_eq!(f.header.base_offset, at, "dense, in order, once");
                    at = f.header.end_offset();
                    seen.push(f.payload);
                }
            }
            seen
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut acked = BTreeMap::new();
                for i in 0..EACH {
                    let data = payload(w * 1000 + i, (i * 53 % 900 + 1) as usize);
                    let a = p
                        .append_durable(&record(&data, 1, i as i64))
                        .expect("append");
                    assert!(p.durable_end() >= a.end_offset);
                    acked.insert(a.base_offset.0, data);
                }
                acked
            })
        })
        .collect();
    let mut acked = BTreeMap::new();
    for w in writers {
        acked.extend(w.join().expect("writer"));
    }
    assert_eq!(acked.len() as u64, total);
    let seen = follower.join().expect("follower");
    assert_eq!(seen.len() as u64, total);
    for (i, data) in seen.iter().enumerate() {
        assert!(&acked[&(i as u64)] == data);
    }

    let after = storage.crash(CrashMode::LoseUnsynced);
    drop(p);
    let shared: Arc<dyn Storage> = Arc::new(after);
    let (p, _) = Partition::open(shared.clone(), "/p", config(3000, 400)).expect("reopen");
    assert_eq!(p.end_offset(), Offset(total));
    let mut reader = PartitionReader::open(shared, "/p").expect("reader");
    let frames = read_all(&mut reader, Offset(0)).expect("read");
    assert_eq!(frames.len() as u64, total);
    for f in &frames {
        assert!(acked[&f.header.base_offset.0] == f.payload);
    }
}
