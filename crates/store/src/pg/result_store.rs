//! [`ResultStore`] for the PostgreSQL store: each call handed to the module that does it
//! ([`super::ddl`], [`super::read`], [`super::write`], [`super::lease`]).

use arrow_array::RecordBatch;

use super::store::PgStore;
use super::{ddl, lease, read, write};
use crate::changes::{ChangeLog, ChangeRetention};
use crate::model::{
    Checkpoint, Commit, ResultBatch, ResultQuery, ResultRows, ResultTable, Task, ViewStatus,
};
use crate::{ResultStore, StoreError};

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

    fn publish_catalog(&mut self, files: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        ddl::publish_catalog(self, files)
    }

    fn tasks(&self, view: &str) -> Result<Vec<Task>, StoreError> {
        read::tasks(self, view)
    }

    fn set_task(&mut self, task: Task) -> Result<(), StoreError> {
        if task != self.task && !self.claimed.borrow().is_empty() {
            return Err(StoreError::bug(
                "a store's task changes before it claims a view, never after",
            ));
        }
        self.task = task;
        Ok(())
    }

    fn claim_writer(&mut self, view: &str) -> Result<Option<i64>, StoreError> {
        lease::claim_writer(self, view)
    }

    fn claim_for_repair(&mut self, view: &str) -> Result<(), StoreError> {
        lease::claim_for_repair(self, view)
    }

    fn release_writer(&mut self, view: &str) -> Result<(), StoreError> {
        self.release_lease(view)
    }
}
