//! The contract of the change log ([`ResultStore::read_changes`](crate::ResultStore::read_changes)):
//! each commit or repair that changes rows adds one entry numbered one after the last, in
//! the commit's transaction, with its deleted keys, upserted rows and progress; commits
//! that change no rows add none; the log is pruned to its retention but keeps the newest;
//! a store of schema version 1 gains the log when a writer opens it.

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;

use super::fixtures::{counts, counts_table, late_event, late_only, progress, upserts_only};
use super::harness::TestStore;
use crate::model::{Commit, RowState};
use crate::{ChangeEntry, ChangeKind, ChangeRetention, SCHEMA_VERSION};

/// `(user, n, state)` of an entry's upserted `counts` rows.
fn upserted(entry: &ChangeEntry) -> Vec<(String, i64, String)> {
    let Some(batch) = &entry.upserts else {
        return Vec::new();
    };
    let users = batch.column(0).as_string::<i32>();
    let ns = batch.column(3).as_primitive::<Int64Type>();
    let states = batch
        .column_by_name("_state")
        .expect("_state")
        .as_string::<i32>();
    (0..batch.num_rows())
        .map(|i| {
            (
                users.value(i).to_owned(),
                ns.value(i),
                states.value(i).to_owned(),
            )
        })
        .collect()
}

/// The users of an entry's deleted keys.
fn deleted(entry: &ChangeEntry) -> Vec<String> {
    let Some(batch) = &entry.deletes else {
        return Vec::new();
    };
    assert_eq!(batch.num_columns(), 3, "the key columns only");
    let users = batch.column(0).as_string::<i32>();
    (0..batch.num_rows())
        .map(|i| users.value(i).to_owned())
        .collect()
}

/// A commit upserting `(user, n)` rows in window 0, reaching `next_offset`.
fn commit_counts(rows: &[(&str, i64)], next_offset: u64) -> Commit {
    let schema = counts_table().schema;
    let rows: Vec<_> = rows.iter().map(|&(u, n)| (Some(u), 0, n)).collect();
    upserts_only(
        vec![counts(&schema, &rows, RowState::Provisional)],
        progress(next_offset, 1_000),
    )
}

fn delete_keys(users: &[&str]) -> RecordBatch {
    let schema = counts_table().schema;
    let rows: Vec<_> = users.iter().map(|&u| (Some(u), 0, 0)).collect();
    counts(&schema, &rows, RowState::Final).batch
}

contract_test!(commits_that_change_rows_are_logged_in_order);
fn commits_that_change_rows_are_logged_in_order(test: &TestStore) {
    let mut store = test.open();
    store.create_view(&counts_table()).expect("create");
    let log = store.read_changes("counts", 0, 16).expect("read");
    assert_eq!((log.oldest_seq, log.latest_seq), (None, None));
    assert!(log.entries.is_empty());

    store
        .commit("counts", &commit_counts(&[("a", 1), ("b", 2)], 2))
        .expect("first commit");
    // No rows changed: no entry, and no position taken.
    store
        .commit("counts", &late_only(vec![late_event()], 3))
        .expect("a commit without rows");
    let second = Commit {
        deletes: vec![delete_keys(&["a"])],
        ..commit_counts(&[("c", 3)], 4)
    };
    store.commit("counts", &second).expect("second commit");

    // A reader beside the writer sees what the writer committed.
    let reader = test.open_read_only();
    let log = reader.read_changes("counts", 0, 16).expect("read");
    assert_eq!((log.oldest_seq, log.latest_seq), (Some(1), Some(2)));
    let seqs: Vec<u64> = log.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2]);
    let (first, second) = (&log.entries[0], &log.entries[1]);
    assert_eq!(first.kind, ChangeKind::Commit);
    assert_eq!(
        upserted(first),
        vec![
            ("a".into(), 1, "provisional".into()),
            ("b".into(), 2, "provisional".into())
        ]
    );
    assert!(deleted(first).is_empty());
    assert_eq!(first.progress, Some(progress(2, 1_000)));
    assert_eq!(deleted(second), vec!["a".to_string()]);
    assert_eq!(
        upserted(second),
        vec![("c".into(), 3, "provisional".into())]
    );
    assert_eq!(second.progress, Some(progress(4, 1_000)));
    assert!(second.committed_at_ms >= first.committed_at_ms);

    // After a position: only what follows it, and at most `limit`.
    let after = reader.read_changes("counts", 1, 16).expect("read");
    assert_eq!(after.entries.len(), 1);
    assert_eq!(after.entries[0].seq, 2);
    let one = reader.read_changes("counts", 0, 1).expect("read");
    assert_eq!(one.entries.len(), 1);
    assert_eq!(one.latest_seq, Some(2));
    assert!(
        reader
            .read_changes("counts", 2, 16)
            .expect("read")
            .entries
            .is_empty()
    );
    assert!(reader.read_changes("nope", 0, 16).is_err(), "unknown view");

    // A commit that fails changes nothing, the log included.
    let bad = Commit {
        upserts: vec![counts(
            &counts_table().schema,
            &[(Some("d"), 0, 1)],
            RowState::Final,
        )],
        deletes: vec![RecordBatch::new_empty(std::sync::Arc::new(
            arrow_schema::Schema::empty(),
        ))],
        ..commit_counts(&[], 5)
    };
    assert!(store.commit("counts", &bad).is_err());
    let log = reader.read_changes("counts", 0, 16).expect("read");
    assert_eq!(log.latest_seq, Some(2));
}

contract_test!(a_repair_is_logged_without_progress);
fn a_repair_is_logged_without_progress(test: &TestStore) {
    let mut store = test.open();
    let table = counts_table();
    store.create_view(&table).expect("create");
    store
        .commit("counts", &commit_counts(&[("a", 1)], 1))
        .expect("commit");
    store
        .repair(
            "counts",
            &[counts(&table.schema, &[(Some("b"), 0, 9)], RowState::Final)],
            &[delete_keys(&["a"])],
        )
        .expect("repair");
    let log = store.read_changes("counts", 1, 16).expect("read");
    assert_eq!(log.entries.len(), 1);
    let entry = &log.entries[0];
    assert_eq!((entry.seq, entry.kind), (2, ChangeKind::Repair));
    assert_eq!(entry.progress, None);
    assert_eq!(deleted(entry), vec!["a".to_string()]);
    assert_eq!(upserted(entry), vec![("b".into(), 9, "final".into())]);
    // A repair that changes nothing takes no position.
    store.repair("counts", &[], &[]).expect("empty repair");
    assert_eq!(
        store
            .read_changes("counts", 0, 16)
            .expect("read")
            .latest_seq,
        Some(2)
    );
}

contract_test!(the_log_keeps_its_bytes_bound_oldest_first_and_the_newest_entry);
fn the_log_keeps_its_bytes_bound_oldest_first_and_the_newest_entry(test: &TestStore) {
    let mut store = test.open();
    store.create_view(&counts_table()).expect("create");
    // 5,000 rows encode to far more than the bound (three 8-byte columns alone are
    // 120 kB); one row encodes to a few hundred bytes.
    store.set_change_retention(ChangeRetention {
        bytes: 20_000,
        ..ChangeRetention::default()
    });
    let users: Vec<String> = (0..5_000).map(|i| format!("user-{i}")).collect();
    let big: Vec<(&str, i64)> = users.iter().map(|u| (u.as_str(), 1)).collect();
    store
        .commit("counts", &commit_counts(&big, 1))
        .expect("a commit over the bound");
    let log = store.read_changes("counts", 0, 16).expect("read");
    let seqs: Vec<u64> = log.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1], "the newest is kept whatever its size");
    assert_eq!(
        log.entries[0].upserts.as_ref().map(RecordBatch::num_rows),
        Some(5_000)
    );
    for i in 2..=4 {
        store
            .commit("counts", &commit_counts(&[("a", i)], i as u64))
            .expect("commit");
    }
    let log = store.read_changes("counts", 0, 16).expect("read");
    let seqs: Vec<u64> = log.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![2, 3, 4], "the big oldest entry goes first");
    assert_eq!((log.oldest_seq, log.latest_seq), (Some(2), Some(4)));
    store
        .commit("counts", &commit_counts(&big, 5))
        .expect("a commit over the bound");
    let log = store.read_changes("counts", 0, 16).expect("read");
    let seqs: Vec<u64> = log.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![5]);
    assert_eq!(test.count("freshet_changes"), 1);
}

contract_test!(a_commit_too_large_for_one_entry_takes_its_position_without_rows);
fn a_commit_too_large_for_one_entry_takes_its_position_without_rows(test: &TestStore) {
    let mut store = test.open();
    store.create_view(&counts_table()).expect("create");
    store.set_change_retention(ChangeRetention {
        entry_bytes: 20_000,
        ..ChangeRetention::default()
    });
    let users: Vec<String> = (0..5_000).map(|i| format!("user-{i}")).collect();
    let big: Vec<(&str, i64)> = users.iter().map(|u| (u.as_str(), 1)).collect();
    store
        .commit("counts", &commit_counts(&big, 1))
        .expect("a commit over the entry bound commits");
    assert_eq!(test.count("counts"), 5_000, "its rows are in the view");
    store
        .commit("counts", &commit_counts(&[("a", 2)], 2))
        .expect("a small commit");
    let log = store.read_changes("counts", 0, 16).expect("read");
    let kinds: Vec<(u64, ChangeKind)> = log.entries.iter().map(|e| (e.seq, e.kind)).collect();
    assert_eq!(
        kinds,
        vec![(1, ChangeKind::Overflow), (2, ChangeKind::Commit)]
    );
    let overflow = &log.entries[0];
    assert!(overflow.upserts.is_none() && overflow.deletes.is_none());
    assert_eq!(overflow.progress, Some(progress(1, 1_000)), "progress kept");
    assert_eq!(
        upserted(&log.entries[1]),
        vec![("a".into(), 2, "provisional".into())]
    );
}

contract_test!(the_log_keeps_its_retention_and_the_newest_entry);
fn the_log_keeps_its_retention_and_the_newest_entry(test: &TestStore) {
    let mut store = test.open();
    store.create_view(&counts_table()).expect("create");
    store.set_change_retention(ChangeRetention {
        commits: 3,
        ..ChangeRetention::default()
    });
    for i in 1..=5 {
        store
            .commit("counts", &commit_counts(&[("a", i)], i as u64))
            .expect("commit");
    }
    let log = store.read_changes("counts", 0, 16).expect("read");
    assert_eq!((log.oldest_seq, log.latest_seq), (Some(3), Some(5)));
    let seqs: Vec<u64> = log.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    assert_eq!(test.count("freshet_changes"), 3);

    // By age: everything older than the newest goes, and numbering goes on.
    store.set_change_retention(ChangeRetention {
        commits: 3,
        age_ms: 0,
        ..ChangeRetention::default()
    });
    std::thread::sleep(std::time::Duration::from_millis(5));
    store
        .commit("counts", &commit_counts(&[("a", 6)], 6))
        .expect("commit");
    let log = store.read_changes("counts", 0, 16).expect("read");
    assert_eq!((log.oldest_seq, log.latest_seq), (Some(6), Some(6)));

    // Dropping the view leaves a mark in place of its log; a view created again under the
    // name numbers on after it, so no position is used twice.
    store.drop_view("counts").expect("drop");
    assert_eq!(test.count("freshet_changes"), 1);
    store.create_view(&counts_table()).expect("create again");
    let log = store.read_changes("counts", 0, 16).expect("read");
    assert_eq!((log.oldest_seq, log.latest_seq), (Some(7), Some(7)));
    assert_eq!(log.entries[0].kind, ChangeKind::Dropped);
    assert!(log.entries[0].upserts.is_none() && log.entries[0].deletes.is_none());
    store
        .commit("counts", &commit_counts(&[("b", 1)], 1))
        .expect("commit");
    let log = store.read_changes("counts", 7, 16).expect("read");
    assert_eq!(log.entries.len(), 1);
    assert_eq!(
        (log.entries[0].seq, log.entries[0].kind),
        (8, ChangeKind::Commit)
    );
    // Every drop of a name that has a log marks it again; a name that never had one
    // gets none.
    store.drop_view("counts").expect("drop");
    store.create_view(&counts_table()).expect("create");
    store.drop_view("counts").expect("drop");
    let log_rows = test.count("freshet_changes");
    assert_eq!(log_rows, 1, "the older marks are replaced");
    let mut other = counts_table();
    other.view = "other".into();
    store.create_view(&other).expect("create");
    store.drop_view("other").expect("drop");
    assert_eq!(test.count("freshet_changes"), log_rows);
    store.create_view(&counts_table()).expect("create");
    let log = store.read_changes("counts", 0, 16).expect("read");
    assert_eq!(log.latest_seq, Some(10), "marks at 9 and 10");
}

contract_test!(a_version_1_store_gains_the_change_log_when_opened);
fn a_version_1_store_gains_the_change_log_when_opened(test: &TestStore) {
    let mut store = test.open();
    store.create_view(&counts_table()).expect("create");
    store
        .commit("counts", &commit_counts(&[("a", 1)], 1))
        .expect("commit");
    drop(store);
    test.make_version_1();
    assert!(!test.has_table("freshet_changes"));
    assert_eq!(test.schema_version(), 1);

    let mut store = test.open();
    assert!(test.has_table("freshet_changes"));
    assert_eq!(test.schema_version(), SCHEMA_VERSION);
    // Rows committed before the log existed stay; the log starts at the next commit.
    let log = store.read_changes("counts", 0, 16).expect("read");
    assert_eq!(log.latest_seq, None);
    store
        .commit("counts", &commit_counts(&[("b", 2)], 2))
        .expect("commit");
    let log = store.read_changes("counts", 0, 16).expect("read");
    assert_eq!(log.latest_seq, Some(1));
    assert_eq!(
        upserted(&log.entries[0]),
        vec![("b".into(), 2, "provisional".into())]
    );
}
