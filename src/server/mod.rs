//! `freshet serve`: the HTTP API (axum on tokio). Decoding and appending run on tokio's
//! blocking pool, apart from the I/O threads, so a large ingest never stalls other requests.
//! Every view of the catalog runs on its own thread ("views"), following the log as events
//! are ingested. Once any API token exists, every route but the open ones needs one
//! (`auth`), until the server stops. SIGINT/SIGTERM: stop accepting, finish in-flight
//! requests, commit every view, sync, exit 0.

mod auth;
mod credentials;
mod error;
mod ingest;
mod log_access;
mod metrics;
mod reconciler;
mod reconciliations;
mod sql;
mod state;
mod views;

use crate::app::auth::{Key, keys_from_env};
use crate::app::listen;
use crate::cli::ServeArgs;
use crate::cli::ServeRole;
use crate::output;
use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use credentials::Credentials;
use freshet_store::StoreLocation;
use freshet_streams::DataDir;
use log_access::LogAccess;
use state::App;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The HTTP routes, each behind the token check (`auth`; which route needs which role is
/// `auth::route_roles`).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/", get(dashboard))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/streams/{name}/events", post(ingest::ingest))
        .route("/v1/sql", post(sql::sql))
        .route("/v1/views", get(views::list))
        .route("/v1/views/{name}", get(views::describe))
        .route("/v1/views/{name}/results", get(views::results))
        .route("/v1/status", get(views::status))
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::authorize,
        ))
        .with_state(app)
}

/// `GET /`: the dashboard, one self-contained page that polls `/v1/status`.
async fn dashboard() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("dashboard.html"))
}

/// `GET /readyz`: 200 while the views run; 503 with the reason once they stopped.
async fn ready(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
) -> Result<axum::Json<serde_json::Value>, error::ApiError> {
    match app.views_error() {
        None => Ok(axum::Json(serde_json::json!({"status": "ready"}))),
        Some(reason) => Err(error::ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "views_stopped",
            format!("the views stopped: {reason}"),
        )),
    }
}

pub fn run(data_dir: &Path, store: &StoreLocation, args: ServeArgs) -> anyhow::Result<ExitCode> {
    run_with(data_dir, store, args, Vec::new(), |_| Ok(()))
}

/// Like [`run`], also accepting `own_keys` (tokens this process made for itself, known
/// only in memory) and calling `on_listening` with the bound address once the server
/// listens.
pub fn run_with(
    data_dir: &Path,
    store: &StoreLocation,
    args: ServeArgs,
    own_keys: Vec<Key>,
    on_listening: impl FnOnce(std::net::SocketAddr) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    // Who may call the server is settled before anything starts or binds.
    let addrs = listen::resolve(&args.listen)?;
    let mut fixed = keys_from_env()?;
    fixed.extend(own_keys);
    let exposed = listen::exposed(&addrs);
    let credentials = Credentials::open(
        data_dir,
        fixed,
        exposed && !args.access.insecure_no_auth,
        args.access.metrics_open,
    )
    .context("cannot load the API tokens")?;
    let configured = credentials.access().keyring.configured();
    listen::check(
        &args.listen,
        &addrs,
        configured,
        args.access.insecure_no_auth,
    )?;
    if exposed && !configured {
        tracing::warn!(
            listen = args.listen,
            "serving without API tokens on an address other machines can reach \
             (--insecure-no-auth)"
        );
    }
    let log = match args.role {
        ServeRole::All => LogAccess::Writer(DataDir::open(data_dir)?),
        ServeRole::Query => {
            if !data_dir.join("catalog.json").exists() {
                anyhow::bail!(
                    "{} holds no streams: a query-only server reads the data directory of \
                     the server that writes it",
                    data_dir.display()
                );
            }
            LogAccess::Reader(data_dir.to_path_buf())
        }
    };
    let (ddl, ddl_requests) = std::sync::mpsc::sync_channel(state::DDL_QUEUE_MAX);
    let reconciliations = reconciliations::Reconciliations::open(log.root(), log.is_writer());
    let app = Arc::new(App {
        log,
        store: store.clone(),
        requests: AtomicU64::new(0),
        views_failed: Mutex::new(None),
        ddl,
        catalog_generation: AtomicU64::new(0),
        reconciliations,
        credentials: Arc::new(credentials),
    });
    let stop_views = Arc::new(AtomicBool::new(false));
    // A query-only server runs no views: the writer does.
    let views = match app.log.is_writer() {
        false => None,
        true => {
            let stop = stop_views.clone();
            let app = app.clone();
            let thread = std::thread::Builder::new()
                .name("views".into())
                .spawn(move || {
                    let result = sql::views_loop(&app, &ddl_requests, &stop);
                    if let Err(e) = &result {
                        let text = format!("{e:#}");
                        tracing::error!(error = text, "views stopped");
                        *app.views_failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
                    }
                    result
                })
                .context("cannot start the views thread")?;
            Some(thread)
        }
    };
    let reconciling = match app.log.is_writer() {
        true => Some(
            reconciler::spawn(app.clone(), stop_views.clone())
                .context("cannot start the reconciler thread")?,
        ),
        false => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(serve(app.clone(), &args.listen, &addrs, on_listening));
    stop_views.store(true, Ordering::SeqCst);
    let views = views
        .map(|v| v.join())
        .transpose()
        .map_err(|_| anyhow::anyhow!("the views thread panicked"))?;
    if let Some(thread) = reconciling {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the reconciler thread panicked"))?;
    }
    served?;
    views.transpose()?;
    if let LogAccess::Writer(dir) = &app.log {
        dir.sync_all().context("final sync of the log failed")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    app: Arc<App>,
    listen: &str,
    addrs: &[SocketAddr],
    on_listening: impl FnOnce(std::net::SocketAddr) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // The addresses checked, not `listen` resolved again.
    let listener = tokio::net::TcpListener::bind(addrs)
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
    on_listening(addr)?;
    let writer = app.log.is_writer();
    let flusher = writer.then(|| tokio::spawn(flush_interval_streams(app.clone())));
    let retention = writer.then(|| tokio::spawn(apply_retention(app.clone())));
    let tokens = tokio::spawn(app.credentials.clone().follow());
    axum::serve(listener, router(app))
        .with_graceful_shutdown(crate::app::signals::shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    for task in flusher.into_iter().chain(retention).chain([tokens]) {
        task.abort();
    }
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
        let result = tokio::task::spawn_blocking(move || match &app.log {
            LogAccess::Writer(dir) => dir.sync_interval_streams(),
            LogAccess::Reader(_) => Ok(()),
        })
        .await;
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
        let retained = tokio::task::spawn_blocking(move || match &app.log {
            LogAccess::Writer(dir) => dir.apply_retention(),
            LogAccess::Reader(_) => Ok(Vec::new()),
        });
        match retained.await {
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

#[cfg(test)]
mod tests {
    /// docs/openapi.yaml lists exactly the routes this module serves.
    #[test]
    fn openapi_lists_every_route() {
        let source = include_str!("mod.rs");
        let source = &source[..source.find("#[cfg(test)]").expect("this test module")];
        let mut routes: Vec<&str> = source
            .split(".route(")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix('"'))
            .map(|rest| rest.split('"').next().expect("a quoted path"))
            .collect();
        routes.sort_unstable();
        let spec = include_str!("../../docs/openapi.yaml");
        let paths = spec.split("\npaths:\n").nth(1).expect("a paths section");
        let mut documented: Vec<&str> = paths
            .lines()
            .filter(|l| l.starts_with("  /") && l.ends_with(':'))
            .map(|l| l.trim().trim_end_matches(':'))
            .collect();
        documented.sort_unstable();
        assert_eq!(routes, documented);
    }
}
