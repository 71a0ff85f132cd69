//! What a SQLite connection keeps of the views it has used: each view's definition with
//! the statements that write its rows, and a read-only connection's cache of definitions
//! and statuses. The types only; [`super::catalog`] says when they are valid.

use std::collections::HashMap;
use std::sync::Arc;

use super::statements::{delete_by_key_sql, upsert_chunk_rows, upsert_sql};
use crate::definition::Definition;
use crate::model::ViewStatus;

/// A view's definition with the statements that write its rows.
#[derive(Debug)]
pub(super) struct ViewDef {
    pub(super) def: Definition,
    /// Upserts one row.
    pub(super) upsert_one_sql: String,
    /// Upserts `chunk_rows` rows.
    pub(super) upsert_chunk_sql: String,
    pub(super) chunk_rows: usize,
    pub(super) delete_sql: String,
}

impl ViewDef {
    pub(super) fn new(view: &str, def: Definition) -> ViewDef {
        let key_names = def.key_names();
        let chunk_rows = upsert_chunk_rows(def.columns.len());
        ViewDef {
            upsert_one_sql: upsert_sql(view, &def.columns, &key_names, 1),
            upsert_chunk_sql: upsert_sql(view, &def.columns, &key_names, chunk_rows),
            chunk_rows,
            delete_sql: delete_by_key_sql(view, &key_names),
            def,
        }
    }
}

impl std::ops::Deref for ViewDef {
    type Target = Definition;

    fn deref(&self) -> &Definition {
        &self.def
    }
}

/// What a read-only connection remembers between reads, valid while `PRAGMA data_version`
/// is unchanged: it changes whenever another connection commits (a view's commit, and DDL
/// or a changed definition as well).
#[derive(Debug, Default)]
pub(super) struct ReadCache {
    pub(super) data_version: Option<i64>,
    pub(super) defs: HashMap<String, Arc<ViewDef>>,
    pub(super) statuses: HashMap<String, ViewStatus>,
}
