//! The view runner's state machine.
//!
//! ```text
//!        open: the state the last commit recorded
//!     ┌─────────────────┼─────────────────────────┐
//!     ▼                 ▼                         ▼
//!  Operators ── enter_batch_runs ──► BatchRuns   Ended
//!     │  ▲                              │   (watermark +∞,
//!     │  └──── leave_batch_runs ◄───────┘    every window final)
//!     └─────── end_streams ──────────────────────►
//! ```
//!
//! Each state is entered by one function, which checks its precondition:
//! [`ViewRunner::open`] (whichever state the last commit recorded), `enter_batch_runs`,
//! `leave_batch_runs` and `end_streams` (from [`ViewRunner::drain`]). When the view works (streaming,
//! or a periodic run that spans several turns of the loop) is the schedule's business
//! (`schedule`); what every state shares is the data path (`dataflow`: inputs, operators,
//! checkpoint).

use super::batch_run;
use super::blueprint::{Blueprint, consumer_name, result_table};
use super::checkpoint::{self, Checkpointer, OperatorCheckpoint, Progressed};
use super::dataflow::Dataflow;
use super::inputs::{Inputs, PartInput, StreamInput, part_key};
use super::schedule::Schedule;
use crate::clock::Clock;
use crate::compile::Compiled;
use crate::error::{EngineError, Result};
use crate::parallelism::{Parallelism, parallelism};
use crate::planner::{self, Plan};
use crate::views::{ViewCatalog, ViewDef};
use crate::watermarks::StreamWatermarks;
use crate::{Ctx, Stats};
use freshet_store::{ResultStore, Task};
use freshet_streams::DataDir;
use freshet_types::limits::BATCH_RUN_EVENTS_MAX;
use freshet_types::{EventTime, IngestTime, Offset, Watermark};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Where a view runner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The streaming operators hold the view's state and run it: continuously under
    /// streaming, in periodic runs otherwise.
    Operators,
    /// DataFusion batch runs run the view; the operators hold no state and the log is
    /// kept from the first frame an open window needs (`Stats::state_in_log`).
    BatchRuns,
    /// The streams have ended: the watermark is +∞ and every window is final.
    Ended,
}

/// Whether DataFusion can run a view's batch mode.
enum BatchSupport {
    /// It can, reading this far (ms) before the window watermark.
    DataFusion {
        /// The sum of the view's window lengths.
        lookback_ms: i64,
    },
    /// It cannot, for this reason: the operators run its batch mode.
    Operators(String),
}

/// A view being run.
pub struct ViewRunner {
    blueprint: Blueprint,
    flow: Dataflow,
    schedule: Schedule,
    phase: Phase,
    /// Decided from the compiled view when it is opened.
    batch_support: BatchSupport,
    /// Why entering batch runs failed at run time (retention may have removed events an
    /// open window needs), if it did: the operators run batch mode from then on.
    batch_refused: Option<String>,
    last_commit_ms: i64,
    /// When provisional rows were last emitted (`emit = 'on_update'`); `None` until the
    /// first commit after opening, which emits whatever changed since the checkpoint.
    last_emit_ms: Option<i64>,
    /// The epoch of the lease the store took for this view, if its store has leases.
    lease_epoch: Option<i64>,
    /// The part of the view this runner runs.
    task: Task,
}

impl ViewRunner {
    /// Open `def`: compile it, create its results table if needed, and resume from the
    /// store's last commit (or from the start of the log: a new view backfills).
    pub fn open(
        data: &DataDir,
        views: &ViewCatalog,
        def: &ViewDef,
        store: Box<dyn ResultStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<ViewRunner> {
        ViewRunner::open_task(data, views, def, store, clock, Task::Whole)
    }

    /// Open task `task` of `def` as [`ViewRunner::open`] opens the whole view. A task of
    /// one partition reads that partition of every stream the view reads, keeps its own
    /// state, progress and watermarks (so lateness is judged against its partition's
    /// watermark), and runs its batch mode with the operators; the view must split by
    /// partition ([`crate::parallelism`]) into `count` tasks.
    pub fn open_task(
        data: &DataDir,
        views: &ViewCatalog,
        def: &ViewDef,
        mut store: Box<dyn ResultStore>,
        clock: Arc<dyn Clock>,
        task: Task,
    ) -> Result<ViewRunner> {
        let blueprint = Blueprint {
            def: def.clone(),
            streams: data.streams(),
            earlier: views.earlier_than(&def.name),
            root_dir: data.root().to_path_buf(),
        };
        let mut compiled = blueprint.compile()?;
        if let Task::Partition { count, .. } = task {
            match parallelism(&compiled.root, &blueprint.streams) {
                Parallelism::PerPartition { partitions, .. } if partitions == count => {}
                other => {
                    return Err(EngineError::Input(format!(
                        "view '{}' cannot run as {task}: it runs {other}",
                        def.name
                    )));
                }
            }
        }
        store.set_task(task)?;
        // Every input opens before anything is written or claimed: a stream this process
        // cannot read (gone, or on a log it cannot reach) fails the view here.
        let mut inputs = Vec::new();
        compiled.root.streams(&mut inputs);
        for name in &inputs {
            data.stream(name)?;
        }
        store.create_view(&result_table(def, &compiled))?;
        // Before the checkpoint is read: another writer could move it on afterwards.
        let lease_epoch = store.claim_writer(&def.name)?;
        let restored = checkpoint::restore(store.load(&def.name)?)?;
        let inputs = open_inputs(data, def, &compiled, &restored, task)?;
        compiled.root.restore(&restored.state)?;
        let now = clock.now_ms();
        let phase = if restored.ended {
            Phase::Ended
        } else if restored.stats.state_in_log {
            Phase::BatchRuns
        } else {
            Phase::Operators
        };
        let batch_support = match batch_run::support(&compiled, def) {
            _ if task != Task::Whole => BatchSupport::Operators(format!(
                "it runs as one task per partition (this is {task}), and DataFusion's batch \
                 runs read every partition"
            )),
            Ok(lookback_ms) => BatchSupport::DataFusion { lookback_ms },
            Err(why) => BatchSupport::Operators(why),
        };
        let ctx = Ctx {
            view: def.name.clone(),
            late_policy: def.options.late_data,
            state_bytes_max: def.options.state_bytes_max,
            late: Vec::new(),
            stats: restored.stats,
            end_of_stream: phase == Phase::Ended,
            emit_due: false,
            replaying: false,
        };
        let schedule = Schedule::new(
            def.options.mode,
            def.options.freshness_ms,
            def.options.state_bytes_max,
            now,
        );
        let mut runner = ViewRunner {
            blueprint,
            flow: Dataflow {
                inputs,
                ops: compiled,
                ctx,
                out: Checkpointer::start(&def.name, store)?,
                clock,
            },
            schedule,
            phase,
            batch_support,
            batch_refused: None,
            last_commit_ms: now,
            last_emit_ms: None,
            lease_epoch,
            task,
        };
        let plan = runner.schedule.plan();
        runner.flow.stats().mode = Some(plan.mode);
        runner.flow.stats().period_ms = plan.period_ms;
        if runner.phase == Phase::Ended {
            runner.flow.inputs.end();
        }
        runner.flow.tell_watermarks()?;
        if runner.phase == Phase::BatchRuns {
            let from = runner.open_from();
            batch_run::load_needed(&mut runner.flow, from)?;
        }
        Ok(runner)
    }

    /// The view.
    pub fn def(&self) -> &ViewDef {
        &self.blueprint.def
    }

    /// The part of the view this runner runs.
    pub fn task(&self) -> Task {
        self.task
    }

    /// The epoch of the lease under which this runner writes the view (PostgreSQL), the
    /// fencing token its commits carry.
    pub fn lease_epoch(&self) -> Option<i64> {
        self.lease_epoch
    }

    /// The `q` quantile (0 to 1) of the recent commits' durations in ms, exact over the
    /// last [`checkpoint::RECENT_COMMITS`] commits; `None` before the first commit.
    pub fn commit_ms_quantile(&self, q: f64) -> Option<f64> {
        self.flow.out.commit_ms_quantile(q)
    }

    /// Counters since the view was created.
    pub fn stats(&self) -> &Stats {
        &self.flow.ctx.stats
    }

    /// Events in the partitions this runner reads that it has not read yet, as far as it
    /// last learnt where they end (it asks no server).
    pub fn lag_events(&self) -> u64 {
        self.flow
            .inputs
            .parts()
            .map(|(_, _, p)| p.source.end_known().0.saturating_sub(p.next.0))
            .sum()
    }

    /// Whether every partition has been read to its end (as of the last step).
    pub fn caught_up(&self) -> bool {
        self.flow.inputs.caught_up()
    }

    /// Retry retriable store failures until `stop` is set, instead of giving up after
    /// [`COMMIT_ATTEMPTS`](crate::committer::COMMIT_ATTEMPTS): a long-running process waits
    /// out a store outage (it goes on reading until one more commit's rows are buffered,
    /// then waits) and catches up when the store returns.
    pub fn retry_until(&mut self, stop: Arc<AtomicBool>) {
        self.flow.out.retry_until(stop);
    }

    /// Whether a commit is due by time (the SLA's commit interval) or by buffered rows.
    fn commit_due(&self) -> bool {
        self.flow.out.full()
            || self.flow.clock.now_ms() - self.last_commit_ms
                >= self.commit_interval().as_millis() as i64
    }

    /// How often the view commits: under streaming a quarter of the freshness SLA (between
    /// 20 ms and 1 s), otherwise once per run (and when too many rows are buffered).
    fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.schedule.plan().period_ms)
    }

    /// Why the view's batch mode runs with the streaming operators rather than as DataFusion
    /// batch runs (see `batch_run`); `None` when DataFusion runs it.
    pub fn batch_by_operators(&self) -> Option<&str> {
        match (&self.batch_support, &self.batch_refused) {
            (BatchSupport::Operators(why), _) | (_, Some(why)) => Some(why),
            (BatchSupport::DataFusion { .. }, None) => None,
        }
    }

    /// How far before the window watermark batch runs read, if DataFusion runs them.
    fn lookback_ms(&self) -> Option<i64> {
        match self.batch_support {
            BatchSupport::DataFusion { lookback_ms } if self.batch_refused.is_none() => {
                Some(lookback_ms)
            }
            _ => None,
        }
    }

    /// The schedule the view runs on.
    pub fn plan(&self) -> Plan {
        self.schedule.plan()
    }

    /// Runs the view on `plan` from now on. Nothing is lost or repeated: every mode reads
    /// on from the same offsets with the same state. A change of mode is logged and counted.
    pub fn set_plan(&mut self, plan: Plan) {
        if plan == self.schedule.plan() {
            return;
        }
        let now = self.flow.clock.now_ms();
        if let Some(old) = self.schedule.set_plan(plan, now) {
            self.flow.stats().mode_switches += 1;
            tracing::info!(
                view = %self.blueprint.def.name,
                from = %old.mode,
                to = %plan.mode,
                period_ms = plan.period_ms,
                "mode switch"
            );
        }
        self.flow.stats().mode = Some(plan.mode);
        self.flow.stats().period_ms = plan.period_ms;
    }

    /// What the view costs, as measured since the planner last looked: input rate,
    /// processing time per event and commit time.
    pub fn measured_costs(&self) -> planner::Costs {
        self.schedule.measured_costs(
            &self.flow.ctx.stats,
            self.flow.clock.now_ms(),
            self.lookback_ms().is_some(),
        )
    }

    /// The costs the planner last chose the view's schedule from (it looks every
    /// `REPLAN_EVERY`); `None` until it first has.
    pub fn planned_from(&self) -> Option<planner::Costs> {
        self.schedule.planned_from()
    }

    /// Read one chunk from every partition and process it with the operators; returns the
    /// events read. Leaves batch runs first: the operators need their state.
    pub fn step(&mut self) -> Result<u64> {
        if self.phase == Phase::BatchRuns {
            self.leave_batch_runs()?;
        }
        let events = self.flow.step()?;
        if self.flow.out.full() {
            self.commit()?;
        }
        Ok(events)
    }

    /// One turn of the live loop: under streaming, read and process what is new and commit
    /// when due; under a periodic mode, when the period has passed, process everything new
    /// and commit once. Every [`REPLAN_EVERY`](super::schedule::REPLAN_EVERY) the planner re-evaluates
    /// the schedule from the measured costs. Returns the events processed.
    pub fn tick(&mut self) -> Result<u64> {
        let now = self.flow.clock.now_ms();
        let batch_memory = self.lookback_ms().is_some();
        if let Some(plan) = self
            .schedule
            .replan(&self.flow.ctx.stats, now, batch_memory)
        {
            self.set_plan(plan);
        }
        let started = std::time::Instant::now();
        let events = match (self.schedule.plan().mode, self.phase) {
            (planner::Mode::Streaming, _) => {
                let n = self.step()?;
                if self.commit_due() {
                    self.commit()?;
                }
                n
            }
            // DataFusion runs the batch mode of the views it can; an operator run under
            // way finishes first, and ended streams have nothing left to run.
            (planner::Mode::Batch, Phase::Operators | Phase::BatchRuns)
                if self.lookback_ms().is_some() && !self.schedule.run_under_way() =>
            {
                if !self.schedule.run_due(now) {
                    return Ok(0);
                }
                match self.batch_run(Some(BATCH_RUN_EVENTS_MAX))? {
                    // Claimed as much as one run may: the rest follows at once.
                    Some(n) if n >= BATCH_RUN_EVENTS_MAX => n,
                    Some(n) => {
                        self.schedule.ran(self.flow.clock.now_ms());
                        n
                    }
                    None => self.operator_run(now)?,
                }
            }
            (planner::Mode::MicroBatch | planner::Mode::Batch, _) => self.operator_run(now)?,
        };
        self.schedule.worked(events, started.elapsed());
        Ok(events)
    }

    /// One turn of a periodic run by the operators.
    fn operator_run(&mut self, now: i64) -> Result<u64> {
        if !self.schedule.run_under_way() {
            if !self.schedule.run_due(now) {
                return Ok(0);
            }
            self.schedule.begin_run();
        }
        // A run reads what is new one step per turn, so that the other views of the loop
        // keep their turns while a large batch is processed; it commits once, when it has
        // caught up (or when too many rows are buffered).
        let n = self.step()?;
        if n == 0 && self.caught_up() {
            self.commit()?;
            self.schedule.ran(self.flow.clock.now_ms());
        } else if self.flow.out.full() {
            self.commit()?;
        }
        Ok(n)
    }

    /// The view's window watermark: window ends at or before it are final.
    fn window_watermark(&self) -> Option<Watermark> {
        let lateness = self.blueprint.def.options.allowed_lateness_ms as i64;
        self.flow.inputs.window_watermark(lateness)
    }

    /// The earliest event time an open window can hold, when DataFusion runs batch runs.
    fn open_from(&self) -> Option<i64> {
        let lookback = self.lookback_ms()?;
        self.window_watermark().map(|w| w.less(lookback).0)
    }

    /// Enters [`Phase::BatchRuns`] from the operators: finds the frames open windows need
    /// and pins the log from there, drops the operators' state (the next commit removes
    /// the stored one). Returns false, and the operators run batch mode from then on, if
    /// retention may have removed events an open window needs.
    fn enter_batch_runs(&mut self) -> Result<bool> {
        if self.phase != Phase::Operators {
            return Err(EngineError::Bug(format!(
                "entering batch runs from {:?}",
                self.phase
            )));
        }
        let consumer = consumer_name(&self.blueprint.def.name);
        let from = self.open_from();
        if let Err(why) = batch_run::enter(&mut self.flow, &consumer, from) {
            tracing::warn!(view = %self.blueprint.def.name, reason = %why,
                "batch mode runs with the streaming operators");
            self.batch_refused = Some(why);
            return Ok(false);
        }
        // The operators' state is dropped: open windows are recomputed from the log.
        let fresh = self.blueprint.compile()?;
        self.flow.replace_operators(fresh)?;
        self.flow.stats().state_in_log = true;
        self.flow.out.reset_state();
        self.phase = Phase::BatchRuns;
        Ok(true)
    }

    /// Leaves [`Phase::BatchRuns`] for the operators, rebuilding their state from the log.
    fn leave_batch_runs(&mut self) -> Result<()> {
        if self.phase != Phase::BatchRuns {
            return Err(EngineError::Bug(format!(
                "leaving batch runs from {:?}",
                self.phase
            )));
        }
        let from = self.open_from();
        batch_run::rebuild(&mut self.flow, &self.blueprint, from)?;
        self.phase = Phase::Operators;
        Ok(())
    }

    /// One batch run (see `batch_run`) over what is new in the log, at most about `limit`
    /// events of it; `None` if the view cannot enter batch runs now, in which case the
    /// operators run it. Returns the events claimed.
    pub fn batch_run(&mut self, limit: Option<u64>) -> Result<Option<u64>> {
        let Some(lookback) = self.lookback_ms() else {
            return Err(EngineError::Bug(format!(
                "a batch run of a view that {}",
                self.batch_by_operators().unwrap_or_default()
            )));
        };
        if self.phase != Phase::BatchRuns && !self.enter_batch_runs()? {
            return Ok(None);
        }
        let lateness = self.blueprint.def.options.allowed_lateness_ms as i64;
        let events = batch_run::run(&mut self.flow, &self.blueprint, lookback, lateness, limit)?;
        self.commit()?;
        Ok(Some(events))
    }

    /// Enters [`Phase::Ended`]: the end of the log is the end of the streams, the
    /// watermark goes to +∞ and every window and group becomes final. Later events will be
    /// late. Leaves batch runs first.
    fn end_streams(&mut self) -> Result<()> {
        if self.phase == Phase::BatchRuns {
            self.leave_batch_runs()?;
        }
        self.phase = Phase::Ended;
        self.flow.ctx.end_of_stream = true;
        self.flow.inputs.end();
        self.flow.tell_watermarks()
    }

    /// Commit everything since the last commit in one store transaction, retrying a
    /// retriable store failure with backoff.
    pub fn commit(&mut self) -> Result<Progressed> {
        // Checkpoints land in order: the previous one first.
        self.flush()?;
        let flow = &mut self.flow;
        let now = flow.clock.now_ms();
        // A reopened view does not know when it last emitted: it emits at its first
        // commit, so a restart shows the same provisional rows as an uninterrupted run.
        flow.ctx.emit_due = self
            .last_emit_ms
            .is_none_or(|last| now - last >= self.blueprint.def.options.emit_interval_ms as i64)
            || flow.ctx.end_of_stream;
        if flow.ctx.emit_due {
            self.last_emit_ms = Some(now);
        }
        let rows = flow.ops.root.on_commit(&mut flow.ctx)?;
        flow.buffer(rows)?;
        let mut state = OperatorCheckpoint {
            puts: Vec::new(),
            deletes: Vec::new(),
            bytes: 0,
        };
        flow.ops
            .root
            .checkpoint(&mut state.puts, &mut state.deletes)?;
        state.bytes = flow.ops.root.state_bytes() as u64;
        let late = std::mem::take(&mut flow.ctx.late);
        let written = flow.out.commit(
            &flow.inputs,
            &mut flow.ctx.stats,
            late,
            state,
            self.phase == Phase::Ended,
            now,
        )?;
        self.last_commit_ms = flow.clock.now_ms();
        Ok(Progressed {
            events: 0,
            rows: written,
            commits: 1,
        })
    }

    /// Waits until the last commit has landed (it is written on the commit thread while the
    /// view goes on), and records it: its duration, retries, and the log's consumer
    /// positions. Returns the store's error if it failed for good.
    pub fn flush(&mut self) -> Result<()> {
        self.flow
            .out
            .flush(&self.flow.inputs, &mut self.flow.ctx.stats)
    }

    /// Stops the view so that another process may write it at once: commits once more,
    /// waits for the commit to land, then gives up the right to write it (a worker's
    /// lease).
    pub fn hand_over(mut self) -> Result<()> {
        self.commit()?;
        self.flush()?;
        self.flow.out.release()
    }

    /// Process everything in the log now, committing along the way; optionally end the
    /// streams afterwards. Returns what was done.
    pub fn drain(&mut self, end_of_stream: bool) -> Result<Progressed> {
        // Counted from the totals: `step` also commits when too many rows are buffered.
        let rows_before = self.flow.ctx.stats.rows_written;
        let commits_before = self.flow.out.commits();
        let mut events = 0;
        loop {
            let n = self.step()?;
            events += n;
            if self.commit_due() {
                self.commit()?;
            }
            if n == 0 && self.caught_up() {
                break;
            }
        }
        if end_of_stream && self.phase != Phase::Ended {
            self.end_streams()?;
        }
        self.commit()?;
        self.flush()?;
        Ok(Progressed {
            events,
            rows: self.flow.ctx.stats.rows_written - rows_before,
            commits: self.flow.out.commits() - commits_before,
        })
    }

    /// Wait up to `timeout` for new data in any partition (for the live loop).
    pub fn wait_for_data(&self, timeout: Duration) {
        self.flow.inputs.wait_for_data(timeout);
    }
}

/// Every partition `task` reads of every stream `compiled` reads, positioned where the
/// last commit left it, and pinned from the first offset the view may read again.
fn open_inputs(
    data: &DataDir,
    def: &ViewDef,
    compiled: &Compiled,
    restored: &checkpoint::Restored,
    task: Task,
) -> Result<Inputs> {
    let stats = &restored.stats;
    let mut names = Vec::new();
    compiled.root.streams(&mut names);
    let mut streams = Vec::new();
    for name in names {
        let stream = data.stream(&name)?;
        let sdef = stream.def();
        let delay_ms = sdef.watermark_delay_ms as i64;
        let mut parts = Vec::new();
        let sources = stream.inputs();
        if task.count() != 1 && sources.len() != task.count() as usize {
            return Err(EngineError::Input(format!(
                "view '{}' runs as {task}, but stream {name} has {} partitions",
                def.name,
                sources.len()
            )));
        }
        for (p, mut source) in (0u32..).zip(sources) {
            if !task.reads(p) {
                continue;
            }
            let start = source.start()?;
            let (next, wm) = restored
                .positions
                .get(&(name.clone(), p))
                .copied()
                .unwrap_or((start, None));
            let key = part_key(&name, p);
            // Open windows' events before `next` are still needed when a batch run left
            // the state in the log.
            let keep = if stats.state_in_log {
                stats
                    .needed_from
                    .get(&key)
                    .map_or(start, |&o| Offset(o))
                    .min(next)
            } else {
                next
            };
            let end = source.end();
            if next > end {
                return Err(EngineError::LogRetention(format!(
                    "view '{}' has read {name} partition {p} up to offset {next}, but the log \
                     now ends at {end}: it lost events the view already read (or was created \
                     again); recreate the view to rebuild it from what the log holds",
                    def.name
                )));
            }
            if keep < start {
                return Err(EngineError::LogRetention(format!(
                    "view '{}' needs {name} partition {p} from offset {keep}, but retention \
                     removed everything before {start}; recreate the view to rebuild it \
                     from what the log still holds",
                    def.name
                )));
            }
            source.pin(&consumer_name(&def.name), keep)?;
            parts.push(PartInput::new(
                p,
                source,
                next,
                wm.map(|w| EventTime(w.0.saturating_add(delay_ms))),
                stats.last_ingest_ms.get(&key).copied().map(IngestTime),
            ));
        }
        streams.push(StreamInput {
            name,
            delay_ms,
            idle_timeout_ms: sdef.options.idle_timeout_ms as i64,
            parts,
        });
    }
    let mut watermarks = StreamWatermarks::default();
    for s in &streams {
        if let Some(&w) = stats.watermarks.get(&s.name) {
            watermarks.advance(&s.name, Watermark(w));
        }
    }
    Ok(Inputs {
        streams,
        watermarks,
    })
}
