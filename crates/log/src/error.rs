//! Errors of the log, named by who must act.

use freshet_types::Offset;
use std::path::PathBuf;

/// Everything that can go wrong in the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The outside world: an I/O call failed. Usually worth retrying after the cause
    /// (disk full, permissions) is fixed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the log was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Data on disk is damaged where it cannot be a torn tail. An operator must act; the
    /// log refuses to guess.
    #[error(
        "corrupt log: {file} at byte {position} (offset {offset}): {detail}; \
         the log neither opens nor reads past damage that is not a torn tail"
    )]
    Corrupt {
        /// The damaged segment file.
        file: PathBuf,
        /// Byte position of the damaged frame within the file.
        position: u64,
        /// The offset the damaged frame should have started at.
        offset: Offset,
        /// What is wrong.
        detail: String,
    },
    /// A reader asked for an offset the log does not hold.
    #[error("offset {requested} is out of range: the partition holds [{earliest}, {end})")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: Offset,
        /// The earliest offset still held (older ones were removed by retention).
        earliest: Offset,
        /// One past the last offset written.
        end: Offset,
    },
    /// A limit: a frame larger than the log accepts.
    #[error("frame payload of {bytes} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Size asked for.
        bytes: usize,
        /// The limit (`limits::FRAME_PAYLOAD_BYTES_MAX`).
        max: usize,
    },
    /// An earlier sync failed, so what is on disk is unknown; the partition must be reopened
    /// (which re-verifies it) before it accepts more writes.
    #[error("partition {dir} stopped accepting writes after a failed sync: {reason}")]
    Poisoned {
        /// The partition's directory.
        dir: PathBuf,
        /// The error that poisoned it.
        reason: String,
    },
    /// The caller passed something the log cannot accept (a bug in the caller).
    #[error("invalid log request: {0}")]
    Invalid(String),
}

impl LogError {
    /// Whether retrying the same call later can succeed without operator action.
    pub fn retriable(&self) -> bool {
        matches!(self, LogError::Io { .. })
    }
}

/// Result alias for the log.
pub type Result<T, E = LogError> = std::result::Result<T, E>;

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> LogError {
    let path = path.into();
    move |source| LogError::Io { op, path, source }
}
