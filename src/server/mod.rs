//! `freshet serve`: the HTTP API (axum on tokio). Decoding and appending run on tokio's
//! blocking pool, apart from the I/O threads, so a large ingest never stalls other requests.
//! Every view of the catalog runs on its own thread ("views"), following the log as events
//! are ingested. SIGINT/SIGTERM: stop accepting, finish in-flight requests, commit every
//! view, sync, exit 0.

mod error;
mod ingest;

use crate::cli::ServeArgs;
use crate::output;
use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use freshet_streams::DataDir;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Shared state of the server.
pub struct App {
    /// The data directory, held for writing.
    pub dir: DataDir,
    /// Counter for generated request ids.
    pub requests: AtomicU64,
}

/// The HTTP routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/v1/streams/{name}/events", post(ingest::ingest))
        .fallback(error::not_found)
        .with_state(app)
}

pub fn run(data_dir: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(data_dir)?;
    let app = Arc::new(App {
        dir,
        requests: AtomicU64::new(0),
    });
    let mut runners = crate::commands::run::open_runners(&app.dir, &[])?;
    let stop_views = Arc::new(AtomicBool::new(false));
    let views = {
        let stop = stop_views.clone();
        std::thread::Builder::new()
            .name("views".into())
            .spawn(move || {
                let result = crate::commands::run::follow(&mut runners, &stop);
                if let Err(e) = &result {
                    tracing::error!(error = format!("{e:#}"), "views stopped");
                }
                result
            })
            .context("cannot start the views thread")?
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(serve(app.clone(), &args.listen));
    stop_views.store(true, Ordering::SeqCst);
    let views = views
        .join()
        .map_err(|_| anyhow::anyhow!("the views thread panicked"))?;
    served?;
    views?;
    app.dir.sync_all().context("final sync of the log failed")?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(app: Arc<App>, listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    // Small responses must not wait for Nagle's algorithm and the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    output::line(format!("freshet serving on http://{addr}"));
    let flusher = tokio::spawn(flush_interval_streams(app.clone()));
    let retention = tokio::spawn(apply_retention(app.clone()));
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    flusher.abort();
    retention.abort();
    tracing::info!("stopped accepting requests; in-flight requests finished");
    Ok(())
}

/// Streams with `fsync = 'interval'` are synced at least this often.
const FLUSH_TICK: Duration = Duration::from_millis(50);

async fn flush_interval_streams(app: Arc<App>) {
    let mut tick = tokio::time::interval(FLUSH_TICK);
    loop {
        tick.tick().await;
        let app = app.clone();
        let result = tokio::task::spawn_blocking(move || app.dir.sync_interval_streams()).await;
        if let Ok(Err(e)) = result {
            tracing::error!(error = %e, "periodic sync of fsync='interval' streams failed");
        }
    }
}

/// How often retention runs while serving.
const RETENTION_TICK: Duration = Duration::from_secs(60);

async fn apply_retention(app: Arc<App>) {
    let mut tick = tokio::time::interval(RETENTION_TICK);
    loop {
        tick.tick().await;
        let app = app.clone();
        match tokio::task::spawn_blocking(move || app.dir.apply_retention()).await {
            Ok(Ok(freed)) => {
                for (stream, segments, bytes) in freed.into_iter().filter(|f| f.1 > 0) {
                    tracing::info!(stream, segments, bytes, "retention removed old segments");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
            Err(e) => tracing::error!(error = %e, "retention task panicked"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// Set `stop` when SIGINT or SIGTERM arrives (for the synchronous `run` loop).
pub fn on_shutdown_signal(stop: Arc<std::sync::atomic::AtomicBool>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(shutdown_signal());
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        })?;
    Ok(())
}
