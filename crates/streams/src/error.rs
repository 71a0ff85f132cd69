//! Errors of stream management and ingest, named by who must act.

use freshet_log::LogError;

/// Everything that can go wrong managing streams or ingesting into them.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The user wrote DDL Freshet cannot accept; the message points at the problem.
    #[error("{0}")]
    BadDdl(String),
    /// A statement names a stream that does not exist.
    #[error("unknown stream `{0}`")]
    UnknownStream(String),
    /// CREATE STREAM for a name already taken.
    #[error("stream `{0}` already exists")]
    StreamExists(String),
    /// The user's input cannot be read at all (as opposed to single bad rows, which go to
    /// the dead-letter stream).
    #[error("bad input: {0}")]
    BadInput(String),
    /// A named limit was exceeded; nothing was appended.
    #[error("{what} of {actual} exceeds the limit of {max} ({limit})")]
    Limit {
        /// What was measured.
        what: &'static str,
        /// The measured value.
        actual: u64,
        /// The limit.
        max: u64,
        /// The limit's name in `freshet_types::limits`.
        limit: &'static str,
    },
    /// The data directory is in use by another Freshet process.
    #[error(
        "data directory {path} is in use by another freshet process ({holder}; lock file \
         {path}/LOCK); stop it, or go through its HTTP API"
    )]
    Locked {
        /// The data directory.
        path: String,
        /// Who holds it, as the holder recorded it (process id and command line).
        holder: String,
    },
    /// The catalog file could not be read or written.
    #[error("catalog {path}: {detail}")]
    Catalog {
        /// The catalog file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The log failed (I/O, corruption, a failed sync).
    #[error(transparent)]
    Log(#[from] LogError),
    /// An I/O error outside the log (reading an input file, the lock file).
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The request was written while an earlier one to the same stream failed, and was
    /// withdrawn with it: nothing of it was kept. Retrying is safe.
    #[error("{0}; nothing of this request was kept")]
    Withdrawn(String),
    /// A request failed and the rows it had written could not be cut from the log: they
    /// are not read now, but may be after a restart. Retry only with the same
    /// `Idempotency-Key`.
    #[error("{0}")]
    NotUndone(String),
    /// A retry of a request whose first attempt is still being applied.
    #[error("a request with idempotency key {0:?} is still being applied; retry later")]
    IdempotencyInFlight(String),
    /// An idempotency key sent again with a different body: almost always a client bug
    /// (two requests sharing a key); the first request's outcome stands.
    #[error(
        "idempotency key {0:?} was already used for a request with a different body; \
         use a new key for a new request"
    )]
    IdempotencyKeyReused(String),
    /// NATS JetStream, a stream's log, did not answer or refused an operation.
    #[error("NATS JetStream: {0}")]
    JetStream(String),
    /// A stream's external log no longer holds what Freshet declared or committed (it was
    /// recreated, or lost acknowledged messages): refused rather than skipped over.
    #[error("{0}")]
    LogChanged(String),
    /// Internal invariant violated while encoding or decoding Arrow data.
    #[error("internal Arrow error: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl StreamError {
    /// Whether trying again later, unchanged, may succeed.
    pub fn retriable(&self) -> bool {
        match self {
            StreamError::Log(e) => e.retriable(),
            StreamError::Io { .. }
            | StreamError::IdempotencyInFlight(_)
            | StreamError::JetStream(_) => true,
            _ => false,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = StreamError> = std::result::Result<T, E>;

pub(crate) fn io_err(
    op: &'static str,
    path: impl AsRef<std::path::Path>,
) -> impl FnOnce(std::io::Error) -> StreamError {
    let path = path.as_ref().display().to_string();
    move |source| StreamError::Io { op, path, source }
}
