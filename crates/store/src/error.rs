//! The store's one error type, with variants named by who must act.
//!
//! - [`StoreError::User`]: the request was wrong (unknown view, bad filter value, unsupported
//!   column type, a changed schema). Retrying the same request fails the same way.
//! - [`StoreError::Sqlite`], [`StoreError::Postgres`] and [`StoreError::Io`]: the outside
//!   world failed. `retriable` says
//!   whether the same call may succeed later (a busy or locked database, an I/O error, a full
//!   disk); the caller retries those with backoff.
//! - [`StoreError::Busy`]: every connection of the store's pool stayed in use for the
//!   whole wait. Retriable: the caller (or an HTTP client, told 503) tries again later.
//! - [`StoreError::Corrupt`]: the file holds something Freshet did not write (edited by hand,
//!   or damaged). An operator must look.
//! - [`StoreError::Bug`]: a caller broke the store's contract (a batch whose schema differs
//!   from its table). Nothing outside the process is to blame.
//!
//! Messages do not repeat their source error: the binary prints the whole chain.

use rusqlite::ErrorCode;

/// Everything that can go wrong in the result store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request cannot succeed as asked; the message says what to change.
    #[error("{message}")]
    User {
        /// What was wrong, naming the view, column or value.
        message: String,
    },
    /// SQLite failed.
    #[error("result store: {context}")]
    Sqlite {
        /// What the store was doing.
        context: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
        /// Whether the same call may succeed later (busy, locked, I/O error, disk full).
        retriable: bool,
    },
    /// PostgreSQL failed, or could not be reached.
    #[error("result store: {context}")]
    Postgres {
        /// What the store was doing.
        context: String,
        /// The client's error, with the server's message if it sent one.
        #[source]
        source: postgres::Error,
        /// Whether the same call may succeed later (connection lost, server restarting,
        /// serialization failure, deadlock, statement timeout).
        retriable: bool,
    },
    /// The file system failed outside SQLite.
    #[error("result store: {context}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
        /// Whether the same call may succeed later.
        retriable: bool,
    },
    /// Every connection of the PostgreSQL store's pool stayed in use for the whole wait.
    #[error("result store busy: {message}")]
    Busy {
        /// How many connections, to which store, for how long.
        message: String,
    },
    /// This process no longer holds the view's lease: another took it over (a worker whose
    /// lease lapsed), released it or dropped the view. Nothing of the refused call was
    /// written; the view must stop, since another writer may have moved it on.
    #[error("fenced: {message}")]
    Fenced {
        /// Which view, which epoch this process held, and who holds it now.
        message: String,
    },
    /// The store file holds data Freshet did not write.
    #[error("result store is corrupt: {message}")]
    Corrupt {
        /// What was found, and where.
        message: String,
    },
    /// A caller broke the store's contract.
    #[error("bug in the caller of the result store: {message}")]
    Bug {
        /// Which contract was broken.
        message: String,
    },
}

impl StoreError {
    /// Whether the same call may succeed if tried again later.
    pub fn retriable(&self) -> bool {
        match self {
            StoreError::Sqlite { retriable, .. }
            | StoreError::Postgres { retriable, .. }
            | StoreError::Io { retriable, .. } => *retriable,
            StoreError::Busy { .. } => true,
            StoreError::User { .. }
            | StoreError::Fenced { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Bug { .. } => false,
        }
    }

    /// Whether the call was refused because this process no longer holds the view.
    pub fn fenced(&self) -> bool {
        matches!(self, StoreError::Fenced { .. })
    }

    pub(crate) fn user(message: impl Into<String>) -> StoreError {
        StoreError::User {
            message: message.into(),
        }
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            message: message.into(),
        }
    }

    pub(crate) fn bug(message: impl Into<String>) -> StoreError {
        StoreError::Bug {
            message: message.into(),
        }
    }

    /// Wraps a SQLite error, deciding from its code whether a retry can help.
    pub(crate) fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> StoreError {
        let retriable = sqlite_retriable(&source);
        StoreError::Sqlite {
            context: context.into(),
            source,
            retriable,
        }
    }

    /// Wraps a PostgreSQL error, deciding from its kind and SQLSTATE whether a retry can
    /// help.
    pub(crate) fn postgres(context: impl Into<String>, source: postgres::Error) -> StoreError {
        let retriable = postgres_retriable(&source);
        StoreError::Postgres {
            context: context.into(),
            source,
            retriable,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> StoreError {
        use std::io::ErrorKind::*;
        let retriable = matches!(
            source.kind(),
            Interrupted | WouldBlock | TimedOut | StorageFull | ResourceBusy
        );
        StoreError::Io {
            context: context.into(),
            source,
            retriable,
        }
    }
}

/// SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR and SQLITE_FULL come from the machine's state at
/// the time of the call; every other code fails the same way again.
fn sqlite_retriable(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
        )
    )
}

/// A lost or refused connection, and the server states that pass (shutting down, starting
/// up, too many connections, serialization failure, deadlock, a statement or lock timeout)
/// may succeed later; every other server error (a type changed by hand, a missing
/// permission, a constraint) fails the same way again.
fn postgres_retriable(error: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    if let Some(code) = error.code() {
        let class = &code.code()[..2];
        return class == "08"
            || class == "57"
            || class == "53"
            || [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::LOCK_NOT_AVAILABLE,
            ]
            .contains(code);
    }
    use std::error::Error;
    // A certificate refused or a TLS handshake gone wrong fails the same way again.
    let tls_refused = |io: &std::io::Error| {
        io.get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>())
    };
    error.is_closed()
        || error
            .source()
            .and_then(|source| source.downcast_ref::<std::io::Error>())
            .is_some_and(|io| !tls_refused(io))
        || error.to_string().starts_with("timeout")
}

/// Adds context to a PostgreSQL client result.
pub(crate) trait PostgresContext<T> {
    /// Wraps the error with what the store was doing.
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T> PostgresContext<T> for Result<T, postgres::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::postgres(context(), source))
    }
}

/// Adds context to a rusqlite result.
pub(crate) trait SqliteContext<T> {
    /// Wraps the error with what the store was doing.
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T> SqliteContext<T> for Result<T, rusqlite::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::sqlite(context(), source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_full_are_retriable_constraint_is_not() {
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), None);
        let full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(13), None);
        let constraint = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(19), None);
        assert!(StoreError::sqlite("x", busy).retriable());
        assert!(StoreError::sqlite("x", full).retriable());
        assert!(!StoreError::sqlite("x", constraint).retriable());
        assert!(!StoreError::user("x").retriable());
    }
}
