//! Times as users write them, on the command line and in query parameters.

use anyhow::Context;

/// RFC 3339 or epoch milliseconds.
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    Ok(chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| {
            format!("'{text}' is neither RFC 3339 (2015-07-15T00:00:00Z) nor epoch ms")
        })?
        .timestamp_millis())
}
