//! `GET /v1/streams/{name}/dead-letters`: a stream's latest dead letters, what
//! `freshet dlq` lists, read from the dead-letter log the same way on a writing and on a
//! query-only server.

use super::error::{ApiError, Name};
use super::state::App;
use super::views::blocking;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use freshet_types::limits::HTTP_DEAD_LETTERS_LISTED_MAX;
use serde_json::{Value, json};
use std::sync::Arc;

/// Dead letters listed when the request does not say.
const LISTED_DEFAULT: usize = 10;

#[derive(serde::Deserialize)]
pub struct Params {
    limit: Option<String>,
}

/// The last `limit` dead letters of the stream (default 10, at most
/// [`HTTP_DEAD_LETTERS_LISTED_MAX`]), oldest first, and how many it ever had.
pub async fn latest(
    State(app): State<Arc<App>>,
    Name(name): Name,
    Query(params): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let limit = match params.limit.as_deref() {
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
        let def = freshet_streams::inspect::lookup(root, &name)?;
        let total = app.log.ends(&def).map_or(0, |ends| ends.dead_letters);
        let from = total.saturating_sub(limit as u64);
        let rows = freshet_streams::inspect::dead_letters(root, &name, from, limit)?;
        Ok(Json(json!({
            "stream": name,
            "total": total,
            "dead_letters": rows,
        })))
    })
    .await
}
