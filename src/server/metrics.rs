//! `GET /metrics`: Prometheus text format (version 0.0.4).
//!
//! Every metric name is a constant below, `freshet_<subsystem>_<name>_<unit>`, except the
//! standard `process_*` families (`process_stats`). Labels come
//! from bounded sets only: stream and view names (the catalog), partition numbers (fixed per
//! stream) and the late-data policy. Counters count since the figures were last reset:
//! ingest counters since the server started, view counters over the view's life (they are
//! committed with its results).

use super::error::ApiError;
use super::state::App;
use super::views::{ViewFigures, all_figures, blocking};
use crate::app::prometheus::Exposition;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use freshet_engine::histogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Rows accepted into a stream since the server started.
pub const INGEST_EVENTS: &str = "freshet_ingest_events_total";
/// Rows rejected (sent to the dead-letter stream) since the server started.
pub const INGEST_REJECTED: &str = "freshet_ingest_rejected_events_total";
/// Payload bytes appended to a stream since the server started.
pub const INGEST_BYTES: &str = "freshet_ingest_bytes_total";
/// A partition's end offset (events ever appended).
pub const LOG_END_OFFSET: &str = "freshet_log_end_offset_events";
/// A stream's dead-letter partition's end offset.
pub const LOG_DEAD_LETTERS: &str = "freshet_log_dead_letters_events";
/// The first offset of a partition not yet reflected in a view's stored results.
pub const VIEW_COMMITTED_OFFSET: &str = "freshet_view_committed_offset_events";
/// Events in a view's input partitions not yet reflected in its stored results.
pub const VIEW_LAG: &str = "freshet_view_lag_events";
/// A view's staleness (docs/http-api.md); absent before its first commit.
pub const VIEW_STALENESS: &str = "freshet_view_staleness_seconds";
/// A view's freshness SLA.
pub const VIEW_SLA: &str = "freshet_view_freshness_sla_seconds";
/// 1 if the view's staleness is within its SLA, else 0.
pub const VIEW_SLA_MET: &str = "freshet_view_sla_met_ratio";
/// A view's watermark, in seconds since the epoch; absent before it has one and after the
/// end of the stream.
pub const VIEW_WATERMARK: &str = "freshet_view_watermark_seconds";
/// Events a view has read.
pub const VIEW_INPUT_EVENTS: &str = "freshet_view_input_events_total";
/// Result rows a view has written (re-writes included).
pub const VIEW_ROWS_WRITTEN: &str = "freshet_view_rows_written_total";
/// Late events by what the view's policy did with them (`drop`, `dead_letter`, `update`).
pub const VIEW_LATE_EVENTS: &str = "freshet_view_late_events_total";
/// A view's operator state at its last commit (approximate).
pub const VIEW_STATE: &str = "freshet_view_state_bytes";
/// Store commits that failed with a retriable error and were retried.
pub const STORE_COMMIT_RETRIES: &str = "freshet_store_commit_retries_total";
/// Per event, from its ingest to the start of the commit that made its effect durable.
pub const VIEW_INGEST_TO_COMMIT: &str = "freshet_view_ingest_to_commit_seconds";
/// Duration of the store's commit transactions.
pub const STORE_COMMIT_DURATION: &str = "freshet_store_commit_duration_seconds";
/// Times the planner moved a view to another mode.
pub const VIEW_MODE_SWITCHES: &str = "freshet_view_mode_switches_total";
/// Batch runs DataFusion executed for a view in batch mode.
pub const VIEW_BATCH_RUNS: &str = "freshet_view_batch_runs_total";
/// 1 for the mode a view runs in (label `mode`: streaming, micro_batch, batch), else 0.
pub const VIEW_MODE: &str = "freshet_view_mode_ratio";
/// Rows compared by scheduled reconciliations, by result (`matched`, `mismatched`,
/// `missing`, `extra`).
pub const RECONCILE_ROWS: &str = "freshet_reconcile_rows_total";
/// The last scheduled reconciliation's correctness ratio (matched / compared).
pub const RECONCILE_RATIO: &str = "freshet_reconcile_correctness_ratio";
/// Scheduled reconciliation runs, failed ones included.
pub const RECONCILE_RUNS: &str = "freshet_reconcile_runs_total";
/// 1 while the views run, 0 once they stopped (see `/readyz`).
pub const VIEWS_UP: &str = "freshet_views_up_ratio";
/// Always 1; the label `version` says which build answers.
pub const BUILD_INFO: &str = "freshet_build_info";

/// `GET /metrics`.
pub async fn metrics(State(app): State<Arc<App>>) -> Result<impl IntoResponse, ApiError> {
    let text = blocking(move || render(&app)).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

fn render(app: &App) -> Result<String, ApiError> {
    let mut e = Exposition::default();
    // Ingest counters live in the process that ingests; a query-only server has none.
    let streams: Vec<_> = app
        .log
        .writer_dir()
        .map(|dir| {
            dir.streams()
                .into_iter()
                .filter_map(|d| dir.stream(&d.name).ok())
                .collect()
        })
        .unwrap_or_default();
    type Counter = fn(&freshet_streams::stream::StreamCounters) -> u64;
    let counters: [(&str, &str, Counter); 3] = [
        (
            INGEST_EVENTS,
            "Rows accepted into the stream since the server started.",
            |c| c.accepted.load(Ordering::Relaxed),
        ),
        (
            INGEST_REJECTED,
            "Rows rejected to the dead-letter stream since the server started.",
            |c| c.rejected.load(Ordering::Relaxed),
        ),
        (
            INGEST_BYTES,
            "Payload bytes appended since the server started.",
            |c| c.bytes.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, read) in counters {
        e.family(name, "counter", help);
        for s in &streams {
            e.sample(
                name,
                &[("stream", &s.def().name)],
                read(s.counters()) as f64,
            );
        }
    }
    e.family(
        LOG_END_OFFSET,
        "gauge",
        "Events ever appended to the partition.",
    );
    for s in &streams {
        for (p, part) in s.partitions().iter().enumerate() {
            let p = p.to_string();
            e.sample(
                LOG_END_OFFSET,
                &[("stream", &s.def().name), ("partition", &p)],
                part.visible_end().0 as f64,
            );
        }
    }
    e.family(
        LOG_DEAD_LETTERS,
        "gauge",
        "Rows ever written to the stream's dead-letter stream.",
    );
    for s in &streams {
        e.sample(
            LOG_DEAD_LETTERS,
            &[("stream", &s.def().name)],
            s.dead_letters().visible_end().0 as f64,
        );
    }

    let views = all_figures(app)?;
    e.family(
        VIEWS_UP,
        "gauge",
        "1 while the views run, 0 once they stopped.",
    );
    e.sample(
        VIEWS_UP,
        &[],
        if app.views_error().is_none() {
            1.0
        } else {
            0.0
        },
    );
    e.family(
        VIEW_COMMITTED_OFFSET,
        "gauge",
        "First offset not reflected in the view's results.",
    );
    for v in &views {
        for o in &v.freshness.offsets {
            let p = o.partition.to_string();
            e.sample(
                VIEW_COMMITTED_OFFSET,
                &[
                    ("view", &v.def.name),
                    ("stream", &o.stream),
                    ("partition", &p),
                ],
                o.next_offset as f64,
            );
        }
    }
    // One sample per view; `None` leaves the view out (no value yet).
    type PerView = fn(&ViewFigures) -> Option<f64>;
    let per_view: [(&str, &str, &str, PerView); 11] = [
        (
            VIEW_LAG,
            "gauge",
            "Input events not yet reflected in the view's results.",
            |v| v.freshness.lag_events.map(|l| l as f64),
        ),
        (
            VIEW_STALENESS,
            "gauge",
            "Now minus the time before which all ingested input is reflected.",
            |v| v.freshness.staleness_ms.map(|s| s as f64 / 1000.0),
        ),
        (VIEW_SLA, "gauge", "The view's freshness SLA.", |v| {
            Some(v.freshness.sla_ms as f64 / 1000.0)
        }),
        (
            VIEW_SLA_MET,
            "gauge",
            "1 if the staleness is within the SLA, else 0.",
            |v| Some(if v.freshness.sla_met { 1.0 } else { 0.0 }),
        ),
        (
            VIEW_WATERMARK,
            "gauge",
            "The view's watermark, seconds since the epoch.",
            |v| {
                v.freshness
                    .watermark_ms
                    .filter(|&w| w != i64::MAX)
                    .map(|w| w as f64 / 1000.0)
            },
        ),
        (
            VIEW_INPUT_EVENTS,
            "counter",
            "Events the view has read.",
            |v| Some(v.stats.input_events as f64),
        ),
        (
            VIEW_ROWS_WRITTEN,
            "counter",
            "Result rows the view has written.",
            |v| Some(v.stats.rows_written as f64),
        ),
        (
            STORE_COMMIT_RETRIES,
            "counter",
            "Store commits retried after a retriable failure.",
            |v| Some(v.stats.commit_retries as f64),
        ),
        (
            VIEW_STATE,
            "gauge",
            "The view's operator state at its last commit.",
            |v| Some(v.stats.state_bytes as f64),
        ),
        (
            VIEW_MODE_SWITCHES,
            "counter",
            "Times the planner moved the view to another mode.",
            |v| Some(v.stats.mode_switches as f64),
        ),
        (
            VIEW_BATCH_RUNS,
            "counter",
            "Batch runs DataFusion executed for the view in batch mode.",
            |v| Some(v.stats.batch_runs as f64),
        ),
    ];
    for (name, kind, help, value) in per_view {
        e.family(name, kind, help);
        for v in &views {
            if let Some(x) = value(v) {
                e.sample(name, &[("view", &v.def.name)], x);
            }
        }
    }
    let reconciled: Vec<_> = views
        .iter()
        .filter_map(|v| Some((&v.def.name, app.reconciliations.get(&v.def.name)?)))
        .collect();
    e.family(RECONCILE_RUNS, "counter", "Scheduled reconciliation runs.");
    for (view, f) in &reconciled {
        e.sample(RECONCILE_RUNS, &[("view", view)], f.runs as f64);
    }
    e.family(
        RECONCILE_ROWS,
        "counter",
        "Rows compared by scheduled reconciliations, by result.",
    );
    for (view, f) in &reconciled {
        for (result, n) in [
            ("matched", f.total_matched),
            ("mismatched", f.total_mismatched),
            ("missing", f.total_missing),
            ("extra", f.total_extra),
        ] {
            e.sample(
                RECONCILE_ROWS,
                &[("view", view), ("result", result)],
                n as f64,
            );
        }
    }
    e.family(
        RECONCILE_RATIO,
        "gauge",
        "The last scheduled reconciliation's correctness ratio.",
    );
    for (view, f) in &reconciled {
        if f.error.is_none() {
            e.sample(RECONCILE_RATIO, &[("view", view)], f.ratio);
        }
    }
    e.family(
        VIEW_MODE,
        "gauge",
        "1 for the mode the view ran in at its last commit.",
    );
    for v in &views {
        let current = v
            .stats
            .mode
            .unwrap_or(freshet_engine::planner::Mode::Streaming);
        for mode in [
            freshet_engine::planner::Mode::Streaming,
            freshet_engine::planner::Mode::MicroBatch,
            freshet_engine::planner::Mode::Batch,
        ] {
            e.sample(
                VIEW_MODE,
                &[("view", &v.def.name), ("mode", mode.as_str())],
                f64::from(u8::from(mode == current)),
            );
        }
    }
    e.family(
        VIEW_LATE_EVENTS,
        "counter",
        "Late events by what the view's policy did with them.",
    );
    for v in &views {
        for (policy, n) in [
            ("drop", v.stats.late_dropped),
            ("dead_letter", v.stats.late_dead_lettered),
            ("update", v.stats.late_updated),
        ] {
            e.sample(
                VIEW_LATE_EVENTS,
                &[("view", &v.def.name), ("policy", policy)],
                n as f64,
            );
        }
    }
    type PerViewHistogram = fn(&ViewFigures) -> &Histogram;
    let histograms: [(&str, &str, PerViewHistogram); 2] = [
        (
            VIEW_INGEST_TO_COMMIT,
            "Per event, ingest to the start of the commit that made its effect durable.",
            |v| &v.stats.ingest_to_commit_ms,
        ),
        (
            STORE_COMMIT_DURATION,
            "Duration of store commit transactions.",
            |v| &v.stats.commit_ms,
        ),
    ];
    for (name, help, histogram) in histograms {
        e.family(name, "histogram", help);
        for v in &views {
            e.histogram(name, &v.def.name, histogram(v));
        }
    }
    process(&mut e);
    Ok(e.finish())
}

/// The build and the `process_*` families (the names Prometheus client libraries use).
fn process(e: &mut Exposition) {
    e.family(BUILD_INFO, "gauge", "Always 1; labels name the build.");
    e.sample(BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    let p = super::process_stats::read();
    let families = [
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time, in seconds.",
            p.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory, in bytes.",
            p.resident_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory, in bytes.",
            p.virtual_bytes,
        ),
        (
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            p.open_fds,
        ),
        (
            "process_max_fds",
            "gauge",
            "The limit on open file descriptors.",
            p.max_fds,
        ),
        ("process_threads", "gauge", "Threads.", p.threads),
        (
            "process_start_time_seconds",
            "gauge",
            "When the process started, in seconds since the epoch.",
            Some(p.start_time_seconds),
        ),
    ];
    for (name, kind, help, value) in families {
        if let Some(value) = value {
            e.family(name, kind, help);
            e.sample(name, &[], value);
        }
    }
}
