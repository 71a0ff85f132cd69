//! The engine's one error type, with variants named by who must act: the user (their SQL
//! or other input), the operator (events a view needs were removed from the log, a limit
//! was reached), the outside world (the store, the log, I/O; retriable where the cause may
//! pass), or Freshet's developers (a bug).

use thiserror::Error;

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything that can go wrong planning or running a view.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The user's SQL or options are wrong or unsupported; the message names the problem.
    #[error("{0}")]
    Sql(String),
    /// The user's other input is wrong (a history file, a time range); the message says how.
    #[error("{0}")]
    Input(String),
    /// Events a view needs are no longer in the log: retention removed them, or the log
    /// lost events the view already read. The operator must act (recreate the view from
    /// what the log holds, or keep the log longer).
    #[error("{0}")]
    LogRetention(String),
    /// A limit on what one view may hold (its UNION ALL branches, hopping copies).
    #[error("Resources exhausted: {0}")]
    ResourceLimit(String),
    /// A batch query needed more memory than its limit allows.
    #[error(
        "the query needs more memory than a query may use (FRESHET_QUERY_MEMORY_MAX, 1 GiB \
         by default; sorts and aggregations spill to disk beyond it, joins cannot): {0}"
    )]
    QueryMemory(String),
    /// A view's state grew past its configured cap.
    #[error(
        "view '{view}' holds {bytes} bytes of state, over its cap of {cap} bytes (`DESCRIBE \
         VIEW` says what each of its operators keeps and what frees it); raise \
         `state_bytes_max`, bound a join of streams in time (`a.t BETWEEN b.t - INTERVAL \
         ...`) or by `state_ttl`, window or narrow the GROUP BY, or shorten \
         `allowed_lateness`"
    )]
    StateLimit {
        /// The view.
        view: String,
        /// Its state size.
        bytes: u64,
        /// The cap.
        cap: u64,
    },
    /// The result store failed.
    #[error(transparent)]
    Store(#[from] freshet_store::StoreError),
    /// The log or a stream failed.
    #[error(transparent)]
    Stream(#[from] freshet_streams::StreamError),
    /// Reading the log failed.
    #[error(transparent)]
    Log(#[from] freshet_log::LogError),
    /// The view catalog could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A broken invariant: a bug in Freshet.
    #[error("internal error (a bug): {0}")]
    Bug(String),
}

impl EngineError {
    /// Whether this is the result store being unavailable (an outage that may pass), as
    /// opposed to any other failure, retriable or not.
    pub fn store_unavailable(&self) -> bool {
        matches!(self, EngineError::Store(e) if e.retriable())
    }

    /// Whether the store refused a commit because this process no longer holds the view
    /// (another took it over): the view must stop.
    pub fn fenced(&self) -> bool {
        matches!(self, EngineError::Store(e) if e.fenced())
    }

    /// Whether retrying the same work later may succeed.
    pub fn retriable(&self) -> bool {
        match self {
            EngineError::Store(e) => e.retriable(),
            EngineError::Io { .. } => true,
            _ => false,
        }
    }
}

impl From<datafusion::error::DataFusionError> for EngineError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        // Out of memory, however deep the operators wrapped it.
        if let D::ResourcesExhausted(m) = e.find_root() {
            return EngineError::QueryMemory(m.clone());
        }
        match e {
            D::Context(ctx, inner) => match EngineError::from(*inner) {
                EngineError::Sql(m) => EngineError::Sql(format!("{ctx}: {m}")),
                other => other,
            },
            D::Diagnostic(_, inner) => EngineError::from(*inner),
            D::Internal(m) => EngineError::Bug(m),
            D::IoError(source) => EngineError::Io {
                context: "executing a batch query".into(),
                source,
            },
            // Errors raised by Freshet's own scans come back as they were.
            D::External(e) => match e.downcast::<EngineError>() {
                Ok(e) => *e,
                Err(e) => match e.downcast::<freshet_log::LogError>() {
                    Ok(e) => EngineError::Log(*e),
                    Err(e) => match e.downcast::<freshet_streams::StreamError>() {
                        Ok(e) => EngineError::Stream(*e),
                        Err(e) => EngineError::Sql(e.to_string()),
                    },
                },
            },
            other => EngineError::Sql(other.strip_backtrace()),
        }
    }
}

impl From<arrow_schema::ArrowError> for EngineError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        EngineError::Sql(e.to_string())
    }
}

/// Shorthand for an unsupported-construct error.
pub(crate) fn unsupported(what: impl std::fmt::Display) -> EngineError {
    EngineError::Sql(format!("not supported in a streaming view: {what}"))
}
