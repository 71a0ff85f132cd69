//! Who may write a view: one lease row per task in `freshet_leases`, with an epoch that is
//! the task's fencing token. A task is a whole view, or its part of one partition
//! ([`Task`]); a store writes one task of each view it claims. A view runs either whole or
//! per partition, never both: taking a lease is refused while the view has committed in
//! the other layout (or with another number of partitions), or while a live process holds
//! a lease of it the other way; taking one fences the lapsed leases of the other way.
//!
//! - **Taking** a lease bumps its epoch and records the holder's identity (a process's
//!   [`Holder`]), its PostgreSQL session (backend pid and start) and, for a worker, when it
//!   expires. It is taken when no one holds it, when its holder is this same identity, when
//!   its expiry has passed, or when its holder's session is gone (a crash, a terminated
//!   backend): a plain `serve` or `run` holds its leases for as long as its session lives,
//!   as the advisory lock before it did, and a worker's lease also lapses once its heartbeat
//!   stops renewing it (a paused or cut-off worker).
//! - **Every commit** (and every repair) first renews the lease with `UPDATE … WHERE owner =
//!   this holder AND epoch = its epoch` and goes on only if that found the row; otherwise it
//!   is refused as [`StoreError::Fenced`] and nothing of it is written. The row lock the
//!   renewal takes also makes a take-over wait for a commit in flight, so a commit either
//!   lands before the new holder's epoch exists or is refused after it.
//! - A store whose connection was lost checks, on its new connection, that it still holds
//!   each lease at its epoch (and records the new session); if not, it is fenced.
//! - **Releasing** (a worker handing a task over, after its last commit) clears the holder,
//!   so the next taker need not wait for the lease to lapse.

use postgres::Client;
use std::collections::HashMap;
use std::time::Duration;

use super::connection::prepared;
use super::store::PgStore;
use crate::StoreError;
use crate::error::PostgresContext;
use crate::model::Task;

/// Who writes through a location: an identity unique to the process (a worker's id) and,
/// for a worker, how long its leases last without a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The identity recorded in the leases this process takes.
    pub owner: String,
    /// `None`: a lease lasts as long as the holder's session.
    pub ttl: Option<Duration>,
}

impl Holder {
    /// The identity of a process that is not a worker: its host, its process id and when
    /// it first asked (two containers may share a host name and a process id), the same
    /// for every store the process opens.
    pub fn of_process() -> Holder {
        static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let owner = OWNER.get_or_init(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "localhost".to_owned());
            let started = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0);
            format!("{host}:{}:{started:x}", std::process::id())
        });
        Holder {
            owner: owner.clone(),
            ttl: None,
        }
    }

    fn ttl_ms(&self) -> Option<i64> {
        self.ttl
            .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A lease this store took.
#[derive(Clone, Debug)]
pub(super) struct Held {
    pub(super) view: String,
    /// The task of the view it is the lease of.
    pub(super) task: Task,
    pub(super) epoch: i64,
    /// Given up: commits of the view are refused until it is claimed again.
    pub(super) released: bool,
}

/// The longest a taker waits for a holder's commit in flight to end.
const TAKE_WAIT_MAX: Duration = Duration::from_secs(5);

impl PgStore {
    /// Takes the lease of task `of` of `view` on `client`: its new epoch, or a user error
    /// naming the holder.
    pub(super) fn take_lease(
        &self,
        client: &mut Client,
        view: &str,
        of: Task,
    ) -> Result<i64, StoreError> {
        let s = &self.schema;
        let holder = &self.location.holder;
        let task = of.name();
        let at = || format!("taking the lease of view '{view}' ({of})");
        let mut tx = client.transaction().context(at)?;
        // A holder's commit in flight locks the row: wait for it a little, not for as long
        // as a paused holder may keep it.
        let wait = holder
            .ttl
            .map_or(TAKE_WAIT_MAX, |ttl| (ttl / 4).min(TAKE_WAIT_MAX));
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = {}",
            wait.as_millis().max(1)
        ))
        .context(at)?;
        self.check_layout(&mut tx, view, of)?;
        let row = tx
            .query_opt(
                &format!(
                    "INSERT INTO {s}.freshet_leases AS l (view, task, owner, epoch, expires_at, \
                     backend_pid, backend_start, acquired_at) \
                     SELECT $1, $2, $3, 1, now() + $4::bigint * interval '1 millisecond', \
                     a.pid, a.backend_start, now() \
                     FROM pg_stat_activity a WHERE a.pid = pg_backend_pid() \
                     ON CONFLICT (view, task) DO UPDATE SET owner = excluded.owner, \
                     epoch = l.epoch + 1, expires_at = excluded.expires_at, \
                     backend_pid = excluded.backend_pid, \
                     backend_start = excluded.backend_start, acquired_at = excluded.acquired_at \
                     WHERE l.owner IS NULL OR l.owner = excluded.owner OR l.expires_at < now() \
                     OR NOT EXISTS (SELECT 1 FROM pg_stat_activity b WHERE b.pid = l.backend_pid \
                     AND (b.backend_start IS NULL OR b.backend_start = l.backend_start)) \
                     RETURNING l.epoch"
                ),
                &[&view, &task, &holder.owner, &holder.ttl_ms()],
            )
            .context(at)?;
        if let Some(row) = row {
            let epoch = row.get(0);
            tx.commit().context(at)?;
            return Ok(epoch);
        }
        let holder = tx
            .query_opt(
                &format!(
                    "SELECT l.owner, l.epoch, l.expires_at::text, a.pid, \
                     coalesce(a.application_name, ''), \
                     coalesce(host(a.client_addr), 'local socket'), a.backend_start::text \
                     FROM {s}.freshet_leases l \
                     LEFT JOIN pg_stat_activity a ON a.pid = l.backend_pid \
                     WHERE l.view = $1 AND l.task = $2"
                ),
                &[&view, &task],
            )
            .context(at)?
            .map(|row| {
                let owner: Option<String> = row.get(0);
                let epoch: i64 = row.get(1);
                let expires: Option<String> = row.get(2);
                let session = match row.get::<_, Option<i32>>(3) {
                    Some(pid) => format!(
                        "PostgreSQL backend {pid} ({}) from {} since {}",
                        row.get::<_, String>(4),
                        row.get::<_, String>(5),
                        row.get::<_, Option<String>>(6).unwrap_or_default()
                    ),
                    None => "a session that has just ended".to_owned(),
                };
                let expiry = expires
                    .map(|e| format!(", its lease lapses at {e} unless renewed"))
                    .unwrap_or_default();
                format!(
                    "{} (lease epoch {epoch}), {session}{expiry}",
                    owner.unwrap_or_else(|| "no one".to_owned())
                )
            })
            .unwrap_or_else(|| "a session that has just let go; try again".to_owned());
        Err(StoreError::user(format!(
            "view '{view}' in {} is being written by another Freshet process: {holder}. \
             Stop that process, or run this one with --role query",
            self.location
        )))
    }

    /// Refuses to take a lease of `view` in this store's task layout while the view has
    /// committed in another (a whole view and its partitions' tasks, or tasks of another
    /// number of partitions, keep separate state and progress over the same results), or
    /// while a live process holds a lease of it the other way (whole or per partition).
    /// Otherwise fences every lease of the other way, one epoch on: a holder that lapsed
    /// (paused) can then never commit beside this one. Takers of one view check one after
    /// the other (a lock of the transaction keyed by the view, which commits never take,
    /// so that a taker and a commit never wait for each other in opposite orders).
    fn check_layout(
        &self,
        tx: &mut postgres::Transaction<'_>,
        view: &str,
        of: Task,
    ) -> Result<(), StoreError> {
        let s = &self.schema;
        let at = || format!("checking how view '{view}' is divided");
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&layout_lock_key(&self.location.schema, view)],
        )
        .context(at)?;
        // A drop takes the same lock: a view dropped before is not taken again.
        let exists = tx
            .query_opt(
                &format!("SELECT 1 FROM {s}.freshet_views WHERE view = $1"),
                &[&view],
            )
            .context(at)?
            .is_some();
        if !exists {
            return Err(StoreError::user(format!(
                "view '{view}' is not in {}: it was dropped",
                self.location
            )));
        }
        let whole = of == Task::Whole;
        let count = i32::try_from(of.count()).unwrap_or(i32::MAX);
        let live_sql = format!(
            "SELECT l.task, NULL::integer, 'held by ' || l.owner \
             FROM {s}.freshet_leases l \
             WHERE l.view = $1 AND (l.task = 'view') <> $2 AND l.owner IS NOT NULL \
             AND (l.expires_at IS NULL OR l.expires_at > now()) \
             AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.backend_pid \
             AND (a.backend_start IS NULL OR a.backend_start = l.backend_start)) \
             LIMIT 1"
        );
        // A live holder the other way is refused at once, without waiting for its commit
        // in flight; otherwise the other way's rows are locked (waiting for such a commit or
        // a renewal) and judged again, so that what is judged lapsed stays so.
        let mut live = tx.query_opt(&live_sql, &[&view, &whole]).context(at)?;
        if live.is_none() {
            tx.execute(
                &format!(
                    "SELECT 1 FROM {s}.freshet_leases WHERE view = $1 \
                     AND (task = 'view') <> $2 ORDER BY task FOR UPDATE"
                ),
                &[&view, &whole],
            )
            .context(at)?;
            // Sessions as they are now, not as the first look saw them (a holder may have
            // reconnected meanwhile).
            tx.execute("SELECT pg_stat_clear_snapshot()", &[])
                .context(at)?;
            live = tx.query_opt(&live_sql, &[&view, &whole]).context(at)?;
        }
        let other = match live {
            Some(row) => Some(row),
            None => {
                // The lapsed ones: fenced, so that a paused holder never commits beside
                // this one; what a commit of theirs that ended above committed is seen
                // below.
                tx.execute(
                    &format!(
                        "UPDATE {s}.freshet_leases SET owner = NULL, epoch = epoch + 1, \
                         expires_at = NULL, backend_pid = NULL, backend_start = NULL \
                         WHERE view = $1 AND (task = 'view') <> $2 AND owner IS NOT NULL"
                    ),
                    &[&view, &whole],
                )
                .context(at)?;
                tx.query_opt(
                    &format!(
                        "SELECT task, tasks, 'committed' FROM {s}.freshet_view_status \
                         WHERE view = $1 AND ((task = 'view') <> $2 OR tasks <> $3) LIMIT 1"
                    ),
                    &[&view, &whole, &count],
                )
                .context(at)?
            }
        };
        let Some(row) = other else {
            return Ok(());
        };
        let (task, tasks, how): (String, Option<i32>, String) =
            (row.get(0), row.get(1), row.get(2));
        let theirs = match (task.as_str(), tasks) {
            ("view", _) => "whole".to_owned(),
            (_, Some(n)) => format!("per partition, {n} tasks"),
            _ => "per partition".to_owned(),
        };
        let ours = match of {
            Task::Whole => "whole".to_owned(),
            Task::Partition { count, .. } => format!("per partition, {count} tasks"),
        };
        Err(StoreError::user(format!(
            "view '{view}' in {} runs {theirs} (task '{task}' {how}), so it cannot run \
             {ours}: its state and progress are kept that way. `freshet run`, `serve` and \
             `worker` run a view as its commits ran it (and a repair takes its tasks' leases); \
             drop and create the view again to run it otherwise",
            self.location
        )))
    }

    /// On a new connection: checks that this store still holds `held` and records the new
    /// session in it (renewing a worker's lease); fenced if another took it meanwhile.
    pub(super) fn keep_lease(&self, client: &mut Client, held: &Held) -> Result<(), StoreError> {
        if held.released {
            return Ok(());
        }
        let s = &self.schema;
        let holder = &self.location.holder;
        let kept = client
            .execute(
                &format!(
                    "UPDATE {s}.freshet_leases l SET backend_pid = a.pid, \
                     backend_start = a.backend_start, \
                     expires_at = now() + $5::bigint * interval '1 millisecond' \
                     FROM pg_stat_activity a WHERE a.pid = pg_backend_pid() \
                     AND l.view = $1 AND l.task = $2 AND l.owner = $3 AND l.epoch = $4"
                ),
                &[
                    &held.view,
                    &held.task.name(),
                    &holder.owner,
                    &held.epoch,
                    &holder.ttl_ms(),
                ],
            )
            .context(|| format!("checking the lease of view '{}'", held.view))?;
        if kept == 1 {
            return Ok(());
        }
        Err(fenced(&self.location.to_string(), held, None))
    }

    /// The first statement of a commit of `view`: renews its leases (the task's; every
    /// task's for a repair of a view run per partition), locking their rows, so that a
    /// take-over waits for this commit, and fails as fenced unless this store holds each
    /// at its epoch. A view this store never claimed (a scratch run) is not checked. The
    /// renewal is what keeps a lease whose row commits hold most of the time alive, since
    /// the heartbeat skips rows that are locked.
    pub(super) fn check_lease(
        &self,
        tx: &mut postgres::Transaction<'_>,
        statements: &mut HashMap<String, postgres::Statement>,
        view: &str,
    ) -> Result<(), StoreError> {
        let at = || format!("checking the lease of view '{view}'");
        let holder = &self.location.holder;
        let sql = format!(
            "UPDATE {}.freshet_leases SET \
             expires_at = now() + $5::bigint * interval '1 millisecond' \
             WHERE view = $1 AND task = $2 AND owner = $3 AND epoch = $4",
            self.schema
        );
        for held in self.held(view) {
            let task = held.task.name();
            let statement = prepared(tx, statements, &sql).context(at)?;
            let kept = tx
                .execute(
                    &statement,
                    &[&view, &task, &holder.owner, &held.epoch, &holder.ttl_ms()],
                )
                .context(at)?;
            if kept == 1 && !held.released {
                continue;
            }
            let now = tx
                .query_opt(
                    &format!(
                        "SELECT owner, epoch FROM {}.freshet_leases WHERE view = $1 \
                         AND task = $2",
                        self.schema
                    ),
                    &[&view, &task],
                )
                .context(at)?
                .map(|r| (r.get(0), r.get(1)));
            return Err(fenced(&self.location.to_string(), &held, now));
        }
        Ok(())
    }

    /// The leases this store took for `view` (one per task it claimed), in the order of
    /// their rows' key (task names as text), the order every statement that locks several
    /// of a view's lease rows takes them in.
    fn held(&self, view: &str) -> Vec<Held> {
        let mut held: Vec<Held> = self
            .claimed
            .borrow()
            .iter()
            .filter(|h| h.view == view)
            .cloned()
            .collect();
        held.sort_by_key(|h| h.task.name());
        held
    }

    /// Gives up the leases of `view` (after its last commit), so the next taker need not
    /// wait for them to lapse. Does nothing if this store holds none.
    pub(super) fn release_lease(&mut self, view: &str) -> Result<(), StoreError> {
        for held in self.held(view).into_iter().filter(|h| !h.released) {
            self.release_one(view, held.task)?;
        }
        Ok(())
    }

    /// Gives up the lease of task `task` of `view`, if this store holds it; commits
    /// checked against it are refused from then on.
    fn release_one(&self, view: &str, task: Task) -> Result<(), StoreError> {
        let Some(held) = self
            .held(view)
            .into_iter()
            .find(|h| h.task == task && !h.released)
        else {
            return Ok(());
        };
        let s = &self.schema;
        let owner = &self.location.holder.owner;
        self.with_client(|client, _| {
            client
                .execute(
                    &format!(
                        "UPDATE {s}.freshet_leases SET owner = NULL, expires_at = NULL, \
                         backend_pid = NULL, backend_start = NULL \
                         WHERE view = $1 AND task = $2 AND owner = $3 AND epoch = $4"
                    ),
                    &[&view, &task.name(), owner, &held.epoch],
                )
                .context(|| format!("releasing the lease of view '{view}'"))
        })?;
        for h in self
            .claimed
            .borrow_mut()
            .iter_mut()
            .filter(|h| h.view == view && h.task == task)
        {
            h.released = true;
        }
        tracing::info!(view, %task, epoch = held.epoch, "released the lease");
        Ok(())
    }

    /// Takes the lease of task `task` of `view` and records it as held.
    fn take(&self, view: &str, task: Task) -> Result<i64, StoreError> {
        let epoch = self.with_client(|client, _| self.take_lease(client, view, task))?;
        let mut claimed = self.claimed.borrow_mut();
        claimed.retain(|h| !(h.view == view && h.task == task));
        claimed.push(Held {
            view: view.to_owned(),
            task,
            epoch,
            released: false,
        });
        drop(claimed);
        tracing::info!(view, %task, epoch, store = %self.location, "holding the lease");
        Ok(epoch)
    }
}

/// The key of the transaction lock under which takers of `view`'s leases in `schema` check
/// how the view is divided (see `check_layout`).
pub(super) fn layout_lock_key(schema: &str, view: &str) -> i64 {
    let key = xxhash_rust::xxh3::xxh3_64(format!("freshet-layout\0{schema}\0{view}").as_bytes());
    i64::from_ne_bytes(key.to_ne_bytes())
}

/// The error of a store that no longer holds `held`; `now` is the lease as it stands.
fn fenced(location: &str, held: &Held, now: Option<(Option<String>, i64)>) -> StoreError {
    let taken = match now {
        _ if held.released => "this process released it".to_owned(),
        Some((Some(owner), epoch)) => format!("{owner} holds it at epoch {epoch}"),
        Some((None, epoch)) => {
            format!("it was released, or the view dropped, at epoch {epoch}")
        }
        None => "its lease no longer exists".to_owned(),
    };
    StoreError::Fenced {
        message: format!(
            "this process no longer holds view '{}' in {location} (it held lease epoch {}; \
             {taken}): the commit was refused and nothing of it was written",
            held.view, held.epoch
        ),
    }
}

/// [`ResultStore::claim_writer`](crate::ResultStore::claim_writer).
pub(super) fn claim_writer(store: &mut PgStore, view: &str) -> Result<Option<i64>, StoreError> {
    store.check_writable()?;
    let task = store.task;
    if let Some(held) = store
        .claimed
        .borrow()
        .iter()
        .find(|h| h.view == view && h.task == task && !h.released)
    {
        return Ok(Some(held.epoch));
    }
    store.take(view, task).map(Some)
}

/// [`ResultStore::claim_for_repair`](crate::ResultStore::claim_for_repair): the lease of
/// every task the view runs as (as its commits recorded them), all or none.
pub(super) fn claim_for_repair(store: &mut PgStore, view: &str) -> Result<(), StoreError> {
    store.check_writable()?;
    let tasks = super::read::tasks(store, view)?;
    let mut taken = Vec::new();
    for task in tasks {
        match store.take(view, task) {
            Ok(_) => taken.push(task),
            Err(e) => {
                // None: the leases this call took are given up (their sessions' end would
                // free them too).
                for task in taken {
                    if let Err(again) = store.release_one(view, task) {
                        tracing::warn!(view, %task, error = %again, "cannot give up a lease taken");
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(())
}
