//! The server's shared state: what every handler, the views thread and the reconciler
//! read. It names the channel the views thread takes DDL from, but none of the threads or
//! handlers that use it, so every server module depends on this one and not the reverse.

use super::credentials::Credentials;
use super::error::ApiError;
use super::history::History;
use super::log_access::LogAccess;
use super::reconciliations::Reconciliations;
use freshet_engine::planner::Costs;
use freshet_store::StoreLocation;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// DDL requests waiting for the views thread; more are refused with 503.
pub const DDL_QUEUE_MAX: usize = 16;

/// One `POST /v1/sql` body, handed to the views thread.
pub struct DdlRequest {
    pub sql: String,
    pub reply: tokio::sync::oneshot::Sender<Result<Vec<String>, ApiError>>,
}

/// Shared state of the server.
pub struct App {
    /// The data directory: held for writing, or read beside its writer (`--role query`).
    pub log: LogAccess,
    /// Where view results are kept.
    pub store: StoreLocation,
    /// Counter for generated request ids.
    pub requests: AtomicU64,
    /// Why the views thread stopped, if it failed.
    pub views_failed: Mutex<Option<String>>,
    /// DDL for the views thread (`POST /v1/sql`).
    pub ddl: std::sync::mpsc::SyncSender<DdlRequest>,
    /// Bumped after every DDL request, so that readers drop what they cached.
    pub catalog_generation: AtomicU64,
    /// What scheduled reconciliations found, per view.
    pub reconciliations: Reconciliations,
    /// The API tokens accepted now, and whether one is required.
    pub credentials: Arc<Credentials>,
    /// The figures of the last hour, sampled by `sampling::sample`.
    pub history: Mutex<History>,
    /// Per running view, the costs the planner last chose its schedule from (published by
    /// the views thread; empty on a query-only server, which runs no views).
    pub planned: Mutex<BTreeMap<String, Costs>>,
    /// Change feeds streaming now (at most `CHANGE_FEEDS_MAX`).
    pub change_feeds: AtomicUsize,
    /// Set when the server stops: change feeds end, so the graceful stop need not wait for
    /// their clients.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

impl App {
    /// The catalog generation: readers cache the catalog and a store connection per
    /// generation.
    pub fn catalog_generation(&self) -> u64 {
        self.catalog_generation.load(Ordering::SeqCst)
    }

    /// The views thread applied DDL: what readers cached may be out of date.
    pub fn catalog_changed(&self) {
        self.catalog_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Why the views thread stopped, if it failed (a bug or a permanent store error).
    pub fn views_error(&self) -> Option<String> {
        self.views_failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
