//! Samples the server's figures into its metric history (`history`) every
//! [`HISTORY_SAMPLE_INTERVAL`], and answers `GET /v1/history`.

use super::error::ApiError;
use super::history::{StreamReading, ViewReading};
use super::state::App;
use super::views::{ViewFigures, all_figures, blocking};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use freshet_types::limits::{HISTORY_SAMPLE_INTERVAL, HISTORY_WINDOW};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn view_reading(f: &ViewFigures, now_ms: i64) -> ViewReading {
    let s = &f.stats;
    ViewReading {
        name: f.def.name.clone(),
        input_events: s.input_events,
        lag_events: f.freshness.lag_events,
        staleness_ms: f.freshness.staleness_ms,
        sla_ms: f.freshness.sla_ms,
        watermark_delay_ms: f
            .freshness
            .watermark_ms
            .filter(|&w| w != i64::MAX)
            .map(|w| now_ms.saturating_sub(w)),
        state_bytes: s.state_bytes,
        late: s.late_dropped + s.late_dead_lettered + s.late_updated,
        late_dead_lettered: s.late_dead_lettered,
        rows_written: s.rows_written,
        commits: (s.commit_ms.sum_ms, s.commit_ms.count),
    }
}

/// Reads the figures the history keeps, now.
fn read(app: &App) -> Result<(Vec<StreamReading>, Vec<ViewReading>), ApiError> {
    let now = freshet_types::IngestTime::now().0;
    let mut streams = Vec::new();
    for def in app.log.streams() {
        let Some(ends) = app.log.ends(&def) else {
            continue;
        };
        let bytes = app
            .log
            .writer_dir()
            .and_then(|dir| dir.stream(&def.name).ok())
            .map(|s| s.counters().bytes.load(Ordering::Relaxed));
        streams.push(StreamReading {
            name: def.name.clone(),
            events: ends.partitions.iter().sum(),
            dead_letters: ends.dead_letters,
            bytes,
        });
    }
    let views = all_figures(app)?
        .iter()
        .map(|f| view_reading(f, now))
        .collect();
    Ok((streams, views))
}

/// Samples the figures into `app.history` every [`HISTORY_SAMPLE_INTERVAL`], the first at
/// once, so that the history holds two samples (the first rates) one interval after start.
pub async fn sample(app: Arc<App>) {
    let mut tick = tokio::time::interval(HISTORY_SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let app = app.clone();
        let sampled = tokio::task::spawn_blocking(move || {
            let (streams, views) = read(&app)?;
            let t = freshet_types::IngestTime::now().0;
            app.history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(t, &streams, &views);
            Ok::<_, ApiError>(())
        })
        .await;
        match sampled {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = e.message, "cannot sample the figures now"),
            Err(e) => tracing::error!(error = %e, "the history sampling task panicked"),
        }
    }
}

#[derive(serde::Deserialize)]
pub struct HistoryQuery {
    /// Only points after this time, ms since the epoch.
    since: Option<String>,
}

/// `GET /v1/history?since=<ms>`: every series, with its points after `since` (all of the
/// last hour without it).
pub async fn history(
    State(app): State<Arc<App>>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let since = match query.since.as_deref() {
        None | Some("") => i64::MIN,
        Some(text) => text.parse::<i64>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("since: '{text}' is not a time in ms since the epoch"),
            )
        })?,
    };
    blocking(move || {
        let series = app
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .since(since);
        Ok(Json(json!({
            "now_ms": freshet_types::IngestTime::now().0,
            "interval_ms": HISTORY_SAMPLE_INTERVAL.as_millis() as u64,
            "window_ms": HISTORY_WINDOW.as_millis() as u64,
            "series": series,
        })))
    })
    .await
}
