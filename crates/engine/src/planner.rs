//! The SLA planner: from a view's freshness SLA, its measured input rate and its measured
//! costs, how to run it.
//!
//! **Streaming** steps the operators continuously and commits every quarter of the SLA
//! (20 ms to 1 s). **Micro-batch** (period T) wakes every T, processes everything new in the
//! log as one batch and commits once. **Batch** runs every 15 minutes or more: a DataFusion
//! batch run for views whose rows all belong to fixed windows (`runner::batch_run`), the
//! operators otherwise. Every mode reads on from the same committed offsets, so a switch
//! loses and repeats nothing.
//!
//! A period T keeps a result at most `T + T × rate × cost_per_event + commit` stale. The
//! planner picks the longest period whose staleness fits in half the SLA (the other half is
//! headroom for bursts): longer periods commit less often and rewrite each changed row
//! once per period instead of once per commit, which is what costs the store. If no period
//! of at least a second fits, the view runs streaming. A DataFusion batch run holds the
//! working memory of the windows it recomputes, which grows with the period: a batch period
//! is only chosen if a run's estimated memory (measured per event, times the events of a
//! period) fits the view's memory budget (`state_bytes_max`).

use freshet_types::limits::BATCH_RUN_EVENTS_MAX;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a view runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Step continuously; commit every quarter of the SLA.
    Streaming,
    /// Every period, process everything new as one batch and commit once.
    MicroBatch,
    /// A scheduled run every 15 minutes or more.
    Batch,
}

impl Mode {
    /// The mode's name, as in `explain --json` and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Streaming => "streaming",
            Mode::MicroBatch => "micro_batch",
            Mode::Batch => "batch",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A schedule: the mode and, for the periodic ones, the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The mode.
    pub mode: Mode,
    /// Milliseconds between runs (micro-batch and batch) or between commits (streaming).
    pub period_ms: u64,
}

/// Periods the planner chooses among, in ms.
pub const PERIODS_MS: [u64; 17] = [
    1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000, 3_600_000, 7_200_000, 21_600_000, 43_200_000, 86_400_000,
];

/// Periods of this length or more are batch runs.
pub const BATCH_PERIOD_MIN_MS: u64 = 900_000;

/// The streaming commit interval for an SLA: a quarter of it, between 20 ms and 1 s.
pub fn streaming_period_ms(sla_ms: u64) -> u64 {
    (sla_ms / 4).clamp(20, 1_000)
}

/// What running a view costs, as measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Costs {
    /// Input events per second.
    pub input_rate: f64,
    /// Seconds of processing per input event.
    pub seconds_per_event: f64,
    /// Seconds one commit takes.
    pub commit_seconds: f64,
    /// Bytes of DataFusion working memory a batch run holds per event it claims (0 when
    /// not measured, or when the operators run batch mode).
    #[serde(default)]
    pub batch_bytes_per_event: f64,
    /// The memory one run of the view may hold, bytes (its `state_bytes_max`; 0: no limit).
    #[serde(default)]
    pub memory_budget_bytes: f64,
}

impl Costs {
    /// The share of one core the view needs to keep up (1 or more: it cannot).
    pub fn utilisation(&self) -> f64 {
        self.input_rate * self.seconds_per_event
    }

    /// The working memory one batch run of `period_ms` is estimated to hold, bytes: the
    /// period's events, up to what one run claims (`BATCH_RUN_EVENTS_MAX`; runs follow one
    /// another beyond it).
    pub fn batch_run_bytes(&self, period_ms: u64) -> f64 {
        let events =
            (self.input_rate * period_ms as f64 / 1_000.0).min(BATCH_RUN_EVENTS_MAX as f64);
        self.batch_bytes_per_event * events
    }

    /// Whether a run of `plan` fits the memory budget (only batch runs are weighed: the
    /// operators' state does not grow with the period).
    pub fn fits_memory(&self, plan: Plan) -> bool {
        plan.mode != Mode::Batch
            || self.memory_budget_bytes <= 0.0
            || self.batch_run_bytes(plan.period_ms) <= self.memory_budget_bytes
    }

    /// The longest staleness a schedule allows, in seconds: a row waits up to a period,
    /// then for the period's events to be processed, then for the commit.
    pub fn staleness_seconds(&self, plan: Plan) -> f64 {
        let period = plan.period_ms as f64 / 1_000.0;
        period + period * self.utilisation() + self.commit_seconds
    }
}

/// Whether `plan` keeps results within half the SLA `sla_ms`: the view keeps up with its
/// input (utilisation below 1; otherwise it falls further behind whatever the schedule) and
/// a row's longest staleness on it is at most half the SLA. [`choose`] takes a periodic mode
/// only where this holds (and its runs fit the memory budget).
pub fn within_half_sla(plan: Plan, sla_ms: u64, costs: &Costs) -> bool {
    costs.utilisation() < 1.0 && costs.staleness_seconds(plan) <= sla_ms as f64 / 1_000.0 / 2.0
}

/// The schedule for a view with freshness SLA `sla_ms` and costs `costs`.
pub fn choose(sla_ms: u64, costs: &Costs) -> Plan {
    let periodic = PERIODS_MS
        .iter()
        .rev()
        .map(|&period_ms| Plan {
            mode: if period_ms >= BATCH_PERIOD_MIN_MS {
                Mode::Batch
            } else {
                Mode::MicroBatch
            },
            period_ms,
        })
        .find(|&plan| within_half_sla(plan, sla_ms, costs) && costs.fits_memory(plan));
    periodic.unwrap_or(Plan {
        mode: Mode::Streaming,
        period_ms: streaming_period_ms(sla_ms),
    })
}

/// The schedule for a view whose options ask for `choice`: the planner's choice under
/// `auto`, else the asked mode with the period the planner would give it.
pub fn plan_for(choice: crate::options::ModeChoice, sla_ms: u64, costs: &Costs) -> Plan {
    use crate::options::ModeChoice;
    let chosen = choose(sla_ms, costs);
    match choice {
        ModeChoice::Auto => chosen,
        ModeChoice::Streaming => Plan {
            mode: Mode::Streaming,
            period_ms: streaming_period_ms(sla_ms),
        },
        ModeChoice::MicroBatch => Plan {
            mode: Mode::MicroBatch,
            period_ms: match chosen.mode {
                Mode::MicroBatch => chosen.period_ms,
                Mode::Batch => BATCH_PERIOD_MIN_MS / 2,
                Mode::Streaming => PERIODS_MS[0],
            },
        },
        // The longest batch period within the SLA and the memory budget, else the shortest.
        ModeChoice::Batch => Plan {
            mode: Mode::Batch,
            period_ms: chosen.period_ms.max(BATCH_PERIOD_MIN_MS),
        },
    }
}

/// The shortest SLA under which the planner would choose a periodic mode with period
/// `period_ms` (or a longer one), in ms.
pub fn sla_needed_ms(period_ms: u64, costs: &Costs) -> u64 {
    let plan = Plan {
        mode: Mode::MicroBatch,
        period_ms,
    };
    (costs.staleness_seconds(plan) * 2.0 * 1_000.0).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const COSTS: Costs = Costs {
        input_rate: 10_000.0,
        seconds_per_event: 2e-6,
        commit_seconds: 0.005,
        batch_bytes_per_event: 0.0,
        memory_budget_bytes: 0.0,
    };

    #[test]
    fn the_mode_relaxes_from_streaming_to_micro_batch_to_batch_with_the_sla() {
        assert_eq!(choose(1_000, &COSTS).mode, Mode::Streaming);
        assert_eq!(choose(1_000, &COSTS).period_ms, 250);
        let minute = choose(60_000, &COSTS);
        assert_eq!(minute.mode, Mode::MicroBatch);
        assert_eq!(minute.period_ms, 20_000);
        let day = choose(86_400_000, &COSTS);
        assert_eq!(day.mode, Mode::Batch);
        assert_eq!(day.period_ms, 21_600_000);
    }

    #[test]
    fn a_view_that_cannot_keep_up_streams() {
        let busy = Costs {
            seconds_per_event: 2e-4,
            ..COSTS
        };
        assert!(busy.utilisation() >= 1.0);
        assert_eq!(choose(86_400_000, &busy).mode, Mode::Streaming);
    }

    #[test]
    fn batch_periods_are_kept_within_the_memory_budget() {
        // 100 bytes per event at 10,000 events/s: 15 min of events is 0.9 GB, 30 min 1.8 GB;
        // from 1 h on a run claims its cap of 20 million events, 2 GB.
        let measured = Costs {
            batch_bytes_per_event: 100.0,
            memory_budget_bytes: 1e9,
            ..COSTS
        };
        let day = choose(86_400_000, &measured);
        assert_eq!(day.mode, Mode::Batch);
        assert_eq!(day.period_ms, 900_000);
        let roomy = Costs {
            memory_budget_bytes: 2.5e9,
            ..measured
        };
        assert_eq!(choose(86_400_000, &roomy).period_ms, 21_600_000);
        // Not even 15 minutes fits: micro-batch, whose operators' state does not grow with
        // the period.
        let tight = Costs {
            memory_budget_bytes: 1e8,
            ..measured
        };
        let day = choose(86_400_000, &tight);
        assert_eq!(day.mode, Mode::MicroBatch);
        assert_eq!(day.period_ms, 600_000);
        // No budget, or nothing measured: the period is not limited.
        for costs in [
            Costs {
                memory_budget_bytes: 0.0,
                ..measured
            },
            COSTS,
        ] {
            assert_eq!(choose(86_400_000, &costs).period_ms, 21_600_000);
        }
    }

    #[test]
    fn costlier_events_shorten_the_period() {
        let slower = Costs {
            seconds_per_event: 5e-5,
            ..COSTS
        };
        assert!(choose(60_000, &slower).period_ms < choose(60_000, &COSTS).period_ms);
        assert!(sla_needed_ms(1_000, &COSTS) > 2_000);
    }
}
