//! What flows between operators: Arrow rows, where they came from, and their result state.

use crate::error::{EngineError, Result};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array, UInt64Array};
use arrow_select::concat::concat;
use arrow_select::filter::{filter, filter_record_batch};
use arrow_select::take::{take, take_record_batch};
use freshet_store::RowState;
use std::sync::Arc;

/// The log position of each row, carried through stateless operators so that a view
/// without a GROUP BY can key its results by source position (re-emission is idempotent)
/// and a late row can be dead-lettered with its offset. A join's rows carry both input
/// rows' positions: the left row's here, the right row's in `paired`, so that two result
/// rows made from one left row never share a key.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Partition of each row.
    pub partition: UInt32Array,
    /// Offset of each row.
    pub offset: UInt64Array,
    /// Which of the row's windows (0 unless a hopping window copied the row).
    pub copy: UInt32Array,
    /// For a join's rows, the right input row's position.
    pub paired: Option<Box<Origin>>,
}

impl Origin {
    /// Positions of single rows (not a join's).
    pub fn new(partition: UInt32Array, offset: UInt64Array, copy: UInt32Array) -> Origin {
        Origin {
            partition,
            offset,
            copy,
            paired: None,
        }
    }

    /// Positions standing for rows that have none (an aggregate's), identified by `keys`
    /// (their GROUP BY columns in row format): 127 bits of a 128-bit hash of each key, in
    /// the partition (high 32 bits), the offset (the next 63: stores keep offsets as signed
    /// 64-bit integers) and the copy (low 32).
    pub fn hashed<'a>(keys: impl Iterator<Item = &'a [u8]>) -> Origin {
        let hashes: Vec<u128> = keys.map(xxhash_rust::xxh3::xxh3_128).collect();
        Origin::new(
            hashes.iter().map(|h| (h >> 96) as u32).collect(),
            hashes
                .iter()
                .map(|h| (h >> 32) as u64 & i64::MAX as u64)
                .collect(),
            hashes.iter().map(|&h| h as u32).collect(),
        )
    }

    /// Each row's positions as bytes (NULL positions of an outer join's padded rows
    /// included), to find the row again when it changes.
    pub fn identities(&self) -> Vec<Vec<u8>> {
        let mut out = vec![Vec::with_capacity(17 * self.positions()); self.partition.len()];
        let mut level = Some(self);
        while let Some(o) = level {
            for (i, id) in out.iter_mut().enumerate() {
                if o.partition.is_null(i) {
                    id.push(0);
                } else {
                    id.push(1);
                    id.extend_from_slice(&o.partition.value(i).to_be_bytes());
                    id.extend_from_slice(&o.offset.value(i).to_be_bytes());
                    id.extend_from_slice(&o.copy.value(i).to_be_bytes());
                }
            }
            level = o.paired.as_deref();
        }
        out
    }

    /// How many input positions make up each row's identity (1, or more for a join's rows).
    pub fn positions(&self) -> usize {
        1 + self.paired.as_ref().map_or(0, |p| p.positions())
    }

    /// The positions as columns, three per position (partition, offset, copy), left first.
    pub fn columns(&self) -> Vec<ArrayRef> {
        let mut out: Vec<ArrayRef> = vec![
            Arc::new(self.partition.clone()),
            Arc::new(self.offset.clone()),
            Arc::new(self.copy.clone()),
        ];
        if let Some(p) = &self.paired {
            out.extend(p.columns());
        }
        out
    }

    /// Positions from columns made by [`Origin::columns`].
    pub fn from_columns(columns: &[ArrayRef]) -> Result<Origin> {
        let malformed = || EngineError::Bug("malformed position columns".into());
        if columns.len() < 3 || !columns.len().is_multiple_of(3) {
            return Err(malformed());
        }
        let u32s = |a: &ArrayRef| {
            a.as_any()
                .downcast_ref::<UInt32Array>()
                .cloned()
                .ok_or_else(malformed)
        };
        let offset = columns[1]
            .as_any()
            .downcast_ref::<UInt64Array>()
            .cloned()
            .ok_or_else(malformed)?;
        let paired = match &columns[3..] {
            [] => None,
            rest => Some(Box::new(Origin::from_columns(rest)?)),
        };
        Ok(Origin {
            partition: u32s(&columns[0])?,
            offset,
            copy: u32s(&columns[2])?,
            paired,
        })
    }

    /// The positions of a join's rows: `left`'s, then `right`'s (row `i` of both made
    /// result row `i`).
    pub fn join(left: Origin, right: Origin) -> Origin {
        let paired = match left.paired {
            Some(inner) => Origin::join(*inner, right),
            None => right,
        };
        Origin {
            paired: Some(Box::new(paired)),
            ..left
        }
    }

    /// The rows of `parts` one after another.
    pub fn concat(parts: &[&Origin]) -> Result<Origin> {
        let columns = parts.iter().map(|p| p.columns()).collect::<Vec<_>>();
        let width = columns.first().map_or(0, Vec::len);
        if columns.iter().any(|c| c.len() != width) {
            return Err(EngineError::Bug(
                "rows of one input with different position widths".into(),
            ));
        }
        let joined = (0..width)
            .map(|c| {
                let arrays: Vec<&dyn Array> = columns.iter().map(|cols| cols[c].as_ref()).collect();
                Ok(concat(&arrays)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Origin::from_columns(&joined)
    }

    /// Keep the rows where `mask` is true.
    pub fn filter(&self, mask: &BooleanArray) -> Result<Origin> {
        Ok(Origin {
            partition: downcast(filter(&self.partition, mask)?),
            offset: downcast(filter(&self.offset, mask)?),
            copy: downcast(filter(&self.copy, mask)?),
            paired: self
                .paired
                .as_ref()
                .map(|p| p.filter(mask).map(Box::new))
                .transpose()?,
        })
    }

    /// Rows at `indices`.
    pub fn take(&self, indices: &dyn Array) -> Result<Origin> {
        Ok(Origin {
            partition: downcast(take(&self.partition, indices, None)?),
            offset: downcast(take(&self.offset, indices, None)?),
            copy: downcast(take(&self.copy, indices, None)?),
            paired: self
                .paired
                .as_ref()
                .map(|p| p.take(indices).map(Box::new))
                .transpose()?,
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
