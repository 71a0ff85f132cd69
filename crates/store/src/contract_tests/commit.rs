//! The contract of [`ResultStore::commit`](crate::ResultStore::commit) and
//! [`ResultStore::load`](crate::ResultStore::load): every supported type round-trips, rows
//! are upserted and deleted by key (nulls in a key included), a commit is all or nothing,
//! state and progress load as last committed, late events replayed are stored once.

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;

use super::fixtures::{
    all, counts, counts_table, every_type, final_commit, late_event, late_only, progress,
    read_counts, totals, totals_table, upserts_only, utc_ms,
};
use super::harness::TestStore;
use crate::ResultStore;
use crate::StoreError;
use crate::definition::now_ms;
use crate::model::{Checkpoint, Commit, ResultRows, ResultTable, RowState, ViewStatus};

contract_test!(every_mapped_type_round_trips_with_nulls);
/// Nanoseconds here are whole microseconds, which is what PostgreSQL keeps; SQLite's own
/// test writes finer ones.
fn every_mapped_type_round_trips_with_nulls(test: &TestStore) {
    let mut store = test.open();
    // 2024-03-01T12:34:56.789123Z
    let (table, batch) = every_type(1_709_296_496_789_123_000, i64::MAX / 1_000 * 1_000);
    store.create_view(&table).expect("create");
    let commit = final_commit(batch.clone(), 1);
    store.commit("types", &commit).expect("commit");

    let rows = store.read_results("types", &all()).expect("read");
    assert!(!rows.has_more);
    let read = rows.batch;
    assert_eq!(read.num_rows(), 3);
    assert_eq!(read.num_columns(), batch.num_columns() + 2);
    for (i, field) in table.schema.fields().iter().enumerate() {
        assert_eq!(read.schema().field(i), field.as_ref());
        assert_eq!(read.column(i), batch.column(i), "column {}", field.name());
    }
    let state = read.column_by_name("_state").expect("_state");
    assert_eq!(state.data_type(), &DataType::Utf8);
    assert_eq!(state.as_string::<i32>().value(0), "final");
    let updated_at = read.column_by_name("_updated_at").expect("_updated_at");
    assert_eq!(updated_at.data_type(), &utc_ms());
    let updated_at = updated_at
        .as_primitive::<TimestampMillisecondType>()
        .value(0);
    assert!((now_ms() - updated_at).abs() < 60_000, "{updated_at}");
}

contract_test!(upsert_replaces_values_and_state_without_duplicating);
fn upsert_replaces_values_and_state_without_duplicating(test: &TestStore) {
    let mut store = test.open();
    let table = counts_table();
    store.create_view(&table).expect("create");
    let first = counts(
        &table.schema,
        &[(Some("a"), 0, 1), (Some("b"), 0, 5)],
        RowState::Provisional,
    );
    store
        .commit("counts", &upserts_only(vec![first], progress(2, 0)))
        .expect("first commit");
    let second = counts(&table.schema, &[(Some("a"), 0, 3)], RowState::Final);
    store
        .commit("counts", &upserts_only(vec![second], progress(4, 60_000)))
        .expect("second commit");
    let (rows, has_more) = read_counts(&*store, &all());
    assert!(!has_more);
    assert_eq!(
        rows,
        vec![
            (Some("a".into()), 0, 3, "final".into()),
            (Some("b".into()), 0, 5, "provisional".into()),
        ]
    );
}

contract_test!(a_row_whose_key_holds_null_is_replaced_too);
fn a_row_whose_key_holds_null_is_replaced_too(test: &TestStore) {
    let mut store = test.open();
    let table = counts_table();
    store.create_view(&table).expect("create");
    for n in [1, 2] {
        let batch = counts(
            &table.schema,
            &[(None, 0, n), (Some("a"), 0, n)],
            RowState::Provisional,
        );
        store
            .commit("counts", &upserts_only(vec![batch], progress(n as u64, 0)))
            .expect("commit");
    }
    let (rows, _) = read_counts(&*store, &all());
    assert_eq!(
        rows,
        vec![
            (None, 0, 2, "provisional".into()),
            (Some("a".into()), 0, 2, "provisional".into()),
        ]
    );
}

/// What a store holds for `totals` after one good commit, to compare with after a failed
/// one.
struct Committed {
    results: ResultRows,
    checkpoint: Checkpoint,
    status: ViewStatus,
    late: i64,
}

/// A store with the `totals` view and one good commit in it, and what it then holds.
fn one_good_commit(test: &TestStore) -> (Box<dyn ResultStore>, ResultTable, Committed) {
    let mut store = test.open();
    let table = totals_table();
    store.create_view(&table).expect("create");
    let good = Commit {
        deletes: vec![],
        upserts: vec![totals(&table, &[(1, 10), (2, 20)])],
        state_puts: vec![(b"w1".to_vec(), b"open".to_vec())],
        state_deletes: vec![],
        state_reset: false,
        late: vec![],
        progress: progress(5, 1_000),
    };
    store.commit("totals", &good).expect("good commit");
    let committed = Committed {
        results: store.read_results("totals", &all()).expect("read"),
        checkpoint: store.load("totals").expect("load"),
        status: store.status("totals").expect("status"),
        late: test.count("freshet_late_events"),
    };
    (store, table, committed)
}

/// Asserts that the store holds exactly what it held after the good commit.
fn assert_unchanged(test: &TestStore, store: &dyn ResultStore, before: &Committed) {
    let results = store.read_results("totals", &all()).expect("read");
    assert_eq!(results.batch.num_rows(), before.results.batch.num_rows());
    assert_eq!(
        results.batch.project(&[0, 1, 2]).expect("project"),
        before.results.batch.project(&[0, 1, 2]).expect("project")
    );
    assert_eq!(store.load("totals").expect("load"), before.checkpoint);
    assert_eq!(store.status("totals").expect("status"), before.status);
    assert_eq!(test.count("freshet_late_events"), before.late);
}

contract_test!(a_commit_failing_midway_changes_nothing);
fn a_commit_failing_midway_changes_nothing(test: &TestStore) {
    let (mut store, table, before) = one_good_commit(test);
    let bad = Commit {
        deletes: vec![],
        // The first batch is written before the second one fails.
        upserts: vec![
            totals(&table, &[(1, 11), (3, 30)]),
            totals(&table, &[(4, 40), (5, u64::MAX)]),
        ],
        state_puts: vec![(b"w2".to_vec(), b"open".to_vec())],
        state_deletes: vec![b"w1".to_vec()],
        state_reset: false,
        late: vec![],
        progress: progress(9, 2_000),
    };
    let error = store
        .commit("totals", &bad)
        .expect_err("u64::MAX does not fit");
    assert!(matches!(error, StoreError::User { .. }), "{error:?}");
    assert!(error.to_string().contains("'total'"), "{error}");
    assert!(!error.retriable());
    assert_unchanged(test, store.as_ref(), &before);

    // The store is still usable after the failed commit.
    store
        .commit(
            "totals",
            &upserts_only(vec![totals(&table, &[(1, 12)])], progress(6, 1_500)),
        )
        .expect("commit after a failed one");
}

contract_test!(a_commit_failing_at_its_last_statement_changes_nothing);
/// Unlike the test above, every backend has sent the rows, the state changes and the late
/// events before the failure (an offset beyond the store's integers, met when the progress
/// is written last): only the transaction can undo them.
fn a_commit_failing_at_its_last_statement_changes_nothing(test: &TestStore) {
    let (mut store, table, before) = one_good_commit(test);
    let mut beyond = progress(9, 2_000);
    for p in &mut beyond.partitions {
        p.next_offset = u64::MAX;
    }
    let bad = Commit {
        deletes: vec![totals(&table, &[(2, 0)]).batch],
        upserts: vec![totals(&table, &[(1, 11), (3, 30)])],
        state_puts: vec![(b"w2".to_vec(), b"open".to_vec())],
        state_deletes: vec![b"w1".to_vec()],
        state_reset: true,
        late: vec![late_event()],
        progress: beyond,
    };
    let error = store
        .commit("totals", &bad)
        .expect_err("u64::MAX is beyond the store's offsets");
    assert!(matches!(error, StoreError::Bug { .. }), "{error:?}");
    assert!(error.to_string().contains("beyond"), "{error}");
    assert_unchanged(test, store.as_ref(), &before);
}

contract_test!(load_returns_the_last_committed_progress_and_state);
fn load_returns_the_last_committed_progress_and_state(test: &TestStore) {
    let mut store = test.open();
    let table = totals_table();
    store.create_view(&table).expect("create");
    let empty = store.load("totals").expect("load");
    assert_eq!(empty.progress, None);
    assert!(empty.state.is_empty());

    store
        .commit(
            "totals",
            &Commit {
                deletes: vec![],
                upserts: vec![],
                state_puts: vec![
                    (b"b".to_vec(), b"2".to_vec()),
                    (b"a".to_vec(), b"1".to_vec()),
                    (vec![0xff], b"3".to_vec()),
                ],
                state_deletes: vec![],
                state_reset: false,
                late: vec![],
                progress: progress(3, 100),
            },
        )
        .expect("first commit");
    let loaded = store.load("totals").expect("load");
    assert_eq!(loaded.progress, Some(progress(3, 100)));
    assert_eq!(
        loaded.state,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
            (vec![0xff], b"3".to_vec()),
        ]
    );

    store
        .commit(
            "totals",
            &Commit {
                deletes: vec![],
                upserts: vec![],
                // `b` is deleted and put again in one commit: the put wins.
                state_puts: vec![(b"b".to_vec(), b"22".to_vec())],
                state_deletes: vec![b"a".to_vec(), b"b".to_vec(), b"missing".to_vec()],
                state_reset: false,
                late: vec![],
                progress: progress(7, 200),
            },
        )
        .expect("second commit");
    let loaded = store.load("totals").expect("load");
    assert_eq!(loaded.progress, Some(progress(7, 200)));
    assert_eq!(
        loaded.state,
        vec![(b"b".to_vec(), b"22".to_vec()), (vec![0xff], b"3".to_vec())]
    );
    let status = store.status("totals").expect("status");
    assert_eq!(status.progress, Some(progress(7, 200)));
    assert!(status.committed_at_ms.is_some());

    // A reset removes every entry before the commit's own puts.
    store
        .commit(
            "totals",
            &Commit {
                deletes: vec![],
                upserts: vec![],
                state_puts: vec![(b"c".to_vec(), b"3".to_vec())],
                state_deletes: vec![],
                state_reset: true,
                late: vec![],
                progress: progress(9, 300),
            },
        )
        .expect("third commit");
    let loaded = store.load("totals").expect("load");
    assert_eq!(loaded.state, vec![(b"c".to_vec(), b"3".to_vec())]);

    // A reopened store reads the same checkpoint.
    drop(store);
    let reopened = test.open();
    assert_eq!(reopened.load("totals").expect("load"), loaded);
}

contract_test!(late_events_replayed_are_stored_once);
fn late_events_replayed_are_stored_once(test: &TestStore) {
    let mut store = test.open();
    let table = totals_table();
    store.create_view(&table).expect("create");
    let commit = late_only(vec![late_event()], 43);
    store.commit("totals", &commit).expect("commit");
    store.commit("totals", &commit).expect("replayed commit");
    assert_eq!(test.count("freshet_late_events"), 1);
}

contract_test!(a_batch_that_does_not_match_its_table_is_a_bug);
fn a_batch_that_does_not_match_its_table_is_a_bug(test: &TestStore) {
    let mut store = test.open();
    let table = totals_table();
    store.create_view(&table).expect("create");
    let wrong = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("total", DataType::Int64, false),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(Int64Array::from(vec![1])),
        ],
    )
    .expect("valid batch");
    let commit = final_commit(wrong, 1);
    let error = store.commit("totals", &commit).expect_err("wrong type");
    assert!(matches!(error, StoreError::Bug { .. }), "{error:?}");
}

contract_test!(large_batches_with_null_keys_and_repeated_keys_upsert_by_key);
fn large_batches_with_null_keys_and_repeated_keys_upsert_by_key(test: &TestStore) {
    let mut store = test.open();
    let table = counts_table();
    store.create_view(&table).expect("create");
    // 200 rows: more than one multi-row statement, a null user every 7th row, and each
    // key written twice in the same batch (the later row wins).
    let batch_of = |base: i64| {
        let mut rows = Vec::new();
        for pass in 0..2 {
            for i in 0..100i64 {
                let user = (i % 7 != 0).then_some(["a", "b", "c", "d"][(i % 4) as usize]);
                rows.push((user, i, base + pass * 1_000 + i));
            }
        }
        let users: Vec<Option<&str>> = rows.iter().map(|r| r.0).collect();
        let rows: Vec<(Option<&str>, i64, i64)> =
            rows.iter().zip(users).map(|(r, u)| (u, r.1, r.2)).collect();
        counts(&table.schema, &rows, RowState::Provisional)
    };
    store
        .commit("counts", &upserts_only(vec![batch_of(0)], progress(1, 0)))
        .expect("first");
    store
        .commit(
            "counts",
            &upserts_only(vec![batch_of(10_000)], progress(2, 0)),
        )
        .expect("second");
    let (rows, has_more) = read_counts(&*store, &all());
    assert!(!has_more);
    assert_eq!(rows.len(), 100);
    let mut seen: Vec<i64> = rows.iter().map(|r| r.2).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..100).map(|i| 11_000 + i).collect::<Vec<_>>());
    assert_eq!(rows.iter().filter(|r| r.0.is_none()).count(), 15);
}

contract_test!(repair_deletes_by_key_then_upserts_and_leaves_progress_alone);
fn repair_deletes_by_key_then_upserts_and_leaves_progress_alone(test: &TestStore) {
    let mut store = test.open();
    let table = counts_table();
    store.create_view(&table).expect("create");
    let rows = counts(
        &table.schema,
        &[(None, 0, 1), (Some("a"), 0, 2), (Some("b"), 0, 3)],
        RowState::Provisional,
    );
    store
        .commit("counts", &upserts_only(vec![rows], progress(3, 0)))
        .expect("commit");
    let checkpoint = store.load("counts").expect("load");
    let status = store.status("counts").expect("status");

    // Keys deleted: one holding a null, one put back by the same repair, one never stored.
    let deletes = counts(
        &table.schema,
        &[(None, 0, 0), (Some("b"), 0, 0), (Some("z"), 5, 0)],
        RowState::Final,
    );
    let upserts = counts(
        &table.schema,
        &[(Some("a"), 0, 20), (Some("b"), 0, 30), (Some("c"), 1, 40)],
        RowState::Final,
    );
    store
        .repair("counts", &[upserts], &[deletes.batch])
        .expect("repair");
    let (rows, _) = read_counts(&*store, &all());
    assert_eq!(
        rows,
        vec![
            (Some("a".into()), 0, 20, "final".into()),
            (Some("b".into()), 0, 30, "final".into()),
            (Some("c".into()), 1, 40, "final".into()),
        ]
    );
    assert_eq!(store.load("counts").expect("load"), checkpoint);
    assert_eq!(store.status("counts").expect("status"), status);
}

contract_test!(a_commit_deletes_rows_by_key_before_its_upserts);
/// A view whose rows stop qualifying (HAVING over updating groups) deletes them in the
/// commit that says so; a key deleted and upserted in one commit keeps the upsert, and a
/// key the table never held is no error.
fn a_commit_deletes_rows_by_key_before_its_upserts(test: &TestStore) {
    let mut store = test.open();
    let table = counts_table();
    store.create_view(&table).expect("create");
    let rows = [
        (Some("a"), 0, 1),
        (None, 0, 2),
        (Some("b"), 0, 3),
        (Some("a"), 1, 4),
    ];
    store
        .commit(
            "counts",
            &upserts_only(
                vec![counts(&table.schema, &rows, RowState::Provisional)],
                progress(4, 0),
            ),
        )
        .expect("first commit");
    let deleted = [
        (Some("a"), 0, 0),
        (None, 0, 0),
        (Some("b"), 0, 0),
        (Some("z"), 7, 0),
    ];
    let commit = Commit {
        deletes: vec![counts(&table.schema, &deleted, RowState::Final).batch],
        ..upserts_only(
            vec![counts(&table.schema, &[(Some("b"), 0, 9)], RowState::Final)],
            progress(5, 0),
        )
    };
    store
        .commit("counts", &commit)
        .expect("commit with deletes");
    let (rows, _) = read_counts(&*store, &all());
    assert_eq!(
        rows,
        vec![
            (Some("a".into()), 1, 4, "provisional".into()),
            (Some("b".into()), 0, 9, "final".into()),
        ],
        "a0 and the null key deleted, b0 deleted then written, z7 never there"
    );
    assert_eq!(
        store.status("counts").expect("status").progress,
        Some(progress(5, 0))
    );
}
