//! `POST /v1/sql` and the views thread.
//!
//! The views thread owns every running view. DDL arrives to it over a bounded channel and
//! runs between two steps of the views, so that a view is never dropped under a running
//! runner, and a created view starts running (backfilling its history) as soon as it is
//! created.

use super::App;
use super::error::ApiError;
use crate::commands::run::{open_runners, step_all, wait_for_data};
use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use freshet_engine::{EngineError, ViewRunner, ViewStatement, parse_view_statement};
use freshet_store::ResultStore;
use freshet_streams::ddl::split_statements;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TrySendError};

/// DDL requests waiting for the views thread; more are refused with 503.
pub const DDL_QUEUE_MAX: usize = 16;

/// How long `POST /v1/sql` waits for the views thread (busy with a long step, or waiting
/// out a store outage) before answering 503.
const DDL_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One `POST /v1/sql` body, handed to the views thread.
pub struct DdlRequest {
    sql: String,
    reply: tokio::sync::oneshot::Sender<Result<Vec<String>, ApiError>>,
}

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
    app.log.writer("SQL statements")?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let unavailable = |why: &str| ApiError {
        retry_after_s: Some(1),
        ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "views_unavailable", why)
    };
    match app.ddl.try_send(DdlRequest {
        sql: body.sql,
        reply,
    }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return Err(unavailable("too many SQL requests are waiting; retry"));
        }
        Err(TrySendError::Disconnected(_)) => {
            return Err(unavailable("the views thread has stopped; see /readyz"));
        }
    }
    match tokio::time::timeout(DDL_REPLY_TIMEOUT, answer).await {
        Ok(Ok(Ok(results))) => Ok(Json(json!({ "results": results }))),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) => Err(unavailable("the views thread stopped before answering")),
        // The statement stays queued and will still run.
        Err(_) => Err(unavailable(
            "the views thread did not answer in 30 s (is the result store unavailable?); \
             the statements are still queued",
        )),
    }
}

/// The views thread: run every view, apply DDL between steps, and once `stop` is set commit
/// everything and return.
pub fn views_loop(
    app: &App,
    ddl: &Receiver<DdlRequest>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut runners = open_patient(app, &[], stop)?;
    let mut store: Option<Box<dyn ResultStore>> = None;
    while !stop.load(Ordering::SeqCst) {
        while let Ok(request) = ddl.try_recv() {
            let outcome = apply(app, &mut runners, &mut store, &request.sql, stop);
            app.catalog_changed();
            // The client may have gone; the statements stand either way.
            let _ = request.reply.send(outcome);
        }
        match step_all(&mut runners) {
            Ok(0) => wait_for_data(&runners),
            Ok(_) => {}
            // A commit waiting out a store outage gave up because the server stops. No
            // view commits again: a commit after the lost one would record offsets past
            // rows and state it never wrote. Every view's last commit stands.
            Err(e) if stop.load(Ordering::SeqCst) && store_unavailable(&e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "final commits skipped: the result store is unavailable; the views \
                     resume from their last commits"
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    commit_at_shutdown(&mut runners)
}

/// Whether `e` is a result store failure that may pass (an outage).
fn store_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<EngineError>()
            .is_some_and(EngineError::retriable)
    })
}

/// Every view's last commit at shutdown. A result store that is unavailable now (an
/// outage) does not fail the shutdown: the view's last commit stands and the next start
/// reads on from its offsets, so nothing is lost or doubled. Any other failure does.
fn commit_at_shutdown(runners: &mut [ViewRunner]) -> anyhow::Result<()> {
    for r in runners.iter_mut() {
        match r.commit().and_then(|_| r.flush()) {
            Ok(()) => {}
            Err(e) if e.retriable() => tracing::warn!(
                view = %r.def().name,
                error = %e,
                "final commit skipped: the result store is unavailable; the view resumes \
                 from its last commit"
            ),
            Err(e) => {
                return Err(e).with_context(|| format!("view '{}' failed", r.def().name));
            }
        }
    }
    Ok(())
}

/// The data directory the views thread writes; only a server that holds it runs views.
fn writer_dir(app: &App) -> anyhow::Result<&freshet_streams::DataDir> {
    app.log
        .writer_dir()
        .context("views run only in the server that writes the data directory")
}

/// Runners for the views named (all if empty) that wait out store outages until `stop`.
fn open_patient(
    app: &App,
    names: &[String],
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Vec<ViewRunner>> {
    let mut runners = open_runners(writer_dir(app)?, &app.store, names, false)?;
    for r in &mut runners {
        r.retry_until(stop.clone());
    }
    Ok(runners)
}

fn apply(
    app: &App,
    runners: &mut Vec<ViewRunner>,
    store: &mut Option<Box<dyn ResultStore>>,
    sql: &str,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<String>, ApiError> {
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
        let parsed = parse_view_statement(statement).map_err(|e| failed(e.into()))?;
        if let Some(ViewStatement::Drop { name, .. }) = &parsed {
            // Stop the view first, committing what it did, so nothing writes to it after.
            if let Some(at) = runners.iter().position(|r| &r.def().name == name) {
                runners[at].commit().map_err(|e| failed(e.into()))?;
                runners[at].flush().map_err(|e| failed(e.into()))?;
                runners.remove(at);
            }
        }
        let outcome = match crate::commands::sql::execute(
            app.log.writer("SQL statements")?,
            &app.store,
            store,
            statement,
        ) {
            Ok(outcome) => outcome,
            Err(e) => {
                if let Some(ViewStatement::Drop { name, .. }) = &parsed
                    && !runners.iter().any(|r| &r.def().name == name)
                {
                    // The drop was refused (a view reads it): keep running it.
                    if let Ok(again) = open_patient(app, std::slice::from_ref(name), stop) {
                        runners.extend(again);
                    }
                }
                return Err(failed(e));
            }
        };
        if let Some(ViewStatement::Create { def, .. }) = &parsed
            && !runners.iter().any(|r| r.def().name == def.name)
        {
            runners
                .extend(open_patient(app, std::slice::from_ref(&def.name), stop).map_err(failed)?);
        }
        results.push(outcome);
    }
    Ok(results)
}
