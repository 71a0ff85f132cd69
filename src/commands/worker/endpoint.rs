//! A worker's HTTP endpoint: `/healthz`, `/metrics` (Prometheus text) and `/v1/status`
//! (its [`Report`] as JSON), from the report the main thread refreshes every round. It
//! serves no data and takes no tokens, so it listens on loopback unless told otherwise.

use super::{Report, ViewReport};
use crate::app::prometheus::Exposition;
use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Shared = Arc<Mutex<Report>>;

/// Binds the first of `addrs` and serves until `stop` is set, on a thread of its own.
pub fn spawn(
    addrs: &[SocketAddr],
    report: Shared,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(std::thread::JoinHandle<()>, SocketAddr)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the endpoint's runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addrs))
        .with_context(|| format!("cannot listen on {}", addrs[0]))?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .with_state(report);
    let thread = std::thread::Builder::new()
        .name("endpoint".into())
        .spawn(move || {
            let stopped = async move {
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            let served = runtime.block_on(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            });
            if let Err(e) = served {
                tracing::error!(error = %e, "the worker's endpoint failed");
            }
        })
        .context("cannot start the endpoint thread")?;
    Ok((thread, addr))
}

fn snapshot(report: &Shared) -> Report {
    report.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

async fn status(State(report): State<Shared>) -> axum::Json<Report> {
    axum::Json(snapshot(&report))
}

async fn metrics(State(report): State<Shared>) -> String {
    render(&snapshot(&report))
}

/// The report as Prometheus text.
fn render(r: &Report) -> String {
    let mut e = Exposition::default();
    let w = r.worker.as_str();
    let worker = [("worker", w)];
    let counts: [(&str, &str, &str, usize); 8] = [
        (
            "freshet_worker_views",
            "gauge",
            "Tasks (whole views, or views' partitions) this worker runs.",
            r.views.len(),
        ),
        (
            "freshet_worker_live_workers",
            "gauge",
            "Live workers as this worker last saw them.",
            r.live_workers.len(),
        ),
        (
            "freshet_worker_views_taken_total",
            "counter",
            "Tasks this worker took, each under a new lease epoch.",
            r.views_taken as usize,
        ),
        (
            "freshet_worker_views_handed_over_total",
            "counter",
            "Tasks this worker handed to another (last commit, then release).",
            r.views_handed_over as usize,
        ),
        (
            "freshet_worker_fenced_commits_total",
            "counter",
            "Commits refused because another worker had taken the task over.",
            r.fenced_commits as usize,
        ),
        (
            "freshet_worker_leases_lost_total",
            "counter",
            "Tasks stopped because their lease was found to be another's (it had lapsed).",
            r.leases_lost as usize,
        ),
        (
            "freshet_worker_heartbeat_failures_total",
            "counter",
            "Heartbeats that could not be recorded.",
            r.heartbeat_failures as usize,
        ),
        (
            "freshet_worker_failed_views",
            "gauge",
            "Tasks stopped by an error, waiting to be tried again.",
            r.failed.len(),
        ),
    ];
    for (name, kind, help, value) in counts {
        e.family(name, kind, help);
        e.sample(name, &worker, value as f64);
    }
    type Figure = fn(&ViewReport) -> Option<f64>;
    let per_task: [(&str, &str, &str, Figure); 5] = [
        (
            "freshet_worker_view_epoch",
            "gauge",
            "The lease epoch (fencing token) under which this worker runs the task.",
            |v| v.epoch.map(|e| e as f64),
        ),
        (
            "freshet_worker_view_input_events_total",
            "counter",
            "Events the task has read since its view was created.",
            |v| Some(v.input_events as f64),
        ),
        (
            "freshet_worker_view_lag_events",
            "gauge",
            "Events in the task's partitions it has not read yet, as of the last round.",
            |v| Some(v.lag_events as f64),
        ),
        (
            "freshet_worker_view_watermark_seconds",
            "gauge",
            "The task's watermark, seconds since the epoch.",
            |v| v.watermark_ms.map(|m| m as f64 / 1000.0),
        ),
        (
            "freshet_worker_view_caught_up_ratio",
            "gauge",
            "1 once the task has read each of its partitions to its end, else 0.",
            |v| Some(f64::from(u8::from(v.caught_up))),
        ),
    ];
    for (name, kind, help, figure) in per_task {
        e.family(name, kind, help);
        for v in &r.views {
            if let Some(value) = figure(v) {
                let labels = [("worker", w), ("view", &v.view), ("task", &v.task)];
                e.sample(name, &labels, value);
            }
        }
    }
    e.finish()
}
