//! What flows between operators: Arrow rows, where they came from, and their result state.

use crate::error::Result;
use arrow_array::{Array, BooleanArray, RecordBatch, UInt32Array, UInt64Array};
use arrow_select::filter::{filter, filter_record_batch};
use arrow_select::take::{take, take_record_batch};
use freshet_store::RowState;
use std::sync::Arc;

/// The log position of each row, carried through stateless operators so that a view
/// without a GROUP BY can key its results by source position (re-emission is idempotent)
/// and a late row can be dead-lettered with its offset.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Partition of each row.
    pub partition: UInt32Array,
    /// Offset of each row.
    pub offset: UInt64Array,
    /// Which of the row's windows (0 unless a hopping window copied the row).
    pub copy: UInt32Array,
}

impl Origin {
    /// Keep the rows where `mask` is true.
    pub fn filter(&self, mask: &BooleanArray) -> Result<Origin> {
        Ok(Origin {
            partition: downcast(filter(&self.partition, mask)?),
            offset: downcast(filter(&self.offset, mask)?),
            copy: downcast(filter(&self.copy, mask)?),
        })
    }

    /// Rows at `indices`.
    pub fn take(&self, indices: &dyn Array) -> Result<Origin> {
        Ok(Origin {
            partition: downcast(take(&self.partition, indices, None)?),
            offset: downcast(take(&self.offset, indices, None)?),
            copy: downcast(take(&self.copy, indices, None)?),
        })
    }
}

/// True where `mask` is false or NULL: the rows a filter on `mask` drops.
pub fn not_true(mask: &BooleanArray) -> BooleanArray {
    let kept = match mask.nulls() {
        Some(nulls) => mask.values() & nulls.inner(),
        None => mask.values().clone(),
    };
    BooleanArray::new(!&kept, None)
}

fn downcast<T: Array + Clone + 'static>(a: Arc<dyn Array>) -> T {
    a.as_any()
        .downcast_ref::<T>()
        .expect("a kernel keeps its input's type")
        .clone()
}

/// What a batch of rows does to a view's results, which are keyed (by group and window,
/// or by log position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Insert the rows, or replace those with the same key, stored in this state: `Final`
    /// for rows that will not change, `Provisional` for updates of open groups.
    Upsert(RowState),
    /// Remove the rows with these rows' keys (a group that stopped qualifying); only the
    /// key columns mean anything.
    Delete,
}

/// A batch of rows between operators.
#[derive(Debug, Clone)]
pub struct Rows {
    /// The rows, in the producing operator's schema.
    pub batch: RecordBatch,
    /// Their log positions, when they derive one-to-one from log rows.
    pub origin: Option<Origin>,
    /// What they do to the results.
    pub change: Change,
}

impl Rows {
    /// Keep the rows where `mask` is true.
    pub fn filter(&self, mask: &BooleanArray) -> Result<Rows> {
        Ok(Rows {
            batch: filter_record_batch(&self.batch, mask)?,
            origin: self.origin.as_ref().map(|o| o.filter(mask)).transpose()?,
            change: self.change,
        })
    }

    /// Rows at `indices`.
    pub fn take(&self, indices: &dyn Array) -> Result<Rows> {
        Ok(Rows {
            batch: take_record_batch(&self.batch, indices)?,
            origin: self.origin.as_ref().map(|o| o.take(indices)).transpose()?,
            change: self.change,
        })
    }
}
