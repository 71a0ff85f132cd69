//! Errors as PostgreSQL clients expect them: an `ErrorResponse` with a SQLSTATE that says
//! what kind of failure it is (appendix A of the PostgreSQL manual). An `ERROR` ends the
//! statement and the connection stays usable; a `FATAL` one ends the connection.

use crate::server::error::ApiError;
use axum::http::StatusCode;
use freshet_engine::batch::{QueryError, QueryErrorKind};
use pgwire::error::{ErrorInfo, PgWireError};

pub const SYNTAX_ERROR: &str = "42601";
pub const SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION: &str = "42000";
pub const UNDEFINED_TABLE: &str = "42P01";
pub const UNDEFINED_COLUMN: &str = "42703";
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
pub const INVALID_PASSWORD: &str = "28P01";
pub const INVALID_AUTHORIZATION: &str = "28000";
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
pub const DATA_EXCEPTION: &str = "22000";
pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
pub const INSUFFICIENT_RESOURCES: &str = "53000";
pub const TOO_MANY_CONNECTIONS: &str = "53300";
pub const CANNOT_CONNECT_NOW: &str = "57P03";
pub const INTERNAL_ERROR: &str = "XX000";

/// An `ERROR` with `code`: the statement fails, the connection goes on.
pub fn error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
}

/// A `FATAL` error with `code`: the connection ends.
pub fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message.into(),
    )))
}

/// A batch query's failure.
pub fn from_query(e: QueryError) -> PgWireError {
    let code = match e.kind {
        QueryErrorKind::Syntax => SYNTAX_ERROR,
        QueryErrorKind::UndefinedTable => UNDEFINED_TABLE,
        QueryErrorKind::UndefinedColumn => UNDEFINED_COLUMN,
        QueryErrorKind::Unsupported => FEATURE_NOT_SUPPORTED,
        QueryErrorKind::InvalidParameter => INVALID_TEXT_REPRESENTATION,
        QueryErrorKind::Invalid => SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION,
        QueryErrorKind::Data => DATA_EXCEPTION,
        QueryErrorKind::ResourceLimit => INSUFFICIENT_RESOURCES,
        QueryErrorKind::Internal => INTERNAL_ERROR,
    };
    error(code, e.to_string())
}

/// A failure of the statement path `POST /v1/sql` uses, told as that route would tell it.
pub fn from_api(e: ApiError) -> PgWireError {
    let code = match (e.status, e.code) {
        (StatusCode::SERVICE_UNAVAILABLE, _) => CANNOT_CONNECT_NOW,
        // A query-only server refuses statements: the writer takes them.
        (StatusCode::FORBIDDEN, _) => FEATURE_NOT_SUPPORTED,
        (StatusCode::BAD_REQUEST, _) => statement_code(&e.message),
        _ => INTERNAL_ERROR,
    };
    error(code, e.message)
}

/// The SQLSTATE of a statement the engine refused, from its message (the engine's
/// statement errors are one type, whose text says what is wrong).
pub fn statement_code(message: &str) -> &'static str {
    if message.contains("cannot parse") || message.contains("expected") {
        SYNTAX_ERROR
    } else if message.contains("unsupported statement") || message.contains("not supported") {
        FEATURE_NOT_SUPPORTED
    } else if message.contains("unknown view")
        || message.contains("unknown stream")
        || message.contains("does not exist")
    {
        UNDEFINED_TABLE
    } else {
        SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION
    }
}

/// A task of the blocking pool that did not finish (it panicked).
pub fn task_failed(e: tokio::task::JoinError) -> PgWireError {
    error(INTERNAL_ERROR, format!("the query's task failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_failures_get_the_sqlstate_of_their_kind() {
        assert_eq!(
            statement_code("cannot parse view statement: sql parser error"),
            SYNTAX_ERROR
        );
        assert_eq!(
            statement_code("unsupported statement: this version understands ..."),
            FEATURE_NOT_SUPPORTED
        );
        assert_eq!(
            statement_code("statement 1 of 1 failed: unknown view 'x'"),
            UNDEFINED_TABLE
        );
        let refused = from_api(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "views_unavailable",
            "the views thread has stopped",
        ));
        assert_eq!(ErrorInfo::from(refused).code, CANNOT_CONNECT_NOW);
    }
}
