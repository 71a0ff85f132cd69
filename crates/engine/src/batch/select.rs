//! Selecting rows by time: the event-time range a batch scan keeps, and the result rows
//! whose windows lie in a range (what a batch run or a reconciliation compares).

use crate::error::{EngineError, Result};
use crate::source::times_ms;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use freshet_store::RowState;

/// A half-open event-time range `[from_ms, to_ms)`; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Earliest event time kept, in ms since the epoch.
    pub from_ms: Option<i64>,
    /// Event times at or after this are not kept.
    pub to_ms: Option<i64>,
}

impl TimeRange {
    /// The range both `self` and `other` allow.
    pub fn intersect(self, other: TimeRange) -> TimeRange {
        TimeRange {
            from_ms: max_opt(self.from_ms, other.from_ms),
            to_ms: min_opt(self.to_ms, other.to_ms),
        }
    }

    pub(super) fn admits_frame(&self, min_ms: i64, max_ms: i64) -> bool {
        self.from_ms.is_none_or(|f| max_ms >= f) && self.to_ms.is_none_or(|t| min_ms < t)
    }

    pub(crate) fn contains(&self, t: i64) -> bool {
        self.from_ms.is_none_or(|f| t >= f) && self.to_ms.is_none_or(|e| t < e)
    }

    pub(super) fn is_all(&self) -> bool {
        self.from_ms.is_none() && self.to_ms.is_none()
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The rows of `batch` whose event time (column `time_column`) `keep` accepts, projected
/// to `schema`.
pub(super) fn select_rows(
    batch: &RecordBatch,
    time_column: usize,
    keep: impl Fn(i64) -> bool,
    projection: &[usize],
    schema: &SchemaRef,
) -> datafusion::error::Result<RecordBatch> {
    let times = times_ms(batch.column(time_column))
        .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
    let mask: BooleanArray = (0..times.len())
        .map(|i| Some(!times.is_null(i) && keep(times.value(i))))
        .collect();
    project(
        &arrow_select::filter::filter_record_batch(batch, &mask)?,
        projection,
        schema,
    )
}

pub(super) fn project(
    batch: &RecordBatch,
    projection: &[usize],
    schema: &SchemaRef,
) -> datafusion::error::Result<RecordBatch> {
    let projected = batch.project(projection)?;
    // Same columns; the schema object carries the scan's (projected) metadata. A scan may
    // project no column at all (`count(*)`): the row count says how many rows.
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        projected.columns().to_vec(),
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(projected.num_rows())),
    )?)
}

/// Rows of `batch` whose window lies in `[from, to)` and ends after `ends_after`, optionally
/// only final ones (by the `_state` column), with the columns of `schema` (cast to its
/// types).
pub(crate) fn in_range(
    batch: &RecordBatch,
    schema: &SchemaRef,
    (from, to): (i64, i64),
    ends_after: i64,
    final_only: bool,
) -> Result<RecordBatch> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| EngineError::Bug(format!("a result batch has no column '{name}'")))
    };
    let starts = times_ms(&column("window_start")?)?;
    let ends = times_ms(&column("window_end")?)?;
    let states = if final_only {
        Some(column("_state")?)
    } else {
        None
    };
    let states = states
        .as_ref()
        .and_then(|s| s.as_any().downcast_ref::<StringArray>());
    let keep: arrow_array::BooleanArray = (0..batch.num_rows())
        .map(|i| {
            Some(
                !starts.is_null(i)
                    && !ends.is_null(i)
                    && starts.value(i) >= from
                    && ends.value(i) <= to
                    && ends.value(i) > ends_after
                    && states.is_none_or(|s| s.value(i) == RowState::Final.as_str()),
            )
        })
        .collect();
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let array = column(field.name())?;
            let array = if array.data_type() == field.data_type() {
                array
            } else {
                arrow_cast::cast(&array, field.data_type())?
            };
            Ok(arrow_select::filter::filter(&array, &keep)?)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(keep.true_count())),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_intersect_and_admit_frames_that_overlap() {
        let r = TimeRange {
            from_ms: Some(10),
            to_ms: Some(20),
        };
        assert!(r.admits_frame(5, 10));
        assert!(r.admits_frame(19, 30));
        assert!(!r.admits_frame(20, 30));
        assert!(!r.admits_frame(0, 9));
        let narrower = r.intersect(TimeRange {
            from_ms: Some(15),
            to_ms: None,
        });
        assert_eq!(narrower.from_ms, Some(15));
        assert_eq!(narrower.to_ms, Some(20));
        assert!(narrower.contains(15) && !narrower.contains(20));
    }
}
