//! The engine's one error type, with variants named by who must act.

use thiserror::Error;

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything that can go wrong planning or running a view.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The user's SQL or options are wrong or unsupported; the message names the problem.
    #[error("{0}")]
    Sql(String),
    /// A view's state grew past its configured cap.
    #[error(
        "view '{view}' holds {bytes} bytes of state, over its cap of {cap} bytes; raise \
         `state_bytes_max`, shorten `allowed_lateness`, or narrow the GROUP BY"
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
        match e {
            D::Context(ctx, inner) => match EngineError::from(*inner) {
                EngineError::Sql(m) => EngineError::Sql(format!("{ctx}: {m}")),
                other => other,
            },
            D::Diagnostic(_, inner) => EngineError::from(*inner),
            D::Internal(m) => EngineError::Bug(m),
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
