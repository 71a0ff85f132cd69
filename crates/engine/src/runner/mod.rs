//! Running one view: read its streams' partitions from the committed offsets, push batches
//! and watermarks through the operator tree, and commit results, state and offsets in one
//! store transaction.
//!
//! Watermarks: a partition's watermark is its largest event time seen minus the stream's
//! bounded out-of-orderness; the stream's is the minimum over partitions that are not idle,
//! and never goes back. A partition is idle when the view has read all of it and nothing
//! was ingested into it for the stream's `idle_timeout` (measured against the later of the
//! clock and the newest ingest time the view has read). If every partition is idle the
//! watermark holds.
//!
//! Exactly once: nothing reaches the store except through `commit`, which writes the result
//! rows produced since the last commit, the operator state changed since then, and each
//! partition's next offset and watermark, in one transaction. After a crash the view loads
//! the last commit and reads on from its offsets, so every event counts once.

use crate::clock::Clock;
use crate::committer::Committer;
use crate::compile::{Compiled, ORIGIN_KEY, ResultKey, compile};
use crate::error::{EngineError, Result};
use crate::plan::Planner;
use crate::planner::{self, Plan};
use crate::rows::Rows;
use crate::views::{ViewCatalog, ViewDef};

mod batch_run;
use crate::{Ctx, Stats};
use arrow_array::{ArrayRef, RecordBatch};
use freshet_log::{Partition, PartitionReader};
use freshet_store::{Commit, PartitionProgress, Progress, ResultBatch, ResultStore, ResultTable};
use freshet_streams::{DataDir, StreamDef};
use freshet_types::Offset;
use freshet_types::limits::{BATCH_RUN_EVENTS_MAX, VIEW_READ_BYTES, VIEW_ROWS_PER_COMMIT_MAX};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

struct PartInput {
    partition: Arc<Partition>,
    reader: PartitionReader,
    next: u64,
    max_event: Option<i64>,
    last_ingest_ms: Option<i64>,
    caught_up: bool,
    /// While the state is in the log (`Stats::state_in_log`): `(first offset, max event
    /// time)` of the frames read that may hold events of open windows, only those whose
    /// max event time is above every frame's before them (see [`batch_run`]).
    needed: VecDeque<(u64, i64)>,
}

struct StreamInput {
    name: String,
    delay_ms: i64,
    idle_timeout_ms: i64,
    parts: Vec<PartInput>,
}

/// What a step or a drain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progressed {
    /// Events read from the log.
    pub events: u64,
    /// Result rows written.
    pub rows: u64,
    /// Commits made.
    pub commits: u64,
}

/// Plan and compile `def` against the data directory's streams and the views before it.
pub fn compile_view(data: &DataDir, views: &ViewCatalog, def: &ViewDef) -> Result<Compiled> {
    compile_view_over(&data.streams(), views, def)
}

/// Like [`compile_view`] over the stream definitions `streams` (read without the data
/// directory's lock).
pub fn compile_view_over(
    streams: &[StreamDef],
    views: &ViewCatalog,
    def: &ViewDef,
) -> Result<Compiled> {
    compile_after(streams, &views.earlier_than(&def.name), def)
}

/// Like [`compile_view_over`], given the views created before `def` (those it may read).
fn compile_after(streams: &[StreamDef], earlier: &[ViewDef], def: &ViewDef) -> Result<Compiled> {
    let planner = Planner::new(streams, earlier)?;
    let plan = planner.plan(&def.query)?;
    compile(&plan, &def.options, &planner.execution_props())
}

/// The results table a compiled view writes.
pub fn result_table(def: &ViewDef, compiled: &Compiled) -> ResultTable {
    ResultTable {
        view: def.name.clone(),
        schema: compiled.result_schema.clone(),
        key: match &compiled.key {
            ResultKey::Columns(c) => c.clone(),
            ResultKey::Origin => ORIGIN_KEY.iter().map(|s| s.to_string()).collect(),
        },
    }
}

/// Commit durations a runner keeps for exact quantiles (`freshet run --drain --json`).
pub const RECENT_COMMITS: usize = 8_192;

/// How often a running view's schedule is re-evaluated from its measured costs.
pub const REPLAN_EVERY: Duration = Duration::from_secs(10);

/// The commit time assumed before one is measured.
const UNMEASURED_COMMIT_SECONDS: f64 = 0.005;

/// A view being run.
pub struct ViewRunner {
    def: ViewDef,
    compiled: Compiled,
    /// Writes checkpoints on a thread of its own (see [`crate::committer`]).
    committer: Committer,
    /// Whether the store keeps commits (else the log's consumer positions must not move).
    durable: bool,
    inputs: Vec<StreamInput>,
    ctx: Ctx,
    watermarks: HashMap<String, Option<i64>>,
    pending: Vec<ResultBatch>,
    pending_rows: usize,
    clock: Arc<dyn Clock>,
    last_commit_ms: i64,
    last_emit_ms: i64,
    ended: bool,
    patience: Option<Arc<AtomicBool>>,
    /// Commits made since this runner was opened.
    commits: u64,
    /// The schedule the view runs on.
    plan: Plan,
    /// When a periodic schedule runs next (ms since the epoch).
    next_run_ms: i64,
    /// Whether a periodic run is under way (it spans several turns of the loop).
    running: bool,
    /// Processing time and events since the planner last looked, and when that was.
    busy: Duration,
    events_since_plan: u64,
    last_plan_ms: i64,
    /// The processing cost last measured, kept when a period had nothing to measure.
    seconds_per_event: f64,
    /// Durations of the last [`RECENT_COMMITS`] commits, in µs, oldest overwritten first.
    recent_commit_us: Vec<u64>,
    /// `(ingest time, events)` of the frames read since the last commit, at most
    /// [`UNCOMMITTED_FRAMES_TRACKED`] (older ones merged into the first).
    uncommitted: Vec<(i64, u64)>,
    /// What batch runs need: the data directory, its streams and the views before this one.
    root_dir: PathBuf,
    streams: Vec<StreamDef>,
    earlier: Vec<ViewDef>,
    /// How far before the window watermark a batch run reads (ms), or why DataFusion
    /// cannot run this view's batch mode.
    batch_support: std::result::Result<i64, String>,
    /// The next commit removes the view's stored operator state first.
    reset_state: bool,
}

impl ViewRunner {
    /// Open `def`: compile it, create its results table if needed, and resume from the
    /// store's last commit (or from the start of the log: a new view backfills).
    pub fn open(
        data: &DataDir,
        views: &ViewCatalog,
        def: &ViewDef,
        mut store: Box<dyn ResultStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<ViewRunner> {
        let compiled = compile_view(data, views, def)?;
        store.create_view(&result_table(def, &compiled))?;
        // Before the checkpoint is read: another writer could move it on afterwards.
        store.claim_writer(&def.name)?;
        let checkpoint = store.load(&def.name)?;
        let mut names = Vec::new();
        compiled.root.streams(&mut names);
        let progress = checkpoint.progress.clone();
        let stored: HashMap<(String, u32), (u64, Option<i64>)> = progress
            .as_ref()
            .map(|p| {
                p.partitions
                    .iter()
                    .map(|pp| {
                        (
                            (pp.stream.clone(), pp.partition),
                            (pp.next_offset, pp.watermark_ms),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let stats: Stats = progress
            .as_ref()
            .and_then(|p| serde_json::from_value(p.stats.clone()).ok())
            .unwrap_or_default();
        let mut inputs = Vec::new();
        for name in names {
            let stream = data.stream(&name)?;
            let sdef = stream.def();
            let delay_ms = sdef.watermark_delay_ms as i64;
            let mut parts = Vec::new();
            for (p, partition) in stream.partitions().iter().enumerate() {
                let mut reader = partition.reader();
                let (next, wm) = match stored.get(&(name.clone(), p as u32)) {
                    Some(&(next, wm)) => (next, wm),
                    None => (reader.start_offset()?.0, None),
                };
                let start = reader.start_offset()?.0;
                // Open windows' events before `next` are still needed when a batch run
                // left the state in the log.
                let keep = if stats.state_in_log {
                    stats
                        .needed_from
                        .get(&format!("{name}/{p}"))
                        .copied()
                        .unwrap_or(start)
                        .min(next)
                } else {
                    next
                };
                if keep < start {
                    return Err(EngineError::Sql(format!(
                        "view '{}' needs {name} partition {p} from offset {keep}, but retention \
                         removed everything before {start}; recreate the view to rebuild it \
                         from what the log still holds",
                        def.name
                    )));
                }
                partition
                    .consumers()
                    .set(&consumer_name(&def.name), Offset(keep))?;
                parts.push(PartInput {
                    partition: partition.clone(),
                    reader,
                    next,
                    max_event: wm.map(|w| w.saturating_add(delay_ms)),
                    last_ingest_ms: None,
                    caught_up: false,
                    needed: VecDeque::new(),
                });
            }
            inputs.push(StreamInput {
                name,
                delay_ms,
                idle_timeout_ms: sdef.options.idle_timeout_ms as i64,
                parts,
            });
        }
        for s in &mut inputs {
            for (p, part) in s.parts.iter_mut().enumerate() {
                part.last_ingest_ms = stats
                    .last_ingest_ms
                    .get(&format!("{}/{p}", s.name))
                    .copied();
            }
        }
        let ctx = Ctx {
            view: def.name.clone(),
            late_policy: def.options.late_data,
            state_bytes_max: def.options.state_bytes_max,
            late: Vec::new(),
            stats,
            end_of_stream: false,
            emit_due: false,
            replaying: false,
        };
        let now = clock.now_ms();
        let mut runner = ViewRunner {
            def: def.clone(),
            compiled,
            durable: store.durable(),
            committer: Committer::start(&def.name, store)?,
            inputs,
            ctx,
            watermarks: HashMap::new(),
            pending: Vec::new(),
            pending_rows: 0,
            clock,
            last_commit_ms: now,
            last_emit_ms: now,
            ended: false,
            patience: None,
            commits: 0,
            plan: planner::plan_for(
                def.options.mode,
                def.options.freshness_ms,
                &planner::Costs {
                    input_rate: 0.0,
                    seconds_per_event: 0.0,
                    commit_seconds: UNMEASURED_COMMIT_SECONDS,
                    batch_bytes_per_event: 0.0,
                    memory_budget_bytes: 0.0,
                },
            ),
            next_run_ms: now,
            running: false,
            busy: Duration::ZERO,
            events_since_plan: 0,
            last_plan_ms: now,
            seconds_per_event: 0.0,
            recent_commit_us: Vec::new(),
            uncommitted: Vec::new(),
            root_dir: data.root().to_path_buf(),
            streams: data.streams(),
            earlier: views.earlier_than(&def.name),
            batch_support: Err(String::new()),
            reset_state: false,
        };
        runner.batch_support = batch_run::support(&runner.compiled, def);
        runner.ctx.stats.mode = Some(runner.plan.mode);
        runner.ctx.stats.period_ms = runner.plan.period_ms;
        let mut by_id: HashMap<u16, crate::node::StateEntries> = HashMap::new();
        for (k, v) in checkpoint.state {
            if k.len() < 3 {
                return Err(EngineError::Bug(
                    "a checkpoint key without an operator id".into(),
                ));
            }
            let id = u16::from_be_bytes([k[0], k[1]]);
            by_id.entry(id).or_default().push((k, v));
        }
        runner.compiled.root.restore(&by_id)?;
        if progress.as_ref().and_then(|p| p.watermark_ms) == Some(i64::MAX) {
            runner.ended = true;
            runner.ctx.end_of_stream = true;
            for s in &runner.inputs {
                runner.watermarks.insert(s.name.clone(), Some(i64::MAX));
            }
        } else {
            for s in &runner.inputs {
                let wm = runner.ctx.stats.watermarks.get(&s.name).copied();
                runner.watermarks.insert(s.name.clone(), wm);
            }
        }
        let rows = runner
            .compiled
            .root
            .on_watermark(&runner.watermarks, &mut runner.ctx)?;
        runner.buffer(rows)?;
        if runner.ctx.stats.state_in_log {
            runner.load_needed()?;
        }
        Ok(runner)
    }

    /// The view.
    pub fn def(&self) -> &ViewDef {
        &self.def
    }

    /// The compiled view.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The `q` quantile (0 to 1) of the recent commits' durations in ms, exact over the
    /// last [`RECENT_COMMITS`] commits; `None` before the first commit.
    pub fn commit_ms_quantile(&self, q: f64) -> Option<f64> {
        let mut sorted = self.recent_commit_us.clone();
        sorted.sort_unstable();
        let last = sorted.len().checked_sub(1)?;
        let index = ((last as f64) * q.clamp(0.0, 1.0)).round() as usize;
        Some(sorted[index] as f64 / 1000.0)
    }

    /// Counters since the view was created.
    pub fn stats(&self) -> &Stats {
        &self.ctx.stats
    }

    /// Whether every partition has been read to its end (as of the last step).
    pub fn caught_up(&self) -> bool {
        self.inputs
            .iter()
            .all(|s| s.parts.iter().all(|p| p.caught_up))
    }

    /// Read one chunk from every partition and process it; returns the events read.
    pub fn step(&mut self) -> Result<u64> {
        if self.ctx.stats.state_in_log {
            self.rebuild_state()?;
        }
        let mut events = 0u64;
        for si in 0..self.inputs.len() {
            for pi in 0..self.inputs[si].parts.len() {
                events += self.step_partition(si, pi)?;
            }
        }
        // Idleness can change without new data.
        self.update_watermarks()?;
        if self.pending_rows >= VIEW_ROWS_PER_COMMIT_MAX {
            self.commit()?;
        }
        Ok(events)
    }

    fn step_partition(&mut self, si: usize, pi: usize) -> Result<u64> {
        let name = self.inputs[si].name.clone();
        let part = &mut self.inputs[si].parts[pi];
        let frames = part.reader.read(Offset(part.next), VIEW_READ_BYTES)?;
        if frames.is_empty() {
            part.caught_up = true;
            return Ok(0);
        }
        part.caught_up = false;
        let mut events = 0u64;
        for frame in frames {
            let h = &frame.header;
            let events_before = events;
            let mut off = h.base_offset.0;
            let batches = freshet_streams::payload::decode(&frame.payload)?;
            for b in batches {
                let n = b.num_rows() as u64;
                let part = &mut self.inputs[si].parts[pi];
                if off + n <= part.next {
                    off += n;
                    continue;
                }
                let skip = part.next.saturating_sub(off);
                let first = off + skip;
                let b = b.slice(skip as usize, (n - skip) as usize);
                off += n;
                part.next = off;
                events += b.num_rows() as u64;
                let rows =
                    self.compiled
                        .root
                        .on_input(&name, pi as u32, first, &b, &mut self.ctx)?;
                self.buffer(rows)?;
            }
            self.track_uncommitted(h.ingest_time.0, events - events_before);
            let part = &mut self.inputs[si].parts[pi];
            let me = h.max_event_time.0;
            part.max_event = Some(part.max_event.map_or(me, |m| m.max(me)));
            part.last_ingest_ms = Some(
                part.last_ingest_ms
                    .map_or(h.ingest_time.0, |m| m.max(h.ingest_time.0)),
            );
            self.update_watermarks()?;
        }
        self.ctx.stats.input_events += events;
        Ok(events)
    }

    fn update_watermarks(&mut self) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        let newest_ingest = self
            .inputs
            .iter()
            .flat_map(|s| s.parts.iter().filter_map(|p| p.last_ingest_ms))
            .max()
            .unwrap_or(i64::MIN);
        let now = self.clock.now_ms().max(newest_ingest);
        let mut changed = false;
        for s in &self.inputs {
            let active: Vec<&PartInput> = s
                .parts
                .iter()
                .filter(|p| {
                    let idle = p.caught_up
                        && p.last_ingest_ms
                            .is_none_or(|t| now.saturating_sub(t) >= s.idle_timeout_ms);
                    !idle
                })
                .collect();
            if active.is_empty() {
                continue;
            }
            let candidate = if active.iter().any(|p| p.max_event.is_none()) {
                None
            } else {
                active
                    .iter()
                    .filter_map(|p| p.max_event)
                    .min()
                    .map(|m| m.saturating_sub(s.delay_ms))
            };
            let old = self.watermarks.get(&s.name).copied().flatten();
            if let Some(c) = candidate
                && old.is_none_or(|o| c > o)
            {
                self.watermarks.insert(s.name.clone(), Some(c));
                changed = true;
            }
        }
        if changed {
            let rows = self
                .compiled
                .root
                .on_watermark(&self.watermarks, &mut self.ctx)?;
            self.buffer(rows)?;
        }
        Ok(())
    }

    fn buffer(&mut self, rows: Vec<Rows>) -> Result<()> {
        for r in rows {
            let n = r.batch.num_rows();
            if n == 0 {
                continue;
            }
            let batch = match (&self.compiled.key, &r.origin) {
                (ResultKey::Columns(_), _) => r.batch,
                (ResultKey::Origin, Some(o)) => {
                    let mut columns: Vec<ArrayRef> = r.batch.columns().to_vec();
                    columns.push(Arc::new(o.partition.clone()));
                    columns.push(Arc::new(o.offset.clone()));
                    columns.push(Arc::new(o.copy.clone()));
                    RecordBatch::try_new_with_options(
                        self.compiled.result_schema.clone(),
                        columns,
                        &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)),
                    )?
                }
                (ResultKey::Origin, None) => {
                    return Err(EngineError::Bug(
                        "rows keyed by origin lost their origin".into(),
                    ));
                }
            };
            self.pending_rows += n;
            self.pending.push(ResultBatch {
                batch,
                state: r.state,
            });
        }
        Ok(())
    }

    fn track_uncommitted(&mut self, ingest_ms: i64, events: u64) {
        if events == 0 {
            return;
        }
        if self.uncommitted.len() >= UNCOMMITTED_FRAMES_TRACKED {
            // Merge into the oldest entry: latencies are over-, never under-stated.
            self.uncommitted[0].1 += events;
        } else {
            self.uncommitted.push((ingest_ms, events));
        }
    }

    /// Retry retriable store failures until `stop` is set, instead of giving up after
    /// [`COMMIT_ATTEMPTS`](crate::committer::COMMIT_ATTEMPTS): a long-running process waits out a store outage (it goes on
    /// reading until one more commit's rows are buffered, then waits) and catches up when the
    /// store returns.
    pub fn retry_until(&mut self, stop: Arc<AtomicBool>) {
        self.patience = Some(stop);
    }

    /// Whether a commit is due by time (the SLA's commit interval) or by buffered rows.
    pub fn commit_due(&self) -> bool {
        self.pending_rows >= VIEW_ROWS_PER_COMMIT_MAX
            || self.clock.now_ms() - self.last_commit_ms
                >= self.commit_interval().as_millis() as i64
    }

    /// How often the view commits: under streaming a quarter of the freshness SLA (between
    /// 20 ms and 1 s), otherwise once per run (and when too many rows are buffered).
    pub fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.plan.period_ms)
    }

    /// Why the view's batch mode runs with the streaming operators rather than as DataFusion
    /// batch runs (see [`batch_run`]); `None` when DataFusion runs it.
    pub fn batch_by_operators(&self) -> Option<&str> {
        self.batch_support.as_ref().err().map(String::as_str)
    }

    /// The schedule the view runs on.
    pub fn plan(&self) -> Plan {
        self.plan
    }

    /// Runs the view on `plan` from now on. Nothing is lost or repeated: every mode reads
    /// on from the same offsets with the same state. A change of mode is logged and counted.
    pub fn set_plan(&mut self, plan: Plan) {
        if plan == self.plan {
            return;
        }
        if plan.mode != self.plan.mode {
            self.ctx.stats.mode_switches += 1;
            tracing::info!(
                view = %self.def.name,
                from = %self.plan.mode,
                to = %plan.mode,
                period_ms = plan.period_ms,
                "mode switch"
            );
        }
        self.ctx.stats.mode = Some(plan.mode);
        self.ctx.stats.period_ms = plan.period_ms;
        if plan.mode == planner::Mode::Streaming {
            self.running = false;
        }
        // A shorter period applies at once; a longer one after the next run.
        self.next_run_ms = self
            .next_run_ms
            .min(self.clock.now_ms() + plan.period_ms as i64);
        self.plan = plan;
    }

    /// What the view costs, as measured since the planner last looked: input rate,
    /// processing time per event and commit time.
    pub fn measured_costs(&self) -> planner::Costs {
        let elapsed = (self.clock.now_ms() - self.last_plan_ms).max(1) as f64 / 1_000.0;
        let commits = &self.ctx.stats.commit_ms;
        planner::Costs {
            input_rate: self.events_since_plan as f64 / elapsed,
            seconds_per_event: if self.events_since_plan > 0 {
                self.busy.as_secs_f64() / self.events_since_plan as f64
            } else {
                self.seconds_per_event
            },
            commit_seconds: if commits.count > 0 {
                commits.sum_ms as f64 / commits.count as f64 / 1_000.0
            } else {
                UNMEASURED_COMMIT_SECONDS
            },
            // Only DataFusion batch runs hold memory that grows with the period.
            batch_bytes_per_event: if self.batch_support.is_ok() {
                self.ctx.stats.batch_run_memory_bytes as f64
                    / self.ctx.stats.batch_run_events.max(1) as f64
            } else {
                0.0
            },
            memory_budget_bytes: self.def.options.state_bytes_max as f64,
        }
    }

    /// One turn of the live loop: under streaming, read and process what is new and commit
    /// when due; under a periodic mode, when the period has passed, process everything new
    /// and commit once. Every [`REPLAN_EVERY`] the planner re-evaluates the schedule from
    /// the measured costs. Returns the events processed.
    pub fn tick(&mut self) -> Result<u64> {
        let now = self.clock.now_ms();
        if now - self.last_plan_ms >= REPLAN_EVERY.as_millis() as i64 {
            let costs = self.measured_costs();
            self.seconds_per_event = costs.seconds_per_event;
            let plan =
                planner::plan_for(self.def.options.mode, self.def.options.freshness_ms, &costs);
            self.set_plan(plan);
            self.busy = Duration::ZERO;
            self.events_since_plan = 0;
            self.last_plan_ms = now;
        }
        let started = std::time::Instant::now();
        let events = match self.plan.mode {
            planner::Mode::Streaming => {
                let n = self.step()?;
                if self.commit_due() {
                    self.commit()?;
                }
                n
            }
            // DataFusion runs the batch mode of the views it can (`batch_run`); an operator
            // run under way finishes first.
            planner::Mode::Batch if self.batch_support.is_ok() && !self.ended && !self.running => {
                if now < self.next_run_ms {
                    return Ok(0);
                }
                match self.batch_run(Some(BATCH_RUN_EVENTS_MAX))? {
                    // Claimed as much as one run may: the rest follows at once.
                    Some(n) if n >= BATCH_RUN_EVENTS_MAX => n,
                    Some(n) => {
                        self.next_run_ms = self.clock.now_ms() + self.plan.period_ms as i64;
                        n
                    }
                    None => self.operator_run(now)?,
                }
            }
            planner::Mode::MicroBatch | planner::Mode::Batch => self.operator_run(now)?,
        };
        self.busy += started.elapsed();
        self.events_since_plan += events;
        Ok(events)
    }

    /// One turn of a periodic run by the operators.
    fn operator_run(&mut self, now: i64) -> Result<u64> {
        if now < self.next_run_ms && !self.running {
            return Ok(0);
        }
        // A run reads what is new one step per turn, so that the other views of the loop
        // keep their turns while a large batch is processed; it commits once, when it has
        // caught up (or when too many rows are buffered).
        self.running = true;
        let n = self.step()?;
        if n == 0 && self.caught_up() {
            self.commit()?;
            self.running = false;
            self.next_run_ms = self.clock.now_ms() + self.plan.period_ms as i64;
        } else if self.pending_rows >= VIEW_ROWS_PER_COMMIT_MAX {
            self.commit()?;
        }
        Ok(n)
    }

    /// Treat the end of the log as the end of the streams: the watermark goes to +∞ and
    /// every window and group becomes final. Later events will be late.
    pub fn end_streams(&mut self) -> Result<()> {
        self.ended = true;
        self.ctx.end_of_stream = true;
        for s in &self.inputs {
            self.watermarks.insert(s.name.clone(), Some(i64::MAX));
        }
        let rows = self
            .compiled
            .root
            .on_watermark(&self.watermarks, &mut self.ctx)?;
        self.buffer(rows)
    }

    /// Commit everything since the last commit in one store transaction, retrying a
    /// retriable store failure with backoff.
    pub fn commit(&mut self) -> Result<Progressed> {
        // Checkpoints land in order: the previous one first.
        self.flush()?;
        let now = self.clock.now_ms();
        self.ctx.emit_due = now - self.last_emit_ms >= self.def.options.emit_interval_ms as i64
            || self.ctx.end_of_stream;
        if self.ctx.emit_due {
            self.last_emit_ms = now;
        }
        let rows = self.compiled.root.on_commit(&mut self.ctx)?;
        self.buffer(rows)?;
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        self.compiled.root.checkpoint(&mut puts, &mut deletes);
        let written = self.pending_rows as u64;
        self.ctx.stats.needed_from.clear();
        for s in &self.inputs {
            for (p, part) in s.parts.iter().enumerate() {
                if self.ctx.stats.state_in_log {
                    self.ctx
                        .stats
                        .needed_from
                        .insert(format!("{}/{p}", s.name), part.keep_from());
                }
                if let Some(t) = part.last_ingest_ms {
                    self.ctx
                        .stats
                        .last_ingest_ms
                        .insert(format!("{}/{p}", s.name), t);
                }
            }
        }
        for (name, wm) in &self.watermarks {
            if let Some(w) = wm {
                self.ctx.stats.watermarks.insert(name.clone(), *w);
            }
        }
        self.ctx.stats.rows_written += written;
        for (t, n) in self.uncommitted.drain(..) {
            let ms = now.saturating_sub(t).max(0) as u64;
            self.ctx.stats.ingest_to_commit_ms.record(ms, n);
        }
        self.ctx.stats.reflected_ms = self
            .inputs
            .iter()
            .flat_map(|s| s.parts.iter())
            .map(|p| {
                if p.caught_up {
                    Some(now)
                } else {
                    p.last_ingest_ms
                }
            })
            .try_fold(i64::MAX, |acc, t| t.map(|t| acc.min(t)));
        self.ctx.stats.state_bytes = self.compiled.root.state_bytes() as u64;
        self.ctx.stats.state_bytes_peak =
            (self.ctx.stats.state_bytes_peak).max(self.ctx.stats.state_bytes);
        let watermark_ms = if self.ended {
            Some(i64::MAX)
        } else {
            self.inputs
                .iter()
                .map(|s| self.watermarks.get(&s.name).copied().flatten())
                .try_fold(i64::MAX, |acc, w| w.map(|w| acc.min(w)))
        };
        let progress = Progress {
            partitions: self
                .inputs
                .iter()
                .flat_map(|s| {
                    s.parts
                        .iter()
                        .enumerate()
                        .map(|(p, part)| PartitionProgress {
                            stream: s.name.clone(),
                            partition: p as u32,
                            next_offset: part.next,
                            watermark_ms: part.max_event.map(|m| m.saturating_sub(s.delay_ms)),
                        })
                })
                .collect(),
            watermark_ms,
            stats: serde_json::to_value(&self.ctx.stats).expect("stats serialise"),
        };
        let commit = Commit {
            upserts: std::mem::take(&mut self.pending),
            state_puts: puts,
            state_deletes: deletes,
            state_reset: std::mem::take(&mut self.reset_state),
            late: std::mem::take(&mut self.ctx.late),
            progress,
        };
        self.pending_rows = 0;
        let positions = self
            .inputs
            .iter()
            .flat_map(|s| s.parts.iter().map(|p| (p.partition.clone(), p.keep_from())))
            .collect();
        self.committer
            .send(commit, self.patience.clone(), positions)?;
        self.last_commit_ms = self.clock.now_ms();
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
        let Some(landed) = self.committer.wait()? else {
            return Ok(());
        };
        let took_us = landed.took.as_micros() as u64;
        if self.recent_commit_us.len() < RECENT_COMMITS {
            self.recent_commit_us.push(took_us);
        } else {
            self.recent_commit_us[(self.commits as usize) % RECENT_COMMITS] = took_us;
        }
        self.commits += 1;
        // Both counted in the next commit's stats (this one's are already encoded).
        self.ctx.stats.commit_retries += landed.retries;
        self.ctx
            .stats
            .commit_ms
            .record(landed.took.as_millis() as u64, 1);
        // A store that keeps nothing must not let retention free what the next real run
        // will read again.
        if self.durable {
            for (partition, next) in landed.positions {
                partition
                    .consumers()
                    .set(&consumer_name(&self.def.name), Offset(next))?;
            }
        }
        Ok(())
    }

    /// Process everything in the log now, committing along the way; optionally end the
    /// streams afterwards. Returns what was done.
    pub fn drain(&mut self, end_of_stream: bool) -> Result<Progressed> {
        // Counted from the totals: `step` also commits when too many rows are buffered.
        let rows_before = self.ctx.stats.rows_written;
        let commits_before = self.commits;
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
        if end_of_stream && !self.ended {
            self.end_streams()?;
        }
        self.commit()?;
        self.flush()?;
        Ok(Progressed {
            events,
            rows: self.ctx.stats.rows_written - rows_before,
            commits: self.commits - commits_before,
        })
    }

    /// Wait up to `timeout` for new data in any partition (for the live loop).
    pub fn wait_for_data(&self, timeout: Duration) {
        if let Some(p) = self.inputs.first().and_then(|s| s.parts.first()) {
            p.partition.wait_beyond(Offset(p.next), timeout);
        } else {
            std::thread::sleep(timeout);
        }
    }
}

impl PartInput {
    /// The first offset the view may read again: its next one, or, while the state is in
    /// the log, the first that an open window may need.
    fn keep_from(&self) -> u64 {
        self.needed
            .front()
            .map_or(self.next, |&(o, _)| o.min(self.next))
    }
}

/// Frames whose ingest times are kept between two commits for the latency histogram.
const UNCOMMITTED_FRAMES_TRACKED: usize = 4_096;

/// The consumer name a view registers on the partitions it reads (pins retention).
pub fn consumer_name(view: &str) -> String {
    format!("view:{view}")
}
