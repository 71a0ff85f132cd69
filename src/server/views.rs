//! Views over HTTP: list and describe views, read their results with freshness metadata,
//! and the server's status. Handlers read through their thread's own read-only connection
//! to the result store, so reads never wait for a view's commit: on tokio's blocking pool,
//! except a page of results from a local SQLite file, which is cheaper to read in place.

use super::error::{ApiError, Name};
use super::state::App;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use freshet_engine::freshness::Freshness;
use freshet_engine::source::fmt_ms;
use freshet_engine::{Stats, ViewCatalog, ViewDef};
use freshet_store::{ResultQuery, ResultStore, StoreError, StoreLocation, ViewStatus};
use freshet_types::limits::RESULT_ROWS_PER_PAGE_MAX;
use serde_json::{Value, json};
use std::sync::Arc;

/// Rows per page when the request does not say.
const RESULT_ROWS_PER_PAGE_DEFAULT: usize = 100;

/// Run `f` on the blocking pool; a panic there is answered as an internal error.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the request's task failed: {e}"),
        )
    })?
}

fn catalog(app: &App) -> Result<ViewCatalog, ApiError> {
    ViewCatalog::load(app.log.root()).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot read the view catalog: {e}"),
        )
    })
}

pub(super) fn view_def(catalog: &ViewCatalog, name: &str) -> Result<ViewDef, ApiError> {
    catalog.get(name).cloned().ok_or_else(|| unknown_view(name))
}

fn unknown_view(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_view",
        format!("unknown view '{name}'"),
    )
}

/// The result store, read-only; `None` before any view created it.
fn open_store(app: &App) -> Result<Option<Box<dyn ResultStore>>, ApiError> {
    if let StoreLocation::Sqlite(path) = &app.store
        && !path.exists()
    {
        return Ok(None);
    }
    match app.store.open_read_only() {
        Ok(store) => Ok(Some(store)),
        // A PostgreSQL schema no writer has created yet.
        Err(StoreError::User { .. }) if app.store.is_shared() => Ok(None),
        Err(e) => Err(store_error(e)),
    }
}

/// What a blocking-pool thread keeps between requests: the view catalog and a read-only
/// connection to the store, both valid for one catalog generation (`App::catalog_changed`).
struct Reader {
    generation: u64,
    catalog: ViewCatalog,
    store: Option<Box<dyn ResultStore>>,
}

thread_local! {
    static READER: std::cell::RefCell<Option<Reader>> = const { std::cell::RefCell::new(None) };
}

/// Run `f` with the catalog and the store, reusing this thread's connection while the
/// catalog has not changed (opening a connection costs more than a key lookup).
pub(super) fn with_reader<T>(
    app: &App,
    f: impl FnOnce(&ViewCatalog, Option<&dyn ResultStore>) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let generation = app.catalog_generation();
    READER.with(|cell| {
        let mut cell = cell.borrow_mut();
        // A store not created yet is looked for again on every request.
        let stale = cell
            .as_ref()
            .is_none_or(|r| r.generation != generation || r.store.is_none());
        if stale {
            *cell = Some(Reader {
                generation,
                catalog: catalog(app)?,
                store: open_store(app)?,
            });
        }
        let reader = cell.as_ref().expect("set above");
        f(&reader.catalog, reader.store.as_deref())
    })
}

pub(super) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::User { message } => {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
        }
        // Every connection of the pool is in use: a client should come back shortly.
        e @ StoreError::Busy { .. } => ApiError {
            retry_after_s: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_busy", e.to_string())
        },
        e if e.retriable() => ApiError {
            retry_after_s: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("the result store cannot be read now: {e}"),
            )
        },
        e => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            format!("{e}"),
        ),
    }
}

fn never_committed(view: &str) -> ViewStatus {
    ViewStatus {
        view: view.to_string(),
        progress: None,
        committed_at_ms: None,
    }
}

/// A view's status as stored, and whether the store knows the view at all (a view just
/// created may not have been opened by the views thread yet).
fn view_status(
    store: Option<&dyn ResultStore>,
    view: &str,
) -> Result<(ViewStatus, bool), ApiError> {
    match store {
        None => Ok((never_committed(view), false)),
        Some(s) => match s.status(view) {
            Ok(status) => Ok((status, true)),
            Err(StoreError::User { .. }) => Ok((never_committed(view), false)),
            Err(e) => Err(store_error(e)),
        },
    }
}

/// A view's status and a page of its results from one snapshot; `None` while the store
/// does not know the view yet.
fn read_page(
    store: Option<&dyn ResultStore>,
    view: &str,
    query: &ResultQuery,
) -> Result<Option<(ViewStatus, freshet_store::ResultRows)>, ApiError> {
    let Some(s) = store else { return Ok(None) };
    match s.read_page(view, query) {
        Ok(page) => Ok(Some(page)),
        // An unknown view, or a filter the view's columns refuse: the status tells which.
        Err(e @ StoreError::User { .. }) => match view_status(store, view)? {
            (_, false) => Ok(None),
            (_, true) => Err(store_error(e)),
        },
        Err(e) => Err(store_error(e)),
    }
}

/// A view as the API and the metrics show it.
pub struct ViewFigures {
    pub def: ViewDef,
    pub freshness: Freshness,
    pub stats: Stats,
}

impl ViewFigures {
    /// The mode the view ran in at its last commit (the planner may move it; see
    /// docs/planner.md).
    pub fn mode(&self) -> &'static str {
        self.stats.mode.map_or("streaming", |m| m.as_str())
    }
}

fn figures(app: &App, def: &ViewDef, status: &ViewStatus, now: i64) -> ViewFigures {
    let (freshness, stats) = freshness(app, def, status, now);
    ViewFigures {
        def: def.clone(),
        freshness,
        stats,
    }
}

/// How current `status` is against the log's ends now, and the counters of its last commit.
pub(super) fn freshness(
    app: &App,
    def: &ViewDef,
    status: &ViewStatus,
    now: i64,
) -> (Freshness, Stats) {
    freshet_engine::freshness::of(def, status, now, |stream, partition| {
        app.log.end_offset(stream, partition)
    })
}

fn view_summary(f: &ViewFigures) -> Value {
    let stats = &f.stats;
    json!({
        "name": f.def.name,
        "query": f.def.query,
        "options": f.def.options,
        "mode": f.mode(),
        "period_ms": stats.period_ms,
        "freshness": f.freshness,
        "stats": {
            "input_events": stats.input_events,
            "rows_written": stats.rows_written,
            "rows_deleted": stats.rows_deleted,
            "late_dropped": stats.late_dropped,
            "late_dead_lettered": stats.late_dead_lettered,
            "late_updated": stats.late_updated,
            "state_bytes": stats.state_bytes,
            "mode_switches": stats.mode_switches,
            "batch_runs": stats.batch_runs,
        },
    })
}

/// Every view's figures, in catalog order.
pub fn all_figures(app: &App) -> Result<Vec<ViewFigures>, ApiError> {
    let now = freshet_types::IngestTime::now().0;
    with_reader(app, |catalog, store| {
        catalog
            .views
            .iter()
            .map(|def| {
                let (status, _) = view_status(store, &def.name)?;
                Ok(figures(app, def, &status, now))
            })
            .collect()
    })
}

fn all_views(app: &App) -> Result<Vec<Value>, ApiError> {
    Ok(all_figures(app)?
        .iter()
        .map(|f| {
            let mut v = view_summary(f);
            v["reconciliation"] = json!(app.reconciliations.get(&f.def.name));
            v
        })
        .collect())
}

/// `GET /v1/views`: every view with its options, freshness and counters.
pub async fn list(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    blocking(move || Ok(Json(json!({ "views": all_views(&app)? })))).await
}

/// `GET /v1/views/{name}`: the summary plus the statement, results table and plan.
pub async fn describe(
    State(app): State<Arc<App>>,
    Name(name): Name,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let (catalog, def, status) = with_reader(&app, |catalog, store| {
            let def = view_def(catalog, &name)?;
            let (status, _) = view_status(store, &name)?;
            Ok((catalog.clone(), def, status))
        })?;
        let mut out = view_summary(&figures(
            &app,
            &def,
            &status,
            freshet_types::IngestTime::now().0,
        ));
        out["reconciliation"] = json!(app.reconciliations.get(&name));
        // Describing compiles the view against the streams, which a query-only server
        // does not open.
        let text = match app.log.writer_dir() {
            None => None,
            Some(dir) => Some(
                freshet_engine::manage::describe(dir, &catalog, &def).map_err(|e| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        format!("cannot describe view '{name}': {e}"),
                    )
                })?,
            ),
        };
        out["ddl"] = json!(def.ddl);
        out["description"] = json!(text);
        // How the planner weighs the view's modes with the costs it last measured.
        let planned = app
            .planned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name)
            .copied();
        out["planner"] = json!(planned.map(|costs| freshet_engine::explain::live(&def, costs)));
        Ok(Json(out))
    })
    .await
}

/// `GET /v1/views/{name}/results`: result rows in key order. Query parameters: `from`,
/// `to` (RFC 3339 or epoch ms; windows overlapping `[from, to)`), `limit` (default 100,
/// at most 10,000), `offset`, and any key column as `column=value`.
pub async fn results(
    State(app): State<Arc<App>>,
    Name(name): Name,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let app_store_is_shared = app.store.is_shared();
    // A key lookup: a small page from the start, narrowed by a key column.
    let small_page = params.iter().all(|(k, v)| match k.as_str() {
        "limit" => v.parse::<usize>().is_ok_and(|n| n <= INLINE_PAGE_ROWS_MAX),
        "offset" => v == "0",
        _ => true,
    }) && params
        .iter()
        .any(|(k, _)| !matches!(k.as_str(), "limit" | "offset" | "from" | "to"));
    let read = move || {
        let query = result_query(&params)?;
        let (freshness, rows, has_more) = with_reader(&app, |catalog, store| {
            let def = catalog.get(&name).ok_or_else(|| unknown_view(&name))?;
            let (status, rows, has_more) = match read_page(store, &name, &query)? {
                None => (never_committed(&name), Vec::new(), false),
                Some((status, page)) => {
                    let rows = crate::rows_json::rows(&page.batch).map_err(|e| {
                        ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal",
                            format!("{e:#}"),
                        )
                    })?;
                    (status, rows, page.has_more)
                }
            };
            let now = freshet_types::IngestTime::now().0;
            Ok((freshness(&app, def, &status, now).0, rows, has_more))
        })?;
        let next = has_more.then_some(query.offset + rows.len());
        Ok(Json(json!({
            "view": name,
            "freshness": freshness,
            "rows": rows,
            "has_more": has_more,
            "next_offset": next,
        })))
    };
    // A key lookup in a local SQLite file takes tens of microseconds, less than handing it
    // to the blocking pool and back costs; a large page, a scan, or a store across the
    // network (whose reads can wait on a reconnect) goes to the blocking pool.
    if !app_store_is_shared && small_page {
        read()
    } else {
        blocking(read).await
    }
}

/// Largest page read on the HTTP runtime's own threads (see [`results`]).
const INLINE_PAGE_ROWS_MAX: usize = 1_000;

fn result_query(params: &[(String, String)]) -> Result<ResultQuery, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m);
    let time = |name: &str, v: &str| {
        crate::app::time_arg::parse_time(v).map_err(|e| bad(format!("{name}: {e:#}")))
    };
    let mut query = ResultQuery {
        limit: RESULT_ROWS_PER_PAGE_DEFAULT,
        ..ResultQuery::default()
    };
    for (k, v) in params {
        match k.as_str() {
            "from" => query.from_ms = Some(time(k, v)?),
            "to" => query.to_ms = Some(time(k, v)?),
            "limit" => {
                let n: usize = v
                    .parse()
                    .map_err(|_| bad(format!("limit: '{v}' is not a number")))?;
                if n == 0 || n > RESULT_ROWS_PER_PAGE_MAX {
                    return Err(bad(format!(
                        "limit must be between 1 and {RESULT_ROWS_PER_PAGE_MAX}, got {n}"
                    )));
                }
                query.limit = n;
            }
            "offset" => {
                query.offset = v
                    .parse()
                    .map_err(|_| bad(format!("offset: '{v}' is not a number")))?
            }
            _ => query.equals.push((k.clone(), v.clone())),
        }
    }
    Ok(query)
}

/// `GET /v1/status`: streams (partitions, end offsets) and views (freshness, counters).
pub async fn status(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let mut streams = Vec::new();
        for def in app.log.streams() {
            let Some(ends) = app.log.ends(&def) else {
                continue;
            };
            streams.push(json!({
                "name": def.name,
                "partitions": ends.partitions.len(),
                "end_offsets": ends.partitions,
                "events": ends.partitions.iter().sum::<u64>(),
                "dead_letters": ends.dead_letters,
            }));
        }
        let views = all_views(&app)?;
        Ok(Json(json!({
            "now": fmt_ms(freshet_types::IngestTime::now().0),
            "views_error": app.views_error(),
            "streams": streams,
            "views": views,
        })))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    /// A pool with every connection in use is a 503 `store_busy` with `Retry-After`, apart
    /// from other store failures.
    #[test]
    fn a_busy_store_is_503_store_busy_with_retry_after() {
        let busy = store_error(StoreError::Busy {
            message: "all 4 connections stayed in use".into(),
        });
        assert_eq!(
            (busy.status, busy.code),
            (StatusCode::SERVICE_UNAVAILABLE, "store_busy")
        );
        let response = busy.into_response();
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "1");
    }
}
