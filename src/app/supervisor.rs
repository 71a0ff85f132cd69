//! The supervisor of a process's views: opens them, gives each its turn, applies statements
//! between turns, commits them all, and shuts them down, the same way for `freshet run`
//! and `freshet serve` (and whatever runs views next).
//!
//! Shutdown has one path: every view commits once more; a commit that cannot land because
//! the result store is unavailable (an outage) is given up, since the view resumes from its
//! last commit on restart and nothing is lost or doubled. No view commits after a commit
//! it lost: that would record offsets past rows and state it never wrote.

use anyhow::Context;
use freshet_engine::statement::{self, LazyStore, Statement};
use freshet_engine::{EngineError, SystemClock, ViewCatalog, ViewRunner};
use freshet_store::{DiscardStore, StoreLocation, Task};
use freshet_streams::DataDir;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long an idle loop waits for new data before checking commits and `stop`.
const IDLE_WAIT: Duration = Duration::from_millis(20);

/// The views a process runs.
pub struct Supervisor<'a> {
    dir: &'a DataDir,
    location: &'a StoreLocation,
    runners: Vec<ViewRunner>,
    /// The store statements use, opened on the first that needs it and kept.
    store: LazyStore<'a>,
    /// While [`Supervisor::run`] runs: set to stop; views wait out store outages until then.
    stop: Option<Arc<AtomicBool>>,
}

impl<'a> Supervisor<'a> {
    /// Opens the views named in `names` (every view of the catalog if empty), each with its
    /// own connection to the result store, resumed from its last commit; with `discard`,
    /// each on a [`DiscardStore`] from the start of the log.
    pub fn open(
        dir: &'a DataDir,
        location: &'a StoreLocation,
        names: &[String],
        discard: bool,
    ) -> anyhow::Result<Supervisor<'a>> {
        let mut supervisor = Supervisor {
            dir,
            location,
            runners: Vec::new(),
            store: LazyStore::new(location),
            stop: None,
        };
        supervisor.start(names, discard)?;
        Ok(supervisor)
    }

    /// Opens no view yet: a worker starts and hands over tasks one at a time
    /// ([`Supervisor::start_task`], [`Supervisor::hand_over`]).
    pub fn empty(dir: &'a DataDir, location: &'a StoreLocation) -> Supervisor<'a> {
        Supervisor {
            dir,
            location,
            runners: Vec::new(),
            store: LazyStore::new(location),
            stop: None,
        }
    }

    /// Starts task `task` of view `name` (resumed from its last commit) unless it runs.
    pub fn start_task(&mut self, name: &str, task: Task) -> anyhow::Result<()> {
        if self.position(name, task).is_some() {
            return Ok(());
        }
        let catalog = ViewCatalog::load(self.dir.catalog_root())?;
        let Some(def) = catalog.get(name) else {
            anyhow::bail!("unknown view '{name}'");
        };
        let runner = self.open_task(&catalog, def, self.location.open()?, task)?;
        self.runners.push(runner);
        Ok(())
    }

    /// Opens task `task` of `def` on `store`, resumed from its last commit, waiting out
    /// store outages as the supervisor's other views do.
    fn open_task(
        &self,
        catalog: &ViewCatalog,
        def: &freshet_engine::ViewDef,
        store: Box<dyn freshet_store::ResultStore>,
        task: Task,
    ) -> anyhow::Result<ViewRunner> {
        let mut runner =
            ViewRunner::open_task(self.dir, catalog, def, store, Arc::new(SystemClock), task)
                .with_context(|| format!("cannot start view '{}' ({task})", def.name))?;
        if let Some(stop) = &self.stop {
            runner.retry_until(stop.clone());
        }
        Ok(runner)
    }

    /// The running tasks: each view with the part of it that runs here.
    pub fn running(&self) -> Vec<(String, Task)> {
        self.runners
            .iter()
            .map(|r| (r.def().name.clone(), r.task()))
            .collect()
    }

    fn position(&self, name: &str, task: Task) -> Option<usize> {
        self.runners
            .iter()
            .position(|r| r.def().name == name && r.task() == task)
    }

    /// Stops task `task` of view `name` so that another process may write it at once: its
    /// last commit, then it gives up its lease. Does nothing if it does not run.
    pub fn hand_over(&mut self, name: &str, task: Task) -> anyhow::Result<()> {
        let Some(at) = self.position(name, task) else {
            return Ok(());
        };
        self.runners
            .remove(at)
            .hand_over()
            .with_context(|| format!("cannot hand view '{name}' ({task}) over"))
    }

    /// Stops task `task` of view `name` without a commit (its lease is another's, or the
    /// view was dropped: a commit would be refused). Does nothing if it does not run.
    pub fn abandon(&mut self, name: &str, task: Task) {
        if let Some(at) = self.position(name, task) {
            self.runners.remove(at);
        }
    }

    /// Views wait out store outages until `stop` is set, instead of failing after a few
    /// attempts (a long-running process).
    pub fn retry_until(&mut self, stop: Arc<AtomicBool>) {
        for r in &mut self.runners {
            r.retry_until(stop.clone());
        }
        self.stop = Some(stop);
    }

    /// One turn of every task, where a task that fails stops alone (a worker's): returns
    /// the events read and each task that failed, removed, with its error.
    pub fn turn_each(&mut self) -> (u64, Vec<(String, Task, EngineError)>) {
        let mut events = 0;
        let mut failed = Vec::new();
        self.runners.retain_mut(|r| match r.tick() {
            Ok(n) => {
                events += n;
                true
            }
            Err(e) => {
                failed.push((r.def().name.clone(), r.task(), e));
                false
            }
        });
        (events, failed)
    }

    fn start(&mut self, names: &[String], discard: bool) -> anyhow::Result<()> {
        let catalog = ViewCatalog::load(self.dir.catalog_root())?;
        for name in names {
            if catalog.get(name).is_none() {
                anyhow::bail!("unknown view '{name}'");
            }
        }
        let clock = Arc::new(SystemClock);
        let running: Vec<String> = self.runners.iter().map(|r| r.def().name.clone()).collect();
        for def in catalog
            .views
            .iter()
            .filter(|v| names.is_empty() || names.contains(&v.name))
            .filter(|v| !running.contains(&v.name))
        {
            if discard {
                let store = Box::new(DiscardStore::new());
                let runner = ViewRunner::open(self.dir, &catalog, def, store, clock.clone())
                    .with_context(|| format!("cannot start view '{}'", def.name))?;
                self.runners.push(runner);
                continue;
            }
            // A view runs as its commits have run it: whole, or (workers ran it) one task
            // per partition.
            let mut first = Some(self.location.open()?);
            let tasks = first.as_ref().expect("opened").tasks(&def.name)?;
            // Every task or none: a view half started would never start the rest.
            let mut started = Vec::new();
            for task in tasks {
                let store = match first.take() {
                    Some(store) => store,
                    None => self.location.open()?,
                };
                started.push(self.open_task(&catalog, def, store, task)?);
            }
            self.runners.append(&mut started);
        }
        Ok(())
    }

    /// The running views.
    pub fn runners(&mut self) -> &mut [ViewRunner] {
        &mut self.runners
    }

    /// One turn of every view: streaming views read, process and commit when due; periodic
    /// (micro-batch, batch) views run when their period has passed. Returns the events read.
    pub fn turn(&mut self) -> anyhow::Result<u64> {
        let mut events = 0;
        for r in &mut self.runners {
            events += r
                .tick()
                .with_context(|| format!("view '{}' failed", r.def().name))?;
        }
        Ok(events)
    }

    /// Runs the views until `stop` is set, calling `between` before every turn (to apply
    /// statements), then shuts them down. Meanwhile the views wait out store outages.
    /// Returns whether every view made its final commit (false: the result store was
    /// unavailable, and the views resume from their last commits).
    pub fn run(
        &mut self,
        stop: Arc<AtomicBool>,
        mut between: impl FnMut(&mut Self),
    ) -> anyhow::Result<bool> {
        self.retry_until(stop.clone());
        while !stop.load(Ordering::SeqCst) {
            between(self);
            match self.turn() {
                Ok(0) => self.wait_for_data(),
                Ok(_) => {}
                // A commit waiting out a store outage gave up because the process stops.
                Err(e) if stop.load(Ordering::SeqCst) && store_unavailable(&e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "final commits skipped: the result store is unavailable; the views \
                         resume from their last commits"
                    );
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        self.shutdown()
    }

    /// Nothing was new: wait a little for data, so that commits stay on time and a stop
    /// request is seen within [`IDLE_WAIT`].
    pub fn wait_for_data(&self) {
        match self.runners.first() {
            Some(r) => r.wait_for_data(IDLE_WAIT),
            None => std::thread::sleep(IDLE_WAIT),
        }
    }

    /// Every view's last commit (see the module's description); whether all landed.
    fn shutdown(&mut self) -> anyhow::Result<bool> {
        let mut all = true;
        for r in &mut self.runners {
            match r.commit().and_then(|_| r.flush()) {
                Ok(()) => {}
                Err(e) if e.store_unavailable() => {
                    all = false;
                    tracing::warn!(
                        view = %r.def().name,
                        error = %e,
                        "final commit skipped: the result store is unavailable; the view \
                         resumes from its last commit"
                    );
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("view '{}' failed", r.def().name));
                }
            }
        }
        Ok(all)
    }

    /// Runs a `COPY ... TO 'file'`: the query in batch over the log and the stored views
    /// (what the views have committed), into the file.
    pub fn copy(&self, copy: &freshet_engine::copy::CopyStatement) -> anyhow::Result<String> {
        super::batch_query::copy(self.dir.root(), self.location, copy)
    }

    /// Applies `statement` between two turns: a view is stopped (and committed) before it
    /// is dropped, and a created view starts at once. Returns the text to show.
    pub fn execute(&mut self, statement: Statement) -> anyhow::Result<String> {
        let dropped = statement.dropped_view().map(str::to_owned);
        let created = statement.created_view().map(str::to_owned);
        let mut stopped = false;
        if let Some(name) = &dropped {
            // Every task of the view.
            while let Some(at) = self.runners.iter().position(|r| &r.def().name == name) {
                self.runners[at].commit()?;
                self.runners[at].flush()?;
                self.runners.remove(at);
                stopped = true;
            }
        }
        match statement::execute(self.dir, &mut self.store, statement) {
            Ok(outcome) => {
                if let Some(name) = created {
                    self.start(&[name], false)?;
                }
                Ok(outcome)
            }
            Err(e) => {
                // A refused drop (a view reads it): the view runs on.
                if let Some(name) = dropped.filter(|_| stopped)
                    && let Err(again) = self.start(std::slice::from_ref(&name), false)
                {
                    tracing::error!(view = %name, error = format!("{again:#}"),
                        "cannot restart the view after its drop was refused");
                }
                Err(e.into())
            }
        }
    }
}

/// Whether `e` is a result store failure that may pass (an outage).
fn store_unavailable(e: &anyhow::Error) -> bool {
    caused_by(e, EngineError::store_unavailable)
}

/// Whether an engine error in `e`'s chain satisfies `what` (such as
/// [`EngineError::fenced`]).
pub fn caused_by(e: &anyhow::Error, what: impl Fn(&EngineError) -> bool) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<EngineError>().is_some_and(&what))
}
