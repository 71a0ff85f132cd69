//! All-or-nothing requests: a request's frames, in every partition and the dead-letter log,
//! become visible together once all are written and synced, or none of them ever does.
//!
//! The stream's partitions are gated (`Partition::gate`). A request appends all its frames
//! while holding the stream's append lock, which gives requests a total order (`seq`); it
//! then syncs them (group-committed with other requests) and publishes them once every
//! earlier request has been published or withdrawn, so publication follows `seq` and a
//! partition's published end only moves forward. A request that fails (a write or a sync)
//! withdraws itself and every request after it, all of them unpublished: each partition is
//! cut, durably, at the first frame of a withdrawn request (the frames after it belong to
//! withdrawn requests alone, since appends are made in `seq` order). The later requests
//! answer [`StreamError::Withdrawn`]; nothing of any of them is kept. A request being
//! written when it is withdrawn cuts what it wrote after that itself.
//!
//! What a crash leaves is not covered here: frames of requests in flight at a crash are
//! read after a restart (see docs/http-api.md); with an `Idempotency-Key` a retry completes
//! such a request instead of writing it twice.

use crate::error::{Result, StreamError};
use freshet_log::{AppendRecord, Appended, Partition};
use freshet_types::Offset;
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The order in which a stream's requests are appended and published.
#[derive(Default)]
pub(crate) struct CommitOrder {
    appending: Mutex<()>,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    next: u64,
    /// Requests appended and not yet published, by `seq`.
    in_flight: BTreeMap<u64, Flight>,
}

struct Flight {
    /// Its frames not cut yet.
    frames: Vec<(Arc<Partition>, Appended)>,
    /// Why it was withdrawn, if it was.
    withdrawn: Option<Withdrawal>,
}

/// Why a request was withdrawn, and whether its frames are surely gone.
#[derive(Clone)]
struct Withdrawal {
    reason: String,
    cut: bool,
}

impl Withdrawal {
    fn error(self) -> StreamError {
        if self.cut {
            StreamError::Withdrawn(self.reason)
        } else {
            StreamError::NotUndone(self.reason)
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Withdraws a request whose owner panicked, so that the requests after it are not left
/// waiting for it.
struct OnUnwind<'a> {
    order: &'a CommitOrder,
    seq: u64,
}

impl Drop for OnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() && lock(&self.order.state).in_flight.contains_key(&self.seq) {
            let cause = StreamError::Withdrawn("a request failed with an internal error".into());
            self.order.withdraw_from(self.seq, &cause);
        }
    }
}

impl CommitOrder {
    /// Append `writes` (in order), make them durable with `settle`, and publish them once
    /// every earlier request is settled. On failure nothing of the request is visible, now
    /// or after a restart, unless the error is [`StreamError::NotUndone`].
    pub(crate) fn commit(
        &self,
        writes: &[(&Arc<Partition>, AppendRecord<'_>)],
        settle: impl FnOnce(&[(&Arc<Partition>, Offset)]) -> Result<()>,
    ) -> Result<Vec<Appended>> {
        let appending = lock(&self.appending);
        let seq = {
            let mut state = lock(&self.state);
            let seq = state.next;
            state.next += 1;
            state.in_flight.insert(
                seq,
                Flight {
                    frames: Vec::with_capacity(writes.len()),
                    withdrawn: None,
                },
            );
            seq
        };
        let _unwind = OnUnwind { order: self, seq };
        let mut appended = Vec::with_capacity(writes.len());
        for (partition, record) in writes {
            let result = partition.append(record);
            let mut state = lock(&self.state);
            let flight = state
                .in_flight
                .get_mut(&seq)
                .expect("only its owner removes it");
            match result {
                Ok(a) => {
                    flight.frames.push(((*partition).clone(), a));
                    appended.push(a);
                }
                Err(e) => {
                    drop(state);
                    return Err(self.fail(seq, e.into()));
                }
            }
            if let Some(withdrawal) = flight.withdrawn.clone() {
                // An earlier request failed while this one was being written: cut what it
                // wrote since (nothing later exists: appending is still held).
                drop(state);
                let cause = withdrawal.clone().error();
                let cut = self.withdraw_from(seq, &cause);
                return Err(Withdrawal {
                    cut: withdrawal.cut && cut.is_none(),
                    ..withdrawal
                }
                .error());
            }
        }
        drop(appending);
        let touched: Vec<(&Arc<Partition>, Offset)> = writes
            .iter()
            .zip(&appended)
            .map(|((p, _), a)| (*p, a.end_offset))
            .collect();
        if let Err(e) = settle(&touched) {
            // A sync of a request withdrawn meanwhile may fail on its cut frames; the
            // withdrawal is the answer then.
            let state = lock(&self.state);
            if let Some(withdrawal) = state.in_flight.get(&seq).and_then(|f| f.withdrawn.clone()) {
                self.leave(state, seq);
                return Err(withdrawal.error());
            }
            drop(state);
            return Err(self.fail(seq, e));
        }
        let mut state = lock(&self.state);
        loop {
            let flight = state
                .in_flight
                .get(&seq)
                .expect("only its owner removes it");
            if let Some(withdrawal) = flight.withdrawn.clone() {
                self.leave(state, seq);
                return Err(withdrawal.error());
            }
            if state.in_flight.range(..seq).next().is_none() {
                for (partition, a) in &flight.frames {
                    partition.publish_through(a.end_offset);
                }
                self.leave(state, seq);
                return Ok(appended);
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Remove a settled request and wake the ones waiting behind it.
    fn leave(&self, mut state: MutexGuard<'_, State>, seq: u64) {
        state.in_flight.remove(&seq);
        drop(state);
        self.changed.notify_all();
    }

    /// Request `seq` failed with `e`: withdraw it and everything after it; the answer says
    /// whether its frames are surely gone.
    fn fail(&self, seq: u64, e: StreamError) -> StreamError {
        match self.withdraw_from(seq, &e) {
            None => e,
            Some(cut_failed) => StreamError::NotUndone(format!("{e}; {cut_failed}")),
        }
    }

    /// Withdraw request `seq` (which failed with `cause`) and every request after it, and
    /// cut each partition at the first of their frames; a partition's frames after that
    /// belong to them alone (appends are made in `seq` order). The caller's own flight is
    /// removed; the others learn of it when they look. Returns what went wrong if a cut
    /// could not be made (those frames may be read after a restart).
    fn withdraw_from(&self, seq: u64, cause: &StreamError) -> Option<String> {
        let mut state = lock(&self.state);
        let reason = match cause {
            StreamError::Withdrawn(reason) | StreamError::NotUndone(reason) => reason.clone(),
            _ => format!("an earlier request to this stream failed ({cause})"),
        };
        let mut cuts: Vec<(Arc<Partition>, Appended)> = Vec::new();
        for (_, flight) in state.in_flight.range_mut(seq..) {
            // Once cut, a frame's offsets may be written again: forget it.
            for (partition, a) in flight.frames.drain(..) {
                match cuts.iter_mut().find(|(p, _)| Arc::ptr_eq(p, &partition)) {
                    Some((_, first)) if first.base_offset <= a.base_offset => {}
                    Some((_, first)) => *first = a,
                    None => cuts.push((partition, a)),
                }
            }
        }
        // Cut while holding the state, so that no request withdrawn here is published
        // before its frames are gone.
        let mut failed = None;
        for (partition, from) in cuts {
            if let Err(e) = partition.truncate_unpublished(&from) {
                // The partition is poisoned now: it takes no more writes until reopened.
                tracing::error!(
                    dir = %partition.dir().display(),
                    error = %e,
                    "cutting a failed request's frames failed"
                );
                failed = Some(format!(
                    "cutting its rows from {} failed ({e}): they may be read after a restart",
                    partition.dir().display()
                ));
            }
        }
        for (&s, flight) in state.in_flight.range_mut(seq..) {
            if s != seq {
                flight.withdrawn.get_or_insert_with(|| Withdrawal {
                    reason: reason.clone(),
                    cut: failed.is_none(),
                });
            }
        }
        self.leave(state, seq);
        failed
    }
}

#[cfg(test)]
mod tests {
    use crate::ddl::{StreamStatement, parse_stream_statement};
    use crate::def::StreamDef;
    use crate::stream::{Prepared, Stream};
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use freshet_log::{CrashMode, MemStorage};
    use freshet_types::Offset;
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    const ROWS: u64 = 100;

    fn def(options: &str) -> StreamDef {
        let sql = format!(
            "CREATE STREAM t (k BIGINT NOT NULL, ts TIMESTAMP NOT NULL,
             WATERMARK FOR ts AS ts) WITH (partitions = 4, partition_key = 'k'{options})"
        );
        match parse_stream_statement(&sql).expect("valid DDL") {
            Some(StreamStatement::Create { def, .. }) => def,
            other => panic!("{other:?}"),
        }
    }

    fn open(storage: &MemStorage, dir: &Path) -> Stream {
        open_with(storage, dir, "")
    }

    fn open_with(storage: &MemStorage, dir: &Path, options: &str) -> Stream {
        Stream::open(Arc::new(storage.clone()), def(options), dir.to_path_buf())
            .expect("opens")
            .0
    }

    /// Request `r`: rows with keys r*1000.. spread over every partition, and one bad row.
    fn request(stream: &Stream, r: u64) -> Prepared {
        let mut text = String::new();
        for i in 0..ROWS {
            text.push_str(&format!("{{\"k\":{},\"ts\":{i}}}\n", r * 1000 + i));
        }
        text.push_str("not json\n");
        let decoded = stream.ndjson().decode(text.as_bytes(), 1).expect("decodes");
        stream.prepare(decoded, "test").expect("prepares")
    }

    /// Rows visible to a reader, counted by request.
    fn visible_rows(stream: &Stream) -> BTreeMap<u64, u64> {
        let mut rows = BTreeMap::new();
        for partition in stream.partitions() {
            let mut reader = partition.reader();
            let mut at = Offset(0);
            loop {
                let frames = reader.read(at, 1 << 20).expect("reads");
                let Some(last) = frames.last() else { break };
                at = last.header.end_offset();
                for frame in &frames {
                    for batch in crate::payload::decode(&frame.payload).expect("decodes") {
                        let keys = batch.column(0).as_primitive::<Int64Type>();
                        for k in keys.values() {
                            *rows.entry(*k as u64 / 1000).or_default() += 1;
                        }
                    }
                }
            }
        }
        rows
    }

    fn dead_letters(stream: &Stream) -> u64 {
        stream.dead_letters().visible_end().0
    }

    #[test]
    fn a_write_failing_in_one_partition_keeps_nothing_of_the_request() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = MemStorage::new();
        let stream = open(&storage, dir.path());
        stream.commit(request(&stream, 1), None).expect("commits");
        storage.fail_writes_under(Some(&dir.path().join("2")));
        let err = stream
            .commit(request(&stream, 2), None)
            .expect_err("partition 2 is full");
        assert!(err.to_string().contains("append to"), "{err}");
        assert_eq!(visible_rows(&stream), BTreeMap::from([(1, ROWS)]));
        assert_eq!(dead_letters(&stream), 1);
        let written: u64 = stream.partitions().iter().map(|p| p.end_offset().0).sum();
        assert_eq!(
            written, ROWS,
            "the frames written before the failure were cut"
        );

        storage.fail_writes_under(None);
        stream.commit(request(&stream, 3), None).expect("commits");
        drop(stream);
        let stream = open(&storage.crash(CrashMode::LoseUnsynced), dir.path());
        assert_eq!(
            visible_rows(&stream),
            BTreeMap::from([(1, ROWS), (3, ROWS)])
        );
        assert_eq!(dead_letters(&stream), 2);
    }

    #[test]
    fn a_failed_sync_keeps_nothing_of_the_request_after_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = MemStorage::new();
        let stream = open(&storage, dir.path());
        stream.commit(request(&stream, 1), None).expect("commits");
        storage.fail_next_syncs(1);
        stream
            .commit(request(&stream, 2), None)
            .expect_err("a sync fails");
        assert_eq!(visible_rows(&stream), BTreeMap::from([(1, ROWS)]));
        drop(stream);
        // The failed sync's partition kept whatever the disk had; the others were cut.
        let stream = open(&storage.crash(CrashMode::LoseUnsynced), dir.path());
        assert_eq!(visible_rows(&stream), BTreeMap::from([(1, ROWS)]));
        assert_eq!(dead_letters(&stream), 1);
    }

    /// Concurrent requests while faults are injected (by worker 0, at its 10th request):
    /// each request is kept whole if it was acknowledged and not at all if it was not,
    /// before and after a crash, and none hangs.
    fn concurrent_requests_under(options: &str, fault: impl Fn(&MemStorage, &Path, bool) + Sync) {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = MemStorage::new();
        let stream = open_with(&storage, dir.path(), options);
        let acknowledged: Vec<(u64, bool)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4u64)
                .map(|w| {
                    let (stream, storage, dir, fault) = (&stream, &storage, dir.path(), &fault);
                    s.spawn(move || {
                        let mut outcomes = Vec::new();
                        for i in 0..30u64 {
                            let r = 1 + w * 30 + i;
                            if w == 0 && (i == 10 || i == 20) {
                                fault(storage, dir, i == 10);
                            }
                            let result = stream.commit(request(stream, r), None);
                            if let Err(e) = &result {
                                assert!(
                                    !matches!(e, crate::error::StreamError::NotUndone(_)),
                                    "{e}"
                                );
                            }
                            outcomes.push((r, result.is_ok()));
                        }
                        outcomes
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("no panic"))
                .collect()
        });
        let expected: BTreeMap<u64, u64> = acknowledged
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(r, _)| (*r, ROWS))
            .collect();
        assert!(expected.len() < acknowledged.len(), "some requests failed");
        assert!(!expected.is_empty(), "some requests were acknowledged");
        assert_eq!(visible_rows(&stream), expected);
        assert_eq!(dead_letters(&stream), expected.len() as u64);
        drop(stream);
        let stream = open_with(&storage.crash(CrashMode::LoseUnsynced), dir.path(), options);
        assert_eq!(visible_rows(&stream), expected);
    }

    #[test]
    fn concurrent_requests_while_a_partition_is_full_are_kept_whole_or_not_at_all() {
        concurrent_requests_under("", |storage, dir, start| {
            storage.fail_writes_under(start.then(|| dir.join("1")).as_deref());
        });
    }

    /// Failed syncs poison a partition: requests in flight behind the failing one are
    /// withdrawn with it, and small segments make appends wait for rolls meanwhile.
    #[test]
    fn concurrent_requests_around_a_failed_sync_are_kept_whole_or_not_at_all() {
        concurrent_requests_under(", segment_bytes = 4096", |storage, _, start| {
            if start {
                storage.fail_next_syncs(1);
            }
        });
    }
}
