//! The symmetric hash join: an inner equi-join of two append-only inputs (streams' rows
//! through filters and projections, or joins of such rows) on any keys, with any residual
//! condition (Nexmark q3, q13, q20).
//!
//! Each side keeps every row it has seen, indexed by its join key. A batch arriving on one
//! side is probed against the other side's rows and then added to its own, so every
//! matching pair is emitted exactly once, when the later of its two rows is read, whatever
//! order the inputs are read in. Result rows are final and carry both rows' input
//! positions, which key them: replaying a batch after a crash writes the same keys again.
//! Rows with a NULL key never match (SQL's `=`) and are not kept, unless the join compares
//! keys with `IS NOT DISTINCT FROM`.
//!
//! State: both sides' rows until the end of the streams, one checkpoint entry per input
//! batch (Arrow IPC), bounded by the view's `state_bytes_max`. Not done here: outer joins
//! (they need retractions), and freeing rows by an interval condition or a TTL.

use super::{chunk, eval_keys, pair_batch, residual, valid_keys};
use crate::Ctx;
use crate::error::{EngineError, Result};
use crate::rows::{Change, Origin, Rows};
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;
use freshet_store::RowState;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

const KIND_SYMMETRIC_JOIN: u8 = 6;

/// Bytes an index entry costs beyond its key, roughly (the entry and its position).
const INDEX_ENTRY_BYTES: usize = 48;

/// One input's rows and their index.
#[derive(Default)]
struct Side {
    /// Rows as they arrived, one entry per batch.
    chunks: Vec<Rows>,
    /// Join key (row format) → (chunk, row) of each row with that key.
    index: HashMap<Box<[u8]>, Vec<(u32, u32)>>,
}

/// The symmetric hash join operator.
pub struct SymmetricJoin {
    /// Operator id.
    pub id: u16,
    /// Output schema: left columns, then right columns.
    schema: SchemaRef,
    /// Equality keys on the left (0) and right (1) input.
    keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
    /// Residual predicate over the joined row.
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// Whether NULL keys match each other (`IS NOT DISTINCT FROM`).
    nulls_match: bool,
    key_rows: RowConverter,
    sides: [Side; 2],
    seq: u64,
    pending_puts: Vec<(Vec<u8>, Vec<u8>)>,
    state_bytes: usize,
}

impl SymmetricJoin {
    /// A new operator.
    pub fn new(
        id: u16,
        schema: SchemaRef,
        keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
        key_fields: Vec<SortField>,
        filter: Option<Arc<dyn PhysicalExpr>>,
        nulls_match: bool,
    ) -> Result<SymmetricJoin> {
        Ok(SymmetricJoin {
            id,
            schema,
            keys,
            filter,
            nulls_match,
            key_rows: RowConverter::new(key_fields)?,
            sides: [Side::default(), Side::default()],
            seq: 0,
            pending_puts: Vec::new(),
            state_bytes: 0,
        })
    }

    /// Approximate bytes kept.
    pub fn state_bytes(&self) -> usize {
        self.state_bytes
    }

    /// Rows of one side (`right` false for the left input): the pairs they make with the
    /// other side's rows so far; then they are kept for the other side's later rows.
    pub fn on_input(&mut self, rows: Rows, right: bool, ctx: &Ctx) -> Result<Vec<Rows>> {
        if rows.change != Change::Upsert(RowState::Final) {
            return Err(EngineError::Bug(
                "a symmetric join was given rows that change".into(),
            ));
        }
        let (me, other) = (usize::from(right), usize::from(!right));
        let (rows, key_columns) = self.matchable(rows, me)?;
        if rows.batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let keys = self.key_rows.convert_columns(&key_columns)?;
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        for i in 0..rows.batch.num_rows() {
            if let Some(hits) = self.sides[other].index.get(keys.row(i).as_ref()) {
                for &(c, r) in hits {
                    mine.push(i as u32);
                    theirs.push((c as usize, r as usize));
                }
            }
        }
        let out = if mine.is_empty() {
            Vec::new()
        } else {
            self.pairs(&rows, &UInt32Array::from(mine), &theirs, right)?
        };

        let encoded = chunk::encode(&rows)?;
        let bytes = encoded.len();
        let state_key = self.chunk_key(right);
        self.pending_puts.push((state_key, encoded));
        self.keep(compact(&rows)?, &keys, bytes, right)?;
        ctx.check_state(self.state_bytes)?;
        Ok(out)
    }

    /// `rows` of side `me` without those whose key can match nothing (a NULL key, unless
    /// NULLs match), and their join keys.
    fn matchable(&self, rows: Rows, me: usize) -> Result<(Rows, Vec<ArrayRef>)> {
        let keys = eval_keys(&self.keys[me], &rows.batch)?;
        match (!self.nulls_match).then(|| valid_keys(&keys)).flatten() {
            Some(valid) => {
                let keys = keys
                    .iter()
                    .map(|k| Ok(arrow_select::filter::filter(k, &valid)?))
                    .collect::<Result<Vec<_>>>()?;
                Ok((rows.filter(&valid)?, keys))
            }
            None => Ok((rows, keys)),
        }
    }

    /// The joined rows of `rows[mine[k]]` with the other side's row `theirs[k]`, that pass
    /// the residual condition.
    fn pairs(
        &self,
        rows: &Rows,
        mine: &UInt32Array,
        theirs: &[(usize, usize)],
        right: bool,
    ) -> Result<Vec<Rows>> {
        let other = &self.sides[usize::from(!right)];
        let this = rows.take(mine)?;
        // Gather from the chunks the matches touch only, not from every chunk kept.
        let mut touched: HashMap<usize, usize> = HashMap::new();
        let mut chunks: Vec<&Rows> = Vec::new();
        let at: Vec<(usize, usize)> = theirs
            .iter()
            .map(|&(c, r)| {
                let local = *touched.entry(c).or_insert_with(|| {
                    chunks.push(&other.chunks[c]);
                    chunks.len() - 1
                });
                (local, r)
            })
            .collect();
        let batches: Vec<&RecordBatch> = chunks.iter().map(|c| &c.batch).collect();
        let that_batch = arrow_select::interleave::interleave_record_batch(&batches, &at)?;
        let that_origin = interleave_origins(&chunks, &at)?;
        let (left, right_rows) = if right {
            ((that_batch, that_origin), (this.batch, this.origin))
        } else {
            ((this.batch, this.origin), (that_batch, that_origin))
        };
        let batch = pair_batch(&left.0, &right_rows.0, &self.schema)?;
        let origin = match (left.1, right_rows.1) {
            (Some(l), Some(r)) => Origin::join(l, r),
            _ => {
                return Err(EngineError::Bug(
                    "a symmetric join's input lost its positions".into(),
                ));
            }
        };
        let joined = Rows {
            batch,
            origin: Some(origin),
            change: Change::Upsert(RowState::Final),
        };
        let joined = match &self.filter {
            Some(f) => joined.filter(&residual(f, &joined.batch)?)?,
            None => joined,
        };
        Ok(if joined.batch.num_rows() == 0 {
            Vec::new()
        } else {
            vec![joined]
        })
    }

    fn chunk_key(&mut self, right: bool) -> Vec<u8> {
        let mut k = self.id.to_be_bytes().to_vec();
        k.push(KIND_SYMMETRIC_JOIN);
        k.extend_from_slice(&self.seq.to_be_bytes());
        k.push(u8::from(right));
        self.seq += 1;
        k
    }

    /// State changes since the last checkpoint (rows are only ever added).
    pub fn checkpoint(&mut self, puts: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        puts.append(&mut self.pending_puts);
    }

    /// Load both sides' rows from a checkpoint, in the order they arrived.
    pub fn restore(
        &mut self,
        entries: &[(Vec<u8>, Vec<u8>)],
        left: &SchemaRef,
        right: &SchemaRef,
    ) -> Result<()> {
        // Entries come ordered by key bytes: by sequence number, as they arrived.
        for (k, v) in entries {
            if k.len() != 2 + 1 + 8 + 1 || k[2] != KIND_SYMMETRIC_JOIN {
                return Err(EngineError::Bug(
                    "a malformed symmetric join checkpoint key".into(),
                ));
            }
            let seq = u64::from_be_bytes(k[3..11].try_into().expect("8 bytes"));
            let is_right = k[11] == 1;
            let rows = chunk::decode(v, if is_right { right } else { left })?;
            self.seq = self.seq.max(seq + 1);
            let keys = self
                .key_rows
                .convert_columns(&eval_keys(&self.keys[usize::from(is_right)], &rows.batch)?)?;
            self.keep(rows, &keys, v.len(), is_right)?;
        }
        Ok(())
    }

    /// Keeps rows of one side, whose join keys are `keys` and whose checkpoint entry is
    /// `bytes` long (what they count against the state cap), for the other side's later rows.
    fn keep(
        &mut self,
        rows: Rows,
        keys: &arrow_row::Rows,
        bytes: usize,
        right: bool,
    ) -> Result<()> {
        let side = &mut self.sides[usize::from(right)];
        let chunk_no = u32::try_from(side.chunks.len())
            .map_err(|_| EngineError::Bug("a join side holds over 2^32 batches".into()))?;
        for i in 0..rows.batch.num_rows() {
            let key = keys.row(i);
            let entry = side.index.entry(key.as_ref().into());
            if let Entry::Vacant(_) = entry {
                self.state_bytes += key.as_ref().len();
            }
            entry.or_default().push((chunk_no, i as u32));
        }
        self.state_bytes += bytes + rows.batch.num_rows() * INDEX_ENTRY_BYTES;
        side.chunks.push(rows);
        Ok(())
    }
}

/// `rows` in buffers of their own: rows read from the log are slices of a whole frame's
/// buffers (every column, every row), which kept rows must not hold on to.
fn compact(rows: &Rows) -> Result<Rows> {
    rows.take(&UInt32Array::from_iter_values(
        0..rows.batch.num_rows() as u32,
    ))
}

/// The positions of `chunks`' rows at `at` ((chunk, row) pairs).
fn interleave_origins(chunks: &[&Rows], at: &[(usize, usize)]) -> Result<Option<Origin>> {
    let columns: Option<Vec<Vec<ArrayRef>>> = chunks
        .iter()
        .map(|c| c.origin.as_ref().map(Origin::columns))
        .collect();
    let Some(columns) = columns else {
        return Ok(None);
    };
    let width = columns.first().map_or(0, Vec::len);
    let picked = (0..width)
        .map(|k| {
            let arrays: Vec<&dyn Array> = columns.iter().map(|c| c[k].as_ref()).collect();
            Ok(arrow_select::interleave::interleave(&arrays, at)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Origin::from_columns(&picked).map(Some)
}
