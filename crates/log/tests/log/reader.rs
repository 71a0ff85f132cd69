//! Reading: from every offset, across segments, tail-following a live writer, and from a
//! separate open of the directory (as another process would).

use super::common::{
    Written, append_all, assert_frame, config, flip_byte, outside_reader, payload, read_all,
    record, segment_bases, segment_path,
};
use super::recovery::{FRAME, PAYLOAD, cfg, fixture, storage};
use freshet_log::{FsyncPolicy, LogError, MemStorage, Partition, PartitionReader, Storage};
use freshet_types::Offset;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A partition on `MemStorage` with frames of varied sizes and record counts over many
/// small segments.
fn varied() -> (Arc<dyn Storage>, Arc<Partition>, Vec<Written>) {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let (p, _) = Partition::open(storage.clone(), "/p", config(1500, 300)).expect("open");
    let frames: Vec<(usize, u32)> = (0..60u64)
        .map(|i| ((i * 37 % 700 + 1) as usize, (i * 7 % 5 + 1) as u32))
        .collect();
    let written = append_all(&p, &frames);
    (storage, Arc::new(p), written)
}

#[test]
fn every_offset_reads_the_frame_holding_it() {
    let (storage, p, w) = varied();
    assert!(
        segment_count(&storage) > 10,
        "the fixture spans many segments"
    );
    let end = w.last().expect("frames").end();
    let mut shared = outside_reader(&storage, "/p".as_ref());
    let mut own = p.reader();
    // Backwards, so that the shared readers must seek on every call.
    for o in (0..end).rev() {
        let i = w
            .iter()
            .position(|f| f.base <= o && o < f.end())
            .expect("dense");
        for reader in [&mut shared, &mut own] {
            let frames = reader.read(Offset(o), 0).expect("read");
            assert_eq!(
                frames.len(),
                1,
                "at least one frame, even with max_bytes = 0"
            );
            assert_frame(&frames[0], &w[i]);
        }
        let mut fresh = outside_reader(&storage, "/p".as_ref());
        let rest = read_all(&mut fresh, Offset(o)).expect("read");
        assert_eq!(rest.len(), w.len() - i);
        for (got, want) in rest.iter().zip(&w[i..]) {
            assert_frame(got, want);
        }
    }
    for reader in [&mut shared, &mut own] {
        assert!(reader.read(Offset(end), 1 << 20).expect("read").is_empty());
        assert!(
            reader
                .read(Offset(end + 5), 1 << 20)
                .expect("read")
                .is_empty()
        );
    }
}

fn segment_count(storage: &Arc<dyn Storage>) -> usize {
    storage
        .list("/p".as_ref())
        .expect("list")
        .iter()
        .filter(|n| n.ends_with(".log"))
        .count()
}

#[test]
fn one_read_crosses_segment_boundaries() {
    let (storage, _p, w) = varied();
    let mut reader = outside_reader(&storage, "/p".as_ref());
    let frames = reader.read(Offset(0), usize::MAX).expect("read");
    assert_eq!(
        frames.len(),
        w.len(),
        "one read returns everything when allowed to"
    );
    for (got, want) in frames.iter().zip(&w) {
        assert_frame(got, want);
    }
    // Sequential reads of about one segment each pick up where the last one stopped.
    let mut at = Offset(0);
    let mut seen = Vec::new();
    loop {
        let frames = reader.read(at, 1500).expect("read");
        let Some(last) = frames.last() else { break };
        assert_eq!(
            frames[0].header.base_offset, at,
            "continues where it stopped"
        );
        at = last.header.end_offset();
        seen.extend(frames);
    }
    assert_eq!(seen.len(), w.len());
}

#[test]
fn tail_follower_wakes_when_a_frame_becomes_durable() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let (p, _) = Partition::open(storage, "/p", config(2000, 500)).expect("open");
    let p = Arc::new(p);
    const FRAMES: u64 = 40;
    let timeout = Duration::from_secs(60);
    let follower = {
        let p = p.clone();
        std::thread::spawn(move || {
            let mut reader = p.reader();
            let mut at = Offset(0);
            let mut frames = Vec::new();
            let started = Instant::now();
            while at < Offset(FRAMES) {
                let end = p.wait_beyond(at, timeout);
                assert!(
                    started.elapsed() < timeout,
                    "woken by the append, not the timeout"
                );
                assert!(
                    end > at,
                    "wait_beyond returns once the visible end passes {at}"
                );
                let got = reader.read(at, usize::MAX).expect("read");
                assert!(!got.is_empty(), "visible data must be readable");
                at = got.last().expect("frame").header.end_offset();
                frames.extend(got);
            }
            frames
        })
    };
    let written: Vec<Vec<u8>> = (0..FRAMES).map(|i| payload(i, 300)).collect();
    for (i, data) in written.iter().enumerate() {
        p.append_durable(&record(data, 1, i as i64))
            .expect("append");
    }
    let frames = follower.join().expect("follower");
    assert_eq!(frames.len(), FRAMES as usize);
    for (f, data) in frames.iter().zip(&written) {
        assert!(&f.payload == data);
    }
}

/// Wait until the waiter thread is about to block, then give it the processor for a while
/// so that it very likely is blocked when the test goes on (no sleeping in tests). If it is
/// not, the test still passes; a missing wake-up is then caught on most runs, not all.
fn let_the_waiter_block(ready: &std::sync::mpsc::Receiver<()>) {
    ready.recv().expect("waiter started");
    for _ in 0..1000 {
        std::thread::yield_now();
    }
}

#[test]
fn wait_beyond_wakes_a_blocked_waiter() {
    for policy in [FsyncPolicy::Always, FsyncPolicy::Never] {
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let mut cfg = config(4096, 512);
        cfg.fsync = policy;
        let (p, _) = Partition::open(storage, "/p", cfg).expect("open");
        let p = Arc::new(p);
        let timeout = Duration::from_secs(60);
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || {
                ready_tx.send(()).expect("send");
                let started = Instant::now();
                let end = p.wait_beyond(Offset(0), timeout);
                (end, started.elapsed())
            })
        };
        let_the_waiter_block(&ready_rx);
        p.append_durable(&record(b"x", 3, 1)).expect("append");
        let (end, waited) = waiter.join().expect("waiter");
        assert_eq!(end, Offset(3));
        assert!(
            waited < timeout,
            "{policy:?}: the waiter must be woken, not time out"
        );
    }
}

#[test]
fn fsync_always_exposes_only_durable_frames() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let (p, _) = Partition::open(storage, "/p", config(4096, 512)).expect("open");
    let p = Arc::new(p);
    p.append_durable(&record(b"one", 1, 1)).expect("append");
    let a = p.append(&record(b"two", 1, 2)).expect("append");
    assert_eq!(p.visible_end(), Offset(1));
    assert_eq!(p.wait_beyond(Offset(1), Duration::ZERO), Offset(1));
    let mut reader = p.reader();
    let frames = read_all(&mut reader, Offset(0)).expect("read");
    assert_eq!(frames.len(), 1, "the unsynced frame is not exposed");
    assert!(reader.read(Offset(1), 100).expect("read").is_empty());
    p.sync_through(a.end_offset).expect("sync");
    assert_eq!(p.visible_end(), Offset(2));
    assert_eq!(
        reader.read(Offset(1), 100).expect("read")[0].payload,
        b"two"
    );
}

#[test]
fn a_roll_wakes_a_waiter() {
    // Rolling syncs the sealed segment, so its frames become durable and visible under
    // `fsync = always` even if no explicit sync follows; a blocked follower must wake.
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let (p, _) = Partition::open(storage, "/p", config(2 * FRAME, 512)).expect("open");
    let p = Arc::new(p);
    let data = payload(1, PAYLOAD);
    p.append(&record(&data, 1, 1)).expect("append");
    p.append(&record(&data, 1, 2)).expect("append");
    assert_eq!(p.visible_end(), Offset(0));
    let timeout = Duration::from_secs(60);
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let waiter = {
        let p = p.clone();
        std::thread::spawn(move || {
            ready_tx.send(()).expect("send");
            let started = Instant::now();
            (p.wait_beyond(Offset(0), timeout), started.elapsed())
        })
    };
    let_the_waiter_block(&ready_rx);
    p.append(&record(&data, 1, 3)).expect("append rolls");
    assert_eq!(p.durable_end(), Offset(2));
    let (end, waited) = waiter.join().expect("waiter");
    assert_eq!(end, Offset(2));
    assert!(waited < timeout, "the roll must wake the waiter");
}

#[test]
fn another_process_sees_appends_and_rolls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p");
    let (p, _) = Partition::open(storage(), &dir, cfg()).expect("open");
    let mut reader = PartitionReader::open(storage(), &dir).expect("reader");
    assert!(reader.read(Offset(0), 1000).expect("read").is_empty());
    assert_eq!(reader.start_offset().expect("start"), Offset(0));

    let mut written = Vec::new();
    let mut at = Offset(0);
    let mut seen = Vec::new();
    for round in 0..5 {
        let frames: Vec<(usize, u32)> = (0..5).map(|i| (PAYLOAD, (round + i) % 3 + 1)).collect();
        written.extend(append_all(&p, &frames));
        loop {
            let got = reader.read(at, 600).expect("read");
            let Some(last) = got.last() else { break };
            at = last.header.end_offset();
            seen.extend(got);
        }
        assert_eq!(seen.len(), written.len(), "round {round}");
    }
    assert!(
        segment_bases(&dir).len() >= 3,
        "the writer rolled while being read"
    );
    for (got, want) in seen.iter().zip(&written) {
        assert_frame(got, want);
    }
}

#[test]
fn another_process_stops_at_an_incomplete_tail() {
    let (_tmp, dir, w) = fixture(10);
    let last = segment_path(&dir, w[8].base);
    // A writer in the middle of appending: half a frame at the end of the newest segment.
    let bytes = std::fs::read(&last).expect("read");
    let mut grown = bytes.clone();
    grown.extend_from_slice(&bytes[..(FRAME / 2) as usize]);
    std::fs::write(&last, grown).expect("write");
    let mut reader = outside_reader(&storage(), &dir);
    let frames = read_all(&mut reader, Offset(0)).expect("an incomplete tail is not damage");
    assert_eq!(frames.len(), 10);
    assert!(
        reader
            .read(Offset(w[9].end()), 100)
            .expect("read")
            .is_empty()
    );
}

#[test]
fn a_reader_opened_before_a_roll_reports_damage_in_the_then_last_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p");
    let (p, _) = Partition::open(storage(), &dir, cfg()).expect("open");
    let frames: Vec<(usize, u32)> = (0..4).map(|_| (PAYLOAD, 1)).collect();
    let mut w = append_all(&p, &frames);
    let mut reader = outside_reader(&storage(), &dir);
    assert_eq!(
        reader
            .read(Offset(0), 2 * FRAME as usize)
            .expect("read")
            .len(),
        2
    );
    // The writer fills and seals the first segment, then the first segment is damaged.
    w.extend(append_all(
        &p,
        &(0..10).map(|_| (PAYLOAD, 1)).collect::<Vec<_>>(),
    ));
    assert_eq!(segment_bases(&dir).len(), 2);
    flip_byte(&segment_path(&dir, 0), 5 * FRAME + 100);
    let err = read_all(&mut reader, Offset(2)).expect_err("damage in a sealed segment");
    assert!(
        matches!(err, LogError::Corrupt { position, .. } if position == 5 * FRAME),
        "{err}"
    );
}

#[test]
fn reading_below_the_start_is_out_of_range() {
    let (_tmp, dir, w) = fixture(20);
    let mut c = cfg();
    c.retention_bytes = Some(0);
    let (p, _) = Partition::open(storage(), &dir, c).expect("open");
    let report = p
        .apply_retention(freshet_types::IngestTime(0))
        .expect("retention");
    assert_eq!(report.start, Offset(w[16].base));
    let end = Offset(w.last().expect("frames").end());
    let p = Arc::new(p);
    for mut reader in [outside_reader(&storage(), &dir), p.reader()] {
        match reader.read(Offset(3), 100) {
            Err(LogError::OffsetOutOfRange {
                requested,
                earliest,
                end: e,
            }) => {
                assert_eq!(requested, Offset(3));
                assert_eq!(earliest, report.start);
                assert_eq!(e, end, "the error names the real end of the partition");
            }
            other => panic!("expected OffsetOutOfRange, got {other:?}"),
        }
        let rest = read_all(&mut reader, report.start).expect("read");
        assert_eq!(rest.len(), 4);
    }
}
