//! Which views a PostgreSQL store holds: a view's stored definition, and the writer's
//! cache of definitions with the statement that upserts each view's rows. The writer's
//! cache is only correct with one writer per view, which its writer lock guarantees.

use std::sync::Arc;

use super::statements::upsert_sql;
use super::store::{PgStore, PgView};
use crate::StoreError;
use crate::definition::{Definition, unknown_view};
use crate::error::PostgresContext;
use crate::sql::Internal;

/// A view's stored definition; `None` if it was never created.
pub(super) fn load_definition(
    client: &mut impl postgres::GenericClient,
    internal: &Internal,
    view: &str,
) -> Result<Option<Definition>, StoreError> {
    let row = client
        .query_opt(&internal.select_definition(), &[&view])
        .context(|| format!("reading the definition of view '{view}'"))?;
    row.map(|row| Definition::from_json(view, row.get(0), row.get(1)))
        .transpose()
}

impl PgStore {
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
}
