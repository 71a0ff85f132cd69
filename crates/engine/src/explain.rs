//! `explain`: why a view runs in the mode it does, with numbers measured on a sample of its
//! input.
//!
//! The view is run three times over the same sample of the log (its first events), once per
//! mode, each into a scratch SQLite store: streaming commits every `rate × period` events of
//! its streaming period, micro-batch and batch once per period's worth of events at the
//! input rate. Each run measures processing time, commits and their time, rows written and
//! peak state. Batch mode of a view that DataFusion runs is measured as one DataFusion batch
//! run over the sample instead. The planner then chooses from the SLA, the input rate and
//! the measured costs, and the alternatives are shown against it. The state's outlook
//! comes with it: what frees each operator's state, how fast the state grew over the
//! sample's second half, and, for state that only the end of the streams frees, when it
//! reaches the view's `state_bytes_max` at the input rate.

use freshet_store::SqliteStore;
use freshet_streams::DataDir;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::SystemClock;
use crate::error::Result;
use crate::parallelism::{Parallelism, parallelism};
use crate::planner::{self, Costs, Mode, Plan};
use crate::runner::ViewRunner;
use crate::views::ViewCatalog;

/// The input rate assumed when the log has been idle, events per second.
pub const IDLE_RATE_ASSUMED: f64 = 1_000.0;

/// One mode as measured.
#[derive(Debug, Clone, Serialize)]
pub struct Alternative {
    /// The mode.
    pub mode: Mode,
    /// Its period, ms (between commits under streaming, between runs otherwise).
    pub period_ms: u64,
    /// Longest staleness of a result under this schedule at the input rate, ms.
    pub freshness_p99_ms: u64,
    /// Events per second one core sustains in this mode (processing and commits).
    pub max_events_per_s: f64,
    /// Processing and commit time per million input events, in seconds.
    pub cpu_seconds_per_million: f64,
    /// Result rows written to the store per million input events.
    pub store_writes_per_million: f64,
    /// Peak operator state, bytes (approximate).
    pub state_bytes_peak: u64,
    /// Peak memory the mode holds for the view, bytes: the operators' state, or for a
    /// DataFusion batch run the most its operators reserved at once.
    pub memory_bytes_peak: u64,
    /// How much the operators' state grew over the second half of the sample, bytes per
    /// million input events (0 when it did not grow, and for a DataFusion batch run).
    pub state_growth_bytes_per_million: f64,
}

/// Where the view's operator state is heading (measured by the streaming sample run).
#[derive(Debug, Clone, Serialize)]
pub struct StateOutlook {
    /// Whether some operator keeps its state until the end of the streams (an unbounded
    /// GROUP BY, a top-N without a window, a join of streams' rows), so that the state
    /// grows with the input; otherwise the watermark frees it as windows close.
    pub grows_with_input: bool,
    /// The state at the end of the sample, bytes.
    pub bytes_after_sample: u64,
    /// Its growth over the sample's second half, bytes per million input events.
    pub growth_bytes_per_million: f64,
    /// The view's cap (`state_bytes_max`).
    pub budget_bytes: u64,
    /// For state that grows with the input: seconds until it reaches the cap at the input
    /// rate, when the view stops with an error.
    pub budget_reached_in_s: Option<f64>,
    /// The same in words.
    pub summary: String,
}

/// The decision and its reasons.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The view.
    pub view: String,
    /// The chosen mode.
    pub mode: Mode,
    /// Its period, ms.
    pub period_ms: u64,
    /// The freshness SLA, ms.
    pub sla_ms: u64,
    /// Input events per second used for the decision.
    pub input_rate: f64,
    /// Where the rate comes from.
    pub rate_source: String,
    /// Events of the sample each mode ran on.
    pub sample_events: u64,
    /// The measured costs the planner used.
    pub costs: Costs,
    /// Every mode, the chosen one included.
    pub alternatives: Vec<Alternative>,
    /// What the choice risks.
    pub risk: String,
    /// How Freshet limits that risk.
    pub mitigation: String,
    /// When Freshet would choose differently.
    pub condition: String,
    /// What executes the batch mode: DataFusion batch runs, or the streaming operators
    /// on the batch schedule, and why.
    pub batch_execution: String,
    /// Where the operators' state is heading.
    pub state: StateOutlook,
    /// Whether the view can run as one task per partition, and why.
    pub parallelism: Parallelism,
}

/// What one sample run measured.
#[derive(Clone)]
struct Run {
    events: u64,
    processing: Duration,
    committing: Duration,
    commits: u64,
    rows: u64,
    state_peak: u64,
    memory_peak: u64,
    /// Log rows a DataFusion batch run read (0 for the operators).
    read: u64,
    /// The state at the end, bytes.
    state_end: u64,
    /// Growth of the state over the second half of the run (from its last commit at or
    /// before the middle), bytes per event.
    growth_per_event: f64,
}

/// Runs `view` over the first `sample` events of its input, committing every `chunk`
/// events.
fn sample_run(
    data: &DataDir,
    catalog: &ViewCatalog,
    view: &str,
    sample: u64,
    chunk: u64,
) -> Result<Run> {
    let (scratch, mut runner) = scratch_runner(data, catalog, view)?;
    let mut run = Run {
        events: 0,
        processing: Duration::ZERO,
        committing: Duration::ZERO,
        commits: 0,
        rows: 0,
        state_peak: 0,
        memory_peak: 0,
        read: 0,
        state_end: 0,
        growth_per_event: 0.0,
    };
    let mut since_commit = 0;
    // (events, state) at each commit: at most one per `chunk` events of the sample.
    let mut points: Vec<(u64, u64)> = Vec::new();
    loop {
        let started = Instant::now();
        let n = runner.step()?;
        run.processing += started.elapsed();
        run.events += n;
        since_commit += n;
        let last = n == 0 || run.events >= sample;
        if since_commit >= chunk || (last && since_commit > 0) {
            let started = Instant::now();
            let written = runner.commit()?;
            runner.flush()?;
            run.committing += started.elapsed();
            run.commits += 1;
            run.rows += written.rows;
            since_commit = 0;
            run.state_end = runner.stats().state_bytes;
            points.push((run.events, run.state_end));
        }
        if last {
            break;
        }
    }
    run.state_peak = runner.stats().state_bytes_peak;
    run.memory_peak = run.state_peak;
    // The growth over the second half, from the last commit at or before its middle (the
    // start, if the sample was read in fewer steps).
    let (events, state) = points
        .iter()
        .copied()
        .rfind(|&(events, _)| events <= run.events / 2)
        .unwrap_or((0, 0));
    if run.events > events {
        run.growth_per_event =
            run.state_end.saturating_sub(state) as f64 / (run.events - events) as f64;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(run)
}

/// One DataFusion batch run over the first `sample` events of `view`'s input, committed
/// once; `Err` with the reason if its batch mode runs with the operators.
fn batch_sample_run(
    data: &DataDir,
    catalog: &ViewCatalog,
    view: &str,
    sample: u64,
) -> Result<std::result::Result<Run, String>> {
    let (scratch, mut runner) = scratch_runner(data, catalog, view)?;
    let run = match runner.batch_by_operators() {
        Some(why) => Err(why.to_owned()),
        None => {
            let started = Instant::now();
            let events = runner.batch_run(Some(sample))?.unwrap_or(0);
            let processing = started.elapsed();
            let started = Instant::now();
            runner.flush()?;
            Ok(Run {
                events,
                read: runner.stats().batch_run_events,
                processing,
                committing: started.elapsed(),
                commits: 1,
                rows: runner.stats().rows_written,
                state_peak: runner.stats().state_bytes_peak,
                memory_peak: runner.stats().batch_run_memory_bytes,
                state_end: runner.stats().state_bytes,
                growth_per_event: 0.0,
            })
        }
    };
    drop(runner);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(run)
}

/// `view` opened over a scratch SQLite store in a directory of its own (removed by the
/// caller).
fn scratch_runner(
    data: &DataDir,
    catalog: &ViewCatalog,
    view: &str,
) -> Result<(std::path::PathBuf, ViewRunner)> {
    let def = catalog
        .get(view)
        .ok_or_else(|| crate::EngineError::Sql(format!("unknown view '{view}'")))?;
    let scratch = tempfile_dir()?;
    let store = SqliteStore::open_scratch(&scratch.join("sample.db"))?;
    let runner = ViewRunner::open(data, catalog, def, Box::new(store), Arc::new(SystemClock))?;
    Ok((scratch, runner))
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "freshet-explain-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).map_err(|source| crate::EngineError::Io {
        context: format!("create the scratch directory {}", dir.display()),
        source,
    })?;
    Ok(dir)
}

fn per_million(x: f64, events: u64) -> f64 {
    x * 1e6 / events.max(1) as f64
}

fn bytes_text(bytes: f64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024.0 {
        return format!("{bytes:.0} B");
    }
    let mut value = bytes / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `seconds` in the unit a person reads it in: "40 s", "25 min", "3.6 h", "12.5 days".
fn rough_duration(seconds: f64) -> String {
    match seconds {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7_200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3_600.0),
        s => format!("{:.1} days", s / 86_400.0),
    }
}

fn duration_text(ms: u64) -> String {
    freshet_streams::duration::format_duration(Duration::from_millis(ms))
}

/// Explains how `view` runs. `rate` is the input rate in events per second (measured by the
/// caller, `None` if the log has been idle); `sample` caps the events each mode runs on.
pub fn explain(
    data: &DataDir,
    catalog: &ViewCatalog,
    view: &str,
    rate: Option<f64>,
    sample: u64,
) -> Result<Explanation> {
    let def = catalog
        .get(view)
        .ok_or_else(|| crate::EngineError::Sql(format!("unknown view '{view}'")))?;
    let sla_ms = def.options.freshness_ms;
    let (input_rate, rate_source) = match rate {
        Some(r) if r > 0.0 => (r, "measured over the last minute of ingest".to_owned()),
        _ => (
            IDLE_RATE_ASSUMED,
            format!(
                "no events in the last minute; costs are shown at an assumed \
                 {IDLE_RATE_ASSUMED:.0} events/s"
            ),
        ),
    };
    // Streaming first: its processing time per event is the cost the planner uses.
    let streaming_period = planner::streaming_period_ms(sla_ms);
    let chunk = |period_ms: u64| ((input_rate * period_ms as f64 / 1_000.0) as u64).max(1);
    let streaming = sample_run(data, catalog, view, sample, chunk(streaming_period))?;
    // A DataFusion batch run's memory per event bounds the batch periods the planner picks.
    let batch = batch_sample_run(data, catalog, view, sample)?;
    let costs = Costs {
        input_rate,
        seconds_per_event: streaming.processing.as_secs_f64() / streaming.events.max(1) as f64,
        commit_seconds: streaming.committing.as_secs_f64() / streaming.commits.max(1) as f64,
        batch_bytes_per_event: batch
            .as_ref()
            .map_or(0.0, |run| run.memory_peak as f64 / run.read.max(1) as f64),
        memory_budget_bytes: def.options.state_bytes_max as f64,
    };
    let chosen = planner::plan_for(def.options.mode, sla_ms, &costs);
    let plans = [
        Plan {
            mode: Mode::Streaming,
            period_ms: streaming_period,
        },
        planner::plan_for(crate::ModeChoice::MicroBatch, sla_ms, &costs),
        planner::plan_for(crate::ModeChoice::Batch, sla_ms, &costs),
    ];
    let mut alternatives = Vec::new();
    let mut batch_execution = String::new();
    for plan in plans {
        let run = match plan.mode {
            Mode::Streaming => streaming.clone(),
            Mode::Batch => match &batch {
                Ok(run) => {
                    let memory = if costs.batch_bytes_per_event > 0.0 {
                        format!(
                            "about {} of working memory per run at this rate and period; the \
                             view's budget is {}{}",
                            bytes_text(costs.batch_run_bytes(plan.period_ms)),
                            bytes_text(costs.memory_budget_bytes),
                            if costs.fits_memory(plan) {
                                ""
                            } else {
                                ", which even the shortest batch period exceeds"
                            }
                        )
                    } else {
                        "memory not measured: the sample made no window final".to_owned()
                    };
                    batch_execution = format!(
                        "DataFusion batch runs over the log, each recomputing the windows it \
                         makes final ({memory})"
                    );
                    run.clone()
                }
                Err(why) => {
                    batch_execution =
                        format!("the streaming operators on the batch schedule, because {why}");
                    sample_run(data, catalog, view, sample, chunk(plan.period_ms))?
                }
            },
            Mode::MicroBatch => sample_run(data, catalog, view, sample, chunk(plan.period_ms))?,
        };
        let busy = (run.processing + run.committing).as_secs_f64();
        alternatives.push(Alternative {
            mode: plan.mode,
            period_ms: plan.period_ms,
            freshness_p99_ms: (costs.staleness_seconds(plan) * 1_000.0).ceil() as u64,
            max_events_per_s: run.events as f64 / busy.max(1e-9),
            cpu_seconds_per_million: per_million(busy, run.events),
            store_writes_per_million: per_million(run.rows as f64, run.events),
            state_bytes_peak: run.state_peak,
            memory_bytes_peak: run.memory_peak,
            state_growth_bytes_per_million: run.growth_per_event * 1e6,
        });
    }
    let compiled = crate::runner::compile_view(data, catalog, def)?;
    let grows_with_input = compiled.root.keeps_state_to_the_end();
    let parallelism = parallelism(&compiled.root, &data.streams());
    let state = outlook(
        grows_with_input,
        &streaming,
        input_rate,
        def.options.state_bytes_max,
    );
    let sample_events = streaming.events;
    let auto = def.options.mode == crate::ModeChoice::Auto;
    let (mut risk, mitigation, condition) = reasons(chosen, sla_ms, &costs, auto);
    if chosen.mode == Mode::Batch && !costs.fits_memory(chosen) {
        // Only a view fixed to batch gets here: the planner would not choose it.
        risk.push_str(&format!(
            "; a run is estimated to need about {}, over the view's memory budget of {} \
             (mode = 'batch' is fixed, so it runs anyway)",
            bytes_text(costs.batch_run_bytes(chosen.period_ms)),
            bytes_text(costs.memory_budget_bytes)
        ));
    }
    Ok(Explanation {
        view: view.to_owned(),
        mode: chosen.mode,
        period_ms: chosen.period_ms,
        sla_ms,
        input_rate,
        rate_source,
        sample_events,
        costs,
        alternatives,
        risk,
        mitigation,
        condition,
        batch_execution,
        state,
        parallelism,
    })
}

/// The state's outlook from the streaming sample `run` at `rate` events/s under `budget`.
fn outlook(grows_with_input: bool, run: &Run, rate: f64, budget: u64) -> StateOutlook {
    let growth_bytes_per_million = run.growth_per_event * 1e6;
    let bytes_per_s = run.growth_per_event * rate;
    let budget_reached_in_s = (grows_with_input && bytes_per_s > 0.0)
        .then(|| budget.saturating_sub(run.state_end) as f64 / bytes_per_s);
    let now = bytes_text(run.state_end as f64);
    let summary = match budget_reached_in_s {
        Some(s) => format!(
            "{now} after the sample, growing {} per million events: some operator keeps \
             its state until the end of the streams (see DESCRIBE VIEW), so at {rate:.0} \
             events/s it reaches state_bytes_max ({}) in about {} (at the earliest: the cap \
             is per operator, the growth is the view's), and the view then stops with an \
             error; bound it with a window, or raise state_bytes_max",
            bytes_text(growth_bytes_per_million),
            bytes_text(budget as f64),
            rough_duration(s)
        ),
        None if grows_with_input => format!(
            "{now} after the sample; some operator keeps its state until the end of the \
             streams (see DESCRIBE VIEW), though it did not grow over the sample"
        ),
        None => format!(
            "{now} after the sample: every operator's state is freed by the watermark as \
             windows close, so it holds what is open (it grew {} per million events over \
             the sample's second half)",
            bytes_text(growth_bytes_per_million)
        ),
    };
    StateOutlook {
        grows_with_input,
        bytes_after_sample: run.state_end,
        growth_bytes_per_million,
        budget_bytes: budget,
        budget_reached_in_s,
        summary,
    }
}

/// One mode as the planner weighs it with a running view's measured costs.
#[derive(Debug, Clone, Serialize)]
pub struct Weighed {
    /// The mode.
    pub mode: Mode,
    /// Its period, ms.
    pub period_ms: u64,
    /// Longest staleness of a result on this schedule at the measured rate and costs, ms.
    pub freshness_max_ms: u64,
    /// Whether the view keeps up and that is within half the SLA (unrounded), the
    /// planner's rule for a periodic mode ([`planner::within_half_sla`]).
    pub within_half_sla: bool,
    /// Whether a run fits the view's memory budget (only batch runs are weighed).
    pub fits_memory: bool,
    /// The schedule the view runs on.
    pub chosen: bool,
}

/// How the planner sees a running view, from the costs it last measured (no sample run):
/// the schedule it chose, every mode weighed by the same rule, and the reasons that
/// [`explain`] gives.
#[derive(Debug, Clone, Serialize)]
pub struct Live {
    /// The chosen mode.
    pub mode: Mode,
    /// Its period, ms.
    pub period_ms: u64,
    /// The freshness SLA, ms.
    pub sla_ms: u64,
    /// The measured costs.
    pub costs: Costs,
    /// The share of one core the view needs at the measured rate.
    pub utilisation: f64,
    /// Streaming, micro-batch and batch, the chosen one marked.
    pub alternatives: Vec<Weighed>,
    /// What the choice risks.
    pub risk: String,
    /// How Freshet limits that risk.
    pub mitigation: String,
    /// When Freshet would choose differently.
    pub condition: String,
}

/// How the planner weighs `def`'s modes with the `costs` a running view measured.
pub fn live(def: &crate::ViewDef, costs: Costs) -> Live {
    let sla_ms = def.options.freshness_ms;
    let chosen = planner::plan_for(def.options.mode, sla_ms, &costs);
    let plans = [
        Plan {
            mode: Mode::Streaming,
            period_ms: planner::streaming_period_ms(sla_ms),
        },
        planner::plan_for(crate::ModeChoice::MicroBatch, sla_ms, &costs),
        planner::plan_for(crate::ModeChoice::Batch, sla_ms, &costs),
    ];
    let alternatives = plans
        .iter()
        .map(|&plan| {
            let freshness_max_ms = (costs.staleness_seconds(plan) * 1_000.0).ceil() as u64;
            Weighed {
                mode: plan.mode,
                period_ms: plan.period_ms,
                freshness_max_ms,
                within_half_sla: planner::within_half_sla(plan, sla_ms, &costs),
                fits_memory: costs.fits_memory(plan),
                chosen: plan == chosen,
            }
        })
        .collect();
    let auto = def.options.mode == crate::ModeChoice::Auto;
    let (risk, mitigation, condition) = reasons(chosen, sla_ms, &costs, auto);
    Live {
        mode: chosen.mode,
        period_ms: chosen.period_ms,
        sla_ms,
        costs,
        utilisation: costs.utilisation(),
        alternatives,
        risk,
        mitigation,
        condition,
    }
}

/// The risk of `plan`, its mitigation, and when the planner would choose otherwise.
fn reasons(plan: Plan, sla_ms: u64, costs: &Costs, auto: bool) -> (String, String, String) {
    let period = duration_text(plan.period_ms);
    let micro_from = duration_text(planner::sla_needed_ms(planner::PERIODS_MS[0], costs));
    let shortest_batch = Plan {
        mode: Mode::Batch,
        period_ms: planner::BATCH_PERIOD_MIN_MS,
    };
    let batch_from = if costs.fits_memory(shortest_batch) {
        format!(
            "batch from an SLA of {}",
            duration_text(planner::sla_needed_ms(planner::BATCH_PERIOD_MIN_MS, costs))
        )
    } else {
        format!(
            "batch only at a lower rate or with a larger memory budget (a {} run would need \
             about {}, over the view's {})",
            duration_text(planner::BATCH_PERIOD_MIN_MS),
            bytes_text(costs.batch_run_bytes(planner::BATCH_PERIOD_MIN_MS)),
            bytes_text(costs.memory_budget_bytes)
        )
    };
    let utilisation = costs.utilisation() * 100.0;
    match plan.mode {
        Mode::Streaming => (
            format!(
                "the most store writes per event: a commit every {period}, each rewriting the \
                 rows that changed since the last"
            ),
            "rows are buffered between commits, so a key updated many times in one \
             interval is written once"
                .to_owned(),
            if costs.utilisation() >= 1.0 {
                format!(
                    "the view needs {utilisation:.0}% of a core at this rate and cannot keep up \
                     in any mode; it streams to stay as close as it can"
                )
            } else {
                format!(
                    "micro-batch once the SLA is {micro_from} or more (now {}); {batch_from}",
                    duration_text(sla_ms)
                )
            },
        ),
        Mode::MicroBatch | Mode::Batch => (
            format!(
                "results are up to {} old between runs, and a burst of input lengthens a \
                 run (the view uses {utilisation:.1}% of a core at this rate)",
                duration_text((costs.staleness_seconds(plan) * 1_000.0).ceil() as u64)
            ),
            format!(
                "half the SLA is kept as headroom, and every {} the planner re-measures \
                 the rate and costs and shortens the period (or streams) when freshness \
                 nears the SLA",
                duration_text(crate::runner::REPLAN_EVERY.as_millis() as u64)
            ),
            format!(
                "streaming if the SLA drops below {micro_from} or the rate grows past what a \
                 {period} period can absorb; {batch_from}{}",
                if auto {
                    memory_note(plan, sla_ms, costs)
                } else {
                    String::new()
                }
            ),
        ),
    }
}

/// When the memory budget, not the SLA, keeps the planner's period short: says so.
fn memory_note(plan: Plan, sla_ms: u64, costs: &Costs) -> String {
    let longer = planner::PERIODS_MS
        .iter()
        .copied()
        .filter(|&p| p > plan.period_ms && p >= planner::BATCH_PERIOD_MIN_MS)
        .map(|period_ms| Plan {
            mode: Mode::Batch,
            period_ms,
        })
        .find(|&p| {
            costs.staleness_seconds(p) * 1_000.0 <= sla_ms as f64 / 2.0 && !costs.fits_memory(p)
        })
        .map(|p| p.period_ms);
    match longer {
        Some(p) => format!(
            "; a {} batch period would need about {} of working memory per run, over the \
             view's budget of {} (state_bytes_max), so longer periods wait for a lower rate \
             or a larger budget",
            duration_text(p),
            bytes_text(costs.batch_run_bytes(p)),
            bytes_text(costs.memory_budget_bytes)
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(sla_ms: u64, mode: crate::ModeChoice) -> crate::ViewDef {
        crate::ViewDef {
            name: "v".into(),
            query: "SELECT 1".into(),
            options: crate::ViewOptions {
                freshness_ms: sla_ms,
                mode,
                ..crate::ViewOptions::default()
            },
            ddl: String::new(),
        }
    }

    const COSTS: Costs = Costs {
        input_rate: 10_000.0,
        seconds_per_event: 2e-6,
        commit_seconds: 0.005,
        batch_bytes_per_event: 0.0,
        memory_budget_bytes: 0.0,
    };

    /// The live view of the planner chooses what the planner chooses, and weighs every
    /// mode by the planner's rule: a periodic mode is chosen only within half the SLA.
    #[test]
    fn live_weighs_every_mode_by_the_planners_rule() {
        for (sla_ms, mode) in [
            (1_000, Mode::Streaming),
            (60_000, Mode::MicroBatch),
            (7_200_000, Mode::Batch),
        ] {
            let live = live(&def(sla_ms, crate::ModeChoice::Auto), COSTS);
            let chosen = planner::choose(sla_ms, &COSTS);
            assert_eq!((live.mode, live.period_ms), (chosen.mode, chosen.period_ms));
            assert_eq!(live.mode, mode, "SLA {sla_ms} ms");
            let modes: Vec<Mode> = live.alternatives.iter().map(|a| a.mode).collect();
            assert_eq!(modes, [Mode::Streaming, Mode::MicroBatch, Mode::Batch]);
            let marked: Vec<&Weighed> = live.alternatives.iter().filter(|a| a.chosen).collect();
            assert_eq!(marked.len(), 1, "{live:?}");
            assert_eq!(marked[0].mode, mode);
            if mode != Mode::Streaming {
                assert!(marked[0].within_half_sla, "{live:?}");
            }
            assert!(!live.risk.is_empty() && !live.condition.is_empty());
        }
        // A view that cannot keep up (utilisation 2) is within no SLA on any schedule: the
        // planner streams, and the table must not show a periodic mode it passed over as
        // within half the SLA.
        let busy = Costs {
            input_rate: 1_000_000.0,
            ..COSTS
        };
        let overloaded = live(&def(7_200_000, crate::ModeChoice::Auto), busy);
        assert_eq!(overloaded.mode, Mode::Streaming);
        assert!(
            overloaded.alternatives.iter().all(|a| !a.within_half_sla),
            "{overloaded:?}"
        );
        // Over many SLAs (some of whose halves are not whole ms), the table agrees with the
        // choice: the chosen periodic mode is within half the SLA, and where the planner
        // streams, no periodic mode is both within half the SLA and within memory.
        // (A commit of 5.2 ms makes a 1 s period's staleness 1025.2 ms: under an SLA of
        // 2051 ms the planner takes it, while its whole ms, 1026, exceed half the SLA.)
        let fractional = Costs {
            commit_seconds: 0.0052,
            ..COSTS
        };
        for (sla_ms, costs) in (1..40_000).flat_map(|sla| [(sla, COSTS), (sla, fractional)]) {
            let live = live(&def(sla_ms, crate::ModeChoice::Auto), costs);
            for a in &live.alternatives {
                if a.mode == Mode::Streaming {
                    continue;
                }
                if a.chosen {
                    assert!(a.within_half_sla, "SLA {sla_ms}: {live:?}");
                } else if live.mode == Mode::Streaming {
                    assert!(
                        !(a.within_half_sla && a.fits_memory),
                        "SLA {sla_ms}: {live:?}"
                    );
                }
            }
        }
        // A mode the options fix is the one shown chosen, whatever the SLA allows.
        let fixed = live(&def(60_000, crate::ModeChoice::Streaming), COSTS);
        assert_eq!(fixed.mode, Mode::Streaming);
        assert!(fixed.alternatives[0].chosen);
    }

    /// State that only the end of the streams frees reaches the cap at the rate it grew;
    /// state the watermark frees never is said to.
    #[test]
    fn the_outlook_says_when_growing_state_reaches_its_cap() {
        let run = Run {
            events: 100_000,
            processing: Duration::ZERO,
            committing: Duration::ZERO,
            commits: 4,
            rows: 0,
            state_peak: 1_000_000,
            memory_peak: 1_000_000,
            read: 0,
            state_end: 1_000_000,
            growth_per_event: 10.0,
        };
        // 10 bytes an event at 1,000 events/s: 10 kB/s, so 9 MB more take 900 s.
        let growing = outlook(true, &run, 1_000.0, 10_000_000);
        assert_eq!(growing.budget_reached_in_s, Some(900.0));
        assert_eq!(growing.growth_bytes_per_million, 10_000_000.0);
        assert!(
            growing.summary.contains("in about 15 min"),
            "{}",
            growing.summary
        );
        let windowed = outlook(false, &run, 1_000.0, 10_000_000);
        assert_eq!(windowed.budget_reached_in_s, None);
        assert!(windowed.summary.contains("freed by the watermark"));
        let flat = outlook(
            true,
            &Run {
                growth_per_event: 0.0,
                ..run
            },
            1_000.0,
            10_000_000,
        );
        assert_eq!(flat.budget_reached_in_s, None);
        assert_eq!(rough_duration(40.0), "40 s");
        assert_eq!(rough_duration(12_968.8), "3.6 h");
        assert_eq!(rough_duration(1_080_000.0), "12.5 days");
    }
}
