//! The PostgreSQL store's handle: where it lives, its place in the pool (with the
//! connection that fills it), the leases it holds and the definitions it has used.
//! This module runs no SQL itself.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use postgres::{Client, Statement};

use super::lease::Held;
use super::location::PgLocation;
use super::pool::Lease;
use crate::StoreError;
use crate::changes::ChangeRetention;
use crate::definition::Definition;
use crate::model::Task;
use crate::sql::{Internal, quote_ident};

/// The connection and what depends on it.
#[derive(Default)]
pub(super) struct Connection {
    pub(super) client: Option<Client>,
    /// Prepared statements of the current connection, by SQL text.
    pub(super) statements: HashMap<String, Statement>,
}

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
    /// A writer's place in the pool, held for the store's life; a reader's, during a call.
    pub(super) lease: RefCell<Option<Lease>>,
    /// The leases of the views this store writes ([`super::lease`]).
    pub(super) claimed: RefCell<Vec<Held>>,
    /// The part of each view this store writes: its leases, state, progress and status
    /// are this task's.
    pub(super) task: Task,
    /// Definitions of views this writer has used.
    pub(super) views: HashMap<String, Arc<PgView>>,
    /// How much of each view's change log commits keep.
    pub(super) retention: ChangeRetention,
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
            lease: RefCell::new(None),
            claimed: RefCell::new(Vec::new()),
            task: Task::Whole,
            views: HashMap::new(),
            retention: ChangeRetention::default(),
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

    pub(super) fn table(&self, view: &str) -> String {
        format!("{}.{}", self.schema, quote_ident(view))
    }
}
