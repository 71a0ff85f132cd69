//! The contract of the reads ([`ResultStore::read_results`](crate::ResultStore::read_results),
//! [`ResultStore::status`](crate::ResultStore::status)): filters by key and time, pages in
//! key order, refuses bad filters as user errors; readers opened beside the writer see each
//! commit and redefinition, are never blocked by an open write transaction, and cannot
//! write.

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Int32Array, RecordBatch, TimestampSecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use std::sync::Arc;

use super::fixtures::{
    all, counts, counts_table, final_commit, ns, progress, read_counts, six_counts, totals,
    totals_table, upserts_only,
};
use super::harness::TestStore;
use crate::model::{ResultQuery, ResultTable, RowState};
use crate::{ResultStore, StoreError};

contract_test!(read_results_filters_by_key_and_time);
fn read_results_filters_by_key_and_time(test: &TestStore) {
    let mut store = test.open();
    six_counts(&mut *store);
    let store = &*store;
    let (rows, _) = read_counts(store, &all());
    assert_eq!(ns(&rows), vec![1, 2, 3, 4, 5, 6], "ordered by key");

    let by_user = ResultQuery {
        equals: vec![("user".into(), "a".into())],
        ..all()
    };
    assert_eq!(ns(&read_counts(store, &by_user).0), vec![1, 2, 3]);

    for start in [
        "1970-01-01T00:01:00Z",
        "1970-01-01 00:01:00",
        "1970-01-01T01:01:00+01:00",
    ] {
        let by_window = ResultQuery {
            equals: vec![("window_start".into(), start.into())],
            ..all()
        };
        assert_eq!(ns(&read_counts(store, &by_window).0), vec![2, 5], "{start}");
    }

    // Windows overlapping [60 s, 120 s): only the one starting at minute 1.
    let range = ResultQuery {
        from_ms: Some(60_000),
        to_ms: Some(120_000),
        ..all()
    };
    assert_eq!(ns(&read_counts(store, &range).0), vec![2, 5]);
    let overlap = ResultQuery {
        from_ms: Some(59_999),
        to_ms: Some(60_001),
        ..all()
    };
    assert_eq!(ns(&read_counts(store, &overlap).0), vec![1, 2, 4, 5]);
    let from = ResultQuery {
        from_ms: Some(120_000),
        equals: vec![("user".into(), "b".into())],
        ..all()
    };
    assert_eq!(ns(&read_counts(store, &from).0), vec![6]);
    let far = ResultQuery {
        from_ms: Some(i64::MIN),
        to_ms: Some(i64::MAX),
        ..all()
    };
    assert_eq!(read_counts(store, &far).0.len(), 6);
}

contract_test!(read_results_pages_with_limit_and_has_more);
fn read_results_pages_with_limit_and_has_more(test: &TestStore) {
    let mut store = test.open();
    six_counts(&mut *store);
    let page = |limit, offset| {
        let (rows, has_more) = read_counts(
            &*store,
            &ResultQuery {
                limit,
                offset,
                ..all()
            },
        );
        (ns(&rows), has_more)
    };
    assert_eq!(page(2, 0), (vec![1, 2], true));
    assert_eq!(page(2, 4), (vec![4, 5, 6][1..].to_vec(), false));
    assert_eq!(page(6, 0), (vec![1, 2, 3, 4, 5, 6], false));
    assert!(page(5, 0).1);
    assert_eq!(page(usize::MAX, 0).0.len(), 6);
    assert_eq!(page(0, 0), (vec![], true));
}

contract_test!(read_results_refuses_bad_filters);
fn read_results_refuses_bad_filters(test: &TestStore) {
    let mut store = test.open();
    six_counts(&mut *store);
    let user_error = |store: &dyn ResultStore, view: &str, query: ResultQuery| {
        let error = store.read_results(view, &query).expect_err("bad filter");
        assert!(matches!(error, StoreError::User { .. }), "{error:?}");
        error.to_string()
    };
    let message = user_error(
        &*store,
        "counts",
        ResultQuery {
            equals: vec![("n".into(), "1".into())],
            ..all()
        },
    );
    assert!(
        message.contains("'n'") && message.contains("user, window_start, window_end"),
        "{message}"
    );
    let message = user_error(
        &*store,
        "counts",
        ResultQuery {
            equals: vec![("nope".into(), "1".into())],
            ..all()
        },
    );
    assert!(message.contains("'nope'"), "{message}");
    let message = user_error(
        &*store,
        "counts",
        ResultQuery {
            equals: vec![("window_start".into(), "noon".into())],
            ..all()
        },
    );
    assert!(message.contains("timestamp"), "{message}");
    assert_eq!(user_error(&*store, "nope", all()), "unknown view 'nope'");

    let table = totals_table();
    store.create_view(&table).expect("create");
    let message = user_error(
        &*store,
        "totals",
        ResultQuery {
            equals: vec![("k".into(), "abc".into())],
            ..all()
        },
    );
    assert!(
        message.contains("'abc'") && message.contains("integer"),
        "{message}"
    );
    let message = user_error(
        &*store,
        "totals",
        ResultQuery {
            from_ms: Some(0),
            ..all()
        },
    );
    assert!(message.contains("cannot be filtered by time"), "{message}");
}

contract_test!(one_timestamp_column_filters_a_half_open_range);
fn one_timestamp_column_filters_a_half_open_range(test: &TestStore) {
    let mut store = test.open();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("at", DataType::Timestamp(TimeUnit::Second, None), false),
    ]));
    let table = ResultTable {
        view: "events".into(),
        schema: Arc::clone(&schema),
        key: vec!["id".into()],
    };
    store.create_view(&table).expect("create");
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3])),
            Arc::new(TimestampSecondArray::from(vec![10, 20, 30])),
        ],
    )
    .expect("valid batch");
    let commit = final_commit(batch, 3);
    store.commit("events", &commit).expect("commit");
    let ids = |from_ms, to_ms| {
        let rows = store
            .read_results(
                "events",
                &ResultQuery {
                    from_ms,
                    to_ms,
                    ..all()
                },
            )
            .expect("read");
        rows.batch
            .column(0)
            .as_primitive::<Int32Type>()
            .values()
            .to_vec()
    };
    assert_eq!(ids(Some(20_000), Some(30_000)), vec![2]);
    assert_eq!(ids(Some(19_500), Some(30_001)), vec![2, 3]);
    assert_eq!(ids(Some(20_001), None), vec![3]);
    assert_eq!(ids(None, Some(20_000)), vec![1]);
}

contract_test!(a_read_only_store_refuses_writes);
fn a_read_only_store_refuses_writes(test: &TestStore) {
    let mut store = test.open();
    store.create_view(&totals_table()).expect("create");
    let mut reader = test.open_read_only();
    // Refused by the store itself, before the database would refuse it.
    let refused = |e: StoreError| {
        assert!(matches!(e, StoreError::Bug { .. }), "{e:?}");
        assert!(e.to_string().contains("opened read-only"), "{e}");
    };
    refused(reader.create_view(&counts_table()).expect_err("create"));
    refused(reader.drop_view("totals").expect_err("drop"));
    let table = totals_table();
    refused(
        reader
            .commit(
                "totals",
                &upserts_only(vec![totals(&table, &[(1, 1)])], progress(1, 1)),
            )
            .expect_err("commit"),
    );
    refused(reader.repair("totals", &[], &[]).expect_err("repair"));
    assert!(reader.status("totals").expect("status").progress.is_none());
}

contract_test!(readers_read_while_the_writer_holds_a_transaction);
fn readers_read_while_the_writer_holds_a_transaction(test: &TestStore) {
    let mut store = test.open();
    let table = counts_table();
    store.create_view(&table).expect("create");
    let first = counts(&table.schema, &[(Some("a"), 0, 1)], RowState::Final);
    store
        .commit("counts", &upserts_only(vec![first], progress(1, 0)))
        .expect("commit");

    let reader = test.open_read_only();
    let writer = test.uncommitted(&format!(
        "INSERT INTO {} VALUES ('b', '1970-01-01 00:00:00.000', '1970-01-01 00:01:00.000', 9, \
         'provisional', '1970-01-01 00:00:00.000');",
        test.table("counts")
    ));
    let (rows, _) = read_counts(&*reader, &all());
    assert_eq!(rows.len(), 1, "the reader sees the last commit only");
    assert!(reader.load("counts").is_ok());
    writer.commit();
    let (rows, _) = read_counts(&*reader, &all());
    assert_eq!(rows.len(), 2);
}

contract_test!(a_store_nobody_created_cannot_be_read);
fn a_store_nobody_created_cannot_be_read(test: &TestStore) {
    let error = test
        .missing()
        .open_read_only()
        .map(|_| ())
        .expect_err("nothing there");
    assert!(matches!(error, StoreError::User { .. }), "{error:?}");
}

contract_test!(a_reader_sees_every_commit_and_redefinition_through_its_caches);
fn a_reader_sees_every_commit_and_redefinition_through_its_caches(test: &TestStore) {
    let mut store = test.open();
    let table = counts_table();
    store.create_view(&table).expect("create");
    let reader = test.open_read_only();
    let status = reader.status("counts").expect("status");
    assert!(status.progress.is_none(), "never committed");
    assert_eq!(reader.status("counts").expect("cached"), status);

    let rows = counts(&table.schema, &[(Some("a"), 0, 1)], RowState::Final);
    store
        .commit("counts", &upserts_only(vec![rows], progress(3, 7)))
        .expect("commit");
    let status = reader.status("counts").expect("status after a commit");
    assert_eq!(status.progress.expect("committed"), progress(3, 7));
    assert_eq!(read_counts(&*reader, &all()).0.len(), 1);

    // Dropped and created again with other columns: the reader reads the new table.
    store.drop_view("counts").expect("drop");
    assert!(reader.status("counts").is_err(), "gone");
    assert!(reader.read_results("counts", &all()).is_err(), "gone");
    let mut changed = totals_table();
    changed.view = "counts".into();
    store.create_view(&changed).expect("create again");
    store
        .commit(
            "counts",
            &upserts_only(vec![totals(&changed, &[(1, 5)])], progress(1, 0)),
        )
        .expect("commit to the new table");
    let page = reader.read_results("counts", &all()).expect("read");
    assert_eq!(
        page.batch.schema().field(0).name(),
        changed.schema.field(0).name()
    );
    assert_eq!(page.batch.num_rows(), 1);
    assert_eq!(
        reader.status("counts").expect("status").progress,
        Some(progress(1, 0))
    );
}

contract_test!(read_page_gives_the_status_with_the_rows);
fn read_page_gives_the_status_with_the_rows(test: &TestStore) {
    let mut store = test.open();
    six_counts(&mut *store);
    let reader = test.open_read_only();
    for store in [&*store, &*reader] {
        let query = ResultQuery {
            equals: vec![("user".into(), "b".into())],
            limit: 2,
            ..all()
        };
        let (status, rows) = store.read_page("counts", &query).expect("page");
        assert_eq!(status, store.status("counts").expect("status"));
        assert_eq!(status.progress, Some(progress(6, 0)));
        assert_eq!(rows, store.read_results("counts", &query).expect("rows"));
        assert_eq!((rows.batch.num_rows(), rows.has_more), (2, true));
        assert!(store.read_page("nope", &all()).is_err());
    }
}

contract_test!(a_negative_offset_in_the_progress_is_refused_as_corruption);
fn a_negative_offset_in_the_progress_is_refused_as_corruption(test: &TestStore) {
    let mut store = test.open();
    six_counts(&mut *store);
    drop(store);
    test.uncommitted(&format!(
        "UPDATE {} SET next_offset = -1 WHERE view = 'counts' AND \"partition\" = 1;",
        test.table("freshet_progress")
    ))
    .commit();
    let store = test.open_read_only();
    for error in [
        store.status("counts").expect_err("status"),
        store.read_page("counts", &all()).expect_err("page"),
        store.load("counts").expect_err("load"),
    ] {
        assert!(
            matches!(error, StoreError::Corrupt { .. }),
            "a corrupt row is reported as such, not as {error:?}"
        );
        assert!(error.to_string().contains("'counts'"), "{error}");
        assert!(!error.retriable(), "{error}");
    }
}
