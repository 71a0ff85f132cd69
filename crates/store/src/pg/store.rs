//! The PostgreSQL store's handle: where it lives, its one connection, the writer locks it
//! holds and the definitions it has used. [`ResultStore`] is implemented here by handing
//! each call to the module that does it ([`super::ddl`], [`super::read`], [`super::write`],
//! [`super::lock`]); this module runs no SQL itself.

use arrow_array::RecordBatch;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::connection::Connection;
use super::ddl::load_definition;
use super::location::PgLocation;
use super::write::upsert_sql;
use super::{ddl, lock, read, write};
use crate::definition::{Definition, unknown_view};
use crate::model::{
    Checkpoint, Commit, ResultBatch, ResultQuery, ResultRows, ResultTable, ViewStatus,
};
use crate::sql::{Internal, quote_ident};
use crate::{ResultStore, StoreError};

/// A view's definition with the statement that upserts its rows.
#[derive(Debug)]
pub(super) struct PgView {
    pub(super) def: Arc<Definition>,
    pub(super) upsert_sql: String,
}

/// The result store in a PostgreSQL schema.
pub struct PgStore {
    pub(super) location: PgLocation,
    /// The schema, quoted.
    pub(super) schema: String,
    /// The statements on the store's own tables in that schema.
    pub(super) internal: Internal,
    pub(super) read_only: bool,
    pub(super) conn: RefCell<Connection>,
    /// Views this process holds the writer lock of.
    pub(super) claimed: RefCell<Vec<String>>,
    /// Definitions of views this writer has used.
    pub(super) views: HashMap<String, Arc<PgView>>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl PgStore {
    pub(super) fn new(location: &PgLocation, read_only: bool) -> PgStore {
        let mut location = location.clone();
        if read_only {
            let options = format!(
                "{} -c default_transaction_read_only=on",
                location.config.get_options().unwrap_or("")
            );
            location.config.options(options.trim());
        }
        let schema = quote_ident(&location.schema);
        PgStore {
            internal: Internal::postgres(&schema),
            schema,
            location,
            read_only,
            conn: RefCell::new(Connection::default()),
            claimed: RefCell::new(Vec::new()),
            views: HashMap::new(),
        }
    }

    pub(super) fn check_writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::bug(format!(
                "the result store {} was opened read-only",
                self.location
            )));
        }
        Ok(())
    }

    /// The definition of `view`: this writer's cached copy, else the stored one.
    pub(super) fn definition(&self, view: &str) -> Result<Arc<Definition>, StoreError> {
        if let Some(pg) = self.views.get(view) {
            return Ok(Arc::clone(&pg.def));
        }
        self.with_client(|client, _| load_definition(client, &self.internal, view))?
            .map(Arc::new)
            .ok_or_else(|| unknown_view(view))
    }

    /// The definition of `view` with its upsert, kept for later writes.
    pub(super) fn writer_view(&mut self, view: &str) -> Result<Arc<PgView>, StoreError> {
        if let Some(pg) = self.views.get(view) {
            return Ok(Arc::clone(pg));
        }
        let def = self.definition(view)?;
        let pg = Arc::new(PgView {
            upsert_sql: upsert_sql(&self.schema, view, &def),
            def,
        });
        self.views.insert(view.to_owned(), Arc::clone(&pg));
        Ok(pg)
    }

    pub(super) fn table(&self, view: &str) -> String {
        format!("{}.{}", self.schema, quote_ident(view))
    }
}

impl ResultStore for PgStore {
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

    fn read_results(&self, view: &str, query: &ResultQuery) -> Result<ResultRows, StoreError> {
        read::read_results(self, view, query)
    }

    fn status(&self, view: &str) -> Result<ViewStatus, StoreError> {
        read::status(self, view)
    }

    fn claim_writer(&mut self, view: &str) -> Result<(), StoreError> {
        lock::claim_writer(self, view)
    }
}
