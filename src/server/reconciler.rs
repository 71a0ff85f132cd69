//! Scheduled reconciliation: every `reconcile_every`, a view is recomputed in batch for the
//! windows it finalised since the last run (the first run: all of them; later runs overlap
//! the previous one by one period, so a window across the boundary is not skipped when it is
//! no longer than the period) and compared with its stored rows, on a thread of its own (a long batch run never stalls the views or the HTTP server). Each run's figures are
//! logged, kept for `/v1/views` and `/v1/status`, and exported as metrics; differences are
//! reported, not repaired (that is `freshet reconcile --repair`).

use freshet_engine::ViewCatalog;
use freshet_engine::reconcile::{Request, reconcile};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::App;

/// How often the reconciler looks for views that are due.
const TICK: Duration = Duration::from_secs(1);

/// What a view's scheduled reconciliations found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// Runs so far (since the server started).
    pub runs: u64,
    /// When the last run finished, ms since the epoch.
    pub last_run_ms: i64,
    /// The event-time range of the last run's windows, ms since the epoch.
    pub from_ms: i64,
    pub to_ms: i64,
    /// The last run's counts and correctness ratio.
    pub matched: u64,
    pub mismatched: u64,
    pub missing: u64,
    pub extra: u64,
    pub ratio: f64,
    /// Rows of each kind over every run (the metrics' counters).
    pub total_matched: u64,
    pub total_mismatched: u64,
    pub total_missing: u64,
    pub total_extra: u64,
    /// Why the last run failed, if it did.
    pub error: Option<String>,
}

/// Figures per view.
#[derive(Default)]
pub struct Reconciliations(Mutex<HashMap<String, Figures>>);

impl Reconciliations {
    pub fn get(&self, view: &str) -> Option<Figures> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(view)
            .cloned()
    }

    fn update(&self, view: &str, f: impl FnOnce(&mut Figures)) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(all.entry(view.to_owned()).or_default());
    }
}

/// Runs scheduled reconciliations until `stop` is set.
pub fn run(app: &App, stop: &AtomicBool) {
    let started = freshet_types::IngestTime::now().0;
    // Per view: when it last ran (wall clock) and the end of the windows it compared.
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
            let (ran, compared_to) = last.get(&def.name).copied().unwrap_or((started, None));
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
            app.reconciliations.update(view, |f| {
                f.runs += 1;
                f.last_run_ms = now;
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
            app.reconciliations.update(view, |f| {
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
