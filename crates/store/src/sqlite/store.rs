//! The SQLite store's handle: one connection, the path it was opened at, and the caches the
//! other modules keep on it. This module does no SQL itself.

use rusqlite::Connection;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::cache::{ReadCache, ViewDef};
use crate::StoreError;
use crate::changes::ChangeRetention;

/// The result store in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    pub(super) read_only: bool,
    /// False for a scratch store whose commits must not count as progress elsewhere.
    pub(super) durable: bool,
    /// Definitions of views this writer has used; see the module docs.
    pub(super) views: HashMap<String, Arc<ViewDef>>,
    /// A read-only connection's cache; see the module docs.
    pub(super) read_cache: RefCell<ReadCache>,
    /// How much of each view's change log commits keep.
    pub(super) retention: ChangeRetention,
}

impl SqliteStore {
    /// A store on `conn`, opened at `path`, with nothing cached yet.
    pub(super) fn new(conn: Connection, path: PathBuf, read_only: bool) -> SqliteStore {
        SqliteStore {
            conn,
            path,
            read_only,
            durable: true,
            views: HashMap::new(),
            read_cache: RefCell::default(),
            retention: ChangeRetention::default(),
        }
    }

    pub(super) fn check_writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::bug(format!(
                "the result store {} was opened read-only",
                self.path.display()
            )));
        }
        Ok(())
    }
}

/// A writer on a new file of its own, and the directory that holds it.
#[cfg(test)]
pub(super) fn temp_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("results.db")).expect("open");
    (dir, store)
}
