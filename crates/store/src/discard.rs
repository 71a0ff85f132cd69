//! A result store that keeps nothing, for measuring the engine without a sink
//! (`freshet run --drain --discard`), as the Nexmark reference implementations do.

use crate::{
    Checkpoint, Commit, ResultQuery, ResultRows, ResultStore, ResultTable, StoreError, ViewStatus,
};
use std::collections::HashSet;

/// Accepts every commit and forgets it. A view run on it starts from the beginning of the log
/// each time, and [`ResultStore::durable`] is false so that nothing treats its commits as
/// progress.
#[derive(Debug, Default)]
pub struct DiscardStore {
    views: HashSet<String>,
}

impl DiscardStore {
    /// An empty store.
    pub fn new() -> DiscardStore {
        DiscardStore::default()
    }

    fn check_view_exists(&self, view: &str) -> Result<(), StoreError> {
        if self.views.contains(view) {
            Ok(())
        } else {
            Err(StoreError::user(format!("unknown view '{view}'")))
        }
    }
}

impl ResultStore for DiscardStore {
    fn repair(
        &mut self,
        view: &str,
        _upserts: &[crate::ResultBatch],
        _deletes: &[arrow_array::RecordBatch],
    ) -> Result<(), StoreError> {
        self.check_view_exists(view)
    }

    fn create_view(&mut self, table: &ResultTable) -> Result<(), StoreError> {
        self.views.insert(table.view.clone());
        Ok(())
    }

    fn drop_view(&mut self, view: &str) -> Result<(), StoreError> {
        self.views.remove(view);
        Ok(())
    }

    fn load(&self, view: &str) -> Result<Checkpoint, StoreError> {
        self.check_view_exists(view)?;
        Ok(Checkpoint {
            progress: None,
            state: Vec::new(),
        })
    }

    fn commit(&mut self, view: &str, _commit: &Commit) -> Result<(), StoreError> {
        self.check_view_exists(view)
    }

    fn read_results(&self, view: &str, _query: &ResultQuery) -> Result<ResultRows, StoreError> {
        self.check_view_exists(view)?;
        Err(StoreError::user(format!(
            "view '{view}' runs on the discard store, which keeps no results"
        )))
    }

    fn status(&self, view: &str) -> Result<ViewStatus, StoreError> {
        self.check_view_exists(view)?;
        Ok(ViewStatus {
            view: view.to_string(),
            progress: None,
            committed_at_ms: None,
        })
    }

    fn read_changes(
        &self,
        view: &str,
        _after_seq: u64,
        _limit: usize,
    ) -> Result<crate::ChangeLog, StoreError> {
        self.check_view_exists(view)?;
        Ok(crate::ChangeLog::default())
    }

    fn durable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Progress;
    use arrow_schema::Schema;
    use std::sync::Arc;

    #[test]
    fn commits_are_accepted_and_forgotten() {
        let mut store = DiscardStore::new();
        let table = ResultTable {
            view: "v".into(),
            schema: Arc::new(Schema::empty()),
            key: Vec::new(),
        };
        assert!(store.commit("v", &empty_commit()).is_err(), "unknown view");
        store.create_view(&table).unwrap();
        store.commit("v", &empty_commit()).unwrap();
        assert_eq!(store.load("v").unwrap().progress, None);
        assert!(!store.durable());
        let err = store
            .read_results("v", &ResultQuery::default())
            .unwrap_err();
        assert!(err.to_string().contains("keeps no results"), "{err}");
    }

    fn empty_commit() -> Commit {
        Commit {
            deletes: vec![],
            upserts: Vec::new(),
            state_puts: Vec::new(),
            state_deletes: Vec::new(),
            state_reset: false,
            late: Vec::new(),
            progress: Progress {
                partitions: Vec::new(),
                watermark_ms: None,
                stats: serde_json::Value::Null,
            },
        }
    }
}
