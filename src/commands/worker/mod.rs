//! `freshet worker`: one of several processes sharing the views of a data directory's
//! catalog, with results, state, offsets and leases in one PostgreSQL store.
//!
//! The unit of work is a task: a whole view, or, for a view that splits by partition
//! (`freshet_engine::parallelism`), its part of one partition of its streams. A heartbeat
//! thread renews the worker's registration and its leases every third of the lease's time
//! to live, on a connection of its own. The main thread runs the tasks it holds and, every
//! round, reads the catalog, the live workers and the leases again, computes who should run
//! each task ([`crate::app::assignment`]) and acts on its own part only: it hands over
//! (last commit, then release) the tasks that are now another's, and takes the tasks that
//! are now its own once no one else holds them (released, lapsed, or held by a session
//! that is gone). A task whose lease is no longer this worker's (it lapsed and another took
//! it) is stopped without a commit; a commit refused by the fencing check stops that task
//! alone and is counted. SIGINT/SIGTERM hands every task over, stops the heartbeat and
//! leaves.

mod endpoint;
mod heartbeat;

use crate::app::assignment;
use crate::app::listen;
use crate::app::signals::on_shutdown_signal;
use crate::app::supervisor::{Supervisor, caused_by};
use crate::cli::WorkerArgs;
use crate::output;
use anyhow::{Context, bail};
use freshet_engine::ViewCatalog;
use freshet_engine::parallelism::{Parallelism, parallelism};
use freshet_store::{Cluster, Holder, LeaseRecord, StoreLocation, Task};
use freshet_streams::DataDir;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a view that failed (other than by fencing) waits before this worker tries it
/// again.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(5);

/// The shortest lease a worker accepts: a heartbeat every third of it must be possible
/// over a slow connection.
const LEASE_TTL_MIN: Duration = Duration::from_secs(1);

/// What the worker tells its endpoint, refreshed every round.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    /// This worker's identity.
    pub worker: String,
    /// The lease's time to live, ms.
    pub lease_ttl_ms: u64,
    /// The live workers as of the last round.
    pub live_workers: Vec<String>,
    /// The tasks this worker runs.
    pub views: Vec<ViewReport>,
    /// Tasks this worker took since it started.
    pub views_taken: u64,
    /// Tasks handed to another worker since the worker started.
    pub views_handed_over: u64,
    /// Commits refused because another worker had taken the view over.
    pub fenced_commits: u64,
    /// Tasks assigned to this worker that it cannot run now, by key (`view` or
    /// `view/p<n>`), with the last error.
    pub failed: BTreeMap<String, String>,
    /// Tasks stopped because their lease was found to be another's.
    pub leases_lost: u64,
    /// Heartbeats that could not be recorded since the worker started.
    pub heartbeat_failures: u64,
}

/// One task this worker runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewReport {
    /// The view.
    pub view: String,
    /// Its task: `view` for the whole view, `p<n>` for its partition `n`.
    pub task: String,
    /// The epoch of this worker's lease (the fencing token its commits carry).
    pub epoch: Option<i64>,
    /// Events the task read since the view was created.
    pub input_events: u64,
    /// Events in the task's partitions it has not read yet, as of the last round.
    pub lag_events: u64,
    /// Result rows written since the view was created.
    pub rows_written: u64,
    /// The view's watermark (the least over its inputs), ms since the epoch.
    pub watermark_ms: Option<i64>,
    /// Whether it has read every partition to its end.
    pub caught_up: bool,
    /// Commit durations over the recent commits, ms.
    pub commit_ms_p50: Option<f64>,
    /// The same, 99th percentile.
    pub commit_ms_p99: Option<f64>,
}

pub fn run(
    data_dir: &Path,
    location: &StoreLocation,
    args: WorkerArgs,
) -> anyhow::Result<ExitCode> {
    let StoreLocation::Postgres(pg) = location else {
        bail!(
            "a worker needs a PostgreSQL result store (--store postgres://...): workers share \
             results, state, offsets and leases through it"
        );
    };
    if args.lease_ttl < LEASE_TTL_MIN {
        bail!("--lease-ttl must be at least {LEASE_TTL_MIN:?}");
    }
    let addrs = listen::resolve(&args.listen)?;
    listen::check(&args.listen, &addrs, false, args.insecure_no_auth)?;
    let id = match &args.id {
        Some(id) => check_id(id)?,
        None => Holder::of_process().owner,
    };
    let holder = Holder {
        owner: id.clone(),
        ttl: Some(args.lease_ttl),
    };
    let pg = pg.as_ref().clone().with_holder(holder);
    let location = StoreLocation::Postgres(Box::new(pg.clone()));
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("workers").join(id.replace(':', "_")));
    // The worker runs what its own copy of the catalog lists: the catalog `freshet sql`
    // published to the store, else the data directory's own (refreshed every round).
    let mut cluster = Cluster::open(&pg)?;
    let mirror = work_dir.join("catalog");
    // The copy is rewritten from its source before it is read: a copy a former run left
    // is not trusted.
    if !follow_catalog(&mut cluster, data_dir, &mirror)? {
        bail!(
            "no streams to run: {location} holds no catalog and {} holds none either; declare \
             streams and views with `freshet sql --store <this store>`, which publishes them \
             to the store for every worker",
            data_dir.display()
        );
    }
    let dir = DataDir::open_worker(&work_dir, &mirror)
        .with_context(|| format!("cannot open the worker's directory {}", work_dir.display()))?;

    let report = Arc::new(Mutex::new(Report {
        worker: id.clone(),
        lease_ttl_ms: args.lease_ttl.as_millis() as u64,
        ..Report::default()
    }));
    let stop = Arc::new(AtomicBool::new(false));
    on_shutdown_signal(stop.clone())?;
    let endpoint_stop = Arc::new(AtomicBool::new(false));
    let (endpoint, addr) = endpoint::spawn(&addrs, report.clone(), endpoint_stop.clone())?;
    refuse_live_twin(&mut cluster, &id, args.lease_ttl)?;
    let heartbeat = heartbeat::Heartbeat::start(
        Cluster::open(&pg)?,
        addr.to_string(),
        args.lease_ttl,
        report.clone(),
    )?;
    output::line(format!(
        "freshet worker {id}, lease {}; Ctrl-C hands its views over and stops",
        freshet_streams::duration::format_duration(args.lease_ttl)
    ));
    output::line(format!("freshet serving on http://{addr}"));

    let mut worker = Worker {
        id,
        ttl: args.lease_ttl,
        dir: &dir,
        data_dir,
        mirror,
        supervisor: Supervisor::empty(&dir, &location),
        cluster,
        report,
        failed: HashMap::new(),
        splits: HashMap::new(),
        heartbeat: &heartbeat,
    };
    worker.supervisor.retry_until(stop.clone());
    let result = worker.run(&stop);
    // Views first, while the heartbeat still renews their leases; then the heartbeat, so
    // that none lands after the worker left.
    worker.hand_over_all();
    heartbeat.stop();
    let left = worker.cluster.leave().context("cannot remove the worker");
    endpoint_stop.store(true, Ordering::SeqCst);
    let _ = endpoint.join();
    result?;
    left?;
    output::line("stopped; every view handed over");
    Ok(ExitCode::SUCCESS)
}

/// Refuses to start while a live worker has the same id (two processes under one id would
/// take views from each other forever). A worker just killed is waited for: its sessions
/// end within moments, while a live twin stays live for a whole lease.
fn refuse_live_twin(cluster: &mut Cluster, id: &str, ttl: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + ttl;
    loop {
        let (workers, _) = cluster.snapshot()?;
        let Some(twin) = workers.into_iter().find(|w| w.worker == id && w.alive) else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            bail!(
                "a live worker already has the id '{id}' (listening on {}, started {}): give \
                 each worker its own --id",
                twin.listen,
                twin.started_at
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A worker id: letters, digits, `.`, `_`, `:` and `-`, as it names a directory and a
/// label.
fn check_id(id: &str) -> anyhow::Result<String> {
    let fine = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if !fine {
        bail!(
            "the worker id '{id}' must be 1 to 128 letters, digits, '.', '_', ':' or '-' (and \
             not '.' or '..')"
        );
    }
    Ok(id.to_owned())
}

fn lock(report: &Mutex<Report>) -> std::sync::MutexGuard<'_, Report> {
    report.lock().unwrap_or_else(|e| e.into_inner())
}

/// Copies the catalog the worker follows into `mirror`: the one published to the store,
/// else, while the store holds none, `data_dir`'s own files. Returns false (and leaves
/// the copy as it was) if neither exists.
fn follow_catalog(cluster: &mut Cluster, data_dir: &Path, mirror: &Path) -> anyhow::Result<bool> {
    let mut files = cluster.catalog()?;
    if files.is_empty() {
        for name in [freshet_streams::catalog::FILE, freshet_engine::views::FILE] {
            let path = data_dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => files.push((name.to_owned(), bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            }
        }
    }
    if files.is_empty() {
        return Ok(false);
    }
    check_catalog(&files)?;
    copy_catalog(mirror, &files)?;
    Ok(true)
}

/// Refuses a catalog the worker would not run safely: files that do not parse, or a
/// stream name that `CREATE STREAM` would not take (names become directories).
fn check_catalog(files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    for (name, bytes) in files {
        if name == freshet_streams::catalog::FILE {
            let catalog = freshet_streams::catalog::Catalog::parse(bytes)
                .map_err(|why| anyhow::anyhow!("the published {name} cannot be read: {why}"))?;
            for stream in &catalog.streams {
                freshet_streams::ddl::validate_name(&stream.name)
                    .with_context(|| format!("the published {name} names a stream badly"))?;
            }
        } else if name == freshet_engine::views::FILE {
            let views = serde_json::from_slice::<ViewCatalog>(bytes)
                .with_context(|| format!("the published {name} does not parse"))?;
            if views.version != 1 {
                bail!(
                    "the published {name} has format version {}, which this build does not \
                     read (it reads 1)",
                    views.version
                );
            }
        }
    }
    Ok(())
}

/// Makes `mirror` hold the catalog files `files`: each written only if it changed,
/// atomically; a known file `files` lacks removed. Only the streams' and the views' files
/// are ever written.
fn copy_catalog(mirror: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(mirror)
        .with_context(|| format!("cannot create {}", mirror.display()))?;
    for name in [freshet_streams::catalog::FILE, freshet_engine::views::FILE] {
        let path = mirror.join(name);
        let now = std::fs::read(&path).ok();
        match files.iter().find(|(n, _)| n == name) {
            Some((_, bytes)) if now.as_ref() != Some(bytes) => {
                freshet_types::files::write_atomically(mirror, name, bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            Some(_) => {}
            None if now.is_some() => std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?,
            None => {}
        }
    }
    Ok(())
}

/// What decides how a view splits: its name, its query, and every stream's name and
/// partitions.
type SplitKey = (String, String, Vec<(String, u32)>);

/// The key of a task in the assignment, the failures and the report: the view's name for
/// the whole view (`task` is `view`), `view/p<n>` for its partition `n`.
fn task_key(view: &str, task: &str) -> String {
    if task == "view" {
        view.to_owned()
    } else {
        format!("{view}/{task}")
    }
}

/// The worker's main thread.
struct Worker<'a> {
    id: String,
    ttl: Duration,
    dir: &'a DataDir,
    /// The data directory whose catalog the worker follows while the store holds none.
    data_dir: &'a Path,
    /// The worker's copy of the catalog it follows, refreshed every round.
    mirror: PathBuf,
    supervisor: Supervisor<'a>,
    cluster: Cluster,
    report: Arc<Mutex<Report>>,
    /// Tasks assigned here that could not run, by key, with when and why: tried again
    /// after [`RETRY_FAILED_AFTER`].
    failed: HashMap<String, (Instant, String)>,
    /// How many partitions each view splits into (1: it runs whole), by name, query and
    /// the streams' partitions, so that a view is compiled once to learn it.
    splits: HashMap<SplitKey, u32>,
    heartbeat: &'a heartbeat::Heartbeat,
}

impl Worker<'_> {
    fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        let every = (self.ttl / 4).max(Duration::from_millis(200));
        let mut next_round = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            self.heartbeat.alive();
            if Instant::now() >= next_round {
                if let Err(e) = self.round() {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "rebalancing round failed; trying again"
                    );
                }
                next_round = Instant::now() + every;
            }
            let (events, failed) = self.supervisor.turn_each();
            for (view, task, e) in failed {
                self.failed(&view, task, &e);
            }
            if events == 0 {
                self.supervisor.wait_for_data();
            }
        }
        Ok(())
    }

    /// Records a task that stopped on an error.
    fn failed(&mut self, view: &str, task: Task, e: &freshet_engine::EngineError) {
        if e.fenced() {
            tracing::warn!(view, %task, error = %e, "commit fenced: another worker holds the task");
            lock(&self.report).fenced_commits += 1;
            return;
        }
        tracing::error!(view, %task, error = %e, "task failed; trying again later");
        self.failed.insert(
            task_key(view, &task.name()),
            (Instant::now(), e.to_string()),
        );
    }

    /// The tasks of every view of the catalog, by key: one per partition for a view that
    /// splits by partition (unless it has committed whole: its state is kept that way),
    /// else the whole view.
    fn tasks(&mut self) -> anyhow::Result<BTreeMap<String, (String, Task)>> {
        let catalog = ViewCatalog::load(self.dir.catalog_root())?;
        let whole = self.cluster.committed_whole()?;
        let streams = self.dir.streams();
        let layout: Vec<(String, u32)> = streams
            .iter()
            .map(|s| (s.name.clone(), s.partitions))
            .collect();
        let mut seen = Vec::new();
        let mut tasks = BTreeMap::new();
        for def in &catalog.views {
            let key = (def.name.clone(), def.query.clone(), layout.clone());
            let split = match self.splits.get(&key) {
                Some(&split) => split,
                None => match freshet_engine::compile_view_over(&streams, &catalog, def) {
                    Ok(compiled) => {
                        let split = match parallelism(&compiled.root, &streams) {
                            Parallelism::PerPartition { partitions, .. } => partitions,
                            Parallelism::Single { .. } => 1,
                        };
                        self.splits.insert(key.clone(), split);
                        split
                    }
                    // Not remembered (the catalog may be half copied): it runs whole
                    // until it compiles, and starting it says why it does not.
                    Err(_) => 1,
                },
            };
            seen.push(key);
            if split <= 1 || whole.contains(&def.name) {
                tasks.insert(def.name.clone(), (def.name.clone(), Task::Whole));
                continue;
            }
            for index in 0..split {
                let task = Task::Partition {
                    index,
                    count: split,
                };
                tasks.insert(task_key(&def.name, &task.name()), (def.name.clone(), task));
            }
        }
        self.splits.retain(|key, _| seen.contains(key));
        Ok(tasks)
    }

    /// One rebalancing round (see the module's description).
    fn round(&mut self) -> anyhow::Result<()> {
        // A catalog that cannot be followed now leaves the last good copy in force, so
        // that tasks still move between live workers.
        if let Err(e) = follow_catalog(&mut self.cluster, self.data_dir, &self.mirror) {
            tracing::warn!(
                error = format!("{e:#}"),
                "cannot follow the catalog; keeping the last copy"
            );
        }
        self.dir.reload_catalog()?;
        let tasks = self.tasks()?;
        let keys: Vec<String> = tasks.keys().cloned().collect();
        let (workers, leases) = self.cluster.snapshot()?;
        let mut live: Vec<String> = workers
            .into_iter()
            .filter(|w| w.alive)
            .map(|w| w.worker)
            .collect();
        if !live.contains(&self.id) {
            // Its own heartbeat is late: it still runs until its leases lapse.
            live.push(self.id.clone());
        }
        let holders: HashMap<String, String> = leases
            .iter()
            .filter(|l| l.held())
            .filter_map(|l| Some((task_key(&l.view, &l.task), l.owner.clone()?)))
            .filter(|(_, owner)| live.contains(owner))
            .collect();
        let plan = assignment::assign(&keys, &live, &holders);
        self.stop_lost(&tasks, &leases);
        for (view, task) in self.supervisor.running() {
            if plan.get(&task_key(&view, &task.name())) != Some(&self.id) {
                self.hand_over(&view, task);
            }
        }
        let running: Vec<String> = self
            .supervisor
            .running()
            .iter()
            .map(|(view, task)| task_key(view, &task.name()))
            .collect();
        let mine: Vec<String> = plan
            .into_iter()
            .filter(|(_, w)| *w == self.id)
            .map(|(key, _)| key)
            .collect();
        self.failed.retain(|key, _| mine.contains(key));
        for key in &mine {
            let held_by_other = holders.get(key).is_some_and(|h| *h != self.id);
            let waiting = self
                .failed
                .get(key)
                .is_some_and(|(at, _)| at.elapsed() < RETRY_FAILED_AFTER);
            if running.contains(key) || held_by_other || waiting {
                continue;
            }
            self.heartbeat.alive();
            let (view, task) = tasks[key].clone();
            self.take(key, &view, task);
        }
        self.publish(live);
        Ok(())
    }

    /// Stops, without a commit, every running task that is no longer one of the
    /// catalog's (its view was dropped, or now runs in another layout) or whose lease is no
    /// longer this worker's at the epoch it took (it lapsed and another took it): its
    /// commits would be refused.
    fn stop_lost(&mut self, tasks: &BTreeMap<String, (String, Task)>, leases: &[LeaseRecord]) {
        // A view dropped and created again under its name runs its new definition.
        let catalog = ViewCatalog::load(self.dir.catalog_root()).ok();
        let running: Vec<(String, Task, Option<i64>, bool)> = self
            .supervisor
            .runners()
            .iter()
            .map(|r| {
                // A copy that cannot be read now judges nothing.
                let current = catalog
                    .as_ref()
                    .is_none_or(|c| c.get(&r.def().name) == Some(r.def()));
                (r.def().name.clone(), r.task(), r.lease_epoch(), current)
            })
            .collect();
        for (view, task, epoch, current) in running {
            let name = task.name();
            let ours = leases.iter().any(|l| {
                l.view == view
                    && l.task == name
                    && l.owner.as_deref() == Some(self.id.as_str())
                    && Some(l.epoch) == epoch
            });
            let listed = current && tasks.contains_key(&task_key(&view, &name));
            if listed && ours {
                continue;
            }
            self.supervisor.abandon(&view, task);
            if listed {
                tracing::warn!(view, %task, "the task's lease is another's now; stopped it");
                lock(&self.report).leases_lost += 1;
            } else {
                tracing::info!(
                    view,
                    %task,
                    "the view was dropped, defined again or divided otherwise; stopped the task"
                );
            }
        }
    }

    /// Starts a task under a new lease.
    fn take(&mut self, key: &str, view: &str, task: Task) {
        let started = self.supervisor.start_task(view, task).and_then(|()| {
            if self.published_again(view, task)? {
                self.supervisor.abandon(view, task);
                bail!("the view was defined again since this round read the catalog");
            }
            Ok(())
        });
        match started {
            Ok(()) => {
                tracing::info!(view, %task, worker = %self.id, "took the task");
                self.failed.remove(key);
                lock(&self.report).views_taken += 1;
            }
            // Another worker took it first, or it cannot start: tried again later.
            Err(e) => {
                tracing::info!(view, %task, error = format!("{e:#}"), "cannot take the task now");
                self.failed
                    .insert(key.to_owned(), (Instant::now(), format!("{e:#}")));
            }
        }
    }

    /// Whether the catalog published now defines `view` otherwise than the task just
    /// started runs it (or not at all): it was dropped, or dropped and created again,
    /// after this round read the catalog and before the task took its lease. (Once a task
    /// holds its lease, a drop fences it.) False while the store holds no catalog.
    fn published_again(&mut self, view: &str, task: Task) -> anyhow::Result<bool> {
        let published = self.cluster.catalog()?;
        let Some((_, bytes)) = published
            .iter()
            .find(|(name, _)| name == freshet_engine::views::FILE)
        else {
            return Ok(false);
        };
        let now: ViewCatalog =
            serde_json::from_slice(bytes).context("the published views do not parse")?;
        Ok(self
            .supervisor
            .runners()
            .iter()
            .find(|r| r.def().name == view && r.task() == task)
            .is_some_and(|r| now.get(view) != Some(r.def())))
    }

    fn hand_over(&mut self, view: &str, task: Task) {
        self.heartbeat.alive();
        match self.supervisor.hand_over(view, task) {
            Ok(()) => {
                tracing::info!(view, %task, worker = %self.id, "handed the task over");
                lock(&self.report).views_handed_over += 1;
            }
            Err(e) => {
                if caused_by(&e, freshet_engine::EngineError::fenced) {
                    lock(&self.report).fenced_commits += 1;
                }
                tracing::warn!(
                    view,
                    %task,
                    error = format!("{e:#}"),
                    "the task's last commit failed; it resumes from its previous one"
                );
            }
        }
    }

    /// Refreshes the report the endpoint serves.
    fn publish(&mut self, live: Vec<String>) {
        let views = self
            .supervisor
            .runners()
            .iter()
            .map(|r| ViewReport {
                view: r.def().name.clone(),
                task: r.task().name(),
                epoch: r.lease_epoch(),
                input_events: r.stats().input_events,
                lag_events: r.lag_events(),
                rows_written: r.stats().rows_written,
                watermark_ms: r.stats().watermarks.values().min().copied(),
                caught_up: r.caught_up(),
                commit_ms_p50: r.commit_ms_quantile(0.5),
                commit_ms_p99: r.commit_ms_quantile(0.99),
            })
            .collect();
        let mut report = lock(&self.report);
        report.live_workers = live;
        report.views = views;
        report.failed = self
            .failed
            .iter()
            .map(|(key, (_, why))| (key.clone(), why.clone()))
            .collect();
    }

    /// Hands every running task over (the worker stops).
    fn hand_over_all(&mut self) {
        for (view, task) in self.supervisor.running() {
            self.hand_over(&view, task);
        }
    }
}
