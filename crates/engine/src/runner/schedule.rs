//! When a running view works: its plan (mode and period), when its next periodic run is
//! due, and the cost meter the planner re-plans from every [`REPLAN_EVERY`].
//!
//! The schedule decides nothing about what a run does (that is the runner's state
//! machine); it only says when, and measures what the work cost.

use crate::Stats;
use crate::options::ModeChoice;
use crate::planner::{self, Costs, Mode, Plan};
use std::time::Duration;

/// How often a running view's schedule is re-evaluated from its measured costs.
pub const REPLAN_EVERY: Duration = Duration::from_secs(10);

/// The commit time assumed before one is measured.
const UNMEASURED_COMMIT_SECONDS: f64 = 0.005;

/// A view's schedule and cost meter.
pub(super) struct Schedule {
    choice: ModeChoice,
    sla_ms: u64,
    memory_budget_bytes: f64,
    plan: Plan,
    /// When a periodic schedule runs next (ms since the epoch).
    next_run_ms: i64,
    /// Whether a periodic run is under way (it spans several turns of the loop).
    run_under_way: bool,
    /// Processing time and events since the planner last looked, and when that was.
    busy: Duration,
    events_since_plan: u64,
    last_plan_ms: i64,
    /// The processing cost last measured, kept when a period had nothing to measure.
    seconds_per_event: f64,
    /// The costs the last plan was made from; `None` before the first look.
    planned_from: Option<Costs>,
}

impl Schedule {
    /// The schedule of a view opened at `now_ms`, planned before anything is measured.
    pub(super) fn new(
        choice: ModeChoice,
        sla_ms: u64,
        memory_budget_bytes: u64,
        now_ms: i64,
    ) -> Schedule {
        let unmeasured = Costs {
            input_rate: 0.0,
            seconds_per_event: 0.0,
            commit_seconds: UNMEASURED_COMMIT_SECONDS,
            batch_bytes_per_event: 0.0,
            memory_budget_bytes: memory_budget_bytes as f64,
        };
        Schedule {
            choice,
            sla_ms,
            memory_budget_bytes: memory_budget_bytes as f64,
            plan: planner::plan_for(choice, sla_ms, &unmeasured),
            next_run_ms: now_ms,
            run_under_way: false,
            busy: Duration::ZERO,
            events_since_plan: 0,
            last_plan_ms: now_ms,
            seconds_per_event: 0.0,
            planned_from: None,
        }
    }

    /// The plan in force.
    pub(super) fn plan(&self) -> Plan {
        self.plan
    }

    /// The costs the planner last planned from (every [`REPLAN_EVERY`]); `None` before.
    pub(super) fn planned_from(&self) -> Option<Costs> {
        self.planned_from
    }

    /// Whether a periodic run is due at `now_ms`.
    pub(super) fn run_due(&self, now_ms: i64) -> bool {
        now_ms >= self.next_run_ms
    }

    /// Whether a periodic run is under way.
    pub(super) fn run_under_way(&self) -> bool {
        self.run_under_way
    }

    /// A periodic run starts; it goes on over the next turns until [`Schedule::ran`].
    pub(super) fn begin_run(&mut self) {
        self.run_under_way = true;
    }

    /// A periodic run is over (or one that finishes in a turn ran): the next is one period
    /// after `now_ms`.
    pub(super) fn ran(&mut self, now_ms: i64) {
        self.run_under_way = false;
        self.next_run_ms = now_ms + self.plan.period_ms as i64;
    }

    /// Takes `plan` from now on; returns the plan it replaces if the mode changed. A
    /// shorter period applies at once; a longer one after the next run.
    pub(super) fn set_plan(&mut self, plan: Plan, now_ms: i64) -> Option<Plan> {
        let old = self.plan;
        // A streaming view has no periodic run under way.
        if plan.mode == Mode::Streaming {
            self.run_under_way = false;
        }
        self.next_run_ms = self.next_run_ms.min(now_ms + plan.period_ms as i64);
        self.plan = plan;
        (old.mode != plan.mode).then_some(old)
    }

    /// Records `events` processed in `took`.
    pub(super) fn worked(&mut self, events: u64, took: Duration) {
        self.busy += took;
        self.events_since_plan += events;
    }

    /// What the view costs, as measured since the planner last looked. `batch_memory`
    /// says whether DataFusion batch runs hold memory that grows with the period.
    pub(super) fn measured_costs(&self, stats: &Stats, now_ms: i64, batch_memory: bool) -> Costs {
        let elapsed = (now_ms - self.last_plan_ms).max(1) as f64 / 1_000.0;
        let commits = &stats.commit_ms;
        Costs {
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
            batch_bytes_per_event: if batch_memory {
                stats.batch_run_memory_bytes as f64 / stats.batch_run_events.max(1) as f64
            } else {
                0.0
            },
            memory_budget_bytes: self.memory_budget_bytes,
        }
    }

    /// Every [`REPLAN_EVERY`]: the plan the measured costs call for, and the meter starts
    /// over; `None` between two looks.
    pub(super) fn replan(
        &mut self,
        stats: &Stats,
        now_ms: i64,
        batch_memory: bool,
    ) -> Option<Plan> {
        if now_ms - self.last_plan_ms < REPLAN_EVERY.as_millis() as i64 {
            return None;
        }
        let costs = self.measured_costs(stats, now_ms, batch_memory);
        self.seconds_per_event = costs.seconds_per_event;
        self.busy = Duration::ZERO;
        self.events_since_plan = 0;
        self.last_plan_ms = now_ms;
        self.planned_from = Some(costs);
        Some(planner::plan_for(self.choice, self.sla_ms, &costs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_periodic_run_spans_turns_until_it_ran_and_the_next_is_a_period_later() {
        let mut s = Schedule::new(ModeChoice::MicroBatch, 60_000, 1 << 30, 0);
        assert_ne!(s.plan().mode, Mode::Streaming);
        let period = s.plan().period_ms as i64;
        assert!(s.run_due(0) && !s.run_under_way());
        s.begin_run();
        assert!(s.run_under_way());
        s.ran(10);
        assert!(!s.run_under_way());
        assert!(!s.run_due(10 + period - 1));
        assert!(s.run_due(10 + period));
    }

    #[test]
    fn a_mode_change_is_reported_and_streaming_ends_a_run_under_way() {
        let mut s = Schedule::new(ModeChoice::MicroBatch, 60_000, 1 << 30, 0);
        let old = s.plan();
        s.begin_run();
        let streaming = Plan {
            mode: Mode::Streaming,
            period_ms: 250,
        };
        assert_eq!(s.set_plan(streaming, 0), Some(old));
        assert!(!s.run_under_way());
        assert_eq!(s.set_plan(streaming, 0), None);
        // A shorter period applies at once.
        assert!(s.run_due(250));
    }

    #[test]
    fn the_meter_replans_every_ten_seconds_and_starts_over() {
        let mut s = Schedule::new(ModeChoice::Auto, 60_000, 1 << 30, 0);
        let stats = Stats::default();
        s.worked(1_000, Duration::from_millis(10));
        assert!(s.replan(&stats, 5_000, false).is_none());
        let costs = s.measured_costs(&stats, 10_000, false);
        assert!((costs.input_rate - 100.0).abs() < 1e-9);
        assert!((costs.seconds_per_event - 1e-5).abs() < 1e-12);
        assert!(s.planned_from().is_none());
        assert!(s.replan(&stats, 10_000, false).is_some());
        assert_eq!(s.planned_from(), Some(costs));
        // Nothing measured since: the last cost per event is kept.
        let again = s.measured_costs(&stats, 20_000, false);
        assert_eq!(again.input_rate, 0.0);
        assert!((again.seconds_per_event - 1e-5).abs() < 1e-12);
    }
}
