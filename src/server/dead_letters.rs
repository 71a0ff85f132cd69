//! `GET /v1/streams/{name}/dead-letters`: a stream's latest dead letters, what
//! `freshet dlq` lists, read from the dead-letter log the same way on a writing and on a
//! query-only server.

use super::error::{ApiError, Name, single_params};
use super::state::App;
use super::views::blocking;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use freshet_streams::StreamError;
use freshet_types::limits::HTTP_DEAD_LETTERS_LISTED_MAX;
use serde_json::{Value, json};
use std::sync::Arc;

/// Dead letters listed when the request does not say.
const LISTED_DEFAULT: usize = 10;

/// The last `limit` dead letters of the stream (default 10, at most
/// [`HTTP_DEAD_LETTERS_LISTED_MAX`]), oldest first, and how many it ever had.
pub async fn latest(
    State(app): State<Arc<App>>,
    Name(name): Name,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let params = single_params(&params, &["limit"])?;
    let limit = match params.get("limit") {
        None => LISTED_DEFAULT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=HTTP_DEAD_LETTERS_LISTED_MAX).contains(&n) => n,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!(
                        "limit must be a number between 1 and {HTTP_DEAD_LETTERS_LISTED_MAX}, \
                         got '{text}'"
                    ),
                ));
            }
        },
    };
    blocking(move || {
        let root = app.log.root();
        let def = freshet_streams::inspect::lookup(root, &name).map_err(read_error)?;
        let total = app
            .log
            .ends(&def)
            .ok_or_else(|| unreadable(format!("the end of stream {name}'s log is unknown")))?
            .dead_letters;
        let from = total.saturating_sub(limit as u64);
        let rows =
            freshet_streams::inspect::dead_letters(root, &name, from, limit).map_err(read_error)?;
        Ok(Json(json!({
            "stream": name,
            "total": total,
            "dead_letters": rows,
        })))
    })
    .await
}

/// A failed read of the catalog or the dead-letter log: an unknown stream is a 404, any
/// other failure a 503 (the log may be readable again soon), never the ingest path's
/// "cannot be written" answer, since this request writes nothing.
fn read_error(e: StreamError) -> ApiError {
    match e {
        StreamError::UnknownStream(_) => e.into(),
        e => unreadable(e.to_string()),
    }
}

/// 503: the dead-letter log cannot be read now (`message` says why).
fn unreadable(message: String) -> ApiError {
    tracing::warn!(error = %message, "cannot read the dead-letter log");
    ApiError {
        retry_after_s: Some(5),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "log_unavailable",
            format!("cannot read the dead-letter log: {message}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read that fails is a 503 saying the dead-letter log cannot be read, not the
    /// ingest path's "cannot be written; not acknowledged"; an unknown stream stays a 404.
    #[test]
    fn a_failed_read_is_a_503_about_reading() {
        let failed = read_error(StreamError::Io {
            op: "read",
            path: "data/streams/bid/dlq".into(),
            source: std::io::Error::other("disk gone"),
        });
        assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            failed
                .message
                .starts_with("cannot read the dead-letter log: "),
            "{}",
            failed.message
        );
        assert!(!failed.message.contains("written"), "{}", failed.message);
        let unknown = read_error(StreamError::UnknownStream("nope".into()));
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    }
}
