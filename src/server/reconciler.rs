//! Scheduled reconciliation: every `reconcile_every`, a view is recomputed in batch for the
//! windows it finalised since the last run (the first run: all of them; later runs overlap
//! the previous one by one period, so a window across the boundary is not skipped when it is
//! no longer than the period) and compared with its stored rows, on a thread of its own (a
//! long batch run never stalls the views or the HTTP server). Each run's figures are logged,
//! kept (`reconciliations`) for `/v1/views` and `/v1/status`, and exported as metrics;
//! differences are reported, not repaired (that is `freshet reconcile --repair`). A
//! restarted server goes on from the windows the last run reached.

use super::state::App;
use freshet_engine::ViewCatalog;
use freshet_engine::reconcile::{Request, reconcile};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the reconciler looks for views that are due.
const TICK: Duration = Duration::from_secs(1);

/// Runs scheduled reconciliations until `stop` is set.
pub fn run(app: &App, stop: &AtomicBool) {
    let started = freshet_types::IngestTime::now().0;
    // Per view: when it last ran (wall clock) and the end of the windows it compared; a
    // restarted server goes on from where the kept figures say.
    let kept: HashMap<String, (String, i64, Option<i64>)> = app
        .reconciliations
        .all()
        .into_iter()
        .map(|(view, f)| (view, (f.query, f.last_run_ms, f.compared_to_ms)))
        .collect();
    let mut last: HashMap<String, (i64, Option<i64>)> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(TICK);
        let Ok(catalog) = ViewCatalog::load(app.log.root()) else {
            continue;
        };
        for def in &catalog.views {
            let Some(every) = def.options.reconcile_every_ms else {
                continue;
            };
            let now = freshet_types::IngestTime::now().0;
            let (ran, compared_to) = last
                .get(&def.name)
                .copied()
                .or_else(|| {
                    kept.get(&def.name)
                        .filter(|(query, _, _)| *query == def.query)
                        .map(|&(_, ran, to)| (ran, to))
                })
                .unwrap_or((started, None));
            if now - ran < every as i64 {
                continue;
            }
            let from = compared_to.map(|to| to.saturating_sub(every as i64));
            let to = once(app, &catalog, &def.name, from).or(compared_to);
            last.insert(def.name.clone(), (now, to));
            if stop.load(Ordering::SeqCst) {
                return;
            }
        }
    }
}

/// Reconciles `view`'s finalised windows from `from` (the beginning if `None`); returns the
/// end of the windows compared.
fn once(app: &App, catalog: &ViewCatalog, view: &str, from: Option<i64>) -> Option<i64> {
    let outcome = (|| -> anyhow::Result<_> {
        let mut store = app.store.open_read_only()?;
        let status = store.status(view)?;
        let Some(watermark) = status.progress.and_then(|p| p.watermark_ms) else {
            return Ok(None);
        };
        let lateness = catalog
            .get(view)
            .map_or(0, |d| d.options.allowed_lateness_ms as i64);
        // After the end of the streams every window is final.
        let to_ms = if watermark == i64::MAX {
            i64::MAX / 4
        } else {
            watermark.saturating_sub(lateness)
        };
        let from_ms = from.unwrap_or(i64::MIN / 4).min(to_ms);
        let streams = app.log.streams();
        let report = reconcile(
            &Request {
                root: app.log.root(),
                streams: &streams,
                catalog,
                view,
                from_ms,
                to_ms,
                repair: false,
                on_scan: None,
                history: &[],
            },
            store.as_mut(),
        )?;
        Ok(Some(report))
    })();
    let now = freshet_types::IngestTime::now().0;
    match outcome {
        Ok(None) => None,
        Ok(Some(r)) => {
            tracing::info!(
                view,
                matched = r.matched,
                mismatched = r.mismatched,
                missing = r.missing,
                extra = r.extra,
                ratio = r.ratio,
                "scheduled reconciliation"
            );
            app.reconciliations.update(catalog, view, |f| {
                f.runs += 1;
                f.last_run_ms = now;
                f.compared_to_ms = Some(r.to_ms);
                f.from_ms = r.from_ms;
                f.to_ms = r.to_ms;
                f.matched = r.matched;
                f.mismatched = r.mismatched;
                f.missing = r.missing;
                f.extra = r.extra;
                f.ratio = r.ratio;
                f.total_matched += r.matched;
                f.total_mismatched += r.mismatched;
                f.total_missing += r.missing;
                f.total_extra += r.extra;
                f.error = None;
            });
            Some(r.to_ms)
        }
        Err(e) => {
            let text = format!("{e:#}");
            tracing::warn!(view, error = text, "scheduled reconciliation failed");
            app.reconciliations.update(catalog, view, |f| {
                f.runs += 1;
                f.last_run_ms = now;
                f.error = Some(text);
            });
            None
        }
    }
}

/// Starts the reconciler thread.
pub fn spawn(app: Arc<App>, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("reconciler".into())
        .spawn(move || run(&app, &stop))
}
