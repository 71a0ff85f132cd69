//! The SQLite store's handle: one connection, the path it was opened at, and the caches the
//! other modules keep on it. [`ResultStore`] is implemented here by handing each call to
//! the module that does it ([`super::ddl`], [`super::read`], [`super::write`]); this
//! module does no SQL itself.

use arrow_array::RecordBatch;
use rusqlite::Connection;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::catalog::{ReadCache, ViewDef};
use super::{ddl, read, write};
use crate::model::{
    Checkpoint, Commit, ResultBatch, ResultQuery, ResultRows, ResultTable, ViewStatus,
};
use crate::{ResultStore, StoreError};

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

impl ResultStore for SqliteStore {
    fn create_view(&mut self, table: &ResultTable) -> Result<(), StoreError> {
        ddl::create_view(self, table)
    }

    fn drop_view(&mut self, view: &str) -> Result<(), StoreError> {
        ddl::drop_view(self, view)
    }

    fn load(&self, view: &str) -> Result<Checkpoint, StoreError> {
        read::load(self, view)
    }

    fn commit(&mut self, view: &str, commit: &Commit) -> Result<(), StoreError> {
        write::commit(self, view, commit)
    }

    fn repair(
        &mut self,
        view: &str,
        upserts: &[ResultBatch],
        deletes: &[RecordBatch],
    ) -> Result<(), StoreError> {
        write::repair(self, view, upserts, deletes)
    }

    fn durable(&self) -> bool {
        self.durable
    }

    fn read_results(&self, view: &str, query: &ResultQuery) -> Result<ResultRows, StoreError> {
        read::read_results(self, view, query)
    }

    fn status(&self, view: &str) -> Result<ViewStatus, StoreError> {
        read::status(self, view)
    }

    fn read_page(
        &self,
        view: &str,
        query: &ResultQuery,
    ) -> Result<(ViewStatus, ResultRows), StoreError> {
        read::read_page(self, view, query)
    }
}
