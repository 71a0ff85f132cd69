//! API errors: JSON bodies `{"error": {"code": ..., "message": ...}}` with stable codes.

use axum::Json;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use freshet_log::LogError;
use freshet_streams::StreamError;

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after_s: Option<u32>,
    /// `WWW-Authenticate` of a 401: how to authenticate.
    pub challenge: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
            challenge: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        }));
        let mut response = (self.status, body).into_response();
        if let Some(s) = self.retry_after_s {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&s.to_string()).expect("digits are a valid header"),
            );
        }
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

impl From<StreamError> for ApiError {
    fn from(e: StreamError) -> Self {
        let message = e.to_string();
        match e {
            StreamError::UnknownStream(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_stream", message)
            }
            StreamError::Limit { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "limit_exceeded", message)
            }
            StreamError::BadInput(_) | StreamError::BadDdl(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
            }
            StreamError::IdempotencyKeyReused(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                message,
            ),
            StreamError::IdempotencyInFlight(_) => ApiError {
                retry_after_s: Some(1),
                ..ApiError::new(StatusCode::CONFLICT, "request_in_progress", message)
            },
            StreamError::Log(LogError::Io { .. } | LogError::Poisoned { .. })
            | StreamError::Withdrawn(_) => {
                log_unavailable(&message, "nothing of it was kept, so a retry is safe")
            }
            StreamError::NotUndone(_) | StreamError::Io { .. } | StreamError::JetStream(_) => {
                log_unavailable(
                    &message,
                    "it may have been kept in part, so retry only with the same Idempotency-Key",
                )
            }
            _ => {
                tracing::error!(error = %message, "ingest failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}

/// The `{name}` segment of a route, percent-decoded. Where axum's `Path` answers a segment
/// that does not decode to UTF-8 (`/v1/views/%FF`) with a plain-text 400, this answers
/// with the API's JSON error, as docs/openapi.yaml promises for every 400.
pub struct Name(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Name {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Name, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(name)) => Ok(Name(name)),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the name in the path cannot be read: {}", e.body_text()),
            )),
        }
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see docs/http-api.md",
    )
}

/// 503 for a request the log could not take; `kept` says what is known of its rows. Writes
/// fail closed: nothing of the request was acknowledged.
fn log_unavailable(message: &str, kept: &str) -> ApiError {
    tracing::error!(error = %message, "ingest failed: the log cannot be written");
    ApiError {
        retry_after_s: Some(5),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "log_unavailable",
            format!(
                "the log cannot be written; this request was not acknowledged and {kept}: \
                 {message}"
            ),
        )
    }
}

/// A request's query parameters (from `Query<Vec<(String, String)>>`) by key, where each
/// key must be one of `known` and appear at most once. A handler that took
/// `Query<SomeStruct>` would answer a repeated key (`?limit=1&limit=2`, which clients that
/// send arrays as repeated keys do) with axum's plain-text 400, not the API's JSON error.
pub fn single_params<'a>(
    params: &'a [(String, String)],
    known: &[&str],
) -> Result<std::collections::BTreeMap<&'a str, &'a str>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m);
    let mut by_key = std::collections::BTreeMap::new();
    for (k, v) in params {
        if !known.contains(&k.as_str()) {
            return Err(bad(format!(
                "unknown query parameter '{k}' (this endpoint takes {})",
                known.join(", ")
            )));
        }
        if by_key.insert(k.as_str(), v.as_str()).is_some() {
            return Err(bad(format!(
                "query parameter '{k}' is given more than once"
            )));
        }
    }
    Ok(by_key)
}
