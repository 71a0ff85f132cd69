//! A view's stored results as a DataFusion table, read a page at a time, for ad-hoc queries
//! that join views with streams or with each other.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::memory::{LazyBatchGenerator, LazyMemoryExec};
use freshet_store::{ResultQuery, ResultStore};
use freshet_types::limits::RESULT_ROWS_PER_PAGE_MAX;
use parking_lot::RwLock;
use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};

/// A store shared by every view table of a session (one connection).
pub type SharedStore = Arc<Mutex<Box<dyn ResultStore>>>;

/// The results table of one view.
pub struct StoreTable {
    view: String,
    schema: SchemaRef,
    store: SharedStore,
}

impl fmt::Debug for StoreTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreTable({})", self.view)
    }
}

impl StoreTable {
    /// The stored results of `view`: its columns, then `_state` and `_updated_at`.
    pub fn new(view: &str, store: SharedStore) -> crate::Result<StoreTable> {
        let first = read_page(
            &store,
            view,
            &ResultQuery {
                limit: 0,
                ..ResultQuery::default()
            },
        )?;
        Ok(StoreTable {
            view: view.to_owned(),
            schema: first.batch.schema(),
            store,
        })
    }
}

#[async_trait]
impl TableProvider for StoreTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let pages: Arc<RwLock<dyn LazyBatchGenerator>> = Arc::new(RwLock::new(Pages {
            view: self.view.clone(),
            store: self.store.clone(),
            offset: 0,
            done: false,
        }));
        Ok(Arc::new(
            LazyMemoryExec::try_new(self.schema.clone(), vec![pages])?
                .with_projection(projection.cloned()),
        ))
    }
}

/// A page of `view`'s results, read on a thread of its own: DataFusion pulls pages on its
/// tokio runtime's threads, where the PostgreSQL store's blocking client (which drives a
/// runtime of its own) cannot run.
fn read_page(
    store: &SharedStore,
    view: &str,
    query: &ResultQuery,
) -> Result<freshet_store::ResultRows, freshet_store::StoreError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .read_results(view, query)
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Pages of a view's results, in key order.
struct Pages {
    view: String,
    store: SharedStore,
    offset: usize,
    done: bool,
}

impl fmt::Debug for Pages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pages({})", self.view)
    }
}

impl fmt::Display for Pages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stored results of {}", self.view)
    }
}

impl LazyBatchGenerator for Pages {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn generate_next_batch(&mut self) -> datafusion::error::Result<Option<RecordBatch>> {
        if self.done {
            return Ok(None);
        }
        let page = read_page(
            &self.store,
            &self.view,
            &ResultQuery {
                limit: RESULT_ROWS_PER_PAGE_MAX,
                offset: self.offset,
                ..ResultQuery::default()
            },
        )
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        self.offset += page.batch.num_rows();
        self.done = !page.has_more || page.batch.num_rows() == 0;
        Ok((page.batch.num_rows() > 0).then_some(page.batch))
    }

    fn reset_state(&self) -> Arc<RwLock<dyn LazyBatchGenerator>> {
        Arc::new(RwLock::new(Pages {
            view: self.view.clone(),
            store: self.store.clone(),
            offset: 0,
            done: false,
        }))
    }
}
