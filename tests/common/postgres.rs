//! The PostgreSQL server tests use, and a schema of its own per test. Shared by the store's
//! contract tests, the engine's tests and the end-to-end tests (included by path into each).

/// The server's URL from `FRESHET_TEST_POSTGRES_URL`, or `None` (said loudly) when none is
/// configured. Under `FRESHET_CI` a missing server fails the test instead: CI must not skip.
pub fn postgres_url() -> Option<String> {
    match std::env::var("FRESHET_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("FRESHET_CI").is_some() => {
            panic!("FRESHET_TEST_POSTGRES_URL is not set; CI runs the PostgreSQL store tests")
        }
        _ => {
            eprintln!(
                "SKIPPED: FRESHET_TEST_POSTGRES_URL is not set, so the PostgreSQL store is not \
                 tested (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// A schema of its own on the test server, dropped with everything in it when the test
/// ends, so that runs never see each other's data.
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl PgSchema {
    /// A new schema name on the server of [`postgres_url`]; `None` if there is none.
    pub fn new(prefix: &str) -> Option<PgSchema> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // PostgreSQL names hold 63 bytes, and the store refuses longer ones rather than have
        // them cut: the prefix is kept short, for whoever looks at the server.
        let prefix: String = prefix.chars().take(24).collect();
        Some(PgSchema {
            url: postgres_url()?,
            name: format!(
                "t_{prefix}_{}_{}_{nanos:x}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            ),
        })
    }

    /// The store URL: the server's URL with `schema=` this schema.
    pub fn store_url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}schema={}", self.url, self.name)
    }

    /// A connection of the test's own.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to PostgreSQL")
    }

    /// `table` of this schema, quoted.
    pub fn table(&self, table: &str) -> String {
        format!("\"{}\".\"{}\"", self.name, table)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ =
                client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
        }
    }
}
