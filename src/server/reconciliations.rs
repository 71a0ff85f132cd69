//! What scheduled reconciliations found, per view (see `reconciler` for the runs): kept in
//! `<data dir>/reconciliations.json`, replaced after every run, so that a restarted server
//! shows the figures and totals so far and a query-only server beside the writer reads them
//! from there.

use freshet_engine::ViewCatalog;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file the figures are kept in, in the data directory.
const FILE: &str = "reconciliations.json";

/// What a view's scheduled reconciliations found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Figures {
    /// Runs so far.
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
    /// The view's query when these figures were taken: a view dropped and created again
    /// under the same name starts afresh.
    pub query: String,
    /// The end of the windows the last successful run compared (where the next run goes
    /// on from, less one period).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compared_to_ms: Option<i64>,
}

/// Figures per view, kept in the data directory's [`FILE`].
pub struct Reconciliations {
    dir: PathBuf,
    /// Whether this server runs the reconciliations (and writes the file); a query-only
    /// server reads the file on each request instead.
    writer: bool,
    figures: Mutex<BTreeMap<String, Figures>>,
}

impl Reconciliations {
    /// The figures kept in the data directory `dir`. A missing file is no runs yet; an
    /// unreadable one is logged and started afresh (the figures are a report, not state
    /// anything depends on).
    pub fn open(dir: &Path, writer: bool) -> Reconciliations {
        Reconciliations {
            dir: dir.to_path_buf(),
            writer,
            figures: Mutex::new(read(dir)),
        }
    }

    pub fn get(&self, view: &str) -> Option<Figures> {
        if !self.writer {
            return read(&self.dir).remove(view);
        }
        self.figures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(view)
            .cloned()
    }

    /// Every view's figures, as this server knows them.
    pub fn all(&self) -> BTreeMap<String, Figures> {
        self.figures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes `view`'s figures, forgets views no longer in `catalog`, and rewrites the file.
    pub fn update(&self, catalog: &ViewCatalog, view: &str, f: impl FnOnce(&mut Figures)) {
        let mut all = self.figures.lock().unwrap_or_else(|e| e.into_inner());
        let figures = all.entry(view.to_owned()).or_default();
        if let Some(def) = catalog.get(view)
            && figures.query != def.query
        {
            *figures = Figures {
                query: def.query.clone(),
                ..Figures::default()
            };
        }
        f(figures);
        all.retain(|name, _| catalog.get(name).is_some());
        let bytes = serde_json::to_vec_pretty(&*all).expect("figures always serialise");
        if let Err(e) = freshet_types::files::write_atomically(&self.dir, FILE, &bytes) {
            tracing::warn!(error = %e, "cannot keep the reconciliation figures in {FILE}");
        }
    }
}

fn read(dir: &Path) -> BTreeMap<String, Figures> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "unreadable reconciliation figures; starting afresh");
            BTreeMap::new()
        }),
        Err(_) => BTreeMap::new(),
    }
}
