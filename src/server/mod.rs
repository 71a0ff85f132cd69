//! `freshet serve`: the HTTP API (axum on tokio). Decoding and appending run on tokio's
//! blocking pool, apart from the I/O threads, so a large ingest never stalls other requests.
//! Every view of the catalog runs on its own thread ("views"), following the log as events
//! are ingested. Once any API token exists, every route but the open ones needs one
//! (`auth`), until the server stops. With `--tls-cert` and `--tls-key` it speaks HTTPS
//! only (`tls`); SIGHUP reads the certificate again. SIGINT/SIGTERM: stop accepting,
//! finish in-flight requests, commit every view, sync, exit 0.

mod auth;
mod changes;
mod credentials;
mod dead_letters;
mod error;
mod history;
mod ingest;
mod log_access;
mod metrics;
mod pgwire;
pub mod process_stats;
mod reconciler;
mod reconciliations;
mod sampling;
mod sql;
mod state;
mod tls;
mod views;

use crate::app::auth::{Key, Role, keys_from_env};
use crate::app::listen;
use crate::cli::ServeArgs;
use crate::cli::ServeRole;
use crate::output;
use anyhow::Context;
use auth::{Route, RouteRoles};
use axum::Router;
use axum::serve::ListenerExt;
use credentials::Credentials;
use freshet_store::StoreLocation;
use freshet_streams::DataDir;
use log_access::LogAccess;
use state::App;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tls::{Certificates, TlsFiles, TlsListener};

/// Every HTTP route, each declared with what it needs (`auth::Need`). The router and the
/// table the token check consults are both made from this list, so that no route can be
/// served without saying who may call it. `--metrics-open` opens `/metrics`.
fn routes(metrics_open: bool) -> Vec<Route<Arc<App>>> {
    use auth::Need::{Open, Role as Needs};
    let metrics = if metrics_open {
        Open
    } else {
        Needs(Role::Query)
    };
    vec![
        Route::get("/", Open, dashboard),
        Route::get("/healthz", Open, || async {
            axum::Json(serde_json::json!({"status": "ok"}))
        }),
        Route::get("/readyz", Open, ready),
        Route::get("/metrics", metrics, metrics::metrics),
        Route::post(
            "/v1/streams/{name}/events",
            Needs(Role::Ingest),
            ingest::ingest,
        ),
        Route::get(
            "/v1/streams/{name}/dead-letters",
            Needs(Role::Query),
            dead_letters::latest,
        ),
        Route::post("/v1/sql", Needs(Role::Admin), sql::sql),
        Route::get("/v1/views", Needs(Role::Query), views::list),
        Route::get("/v1/views/{name}", Needs(Role::Query), views::describe),
        Route::get(
            "/v1/views/{name}/results",
            Needs(Role::Query),
            views::results,
        ),
        Route::get(
            "/v1/views/{name}/changes",
            Needs(Role::Query),
            changes::changes,
        ),
        Route::get("/v1/status", Needs(Role::Query), views::status),
        Route::get("/v1/history", Needs(Role::Query), sampling::history),
    ]
}

/// The HTTP routes, each behind the token check (`auth`).
pub fn router(app: Arc<App>) -> Router {
    let (routes, table) = RouteRoles::router(routes(app.credentials.metrics_open()));
    let gate = auth::Gate {
        credentials: app.credentials.clone(),
        routes: Arc::new(table),
    };
    routes
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(gate, auth::authorize))
        .with_state(app)
}

/// `GET /`: the dashboard, one self-contained page that reads `/v1/history` once and then
/// polls `/v1/status` and the history's new points.
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
    // A bad query memory limit fails the start, not every query later.
    crate::app::batch_query::memory_max()?;
    // Who may call the server, and over what, is settled before anything starts or binds.
    let tls = TlsFiles::from_args(args.tls.tls_cert.clone(), args.tls.tls_key.clone())?
        .map(Certificates::load)
        .transpose()?;
    let addrs = listen::resolve(&args.listen)?;
    let pg_addrs = args.pg_listen.as_deref().map(listen::resolve).transpose()?;
    let mut fixed = keys_from_env()?;
    fixed.extend(own_keys);
    // Either listener reachable from other machines makes the server exposed: tokens are
    // the same for both.
    let exposed = listen::exposed(&addrs) || pg_addrs.as_deref().is_some_and(listen::exposed);
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
    if let (Some(listen), Some(addrs)) = (&args.pg_listen, &pg_addrs) {
        listen::check(listen, addrs, configured, args.access.insecure_no_auth)?;
        if listen::exposed(addrs) {
            tracing::warn!(
                pg_listen = listen,
                "the PostgreSQL endpoint speaks no TLS: passwords (API tokens) and results \
                 cross the network in clear; prefer a loopback address and a tunnel"
            );
        }
    }
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Before any thread starts, so that a SIGHUP during startup never ends the process
    // mid-commit.
    let hangups = {
        let _runtime = runtime.enter();
        crate::app::signals::hangups().context("cannot handle SIGHUP")?
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
        history: Mutex::new(history::History::default()),
        planned: Mutex::new(std::collections::BTreeMap::new()),
        change_feeds: AtomicUsize::new(0),
        stopping: tokio::sync::watch::Sender::new(false),
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
    let listeners = Listeners {
        listen: &args.listen,
        addrs: &addrs,
        pg: args.pg_listen.as_deref().zip(pg_addrs.as_deref()),
    };
    let served = runtime.block_on(serve(app.clone(), listeners, (tls, hangups), on_listening));
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

/// Where the server listens: HTTP, and the PostgreSQL protocol if asked (each as given and
/// as resolved and checked).
struct Listeners<'a> {
    listen: &'a str,
    addrs: &'a [SocketAddr],
    pg: Option<(&'a str, &'a [SocketAddr])>,
}

async fn serve(
    app: Arc<App>,
    Listeners { listen, addrs, pg }: Listeners<'_>,
    (tls, hangups): (Option<Arc<Certificates>>, tokio::signal::unix::Signal),
    on_listening: impl FnOnce(std::net::SocketAddr) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // The first of the addresses checked that binds (one, not all), not `listen` resolved
    // again.
    let listener = tokio::net::TcpListener::bind(addrs)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let pg_listener = match pg {
        None => None,
        Some((pg_listen, pg_addrs)) => Some(
            tokio::net::TcpListener::bind(pg_addrs)
                .await
                .with_context(|| format!("cannot listen on {pg_listen} (--pg-listen)"))?,
        ),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let acceptor = tls.as_ref().map(|c| c.acceptor()).transpose()?;
    // Before the server says it listens: a SIGTERM sent once it has stops it cleanly. The
    // PostgreSQL endpoint and the change feeds (which never end on their own) stop with
    // the HTTP server, so that the graceful stop finishes.
    let signal = crate::app::signals::shutdown_signal();
    let stopping = app.clone();
    let stop = {
        let stopping = stopping.clone();
        async move {
            signal.await;
            stopping.stopping.send_replace(true);
        }
    };
    let pg_served = match pg_listener {
        None => None,
        Some(pg_listener) => {
            output::line(format!(
                "freshet PostgreSQL protocol on {}",
                pg_listener.local_addr()?
            ));
            Some(tokio::spawn(pgwire::serve(
                app.clone(),
                pg_listener,
                app.stopping.subscribe(),
            )))
        }
    };
    output::line(format!("freshet serving on {scheme}://{addr}"));
    on_listening(addr)?;
    let writer = app.log.is_writer();
    let flusher = writer.then(|| tokio::spawn(flush_interval_streams(app.clone())));
    let retention = writer.then(|| tokio::spawn(apply_retention(app.clone())));
    let tokens = tokio::spawn(app.credentials.clone().follow());
    let sampler = tokio::spawn(sampling::sample(app.clone()));
    let reloads = tokio::spawn(reload_on_hangup(hangups, tls));
    let router = router(app);
    let served = match acceptor {
        None => {
            // Small responses must not wait for Nagle's algorithm and the client's delayed
            // ACK (the TLS listener does the same for its connections).
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
            });
            axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
        }
        Some(acceptor) => {
            let listener = TlsListener::spawn(listener, acceptor)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
        }
    };
    // Also when the HTTP server failed rather than stopped.
    stopping.stopping.send_replace(true);
    if let Some(pg) = pg_served
        && let Err(e) = pg.await
    {
        tracing::error!(error = %e, "the PostgreSQL endpoint's task failed");
    }
    served.context("the HTTP server failed")?;
    for task in flusher
        .into_iter()
        .chain(retention)
        .chain([tokens, reloads, sampler])
    {
        task.abort();
    }
    tracing::info!("stopped accepting requests; in-flight requests finished");
    Ok(())
}

/// On each SIGHUP, reads the TLS certificate and key again (see `tls`). API tokens need no
/// signal: the server follows their file on its own.
async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    tls: Option<Arc<Certificates>>,
) {
    while hangups.recv().await.is_some() {
        match &tls {
            Some(certificates) => {
                let certificates = certificates.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || certificates.reload()).await {
                    tracing::error!(error = %e, "the TLS reload task panicked");
                }
            }
            None => tracing::info!("SIGHUP received; nothing to reload without TLS"),
        }
    }
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
    use super::*;
    use crate::app::auth::{Secret, Source};
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode, header};
    use tower::ServiceExt;

    /// docs/openapi.yaml lists exactly the routes the server serves, each with its method,
    /// and asks for `bearerAuth` exactly where the route needs a token.
    #[test]
    fn openapi_lists_every_route() {
        let spec = include_str!("../../docs/openapi.yaml");
        let paths = spec.split("\npaths:\n").nth(1).expect("a paths section");
        let mut documented: Vec<(String, String, bool)> = Vec::new();
        let mut path = "";
        for line in paths.lines() {
            if line.starts_with("  /") && line.ends_with(':') {
                path = line.trim().trim_end_matches(':');
            } else if let Some(method) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':'))
                && !method.starts_with(' ')
            {
                documented.push((method.to_uppercase(), path.to_string(), false));
            } else if line.trim() == "security: [{bearerAuth: []}]" {
                documented.last_mut().expect("an operation").2 = true;
            }
        }
        documented.sort();
        let (_, table) = RouteRoles::router(routes(false));
        let mut served: Vec<(String, String, bool)> = table
            .routes()
            .map(|(m, r, need)| (m.to_string(), r.to_string(), need != auth::Need::Open))
            .collect();
        served.sort();
        assert_eq!(served, documented);
    }

    /// The bounds docs/openapi.yaml states for the history and the dead-letter list are
    /// the constants the server enforces.
    #[test]
    fn openapi_states_the_history_and_dead_letter_limits() {
        use freshet_types::limits::{
            HISTORY_POINTS_MAX, HISTORY_SERIES_MAX, HTTP_DEAD_LETTERS_LISTED_MAX,
        };
        let spec = include_str!("../../docs/openapi.yaml");
        let operation = |path: &str| {
            let start = spec
                .find(&format!("\n  {path}:\n"))
                .unwrap_or_else(|| panic!("{path} in the spec"));
            let rest = &spec[start + 1..];
            let end = rest[1..].find("\n  /").map_or(rest.len(), |i| i + 1);
            rest[..end].to_string()
        };
        let history = operation("/v1/history");
        assert!(
            history.contains(&format!("maxItems: {HISTORY_SERIES_MAX}\n")),
            "{history}"
        );
        assert!(
            history.contains(&format!("maxItems: {HISTORY_POINTS_MAX}\n")),
            "{history}"
        );
        let letters = operation("/v1/streams/{name}/dead-letters");
        assert!(
            letters.contains(&format!("maximum: {HTTP_DEAD_LETTERS_LISTED_MAX},")),
            "{letters}"
        );
        assert!(
            letters.contains(&format!("maxItems: {HTTP_DEAD_LETTERS_LISTED_MAX}\n")),
            "{letters}"
        );
    }

    /// A server whose only token is `admin`'s (from the environment), reading an empty
    /// data directory.
    fn app(dir: &Path, admin: &Secret) -> Arc<App> {
        let admin = Key {
            name: "env-1".into(),
            role: Role::Admin,
            hash: admin.hash(),
            source: Source::Env,
        };
        let credentials = Credentials::open(dir, vec![admin], false, false).expect("tokens");
        let (ddl, _) = std::sync::mpsc::sync_channel(1);
        Arc::new(App {
            log: LogAccess::Reader(dir.to_path_buf()),
            store: StoreLocation::Sqlite(dir.join("results.db")),
            requests: AtomicU64::new(0),
            views_failed: Mutex::new(None),
            ddl,
            catalog_generation: AtomicU64::new(0),
            reconciliations: reconciliations::Reconciliations::open(dir, false),
            credentials: Arc::new(credentials),
            history: Mutex::new(history::History::default()),
            planned: Mutex::new(std::collections::BTreeMap::new()),
            change_feeds: AtomicUsize::new(0),
            stopping: tokio::sync::watch::Sender::new(false),
        })
    }

    async fn call(router: &Router, method: Method, path: &str, token: &Secret) -> Response {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", token.expose()))
            .body(Body::empty())
            .expect("a request");
        router.clone().oneshot(request).await.expect("infallible")
    }

    type Response = axum::response::Response;

    /// Issue 19: a `{name}` that does not percent-decode to UTF-8 was answered by axum in
    /// plain text, not with the JSON error that docs/openapi.yaml promises for every 400.
    #[tokio::test]
    async fn issue_19_a_name_that_is_not_utf8_is_a_json_400() {
        let dir = tempfile::tempdir().unwrap();
        let admin = Secret::generate().unwrap();
        let router = router(app(dir.path(), &admin));
        for (method, path) in [
            (Method::GET, "/v1/views/%FF"),
            (Method::GET, "/v1/views/%FF/results"),
            (Method::POST, "/v1/streams/%FF/events"),
            // A repeated query key (how some clients send an array), which axum's `Query`
            // into a struct answers in plain text, an unknown one, and an empty or
            // negative `since`.
            (Method::GET, "/v1/streams/bid/dead-letters?limit=1&limit=2"),
            (Method::GET, "/v1/streams/bid/dead-letters?limit=1&since=2"),
            (Method::GET, "/v1/history?since=1&since=2"),
            (Method::GET, "/v1/history?limit=1"),
            (Method::GET, "/v1/history?since="),
            (Method::GET, "/v1/history?since=-1"),
        ] {
            let answer = call(&router, method, path, &admin).await;
            assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(
                answer.headers()[header::CONTENT_TYPE],
                "application/json",
                "{path}"
            );
            let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"]["code"], "bad_request", "{path}: {body}");
        }
    }

    /// The router serves exactly what the table lists, whatever the method: at every path,
    /// a method no route has is answered 405 with `Allow` naming every method the router
    /// serves there, which must be the table's. (Sent with an admin token, which the check
    /// lets through, so that the router answers.)
    #[tokio::test]
    async fn the_router_serves_exactly_the_routes_the_table_lists() {
        let dir = tempfile::tempdir().unwrap();
        let admin = Secret::generate().unwrap();
        let router = router(app(dir.path(), &admin));
        let (_, table) = RouteRoles::router(routes(false));
        let probe = Method::from_bytes(b"PROBE").expect("a method");
        let mut paths: Vec<&str> = table.routes().map(|(_, path, _)| path).collect();
        paths.dedup();
        for path in paths {
            let answer = call(&router, probe.clone(), &path.replace("{name}", "x"), &admin).await;
            assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
            let allow = answer.headers()[header::ALLOW].to_str().expect("ASCII");
            let mut served: Vec<&str> = allow.split(',').map(str::trim).collect();
            served.sort_unstable();
            let mut listed: Vec<&str> = table
                .routes()
                .filter(|(_, p, _)| *p == path)
                .flat_map(|(m, _, _)| match *m {
                    Method::GET => vec!["GET", "HEAD"],
                    ref other => vec![other.as_str()],
                })
                .collect();
            listed.sort_unstable();
            assert_eq!(served, listed, "{path}");
        }
    }
}
