//! Streaming joins: which operator runs a join, and what they share (keys, pairs, the
//! residual condition, buffered rows in checkpoints).
//!
//! - `window`: two windowed inputs on the same window, joined when the window closes;
//! - `symmetric`: two inputs on any keys, joined as rows arrive; inner or outer (whose
//!   padded rows are retracted when their first match arrives), freeing rows by the
//!   condition's time bounds (`interval`); an input whose rows change has what a row's
//!   old version made taken back when its next version comes.

mod chunk;
mod interval;
mod symmetric;
mod window;

pub use interval::{IntervalBounds, interval_bounds, interval_ns};
pub use symmetric::{Identity, Interval, Output, Preserved, SymmetricJoin};
pub use window::{WindowJoin, WindowRef};

use crate::Ctx;
use crate::error::{EngineError, Result};
use crate::node::Freed;
use crate::rows::{Change, Origin, Rows};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::SchemaRef;
use datafusion::arrow::buffer::NullBuffer;
use datafusion::physical_expr::PhysicalExpr;
use freshet_types::Watermark;
use std::sync::Arc;

/// A join operator. (Its variants differ in size; a node holds its join boxed.)
#[allow(clippy::large_enum_variant)]
pub enum Join {
    /// Joined per window, when the window closes.
    Window(WindowJoin),
    /// Joined as rows arrive.
    Symmetric(SymmetricJoin),
}

impl Join {
    /// Operator id.
    pub fn id(&self) -> u16 {
        match self {
            Join::Window(j) => j.id,
            Join::Symmetric(j) => j.id,
        }
    }

    /// Rows of one input (`right` false for the left one); returns the rows this completes.
    pub fn on_input(&mut self, rows: Rows, right: bool, ctx: &mut Ctx) -> Result<Vec<Rows>> {
        match self {
            Join::Window(j) => {
                j.on_input(rows, right)?;
                ctx.check_state(j.state_bytes())?;
                Ok(Vec::new())
            }
            Join::Symmetric(j) => j.on_input(rows, right, ctx),
        }
    }

    /// Both inputs' window watermarks moved (`floors`: the least times their rows to come
    /// can have in the columns of [`Join::time_columns`]): rows of the windows they
    /// complete; a join bounded in time frees rows instead, and writes an outer or anti
    /// join's freed rows that matched nothing, final.
    pub fn on_watermark(
        &mut self,
        left: Option<Watermark>,
        right: Option<Watermark>,
        floors: [Option<Watermark>; 2],
    ) -> Result<Vec<Rows>> {
        match self {
            Join::Window(j) => j.on_watermark(left, right),
            Join::Symmetric(j) => j.on_watermark(floors),
        }
    }

    /// The streams' watermark moved to `clock`: a join with `state_ttl` forgets rows that
    /// arrived more than the TTL before it (and writes an outer or anti join's rows among
    /// them that matched nothing, final).
    pub fn on_clock(&mut self, clock: Option<Watermark>) -> Result<Vec<Rows>> {
        match self {
            Join::Window(_) => Ok(Vec::new()),
            Join::Symmetric(j) => j.on_clock(clock),
        }
    }

    /// Which sides' rows `state_ttl` frees.
    pub fn forgets(&self) -> [bool; 2] {
        match self {
            Join::Window(_) => [false, false],
            Join::Symmetric(j) => j.forgets(),
        }
    }

    /// The timestamp column of each input whose watermark frees the other's rows.
    pub fn time_columns(&self) -> Option<[usize; 2]> {
        match self {
            Join::Window(_) => None,
            Join::Symmetric(j) => j.time_columns(),
        }
    }

    /// Whether side `side`'s rows are an aggregate's, identified by a hash of their key.
    pub fn identifies(&self, side: usize) -> bool {
        match self {
            Join::Window(_) => false,
            Join::Symmetric(j) => j.identifies(side),
        }
    }

    /// Rows due at a commit: at the end of the streams, an outer or anti join's rows
    /// still kept that matched nothing, final.
    pub fn on_commit(&mut self, ctx: &Ctx) -> Result<Vec<Rows>> {
        match self {
            Join::Window(_) => Ok(Vec::new()),
            Join::Symmetric(j) => j.on_commit(ctx),
        }
    }

    /// Whether the join's rows change after they are written (an outer join's padded
    /// rows, an anti join's rows, any rows of a join whose inputs' rows change).
    pub fn updates(&self) -> bool {
        match self {
            Join::Window(_) => false,
            Join::Symmetric(j) => j.updates(),
        }
    }

    /// Whether an input's rows change after they are written (they come at commits too).
    pub fn reads_changes(&self) -> bool {
        match self {
            Join::Window(_) => false,
            Join::Symmetric(j) => j.reads_changes(),
        }
    }

    /// Whether the join's rows may hold NULL positions (an outer join's padded rows).
    pub fn pads(&self) -> bool {
        match self {
            Join::Window(w) => w.output.pads(),
            Join::Symmetric(j) => j.output().pads(),
        }
    }

    /// The equality keys over the left and the right input.
    pub fn keys(&self) -> [&[Arc<dyn PhysicalExpr>]; 2] {
        match self {
            Join::Window(w) => [&w.left_keys, &w.right_keys],
            Join::Symmetric(j) => j.keys(),
        }
    }

    /// What the join writes: pairs (inner or outer), or one side's rows.
    pub fn output(&self) -> Output {
        match self {
            Join::Window(w) => w.output,
            Join::Symmetric(j) => j.output(),
        }
    }

    /// The side whose rows alone are the join's output (a semi or anti join's).
    pub fn only_side(&self) -> Option<usize> {
        match self {
            Join::Window(w) => w.output.only_side(),
            Join::Symmetric(j) => j.output().only_side(),
        }
    }

    /// Window ends at or before this will see no more rows from the join.
    pub fn window_watermark(&self) -> Option<Watermark> {
        match self {
            Join::Window(j) => j.window_watermark(),
            Join::Symmetric(_) => None,
        }
    }

    /// Approximate bytes kept.
    pub fn state_bytes(&self) -> usize {
        match self {
            Join::Window(j) => j.state_bytes(),
            Join::Symmetric(j) => j.state_bytes(),
        }
    }

    /// State changes since the last checkpoint.
    pub fn checkpoint(&mut self, puts: &mut Vec<(Vec<u8>, Vec<u8>)>, deletes: &mut Vec<Vec<u8>>) {
        match self {
            Join::Window(j) => j.checkpoint(puts, deletes),
            Join::Symmetric(j) => j.checkpoint(puts, deletes),
        }
    }

    /// Load the operator's kept rows from a checkpoint.
    pub fn restore(
        &mut self,
        entries: &[(Vec<u8>, Vec<u8>)],
        left: &SchemaRef,
        right: &SchemaRef,
    ) -> Result<()> {
        match self {
            Join::Window(j) => j.restore(entries, left, right),
            Join::Symmetric(j) => j.restore(entries, left, right),
        }
    }

    /// What the operator keeps and what frees it, for `DESCRIBE VIEW` and `explain`.
    pub fn state_note(&self) -> (&'static str, Freed) {
        match self {
            Join::Window(_) => (
                "both sides' rows per window, freed as the watermark closes it",
                Freed::ByWatermark,
            ),
            Join::Symmetric(j) if self.forgets().contains(&true) => (
                "rows of a side whose rows are appended until the streams' watermark is \
                 state_ttl past the one they arrived at (or the condition's interval frees \
                 them), a changing side's latest version of each row until it is replaced \
                 or deleted; bounded by state_bytes_max",
                if j.lets_go() == [true, true] {
                    Freed::ByWatermark
                } else {
                    Freed::AtTheEnd
                },
            ),
            Join::Symmetric(j) if j.reads_changes() => (
                "each row's latest version of a side whose rows change, until it is replaced \
                 or deleted; a side whose rows are appended, until the end of the streams; \
                 bounded by state_bytes_max",
                Freed::AtTheEnd,
            ),
            Join::Symmetric(j) => match j.frees() {
                [true, true] => (
                    "both sides' rows until the other side's watermark passes their time plus \
                     the condition's interval, bounded by state_bytes_max",
                    Freed::ByWatermark,
                ),
                [true, false] => (
                    "left rows until the right side's watermark passes their time plus the \
                     condition's interval; right rows until the end of the streams, bounded \
                     by state_bytes_max",
                    Freed::AtTheEnd,
                ),
                [false, true] => (
                    "right rows until the left side's watermark passes their time plus the \
                     condition's interval; left rows until the end of the streams, bounded by \
                     state_bytes_max",
                    Freed::AtTheEnd,
                ),
                [false, false] => (
                    "both sides' rows until the end of the streams, bounded by state_bytes_max",
                    Freed::AtTheEnd,
                ),
            },
        }
    }

    /// One line for `DESCRIBE VIEW`.
    pub fn describe(&self) -> String {
        match self {
            Join::Window(j) => format!("WindowJoin #{} ({})", j.id, j.output.name()),
            Join::Symmetric(j) => format!(
                "SymmetricHashJoin #{} ({}, as rows arrive{}{}{})",
                j.id,
                j.output().name(),
                j.time_bounds(),
                j.changing_sides(),
                j.ttl_note()
            ),
        }
    }
}

/// Hands an operator's state changes since the last checkpoint to the checkpoint: a key
/// put and deleted within one checkpoint (a batch kept and freed) is not written at all.
fn flush_pending(
    pending_puts: &mut Vec<(Vec<u8>, Vec<u8>)>,
    pending_deletes: &mut Vec<Vec<u8>>,
    puts: &mut Vec<(Vec<u8>, Vec<u8>)>,
    deletes: &mut Vec<Vec<u8>>,
) {
    let gone: std::collections::HashSet<&Vec<u8>> = pending_deletes.iter().collect();
    puts.extend(pending_puts.drain(..).filter(|(k, _)| !gone.contains(k)));
    deletes.append(pending_deletes);
}

/// The join keys `exprs` evaluated over `batch`.
fn eval_keys(exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?))
        .collect()
}

/// Where every one of `keys` is valid, if any is NULL somewhere: under SQL's `=` a row
/// with a NULL key matches nothing.
fn valid_keys(keys: &[ArrayRef]) -> Option<BooleanArray> {
    let valid = keys.iter().fold(None::<NullBuffer>, |acc, k| {
        NullBuffer::union(acc.as_ref(), k.logical_nulls().as_ref())
    })?;
    (valid.null_count() > 0).then(|| BooleanArray::new(valid.into_inner(), None))
}

/// Left columns then right columns, as one batch of `schema`.
fn pair_batch(left: &RecordBatch, right: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let mut columns = left.columns().to_vec();
    columns.extend(right.columns().iter().cloned());
    rows_batch(schema, columns, left.num_rows())
}

/// Where the residual condition holds over joined rows (NULL counts as false).
fn residual(filter: &Arc<dyn PhysicalExpr>, pairs: &RecordBatch) -> Result<BooleanArray> {
    let mask = filter.evaluate(pairs)?.into_array(pairs.num_rows())?;
    mask.as_any()
        .downcast_ref::<BooleanArray>()
        .cloned()
        .ok_or_else(|| EngineError::Bug("a join condition is not boolean".into()))
}

/// How a join pads a row of one side that matched nothing: the output schema (left
/// columns, then right), how many columns the left has, and how many input positions each
/// side's rows carry (0 for an aggregate's rows, which carry none).
struct Padding<'a> {
    schema: &'a SchemaRef,
    left_width: usize,
    positions: [usize; 2],
}

impl Padding<'_> {
    /// `rows` of side `side` as output rows doing `change`, with NULLs for the other
    /// side's columns and, where positions are kept, NULL positions for its.
    fn rows(&self, rows: &Rows, side: usize, change: Change) -> Result<Rows> {
        let n = rows.batch.num_rows();
        let fields = self.schema.fields();
        let nulls = |range: std::ops::Range<usize>| -> Vec<ArrayRef> {
            fields[range]
                .iter()
                .map(|f| arrow_array::new_null_array(f.data_type(), n))
                .collect()
        };
        let columns = if side == 0 {
            let mut columns = rows.batch.columns().to_vec();
            columns.extend(nulls(self.left_width..fields.len()));
            columns
        } else {
            let mut columns = nulls(0..self.left_width);
            columns.extend(rows.batch.columns().iter().cloned());
            columns
        };
        let origin = match (rows.origin.clone(), self.positions[1 - side]) {
            (origin, 0) => origin,
            (Some(origin), missing) => {
                let none = null_origin(n, missing)?;
                Some(match side {
                    0 => Origin::join(origin, none),
                    _ => Origin::join(none, origin),
                })
            }
            (None, _) => None,
        };
        Ok(Rows {
            batch: rows_batch(self.schema, columns, n)?,
            origin,
            change,
        })
    }
}

/// `columns` as a batch of `schema` with `n` rows (which may have no columns).
fn rows_batch(schema: &SchemaRef, columns: Vec<ArrayRef>, n: usize) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)),
    )?)
}

/// `positions` NULL input positions for each of `n` rows: the missing side of a padded row.
fn null_origin(n: usize, positions: usize) -> Result<Origin> {
    let columns: Vec<ArrayRef> = (0..positions)
        .flat_map(|_| {
            [
                Arc::new(UInt32Array::new_null(n)) as ArrayRef,
                Arc::new(UInt64Array::new_null(n)),
                Arc::new(UInt32Array::new_null(n)),
            ]
        })
        .collect();
    Origin::from_columns(&columns)
}
