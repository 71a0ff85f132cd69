//! `POST /v1/streams/{name}/events`: an NDJSON body appended to a stream. Good rows are
//! accepted even when others are rejected; the response lists the rejected rows with
//! their reasons. With `Idempotency-Key`, a retried request is applied at most once.

use super::error::{ApiError, Name};
use super::state::App;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use freshet_streams::StreamError;
use freshet_types::limits::{
    HTTP_BODY_BYTES_MAX, HTTP_ROWS_PER_REQUEST_MAX, IDEMPOTENCY_KEY_BYTES_MAX,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub async fn ingest(
    State(app): State<Arc<App>>,
    Name(name): Name,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    app.log.writer("ingest")?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v.to_str().ok().filter(|k| {
                // Visible ASCII, as documented: `to_str` alone lets spaces and tabs in.
                !k.is_empty()
                    && k.len() <= IDEMPOTENCY_KEY_BYTES_MAX
                    && k.bytes().all(|b| b.is_ascii_graphic())
            });
            Some(key.map(str::to_string).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_idempotency_key",
                    format!(
                        "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} visible ASCII characters"
                    ),
                )
            })?)
        }
    };
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "{}-{}",
                freshet_types::IngestTime::now().0,
                app.requests.fetch_add(1, Ordering::Relaxed)
            )
        });
    let bytes = axum::body::to_bytes(body, HTTP_BODY_BYTES_MAX)
        .await
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit")
            {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "request body exceeds the limit of {HTTP_BODY_BYTES_MAX} bytes \
                         (HTTP_BODY_BYTES_MAX); nothing was accepted; split it into smaller requests"
                    ),
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_body", format!("cannot read the body: {e}"))
            }
        })?;
    let app2 = app.clone();
    let rid = request_id.clone();
    let stream_name = name.clone();
    let outcome = tokio::task::spawn_blocking(move || -> Result<_, StreamError> {
        // A query-only server was refused above; it never gets here.
        let Some(dir) = app2.log.writer_dir() else {
            return Err(StreamError::UnknownStream(stream_name));
        };
        let stream = dir.stream(&stream_name)?;
        let rows = memchr::memchr_iter(b'\n', &bytes).count()
            + usize::from(bytes.last().is_some_and(|b| *b != b'\n'));
        if rows > HTTP_ROWS_PER_REQUEST_MAX {
            return Err(StreamError::Limit {
                what: "rows in one request",
                actual: rows as u64,
                max: HTTP_ROWS_PER_REQUEST_MAX as u64,
                limit: "HTTP_ROWS_PER_REQUEST_MAX",
            });
        }
        let decoded = stream.ndjson().decode(&bytes, 1)?;
        let mut prepared = stream.prepare(decoded, &format!("http:{rid}"))?;
        prepared.fingerprint = Some(xxhash_rust::xxh3::xxh3_64(&bytes));
        stream.commit(prepared, key.as_deref())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    let mut body = serde_json::to_value(&outcome).expect("an outcome always serializes");
    if let Some(obj) = body.as_object_mut() {
        obj.insert("stream".into(), name.into());
        obj.insert("request_id".into(), request_id.into());
    }
    Ok(Json(body))
}
