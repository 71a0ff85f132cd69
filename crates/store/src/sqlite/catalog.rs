//! Which views a SQLite store holds, and what each connection remembers of them: a view's
//! definition (from `freshet_views`) with the statements that write its rows, cached by
//! the writer for as long as it lives and by a read-only connection until another
//! connection commits.
//!
//! The writer's cache is only correct with one writer per file, which the data directory's
//! lock guarantees: nothing else changes a definition under it. A read-only connection
//! drops everything it cached whenever `PRAGMA data_version` moves, which any other
//! connection's commit (DDL and changed definitions included) does.

use rusqlite::{Connection, OptionalExtension};
use std::cell::RefMut;
use std::sync::Arc;

use super::cache::{ReadCache, ViewDef};
use super::store::SqliteStore;
use crate::StoreError;
use crate::definition::{Definition, unknown_view};
use crate::error::SqliteContext;
use crate::sql::Internal;

impl SqliteStore {
    /// The definition of `view`: this writer's cached copy, a read-only connection's copy
    /// while the schema is unchanged, else the stored one.
    pub(super) fn view_def(&self, view: &str) -> Result<Arc<ViewDef>, StoreError> {
        if let Some(def) = self.views.get(view) {
            return Ok(Arc::clone(def));
        }
        if !self.read_only {
            return self.load_def(view);
        }
        let mut cache = self.read_cache()?;
        if let Some(def) = cache.defs.get(view) {
            return Ok(Arc::clone(def));
        }
        let def = self.load_def(view)?;
        cache.defs.insert(view.to_owned(), Arc::clone(&def));
        Ok(def)
    }

    fn load_def(&self, view: &str) -> Result<Arc<ViewDef>, StoreError> {
        load_view_def(&self.conn, view)?
            .map(Arc::new)
            .ok_or_else(|| unknown_view(view))
    }

    /// Like [`Self::view_def`], remembering the definition for later commits.
    pub(super) fn cached_view_def(&mut self, view: &str) -> Result<Arc<ViewDef>, StoreError> {
        let def = self.view_def(view)?;
        self.views.insert(view.to_owned(), Arc::clone(&def));
        Ok(def)
    }

    /// A read-only connection's cache, emptied first if another connection committed since
    /// it was filled.
    pub(super) fn read_cache(&self) -> Result<RefMut<'_, ReadCache>, StoreError> {
        let version = self.pragma("data_version")?;
        let mut cache = self.read_cache.borrow_mut();
        if cache.data_version != Some(version) {
            cache.defs.clear();
            cache.statuses.clear();
            cache.data_version = Some(version);
        }
        Ok(cache)
    }

    /// An integer pragma of the connection (`data_version`).
    fn pragma(&self, name: &str) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(&format!("PRAGMA {name}"))
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .context(|| format!("reading PRAGMA {name} of {}", self.path.display()))
    }

    pub(super) fn check_view_exists(&self, view: &str) -> Result<(), StoreError> {
        if self.views.contains_key(view) {
            return Ok(());
        }
        let found = self
            .conn
            .prepare_cached("SELECT 1 FROM freshet_views WHERE view = ?1")
            .and_then(|mut statement| statement.exists([view]))
            .context(|| format!("looking up view '{view}'"))?;
        if found {
            Ok(())
        } else {
            Err(unknown_view(view))
        }
    }
}

/// Reads a view's stored definition.
pub(super) fn load_view_def(conn: &Connection, view: &str) -> Result<Option<ViewDef>, StoreError> {
    let row: Option<(String, String)> = conn
        .prepare_cached(&Internal::SQLITE.select_definition())
        .and_then(|mut statement| {
            statement
                .query_row([view], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .context(|| format!("reading the definition of view '{view}'"))?;
    let Some((key_json, schema_json)) = row else {
        return Ok(None);
    };
    Ok(Some(ViewDef::new(
        view,
        Definition::from_json(view, &key_json, &schema_json)?,
    )))
}
