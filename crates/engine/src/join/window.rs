//! The window join: an inner, outer, left semi or left anti join of two windowed inputs on
//! the same window (Nexmark q7: bids joined with their window's maximum price).
//!
//! Both sides are buffered per window end; when both inputs' window watermarks reach the
//! end, the window's rows are hash-joined on the equality keys (which include the window
//! columns), the residual filter applied, and the buffers dropped. Every row is final: an
//! outer join's rows that matched nothing in their window are written then, padded with
//! NULLs (and NULL positions) for the other side; a semi join writes the left rows that
//! matched, an anti join those that did not. Buffered chunks are
//! checkpointed as Arrow IPC (`chunk`), one state entry per chunk, deleted when the window
//! closes. A result row carries both input rows' positions when both inputs have them, so
//! that a left row matching several right rows makes several result rows.

use super::chunk::ChunkKey;
use super::{Output, Padding, chunk, eval_keys, pair_batch, residual, valid_keys};
use crate::error::{EngineError, Result};
use crate::rows::{Change, Origin, Rows};
use crate::source::times_ms;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow_row::RowConverter;
use arrow_schema::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;
use foldhash::{HashMap, HashMapExt};
use freshet_store::RowState;
use freshet_types::Watermark;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How one side's rows name their window.
#[derive(Debug, Clone, Copy)]
pub struct WindowRef {
    /// Column of `window_start`, if present.
    pub start_col: Option<usize>,
    /// Column of `window_end`, if present.
    pub end_col: Option<usize>,
    /// Window length when known.
    pub size_ms: Option<i64>,
}

impl WindowRef {
    fn ends(&self, batch: &RecordBatch) -> Result<Vec<i64>> {
        match (self.end_col, self.start_col, self.size_ms) {
            (Some(c), _, _) => Ok(times_ms(batch.column(c))?.values().to_vec()),
            (None, Some(c), Some(size)) => Ok(times_ms(batch.column(c))?
                .values()
                .iter()
                .map(|s| s + size)
                .collect()),
            _ => Err(EngineError::Bug("a join side without a window end".into())),
        }
    }
}

#[derive(Default)]
struct Buffered {
    left: Vec<Rows>,
    right: Vec<Rows>,
    keys: Vec<Vec<u8>>,
    /// Bytes of the window's checkpoint entries (what it counts against the state cap).
    bytes: usize,
}

/// The window join operator.
pub struct WindowJoin {
    /// Operator id.
    pub id: u16,
    /// Output schema: left columns, then right columns (left columns only for a semi join).
    pub schema: SchemaRef,
    /// Left columns then right columns: what the residual filter sees.
    pub pair_schema: SchemaRef,
    /// What the join writes: pairs (inner or outer), or the left rows that match (semi)
    /// or do not (anti).
    pub output: Output,
    /// Input positions per row of each side (0 for an aggregate's rows).
    pub positions: [usize; 2],
    /// Columns of the left input (the pairs' first columns).
    pub left_width: usize,
    /// Equality keys on the left input.
    pub left_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Equality keys on the right input.
    pub right_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Residual predicate over the joined row.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// Whether NULL keys match each other (`IS NOT DISTINCT FROM`); under `=` they match
    /// nothing.
    pub nulls_match: bool,
    /// Window of the left side.
    pub left_window: WindowRef,
    /// Window of the right side.
    pub right_window: WindowRef,
    key_rows: RowConverter,
    buffers: BTreeMap<i64, Buffered>,
    seq: u64,
    pending_puts: Vec<(Vec<u8>, Vec<u8>)>,
    pending_deletes: Vec<Vec<u8>>,
    state_bytes: usize,
    window_watermark: Option<Watermark>,
}

const KIND_JOIN: u8 = 4;

impl WindowJoin {
    /// A new operator.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u16,
        schema: SchemaRef,
        pair_schema: SchemaRef,
        output: Output,
        positions: [usize; 2],
        left_width: usize,
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        key_fields: Vec<arrow_row::SortField>,
        filter: Option<Arc<dyn PhysicalExpr>>,
        nulls_match: bool,
        left_window: WindowRef,
        right_window: WindowRef,
    ) -> Result<WindowJoin> {
        Ok(WindowJoin {
            id,
            schema,
            pair_schema,
            output,
            positions,
            left_width,
            left_keys,
            right_keys,
            filter,
            nulls_match,
            left_window,
            right_window,
            key_rows: RowConverter::new(key_fields)?,
            buffers: BTreeMap::new(),
            seq: 0,
            pending_puts: Vec::new(),
            pending_deletes: Vec::new(),
            state_bytes: 0,
            window_watermark: None,
        })
    }

    /// Approximate bytes buffered.
    pub fn state_bytes(&self) -> usize {
        self.state_bytes
    }

    /// Window ends at or before this have been joined and emitted.
    pub fn window_watermark(&self) -> Option<Watermark> {
        self.window_watermark
    }

    /// Buffer rows of one side (`right` false for the left input).
    pub fn on_input(&mut self, rows: Rows, right: bool) -> Result<()> {
        let window = if right {
            self.right_window
        } else {
            self.left_window
        };
        let ends = window.ends(&rows.batch)?;
        let mut distinct: Vec<i64> = ends.clone();
        distinct.sort_unstable();
        distinct.dedup();
        for e in distinct {
            let part = if ends.iter().all(|&x| x == e) {
                rows.clone()
            } else {
                let mask = BooleanArray::from_iter(ends.iter().map(|&x| Some(x == e)));
                rows.filter(&mask)?
            };
            if self.window_watermark.is_some_and(|w| w.completes(e)) {
                return Err(EngineError::Bug(format!(
                    "a row for window ending {e} reached a join already past it"
                )));
            }
            let encoded = chunk::encode(&part)?;
            self.state_bytes += encoded.len();
            let key = self.chunk_key(e, right);
            let buf = self.buffers.entry(e).or_default();
            buf.bytes += encoded.len();
            buf.keys.push(key.clone());
            self.pending_puts.push((key, encoded));
            if right {
                buf.right.push(part);
            } else {
                buf.left.push(part);
            }
        }
        Ok(())
    }

    fn chunk_key(&mut self, end: i64, right: bool) -> Vec<u8> {
        let key = ChunkKey {
            end: Some(end),
            seq: self.seq,
            right,
        };
        self.seq += 1;
        key.encode(self.id, KIND_JOIN)
    }

    /// Both inputs' window watermarks: join and emit the windows they complete.
    pub fn on_watermark(
        &mut self,
        left: Option<Watermark>,
        right: Option<Watermark>,
    ) -> Result<Vec<Rows>> {
        let (Some(l), Some(r)) = (left, right) else {
            return Ok(Vec::new());
        };
        let wm = l.min(r);
        if self.window_watermark.is_some_and(|w| wm <= w) {
            return Ok(Vec::new());
        }
        self.window_watermark = Some(wm);
        let mut out = Vec::new();
        while let Some((&e, _)) = self.buffers.first_key_value() {
            if !wm.completes(e) {
                break;
            }
            let buf = self.buffers.remove(&e).expect("first key exists");
            self.state_bytes = self.state_bytes.saturating_sub(buf.bytes);
            self.pending_deletes.extend(buf.keys);
            out.extend(self.join(&buf.left, &buf.right)?);
        }
        Ok(out)
    }

    /// One window's output: its pairs, or its left rows that match or do not, and for an
    /// outer join its rows that match nothing, padded.
    fn join(&self, left: &[Rows], right: &[Rows]) -> Result<Vec<Rows>> {
        let left = (!left.is_empty())
            .then(|| chunk::concat(left))
            .transpose()?;
        let right = (!right.is_empty())
            .then(|| chunk::concat(right))
            .transpose()?;
        let (li, ri) = match (&left, &right) {
            (Some(left), Some(right)) => self.matches(left, right)?,
            _ => (
                UInt32Array::from(Vec::<u32>::new()),
                UInt32Array::from(Vec::<u32>::new()),
            ),
        };
        let mut out = Vec::new();
        match (self.output, &left) {
            (_, None) if self.output.only_side().is_some() => {}
            (Output::Semi(_), Some(left)) => {
                // Each left row once, in input order, however many right rows it matched.
                let mut once: Vec<u32> = li.values().to_vec();
                once.dedup();
                out.push(left.take(&UInt32Array::from(once))?);
            }
            (Output::Anti(_), Some(left)) => out.push(left.take(&unmatched(left, &li))?),
            (Output::Pairs(preserved), _) => {
                if let (Some(left), Some(right)) = (&left, &right)
                    && !li.is_empty()
                {
                    let batch = self.pairs(&left.batch, &right.batch, &li, &ri, &self.schema)?;
                    let left_origin = left.origin.as_ref().map(|o| o.take(&li)).transpose()?;
                    let right_origin = right.origin.as_ref().map(|o| o.take(&ri)).transpose()?;
                    out.push(Rows {
                        batch,
                        origin: match (left_origin, right_origin) {
                            (Some(l), Some(r)) => Some(Origin::join(l, r)),
                            (l, _) => l,
                        },
                        change: Change::Upsert(RowState::Final),
                    });
                }
                for (side, rows, hit) in [(0, &left, &li), (1, &right, &ri)] {
                    if let Some(rows) = rows
                        && preserved.side(side)
                    {
                        out.push(self.padded(&rows.take(&unmatched(rows, hit))?, side)?);
                    }
                }
            }
            (Output::Semi(_) | Output::Anti(_), None) => {}
        }
        out.retain(|r| r.batch.num_rows() > 0);
        Ok(out)
    }

    /// The pairs of `left` and `right` rows that match (keys equal, residual true), as row
    /// numbers into each.
    fn matches(&self, left: &Rows, right: &Rows) -> Result<(UInt32Array, UInt32Array)> {
        let left_keys = eval_keys(&self.left_keys, &left.batch)?;
        let right_keys = eval_keys(&self.right_keys, &right.batch)?;
        let matchable = |keys: &[ArrayRef]| {
            let valid = (!self.nulls_match).then(|| valid_keys(keys)).flatten();
            move |i: usize| valid.as_ref().is_none_or(|v| v.value(i))
        };
        let (left_valid, right_valid) = (matchable(&left_keys), matchable(&right_keys));
        let lk = self.key_rows.convert_columns(&left_keys)?;
        let rk = self.key_rows.convert_columns(&right_keys)?;
        let mut table: HashMap<&[u8], Vec<u32>> = HashMap::new();
        for j in (0..right.batch.num_rows()).filter(|&j| right_valid(j)) {
            table.entry(rk.row(j).data()).or_default().push(j as u32);
        }
        let (mut li, mut ri) = (Vec::new(), Vec::new());
        for i in (0..left.batch.num_rows()).filter(|&i| left_valid(i)) {
            if let Some(js) = table.get(lk.row(i).data()) {
                for &j in js {
                    li.push(i as u32);
                    ri.push(j);
                }
            }
        }
        let (mut li, mut ri) = (UInt32Array::from(li), UInt32Array::from(ri));
        if let Some(f) = &self.filter {
            let pairs = self.pairs(&left.batch, &right.batch, &li, &ri, &self.pair_schema)?;
            let mask = residual(f, &pairs)?;
            li = downcast(arrow_select::filter::filter(&li, &mask)?);
            ri = downcast(arrow_select::filter::filter(&ri, &mask)?);
        }
        Ok((li, ri))
    }

    /// `rows` of side `side` with NULLs for the other side's columns and positions.
    fn padded(&self, rows: &Rows, side: usize) -> Result<Rows> {
        let padding = Padding {
            schema: &self.schema,
            left_width: self.left_width,
            positions: self.positions,
        };
        padding.rows(rows, side, Change::Upsert(RowState::Final))
    }

    /// The joined pairs `(left[li[k]], right[ri[k]])` as one batch of `schema`.
    fn pairs(
        &self,
        left: &RecordBatch,
        right: &RecordBatch,
        li: &UInt32Array,
        ri: &UInt32Array,
        schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        let lt = arrow_select::take::take_record_batch(left, li)?;
        let rt = arrow_select::take::take_record_batch(right, ri)?;
        pair_batch(&lt, &rt, schema)
    }

    /// State changes since the last checkpoint.
    pub fn checkpoint(&mut self, puts: &mut Vec<(Vec<u8>, Vec<u8>)>, deletes: &mut Vec<Vec<u8>>) {
        super::flush_pending(
            &mut self.pending_puts,
            &mut self.pending_deletes,
            puts,
            deletes,
        );
    }

    /// Load this operator's buffered chunks from a checkpoint.
    pub fn restore(
        &mut self,
        entries: &[(Vec<u8>, Vec<u8>)],
        left: &SchemaRef,
        right: &SchemaRef,
    ) -> Result<()> {
        for (k, v) in entries {
            let key = ChunkKey::parse(k, KIND_JOIN, true)?;
            let (e, is_right) = (key.end.unwrap_or_default(), key.right);
            let rows = chunk::decode(v, if is_right { right } else { left })?;
            self.seq = self.seq.max(key.seq + 1);
            self.state_bytes += v.len();
            let buf = self.buffers.entry(e).or_default();
            buf.bytes += v.len();
            buf.keys.push(k.clone());
            if is_right {
                buf.right.push(rows);
            } else {
                buf.left.push(rows);
            }
        }
        Ok(())
    }
}

/// The rows of `rows` whose numbers are not in `hit`, in order.
fn unmatched(rows: &Rows, hit: &UInt32Array) -> UInt32Array {
    let mut matched = vec![false; rows.batch.num_rows()];
    for &i in hit.values() {
        matched[i as usize] = true;
    }
    UInt32Array::from_iter_values(
        (0..rows.batch.num_rows() as u32).filter(|&i| !matched[i as usize]),
    )
}

fn downcast<T: Array + Clone + 'static>(a: ArrayRef) -> T {
    a.as_any()
        .downcast_ref::<T>()
        .expect("a kernel keeps its input's type")
        .clone()
}
