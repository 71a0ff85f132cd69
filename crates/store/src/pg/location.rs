//! Where a PostgreSQL store lives, as a user names it: a `postgres://` URL, turned into the
//! client's connection settings (statement and idle-transaction timeouts, the connect
//! timeout, keepalives, an application name that says which process is connected).
//!
//! The store reads four query parameters itself and hands the rest to the client:
//! `schema=` (default [`DEFAULT_SCHEMA`]), `sslmode=` and `sslrootcert=` (libpq's meanings,
//! see [`super::tls`]) and `pool_max=` (the bound of [`super::pool`]).
//!
//! The URL is shown without its password (in the user part or a `password=` parameter)
//! wherever it appears: messages, logs, `Debug`. Schema and view names longer than
//! PostgreSQL keeps are refused here rather than cut by the server.

use postgres::Config;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::lease::Holder;
use super::pool::Pool;
use super::tls::{self, SslMode};
use crate::StoreError;

/// The schema used when the URL names none.
pub const DEFAULT_SCHEMA: &str = "freshet";

use freshet_types::limits::{
    STORE_CONNECTION_WAIT, STORE_CONNECTIONS_DEFAULT, STORE_CONNECTIONS_MAX,
};
/// Longest statement the server runs before cancelling it (a retriable error).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// PostgreSQL truncates longer identifiers silently; the store refuses them instead.
const IDENTIFIER_BYTES_MAX: usize = 63;

/// Where a PostgreSQL store lives: the connection settings, TLS, the pool and the schema.
/// Clones share one pool.
#[derive(Clone)]
pub struct PgLocation {
    pub(super) config: Config,
    pub(super) schema: String,
    pub(super) ssl_mode: SslMode,
    pub(super) tls: MakeRustlsConnect,
    pub(super) pool: Arc<Pool>,
    /// Who writes through this location: the identity its leases record.
    pub(super) holder: Holder,
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
    /// Parses a `postgres://` or `postgresql://` URL: libpq's URL syntax, with `schema`,
    /// `sslmode` (default `prefer`), `sslrootcert` and `pool_max` (default
    /// [`STORE_CONNECTIONS_DEFAULT`]) read by the store.
    pub fn parse(url: &str) -> Result<PgLocation, StoreError> {
        // The user information ends at the first '@', as the client reads it; a '/', '?'
        // or '#' in it would make the store and the client read the URL differently (and
        // show a password), so it must be percent-encoded.
        let start = url.find("://").map_or(0, |i| i + 3);
        let user_end = url[start..].find('@').map_or(start, |i| start + i + 1);
        if url[start..user_end].contains(['/', '?', '#']) {
            return Err(StoreError::user(
                "the store URL's user name or password holds '/', '?' or '#': \
                 percent-encode them (%2F, %3F, %23)",
            ));
        }
        let (base, query) = match url[user_end..].find('?') {
            Some(i) => (&url[..user_end + i], &url[user_end + i + 1..]),
            None => (url, ""),
        };
        let mut schema = DEFAULT_SCHEMA.to_owned();
        let mut ssl_mode = SslMode::Prefer;
        let mut root_cert = None;
        let mut pool_max = STORE_CONNECTIONS_DEFAULT;
        let mut rest = Vec::new();
        let mut shown = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            // Keys and the store's own values are percent-decoded, as the client decodes
            // them: `ssl%6Dode` is `sslmode`.
            let decoded = pair
                .split_once('=')
                .map(|(k, v)| (percent_decoded(k), percent_decoded(v)));
            match decoded.as_ref().map(|(k, v)| (k.as_str(), v.as_str())) {
                Some(("schema", "")) => {
                    return Err(StoreError::user("the store URL has an empty schema="));
                }
                Some(("schema", value)) => schema = value.to_owned(),
                Some(("sslmode", value)) => {
                    ssl_mode = SslMode::parse(value)?;
                    shown.push(pair.to_owned());
                }
                Some(("sslrootcert", value)) => {
                    root_cert = Some(tls::root_cert_path(value)?);
                    shown.push(pair.to_owned());
                }
                Some(("pool_max", value)) => {
                    pool_max = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=STORE_CONNECTIONS_MAX).contains(n))
                        .ok_or_else(|| {
                            StoreError::user(format!(
                                "the store URL has pool_max={value}; it takes a number of \
                                 connections from 1 to {STORE_CONNECTIONS_MAX}"
                            ))
                        })?;
                    shown.push(pair.to_owned());
                }
                Some(("password", _)) => {
                    rest.push(pair.to_owned());
                    shown.push("password=***".to_owned());
                }
                _ => {
                    rest.push(pair.to_owned());
                    shown.push(pair.to_owned());
                }
            }
        }
        let join = |base: &str, params: &[String]| match params.is_empty() {
            true => base.to_owned(),
            false => format!("{base}?{}", params.join("&")),
        };
        let display = join(&redact(base), &shown);
        // The client's own message could quote the URL, password and all: not shown.
        let mut config = Config::from_str(&join(base, &rest)).map_err(|_| {
            StoreError::user(format!(
                "the store URL {display} is not valid: expected \
                 postgres://[user[:password]@]host[:port][/database][?param=value&...]"
            ))
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
        config.ssl_mode(ssl_mode.client_mode());
        let tls = tls::connector(ssl_mode, root_cert.as_deref())?;
        Ok(PgLocation {
            config,
            display: format!("{display} (schema {schema})"),
            schema,
            ssl_mode,
            tls,
            pool: Pool::new(pool_max, STORE_CONNECTION_WAIT),
            holder: Holder::of_process(),
        })
    }

    /// The schema the store's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The location with `holder` as the identity of its writers (a worker's), instead of
    /// the process's.
    pub fn with_holder(mut self, holder: Holder) -> PgLocation {
        // A worker paused inside a transaction holds its lease's row lock, which a
        // take-over waits for: the server ends such a session after the lease's time to
        // live (later options win over the URL's and the defaults).
        if let Some(ttl) = holder.ttl {
            let options = format!(
                "{} -c idle_in_transaction_session_timeout={}",
                self.config.get_options().unwrap_or(""),
                ttl.as_millis()
            );
            self.config.options(options.trim());
        }
        self.holder = holder;
        self
    }

    /// The identity of this location's writers.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The most connections a process holds to this store (`pool_max=`).
    pub fn pool_max(&self) -> usize {
        self.pool.max()
    }
}

/// `text` with `%XX` escapes decoded (a malformed escape is kept as it is).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

    /// Passwords are never shown: not in the user part, not in `password=`, not in
    /// `Debug`, not in the error of a URL the client refuses.
    #[test]
    fn passwords_are_never_shown() {
        for url in [
            "postgres://me:s3cr3t-pw@127.0.0.1:5432/db?sslmode=require",
            "postgres://me@127.0.0.1/db?password=s3cr3t-pw&pool_max=4",
            "postgresql://me:s3cr3t-pw@h/db?password=s3cr3t-pw&application_name=x",
        ] {
            let location = PgLocation::parse(url).expect("parses");
            for shown in [location.to_string(), format!("{location:?}")] {
                assert!(!shown.contains("s3cr3t-pw"), "{shown}");
                assert!(shown.contains("***"), "{shown}");
            }
        }
        let Err(e) = PgLocation::parse("postgres://me:s3cr3t-pw@h/db?password=s3cr3t-pw&port=x")
        else {
            panic!("a bad port is refused")
        };
        assert!(!e.to_string().contains("s3cr3t-pw"), "{e}");
        assert!(!format!("{e:?}").contains("s3cr3t-pw"), "{e:?}");
        // An encoded key is the key it encodes.
        let location =
            PgLocation::parse("postgres://me@h/db?passwor%64=s3cr3t-pw").expect("parses");
        assert!(!location.to_string().contains("s3cr3t-pw"), "{location}");
        // A '/', '?' or '#' in the password must be encoded: otherwise the store and the
        // client would read the URL differently.
        for url in [
            "postgres://u:s3cr3t?pw@h/db?sslmode=require",
            "postgres://u:s3cr3t/pw@h/db",
            "postgres://u:s3cr3t#pw@h/db",
        ] {
            let Err(e) = PgLocation::parse(url) else {
                panic!("{url} is refused")
            };
            assert!(!e.to_string().contains("s3cr3t"), "{e}");
            assert!(e.to_string().contains("percent-encode"), "{e}");
        }
    }

    /// `ssl%6Dode=require` is `sslmode=require`: the store must not read `prefer` where the
    /// client reads `require`.
    #[test]
    fn an_encoded_sslmode_is_read() {
        let location = PgLocation::parse("postgres://h/db?ssl%6Dode=require").expect("parses");
        assert_eq!(location.ssl_mode, SslMode::Require);
    }

    #[test]
    fn the_store_reads_ssl_and_pool_parameters_itself() {
        let location =
            PgLocation::parse("postgres://h/db?sslmode=require&pool_max=4").expect("parses");
        assert_eq!(location.ssl_mode, SslMode::Require);
        assert_eq!(location.pool_max(), 4);
        let default = PgLocation::parse("postgres://h/db").expect("parses");
        assert_eq!(default.ssl_mode, SslMode::Prefer);
        assert_eq!(default.pool_max(), STORE_CONNECTIONS_DEFAULT);
        for bad in [
            "pool_max=0",
            "pool_max=x",
            "sslmode=allow",
            "sslmode=verify-full",
        ] {
            assert!(
                PgLocation::parse(&format!("postgres://h/db?{bad}")).is_err(),
                "{bad}"
            );
        }
    }
}
