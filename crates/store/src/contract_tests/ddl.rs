//! The contract of [`ResultStore::create_view`](crate::ResultStore::create_view) and
//! [`ResultStore::drop_view`](crate::ResultStore::drop_view): creating is idempotent, a
//! changed schema is refused naming the difference, nullability only widens, bad
//! definitions are user errors, and dropping removes everything the view had.

use arrow_array::{Int64Array, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;

use super::fixtures::{
    all, counts, counts_table, final_commit, progress, totals, totals_table, upserts_only, utc_ms,
};
use super::harness::TestStore;
use crate::StoreError;
use crate::model::{Commit, LateEvent, RowState};

contract_test!(create_view_is_idempotent_and_refuses_a_changed_schema);
fn create_view_is_idempotent_and_refuses_a_changed_schema(test: &TestStore) {
    let mut store = test.open();
    let table = counts_table();
    store.create_view(&table).expect("create");
    store.create_view(&table).expect("create again");

    let mut changed = counts_table();
    changed.schema = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("window_start", utc_ms(), false),
        Field::new("window_end", utc_ms(), false),
        Field::new("n", DataType::Float64, false),
    ]));
    let error = store.create_view(&changed).expect_err("type changed");
    assert!(matches!(error, StoreError::User { .. }));
    let message = error.to_string();
    assert!(
        message.contains("'n'") && message.contains("Float64"),
        "{message}"
    );

    let mut rekeyed = counts_table();
    rekeyed.key = vec!["user".into()];
    let error = store.create_view(&rekeyed).expect_err("key changed");
    assert!(error.to_string().contains("key"), "{error}");

    // A second process sees the same definition.
    let other = test.open();
    drop(other);
    let mut reopened = test.open();
    reopened.create_view(&table).expect("same definition");
    assert!(reopened.create_view(&changed).is_err());
}

contract_test!(create_view_refuses_bad_definitions);
fn create_view_refuses_bad_definitions(test: &TestStore) {
    let mut store = test.open();
    let mut table = counts_table();
    table.view = "freshet_views".into();
    assert!(store.create_view(&table).is_err());
    table.view = "Freshet_x".into();
    assert!(store.create_view(&table).is_err());

    let mut table = counts_table();
    table.key = vec![];
    let error = store.create_view(&table).expect_err("no key");
    assert!(error.to_string().contains("no key"), "{error}");
    table.key = vec!["nope".into()];
    assert!(store.create_view(&table).is_err());

    let mut table = counts_table();
    table.schema = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("window_start", utc_ms(), false),
        Field::new("window_end", utc_ms(), false),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
    ]));
    let error = store
        .create_view(&table)
        .expect_err("lists are not supported");
    assert!(matches!(error, StoreError::User { .. }));
    assert!(error.to_string().contains("'tags'"), "{error}");

    // Names are compared without case, so that a view moves between stores.
    let mut table = counts_table();
    table.view = "COUNTS".into();
    store.create_view(&counts_table()).expect("create");
    let error = store.create_view(&table).expect_err("names collide");
    assert!(matches!(error, StoreError::User { .. }));
    assert!(error.to_string().contains("named 'counts'"), "{error}");
}

contract_test!(create_view_widens_nullability_and_keeps_it);
fn create_view_widens_nullability_and_keeps_it(test: &TestStore) {
    let mut store = test.open();
    let mut table = totals_table();
    store.create_view(&table).expect("create");
    // A reader that read the narrower definition before it was widened.
    let early = test.open_read_only();
    assert!(early.read_results("totals", &all()).is_ok());
    table.schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("total", DataType::UInt64, true),
    ]));
    store.create_view(&table).expect("only nullability changed");
    let batch = RecordBatch::try_new(
        Arc::clone(&table.schema),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(UInt64Array::from(vec![None::<u64>])),
        ],
    )
    .expect("valid batch");
    let commit = final_commit(batch, 1);
    store.commit("totals", &commit).expect("commit");
    store
        .create_view(&totals_table())
        .expect("narrower again is accepted");
    let reader = test.open_read_only();
    for reader in [&reader, &early] {
        let rows = reader.read_results("totals", &all()).expect("read");
        assert!(rows.batch.schema().field(1).is_nullable());
        assert!(rows.batch.column(1).is_null(0));
    }
}

contract_test!(drop_view_removes_everything);
fn drop_view_removes_everything(test: &TestStore) {
    let mut store = test.open();
    let table = counts_table();
    store.create_view(&table).expect("create");
    let commit = Commit {
        deletes: vec![],
        upserts: vec![counts(&table.schema, &[(Some("a"), 0, 1)], RowState::Final)],
        state_puts: vec![(b"k".to_vec(), b"v".to_vec())],
        state_deletes: vec![],
        state_reset: false,
        late: vec![LateEvent {
            stream: "clicks".into(),
            partition: 0,
            offset: 1,
            event_time_ms: 0,
            reason: "late".into(),
            row_json: "{}".into(),
        }],
        progress: progress(2, 0),
    };
    store.commit("counts", &commit).expect("commit");
    store.drop_view("counts").expect("drop");

    for table in [
        "freshet_views",
        "freshet_progress",
        "freshet_view_status",
        "freshet_state",
        "freshet_late_events",
    ] {
        assert_eq!(test.count(table), 0, "{table}");
    }
    assert!(!test.has_table("counts"));
    let error = store.read_results("counts", &all()).expect_err("gone");
    assert_eq!(error.to_string(), "unknown view 'counts'");
    assert!(store.load("counts").is_err());
    assert!(store.commit("counts", &commit).is_err());
    store
        .drop_view("counts")
        .expect("dropping again does nothing");

    // The name is free for a different definition.
    let mut changed = totals_table();
    changed.view = "counts".into();
    store
        .create_view(&changed)
        .expect("create with other columns");
    store
        .commit(
            "counts",
            &upserts_only(vec![totals(&changed, &[(1, 1)])], progress(1, 0)),
        )
        .expect("commit to the new table");
}
