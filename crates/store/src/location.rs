//! Where results are kept, as a user names it: a SQLite file path or a PostgreSQL URL
//! (`--store`, `FRESHET_STORE`).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{ChangeRetention, PgLocation, PgStore, ResultStore, SqliteStore, StoreError};

/// A result store's location.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A schema in a PostgreSQL database.
    Postgres(Box<PgLocation>),
}

impl StoreLocation {
    /// Reads `--store`: a `postgres://` or `postgresql://` URL, or else a SQLite file path.
    pub fn parse(spec: &str) -> Result<StoreLocation, StoreError> {
        let lower = spec.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return PgLocation::parse(spec).map(|l| StoreLocation::Postgres(Box::new(l)));
        }
        if lower.contains("://") {
            return Err(StoreError::user(format!(
                "the store '{spec}' is neither a postgres:// URL nor a file path"
            )));
        }
        if spec.is_empty() {
            return Err(StoreError::user("the store location is empty"));
        }
        Ok(StoreLocation::Sqlite(PathBuf::from(spec)))
    }

    /// The embedded default: `results.db` in `dir`.
    pub fn sqlite_in(dir: &Path) -> StoreLocation {
        StoreLocation::Sqlite(dir.join("results.db"))
    }

    /// Opens the store for writing, creating it if needed; its change log keeps what
    /// [`ChangeRetention::from_env`] says.
    pub fn open(&self) -> Result<Box<dyn ResultStore>, StoreError> {
        let retention = ChangeRetention::from_env()?;
        let mut store: Box<dyn ResultStore> = match self {
            StoreLocation::Sqlite(path) => Box::new(SqliteStore::open(path)?),
            StoreLocation::Postgres(location) => Box::new(PgStore::open(location)?),
        };
        store.set_change_retention(retention);
        Ok(store)
    }

    /// Opens an existing store for reading only.
    pub fn open_read_only(&self) -> Result<Box<dyn ResultStore>, StoreError> {
        Ok(match self {
            StoreLocation::Sqlite(path) => Box::new(SqliteStore::open_read_only(path)?),
            StoreLocation::Postgres(location) => Box::new(PgStore::open_read_only(location)?),
        })
    }

    /// Whether the store lives outside the data directory and can be shared by processes.
    pub fn is_shared(&self) -> bool {
        matches!(self, StoreLocation::Postgres(_))
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(location) => write!(f, "{location}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_postgres_and_the_rest_are_paths() {
        assert!(matches!(
            StoreLocation::parse("postgres://127.0.0.1/db"),
            Ok(StoreLocation::Postgres(_))
        ));
        assert!(matches!(
            StoreLocation::parse("data/results.db"),
            Ok(StoreLocation::Sqlite(_))
        ));
        assert!(StoreLocation::parse("mysql://x/y").is_err());
        assert!(StoreLocation::parse("").is_err());
    }
}
