//! Samples the server's figures into its metric history (`history`) every
//! [`HISTORY_SAMPLE_INTERVAL`], and answers `GET /v1/history`.

use super::error::{ApiError, single_params};
use super::history::{SeriesPoints, StreamReading, ViewReading};
use super::state::App;
use super::views::{ViewFigures, all_figures, blocking};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use freshet_types::limits::{HISTORY_SAMPLE_INTERVAL, HISTORY_WINDOW};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// A clock for the history's times: ms since the epoch as read from the wall clock once,
/// then advanced by a monotonic clock, so that a wall clock stepped back (NTP) does not
/// leave samples "before" the last point, which the history would ignore until the wall
/// clock caught up (charts frozen meanwhile).
#[derive(Debug, Clone, Copy)]
pub struct SampleClock {
    start: Instant,
    start_ms: i64,
}

impl SampleClock {
    pub fn new(start: Instant, start_ms: i64) -> SampleClock {
        SampleClock { start, start_ms }
    }

    /// The time of `at`, ms since the epoch; never earlier than at the start.
    pub fn ms_at(&self, at: Instant) -> i64 {
        let since_start = at.saturating_duration_since(self.start).as_millis();
        self.start_ms
            .saturating_add(i64::try_from(since_start).unwrap_or(i64::MAX))
    }

    /// The server's history clock, anchored at its first use (when sampling starts).
    pub fn server() -> SampleClock {
        static CLOCK: OnceLock<SampleClock> = OnceLock::new();
        *CLOCK.get_or_init(|| SampleClock::new(Instant::now(), freshet_types::IngestTime::now().0))
    }

    pub fn now_ms() -> i64 {
        SampleClock::server().ms_at(Instant::now())
    }
}

fn view_reading(f: &ViewFigures, now_ms: i64) -> ViewReading {
    let s = &f.stats;
    ViewReading {
        name: f.def.name.clone(),
        input_events: s.input_events,
        lag_events: f.freshness.lag_events,
        staleness_ms: f.freshness.staleness_ms,
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
    SampleClock::server();
    let mut tick = tokio::time::interval(HISTORY_SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let app = app.clone();
        let sampled = tokio::task::spawn_blocking(move || {
            let (streams, views) = read(&app)?;
            let t = SampleClock::now_ms();
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

/// The answer of `GET /v1/history`.
#[derive(serde::Serialize)]
struct HistoryAnswer {
    now_ms: i64,
    interval_ms: u64,
    window_ms: u64,
    series: Vec<SeriesPoints>,
}

/// `GET /v1/history?since=<ms>`: every series, with its points after `since` (all of the
/// last hour without it). `since` is a time in ms since the epoch, 0 or more.
pub async fn history(
    State(app): State<Arc<App>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = single_params(&params, &["since"])?;
    let since = match params.get("since") {
        None => i64::MIN,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|&t| t >= 0)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!(
                        "since: '{text}' is not a time in ms since the epoch (0 to {})",
                        i64::MAX
                    ),
                )
            })?,
    };
    blocking(move || {
        // Copied out under the lock, serialized after: the history is locked for the
        // copy only, not for building up to tens of MB of JSON.
        let series = app
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .since(since);
        let answer = HistoryAnswer {
            now_ms: SampleClock::now_ms(),
            interval_ms: HISTORY_SAMPLE_INTERVAL.as_millis() as u64,
            window_ms: HISTORY_WINDOW.as_millis() as u64,
            series,
        };
        let body = serde_json::to_vec(&answer).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })?;
        Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_sample_clock_is_the_wall_clock_at_start_advanced_monotonically() {
        let start = Instant::now();
        let clock = SampleClock::new(start, 1_700_000_000_000);
        assert_eq!(clock.ms_at(start), 1_700_000_000_000);
        assert_eq!(
            clock.ms_at(start + Duration::from_millis(2_500)),
            1_700_000_002_500
        );
        // An instant before the start (none is, but) does not go back.
        assert_eq!(
            clock.ms_at(
                start
                    .checked_sub(Duration::from_millis(10))
                    .unwrap_or(start)
            ),
            1_700_000_000_000
        );
        let (a, b) = (SampleClock::now_ms(), SampleClock::now_ms());
        assert!(b >= a);
        let wall = freshet_types::IngestTime::now().0;
        assert!(
            (a - wall).abs() < 60_000,
            "anchored to the epoch: {a} vs {wall}"
        );
    }
}
