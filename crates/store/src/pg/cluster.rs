//! The workers that share a store's views: each registers in `freshet_workers`, renews
//! its heartbeat and its leases ([`super::lease`]) on a connection of its own, and reads
//! who is alive and who holds what to divide the views among the live workers. `freshet
//! status --store` reads the same tables.

use postgres::Client;

use super::location::PgLocation;
use super::store::PgStore;
use crate::StoreError;
use crate::error::PostgresContext;
use crate::sql::quote_ident;

/// A registered worker as the store sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerRecord {
    /// Its identity (the owner its leases record).
    pub worker: String,
    /// The address its HTTP endpoint listens on.
    pub listen: String,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: i64,
    /// When it started, as PostgreSQL prints a timestamp.
    pub started_at: String,
    /// Whether it is live: a heartbeat within its lease's time to live, from a session
    /// that is still there (a worker killed outright is gone at once, its
    /// connection closed by its operating system).
    pub alive: bool,
}

/// A task's lease as the store sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The view.
    pub view: String,
    /// The task of the view ([`crate::Task::name`]): `view` for the whole view, `p<n>` for
    /// its partition `n`.
    pub task: String,
    /// Who holds it; `None` once released.
    pub owner: Option<String>,
    /// The fencing token: one more at every change of holder.
    pub epoch: i64,
    /// Milliseconds until it lapses (negative: lapsed); `None` if it lasts as long as its
    /// holder's session.
    pub expires_in_ms: Option<i64>,
    /// Whether the holder's PostgreSQL session is still there.
    pub session_alive: bool,
}

impl LeaseRecord {
    /// Whether someone holds it: a holder whose session lives and whose lease has not
    /// lapsed.
    pub fn held(&self) -> bool {
        self.owner.is_some() && self.session_alive && self.expires_in_ms.is_none_or(|ms| ms > 0)
    }
}

/// A connection for a worker's heartbeats and for reading the cluster's state.
pub struct Cluster {
    location: PgLocation,
    schema: String,
    client: Option<Client>,
}

impl Cluster {
    /// Connects to the store at `location`, creating its tables if needed (a worker).
    pub fn open(location: &PgLocation) -> Result<Cluster, StoreError> {
        drop(PgStore::open(location)?);
        Ok(Cluster::unchecked(location))
    }

    /// Connects to read the store at `location` only, changing nothing (`status
    /// --workers`): fails if no writer of schema version 3 or later created it.
    pub fn open_read_only(location: &PgLocation) -> Result<Cluster, StoreError> {
        drop(PgStore::open_read_only(location)?);
        let mut cluster = Cluster::unchecked(location);
        let has_workers = cluster.with(|client, s| {
            Ok(client
                .query_one(
                    "SELECT to_regclass($1) IS NOT NULL",
                    &[&format!("{s}.freshet_workers")],
                )
                .context(|| "looking for the workers table".to_owned())?
                .get::<_, bool>(0))
        })?;
        if !has_workers {
            return Err(StoreError::user(format!(
                "{location} has no workers table: no Freshet writer of schema version 3 or \
                 later has opened it"
            )));
        }
        Ok(cluster)
    }

    fn unchecked(location: &PgLocation) -> Cluster {
        Cluster {
            location: location.clone(),
            schema: quote_ident(location.schema()),
            client: None,
        }
    }

    /// Runs `f` on the connection, opening it first if needed; after a retriable error
    /// (a connection the server closed), once more on a new connection.
    fn with<T>(
        &mut self,
        mut f: impl FnMut(&mut Client, &str) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut retried = false;
        loop {
            if self.client.as_ref().is_none_or(Client::is_closed) {
                self.client = Some(self.location.connect()?);
            }
            let client = self.client.as_mut().expect("connected above");
            match f(client, &self.schema) {
                Ok(done) => return Ok(done),
                Err(e) => {
                    self.client = None;
                    if retried || !e.retriable() {
                        return Err(e);
                    }
                    retried = true;
                }
            }
        }
    }

    /// Records a heartbeat of this location's holder (registering it, with `listen`, on
    /// the first) and renews every lease it holds by its time to live.
    pub fn heartbeat(&mut self, listen: &str) -> Result<(), StoreError> {
        let holder = self.location.holder().clone();
        let Some(ttl) = holder.ttl else {
            return Err(StoreError::bug("a heartbeat needs a lease time to live"));
        };
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.with(|client, s| {
            let at = || format!("recording the heartbeat of worker '{}'", holder.owner);
            let mut tx = client.transaction().context(at)?;
            tx.execute(
                &format!(
                    "INSERT INTO {s}.freshet_workers (worker, listen, started_at, \
                     heartbeat_at, lease_ttl_ms, backend_pid, backend_start) \
                     SELECT $1, $2, now(), now(), $3, a.pid, a.backend_start \
                     FROM pg_stat_activity a WHERE a.pid = pg_backend_pid() \
                     ON CONFLICT (worker) DO UPDATE SET listen = excluded.listen, \
                     heartbeat_at = excluded.heartbeat_at, lease_ttl_ms = excluded.lease_ttl_ms, \
                     backend_pid = excluded.backend_pid, backend_start = excluded.backend_start"
                ),
                &[&holder.owner, &listen, &ttl_ms],
            )
            .context(at)?;
            tx.execute(
                &format!(
                    "UPDATE {s}.freshet_leases l SET \
                     expires_at = now() + $2::bigint * interval '1 millisecond' \
                     FROM (SELECT view, task FROM {s}.freshet_leases WHERE owner = $1 \
                     FOR NO KEY UPDATE SKIP LOCKED) mine \
                     WHERE l.view = mine.view AND l.task = mine.task"
                ),
                &[&holder.owner, &ttl_ms],
            )
            .context(at)?;
            tx.commit().context(at)
        })
    }

    /// Removes this location's holder from the workers (a clean stop, once it released
    /// its leases).
    pub fn leave(&mut self) -> Result<(), StoreError> {
        let owner = self.location.holder().owner.clone();
        self.with(|client, s| {
            client
                .execute(
                    &format!("DELETE FROM {s}.freshet_workers WHERE worker = $1"),
                    &[&owner],
                )
                .context(|| format!("removing worker '{owner}'"))?;
            Ok(())
        })
    }

    /// The catalog files the last `freshet sql` (or `serve`) on this store published
    /// (`(file name, contents)`; see
    /// [`ResultStore::publish_catalog`](crate::ResultStore::publish_catalog)): empty if none
    /// has.
    pub fn catalog(&mut self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.with(|client, s| {
            Ok(client
                .query(
                    &format!("SELECT name, doc FROM {s}.freshet_catalog ORDER BY name"),
                    &[],
                )
                .context(|| "reading the published catalog".to_owned())?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
    }

    /// The views that have committed as a whole view (not per partition): a worker keeps
    /// running them whole, as their state is kept that way.
    pub fn committed_whole(&mut self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        self.with(|client, s| {
            Ok(client
                .query(
                    &format!("SELECT view FROM {s}.freshet_view_status WHERE task = 'view'"),
                    &[],
                )
                .context(|| "reading which views ran whole".to_owned())?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    /// The registered workers by identity (live or not) and the lease of every task of
    /// every view that exists, by view and task, from one snapshot, so that a worker and
    /// the leases it took are seen together.
    pub fn snapshot(&mut self) -> Result<(Vec<WorkerRecord>, Vec<LeaseRecord>), StoreError> {
        self.with(|client, s| {
            let at = || "reading the workers and the leases".to_owned();
            let mut tx = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .context(at)?;
            let workers = tx
                .query(
                    &format!(
                        "SELECT worker, listen, \
                         (extract(epoch FROM now() - heartbeat_at) * 1000)::bigint, \
                         started_at::text, \
                         heartbeat_at > now() - lease_ttl_ms * interval '1 millisecond' \
                         AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.backend_pid \
                         AND (a.backend_start IS NULL OR a.backend_start = w.backend_start)) \
                         FROM {s}.freshet_workers w ORDER BY worker"
                    ),
                    &[],
                )
                .context(at)?
                .iter()
                .map(|r| WorkerRecord {
                    worker: r.get(0),
                    listen: r.get(1),
                    heartbeat_age_ms: r.get(2),
                    started_at: r.get(3),
                    alive: r.get(4),
                })
                .collect();
            let leases = tx
                .query(
                    &format!(
                        "SELECT l.view, l.task, l.owner, l.epoch, \
                         (extract(epoch FROM l.expires_at - now()) * 1000)::bigint, \
                         EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.backend_pid \
                         AND (a.backend_start IS NULL OR a.backend_start = l.backend_start)) \
                         FROM {s}.freshet_leases l \
                         WHERE EXISTS (SELECT 1 FROM {s}.freshet_views v WHERE v.view = l.view) \
                         ORDER BY l.view, length(l.task), l.task"
                    ),
                    &[],
                )
                .context(at)?
                .iter()
                .map(|r| LeaseRecord {
                    view: r.get(0),
                    task: r.get(1),
                    owner: r.get(2),
                    epoch: r.get(3),
                    expires_in_ms: r.get(4),
                    session_alive: r.get(5),
                })
                .collect();
            tx.commit().context(at)?;
            Ok((workers, leases))
        })
    }
}
