//! The symmetric hash join: an inner, outer, semi or anti equi-join of two inputs
//! (streams' rows through filters and projections, joins of such rows, or rows that
//! change) on any keys, with any residual condition (Nexmark q3, q13, q20).
//!
//! Each side keeps every row it has seen, indexed by its join key. A batch arriving on one
//! side is probed against the other side's rows and then added to its own, so every
//! matching pair is emitted exactly once, when the later of its two rows is read, whatever
//! order the inputs are read in, in slices of at most [`PROBE_PAIRS`] candidates (a join
//! without an equal key gives all rows one key, so every kept row is a candidate). Result
//! rows are final and carry both rows' input
//! positions, which key them: replaying a batch after a crash writes the same keys again.
//! Rows with a NULL key never match (SQL's `=`) and are not kept, unless the join compares
//! keys with `IS NOT DISTINCT FROM`.
//!
//! Outer joins (`LEFT`, `RIGHT`, `FULL`) retract: a row of a preserved side that matches
//! nothing yet is emitted at once with NULLs for the other side, provisional, keyed by its
//! positions and NULL positions for the other side; when its first match arrives (a pair
//! that passes the residual condition), that row is deleted in the same output as the
//! pairs. So the join's output is updating, and its results converge on the batch join's.
//! A preserved row with a NULL key can never match and is emitted final at once; at the
//! end of the streams every row still unmatched is written again, final.
//!
//! Semi and anti joins (`EXISTS`, `IN`, `NOT EXISTS`) use the same matched flags on the
//! side they output: a semi join writes a row once, final, at its first match; an anti
//! join writes it provisional while it matches nothing and deletes it at its first match.
//!
//! Which kept rows have matched is worked out again on restore by joining the rows kept;
//! a join that frees rows (below) also checkpoints the flags that changed, since a row's
//! partner may be gone.
//!
//! An input may also be an aggregate's final rows (closed windows), which have no log
//! positions: each such row is identified by a 128-bit hash of its GROUP BY columns, kept
//! in the position columns that key the results (Nexmark q7).
//!
//! An input's rows may change after they are written (an unbounded GROUP BY's, identified
//! by a hash of their group key; ranked rows; an outer join's): such a side keeps each
//! row's latest version, found by its identity. A new version or a deletion first takes
//! back what the old one made — deletions of its pairs (probed again with its key and the
//! residual condition) and of its own padded, anti or semi row; the other side's rows
//! whose last match it was come back padded (or leave a semi join) — then the old version
//! dies: out of the index and the identities, a dead flag in its batch (checkpointed with
//! the batch's state, so that restore skips it), the batch freed once all its rows died
//! or rewritten with its live ones once most did. Pairs are final only where both rows
//! are. Such a join is not bounded in time.
//!
//! State: both sides' rows, one checkpoint entry per input batch (Arrow IPC), bounded by
//! the view's `state_bytes_max`; until the end of the streams, unless the condition bounds
//! the pairs' times (`a.t BETWEEN b.t - INTERVAL ... AND b.t`, [`super::interval`]): then
//! the join frees a batch of one side once the other side's watermark shows none of its
//! rows can match again (an outer or anti join's rows in it that matched nothing are then
//! written again, final), and sets aside as late a stream's row whose time is behind the
//! watermark that freed the other side's rows. A view's `state_ttl` forgets an appended
//! side's batches once the streams' watermark is the TTL past the one they arrived at
//! ([`SymmetricJoin::on_clock`]).

use super::chunk::ChunkKey;
use super::interval::IntervalBounds;
use super::{Padding, chunk, eval_keys, pair_batch, residual, rows_batch, valid_keys};
use crate::Ctx;
use crate::error::{EngineError, Result};
use crate::rows::{Change, Origin, Rows, not_true};
use crate::source::times_ms;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use freshet_store::{LateEvent, RowState};
use freshet_types::Watermark;
use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::sync::Arc;

const KIND_SYMMETRIC_JOIN: u8 = 6;
/// Checkpoint key kind of the times below which each side's rows are late.
const KIND_LATE_BELOW: u8 = 7;
/// Checkpoint key kind of a kept batch's matched flags (a join that frees rows).
const KIND_MATCHED: u8 = 8;
/// Checkpoint key kind of a kept batch of a side whose rows change: its rows' state and
/// which of them a later version replaced.
const KIND_LIVE: u8 = 9;
/// Checkpoint key kind of the streams' watermark a kept batch arrived at (`state_ttl`).
const KIND_STAMP: u8 = 10;
/// Checkpoint key kind of the streams' watermark the join last saw (`state_ttl`).
const KIND_CLOCK: u8 = 11;

/// Pairs built at a time when restore works out which kept rows have matched.
const RESTORE_PAIRS: usize = 8_192;

/// Bytes an index entry costs beyond its key, roughly (the entry and its position).
const INDEX_ENTRY_BYTES: usize = 48;

/// The rows of one input batch, kept.
struct Chunk {
    rows: Rows,
    /// For a side whose matches are tracked ([`Output::tracks`]): per row, whether it has
    /// made a pair.
    matched: Vec<bool>,
    /// Its checkpoint entry's key.
    state_key: Vec<u8>,
    /// Its sequence number among the operator's chunks (in its checkpoint keys).
    seq: u64,
    /// Whether its unmatched rows were written final at the end of the streams.
    finalized: bool,
    /// Whether its matched flags have a checkpoint entry.
    flags_stored: bool,
    /// What it counts against the state cap.
    bytes: usize,
    /// Its rows' latest time in the interval condition's column, in milliseconds (`None`
    /// when the join has no interval or every time is NULL).
    latest: Option<i64>,
    /// Under `state_ttl`: the first streams' watermark (ms, their least) the join saw
    /// after it was kept.
    stamp: Option<i64>,
    /// Whether its rows were provisional (a side whose rows change; else always false).
    provisional: bool,
    /// For a side whose rows change: per row, whether a later version (or a deletion)
    /// replaced it. A dead row is in neither the index nor the identities.
    dead: Vec<bool>,
    /// How many of its rows are not dead.
    live: usize,
    /// Whether it has a [`KIND_LIVE`] checkpoint entry.
    live_stored: bool,
}

impl Chunk {
    /// Its rows that are not dead.
    fn live_rows(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.rows.batch.num_rows()).filter(|&r| !self.dead.get(r).copied().unwrap_or(false))
    }
}

/// One input's rows and their index.
#[derive(Default)]
struct Side {
    /// Kept chunks as they arrived, with their numbers. Numbers wrap around: those from
    /// the oldest kept chunk to the newest, far fewer than 2^32, must differ; along the
    /// queue they increase from the oldest's (wrapping), so a number is found by binary
    /// search. A freed chunk leaves no slot behind.
    chunks: VecDeque<(u32, Chunk)>,
    /// The number the next chunk kept gets.
    next_no: u32,
    /// Join key (row format) → (chunk, row) of each row with that key.
    index: HashMap<Box<[u8]>, Vec<(u32, u32)>>,
    /// Chunks whose matched flags changed since the last checkpoint (a join that frees
    /// rows checkpoints them).
    dirty: Vec<u32>,
    /// For a side whose rows change: each live row's identity (its positions,
    /// [`Origin::identities`]) → its (chunk, row).
    ids: HashMap<Box<[u8]>, (u32, u32)>,
    /// Chunks kept or with rows that died since the last checkpoint (a side whose rows
    /// change checkpoints their [`KIND_LIVE`] entry).
    dirty_live: Vec<u32>,
}

impl Side {
    /// Where chunk number `c` is in `chunks`, if it is kept.
    fn position(&self, c: u32) -> Option<usize> {
        let base = self.chunks.front()?.0;
        self.chunks
            .binary_search_by_key(&c.wrapping_sub(base), |(n, _)| n.wrapping_sub(base))
            .ok()
    }

    /// Kept chunk number `c`.
    fn chunk(&self, c: u32) -> Result<&Chunk> {
        self.position(c)
            .map(|i| &self.chunks[i].1)
            .ok_or_else(|| freed_chunk(c))
    }

    fn chunk_mut(&mut self, c: u32) -> Result<&mut Chunk> {
        match self.position(c) {
            Some(i) => Ok(&mut self.chunks[i].1),
            None => Err(freed_chunk(c)),
        }
    }

    /// Takes chunk number `c` out of the queue (the numbers along it still increase).
    fn take(&mut self, c: u32) -> Result<Chunk> {
        let i = self.position(c).ok_or_else(|| freed_chunk(c))?;
        Ok(self.chunks.remove(i).expect("a position in the queue").1)
    }

    /// The kept chunks and their numbers, in order.
    fn kept(&self) -> impl Iterator<Item = (u32, &Chunk)> {
        self.chunks.iter().map(|(n, c)| (*n, c))
    }

    /// Keeps `chunk` as the newest; returns its number.
    fn push(&mut self, chunk: Chunk) -> Result<u32> {
        let n = self.next_no;
        if self
            .chunks
            .front()
            .is_some_and(|(oldest, _)| n.wrapping_sub(*oldest) == u32::MAX)
        {
            return Err(EngineError::Bug(
                "a join side holds 2^32 batches from its oldest kept one to its newest".into(),
            ));
        }
        self.next_no = n.wrapping_add(1);
        self.chunks.push_back((n, chunk));
        Ok(n)
    }
}

fn freed_chunk(c: u32) -> EngineError {
    EngineError::Bug(format!("a join's index names freed chunk {c}"))
}

/// The time bounds of a join's condition, with where each side's times come from.
#[derive(Debug, Clone)]
pub struct Interval {
    /// The bounds on `l.t - r.t` and the columns compared.
    pub bounds: IntervalBounds,
    /// Per side, the stream whose event time its column is, when the rows come straight
    /// from it (through filters and projections): its rows behind the watermark reach the
    /// join, which sets them aside as late once the other side's rows they could match
    /// are freed. `None` for windows' bounds, whose late rows never leave their operator.
    pub late_from: [Option<String>; 2],
}

/// How the rows of an aggregate's (which have no log positions) are identified: a hash
/// of the columns that key them.
pub struct Identity {
    /// The columns (the aggregate's GROUP BY columns the input passes on).
    columns: Vec<usize>,
    rows: RowConverter,
}

impl Identity {
    /// Rows identified by `columns` of types `fields`.
    pub fn new(columns: Vec<usize>, fields: Vec<SortField>) -> Result<Identity> {
        Ok(Identity {
            columns,
            rows: RowConverter::new(fields)?,
        })
    }

    /// `batch`'s rows' identities, as positions: a hash of their key columns
    /// ([`Origin::hashed`]).
    fn origin(&self, batch: &RecordBatch) -> Result<Origin> {
        let columns: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|&c| batch.column(c).clone())
            .collect();
        let keys = self.rows.convert_columns(&columns)?;
        Ok(Origin::hashed(keys.iter().map(|k| k.data())))
    }
}

/// Which sides an outer join preserves: every row of such a side is in the output, with
/// NULLs for the other side while it matches nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preserved {
    /// `LEFT` or `FULL`.
    pub left: bool,
    /// `RIGHT` or `FULL`.
    pub right: bool,
}

impl Preserved {
    /// An inner join's: none.
    pub const INNER: Preserved = Preserved {
        left: false,
        right: false,
    };

    /// A left outer join's.
    pub const LEFT: Preserved = Preserved {
        left: true,
        right: false,
    };

    /// A right outer join's.
    pub const RIGHT: Preserved = Preserved {
        left: false,
        right: true,
    };

    /// A full outer join's.
    pub const FULL: Preserved = Preserved {
        left: true,
        right: true,
    };

    /// Whether side `side` (0 left, 1 right) is preserved.
    pub fn side(self, side: usize) -> bool {
        [self.left, self.right][side]
    }

    /// `inner`, `left outer`, `right outer` or `full outer`.
    pub fn name(self) -> &'static str {
        match (self.left, self.right) {
            (false, false) => "inner",
            (true, false) => "left outer",
            (false, true) => "right outer",
            (true, true) => "full outer",
        }
    }
}

/// What a symmetric join outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The joined pairs, and for an outer join the preserved sides' rows that match
    /// nothing yet, padded with NULLs (provisional; deleted at their first match).
    Pairs(Preserved),
    /// Each row of this side once, final, when it first matches (`EXISTS`, `IN`).
    Semi(usize),
    /// Each row of this side while it matches nothing (`NOT EXISTS`, `NOT IN` over
    /// values that cannot be NULL): provisional, deleted at its first match.
    Anti(usize),
}

impl Output {
    /// Whether the matches of side `side`'s rows are tracked (for padded rows to delete,
    /// semi rows to write once, anti rows to delete).
    fn tracks(self, side: usize) -> bool {
        match self {
            Output::Pairs(p) => p.side(side),
            Output::Semi(s) | Output::Anti(s) => s == side,
        }
    }

    /// The side whose rows alone are the output (semi and anti joins).
    pub fn only_side(self) -> Option<usize> {
        match self {
            Output::Pairs(_) => None,
            Output::Semi(s) | Output::Anti(s) => Some(s),
        }
    }

    /// Whether output rows change after they are written.
    pub fn updates(self) -> bool {
        match self {
            Output::Pairs(p) => p != Preserved::INNER,
            Output::Semi(_) => false,
            Output::Anti(_) => true,
        }
    }

    /// Whether output rows may hold NULL positions (an outer join's padded rows).
    pub fn pads(self) -> bool {
        matches!(self, Output::Pairs(p) if p != Preserved::INNER)
    }

    /// For `DESCRIBE VIEW`.
    pub fn name(self) -> &'static str {
        match self {
            Output::Pairs(p) => p.name(),
            Output::Semi(0) => "left semi",
            Output::Semi(_) => "right semi",
            Output::Anti(0) => "left anti",
            Output::Anti(_) => "right anti",
        }
    }
}

/// The pairs of one batch with the other side's rows that pass the residual condition.
struct Probe {
    /// Row of the batch of each pair.
    mine: Vec<u32>,
    /// (chunk, row) of the other side of each pair.
    theirs: Vec<(usize, usize)>,
    /// The pairs, as output rows (final ones and provisional ones apart).
    pairs: Vec<Rows>,
}

/// The most candidate pairs a probe builds at once: a key shared by many rows (a join
/// with a one-row side, whose key is a constant) is probed in slices of this many.
const PROBE_PAIRS: usize = 65_536;

/// Rows to keep on one side, with what is known of them.
struct Keeping<'a> {
    rows: Rows,
    /// Their join keys.
    keys: &'a arrow_row::Rows,
    /// Which of them are indexed, if not all ([`SymmetricJoin::indexed`]).
    indexed: Option<BooleanArray>,
    /// Per row, whether it has matched (empty unless the side is tracked).
    matched: Vec<bool>,
    /// Whether they are provisional.
    provisional: bool,
    /// Per row, whether it is dead (restored; empty: none is).
    dead: Vec<bool>,
}

/// The symmetric hash join operator.
pub struct SymmetricJoin {
    /// Operator id.
    pub id: u16,
    /// Output schema: left columns, then right columns (one side's for semi and anti).
    schema: SchemaRef,
    /// Left columns, then right columns: the rows the residual condition reads.
    pair_schema: SchemaRef,
    /// Equality keys on the left (0) and right (1) input.
    keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
    /// Residual predicate over the joined row.
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// Whether NULL keys match each other (`IS NOT DISTINCT FROM`).
    nulls_match: bool,
    output: Output,
    /// Columns of the left input (the pairs' first columns).
    left_width: usize,
    /// Input positions per row of each side (NULL ones pad a preserved row).
    positions: [usize; 2],
    key_rows: RowConverter,
    sides: [Side; 2],
    /// The condition's time bounds, when they free rows.
    interval: Option<Interval>,
    /// Per side, how its rows are identified when they have no log positions.
    identity: [Option<Identity>; 2],
    /// Per side, whether its rows change after they are written (an unbounded GROUP BY's,
    /// ranked rows, an outer join's): each row's latest version is kept, found by its
    /// identity, and a new version or a deletion takes back what the old one made.
    changes: [bool; 2],
    /// Per side whose rows change: its rows' values in row format, to leave alone a
    /// version written again unchanged.
    values: [Option<RowConverter>; 2],
    /// Whether the streams have ended: rows shown from then on are final.
    ended: bool,
    /// Per side, the time (ms) below which its rows are late: the floor its watermark had
    /// when the other side's rows were last freed.
    late_below: [Option<i64>; 2],
    /// Whether `late_below` moved since the last checkpoint.
    late_below_moved: bool,
    /// `state_ttl` in milliseconds: an appended side's rows are forgotten once the
    /// streams' watermark is this far past the one they arrived at.
    ttl_ms: Option<i64>,
    /// The least of the streams' watermarks (ms) last seen, under `state_ttl`.
    clock: Option<i64>,
    /// Whether `clock` moved since the last checkpoint.
    clock_moved: bool,
    seq: u64,
    pending_puts: Vec<(Vec<u8>, Vec<u8>)>,
    pending_deletes: Vec<Vec<u8>>,
    state_bytes: usize,
}

impl SymmetricJoin {
    /// A new operator. `positions` are how many input positions each side's rows carry;
    /// the left input's columns are the first of `pair_schema`'s.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u16,
        schema: SchemaRef,
        pair_schema: SchemaRef,
        left_width: usize,
        keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
        key_fields: Vec<SortField>,
        filter: Option<Arc<dyn PhysicalExpr>>,
        nulls_match: bool,
        output: Output,
        positions: [usize; 2],
    ) -> Result<SymmetricJoin> {
        Ok(SymmetricJoin {
            id,
            schema,
            pair_schema,
            keys,
            filter,
            nulls_match,
            output,
            left_width,
            positions,
            key_rows: RowConverter::new(key_fields)?,
            sides: [Side::default(), Side::default()],
            interval: None,
            identity: [None, None],
            changes: [false, false],
            values: [None, None],
            ended: false,
            late_below: [None, None],
            late_below_moved: false,
            ttl_ms: None,
            clock: None,
            clock_moved: false,
            seq: 0,
            pending_puts: Vec::new(),
            pending_deletes: Vec::new(),
            state_bytes: 0,
        })
    }

    /// The join frees rows by its condition's time bounds (unless its rows change).
    pub fn bounded_by(mut self, interval: Interval) -> SymmetricJoin {
        if !self.reads_changes() {
            self.interval = Some(interval);
        }
        self
    }

    /// Side `side`'s rows are an aggregate's, identified by `identity`.
    pub fn identified(mut self, side: usize, identity: Identity) -> SymmetricJoin {
        self.identity[side] = Some(identity);
        self
    }

    /// Whether side `side`'s rows are identified by a hash of their key (an aggregate's).
    pub fn identifies(&self, side: usize) -> bool {
        self.identity[side].is_some()
    }

    /// Side `side`'s rows change after they are written. (Such a join is not bounded in
    /// time, [`SymmetricJoin::bounded_by`]: a row's later version may come at any time.)
    pub fn changing(mut self, side: usize) -> SymmetricJoin {
        self.changes[side] = true;
        let (left, right) = self.pair_schema.fields().split_at(self.left_width);
        let fields = [left, right][side]
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        // Without a row format for its values, every version is taken back and joined.
        self.values[side] = RowConverter::new(fields).ok();
        self
    }

    /// Which sides' rows change, for `DESCRIBE VIEW`: `, taking back what the right
    /// side's changed rows made`, or nothing.
    pub fn changing_sides(&self) -> &'static str {
        match self.changes {
            [true, true] => ", taking back what both sides' changed rows made",
            [true, false] => ", taking back what the left side's changed rows made",
            [false, true] => ", taking back what the right side's changed rows made",
            [false, false] => "",
        }
    }

    /// Rows of a side whose rows are appended and that its condition does not free are
    /// forgotten `ttl_ms` after they arrive (by the streams' watermark).
    pub fn forgetting(mut self, ttl_ms: i64) -> SymmetricJoin {
        self.ttl_ms = Some(ttl_ms);
        self
    }

    /// Which sides `state_ttl` frees: those whose rows are appended and that the
    /// condition's time bounds do not free. (A changing side's row must stay to take back
    /// what it made when its next version comes.)
    pub fn forgets(&self) -> [bool; 2] {
        let frees = self.frees();
        // Nor a side whose partner changes: a forgotten row's pairs could not be taken
        // back when the partner's next version comes.
        [0, 1]
            .map(|s| self.ttl_ms.is_some() && !self.changes[s] && !self.changes[1 - s] && !frees[s])
    }

    /// Which sides' rows go before the end of the streams (the interval frees them or
    /// state_ttl forgets them): where they do, the matched flags of the other side's rows
    /// are checkpointed, since restore cannot work them out from rows that went.
    pub fn lets_go(&self) -> [bool; 2] {
        let (frees, forgets) = (self.frees(), self.forgets());
        [frees[0] || forgets[0], frees[1] || forgets[1]]
    }

    /// What `state_ttl` forgets, for `DESCRIBE VIEW`: `, forgetting the left side's rows
    /// 3600000 ms after they arrive`, or nothing.
    pub fn ttl_note(&self) -> String {
        let (Some(ttl), forgets) = (self.ttl_ms, self.forgets()) else {
            return String::new();
        };
        let which = match forgets {
            [true, true] => "both sides'",
            [true, false] => "the left side's",
            [false, true] => "the right side's",
            [false, false] => return String::new(),
        };
        format!(", forgetting {which} rows {ttl} ms after they arrive (state_ttl)")
    }

    /// Whether either side's rows change after they are written.
    pub fn reads_changes(&self) -> bool {
        self.changes.contains(&true)
    }

    /// Whether the join's rows change after they are written: an outer or anti join's,
    /// or any join's whose input rows change.
    pub fn updates(&self) -> bool {
        self.output.updates() || self.reads_changes()
    }

    /// The timestamp column of each side whose watermark frees the other side's rows.
    pub fn time_columns(&self) -> Option<[usize; 2]> {
        self.interval.as_ref().map(|i| i.bounds.columns)
    }

    /// The time bounds that free rows, for `DESCRIBE VIEW`: `, freed by time: left.t -
    /// right.t >= -10000 ms, <= 0 ms`, or nothing.
    pub fn time_bounds(&self) -> String {
        let Some(i) = &self.interval else {
            return String::new();
        };
        let [l, r] = i.bounds.columns;
        let mut parts = Vec::new();
        if let Some(lo) = i.bounds.lo {
            parts.push(format!(">= {lo} ms"));
        }
        if let Some(hi) = i.bounds.hi {
            parts.push(format!("<= {hi} ms"));
        }
        let (left, right) = self.pair_schema.fields().split_at(self.left_width);
        format!(
            ", freed by time: left.{} - right.{} {}",
            left[l].name(),
            right[r].name(),
            parts.join(", ")
        )
    }

    /// Which sides' rows the condition's time bounds free (left, right).
    pub fn frees(&self) -> [bool; 2] {
        self.interval.as_ref().map_or([false, false], |i| {
            [i.bounds.lo.is_some(), i.bounds.hi.is_some()]
        })
    }

    /// Approximate bytes kept.
    pub fn state_bytes(&self) -> usize {
        self.state_bytes
    }

    /// The equality keys over the left and the right input.
    pub fn keys(&self) -> [&[Arc<dyn PhysicalExpr>]; 2] {
        [&self.keys[0], &self.keys[1]]
    }

    /// What the join writes.
    pub fn output(&self) -> Output {
        self.output
    }

    /// Rows of one side (`right` false for the left input): the pairs they make with the
    /// other side's rows so far; then they are kept for the other side's later rows. For
    /// an outer join also: deletions of the other side's padded rows that now match, and
    /// these rows padded where they match nothing; for a semi or anti join, its side's
    /// rows as their matches come and go instead of pairs. On a side whose rows change,
    /// a row's earlier version (found by its identity) is taken back first
    /// ([`SymmetricJoin::retract`]); a deletion only takes back.
    pub fn on_input(&mut self, mut rows: Rows, right: bool, ctx: &mut Ctx) -> Result<Vec<Rows>> {
        let (me, other) = (usize::from(right), usize::from(!right));
        if !self.changes[me] && rows.change != Change::Upsert(RowState::Final) {
            return Err(EngineError::Bug(
                "a symmetric join was given rows that change".into(),
            ));
        }
        if rows.origin.is_none()
            && let Some(identity) = &self.identity[me]
        {
            rows.origin = Some(identity.origin(&rows.batch)?);
        }
        self.ended = ctx.end_of_stream;
        let mut out = Vec::new();
        let rows = if self.changes[me] {
            let (rows, ids) = self.changed_versions(rows, me)?;
            out.extend(self.retract(&ids, me)?);
            rows
        } else {
            self.in_time(rows, me, ctx)?
        };
        let Change::Upsert(state) = rows.change else {
            out.retain(|r| r.batch.num_rows() > 0);
            return Ok(out);
        };
        let (rows, key_columns, lone) = self.matchable(rows, me)?;
        if let Some(lone) = lone
            && matches!(self.output, Output::Pairs(_) | Output::Anti(_))
            && self.output.tracks(me)
        {
            // A NULL key matches nothing, ever: written final at once.
            out.push(self.shaped(&lone, me, Change::Upsert(RowState::Final))?);
        }
        if rows.batch.num_rows() == 0 {
            return Ok(out);
        }
        let indexed = self.indexed(me, &key_columns);
        let keys = self.key_rows.convert_columns(&key_columns)?;
        let probe = self.probe(&rows, &keys, me)?;
        let mut matched = vec![false; rows.batch.num_rows()];
        let mut newly = Vec::new();
        for (k, &m) in probe.mine.iter().enumerate() {
            matched[m as usize] = true;
            if self.output.tracks(other) {
                let (c, r) = probe.theirs[k];
                let flag = &mut self.sides[other].chunk_mut(c as u32)?.matched[r];
                if !*flag {
                    *flag = true;
                    newly.push((c, r));
                    if self.lets_go()[me] {
                        self.sides[other].dirty.push(c as u32);
                    }
                }
            }
        }
        let appears = Change::Upsert(self.semi_state());
        let unmatched = Change::Upsert(self.unmatched_state());
        if !newly.is_empty() {
            // Their first match: a padded or anti row goes, a semi row comes.
            let theirs = self.gather(other, &newly)?;
            let change = match self.output {
                Output::Semi(_) => appears,
                _ => Change::Delete,
            };
            out.push(self.shaped(&theirs, other, change)?);
        }
        if let Output::Pairs(_) = self.output {
            out.extend(probe.pairs);
        }
        if self.output.tracks(me) {
            // Semi: the rows that match; padded and anti: those that do not (yet).
            let (wanted, change) = match self.output {
                Output::Semi(_) => (true, appears),
                _ => (false, unmatched),
            };
            let picked: Vec<u32> = (0..rows.batch.num_rows() as u32)
                .filter(|&i| matched[i as usize] == wanted)
                .collect();
            if !picked.is_empty() {
                let picked = rows.take(&UInt32Array::from(picked))?;
                out.push(self.shaped(&picked, me, change)?);
            }
        }
        let matched = if self.output.tracks(me) {
            matched
        } else {
            Vec::new()
        };
        self.store(
            Keeping {
                rows: compact(&rows)?,
                keys: &keys,
                indexed,
                matched,
                provisional: state == RowState::Provisional,
                dead: Vec::new(),
            },
            me,
        )?;
        ctx.check_state(self.state_bytes)?;
        out.retain(|r| r.batch.num_rows() > 0);
        Ok(out)
    }

    /// The state of a semi join's row when it appears: final, unless a row's match may go
    /// (the join's rows change) and take it back before the end of the streams.
    fn semi_state(&self) -> RowState {
        if self.reads_changes() && !self.ended {
            RowState::Provisional
        } else {
            RowState::Final
        }
    }

    /// The state of a padded or anti row, written while it matches nothing: provisional
    /// until the end of the streams.
    fn unmatched_state(&self) -> RowState {
        if self.ended {
            RowState::Final
        } else {
            RowState::Provisional
        }
    }

    /// Of `rows` of side `me` (whose rows change), the last of those that share an
    /// identity (a later row is a later version), less those whose kept version is the
    /// same (values and state): there is nothing to take back or join again. Returns them
    /// with their identities.
    fn changed_versions(&self, rows: Rows, me: usize) -> Result<(Rows, Vec<Vec<u8>>)> {
        let origin = rows.origin.as_ref().ok_or_else(|| {
            EngineError::Bug("a join's changing rows lost their identities".into())
        })?;
        let ids = origin.identities();
        let mut wanted = vec![false; ids.len()];
        let mut seen = HashSet::with_capacity(ids.len());
        for i in (0..ids.len()).rev() {
            wanted[i] = seen.insert(&ids[i]);
        }
        if let (Change::Upsert(state), Some(values)) = (rows.change, &self.values[me]) {
            let side = &self.sides[me];
            let found: Vec<(usize, (usize, usize))> = (0..ids.len())
                .filter(|&i| wanted[i])
                .filter_map(|i| {
                    let &(c, r) = side.ids.get(ids[i].as_slice())?;
                    Some((i, (c as usize, r as usize)))
                })
                .collect();
            if !found.is_empty() {
                let at: Vec<(usize, usize)> = found.iter().map(|(_, at)| *at).collect();
                let kept = values.convert_columns(self.gather(me, &at)?.batch.columns())?;
                let new = values.convert_columns(rows.batch.columns())?;
                let provisional = state == RowState::Provisional;
                for (k, &(i, (c, _))) in found.iter().enumerate() {
                    if kept.row(k) == new.row(i) && side.chunk(c as u32)?.provisional == provisional
                    {
                        wanted[i] = false;
                    }
                }
            }
        }
        if wanted.iter().all(|w| *w) {
            return Ok((rows, ids));
        }
        let ids = ids
            .into_iter()
            .zip(&wanted)
            .filter(|(_, w)| **w)
            .map(|(id, _)| id)
            .collect();
        Ok((rows.filter(&BooleanArray::from(wanted))?, ids))
    }

    /// The join keys of side `side`'s rows `batch`, in row format.
    fn key_rows_of(&self, side: usize, batch: &RecordBatch) -> Result<arrow_row::Rows> {
        Ok(self
            .key_rows
            .convert_columns(&eval_keys(&self.keys[side], batch)?)?)
    }

    /// The join keys of side `side`'s rows `batch` and which of the rows are indexed
    /// ([`SymmetricJoin::indexed`]), for rows kept whole (restored or rewritten).
    fn keyed(
        &self,
        side: usize,
        batch: &RecordBatch,
    ) -> Result<(arrow_row::Rows, Option<BooleanArray>)> {
        let key_columns = eval_keys(&self.keys[side], batch)?;
        let keys = self.key_rows.convert_columns(&key_columns)?;
        Ok((keys, self.indexed(side, &key_columns)))
    }

    /// Keeps `keeping`, new rows of side `me`, with a checkpoint entry of their own.
    fn store(&mut self, keeping: Keeping, me: usize) -> Result<()> {
        let encoded = chunk::encode(&keeping.rows)?;
        let bytes = encoded.len();
        let seq = self.seq;
        self.seq += 1;
        let state_key = chunk_key(self.id, KIND_SYMMETRIC_JOIN, seq, me == 1);
        self.pending_puts.push((state_key, encoded));
        self.keep(keeping, bytes, me, seq)
    }

    /// Chunk `c` of side `me` arrived at the streams' watermark `clock` (`state_ttl`).
    fn stamp(&mut self, me: usize, c: u32, clock: i64) -> Result<()> {
        let chunk = self.sides[me].chunk_mut(c)?;
        chunk.stamp = Some(clock);
        let key = chunk_key(self.id, KIND_STAMP, chunk.seq, me == 1);
        self.pending_puts.push((key, clock.to_be_bytes().to_vec()));
        Ok(())
    }

    /// The streams' watermark moved to `clock` (ms): under `state_ttl`, the batches kept
    /// since it last moved are stamped with it (they arrived at it), and those stamped more
    /// than the TTL before it are forgotten; returns an outer or anti join's rows among
    /// them that matched nothing, final now (nothing will match them).
    pub fn on_clock(&mut self, clock: Option<Watermark>) -> Result<Vec<Rows>> {
        let (Some(ttl), Some(clock)) = (self.ttl_ms, clock.map(|w| w.0)) else {
            return Ok(Vec::new());
        };
        if self.clock.is_some_and(|c| c >= clock) {
            return Ok(Vec::new());
        }
        self.clock = Some(clock);
        self.clock_moved = true;
        let mut out = Vec::new();
        for (me, forgets) in self.forgets().into_iter().enumerate() {
            if !forgets {
                continue;
            }
            // Batches are kept in arrival order and stamped at each move: those kept since
            // the last one are the newest, at the back.
            let unstamped: Vec<u32> = self.sides[me]
                .chunks
                .iter()
                .rev()
                .take_while(|(_, c)| c.stamp.is_none())
                .map(|(n, _)| *n)
                .collect();
            for c in unstamped {
                self.stamp(me, c, clock)?;
            }
            let limit = clock.saturating_sub(ttl);
            out.extend(self.free(me, |c| c.stamp.is_some_and(|s| s < limit))?);
        }
        Ok(out)
    }

    /// Which rows of side `me`, whose join keys are `keys`, are indexed, if not all: a
    /// side whose rows change keeps its rows with a NULL key (to take back what they
    /// wrote) without indexing them, since they match nothing.
    fn indexed(&self, me: usize, keys: &[ArrayRef]) -> Option<BooleanArray> {
        (self.keeps_null_keys(me) && !self.nulls_match)
            .then(|| valid_keys(keys))
            .flatten()
    }

    /// Whether side `me` keeps its rows with a NULL key: where its rows change and its
    /// rows are written on their own (padded, anti, semi), to take back what they wrote.
    fn keeps_null_keys(&self, me: usize) -> bool {
        self.changes[me] && self.output.tracks(me)
    }

    /// Takes back what the kept versions of identities `ids` (of side `me`, whose rows
    /// change) made: deletions of the pairs they made and of their own padded, anti or
    /// semi rows; the other side's rows whose last match they were are written padded
    /// again (or, for a semi join, deleted). The old versions die.
    fn retract(&mut self, ids: &[Vec<u8>], me: usize) -> Result<Vec<Rows>> {
        let other = 1 - me;
        let old: Vec<(usize, usize)> = ids
            .iter()
            .filter_map(|id| self.sides[me].ids.remove(id.as_slice()))
            .map(|(c, r)| (c as usize, r as usize))
            .collect();
        if old.is_empty() {
            return Ok(Vec::new());
        }
        let gone = self.gather(me, &old)?;
        let keys = self.key_rows_of(me, &gone.batch)?;
        unindex(
            &mut self.sides[me].index,
            old.iter()
                .enumerate()
                .map(|(k, &(c, r))| (keys.row(k).data(), (c as u32, r as u32))),
        );
        let mut out = Vec::new();
        let probe = self.probe(&gone, &keys, me)?;
        if let Output::Pairs(_) = self.output {
            out.extend(probe.pairs.into_iter().map(|p| Rows {
                change: Change::Delete,
                ..p
            }));
        }
        if self.output.tracks(me) {
            let semi = matches!(self.output, Output::Semi(_));
            let mut shown = Vec::new();
            for (k, &(c, r)) in old.iter().enumerate() {
                if self.sides[me].chunk(c as u32)?.matched[r] == semi {
                    shown.push(k as u32);
                }
            }
            if !shown.is_empty() {
                let shown = gone.take(&UInt32Array::from(shown))?;
                out.push(self.shaped(&shown, me, Change::Delete)?);
            }
        }
        let mut touched = Vec::with_capacity(old.len());
        for &(c, r) in &old {
            let chunk = self.sides[me].chunk_mut(c as u32)?;
            chunk.dead[r] = true;
            chunk.live -= 1;
            touched.push(c as u32);
        }
        touched.sort_unstable();
        touched.dedup();
        self.sides[me].dirty_live.extend(&touched);
        if self.output.tracks(other) {
            let mut partners = probe.theirs;
            partners.sort_unstable();
            partners.dedup();
            if !partners.is_empty() {
                out.extend(self.unmatch(other, &partners)?);
            }
        }
        for c in touched {
            self.reclaim(me, c)?;
        }
        Ok(out)
    }

    /// Side `side`'s rows at `at` lost a match: those left with none are unmatched again,
    /// their padded or anti rows written again (provisional), or their semi rows deleted.
    fn unmatch(&mut self, side: usize, at: &[(usize, usize)]) -> Result<Option<Rows>> {
        let rows = self.gather(side, at)?;
        let keys = self.key_rows_of(side, &rows.batch)?;
        let still = self.probe(&rows, &keys, side)?;
        let mut matched = vec![false; at.len()];
        for &m in &still.mine {
            matched[m as usize] = true;
        }
        let lost: Vec<u32> = (0..at.len() as u32)
            .filter(|&i| !matched[i as usize])
            .collect();
        if lost.is_empty() {
            return Ok(None);
        }
        for &i in &lost {
            let (c, r) = at[i as usize];
            self.sides[side].chunk_mut(c as u32)?.matched[r] = false;
        }
        let lost = rows.take(&UInt32Array::from(lost))?;
        let change = match self.output {
            Output::Semi(_) => Change::Delete,
            _ => Change::Upsert(self.unmatched_state()),
        };
        self.shaped(&lost, side, change).map(Some)
    }

    /// Frees chunk `c` of side `me` once all its rows died, or keeps its live rows alone
    /// as a new chunk once more than half of them died (copying fewer rows than died since
    /// it was made, so a side holds at most about twice its live rows).
    fn reclaim(&mut self, me: usize, c: u32) -> Result<()> {
        let chunk = self.sides[me].chunk(c)?;
        let dead = chunk.rows.batch.num_rows() - chunk.live;
        if dead <= chunk.live {
            return Ok(());
        }
        let chunk = self.drop_chunk(me, c)?;
        if chunk.live == 0 {
            return Ok(());
        }
        let live: Vec<u32> = chunk.live_rows().map(|r| r as u32).collect();
        let rows = chunk.rows.take(&UInt32Array::from(live.clone()))?;
        let matched = if chunk.matched.is_empty() {
            Vec::new()
        } else {
            live.iter().map(|&r| chunk.matched[r as usize]).collect()
        };
        let (keys, indexed) = self.keyed(me, &rows.batch)?;
        self.store(
            Keeping {
                rows,
                keys: &keys,
                indexed,
                matched,
                provisional: chunk.provisional,
                dead: Vec::new(),
            },
            me,
        )
    }

    /// What `chunk`, taken out of side `me`, held: its bytes and its checkpoint entries.
    fn forget(&mut self, chunk: &Chunk, me: usize) {
        self.state_bytes = self.state_bytes.saturating_sub(chunk.bytes);
        self.pending_deletes.push(chunk.state_key.clone());
        for (stored, kind) in [
            (chunk.flags_stored, KIND_MATCHED),
            (chunk.live_stored, KIND_LIVE),
            (chunk.stamp.is_some(), KIND_STAMP),
        ] {
            if stored {
                self.pending_deletes
                    .push(chunk_key(self.id, kind, chunk.seq, me == 1));
            }
        }
    }

    /// Takes chunk `c` of side `me` out, with its checkpoint entries and its live rows'
    /// index entries and identities.
    fn drop_chunk(&mut self, me: usize, c: u32) -> Result<Chunk> {
        let chunk = self.sides[me].take(c)?;
        self.forget(&chunk, me);
        if chunk.live > 0 {
            let keys = self.key_rows_of(me, &chunk.rows.batch)?;
            let ids = chunk
                .rows
                .origin
                .as_ref()
                .map(Origin::identities)
                .unwrap_or_default();
            let side = &mut self.sides[me];
            unindex(
                &mut side.index,
                chunk
                    .live_rows()
                    .map(|r| (keys.row(r).data(), (c, r as u32))),
            );
            for r in chunk.live_rows() {
                if let Some(id) = ids.get(r) {
                    side.ids.remove(id.as_slice());
                }
            }
        }
        Ok(chunk)
    }

    /// At the end of the streams, every padded or anti row that matched nothing, final:
    /// each once (by this process), not at every commit after the end. Where rows change,
    /// a semi join's rows that matched are written final too.
    pub fn on_commit(&mut self, ctx: &Ctx) -> Result<Vec<Rows>> {
        let semi = matches!(self.output, Output::Semi(_));
        if !ctx.end_of_stream || (semi && !self.reads_changes()) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for side in 0..2 {
            if !self.output.tracks(side) {
                continue;
            }
            let shown: Vec<(usize, usize)> = self.sides[side]
                .kept()
                .filter(|(_, chunk)| !chunk.finalized)
                .flat_map(|(c, chunk)| {
                    chunk
                        .live_rows()
                        .filter(|&r| chunk.matched[r] == semi)
                        .map(move |r| (c as usize, r))
                })
                .collect();
            for (_, chunk) in self.sides[side].chunks.iter_mut() {
                chunk.finalized = true;
            }
            if !shown.is_empty() {
                let rows = self.gather(side, &shown)?;
                out.push(self.shaped(&rows, side, Change::Upsert(RowState::Final))?);
            }
        }
        Ok(out)
    }

    /// The rows of `rows` (of side `me`, whose keys are `keys`) with the other side's
    /// matching rows so far: the candidates by key, which pass the residual condition,
    /// and the pairs they make, final where both rows are.
    fn probe(&self, rows: &Rows, keys: &arrow_row::Rows, me: usize) -> Result<Probe> {
        let mut probe = Probe {
            mine: Vec::new(),
            theirs: Vec::new(),
            pairs: Vec::new(),
        };
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        for i in 0..rows.batch.num_rows() {
            let Some(hits) = self.sides[1 - me].index.get(keys.row(i).as_ref()) else {
                continue;
            };
            for &(c, r) in hits {
                mine.push(i as u32);
                theirs.push((c as usize, r as usize));
                if mine.len() == PROBE_PAIRS {
                    self.probe_slice(rows, &mut mine, &mut theirs, me, &mut probe)?;
                }
            }
        }
        if !mine.is_empty() {
            self.probe_slice(rows, &mut mine, &mut theirs, me, &mut probe)?;
        }
        Ok(probe)
    }

    /// Join the candidate pairs `mine` x `theirs` (emptied), adding those that pass the
    /// residual condition to `probe`.
    fn probe_slice(
        &self,
        rows: &Rows,
        mine: &mut Vec<u32>,
        theirs: &mut Vec<(usize, usize)>,
        me: usize,
        probe: &mut Probe,
    ) -> Result<()> {
        let joined = self.pairs(rows, &UInt32Array::from(mine.clone()), theirs, me == 1)?;
        let passed: Vec<bool> = match &self.filter {
            Some(f) => {
                let mask = residual(f, &joined.batch)?;
                (0..mask.len())
                    .map(|i| mask.is_valid(i) && mask.value(i))
                    .collect()
            }
            None => vec![true; mine.len()],
        };
        // A pair is final where both its rows are.
        let mine_final = rows.change == Change::Upsert(RowState::Final);
        let other = &self.sides[1 - me];
        let mut finals = Vec::with_capacity(mine.len());
        let mut last: Option<(usize, bool)> = None;
        for (k, &(c, r)) in theirs.iter().enumerate() {
            if !passed[k] {
                finals.push(false);
                continue;
            }
            let provisional = match last {
                Some((at, p)) if at == c => p,
                _ => other.chunk(c as u32)?.provisional,
            };
            last = Some((c, provisional));
            finals.push(mine_final && !provisional);
            probe.mine.push(mine[k]);
            probe.theirs.push((c, r));
        }
        for (state, want) in [(RowState::Final, true), (RowState::Provisional, false)] {
            let pick = BooleanArray::from_iter(
                passed
                    .iter()
                    .zip(&finals)
                    .map(|(&p, &f)| Some(p && f == want)),
            );
            if pick.true_count() > 0 {
                probe.pairs.push(Rows {
                    change: Change::Upsert(state),
                    ..joined.filter(&pick)?
                });
            }
        }
        mine.clear();
        theirs.clear();
        Ok(())
    }

    /// `rows` of side `me` without those whose key can match nothing (a NULL key, unless
    /// NULLs match), their join keys, and the rows left out, if any. A side that keeps
    /// its rows with a NULL key ([`SymmetricJoin::keeps_null_keys`]) keeps them all
    /// ([`SymmetricJoin::indexed`] says which match).
    fn matchable(&self, rows: Rows, me: usize) -> Result<(Rows, Vec<ArrayRef>, Option<Rows>)> {
        let keys = eval_keys(&self.keys[me], &rows.batch)?;
        match (!self.nulls_match && !self.keeps_null_keys(me))
            .then(|| valid_keys(&keys))
            .flatten()
        {
            Some(valid) => {
                let keys = keys
                    .iter()
                    .map(|k| Ok(arrow_select::filter::filter(k, &valid)?))
                    .collect::<Result<Vec<_>>>()?;
                let lone = rows.filter(&not_true(&valid))?;
                Ok((rows.filter(&valid)?, keys, Some(lone)))
            }
            None => Ok((rows, keys, None)),
        }
    }

    /// The kept rows of side `side` at `at` ((chunk, row) pairs), gathered from the chunks
    /// they are in only, not from every chunk kept.
    fn gather(&self, side: usize, at: &[(usize, usize)]) -> Result<Rows> {
        let side = &self.sides[side];
        let mut touched: HashMap<usize, usize> = HashMap::new();
        let mut chunks: Vec<&Rows> = Vec::new();
        let at: Vec<(usize, usize)> = at
            .iter()
            .map(|&(c, r)| {
                let local = match touched.entry(c) {
                    Entry::Occupied(e) => *e.get(),
                    Entry::Vacant(e) => {
                        chunks.push(&side.chunk(c as u32)?.rows);
                        *e.insert(chunks.len() - 1)
                    }
                };
                Ok((local, r))
            })
            .collect::<Result<_>>()?;
        let batches: Vec<&RecordBatch> = chunks.iter().map(|c| &c.batch).collect();
        Ok(Rows {
            batch: arrow_select::interleave::interleave_record_batch(&batches, &at)?,
            origin: interleave_origins(&chunks, &at)?,
            change: Change::Upsert(RowState::Final),
        })
    }

    /// The joined rows of `rows[mine[k]]` with the other side's row `theirs[k]`, before
    /// the residual condition.
    fn pairs(
        &self,
        rows: &Rows,
        mine: &UInt32Array,
        theirs: &[(usize, usize)],
        right: bool,
    ) -> Result<Rows> {
        let this = rows.take(mine)?;
        let that = self.gather(usize::from(!right), theirs)?;
        let (left, right_rows) = if right { (that, this) } else { (this, that) };
        let batch = pair_batch(&left.batch, &right_rows.batch, &self.pair_schema)?;
        let origin = match (left.origin, right_rows.origin) {
            (Some(l), Some(r)) => Origin::join(l, r),
            _ => {
                return Err(EngineError::Bug(
                    "a symmetric join's input lost its positions".into(),
                ));
            }
        };
        Ok(Rows {
            batch,
            origin: Some(origin),
            change: Change::Upsert(RowState::Final),
        })
    }

    /// Output rows of side `side`'s `rows`, doing `change`: the rows themselves for a semi
    /// or anti join, else with NULLs for the other side's columns and positions.
    fn shaped(&self, rows: &Rows, side: usize, change: Change) -> Result<Rows> {
        if self.output.only_side().is_some() {
            return Ok(Rows {
                batch: rows_batch(
                    &self.schema,
                    rows.batch.columns().to_vec(),
                    rows.batch.num_rows(),
                )?,
                origin: rows.origin.clone(),
                change,
            });
        }
        let padded = Padding {
            schema: &self.schema,
            left_width: self.left_width,
            positions: self.positions,
        };
        padded.rows(rows, side, change)
    }

    /// State changes since the last checkpoint: batches kept and freed, and the times
    /// below which rows are late.
    pub fn checkpoint(&mut self, puts: &mut Vec<(Vec<u8>, Vec<u8>)>, deletes: &mut Vec<Vec<u8>>) {
        for (s, side) in self.sides.iter_mut().enumerate() {
            let dirty = std::mem::take(&mut side.dirty);
            put_chunks(
                side,
                dirty,
                (self.id, KIND_MATCHED, s == 1),
                puts,
                |chunk| {
                    chunk.flags_stored = true;
                    pack_flags(&chunk.matched)
                },
            );
            let dirty = std::mem::take(&mut side.dirty_live);
            put_chunks(side, dirty, (self.id, KIND_LIVE, s == 1), puts, |chunk| {
                chunk.live_stored = true;
                let mut v = vec![u8::from(chunk.provisional)];
                v.extend(pack_flags(&chunk.dead));
                v
            });
        }
        if std::mem::take(&mut self.clock_moved)
            && let Some(clock) = self.clock
        {
            let mut k = self.id.to_be_bytes().to_vec();
            k.push(KIND_CLOCK);
            puts.push((k, clock.to_be_bytes().to_vec()));
        }
        if std::mem::take(&mut self.late_below_moved) {
            let mut v = Vec::with_capacity(16);
            for b in self.late_below {
                v.extend_from_slice(&b.unwrap_or(i64::MIN).to_be_bytes());
            }
            let mut k = self.id.to_be_bytes().to_vec();
            k.push(KIND_LATE_BELOW);
            puts.push((k, v));
        }
        super::flush_pending(
            &mut self.pending_puts,
            &mut self.pending_deletes,
            puts,
            deletes,
        );
    }

    /// Load both sides' rows from a checkpoint, in the order they arrived.
    pub fn restore(
        &mut self,
        entries: &[(Vec<u8>, Vec<u8>)],
        left: &SchemaRef,
        right: &SchemaRef,
    ) -> Result<()> {
        // Entries come ordered by key bytes: by kind, then by sequence number (as they
        // arrived). A changing side's chunk needs its live entry (a later kind) first.
        let mut flags: HashMap<(bool, u64), &[u8]> = HashMap::new();
        let mut lives: HashMap<(bool, u64), &[u8]> = HashMap::new();
        let mut stamps: HashMap<(bool, u64), i64> = HashMap::new();
        for (k, v) in entries {
            match k.get(2) {
                Some(&KIND_LATE_BELOW) => self.late_below = parse_late_below(v)?,
                Some(&KIND_MATCHED) => {
                    let key = ChunkKey::parse(k, KIND_MATCHED, false)?;
                    flags.insert((key.right, key.seq), v);
                }
                Some(&KIND_LIVE) => {
                    let key = ChunkKey::parse(k, KIND_LIVE, false)?;
                    lives.insert((key.right, key.seq), v);
                }
                Some(&KIND_CLOCK) => self.clock = Some(parse_ms(v, "clock")?),
                Some(&KIND_STAMP) => {
                    let key = ChunkKey::parse(k, KIND_STAMP, false)?;
                    stamps.insert((key.right, key.seq), parse_ms(v, "stamp")?);
                }
                _ => {}
            }
        }
        for (k, v) in entries {
            if matches!(
                k.get(2),
                Some(&(KIND_LATE_BELOW | KIND_MATCHED | KIND_LIVE | KIND_STAMP | KIND_CLOCK))
            ) {
                continue;
            }
            let key = ChunkKey::parse(k, KIND_SYMMETRIC_JOIN, false)?;
            let side = usize::from(key.right);
            let rows = chunk::decode(v, if key.right { right } else { left })?;
            let n = rows.batch.num_rows();
            self.seq = self.seq.max(key.seq + 1);
            let (provisional, dead) = if self.changes[side] {
                let live = lives.get(&(key.right, key.seq)).ok_or_else(|| {
                    EngineError::Bug("a join's kept rows that change lack their live rows".into())
                })?;
                let (&state, bits) = live.split_first().ok_or_else(|| {
                    EngineError::Bug("a malformed join checkpoint entry (live rows)".into())
                })?;
                let mut dead = vec![false; n];
                unpack_flags(bits, &mut dead)?;
                (state == 1, dead)
            } else {
                (false, Vec::new())
            };
            let (keys, indexed) = self.keyed(side, &rows.batch)?;
            let unmatched = if self.output.tracks(side) {
                vec![false; n]
            } else {
                Vec::new()
            };
            self.keep(
                Keeping {
                    rows,
                    keys: &keys,
                    indexed,
                    matched: unmatched,
                    provisional,
                    dead,
                },
                v.len(),
                side,
                key.seq,
            )?;
        }
        for (s, side) in self.sides.iter_mut().enumerate() {
            // Their live and stamp entries are stored as they are.
            side.dirty_live.clear();
            for (_, chunk) in side.chunks.iter_mut() {
                chunk.live_stored = !chunk.dead.is_empty();
                chunk.stamp = stamps.get(&(s == 1, chunk.seq)).copied();
            }
        }
        self.restore_matched()?;
        // Matches with rows since freed were checkpointed. Flags worked out here that the
        // checkpoint lacks (a checkpoint of an older version) are written at the next one,
        // before their partners can be freed and forgotten.
        let frees = self.lets_go();
        for (s, side) in self.sides.iter_mut().enumerate() {
            let mut dirty = Vec::new();
            for (c, chunk) in side.chunks.iter_mut() {
                let stored = flags.get(&(s == 1, chunk.seq));
                if let Some(bits) = stored {
                    unpack_flags(bits, &mut chunk.matched)?;
                    chunk.flags_stored = true;
                }
                let packed = pack_flags(&chunk.matched);
                let complete = match stored {
                    Some(bits) => *bits == packed.as_slice(),
                    None => !chunk.matched.contains(&true),
                };
                if frees[1 - s] && !complete {
                    dirty.push(*c);
                }
            }
            side.dirty.extend(dirty);
        }
        Ok(())
    }

    /// Which kept rows of the tracked sides have matched: those that make a pair with a
    /// kept row of the other side (both were read, so the pair was made).
    fn restore_matched(&mut self) -> Result<()> {
        for side in (0..2).filter(|&s| self.output.tracks(s)) {
            let mut all = Vec::with_capacity(self.sides[side].chunks.len());
            for (_, chunk) in self.sides[side].kept() {
                let rows = &chunk.rows;
                let keys = self.key_rows_of(side, &rows.batch)?;
                let other = &self.sides[1 - side].index;
                let matched = match &self.filter {
                    // A key the other side holds is a pair made.
                    None => (0..rows.batch.num_rows())
                        .map(|i| other.contains_key(keys.row(i).as_ref()))
                        .collect(),
                    // The pairs, at most RESTORE_PAIRS at a time, a row's remaining
                    // ones skipped once one passes: a hot key never builds all its pairs.
                    Some(filter) => {
                        let mut matched = vec![false; rows.batch.num_rows()];
                        let mut mine: Vec<u32> = Vec::new();
                        let mut theirs: Vec<(usize, usize)> = Vec::new();
                        for i in 0..rows.batch.num_rows() {
                            let Some(hits) = other.get(keys.row(i).as_ref()) else {
                                continue;
                            };
                            for &(c, r) in hits {
                                if matched[i] {
                                    break;
                                }
                                mine.push(i as u32);
                                theirs.push((c as usize, r as usize));
                                if mine.len() >= RESTORE_PAIRS {
                                    self.mark_passing(
                                        rows,
                                        &mine,
                                        &theirs,
                                        side,
                                        filter,
                                        &mut matched,
                                    )?;
                                    mine.clear();
                                    theirs.clear();
                                }
                            }
                        }
                        self.mark_passing(rows, &mine, &theirs, side, filter, &mut matched)?;
                        matched
                    }
                };
                all.push(matched);
            }
            let chunks = self.sides[side].chunks.iter_mut();
            for ((_, chunk), matched) in chunks.zip(all) {
                chunk.matched = matched;
            }
        }
        Ok(())
    }

    /// Marks in `matched` the rows `mine[k]` of `rows` (of side `side`) whose pair with the
    /// other side's row `theirs[k]` passes `filter`.
    fn mark_passing(
        &self,
        rows: &Rows,
        mine: &[u32],
        theirs: &[(usize, usize)],
        side: usize,
        filter: &Arc<dyn PhysicalExpr>,
        matched: &mut [bool],
    ) -> Result<()> {
        if mine.is_empty() {
            return Ok(());
        }
        let joined = self.pairs(rows, &UInt32Array::from(mine.to_vec()), theirs, side == 1)?;
        let mask = residual(filter, &joined.batch)?;
        for (k, &row) in mine.iter().enumerate() {
            if mask.is_valid(k) && mask.value(k) {
                matched[row as usize] = true;
            }
        }
        Ok(())
    }

    /// Keeps `keeping`, rows of side `me` whose checkpoint entry is number `seq` and
    /// `bytes` long (what they count against the state cap), for the other side's later
    /// rows. On a side whose rows change, each live row is found by its identity.
    fn keep(&mut self, keeping: Keeping, bytes: usize, me: usize, seq: u64) -> Result<()> {
        let Keeping {
            rows,
            keys,
            indexed,
            matched,
            provisional,
            mut dead,
        } = keeping;
        let n = rows.batch.num_rows();
        let state_key = chunk_key(self.id, KIND_SYMMETRIC_JOIN, seq, me == 1);
        // Flags are checkpointed where the rows they were set by may be freed.
        let persist = self.lets_go()[1 - me];
        let latest = match &self.interval {
            Some(i) => latest_ms(&rows, i.bounds.columns[me])?,
            None => None,
        };
        let changes = self.changes[me];
        if changes && dead.is_empty() {
            dead = vec![false; n];
        }
        let ids = match (&rows.origin, changes) {
            (Some(origin), true) => origin.identities(),
            (None, true) => {
                return Err(EngineError::Bug(
                    "a join's changing rows lost their identities".into(),
                ));
            }
            _ => Vec::new(),
        };
        let side = &mut self.sides[me];
        let chunk_no = side.next_no;
        let mut counted = bytes;
        let mut live = 0;
        for i in 0..n {
            if dead.get(i).copied().unwrap_or(false) {
                continue;
            }
            live += 1;
            if let Some(id) = ids.get(i) {
                counted += id.len() + INDEX_ENTRY_BYTES;
                side.ids.insert(id.as_slice().into(), (chunk_no, i as u32));
            }
            if indexed.as_ref().is_some_and(|v| !v.value(i)) {
                continue;
            }
            counted += INDEX_ENTRY_BYTES;
            let key = keys.row(i);
            let entry = side.index.entry(key.as_ref().into());
            if let Entry::Vacant(_) = entry {
                counted += key.as_ref().len();
            }
            entry.or_default().push((chunk_no, i as u32));
        }
        // One flag per row of a tracked side, one dead flag per row of a changing one.
        counted += matched.len() + dead.len();
        self.state_bytes += counted;
        if persist && matched.contains(&true) {
            side.dirty.push(chunk_no);
        }
        if changes {
            side.dirty_live.push(chunk_no);
        }
        side.push(Chunk {
            rows,
            matched,
            state_key,
            seq,
            finalized: false,
            flags_stored: false,
            bytes: counted,
            latest,
            stamp: None,
            provisional,
            dead,
            live,
            live_stored: false,
        })?;
        Ok(())
    }

    /// The inputs' watermarks moved: `floors` are, per side, the least time its rows to
    /// come can have in the interval condition's column. Frees every kept batch whose rows
    /// can match no row to come; returns an outer or anti join's rows among them that
    /// matched nothing, final now.
    pub fn on_watermark(&mut self, floors: [Option<Watermark>; 2]) -> Result<Vec<Rows>> {
        let Some(interval) = &self.interval else {
            return Ok(Vec::new());
        };
        let bounds = interval.bounds;
        // Left rows at `t` match right rows at or before `t - lo`; right rows at `t`
        // match left rows at or before `t + hi`. (One millisecond of slack: times in
        // finer units were truncated to milliseconds.)
        let limits = [
            bounds
                .lo
                .zip(floors[1])
                .map(|(lo, f)| f.0.saturating_add(lo)),
            bounds
                .hi
                .zip(floors[0])
                .map(|(hi, f)| f.0.saturating_sub(hi)),
        ];
        let mut out = Vec::new();
        for (me, limit) in limits.into_iter().enumerate() {
            let Some(limit) = limit else { continue };
            let other = 1 - me;
            let floor = floors[other].map(|f| f.0);
            if floor > self.late_below[other] {
                self.late_below[other] = floor;
                self.late_below_moved = true;
            }
            let freed = self.free(me, |c| c.latest.is_none_or(|t| t.saturating_add(1) < limit))?;
            out.extend(freed);
        }
        Ok(out)
    }

    /// Frees side `me`'s chunks whose latest time `dead` says can match nothing more;
    /// returns those of their rows an outer or anti join writes final now (padded or
    /// anti rows that matched nothing: nothing will match them).
    fn free(&mut self, me: usize, dead: impl Fn(&Chunk) -> bool) -> Result<Vec<Rows>> {
        // Rows that change are found by identity, which this does not forget: neither the
        // interval nor state_ttl frees them.
        debug_assert!(!self.changes[me], "a join freed rows that change");
        let side = &mut self.sides[me];
        let mut freed = Vec::new();
        let mut numbers = HashSet::new();
        if !side.chunks.iter().any(|(_, c)| dead(c)) {
            return Ok(Vec::new());
        }
        let mut kept = VecDeque::with_capacity(side.chunks.len());
        for (n, chunk) in side.chunks.drain(..) {
            if dead(&chunk) {
                numbers.insert(n);
                freed.push(chunk);
            } else {
                kept.push_back((n, chunk));
            }
        }
        side.chunks = kept;
        // Each freed row's index entry goes (once per key: a hot key has many), and a
        // key left with none goes too.
        let mut keys: HashSet<Box<[u8]>> = HashSet::new();
        let tracked = self.output.tracks(me);
        let mut out = Vec::new();
        for chunk in freed {
            self.forget(&chunk, me);
            let rows = self.key_rows_of(me, &chunk.rows.batch)?;
            keys.extend((0..chunk.rows.batch.num_rows()).map(|i| rows.row(i).as_ref().into()));
            if tracked && !matches!(self.output, Output::Semi(_)) && !chunk.finalized {
                let lone: Vec<u32> = (0..chunk.matched.len() as u32)
                    .filter(|&r| !chunk.matched[r as usize])
                    .collect();
                if !lone.is_empty() {
                    let lone = chunk.rows.take(&UInt32Array::from(lone))?;
                    out.push(self.shaped(&lone, me, Change::Upsert(RowState::Final))?);
                }
            }
        }
        let side = &mut self.sides[me];
        for key in keys {
            if let Some(hits) = side.index.get_mut(&key) {
                hits.retain(|(c, _)| !numbers.contains(c));
                if hits.is_empty() {
                    side.index.remove(&key);
                }
            }
        }
        Ok(out)
    }

    /// `rows` of side `me` without those behind the time below which its rows are late
    /// (set aside by the view's late-data policy): the other side's rows they could match
    /// were freed.
    fn in_time(&self, rows: Rows, me: usize, ctx: &mut Ctx) -> Result<Rows> {
        let (Some(interval), Some(below)) = (&self.interval, self.late_below[me]) else {
            return Ok(rows);
        };
        let Some(stream) = &interval.late_from[me] else {
            return Ok(rows);
        };
        let times = times_ms(rows.batch.column(interval.bounds.columns[me]))?;
        let late: Vec<usize> = (0..times.len())
            .filter(|&i| times.is_valid(i) && times.value(i) < below)
            .collect();
        if late.is_empty() {
            return Ok(rows);
        }
        let origin = rows
            .origin
            .as_ref()
            .ok_or_else(|| EngineError::Bug("a stream's rows lost their positions".into()))?;
        for &i in &late {
            ctx.set_aside(|| {
                Ok(LateEvent {
                    stream: stream.clone(),
                    partition: origin.partition.value(i),
                    offset: origin.offset.value(i),
                    event_time_ms: times.value(i),
                    reason: format!(
                        "its time is behind the watermark minus allowed lateness ({}): the \
                         rows of the other side of the join it could match were already freed",
                        crate::source::fmt_ms(below)
                    ),
                    row_json: crate::source::row_json(&rows.batch, i)?,
                })
            })?;
        }
        let keep = arrow_array::BooleanArray::from_iter(
            (0..times.len()).map(|i| Some(!(times.is_valid(i) && times.value(i) < below))),
        );
        rows.filter(&keep)
    }
}

/// The latest time (ms) in `rows`' column `column`, ignoring NULLs.
fn latest_ms(rows: &Rows, column: usize) -> Result<Option<i64>> {
    let times = times_ms(rows.batch.column(column))?;
    Ok(datafusion::arrow::compute::max(&times))
}

/// The times below which each side's rows are late, from their checkpoint entry.
fn parse_late_below(v: &[u8]) -> Result<[Option<i64>; 2]> {
    if v.len() != 16 {
        return Err(EngineError::Bug(
            "a malformed join checkpoint entry (late times)".into(),
        ));
    }
    let at = |o: usize| {
        let t = i64::from_be_bytes(v[o..o + 8].try_into().expect("8 bytes"));
        (t != i64::MIN).then_some(t)
    };
    Ok([at(0), at(8)])
}

/// A time in milliseconds from a checkpoint entry (`what` it is, for the error).
fn parse_ms(v: &[u8], what: &str) -> Result<i64> {
    let at: [u8; 8] = v
        .try_into()
        .map_err(|_| EngineError::Bug(format!("a malformed join checkpoint entry ({what})")))?;
    Ok(i64::from_be_bytes(at))
}

/// The checkpoint key of operator `id`'s chunk `seq` of one side, of kind `kind` (its
/// rows, or its matched flags).
fn chunk_key(id: u16, kind: u8, seq: u64, right: bool) -> Vec<u8> {
    ChunkKey {
        end: None,
        seq,
        right,
    }
    .encode(id, kind)
}

/// Puts a checkpoint entry, of kind `kind` of operator `id` on side `right`, for each kept
/// chunk of `side` whose number is in `dirty` (a chunk freed since has its entries deleted
/// instead), its value `entry(chunk)`.
fn put_chunks(
    side: &mut Side,
    mut dirty: Vec<u32>,
    (id, kind, right): (u16, u8, bool),
    puts: &mut Vec<(Vec<u8>, Vec<u8>)>,
    entry: impl Fn(&mut Chunk) -> Vec<u8>,
) {
    dirty.sort_unstable();
    dirty.dedup();
    for c in dirty {
        let Ok(chunk) = side.chunk_mut(c) else {
            continue;
        };
        let key = chunk_key(id, kind, chunk.seq, right);
        puts.push((key, entry(chunk)));
    }
}

/// Matched flags as bits, the first row in the lowest bit of the first byte.
fn pack_flags(flags: &[bool]) -> Vec<u8> {
    let mut bits = vec![0u8; flags.len().div_ceil(8)];
    for (i, _) in flags.iter().enumerate().filter(|(_, f)| **f) {
        bits[i / 8] |= 1 << (i % 8);
    }
    bits
}

/// Sets in `flags` the rows [`pack_flags`] set in `bits`.
fn unpack_flags(bits: &[u8], flags: &mut [bool]) -> Result<()> {
    if bits.len() != flags.len().div_ceil(8) {
        return Err(EngineError::Bug(
            "a join's checkpointed matched flags do not fit their rows".into(),
        ));
    }
    for (i, f) in flags.iter_mut().enumerate() {
        *f |= bits[i / 8] & (1 << (i % 8)) != 0;
    }
    Ok(())
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

/// Removes `at` from `key`'s entries in `index`, and the key once it has none.
fn unindex<'k>(
    index: &mut HashMap<Box<[u8]>, Vec<(u32, u32)>>,
    gone: impl Iterator<Item = (&'k [u8], (u32, u32))>,
) {
    // One pass over each key's entries, however many of them go (a join without an equal
    // key has one key for all its rows).
    let mut by_key: HashMap<&[u8], HashSet<(u32, u32)>> = HashMap::new();
    for (key, at) in gone {
        by_key.entry(key).or_default().insert(at);
    }
    for (key, at) in by_key {
        if let Some(hits) = index.get_mut(key) {
            hits.retain(|h| !at.contains(h));
            if hits.is_empty() {
                index.remove(key);
            }
        }
    }
}
