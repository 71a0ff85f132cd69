//! Where a PostgreSQL store lives, as a user names it: a `postgres://` URL with an optional
//! `schema=` parameter, turned into the client's connection settings (statement and
//! idle-transaction timeouts, the connect timeout, keepalives, an application name that
//! says which process is connected).
//!
//! The URL is shown without its password wherever it appears in a message. Schema and view
//! names longer than PostgreSQL keeps are refused here rather than cut by the server.

use postgres::Config;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::StoreError;

/// The schema used when the URL names none.
pub const DEFAULT_SCHEMA: &str = "freshet";

/// Longest statement the server runs before cancelling it (a retriable error).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// PostgreSQL truncates longer identifiers silently; the store refuses them instead.
const IDENTIFIER_BYTES_MAX: usize = 63;

/// Where a PostgreSQL store lives: the connection settings and the schema.
#[derive(Clone)]
pub struct PgLocation {
    pub(super) config: Config,
    pub(super) schema: String,
    /// The URL without its password, for messages.
    display: String,
}

impl fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl fmt::Display for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl PgLocation {
    /// Parses a `postgres://` or `postgresql://` URL. A `schema` query parameter names the
    /// schema (default [`DEFAULT_SCHEMA`]); every other part is libpq's URL syntax.
    pub fn parse(url: &str) -> Result<PgLocation, StoreError> {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut schema = DEFAULT_SCHEMA.to_owned();
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", value)) if !value.is_empty() => schema = value.to_owned(),
                Some(("schema", _)) => {
                    return Err(StoreError::user("the store URL has an empty schema="));
                }
                _ => rest.push(pair),
            }
        }
        let url_without_schema = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let display = redact(&url_without_schema);
        let mut config = Config::from_str(&url_without_schema).map_err(|error| {
            StoreError::user(format!("the store URL {display} is not valid: {error}"))
        })?;
        check_identifier("schema", &schema)?;
        let mut options = config.get_options().unwrap_or("").to_owned();
        options.push_str(&format!(
            " -c statement_timeout={} -c idle_in_transaction_session_timeout={}",
            STATEMENT_TIMEOUT.as_millis(),
            STATEMENT_TIMEOUT.as_millis()
        ));
        config.options(options.trim());
        if config.get_application_name().is_none() {
            config.application_name(&format!("freshet[{}]", std::process::id()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives_idle(Duration::from_secs(30));
        Ok(PgLocation {
            config,
            display: format!("{display} (schema {schema})"),
            schema,
        })
    }

    /// The schema the store's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

/// The URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

pub(super) fn check_identifier(what: &str, name: &str) -> Result<(), StoreError> {
    if name.len() > IDENTIFIER_BYTES_MAX {
        return Err(StoreError::user(format!(
            "{what} name '{name}' is {} bytes long; PostgreSQL names hold at most \
             {IDENTIFIER_BYTES_MAX}",
            name.len()
        )));
    }
    if name.contains('\0') {
        return Err(StoreError::user(format!(
            "{what} name '{name}' holds a NUL character"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_comes_from_the_url_and_passwords_are_hidden() {
        let location =
            PgLocation::parse("postgres://me:secret@127.0.0.1:5432/db?schema=s1&sslmode=disable")
                .expect("parses");
        assert_eq!(location.schema(), "s1");
        assert!(!location.to_string().contains("secret"), "{location}");
        let default = PgLocation::parse("postgresql://127.0.0.1/db").expect("parses");
        assert_eq!(default.schema(), DEFAULT_SCHEMA);
        assert!(PgLocation::parse("postgres://h/db?schema=").is_err());
    }
}
