//! [`ResultStore`] for the SQLite store: each call handed to the module that does it
//! ([`super::ddl`], [`super::read`], [`super::write`]).

use arrow_array::RecordBatch;

use super::store::SqliteStore;
use super::{ddl, read, write};
use crate::changes::{ChangeLog, ChangeRetention};
use crate::model::{
    Checkpoint, Commit, ResultBatch, ResultQuery, ResultRows, ResultTable, ViewStatus,
};
use crate::{ResultStore, StoreError};

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

    fn read_changes(
        &self,
        view: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<ChangeLog, StoreError> {
        read::read_changes(self, view, after_seq, limit)
    }

    fn set_change_retention(&mut self, retention: ChangeRetention) {
        self.retention = retention;
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
