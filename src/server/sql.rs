//! `POST /v1/sql` and the views thread.
//!
//! The views thread owns every running view. DDL arrives to it over a bounded channel and
//! runs between two steps of the views, so that a view is never dropped under a running
//! runner, and a created view starts running (backfilling its history) as soon as it is
//! created.

use super::error::ApiError;
use super::state::{App, DdlRequest};
use crate::app::supervisor::Supervisor;
use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use freshet_engine::Statement;
use freshet_engine::copy::parse_copy;
use freshet_streams::ddl::split_statements;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, TrySendError};

/// How long `POST /v1/sql` waits for the views thread (busy with a long step, or waiting
/// out a store outage) before answering 503.
const DDL_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The request body.
#[derive(Deserialize)]
pub struct SqlBody {
    sql: String,
}

/// `POST /v1/sql` with `{"sql": "..."}`: run the statements in order. The answer lists each
/// statement's outcome; on an error, the statements before it stay applied and the error
/// says which one failed.
pub async fn sql(
    State(app): State<Arc<App>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    // Any content type: `curl -d` sends form encoding by default, and the body is JSON
    // either way.
    let body: SqlBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("expected a JSON body {{\"sql\": \"...\"}}: {e}"),
        )
    })?;
    Ok(Json(json!({ "results": submit(&app, body.sql).await? })))
}

/// Hands `sql` (one or more statements) to the views thread and waits for their outcome:
/// one text per statement. `POST /v1/sql` and the PostgreSQL endpoint both come here.
pub async fn submit(app: &App, sql: String) -> Result<Vec<String>, ApiError> {
    app.log.writer("SQL statements")?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let unavailable = |why: &str| ApiError {
        retry_after_s: Some(1),
        ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "views_unavailable", why)
    };
    match app.ddl.try_send(DdlRequest { sql, reply }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return Err(unavailable("too many SQL requests are waiting; retry"));
        }
        Err(TrySendError::Disconnected(_)) => {
            return Err(unavailable("the views thread has stopped; see /readyz"));
        }
    }
    match tokio::time::timeout(DDL_REPLY_TIMEOUT, answer).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err(unavailable("the views thread stopped before answering")),
        // The statement stays queued and will still run.
        Err(_) => Err(unavailable(
            "the views thread did not answer in 30 s (is the result store unavailable?); \
             the statements are still queued",
        )),
    }
}

/// How often the views thread tells the handlers the costs each view was last planned
/// from (`App::planned`); the planner itself looks every 10 s.
const PLANNED_PUBLISHED_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The views thread: run every view, apply DDL between turns, and once `stop` is set commit
/// everything and return.
pub fn views_loop(
    app: &App,
    ddl: &Receiver<DdlRequest>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let dir = app
        .log
        .writer_dir()
        .context("views run only in the server that writes the data directory")?;
    let mut supervisor = Supervisor::open(dir, &app.store, &[], false)?;
    let mut published: Option<std::time::Instant> = None;
    supervisor.run(stop.clone(), |supervisor| {
        while let Ok(request) = ddl.try_recv() {
            let outcome = apply(supervisor, &request.sql);
            app.catalog_changed();
            // The client may have gone; the statements stand either way.
            let _ = request.reply.send(outcome);
        }
        if published.is_none_or(|at| at.elapsed() >= PLANNED_PUBLISHED_EVERY) {
            published = Some(std::time::Instant::now());
            let planned = supervisor
                .runners()
                .iter()
                .filter_map(|r| Some((r.def().name.clone(), r.planned_from()?)))
                .collect();
            *app.planned.lock().unwrap_or_else(|e| e.into_inner()) = planned;
        }
    })?;
    Ok(())
}

fn apply(supervisor: &mut Supervisor<'_>, sql: &str) -> Result<Vec<String>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "sql_error", m);
    let statements = split_statements(sql).map_err(|e| bad(e.to_string()))?;
    if statements.is_empty() {
        return Err(bad("no SQL statement given".into()));
    }
    let mut results = Vec::new();
    for (i, statement) in statements.iter().enumerate() {
        let failed = |e: anyhow::Error| {
            let done = if results.is_empty() {
                String::new()
            } else {
                format!(" (statements 1 to {i} were applied)")
            };
            bad(format!(
                "statement {} of {} failed{done}: {e:#}",
                i + 1,
                statements.len()
            ))
        };
        let outcome = match parse_copy(statement).map_err(|e| failed(e.into()))? {
            Some(copy) => supervisor.copy(&copy),
            None => {
                let parsed = Statement::parse(statement).map_err(|e| failed(e.into()))?;
                supervisor.execute(parsed)
            }
        };
        results.push(outcome.map_err(failed)?);
    }
    Ok(results)
}
