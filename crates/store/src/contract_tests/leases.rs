//! PostgreSQL's leases ([`crate::pg`]'s `lease`): one writer per view; a lease taken over
//! only once it is released, lapsed or its holder's session is gone; a holder that lost
//! its lease fenced, with nothing of its commit written. SQLite relies on its data
//! directory's lock and has none of this.

use std::time::Duration;

use super::fixtures::{counts, counts_table, progress, upserts_only};
use super::harness::TestStore;
use crate::model::RowState;
use crate::{Commit, Holder, PgStore, ResultStore, StoreError, StoreLocation};

pub(super) fn store_of(test: &TestStore, owner: &str, ttl: Option<Duration>) -> PgStore {
    let StoreLocation::Postgres(pg) = test.location() else {
        panic!("leases are PostgreSQL's");
    };
    let holder = Holder {
        owner: owner.to_owned(),
        ttl,
    };
    PgStore::open(&pg.as_ref().clone().with_holder(holder)).expect("open the store")
}

fn commit_of(n: i64, next_offset: u64) -> Commit {
    let table = counts_table();
    upserts_only(
        vec![counts(&table.schema, &[(Some("a"), 1, n)], RowState::Final)],
        progress(next_offset, 0),
    )
}

fn stored_n(test: &TestStore) -> i64 {
    let StoreLocation::Postgres(pg) = test.location() else {
        unreachable!()
    };
    let store = PgStore::open_read_only(pg).expect("open");
    let rows = store
        .read_results("counts", &super::fixtures::all())
        .expect("read");
    let n = rows.batch.column_by_name("n").expect("n");
    arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(n).value(0)
}

#[test]
fn a_lapsed_lease_is_taken_over_and_its_old_holder_fenced() {
    let Some(test) = TestStore::postgres("lease_lapse") else {
        return;
    };
    let ttl = Some(Duration::from_millis(1500));
    // `freshet sql` creates the view; workers only open it.
    store_of(&test, "sql", None)
        .create_view(&counts_table())
        .expect("create");
    let mut first = store_of(&test, "w1", ttl);
    first.create_view(&counts_table()).expect("open");
    first.claim_writer("counts").expect("the first claim");
    first
        .commit("counts", &commit_of(1, 10))
        .expect("the holder commits");

    let mut second = store_of(&test, "w2", ttl);
    let refused = second
        .claim_writer("counts")
        .expect_err("held and not lapsed");
    assert!(
        refused
            .to_string()
            .contains("is being written by another Freshet process")
            && refused.to_string().contains("w1 (lease epoch 1)"),
        "{refused}"
    );
    // No heartbeat renews the first's lease: it lapses although its session lives.
    std::thread::sleep(Duration::from_millis(1700));
    second
        .claim_writer("counts")
        .expect("taken over once lapsed");
    second
        .commit("counts", &commit_of(2, 20))
        .expect("the new holder commits");

    let fenced = first
        .commit("counts", &commit_of(99, 30))
        .expect_err("the old holder is fenced");
    assert!(matches!(fenced, StoreError::Fenced { .. }), "{fenced:?}");
    assert!(!fenced.retriable());
    assert!(
        fenced.to_string().contains("lease epoch 1") && fenced.to_string().contains("w2"),
        "{fenced}"
    );
    // A repair (reconciliation, backfill) is fenced as a commit is.
    let table = counts_table();
    let repair = vec![counts(
        &table.schema,
        &[(Some("a"), 1, 98)],
        RowState::Final,
    )];
    let fenced = first
        .repair("counts", &repair, &[])
        .expect_err("the old holder's repair is fenced");
    assert!(matches!(fenced, StoreError::Fenced { .. }), "{fenced:?}");
    assert_eq!(
        stored_n(&test),
        2,
        "nothing of the fenced commit or repair was written"
    );
    assert_eq!(
        second
            .load("counts")
            .expect("load")
            .progress
            .expect("progress")
            .partitions[0]
            .next_offset,
        20
    );
}

#[test]
fn a_released_lease_or_a_gone_session_is_taken_at_once() {
    let Some(test) = TestStore::postgres("lease_release") else {
        return;
    };
    // Leases that last as long as their session, as `serve` and `run` hold them.
    let mut first = store_of(&test, "p1", None);
    first.create_view(&counts_table()).expect("create");
    first.claim_writer("counts").expect("claim");
    let mut second = store_of(&test, "p2", None);
    second
        .claim_writer("counts")
        .expect_err("held while the session lives");
    first.release_writer("counts").expect("release");
    second.claim_writer("counts").expect("taken once released");
    second.commit("counts", &commit_of(3, 5)).expect("commit");
    first
        .commit("counts", &commit_of(4, 6))
        .expect_err("a released lease is not written through");
    // The holder's process goes away: its session with it.
    drop(second);
    let mut third = store_of(&test, "p3", None);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = third.claim_writer("counts") {
        assert!(std::time::Instant::now() < deadline, "never taken: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }
    third.commit("counts", &commit_of(5, 7)).expect("commit");
    assert_eq!(stored_n(&test), 5);
}

#[test]
fn a_dropped_view_fences_its_writer() {
    let Some(test) = TestStore::postgres("lease_drop") else {
        return;
    };
    let mut writer = store_of(&test, "w1", None);
    writer.create_view(&counts_table()).expect("create");
    writer.claim_writer("counts").expect("claim");
    let mut ddl = store_of(&test, "ddl", None);
    ddl.drop_view("counts").expect("drop");
    ddl.create_view(&counts_table()).expect("created again");
    let fenced = writer
        .commit("counts", &commit_of(1, 1))
        .expect_err("the view it held is gone");
    assert!(fenced.fenced(), "{fenced:?}");
}

#[test]
fn a_view_dropped_and_created_again_never_gives_an_old_writer_its_epoch_back() {
    let Some(test) = TestStore::postgres("lease_epochs") else {
        return;
    };
    // A paused writer, then a view dropped and created again, and taken by a process
    // with the same identity (a worker restarted under the same id).
    let mut paused = store_of(&test, "w1", None);
    paused.create_view(&counts_table()).expect("create");
    paused.claim_writer("counts").expect("claim");
    let mut ddl = store_of(&test, "ddl", None);
    ddl.drop_view("counts").expect("drop");
    ddl.create_view(&counts_table()).expect("created again");
    let mut again = store_of(&test, "w1", None);
    again
        .claim_writer("counts")
        .expect("taken by the same identity");
    again.commit("counts", &commit_of(7, 3)).expect("commit");
    let fenced = paused
        .commit("counts", &commit_of(99, 9))
        .expect_err("the old writer's epoch is not the new one");
    assert!(fenced.fenced(), "{fenced:?}");
    assert_eq!(stored_n(&test), 7);
}

#[test]
fn a_writer_whose_session_was_ended_and_lease_taken_is_fenced_on_reconnect() {
    let Some(test) = TestStore::postgres("lease_reconnect") else {
        return;
    };
    let mut first = store_of(&test, "w1", None);
    first.create_view(&counts_table()).expect("create");
    first.claim_writer("counts").expect("claim");
    first.commit("counts", &commit_of(1, 1)).expect("commit");
    // The server ends the first writer's session; a second takes the lease at once.
    let lease = test.table("freshet_leases");
    test.postgres_client()
        .execute(
            &format!("SELECT pg_terminate_backend(backend_pid) FROM {lease}"),
            &[],
        )
        .expect("terminate the writer's session");
    let mut second = store_of(&test, "w2", None);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = second.claim_writer("counts") {
        assert!(std::time::Instant::now() < deadline, "never taken: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The first writer's next call finds its connection gone, reconnects, and is fenced
    // before it writes anything (as many retriable attempts as a view would make).
    let outcome = (0..3)
        .map(|_| first.commit("counts", &commit_of(99, 9)))
        .find(|r| !matches!(r, Err(e) if e.retriable()))
        .expect("an answer that is not a retriable error");
    let fenced = outcome.expect_err("fenced");
    assert!(fenced.fenced(), "{fenced:?}");
    assert_eq!(stored_n(&test), 1);
}
