//! What PostgreSQL keeps for workers: a view run as one task per partition keeps each
//! task's operator state, progress and status apart, answers for its tasks together, and
//! never runs whole and per partition at once (SQLite runs views whole only: it refuses a
//! partition task); the catalog workers follow is published whole; a worker never
//! creates a view, nor takes the lease of a dropped one.

use serde_json::json;

use super::fixtures::{counts, counts_table};
use super::harness::TestStore;
use super::leases::store_of;
use crate::model::{PartitionProgress, Progress, RowState, Task};
use crate::{Commit, PgStore, ResultStore, StoreLocation};

fn part(index: u32, count: u32) -> Task {
    Task::Partition { index, count }
}

/// Task `p`'s commit: its row, its state entry under the key every task uses, and its
/// partition of `clicks` read to `next_offset` with watermark `watermark_ms`.
fn task_commit(p: u32, next_offset: u64, watermark_ms: i64) -> Commit {
    let table = counts_table();
    let user = format!("u{p}");
    Commit {
        deletes: vec![],
        upserts: vec![counts(
            &table.schema,
            &[(Some(user.as_str()), 1, i64::from(p) + 10)],
            RowState::Final,
        )],
        state_puts: vec![(b"shared-key".to_vec(), vec![p as u8])],
        state_deletes: vec![],
        state_reset: false,
        late: vec![],
        progress: Progress {
            partitions: vec![PartitionProgress {
                stream: "clicks".into(),
                partition: p,
                next_offset,
                watermark_ms: Some(watermark_ms),
            }],
            watermark_ms: Some(watermark_ms),
            stats: json!({ "input_events": next_offset }),
        },
    }
}

fn task_store(test: &TestStore, owner: &str, task: Task) -> PgStore {
    let mut store = store_of(test, owner, None);
    store.set_task(task).expect("PostgreSQL runs tasks");
    store.create_view(&counts_table()).expect("create");
    store
}

/// Tasks 0 and 1 of 2, each holding its lease.
fn two_tasks(test: &TestStore) -> (PgStore, PgStore) {
    let mut p0 = task_store(test, "w0", part(0, 2));
    let mut p1 = task_store(test, "w1", part(1, 2));
    assert_eq!(p0.claim_writer("counts").expect("claim p0"), Some(1));
    assert_eq!(p1.claim_writer("counts").expect("claim p1"), Some(1));
    (p0, p1)
}

fn reader(test: &TestStore) -> PgStore {
    let StoreLocation::Postgres(pg) = test.location() else {
        panic!("tasks are PostgreSQL's");
    };
    PgStore::open_read_only(pg).expect("open read-only")
}

#[test]
fn partition_tasks_keep_their_own_state_and_progress_and_answer_together() {
    let Some(test) = TestStore::postgres("tasks_apart") else {
        return;
    };
    let (mut p0, mut p1) = two_tasks(&test);
    p0.commit("counts", &task_commit(0, 10, 5_000))
        .expect("p0 commits");

    // One of two tasks has committed: the view's watermark is not known yet, the other
    // task's partition counts as unread and its stats as unknown.
    let status = reader(&test).status("counts").expect("status");
    let progress = status.progress.expect("committed");
    assert_eq!(progress.watermark_ms, None, "{progress:?}");
    assert_eq!(progress.stats, json!([{ "input_events": 10 }, null]));
    assert_eq!(
        progress
            .partitions
            .iter()
            .map(|p| (p.partition, p.next_offset))
            .collect::<Vec<_>>(),
        vec![(0, 10), (1, 0)]
    );

    p1.commit("counts", &task_commit(1, 20, 3_000))
        .expect("p1 commits");
    // Each task resumes from its own state and partitions.
    for (store, p, offset) in [(&p0, 0u8, 10u64), (&p1, 1, 20)] {
        let checkpoint = store.load("counts").expect("load");
        assert_eq!(checkpoint.state, vec![(b"shared-key".to_vec(), vec![p])]);
        let progress = checkpoint.progress.expect("committed");
        assert_eq!(progress.partitions.len(), 1, "{progress:?}");
        assert_eq!(progress.partitions[0].partition, u32::from(p));
        assert_eq!(progress.partitions[0].next_offset, offset);
        assert_eq!(progress.stats, json!({ "input_events": offset }));
    }
    // The view answers for both: every partition, the least watermark, each task's stats.
    let reader = reader(&test);
    let status = reader.status("counts").expect("status");
    let progress = status.progress.expect("committed");
    assert_eq!(progress.watermark_ms, Some(3_000));
    assert_eq!(
        progress
            .partitions
            .iter()
            .map(|p| (p.partition, p.next_offset))
            .collect::<Vec<_>>(),
        vec![(0, 10), (1, 20)]
    );
    assert_eq!(
        progress.stats,
        json!([{ "input_events": 10 }, { "input_events": 20 }])
    );
    assert_eq!(
        reader.tasks("counts").expect("tasks"),
        vec![part(0, 2), part(1, 2)]
    );
    let rows = reader
        .read_results("counts", &super::fixtures::all())
        .expect("read");
    assert_eq!(rows.batch.num_rows(), 2, "each task's row");

    // Dropping the view leaves nothing of any task.
    p0.drop_view("counts").expect("drop");
    assert_eq!(test.count("freshet_state"), 0);
    assert_eq!(test.count("freshet_view_status"), 0);
}

#[test]
fn a_view_runs_whole_or_per_partition_never_both() {
    let Some(test) = TestStore::postgres("tasks_layout") else {
        return;
    };
    let mut whole = task_store(&test, "serve", Task::Whole);
    whole.claim_writer("counts").expect("claim the whole view");
    // A live holder of the whole view keeps partition tasks out.
    let mut p0 = task_store(&test, "w0", part(0, 2));
    let refused = p0.claim_writer("counts").expect_err("the view runs whole");
    assert!(
        refused.to_string().contains("runs whole") && refused.to_string().contains("held by serve"),
        "{refused}"
    );
    whole
        .commit("counts", &task_commit(0, 10, 5_000))
        .expect("commit");
    whole.release_writer("counts").expect("release");
    // Released, but committed whole: its state is kept that way.
    let refused = p0.claim_writer("counts").expect_err("committed whole");
    assert!(refused.to_string().contains("committed"), "{refused}");
    assert_eq!(
        reader(&test).tasks("counts").expect("tasks"),
        vec![Task::Whole]
    );

    // Created again, it runs per partition; then neither the whole view nor another number
    // of partitions may run it.
    whole.drop_view("counts").expect("drop");
    let mut p0 = task_store(&test, "w0", part(0, 2));
    p0.claim_writer("counts").expect("claim p0");
    let mut whole = task_store(&test, "serve", Task::Whole);
    let refused = whole
        .claim_writer("counts")
        .expect_err("held per partition");
    assert!(refused.to_string().contains("per partition"), "{refused}");
    p0.commit("counts", &task_commit(0, 10, 5_000))
        .expect("commit");
    let mut three = task_store(&test, "w1", part(1, 3));
    let refused = three
        .claim_writer("counts")
        .expect_err("committed with two tasks");
    assert!(
        refused.to_string().contains("per partition, 2 tasks"),
        "{refused}"
    );
}

#[test]
fn a_store_of_version_3_keys_its_state_and_status_by_task() {
    let Some(test) = TestStore::postgres("tasks_migration") else {
        return;
    };
    let mut store = task_store(&test, "serve", Task::Whole);
    store.claim_writer("counts").expect("claim");
    store
        .commit("counts", &task_commit(0, 10, 5_000))
        .expect("commit");
    drop(store);
    // As version 3 left them: no task columns, keyed by view.
    let (state, status, meta) = (
        test.table("freshet_state"),
        test.table("freshet_view_status"),
        test.table("freshet_meta"),
    );
    test.postgres_client()
        .batch_execute(&format!(
            "ALTER TABLE {state} DROP CONSTRAINT freshet_state_pkey, DROP COLUMN task, \
             ADD PRIMARY KEY (view, key); \
             ALTER TABLE {status} DROP CONSTRAINT freshet_view_status_pkey, DROP COLUMN task, \
             DROP COLUMN tasks, ADD PRIMARY KEY (view); \
             UPDATE {meta} SET value = '3' WHERE key = 'schema_version'"
        ))
        .expect("downgrade");
    let mut store = task_store(&test, "serve", Task::Whole);
    assert_eq!(test.schema_version(), crate::SCHEMA_VERSION);
    store.claim_writer("counts").expect("claim");
    let checkpoint = store.load("counts").expect("load");
    assert_eq!(checkpoint.state, vec![(b"shared-key".to_vec(), vec![0])]);
    assert_eq!(
        checkpoint.progress.expect("kept").partitions[0].next_offset,
        10
    );
    store
        .commit("counts", &task_commit(0, 11, 6_000))
        .expect("commits after the upgrade");
    assert_eq!(
        reader(&test).tasks("counts").expect("tasks"),
        vec![Task::Whole]
    );
}

#[test]
fn sqlite_runs_views_whole_only() {
    let test = TestStore::sqlite();
    let mut store = test.open();
    store.set_task(Task::Whole).expect("the whole view");
    let refused = store.set_task(part(0, 2)).expect_err("no partition tasks");
    assert!(refused.to_string().contains("PostgreSQL"), "{refused}");
}

#[test]
fn taking_a_view_whole_fences_a_lapsed_partition_task() {
    let Some(test) = TestStore::postgres("tasks_fence") else {
        return;
    };
    // A worker's task whose lease lapses (the worker paused) before it ever committed.
    store_of(&test, "sql", None)
        .create_view(&counts_table())
        .expect("created by `freshet sql`");
    let mut paused = store_of(&test, "w0", Some(std::time::Duration::from_millis(800)));
    paused.set_task(part(0, 2)).expect("a partition task");
    paused.create_view(&counts_table()).expect("opened");
    paused.claim_writer("counts").expect("claim p0");
    std::thread::sleep(std::time::Duration::from_millis(1_000));
    let mut whole = task_store(&test, "serve", Task::Whole);
    whole
        .claim_writer("counts")
        .expect("the lapsed task does not keep the view from running whole");
    whole
        .commit("counts", &task_commit(0, 10, 5_000))
        .expect("the whole view commits");
    let fenced = paused
        .commit("counts", &task_commit(0, 99, 9_000))
        .expect_err("the paused task resumes: fenced");
    assert!(
        matches!(fenced, crate::StoreError::Fenced { .. }),
        "{fenced:?}"
    );
    assert_eq!(
        test.count("freshet_view_status"),
        1,
        "only the whole view's"
    );
}

#[test]
fn the_catalog_is_published_whole() {
    let Some(test) = TestStore::postgres("catalog_published") else {
        return;
    };
    let StoreLocation::Postgres(pg) = test.location() else {
        unreachable!()
    };
    let mut cluster = crate::Cluster::open(pg).expect("open");
    assert!(cluster.catalog().expect("read").is_empty(), "none yet");
    let mut store = store_of(&test, "sql", None);
    let file = |name: &str, doc: &str| (name.to_owned(), doc.as_bytes().to_vec());
    store
        .publish_catalog(&[file("catalog.json", "{1}"), file("views.json", "{2}")])
        .expect("the first publication");
    assert_eq!(cluster.catalog().expect("read").len(), 2);
    // A later one replaces it whole: a file it lacks is gone.
    store
        .publish_catalog(&[file("views.json", "{3}")])
        .expect("the next");
    assert_eq!(
        cluster.catalog().expect("read"),
        vec![file("views.json", "{3}")]
    );
}

#[test]
fn a_worker_never_creates_a_view() {
    let Some(test) = TestStore::postgres("worker_creates_none") else {
        return;
    };
    let mut worker = store_of(&test, "w0", Some(std::time::Duration::from_secs(10)));
    let refused = worker
        .create_view(&counts_table())
        .expect_err("dropped or never created");
    assert!(refused.to_string().contains("not in"), "{refused}");
    store_of(&test, "sql", None)
        .create_view(&counts_table())
        .expect("created by `freshet sql`");
    worker
        .create_view(&counts_table())
        .expect("a worker opens a view that exists");
}

#[test]
fn a_repair_of_a_view_run_per_partition_holds_every_task() {
    let Some(test) = TestStore::postgres("tasks_repair") else {
        return;
    };
    let (mut p0, mut p1) = two_tasks(&test);
    p0.commit("counts", &task_commit(0, 10, 5_000))
        .expect("p0 commits");
    p1.commit("counts", &task_commit(1, 20, 5_000))
        .expect("p1 commits");
    p0.release_writer("counts").expect("p0 handed over");
    // One task still runs: no repair, and none of the leases stays taken.
    let mut repairer = store_of(&test, "reconcile", None);
    let refused = repairer.claim_for_repair("counts").expect_err("p1 is held");
    assert!(refused.to_string().contains("w1"), "{refused}");
    p1.release_writer("counts").expect("p1 handed over");
    repairer
        .claim_for_repair("counts")
        .expect("every task is free");
    let table = counts_table();
    let fixed = counts(&table.schema, &[(Some("u0"), 1, 99)], RowState::Final);
    repairer
        .repair("counts", &[fixed], &[])
        .expect("repaired under every task's lease");
    // While the repairer holds them, no task is taken back.
    let mut again = task_store(&test, "w0", part(0, 2));
    again
        .claim_writer("counts")
        .expect_err("the repairer's session holds it");
}

#[test]
fn the_lease_of_a_dropped_view_is_never_taken() {
    let Some(test) = TestStore::postgres("tasks_dropped") else {
        return;
    };
    let mut sql = store_of(&test, "sql", None);
    sql.create_view(&counts_table()).expect("create");
    let mut worker = store_of(&test, "w0", Some(std::time::Duration::from_secs(10)));
    worker.create_view(&counts_table()).expect("opened");
    // Dropped between the worker's opening and its claim.
    sql.drop_view("counts").expect("drop");
    let refused = worker.claim_writer("counts").expect_err("the view is gone");
    assert!(refused.to_string().contains("dropped"), "{refused}");
}
