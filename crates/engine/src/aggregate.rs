//! The aggregate operator: GROUP BY over tumbling/hopping windows, session windows, windows
//! of an upstream view (cascades), or no window at all (continuously updated rows).
//!
//! Invariants: a fixed window is emitted once, as `final`, when the input's window
//! watermark reaches its end, and is then evicted from memory and from the checkpoint; a
//! session is emitted when the watermark passes its end (last event + gap). Unbounded
//! groups are emitted as `provisional` rows at every commit they changed in, and as `final`
//! at the end of the stream. State changes since the last checkpoint are tracked per
//! group, so a checkpoint writes only what changed.
//!
//! Over rows that change (an unbounded GROUP BY's, an outer join's: an upsert replaces the
//! row with the same identity, a deletion removes it), the aggregate is unbounded and keeps
//! what each input row added, by the row's identity (its positions; an aggregate's rows
//! carry a hash of their group key as positions): a row's next version first takes the
//! previous one back out of its group, with accumulators that can retract. A group left
//! with no rows is deleted from the results.

use crate::Ctx;
use crate::accumulate::{Acc, AggSpec, get_bytes, put_bytes, take8};
use crate::error::{EngineError, Result};
use crate::rows::{Change, Origin, Rows, not_true};
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
use arrow_row::{RowConverter, Rows as RowBytes, SortField};
use datafusion::physical_expr::PhysicalExpr;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use freshet_store::RowState;
use freshet_types::Watermark;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Where each GROUP BY column of the output comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupCol {
    /// The i-th non-window grouping expression.
    Key(usize),
    /// The window's start.
    WindowStart,
    /// The window's end.
    WindowEnd,
}

/// How rows are windowed.
#[derive(Debug, Clone, Copy)]
pub enum Grouping {
    /// No window: groups live until the end of the stream.
    Unbounded,
    /// Windows of the input, identified by their end.
    Fixed {
        /// Input column of `window_start`, if grouped on.
        start_col: Option<usize>,
        /// Input column of `window_end`, if grouped on.
        end_col: Option<usize>,
        /// Window length when known (TUMBLE/HOP).
        size_ms: Option<i64>,
    },
    /// Session windows of `gap`, per key.
    Session {
        /// Input column of `window_start` (the row's event time).
        start_col: usize,
        /// Inactivity gap.
        gap_ms: i64,
    },
}

/// Groups of one window (or of the unbounded aggregate).
#[derive(Default)]
struct Groups {
    start: i64,
    index: HashMap<Box<[u8]>, u32>,
    keys: Vec<Box<[u8]>>,
    accs: Vec<Acc>,
    persisted: Vec<bool>,
    ckpt_dirty: Vec<u32>,
    in_ckpt: Vec<bool>,
    emit_dirty: Vec<u32>,
    in_emit: Vec<bool>,
    /// How many input rows each group holds (over rows that change only).
    live: Vec<i64>,
    /// Slots of groups that lost their rows and were deleted, to reuse.
    free: Vec<u32>,
}

impl Groups {
    fn intern(&mut self, key: &[u8], specs: &[AggSpec], bytes: &mut usize) -> u32 {
        if let Some(&g) = self.index.get(key) {
            return g;
        }
        let key: Box<[u8]> = key.into();
        *bytes += group_bytes(&key, specs.len());
        if let Some(g) = self.free.pop() {
            // A freed slot: its accumulators were reset when its last row went.
            self.index.insert(key.clone(), g);
            self.keys[g as usize] = key;
            return g;
        }
        let g = self.keys.len() as u32;
        self.index.insert(key.clone(), g);
        self.keys.push(key);
        self.accs.extend(specs.iter().map(AggSpec::init));
        self.persisted.push(false);
        self.in_ckpt.push(false);
        self.in_emit.push(false);
        self.live.push(0);
        g
    }

    fn touch(&mut self, g: u32) {
        let i = g as usize;
        if !self.in_ckpt[i] {
            self.in_ckpt[i] = true;
            self.ckpt_dirty.push(g);
        }
        self.mark_emit(g);
    }

    /// The group's row is to be written at the next provisional emission.
    fn mark_emit(&mut self, g: u32) {
        let i = g as usize;
        if !self.in_emit[i] {
            self.in_emit[i] = true;
            self.emit_dirty.push(g);
        }
    }
}

/// Approximate bytes of a group with `key` and `aggregates` accumulators.
fn group_bytes(key: &[u8], aggregates: usize) -> usize {
    2 * key.len() + 48 + 40 * aggregates
}

struct Session {
    start: i64,
    end: i64,
    accs: Vec<Acc>,
    stored_start: Option<i64>,
    dirty: bool,
    /// The bounds its last provisional row was written with, if one was.
    written: Option<(i64, i64)>,
    /// Changed since its last provisional row.
    changed: bool,
}

/// A provisional session row to delete: its key, start and end, and the values of the
/// session it was written for (so that a projection over the deletion computes on real
/// values; only the key reaches the store).
struct GoneSession {
    key: Box<[u8]>,
    start: i64,
    end: i64,
    accs: Vec<Acc>,
}

/// What each input row of an aggregate over rows that change added to its group, so that
/// the row's next version, or its deletion, takes it back first.
struct Retraction {
    /// The aggregates' arguments in row format (`None` without aggregates).
    arg_rows: Option<RowConverter>,
    /// By the input row's identity ([`Origin::identities`]).
    rows: HashMap<Box<[u8]>, Contribution>,
    /// Identities changed since the last checkpoint.
    dirty: HashSet<Box<[u8]>>,
    /// The accumulators of groups that lost their last row since the last commit, as
    /// they were with that row: the row deleting a group is computed from them, so that
    /// expressions over it see values a group had (not a count of 0).
    emptied: HashMap<u32, Vec<Acc>>,
}

/// One input row's part of a group.
struct Contribution {
    group: u32,
    /// Its aggregates' arguments, in row format.
    args: Box<[u8]>,
}

impl Contribution {
    /// Approximate bytes held for it under `id`.
    fn bytes(&self, id: &[u8]) -> usize {
        id.len() + self.args.len() + 64
    }
}

/// Where a changing input row's previous version is, to take back.
#[derive(Clone, Copy)]
enum Prior {
    /// Earlier in the same batch.
    Batch(usize),
    /// In the state: the i-th of those looked up for the batch.
    Stored(usize),
}

/// The aggregate operator.
pub struct Aggregate {
    /// Operator id, the prefix of its checkpoint keys.
    pub id: u16,
    /// Output schema: GROUP BY columns, then aggregates (DataFusion's order).
    pub schema: arrow_schema::SchemaRef,
    /// Output GROUP BY columns.
    pub layout: Vec<GroupCol>,
    /// Non-window grouping expressions, one list per grouping set (one list without
    /// GROUPING SETS, CUBE or ROLLUP): a row is folded into one group per set. In a set,
    /// the columns it leaves out are NULL literals and `__grouping_id` is a literal, so
    /// the sets' groups never share a key.
    pub key_sets: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// Aggregate arguments.
    pub args: Vec<Arc<dyn PhysicalExpr>>,
    /// Each aggregate's `FILTER (WHERE ...)`, if it has one: rows for which it is not true
    /// do not reach that aggregate.
    pub filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// Aggregate functions.
    pub specs: Vec<AggSpec>,
    /// Windowing.
    pub grouping: Grouping,
    /// Emit provisional rows of open groups at commits (root aggregates only).
    pub emit_updates: bool,
    /// `late_data = 'update'` (root aggregates over fixed windows only): the allowed
    /// lateness. A window is written as provisional once the stream watermark (the window
    /// watermark plus this) reaches its end, rewritten at each commit in which late events
    /// changed it, and written as final when the window watermark reaches its end.
    pub amend_lateness_ms: Option<i64>,
    /// Emitted rows carry positions hashed from their group key ([`Origin::hashed`]), by
    /// which an aggregate over them finds a row again when it changes.
    pub identifies_rows: bool,
    retraction: Option<Box<Retraction>>,
    key_rows: RowConverter,
    /// Keys of the groups whose rows exist with or without input rows, from the first
    /// commit (an unbounded aggregate's): without GROUP BY, the empty key; under grouping
    /// sets, the keys of the sets that leave out every column (a ROLLUP's or CUBE's grand
    /// total), as batch gives them over no rows.
    always: Vec<Box<[u8]>>,
    windows: BTreeMap<i64, Groups>,
    unbounded: Groups,
    sessions: HashMap<Box<[u8]>, Vec<Session>>,
    session_ends: BTreeSet<(i64, Box<[u8]>, i64)>,
    pending_deletes: Vec<Vec<u8>>,
    /// Written provisional session rows whose session grew or merged since: deleted with
    /// the next provisional rows.
    sessions_gone: Vec<GoneSession>,
    /// `sessions_gone` changed since the last checkpoint.
    sessions_gone_dirty: bool,
    state_bytes: usize,
    window_watermark: Option<Watermark>,
}

const KIND_FIXED: u8 = 1;
const KIND_UNBOUNDED: u8 = 2;
const KIND_SESSION: u8 = 3;
/// The provisional session rows still to delete (one entry per operator).
const KIND_SESSIONS_GONE: u8 = 5;
/// What an input row that may change added to its group ([`Retraction`]).
const KIND_CONTRIBUTION: u8 = 6;

/// `arg` with NULL wherever `filter` is not true over `batch`: every aggregate skips NULLs,
/// so this is `FILTER (WHERE filter)` applied before the aggregate sees the rows.
fn only_where(
    arg: &ArrayRef,
    filter: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
) -> Result<ArrayRef> {
    let keep = filter.evaluate(batch)?.into_array(batch.num_rows())?;
    let keep = keep
        .as_boolean_opt()
        .ok_or_else(|| EngineError::Bug(format!("FILTER gave {}", keep.data_type())))?;
    Ok(arrow_select::nullif::nullif(arg, &not_true(keep))?)
}

/// Big-endian with the sign bit flipped: byte order equals numeric order.
pub fn sortable(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`sortable`].
pub fn unsortable(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

impl Aggregate {
    /// A new, empty operator.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u16,
        schema: arrow_schema::SchemaRef,
        layout: Vec<GroupCol>,
        key_sets: Vec<Vec<Arc<dyn PhysicalExpr>>>,
        key_fields: Vec<arrow_row::SortField>,
        args: Vec<Arc<dyn PhysicalExpr>>,
        filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
        specs: Vec<AggSpec>,
        grouping: Grouping,
    ) -> Result<Aggregate> {
        let key_rows = RowConverter::new(key_fields)?;
        let always = match grouping {
            Grouping::Unbounded if layout.is_empty() => vec![Box::default()],
            _ => Vec::new(),
        };
        Ok(Aggregate {
            id,
            schema,
            layout,
            key_sets,
            args,
            filters,
            specs,
            grouping,
            emit_updates: false,
            amend_lateness_ms: None,
            identifies_rows: false,
            retraction: None,
            key_rows,
            always,
            windows: BTreeMap::new(),
            unbounded: Groups::default(),
            sessions: HashMap::new(),
            session_ends: BTreeSet::new(),
            pending_deletes: Vec::new(),
            sessions_gone: Vec::new(),
            sessions_gone_dirty: false,
            state_bytes: 0,
            window_watermark: None,
        })
    }

    /// The same operator, whose grouping sets `totals` (indexes into `key_sets`: sets that
    /// leave out every GROUP BY column) have their rows from the first commit, with or
    /// without input rows, as batch gives a ROLLUP's or CUBE's grand total over no rows
    /// (unbounded aggregates only: a window's rows come with its input).
    pub fn with_grand_totals(mut self, totals: &[usize]) -> Result<Aggregate> {
        if matches!(self.grouping, Grouping::Unbounded) {
            let sets: Vec<&[Arc<dyn PhysicalExpr>]> =
                totals.iter().map(|&s| &self.key_sets[s][..]).collect();
            self.always.extend(constant_keys(&sets, &self.key_rows)?);
        }
        Ok(self)
    }

    /// The same operator over rows that change (an unbounded GROUP BY only): it keeps
    /// what each input row added, to take back when the row changes or goes.
    pub fn retracting(mut self) -> Result<Aggregate> {
        if !matches!(self.grouping, Grouping::Unbounded) {
            return Err(EngineError::Bug(
                "a windowed aggregate over rows that change".into(),
            ));
        }
        let fields: Vec<SortField> = self
            .specs
            .iter()
            .map(|s| SortField::new(s.arg_type.clone()))
            .collect();
        let arg_rows = match fields.is_empty() {
            true => None,
            false => Some(RowConverter::new(fields)?),
        };
        self.specs = self.specs.into_iter().map(AggSpec::retracting).collect();
        self.retraction = Some(Box::new(Retraction {
            arg_rows,
            rows: HashMap::new(),
            dirty: HashSet::new(),
            emptied: HashMap::new(),
        }));
        Ok(self)
    }

    /// Whether it aggregates without GROUP BY: one group, whose row exists with or without
    /// input rows.
    pub fn global(&self) -> bool {
        self.layout.is_empty() && matches!(self.grouping, Grouping::Unbounded)
    }

    /// Whether it groups by GROUPING SETS, CUBE or ROLLUP (its last GROUP BY column is
    /// `__grouping_id`).
    pub fn by_grouping_sets(&self) -> bool {
        self.layout.len().checked_sub(1).is_some_and(|last| {
            self.schema.field(last).name()
                == datafusion::logical_expr::Aggregate::INTERNAL_GROUPING_ID
        })
    }

    /// Whether it takes changed input rows' earlier versions back.
    pub fn retracts(&self) -> bool {
        self.retraction.is_some()
    }

    /// Approximate bytes of state held.
    pub fn state_bytes(&self) -> usize {
        self.state_bytes
    }

    /// Window ends at or before this have been emitted.
    pub fn window_watermark(&self) -> Option<Watermark> {
        match self.grouping {
            // Sessions close one gap after the input watermark passes their end.
            Grouping::Session { gap_ms, .. } => self.window_watermark.map(|w| w.less(gap_ms)),
            _ => self.window_watermark,
        }
    }

    fn prefix(&self, kind: u8) -> Vec<u8> {
        let mut k = Vec::with_capacity(64);
        k.extend_from_slice(&self.id.to_be_bytes());
        k.push(kind);
        k
    }

    fn eval(&self, exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        exprs
            .iter()
            .map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?))
            .collect()
    }

    /// Fold `rows` into the state.
    pub fn on_input(&mut self, rows: &Rows, ctx: &mut Ctx) -> Result<()> {
        let batch = &rows.batch;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        // Over rows that change, a deletion needs only the identities.
        let deletes = self.retraction.is_some() && rows.change == Change::Delete;
        let mut args = match deletes {
            true => Vec::new(),
            false => self.eval(&self.args, batch)?,
        };
        for (arg, filter) in args.iter_mut().zip(&self.filters) {
            if let Some(filter) = filter {
                *arg = only_where(arg, filter, batch)?;
            }
        }
        let values: Vec<Option<RowBytes>> = self
            .specs
            .iter()
            .zip(&args)
            .map(|(s, a)| s.encode_values(a))
            .collect::<Result<_>>()?;
        for set in 0..self.key_sets.len() {
            let keys = match self.key_sets[set].is_empty() || deletes {
                true => None,
                false => Some(
                    self.key_rows
                        .convert_columns(&self.eval(&self.key_sets[set], batch)?)?,
                ),
            };
            let key_of = |i: usize| -> &[u8] { keys.as_ref().map_or(&[][..], |k| k.row(i).data()) };
            self.fold(rows, set, &key_of, &args, &values)?;
        }
        ctx.check_state(self.state_bytes)
    }

    /// Fold `rows` into the groups of grouping set `set`, whose keys `key_of` gives.
    fn fold<'k>(
        &mut self,
        rows: &Rows,
        set: usize,
        key_of: &dyn Fn(usize) -> &'k [u8],
        args: &[ArrayRef],
        values: &[Option<RowBytes>],
    ) -> Result<()> {
        let batch = &rows.batch;
        let n = batch.num_rows();
        if let Some(mut r) = self.retraction.take() {
            let done = self.apply_changes(&mut r, rows, set, key_of, args, values);
            self.retraction = Some(r);
            return done;
        }
        match self.grouping {
            Grouping::Unbounded => {
                let mut bytes = 0;
                for i in 0..n {
                    let g = self.unbounded.intern(key_of(i), &self.specs, &mut bytes);
                    self.fold_unbounded(g, args, values, i, &mut bytes);
                }
                self.state_bytes += bytes;
            }
            Grouping::Fixed {
                start_col,
                end_col,
                size_ms,
            } => {
                let starts = start_col.map(|c| times(batch.column(c))).transpose()?;
                let ends = end_col.map(|c| times(batch.column(c))).transpose()?;
                let size = size_ms.unwrap_or(0);
                let bounds = |i: usize| -> (i64, i64) {
                    match (&starts, &ends) {
                        (Some(s), Some(e)) => (s.value(i), e.value(i)),
                        (Some(s), None) => (s.value(i), s.value(i) + size),
                        (None, Some(e)) => (e.value(i) - size, e.value(i)),
                        (None, None) => unreachable!("compile requires a window column"),
                    }
                };
                let mut by_window: Vec<(i64, i64, Vec<u32>)> = Vec::new();
                for i in 0..n {
                    let (s, e) = bounds(i);
                    match by_window.iter_mut().find(|w| w.1 == e) {
                        Some(w) => w.2.push(i as u32),
                        None => by_window.push((s, e, vec![i as u32])),
                    }
                }
                let mut bytes = 0;
                for (s, e, list) in by_window {
                    if self.window_watermark.is_some_and(|w| w.completes(e)) {
                        return Err(EngineError::Bug(format!(
                            "a row for window ending {e} reached an aggregate whose window \
                             watermark is {:?}",
                            self.window_watermark
                        )));
                    }
                    let mut groups = self.windows.remove(&e).unwrap_or_else(|| Groups {
                        start: s,
                        ..Groups::default()
                    });
                    for i in list {
                        let i = i as usize;
                        let g = groups.intern(key_of(i), &self.specs, &mut bytes);
                        for (a, spec) in self.specs.iter().enumerate() {
                            let acc = &mut groups.accs[g as usize * self.specs.len() + a];
                            bytes += spec.update(acc, &args[a], values[a].as_ref(), i);
                        }
                        groups.touch(g);
                    }
                    self.windows.insert(e, groups);
                }
                self.state_bytes += bytes;
            }
            Grouping::Session { start_col, gap_ms } => {
                let starts = times(batch.column(start_col))?;
                for i in 0..n {
                    let t = starts.value(i);
                    self.session_row(key_of(i), t, t + gap_ms, args, values, i);
                }
            }
        }
        Ok(())
    }

    /// Fold rows that change into the unbounded groups: each row first takes back what
    /// its identity's previous version added (a row earlier in the batch, or one in the
    /// state); an upsert then adds the row, a deletion only removes it. Under several
    /// grouping sets, a row's part in set `set`'s group is kept under its identity and the
    /// set's number.
    fn apply_changes<'k>(
        &mut self,
        r: &mut Retraction,
        rows: &Rows,
        set: usize,
        key_of: &dyn Fn(usize) -> &'k [u8],
        args: &[ArrayRef],
        values: &[Option<RowBytes>],
    ) -> Result<()> {
        let origin = rows.origin.as_ref().ok_or_else(|| {
            EngineError::Bug("rows that change reached an aggregate without identities".into())
        })?;
        let mut ids = origin.identities();
        if self.key_sets.len() > 1 {
            for id in &mut ids {
                id.extend_from_slice(&(set as u16).to_be_bytes());
            }
        }
        let adds = matches!(rows.change, Change::Upsert(_));
        let mut last: HashMap<&[u8], usize> = HashMap::with_capacity(ids.len());
        let mut prior = Vec::with_capacity(ids.len());
        let mut stored: Vec<&Contribution> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            prior.push(match last.insert(id, i) {
                // A deletion's earlier deletion already took the row back.
                Some(j) => adds.then_some(Prior::Batch(j)),
                None => r.rows.get(&id[..]).map(|c| {
                    stored.push(c);
                    Prior::Stored(stored.len() - 1)
                }),
            });
        }
        let arg_bytes = match &r.arg_rows {
            Some(conv) if adds => Some(conv.convert_columns(args)?),
            _ => None,
        };
        // A row whose new version is its old one (same group, same arguments: an inner
        // group written again unchanged) is left as it is.
        let unchanged: Vec<bool> = (0..ids.len())
            .map(|i| match prior[i] {
                Some(Prior::Stored(k)) if adds && last[&ids[i][..]] == i => {
                    let c = stored[k];
                    self.unbounded.index.get(key_of(i)) == Some(&c.group)
                        && arg_bytes
                            .as_ref()
                            .is_none_or(|a| a.row(i).data() == &c.args[..])
                }
                _ => false,
            })
            .collect();
        let old_groups: Vec<u32> = stored.iter().map(|c| c.group).collect();
        let old_args = match (&r.arg_rows, stored.is_empty()) {
            (Some(conv), false) => {
                let parser = conv.parser();
                conv.convert_rows(stored.iter().map(|c| parser.parse(&c.args)))?
            }
            _ => Vec::new(),
        };
        let old_values: Vec<Option<RowBytes>> = match old_args.is_empty() {
            true => self.specs.iter().map(|_| None).collect(),
            false => self
                .specs
                .iter()
                .zip(&old_args)
                .map(|(s, a)| s.encode_values(a))
                .collect::<Result<_>>()?,
        };
        let mut added = vec![u32::MAX; ids.len()];
        let (mut bytes, mut freed) = (0, 0);
        for (i, p) in prior.into_iter().enumerate() {
            if unchanged[i] {
                continue;
            }
            match p {
                Some(Prior::Batch(j)) => freed += self.take_back(r, added[j], args, values, j),
                Some(Prior::Stored(k)) => {
                    freed += self.take_back(r, old_groups[k], &old_args, &old_values, k)
                }
                None => {}
            }
            if adds {
                let g = self.unbounded.intern(key_of(i), &self.specs, &mut bytes);
                self.fold_unbounded(g, args, values, i, &mut bytes);
                self.unbounded.live[g as usize] += 1;
                added[i] = g;
            }
        }
        for (id, i) in last {
            if unchanged[i] {
                continue;
            }
            let id: Box<[u8]> = id.into();
            let old = match adds {
                true => {
                    let c = Contribution {
                        group: added[i],
                        args: arg_bytes
                            .as_ref()
                            .map_or_else(Box::default, |a| a.row(i).data().into()),
                    };
                    bytes += c.bytes(&id);
                    r.rows.insert(id.clone(), c)
                }
                false => r.rows.remove(&id),
            };
            if adds || old.is_some() {
                r.dirty.insert(id.clone());
            }
            freed += old.map_or(0, |c| c.bytes(&id));
        }
        self.state_bytes = (self.state_bytes + bytes).saturating_sub(freed);
        Ok(())
    }

    /// Take row `i` of `args` back out of unbounded group `g`; returns the bytes freed.
    fn take_back(
        &mut self,
        r: &mut Retraction,
        g: u32,
        args: &[ArrayRef],
        values: &[Option<RowBytes>],
        i: usize,
    ) -> usize {
        let na = self.specs.len();
        let gi = g as usize;
        let groups = &mut self.unbounded;
        if groups.live[gi] == 1 {
            r.emptied
                .insert(g, groups.accs[gi * na..(gi + 1) * na].to_vec());
        }
        let mut freed = 0;
        for (a, spec) in self.specs.iter().enumerate() {
            freed += spec.retract(
                &mut groups.accs[gi * na + a],
                &args[a],
                values[a].as_ref(),
                i,
            );
        }
        groups.live[gi] -= 1;
        if groups.live[gi] == 0 {
            // Empty: it starts again from nothing (a float sum's rounding goes too).
            for (a, spec) in self.specs.iter().enumerate() {
                let acc = &mut groups.accs[gi * na + a];
                freed += acc.heap_bytes();
                *acc = spec.init();
            }
        }
        groups.touch(g);
        freed
    }

    fn fold_unbounded(
        &mut self,
        g: u32,
        args: &[ArrayRef],
        values: &[Option<RowBytes>],
        i: usize,
        bytes: &mut usize,
    ) {
        let groups = &mut self.unbounded;
        for (a, spec) in self.specs.iter().enumerate() {
            let acc = &mut groups.accs[g as usize * self.specs.len() + a];
            *bytes += spec.update(acc, &args[a], values[a].as_ref(), i);
        }
        groups.touch(g);
    }

    fn session_row(
        &mut self,
        key: &[u8],
        t: i64,
        e: i64,
        args: &[ArrayRef],
        values: &[Option<RowBytes>],
        i: usize,
    ) {
        let mut list = match self.sessions.remove(key) {
            Some(l) => l,
            None => {
                self.state_bytes += key.len() + 64;
                Vec::new()
            }
        };
        let mut merged = Session {
            start: t,
            end: e,
            accs: self.specs.iter().map(AggSpec::init).collect(),
            stored_start: None,
            dirty: true,
            written: None,
            changed: true,
        };
        let mut absorbed = Vec::new();
        let mut j = 0;
        let mut first = true;
        while j < list.len() {
            let s = &list[j];
            // Sessions that touch merge, as in Flink: an event exactly one gap after the
            // last one (`t == s.end`) or one gap before the first (`e == s.start`) joins.
            if s.start <= e && t <= s.end {
                let s = list.swap_remove(j);
                self.session_ends.remove(&(s.end, key.into(), s.start));
                merged.start = merged.start.min(s.start);
                merged.end = merged.end.max(s.end);
                if first {
                    // Keep the first overlapping session's storage key for the merge.
                    merged.stored_start = s.stored_start;
                    first = false;
                } else if let Some(st) = s.stored_start {
                    self.pending_deletes.push(self.session_key(key, st));
                }
                absorbed.push(s);
            } else {
                j += 1;
            }
        }
        for s in absorbed {
            // A row written under the merged bounds stays (the next one replaces it); rows
            // under other bounds no longer name a session and are deleted, computed from
            // their session's values.
            match s.written {
                Some(bounds)
                    if merged.written.is_none() && bounds == (merged.start, merged.end) =>
                {
                    merged.written = Some(bounds);
                }
                Some((start, end)) => {
                    self.sessions_gone.push(GoneSession {
                        key: key.into(),
                        start,
                        end,
                        accs: s.accs.clone(),
                    });
                    self.sessions_gone_dirty = true;
                }
                None => {}
            }
            for (a, (spec, acc)) in self.specs.iter().zip(s.accs).enumerate() {
                spec.merge(&mut merged.accs[a], acc);
            }
            self.state_bytes = self.state_bytes.saturating_sub(40 * self.specs.len());
        }
        for (a, spec) in self.specs.iter().enumerate() {
            self.state_bytes += spec.update(&mut merged.accs[a], &args[a], values[a].as_ref(), i);
        }
        self.state_bytes += 40 * self.specs.len() + 32;
        self.session_ends
            .insert((merged.end, key.into(), merged.start));
        list.push(merged);
        self.sessions.insert(key.into(), list);
    }

    fn session_key(&self, key: &[u8], start: i64) -> Vec<u8> {
        let mut k = self.prefix(KIND_SESSION);
        put_bytes(&mut k, key);
        k.extend_from_slice(&sortable(start));
        k
    }

    /// The input's window watermark moved to `wm`: emit what it completes.
    pub fn on_watermark(&mut self, wm: Option<Watermark>, ctx: &mut Ctx) -> Result<Vec<Rows>> {
        let Some(wm) = wm else { return Ok(Vec::new()) };
        if self.window_watermark.is_some_and(|w| wm < w) {
            return Ok(Vec::new());
        }
        self.window_watermark = Some(wm);
        let mut out = Vec::new();
        match self.grouping {
            Grouping::Fixed { .. } => {
                while let Some((&e, _)) = self.windows.first_key_value() {
                    if !wm.completes(e) {
                        break;
                    }
                    let groups = self.windows.remove(&e).expect("first key exists");
                    let all: Vec<u32> = (0..groups.keys.len() as u32).collect();
                    out.push(self.emit(&groups, Some((groups.start, e)), &all, RowState::Final)?);
                    let prefix = self.fixed_prefix(e);
                    for (g, key) in groups.keys.iter().enumerate() {
                        if groups.persisted[g] {
                            let mut k = prefix.clone();
                            k.extend_from_slice(key);
                            self.pending_deletes.push(k);
                        }
                    }
                    self.state_bytes = self.state_bytes.saturating_sub(
                        groups
                            .keys
                            .iter()
                            .map(|k| group_bytes(k, self.specs.len()))
                            .sum::<usize>()
                            + groups.accs.iter().map(Acc::heap_bytes).sum::<usize>(),
                    );
                }
            }
            Grouping::Session { gap_ms, .. } => {
                // A session ending at `e` is final only once no on-time event can still
                // join it: such an event at `t` has `t + gap > wm`, and it touches the
                // session when `t <= e`, so the session is safe once `e <= wm - gap`.
                let close = wm.less(gap_ms);
                let mut closed = Vec::new();
                while let Some(first) = self.session_ends.first() {
                    if !close.completes(first.0) {
                        break;
                    }
                    let (end, key, start) = self.session_ends.pop_first().expect("first exists");
                    let list = self.sessions.get_mut(&key).expect("indexed sessions exist");
                    let at = list
                        .iter()
                        .position(|s| s.start == start && s.end == end)
                        .expect("the index matches the sessions");
                    let s = list.swap_remove(at);
                    if list.is_empty() {
                        self.sessions.remove(&key);
                    }
                    if let Some(st) = s.stored_start {
                        self.pending_deletes.push(self.session_key(&key, st));
                    }
                    self.state_bytes = self.state_bytes.saturating_sub(
                        40 * self.specs.len()
                            + 32
                            + s.accs.iter().map(Acc::heap_bytes).sum::<usize>(),
                    );
                    closed.push((key, s));
                }
                if !closed.is_empty() {
                    let closed = closed.iter().map(|(k, s)| (&k[..], s));
                    out.push(self.emit_sessions(closed, RowState::Final)?);
                }
            }
            Grouping::Unbounded => {}
        }
        let _ = ctx;
        Ok(out)
    }

    /// At a commit: provisional rows of changed open groups (root aggregates only), or at
    /// the end of the stream, every unbounded group as final.
    pub fn on_commit(&mut self, ctx: &mut Ctx) -> Result<Vec<Rows>> {
        let mut out = Vec::new();
        match self.grouping {
            Grouping::Unbounded => {
                let mut groups = std::mem::take(&mut self.unbounded);
                for key in &self.always {
                    if !groups.index.contains_key(key) {
                        // A group there from the first commit, input or not (COUNT 0,
                        // SUM NULL), as batch gives it.
                        let mut bytes = 0;
                        let g = groups.intern(key, &self.specs, &mut bytes);
                        groups.touch(g);
                        self.state_bytes += bytes;
                    }
                }
                let (mut list, state): (Vec<u32>, _) = if ctx.end_of_stream {
                    ((0..groups.keys.len() as u32).collect(), RowState::Final)
                } else {
                    (groups.emit_dirty.clone(), RowState::Provisional)
                };
                let always = |g: u32| self.always.contains(&groups.keys[g as usize]);
                if let Some(r) = self.retraction.as_mut() {
                    // Groups whose input rows all went are deleted (if they changed since
                    // they were last written, they were written), computed from the
                    // values they had with their last row.
                    let emptied = std::mem::take(&mut r.emptied);
                    let (live, empty): (Vec<u32>, Vec<u32>) = list
                        .into_iter()
                        .partition(|&g| always(g) || groups.live[g as usize] > 0);
                    let gone: Vec<u32> = empty
                        .into_iter()
                        .filter(|&g| groups.in_emit[g as usize])
                        .collect();
                    if !gone.is_empty() {
                        let na = self.specs.len();
                        let slots = |g: u32| g as usize * na..(g as usize + 1) * na;
                        for &g in &gone {
                            if let Some(accs) = emptied.get(&g) {
                                groups.accs.splice(slots(g), accs.iter().cloned());
                            }
                        }
                        let mut rows = self.emit(&groups, None, &gone, state)?;
                        rows.change = Change::Delete;
                        out.push(rows);
                        for &g in &gone {
                            let fresh: Vec<Acc> = self.specs.iter().map(AggSpec::init).collect();
                            groups.accs.splice(slots(g), fresh);
                        }
                    }
                    list = live;
                }
                if !list.is_empty() {
                    out.push(self.emit(&groups, None, &list, state)?);
                }
                for g in groups.emit_dirty.drain(..) {
                    groups.in_emit[g as usize] = false;
                }
                self.unbounded = groups;
            }
            Grouping::Fixed { .. } => {
                // Open windows at the emit interval (`on_update`); windows the stream
                // watermark has passed at every commit (`late_data = 'update'`).
                let limit = if self.emit_updates && ctx.emit_due {
                    Some(i64::MAX)
                } else {
                    self.amend_lateness_ms
                        .zip(self.window_watermark)
                        .map(|(l, w)| w.more(l).0)
                };
                let Some(limit) = limit else { return Ok(out) };
                let ends: Vec<i64> = self.windows.range(..=limit).map(|(e, _)| *e).collect();
                for e in ends {
                    let mut groups = self.windows.remove(&e).expect("listed");
                    if !groups.emit_dirty.is_empty() {
                        let list = groups.emit_dirty.clone();
                        out.push(self.emit(
                            &groups,
                            Some((groups.start, e)),
                            &list,
                            RowState::Provisional,
                        )?);
                        for g in groups.emit_dirty.drain(..) {
                            groups.in_emit[g as usize] = false;
                        }
                    }
                    self.windows.insert(e, groups);
                }
            }
            Grouping::Session { gap_ms, .. } => {
                // Changed sessions at the emit interval (`on_update`); sessions the stream
                // watermark has completed at every commit (`late_data = 'update'`).
                let limit = if self.emit_updates && ctx.emit_due {
                    Some(i64::MAX)
                } else {
                    self.amend_lateness_ms
                        .zip(self.window_watermark)
                        .map(|(l, w)| w.more(l).less(gap_ms).0)
                };
                let Some(limit) = limit else { return Ok(out) };
                if !self.sessions_gone.is_empty() {
                    let gone = std::mem::take(&mut self.sessions_gone);
                    self.sessions_gone_dirty = true;
                    out.push(self.session_deletions(&gone)?);
                }
                let mut sessions = std::mem::take(&mut self.sessions);
                let due: Vec<(&[u8], &Session)> = sessions
                    .iter()
                    .flat_map(|(k, list)| list.iter().map(move |s| (&k[..], s)))
                    .filter(|(_, s)| s.changed && s.end <= limit)
                    .collect();
                if !due.is_empty() {
                    out.push(self.emit_sessions(due.into_iter(), RowState::Provisional)?);
                    for s in sessions.values_mut().flatten() {
                        if s.changed && s.end <= limit {
                            s.changed = false;
                            s.written = Some((s.start, s.end));
                            s.dirty = true;
                        }
                    }
                }
                self.sessions = sessions;
            }
        }
        Ok(out)
    }

    /// Deletions of written provisional session rows (only their keys mean anything).
    fn session_deletions(&self, gone: &[GoneSession]) -> Result<Rows> {
        let n = gone.len();
        let keys = self.key_columns(gone.iter().map(|g| &g.key[..]), n)?;
        let aggs = self
            .specs
            .iter()
            .enumerate()
            .map(|(a, spec)| spec.evaluate(gone.iter().map(|g| &g.accs[a])))
            .collect::<Result<Vec<_>>>()?;
        let starts: ArrayRef = Arc::new(TimestampMillisecondArray::from_iter_values(
            gone.iter().map(|g| g.start),
        ));
        let ends: ArrayRef = Arc::new(TimestampMillisecondArray::from_iter_values(
            gone.iter().map(|g| g.end),
        ));
        let mut rows = self.assemble(keys, Some((starts, ends)), aggs, n, RowState::Provisional)?;
        rows.change = Change::Delete;
        if self.identifies_rows {
            rows.origin = Some(windowed_identities(
                gone.iter().map(|g| (&g.key[..], g.start)),
            ));
        }
        Ok(rows)
    }

    fn fixed_prefix(&self, end: i64) -> Vec<u8> {
        let mut k = self.prefix(KIND_FIXED);
        k.extend_from_slice(&sortable(end));
        k
    }

    fn encode_accs(&self, accs: &[Acc], out: &mut Vec<u8>) {
        for a in accs {
            a.encode(out);
        }
    }

    /// State changes since the last checkpoint.
    pub fn checkpoint(&mut self, puts: &mut Vec<(Vec<u8>, Vec<u8>)>, deletes: &mut Vec<Vec<u8>>) {
        deletes.append(&mut self.pending_deletes);
        let na = self.specs.len();
        let mut windows = std::mem::take(&mut self.windows);
        for (&e, groups) in windows.iter_mut() {
            let prefix = self.fixed_prefix(e);
            for g in groups.ckpt_dirty.drain(..) {
                let gi = g as usize;
                groups.in_ckpt[gi] = false;
                groups.persisted[gi] = true;
                let mut k = prefix.clone();
                k.extend_from_slice(&groups.keys[gi]);
                let mut v = groups.start.to_le_bytes().to_vec();
                self.encode_accs(&groups.accs[gi * na..(gi + 1) * na], &mut v);
                puts.push((k, v));
            }
        }
        self.windows = windows;
        let mut groups = std::mem::take(&mut self.unbounded);
        let prefix = self.prefix(KIND_UNBOUNDED);
        let retracts = self.retraction.is_some();
        for g in groups.ckpt_dirty.drain(..) {
            let gi = g as usize;
            groups.in_ckpt[gi] = false;
            let mut k = prefix.clone();
            k.extend_from_slice(&groups.keys[gi]);
            if retracts && groups.live[gi] == 0 && !self.always.contains(&groups.keys[gi]) {
                // A group without rows is not kept: once its deletion is written, its
                // slot is free for another group.
                if std::mem::take(&mut groups.persisted[gi]) {
                    deletes.push(k);
                }
                if !groups.in_emit[gi] {
                    let key = std::mem::take(&mut groups.keys[gi]);
                    groups.index.remove(&key);
                    groups.free.push(g);
                    self.state_bytes = self
                        .state_bytes
                        .saturating_sub(group_bytes(&key, self.specs.len()));
                }
                continue;
            }
            groups.persisted[gi] = true;
            let mut v = Vec::new();
            self.encode_accs(&groups.accs[gi * na..(gi + 1) * na], &mut v);
            puts.push((k, v));
        }
        self.unbounded = groups;
        let prefix = self.prefix(KIND_CONTRIBUTION);
        if let Some(r) = self.retraction.as_mut() {
            for id in r.dirty.drain() {
                let mut k = prefix.clone();
                k.extend_from_slice(&id);
                match r.rows.get(&id) {
                    Some(c) => {
                        let mut v = Vec::new();
                        put_bytes(&mut v, &self.unbounded.keys[c.group as usize]);
                        v.extend_from_slice(&c.args);
                        puts.push((k, v));
                    }
                    None => deletes.push(k),
                }
            }
        }
        let mut sessions = std::mem::take(&mut self.sessions);
        for (key, list) in sessions.iter_mut() {
            for s in list.iter_mut().filter(|s| s.dirty) {
                if let Some(old) = s.stored_start.filter(|&st| st != s.start) {
                    deletes.push(self.session_key(key, old));
                }
                let mut v = s.end.to_le_bytes().to_vec();
                self.encode_accs(&s.accs, &mut v);
                // The bounds of its written provisional row follow, when it has one.
                if let Some((start, end)) = s.written {
                    v.extend_from_slice(&start.to_le_bytes());
                    v.extend_from_slice(&end.to_le_bytes());
                }
                puts.push((self.session_key(key, s.start), v));
                s.stored_start = Some(s.start);
                s.dirty = false;
            }
        }
        self.sessions = sessions;
        if std::mem::take(&mut self.sessions_gone_dirty) {
            let key = self.prefix(KIND_SESSIONS_GONE);
            if self.sessions_gone.is_empty() {
                deletes.push(key);
            } else {
                let mut v = Vec::new();
                for g in &self.sessions_gone {
                    put_bytes(&mut v, &g.key);
                    v.extend_from_slice(&g.start.to_le_bytes());
                    v.extend_from_slice(&g.end.to_le_bytes());
                    let mut accs = Vec::new();
                    self.encode_accs(&g.accs, &mut accs);
                    put_bytes(&mut v, &accs);
                }
                puts.push((key, v));
            }
        }
    }

    /// Load this operator's entries (keys start with its id) from a checkpoint.
    pub fn restore(&mut self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let na = self.specs.len();
        for (k, v) in entries {
            let mut key = &k[2..];
            let kind = key[0];
            key = &key[1..];
            let mut val = &v[..];
            let decode_accs = |val: &mut &[u8]| -> Result<Vec<Acc>> {
                (0..na).map(|_| Acc::decode(val)).collect()
            };
            match kind {
                KIND_FIXED => {
                    let e = unsortable(take8(&mut key)?);
                    let start = i64::from_le_bytes(take8(&mut val)?);
                    let accs = decode_accs(&mut val)?;
                    let groups = self.windows.entry(e).or_insert_with(|| Groups {
                        start,
                        ..Groups::default()
                    });
                    let mut bytes = 0;
                    let g = groups.intern(key, &self.specs, &mut bytes);
                    bytes += accs.iter().map(Acc::heap_bytes).sum::<usize>();
                    let gi = g as usize;
                    groups.accs.splice(gi * na..(gi + 1) * na, accs);
                    groups.persisted[gi] = true;
                    // Whether its last provisional row was committed is unknown; writing
                    // the same row again is harmless.
                    groups.mark_emit(g);
                    self.state_bytes += bytes;
                }
                KIND_UNBOUNDED => {
                    let accs = decode_accs(&mut val)?;
                    let mut bytes = accs.iter().map(Acc::heap_bytes).sum::<usize>();
                    let g = self.unbounded.intern(key, &self.specs, &mut bytes) as usize;
                    self.unbounded.accs.splice(g * na..(g + 1) * na, accs);
                    self.unbounded.persisted[g] = true;
                    self.state_bytes += bytes;
                }
                KIND_SESSION => {
                    let skey: Box<[u8]> = get_bytes(&mut key)?.into();
                    let start = unsortable(take8(&mut key)?);
                    let end = i64::from_le_bytes(take8(&mut val)?);
                    let accs = decode_accs(&mut val)?;
                    let written = match val.is_empty() {
                        true => None,
                        false => Some((
                            i64::from_le_bytes(take8(&mut val)?),
                            i64::from_le_bytes(take8(&mut val)?),
                        )),
                    };
                    self.state_bytes += skey.len() + 40 * na + 96;
                    self.session_ends.insert((end, skey.clone(), start));
                    self.sessions.entry(skey).or_default().push(Session {
                        start,
                        end,
                        accs,
                        stored_start: Some(start),
                        dirty: false,
                        // Whether its last provisional row was committed is unknown:
                        // writing it again is harmless.
                        changed: true,
                        written,
                    });
                }
                KIND_CONTRIBUTION => {
                    let group = get_bytes(&mut val)?;
                    let r = self.retraction.as_mut().ok_or_else(|| {
                        EngineError::Bug(
                            "a checkpoint holds input rows of an aggregate that keeps none".into(),
                        )
                    })?;
                    let mut bytes = 0;
                    let g = self.unbounded.intern(group, &self.specs, &mut bytes);
                    self.unbounded.live[g as usize] += 1;
                    let c = Contribution {
                        group: g,
                        args: val.into(),
                    };
                    bytes += c.bytes(key);
                    r.rows.insert(key.into(), c);
                    self.state_bytes += bytes;
                }
                KIND_SESSIONS_GONE => {
                    while !val.is_empty() {
                        let key: Box<[u8]> = get_bytes(&mut val)?.into();
                        let start = i64::from_le_bytes(take8(&mut val)?);
                        let end = i64::from_le_bytes(take8(&mut val)?);
                        let mut accs = get_bytes(&mut val)?;
                        let accs = decode_accs(&mut accs)?;
                        self.sessions_gone.push(GoneSession {
                            key,
                            start,
                            end,
                            accs,
                        });
                    }
                }
                other => {
                    return Err(EngineError::Bug(format!(
                        "unknown aggregate state kind {other} in a checkpoint"
                    )));
                }
            }
        }
        Ok(())
    }

    fn key_columns<'a>(
        &self,
        keys: impl Iterator<Item = &'a [u8]>,
        n: usize,
    ) -> Result<Vec<ArrayRef>> {
        if self.key_sets[0].is_empty() {
            return Ok(Vec::new());
        }
        let parser = self.key_rows.parser();
        let rows: Vec<_> = keys.map(|k| parser.parse(k)).collect();
        debug_assert_eq!(rows.len(), n);
        Ok(self.key_rows.convert_rows(rows)?)
    }

    fn assemble(
        &self,
        keys: Vec<ArrayRef>,
        windows: Option<(ArrayRef, ArrayRef)>,
        aggs: Vec<ArrayRef>,
        n: usize,
        state: RowState,
    ) -> Result<Rows> {
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for col in &self.layout {
            columns.push(match col {
                GroupCol::Key(i) => keys[*i].clone(),
                GroupCol::WindowStart => windows.as_ref().expect("windowed").0.clone(),
                GroupCol::WindowEnd => windows.as_ref().expect("windowed").1.clone(),
            });
        }
        columns.extend(aggs);
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        Ok(Rows {
            batch,
            origin: None,
            change: Change::Upsert(state),
        })
    }

    fn emit(
        &self,
        groups: &Groups,
        window: Option<(i64, i64)>,
        list: &[u32],
        state: RowState,
    ) -> Result<Rows> {
        let n = list.len();
        let na = self.specs.len();
        let keys = self.key_columns(list.iter().map(|&g| &groups.keys[g as usize][..]), n)?;
        let aggs = self
            .specs
            .iter()
            .enumerate()
            .map(|(a, spec)| spec.evaluate(list.iter().map(|&g| &groups.accs[g as usize * na + a])))
            .collect::<Result<Vec<_>>>()?;
        let windows = window.map(|(s, e)| {
            (
                Arc::new(TimestampMillisecondArray::from(vec![s; n])) as ArrayRef,
                Arc::new(TimestampMillisecondArray::from(vec![e; n])) as ArrayRef,
            )
        });
        let mut rows = self.assemble(keys, windows, aggs, n, state)?;
        if self.identifies_rows {
            let keys = list.iter().map(|&g| &groups.keys[g as usize][..]);
            rows.origin = Some(match window {
                None => Origin::hashed(keys),
                Some((start, _)) => windowed_identities(keys.map(|k| (k, start))),
            });
        }
        Ok(rows)
    }

    fn emit_sessions<'a>(
        &self,
        sessions: impl Iterator<Item = (&'a [u8], &'a Session)>,
        state: RowState,
    ) -> Result<Rows> {
        let sessions: Vec<(&[u8], &Session)> = sessions.collect();
        let n = sessions.len();
        let keys = self.key_columns(sessions.iter().map(|(k, _)| *k), n)?;
        let aggs = self
            .specs
            .iter()
            .enumerate()
            .map(|(a, spec)| spec.evaluate(sessions.iter().map(|(_, s)| &s.accs[a])))
            .collect::<Result<Vec<_>>>()?;
        let starts: ArrayRef = Arc::new(TimestampMillisecondArray::from_iter_values(
            sessions.iter().map(|(_, s)| s.start),
        ));
        let ends: ArrayRef = Arc::new(TimestampMillisecondArray::from_iter_values(
            sessions.iter().map(|(_, s)| s.end),
        ));
        let mut rows = self.assemble(keys, Some((starts, ends)), aggs, n, state)?;
        if self.identifies_rows {
            rows.origin = Some(windowed_identities(
                sessions.iter().map(|(k, s)| (*k, s.start)),
            ));
        }
        Ok(rows)
    }
}

/// The keys of grouping sets whose key expressions are all literals (the sets that leave
/// out every GROUP BY column: a NULL literal each, and `__grouping_id`'s literal).
fn constant_keys(
    key_sets: &[&[Arc<dyn PhysicalExpr>]],
    key_rows: &RowConverter,
) -> Result<Vec<Box<[u8]>>> {
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(arrow_schema::Schema::empty()),
        Vec::new(),
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let mut keys = Vec::new();
    for set in key_sets {
        let literals = set.iter().all(|e| {
            e.downcast_ref::<datafusion::physical_expr::expressions::Literal>()
                .is_some()
        });
        if !literals {
            return Err(EngineError::Bug(
                "a grand total's key is not made of literals".into(),
            ));
        }
        let columns = set
            .iter()
            .map(|e| Ok(e.evaluate(&one_row)?.into_array(1)?))
            .collect::<Result<Vec<_>>>()?;
        keys.push(key_rows.convert_columns(&columns)?.row(0).data().into());
    }
    Ok(keys)
}

/// Positions of a window's rows read by an operator that tells them apart: a hash of each
/// row's group key and window start (a key's rows of two windows are two rows).
fn windowed_identities<'a>(rows: impl Iterator<Item = (&'a [u8], i64)>) -> Origin {
    let ids: Vec<Vec<u8>> = rows
        .map(|(key, start)| [key, &start.to_be_bytes()[..]].concat())
        .collect();
    Origin::hashed(ids.iter().map(Vec::as_slice))
}

fn times(col: &ArrayRef) -> Result<TimestampMillisecondArray> {
    crate::source::times_ms(col)
}
