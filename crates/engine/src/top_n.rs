//! Top-N per group: `ROW_NUMBER() OVER (PARTITION BY keys ORDER BY ...)` kept to the rows
//! with `rn <= N` (`rn = 1`: the first row of each group, deduplication), or `RANK()` or
//! `DENSE_RANK()` kept the same way ([`Ranking`]: rows equal in every `ORDER BY` value share
//! a rank, so a group may keep more than N rows, and the rows kept do not depend on how
//! ties are broken).
//!
//! State per group is its rows ranked within N (N of them under `ROW_NUMBER()`, with every
//! row tied within the top N under `RANK()` and `DENSE_RANK()`), in `ORDER BY` order with
//! the row's log position as the tie-break, in the first `ORDER BY` key's direction:
//! earlier rows first for `ASC`, later rows first for `DESC`, so that `ORDER BY date_time
//! DESC` with `rn = 1` keeps the last row that arrived, as Flink's deduplication does. A
//! streaming run is deterministic; under `ROW_NUMBER()` a batch run breaks ties at the Nth
//! place its own way. Rows are written at commits, keyed by their log position (a
//! deduplication's by its group's columns, [`TopN::dedup_columns`]): every row of a group
//! that changed since the last commit, with its current rank, and a deletion of each
//! written row that has left the top N. Rows are provisional while their group can
//! change: groups of a window (the partition keys include the input's `window_start` or
//! `window_end`) become final, are written once more and are evicted when the window
//! watermark passes the window's end; other groups become final at the end of the streams.
//!
//! Input rows must carry positions: a stream's log positions (one per row, or one per
//! joined row for a join's rows), or, for an unbounded GROUP BY's rows, a hash of their
//! group key. Over rows that change (an unbounded GROUP BY's, an outer join's) the groups
//! are not per window and keep every row, not only the best N ([`TopN::retracting`]): a
//! row's new version replaces its old one (found by its positions), a deletion removes it,
//! and a row of the top N that leaves it, or is replaced by a version outside it, is
//! deleted at the commit, while a row below the top N that rises into it is written.

use crate::Ctx;
use crate::accumulate::{get_bytes, put_bytes, take8};
use crate::aggregate::{sortable, unsortable};
use crate::compile::bare_column;
use crate::error::{EngineError, Result};
use crate::ranked::Ranked;
use crate::rows::{Change, Origin, Rows};
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{SchemaRef, SortOptions};
use datafusion::physical_expr::PhysicalExpr;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use freshet_store::RowState;
use freshet_types::Watermark;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Bytes of one log position at the end of a row's order key: partition, offset, copy.
const POSITION_BYTES: usize = 16;

/// How a NULL position (an outer join's padded side) is kept in an order key: a partition
/// no log has, at offset 0, copy 0 (a hashed identity has it with odds of 2^-96).
const NULL_POSITION: (u32, u64, u32) = (u32::MAX, 0, 0);

/// A row that left its group's top N after a commit wrote it: (order key, row).
type Gone = (Box<[u8]>, Box<[u8]>);

/// Where a row is: its group's key and its order key.
type Version = (Box<[u8]>, Box<[u8]>);

/// One kept row: its values in Arrow's row format and whether a commit wrote it.
struct Kept {
    row: Box<[u8]>,
    written: bool,
}

/// One group's best rows, by order key (the `ORDER BY` values, then the log position).
#[derive(Default)]
struct Group {
    /// The end of the group's window, when the groups are per window.
    window_end: Option<i64>,
    rows: Ranked<Kept>,
    /// How many of its rows are written, over rows that change only (where rows below the
    /// top N are kept too: the commit stops looking for written rows below N once it has
    /// seen them all).
    written: usize,
}

/// The operator.
pub struct TopN {
    /// Operator id (prefix of its checkpoint keys).
    pub id: u16,
    /// Output schema: the input's columns and the rank.
    schema: SchemaRef,
    /// `PARTITION BY` expressions over the input.
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    /// `ORDER BY` expressions over the input.
    order_by: Vec<Arc<dyn PhysicalExpr>>,
    /// N.
    limit: usize,
    /// How rows are numbered.
    ranking: Ranking,
    /// Ties go to the later log position (the first `ORDER BY` key is descending).
    latest_first: bool,
    /// Where the group's window end comes from, when groups are per window.
    window_end: Option<WindowEnd>,
    /// Log positions per row, at the end of its order key.
    positions: usize,
    /// Whole input rows, to keep and to rebuild.
    values: RowConverter,
    /// Partition keys.
    keys: RowConverter,
    /// `ORDER BY` values, in their sort order.
    order: RowConverter,
    groups: HashMap<Box<[u8]>, Group>,
    /// Groups by window end, for eviction.
    ends: BTreeSet<(i64, Box<[u8]>)>,
    /// Groups changed since the last commit wrote them.
    changed: HashSet<Box<[u8]>>,
    /// Written rows that left the top N since the last commit: (order key, row).
    gone: Vec<Gone>,
    /// Groups changed or removed since the last checkpoint (over appending rows).
    ckpt_changed: HashSet<Box<[u8]>>,
    /// Over rows that change, where groups are large: the rows (group key, order key)
    /// added, removed or (un)written since the last checkpoint, one entry each.
    ckpt_rows: HashSet<Version>,
    /// Over rows that change: where each row is, by its positions (the end of its order
    /// key): its group and its order key.
    versions: Option<HashMap<Box<[u8]>, Version>>,
    state_bytes: usize,
    window_watermark: Option<Watermark>,
}

/// Where a per-window group's window end comes from in the input.
#[derive(Debug, Clone, Copy)]
pub enum WindowEnd {
    /// The input's `window_end` column.
    Column(usize),
    /// The input's `window_start` column plus the window's size (the scan dropped
    /// `window_end`).
    FromStart {
        /// The `window_start` column.
        start: usize,
        /// The window's size.
        size_ms: i64,
    },
}

/// How a group's rows are numbered, in `ORDER BY` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// `ROW_NUMBER()`: 1, 2, 3, ... whatever the ties.
    RowNumber,
    /// `RANK()`: rows equal in every `ORDER BY` value share the rank of the first of them;
    /// the next rank skips as many (1, 1, 3).
    Rank,
    /// `DENSE_RANK()`: as `RANK()`, without the gaps (1, 1, 2).
    DenseRank,
}

impl Ranking {
    /// The SQL function.
    pub fn function(self) -> &'static str {
        match self {
            Ranking::RowNumber => "ROW_NUMBER()",
            Ranking::Rank => "RANK()",
            Ranking::DenseRank => "DENSE_RANK()",
        }
    }

    /// The ranks of a group's first rows, as long as they are at most `limit`, given the
    /// rows' order keys in order, each ending in `tail` bytes (log positions) that do not
    /// count for ties; lazily, so that counting them allocates nothing.
    fn top_ranks<'a>(
        self,
        keys: impl Iterator<Item = &'a [u8]>,
        tail: usize,
        limit: usize,
    ) -> impl Iterator<Item = u64> {
        let mut previous: Option<&[u8]> = None;
        let mut rank = 0;
        keys.enumerate()
            .map_while(move |(i, key)| {
                let values = &key[..key.len().saturating_sub(tail)];
                let tied = previous == Some(values);
                rank = match self {
                    Ranking::RowNumber => i as u64 + 1,
                    Ranking::Rank if tied => rank,
                    Ranking::Rank => i as u64 + 1,
                    Ranking::DenseRank if tied => rank,
                    Ranking::DenseRank => rank + 1,
                };
                previous = Some(values);
                Some(rank)
            })
            .take_while(move |&r| r <= limit as u64)
    }
}

/// What [`TopN::new`] is built from.
pub struct TopNSpec {
    /// Output schema: the input's columns and the rank (`UInt64`).
    pub schema: SchemaRef,
    /// `PARTITION BY` expressions.
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    /// Their types.
    pub partition_types: Vec<arrow_schema::DataType>,
    /// `ORDER BY` expressions with their direction.
    pub order_by: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
    /// Their types.
    pub order_types: Vec<arrow_schema::DataType>,
    /// N.
    pub limit: usize,
    /// How rows are numbered.
    pub ranking: Ranking,
    /// Where the group's window end comes from, if groups are per window.
    pub window_end: Option<WindowEnd>,
    /// Log positions per input row: 1 for a stream's rows, one per joined row for a join's.
    pub positions: usize,
}

impl TopN {
    /// A new, empty operator.
    pub fn new(id: u16, spec: TopNSpec) -> Result<TopN> {
        let input_fields: Vec<SortField> = spec.schema.fields()[..spec.schema.fields().len() - 1]
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let (order_by, options): (Vec<_>, Vec<SortOptions>) = spec.order_by.into_iter().unzip();
        let latest_first = options.first().is_some_and(|o| o.descending);
        Ok(TopN {
            id,
            schema: spec.schema,
            partition_by: spec.partition_by,
            order_by,
            limit: spec.limit,
            ranking: spec.ranking,
            latest_first,
            window_end: spec.window_end,
            positions: spec.positions,
            values: RowConverter::new(input_fields)?,
            keys: RowConverter::new(
                spec.partition_types
                    .into_iter()
                    .map(SortField::new)
                    .collect(),
            )?,
            order: RowConverter::new(
                spec.order_types
                    .into_iter()
                    .zip(options)
                    .map(|(t, o)| SortField::new_with_options(t, o))
                    .collect(),
            )?,
            groups: HashMap::new(),
            ends: BTreeSet::new(),
            changed: HashSet::new(),
            gone: Vec::new(),
            ckpt_changed: HashSet::new(),
            ckpt_rows: HashSet::new(),
            versions: None,
            state_bytes: 0,
            window_watermark: None,
        })
    }

    /// The same operator over rows that change (groups not per window): it keeps every
    /// row, to know which rises into the top N when one leaves it.
    pub fn retracting(mut self) -> Result<TopN> {
        if self.window_end.is_some() {
            return Err(EngineError::Bug(
                "a top-N per window over rows that change".into(),
            ));
        }
        self.versions = Some(HashMap::new());
        Ok(self)
    }

    /// Whether it takes changed input rows' earlier versions back.
    pub fn retracts(&self) -> bool {
        self.versions.is_some()
    }

    /// Append row `i`'s positions to an order key, in tie order.
    fn push_positions(&self, origin: &Origin, i: usize, out: &mut Vec<u8>) {
        let mut level = Some(origin);
        while let Some(o) = level {
            let (p, offset, copy) = match o.partition.is_null(i) {
                true => NULL_POSITION,
                false => (o.partition.value(i), o.offset.value(i), o.copy.value(i)),
            };
            let mut position = [0u8; POSITION_BYTES];
            position[..4].copy_from_slice(&p.to_be_bytes());
            position[4..12].copy_from_slice(&offset.to_be_bytes());
            position[12..].copy_from_slice(&copy.to_be_bytes());
            out.extend(position.map(|b| self.tie_order(b)));
            level = o.paired.as_deref();
        }
    }

    /// The positions at the end of order key `sk`: the row's identity.
    fn identity<'a>(&self, sk: &'a [u8]) -> &'a [u8] {
        &sk[sk.len() - self.positions * POSITION_BYTES..]
    }

    /// Remove the row `id` names from its group, if it is kept; a written row is to be
    /// deleted at the commit (its new version, written at the same commit, wins).
    fn remove_version(&mut self, id: &[u8]) {
        let Some((key, sk)) = self.versions.as_mut().and_then(|v| v.remove(id)) else {
            return;
        };
        self.state_bytes = self
            .state_bytes
            .saturating_sub(VERSION_BYTES + 2 * sk.len());
        let Some(group) = self.groups.get_mut(&key) else {
            return;
        };
        if let Some(kept) = group.rows.remove(&sk) {
            self.state_bytes = self
                .state_bytes
                .saturating_sub(sk.len() + kept.row.len() + 48);
            self.ckpt_rows.insert((key.clone(), sk.clone()));
            if kept.written {
                group.written -= 1;
                self.gone.push((sk, kept.row));
            }
        }
        if group.rows.is_empty() {
            self.groups.remove(&key);
            self.state_bytes = self.state_bytes.saturating_sub(2 * key.len() + 64);
        }
        self.changed.insert(key);
    }

    /// Over rows that change, at a commit: the first N rows of each group in `keys` are
    /// to be written, and written rows below them have left the top N (to delete).
    fn settle_ranks(&mut self, keys: &[Box<[u8]>]) {
        for key in keys {
            let Some(group) = self.groups.get_mut(key) else {
                continue;
            };
            let tail = self.positions * POSITION_BYTES;
            let in_top = self
                .ranking
                .top_ranks(group.rows.iter().map(|(k, _)| &k[..]), tail, self.limit)
                .count();
            let mut seen = 0;
            for (at, (sk, kept)) in group.rows.iter_mut().enumerate() {
                if at >= in_top && seen == group.written {
                    break;
                }
                seen += usize::from(kept.written);
                let top = at < in_top;
                if kept.written != top {
                    kept.written = top;
                    if !top {
                        self.gone.push((sk.clone(), kept.row.clone()));
                    }
                    self.ckpt_rows.insert((key.clone(), sk.clone()));
                }
            }
            group.written = in_top;
        }
    }

    /// The `PARTITION BY` expressions over the input.
    pub fn partition_by(&self) -> &[Arc<dyn PhysicalExpr>] {
        &self.partition_by
    }

    /// N.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A deduplication's group columns (the input columns its `PARTITION BY` names, when it
    /// names only columns): under `ROW_NUMBER()` with N = 1 a group holds one row at a time,
    /// so these columns identify the rows it writes, and a group's new row replaces its old
    /// one in place.
    pub fn dedup_columns(&self) -> Option<Vec<usize>> {
        if self.limit != 1 || self.ranking != Ranking::RowNumber || self.partition_by.is_empty() {
            return None;
        }
        let mut columns: Vec<usize> = self
            .partition_by
            .iter()
            .map(bare_column)
            .collect::<Option<_>>()?;
        // `PARTITION BY a, a` keys by `a` once.
        let mut seen = HashSet::new();
        columns.retain(|c| seen.insert(*c));
        Some(columns)
    }

    /// Whether groups are per window (and leave the state when their window closes).
    pub fn per_window(&self) -> bool {
        self.window_end.is_some()
    }

    /// Approximate bytes of state held.
    pub fn state_bytes(&self) -> usize {
        self.state_bytes
    }

    /// Window ends at or before this have been written as final.
    pub fn window_watermark(&self) -> Option<Watermark> {
        self.window_watermark
    }

    fn eval(exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        exprs
            .iter()
            .map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?))
            .collect()
    }

    /// Ranks `rows` into their groups.
    pub fn on_input(&mut self, rows: &Rows, ctx: &Ctx) -> Result<()> {
        let batch = &rows.batch;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let origin = rows
            .origin
            .as_ref()
            .ok_or_else(|| EngineError::Bug("a top-N input row without its position".into()))?;
        if self.versions.is_some() && rows.change == Change::Delete {
            // A deletion needs only the row's positions.
            for i in 0..n {
                let mut id = Vec::with_capacity(self.positions * POSITION_BYTES);
                self.push_positions(origin, i, &mut id);
                self.remove_version(&id);
            }
            return ctx.check_state(self.state_bytes);
        }
        let keys = self
            .keys
            .convert_columns(&Self::eval(&self.partition_by, batch)?)?;
        let order = self
            .order
            .convert_columns(&Self::eval(&self.order_by, batch)?)?;
        let values = self.values.convert_columns(batch.columns())?;
        let (ends, end_offset_ms) = match self.window_end {
            None => (None, 0),
            Some(WindowEnd::Column(c)) => (Some(crate::source::times_ms(batch.column(c))?), 0),
            Some(WindowEnd::FromStart { start, size_ms }) => {
                (Some(crate::source::times_ms(batch.column(start))?), size_ms)
            }
        };
        for i in 0..n {
            // Without PARTITION BY every row is of the one group, whose key is empty (Arrow
            // converts no columns to no rows).
            let key: &[u8] = match self.partition_by.is_empty() {
                true => &[],
                false => keys.row(i).data(),
            };
            let origin_bytes = self.positions * POSITION_BYTES;
            let mut sort_key = Vec::with_capacity(order.row(i).as_ref().len() + origin_bytes);
            sort_key.extend_from_slice(order.row(i).as_ref());
            self.push_positions(origin, i, &mut sort_key);
            if self.versions.is_some() {
                let id = self.identity(&sort_key).to_vec();
                self.remove_version(&id);
                self.state_bytes += VERSION_BYTES + 2 * sort_key.len();
                let versions = self.versions.as_mut().expect("retracting");
                versions.insert(id.into(), (key.as_ref().into(), sort_key.clone().into()));
                self.ckpt_rows
                    .insert((key.as_ref().into(), sort_key.clone().into()));
            }
            let end = ends.as_ref().map(|e| e.value(i) + end_offset_ms);
            if let (Some(e), Some(w)) = (end, self.window_watermark)
                && w.completes(e)
            {
                return Err(EngineError::Bug(format!(
                    "a row for window ending {e} reached a top-N already past it"
                )));
            }
            let group = match self.groups.get_mut(key.as_ref()) {
                Some(g) => g,
                None => {
                    let k: Box<[u8]> = key.as_ref().into();
                    if let Some(e) = end {
                        self.ends.insert((e, k.clone()));
                    }
                    self.state_bytes += 2 * k.len() + 64;
                    self.groups.entry(k).or_insert_with(|| Group {
                        window_end: end,
                        ..Group::default()
                    })
                }
            };
            // A row after N kept rows cannot rank within N: under ROW_NUMBER() if it sorts
            // after the last, under RANK() if its values sort after the last one's (a tie
            // shares the last one's rank). DENSE_RANK() counts values, not rows.
            let tail = self.positions * POSITION_BYTES;
            let outranked: fn(&[u8], &[u8], usize) -> bool = match self.ranking {
                Ranking::RowNumber => |new: &[u8], last: &[u8], _: usize| new >= last,
                Ranking::Rank => |new: &[u8], last: &[u8], tail: usize| {
                    new[..new.len() - tail] > last[..last.len().saturating_sub(tail)]
                },
                Ranking::DenseRank => |_: &[u8], _: &[u8], _: usize| false,
            };
            if self.versions.is_none()
                && group.rows.len() >= self.limit
                && group
                    .rows
                    .last_key()
                    .is_some_and(|last| outranked(&sort_key, last, tail))
            {
                continue;
            }
            let row: Box<[u8]> = values.row(i).as_ref().into();
            self.state_bytes += sort_key.len() + row.len() + 48;
            // With RANK and DENSE_RANK a row is inserted before it is known to rank within
            // N: if it leaves at once, nothing changed.
            let probe = (self.versions.is_none() && self.ranking != Ranking::RowNumber)
                .then(|| sort_key.clone());
            group.rows.insert(
                sort_key.into(),
                Kept {
                    row,
                    written: false,
                },
            );
            if self.versions.is_none() {
                // Rows ranked past N leave (with RANK and DENSE_RANK, those not tied with
                // a row still within it).
                let keep = match self.ranking {
                    Ranking::RowNumber => self.limit,
                    ranking => ranking
                        .top_ranks(
                            group.rows.iter().map(|(k, _)| &k[..]),
                            self.positions * POSITION_BYTES,
                            self.limit,
                        )
                        .count(),
                };
                while group.rows.len() > keep {
                    let (sk, kept) = group.rows.pop_last().expect("more than N rows");
                    self.state_bytes = self
                        .state_bytes
                        .saturating_sub(sk.len() + kept.row.len() + 48);
                    if kept.written {
                        self.gone.push((sk, kept.row));
                    }
                }
                if probe.is_some_and(|p| group.rows.get(&p).is_none()) {
                    continue;
                }
            }
            // (Looked up first: most rows land in a group already marked.)
            if !self.changed.contains(key.as_ref()) {
                self.changed.insert(key.as_ref().into());
            }
            if self.versions.is_none() && !self.ckpt_changed.contains(key.as_ref()) {
                self.ckpt_changed.insert(key.as_ref().into());
            }
        }
        ctx.check_state(self.state_bytes)
    }

    /// The input's window watermark moved to `wm`: groups of the windows it completes are
    /// written as final and evicted.
    pub fn on_watermark(&mut self, wm: Option<Watermark>) -> Result<Vec<Rows>> {
        let Some(wm) = wm else { return Ok(Vec::new()) };
        if self.window_watermark.is_some_and(|w| wm <= w) {
            return Ok(Vec::new());
        }
        self.window_watermark = Some(wm);
        let mut closed = Vec::new();
        while let Some((e, _)) = self.ends.first() {
            if !wm.completes(*e) {
                break;
            }
            let (_, key) = self.ends.pop_first().expect("first exists");
            self.changed.remove(&key);
            self.ckpt_changed.insert(key.clone());
            if let Some(group) = self.groups.remove(&key) {
                self.state_bytes = self.state_bytes.saturating_sub(
                    2 * key.len()
                        + 64
                        + group
                            .rows
                            .iter()
                            .map(|(k, v)| k.len() + v.row.len() + 48)
                            .sum::<usize>(),
                );
                closed.push(group);
            }
        }
        let mut out = Vec::new();
        if !closed.is_empty() {
            // Deletions first: a row that left a closing group since the last commit may
            // share its key with the group's final row (a deduplication keyed by its
            // group), and a commit applies its writes in order.
            self.delete_gone(&mut out)?;
            out.push(self.ranked(closed.iter(), RowState::Final)?);
        }
        Ok(out)
    }

    /// At a commit: deletions of written rows that left the top N, and every row of the
    /// groups that changed with its rank (at the end of the streams, every group, final).
    pub fn on_commit(&mut self, ctx: &Ctx) -> Result<Vec<Rows>> {
        let mut out = Vec::new();
        let keys: Vec<Box<[u8]>> = if ctx.end_of_stream {
            self.changed.clear();
            self.groups.keys().cloned().collect()
        } else {
            self.changed.drain().collect()
        };
        if self.versions.is_some() {
            self.settle_ranks(&keys);
        } else {
            for key in &keys {
                if let Some(group) = self.groups.get_mut(key) {
                    for (_, kept) in group.rows.iter_mut() {
                        kept.written = true;
                    }
                }
            }
        }
        self.delete_gone(&mut out)?;
        if keys.is_empty() {
            return Ok(out);
        }
        let state = if ctx.end_of_stream {
            RowState::Final
        } else {
            RowState::Provisional
        };
        let groups = keys.iter().filter_map(|k| self.groups.get(k));
        out.push(self.ranked(groups, state)?);
        Ok(out)
    }

    /// Every row of `groups` with its rank, as `state`.
    fn ranked<'a>(&self, groups: impl Iterator<Item = &'a Group>, state: RowState) -> Result<Rows> {
        let mut sort_keys: Vec<&[u8]> = Vec::new();
        let mut rows = Vec::new();
        let mut ranks = Vec::new();
        let tail = self.positions * POSITION_BYTES;
        for group in groups {
            let top =
                self.ranking
                    .top_ranks(group.rows.iter().map(|(k, _)| &k[..]), tail, self.limit);
            for ((sk, kept), rank) in group.rows.iter().zip(top) {
                sort_keys.push(sk);
                rows.push(&kept.row[..]);
                ranks.push(rank);
            }
        }
        self.assemble(&sort_keys, &rows, ranks, Change::Upsert(state))
    }

    /// How rows are numbered.
    pub fn ranking(&self) -> Ranking {
        self.ranking
    }

    /// Deletions of the written rows that left the top N since the last commit, onto `out`
    /// (their key: the log positions, or a deduplication's group columns).
    fn delete_gone(&mut self, out: &mut Vec<Rows>) -> Result<()> {
        if self.gone.is_empty() {
            return Ok(());
        }
        let gone = std::mem::take(&mut self.gone);
        let sort_keys: Vec<&[u8]> = gone.iter().map(|(k, _)| &k[..]).collect();
        let rows: Vec<&[u8]> = gone.iter().map(|(_, r)| &r[..]).collect();
        // Out of the top N: a rank past N, never 0, so expressions over it stay defined.
        let ranks = vec![self.limit as u64 + 1; gone.len()];
        out.push(self.assemble(&sort_keys, &rows, ranks, Change::Delete)?);
        Ok(())
    }

    fn assemble(
        &self,
        sort_keys: &[&[u8]],
        rows: &[&[u8]],
        ranks: Vec<u64>,
        change: Change,
    ) -> Result<Rows> {
        let parser = self.values.parser();
        let mut columns = self
            .values
            .convert_rows(rows.iter().map(|r| parser.parse(r)))?;
        columns.push(Arc::new(UInt64Array::from(ranks)));
        let n = rows.len();
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let mut levels = Vec::with_capacity(self.positions);
        for level in 0..self.positions {
            let mut partition = Vec::with_capacity(n);
            let mut offset = Vec::with_capacity(n);
            let mut copy = Vec::with_capacity(n);
            for sk in sort_keys {
                let at = sk.len() - (self.positions - level) * POSITION_BYTES;
                let tail: Vec<u8> = sk[at..at + POSITION_BYTES]
                    .iter()
                    .map(|&b| self.tie_order(b))
                    .collect();
                let at = (
                    u32::from_be_bytes(tail[..4].try_into().expect("4 bytes")),
                    u64::from_be_bytes(tail[4..12].try_into().expect("8 bytes")),
                    u32::from_be_bytes(tail[12..].try_into().expect("4 bytes")),
                );
                let null = at == NULL_POSITION;
                partition.push((!null).then_some(at.0));
                offset.push((!null).then_some(at.1));
                copy.push((!null).then_some(at.2));
            }
            let columns: [ArrayRef; 3] = [
                Arc::new(UInt32Array::from(partition)),
                Arc::new(UInt64Array::from(offset)),
                Arc::new(UInt32Array::from(copy)),
            ];
            levels.extend(columns);
        }
        Ok(Rows {
            batch,
            origin: Some(Origin::from_columns(&levels)?),
            change,
        })
    }

    /// A byte of a log position as it sorts among ties (inverted when later rows win);
    /// its own inverse.
    fn tie_order(&self, b: u8) -> u8 {
        if self.latest_first { !b } else { b }
    }

    fn state_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(key.len() + 3);
        k.extend_from_slice(&self.id.to_be_bytes());
        k.push(KIND_TOP_N);
        k.extend_from_slice(key);
        k
    }

    /// The checkpoint key of one row of a top-N over rows that change.
    fn row_state_key(&self, key: &[u8], sk: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(key.len() + sk.len() + 7);
        k.extend_from_slice(&self.id.to_be_bytes());
        k.push(KIND_TOP_N_ROW);
        put_bytes(&mut k, key);
        k.extend_from_slice(sk);
        k
    }

    /// State changes since the last checkpoint: each changed group whole, removed groups
    /// deleted; over rows that change (groups keep every row), each changed row.
    pub fn checkpoint(&mut self, puts: &mut Vec<(Vec<u8>, Vec<u8>)>, deletes: &mut Vec<Vec<u8>>) {
        for (key, sk) in std::mem::take(&mut self.ckpt_rows) {
            let state_key = self.row_state_key(&key, &sk);
            match self.groups.get(&key).and_then(|g| g.rows.get(&sk)) {
                Some(kept) => {
                    let mut v = kept.row.to_vec();
                    v.push(u8::from(kept.written));
                    puts.push((state_key, v));
                }
                None => deletes.push(state_key),
            }
        }
        for key in std::mem::take(&mut self.ckpt_changed) {
            let state_key = self.state_key(&key);
            let Some(group) = self.groups.get(&key) else {
                deletes.push(state_key);
                continue;
            };
            let mut v = Vec::new();
            match group.window_end {
                Some(e) => {
                    v.push(1);
                    v.extend_from_slice(&sortable(e));
                }
                None => v.push(0),
            }
            for (sk, kept) in group.rows.iter() {
                put_bytes(&mut v, sk);
                put_bytes(&mut v, &kept.row);
                v.push(u8::from(kept.written));
            }
            puts.push((state_key, v));
        }
    }

    /// Loads checkpointed groups.
    pub fn restore(&mut self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        for (k, v) in entries {
            // Each mode has its own kind of entry: one of the other mode comes from a build
            // that kept this view's state differently.
            let row_entry = k.get(2) == Some(&KIND_TOP_N_ROW);
            if row_entry != self.versions.is_some() {
                return Err(EngineError::Sql(
                    "this top-N's checkpoint was written by an earlier build that kept its \
                     state another way; drop and recreate the view"
                        .into(),
                ));
            }
            if row_entry {
                let mut rest = &k[3..];
                let key: Box<[u8]> = get_bytes(&mut rest)?.into();
                let (written, row) = v
                    .split_last()
                    .ok_or_else(|| EngineError::Bug("an empty top-N row entry".into()))?;
                self.restore_row(key, rest.into(), row.into(), *written != 0)?;
                continue;
            }
            let key: Box<[u8]> = k
                .get(3..)
                .filter(|_| k.get(2) == Some(&KIND_TOP_N))
                .ok_or_else(|| EngineError::Bug("a top-N checkpoint key of another kind".into()))?
                .into();
            let mut val = &v[..];
            let window_end = match crate::accumulate::take(&mut val, 1)?[0] {
                0 => None,
                _ => Some(unsortable(take8(&mut val)?)),
            };
            if let Some(e) = window_end {
                self.ends.insert((e, key.clone()));
            }
            if !self.groups.contains_key(&key) {
                self.state_bytes += 2 * key.len() + 64;
            }
            self.groups.entry(key.clone()).or_default().window_end = window_end;
            while !val.is_empty() {
                let sk: Box<[u8]> = get_bytes(&mut val)?.into();
                let row: Box<[u8]> = get_bytes(&mut val)?.into();
                let written = crate::accumulate::take(&mut val, 1)?[0] != 0;
                self.restore_row(key.clone(), sk, row, written)?;
            }
        }
        Ok(())
    }

    /// Load one kept row of group `key` from a checkpoint.
    fn restore_row(
        &mut self,
        key: Box<[u8]>,
        sk: Box<[u8]>,
        row: Box<[u8]>,
        written: bool,
    ) -> Result<()> {
        if sk.len() < self.positions * POSITION_BYTES {
            return Err(EngineError::Bug(
                "a top-N row's order key is too short".into(),
            ));
        }
        if let Some(versions) = self.versions.as_mut() {
            let id = &sk[sk.len() - self.positions * POSITION_BYTES..];
            self.state_bytes += VERSION_BYTES + 2 * sk.len();
            versions.insert(id.into(), (key.clone(), sk.clone()));
        }
        self.state_bytes += sk.len() + row.len() + 48;
        let group = match self.groups.get_mut(&key) {
            Some(g) => g,
            None => {
                self.state_bytes += 2 * key.len() + 64;
                self.groups.entry(key).or_default()
            }
        };
        group.written += usize::from(written);
        group.rows.insert(sk, Kept { row, written });
        Ok(())
    }
}

/// Checkpoint key kind of a top-N group (after the operator id).
const KIND_TOP_N: u8 = 4;
/// Checkpoint key kind of one row of a top-N over rows that change.
const KIND_TOP_N_ROW: u8 = 5;

/// Approximate bytes of a row's entry in [`TopN`]'s `versions`, besides its keys.
const VERSION_BYTES: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::LatePolicy;
    use arrow_array::Int64Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_schema::{DataType, Field, Schema};
    use datafusion::physical_expr::expressions::col;
    use std::collections::BTreeMap;

    /// The input rows' schema: (k, t, v).
    fn input_schema() -> Schema {
        Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("t", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ])
    }

    /// `ROW_NUMBER() OVER (PARTITION BY k ORDER BY t <dir>) <= 1` over (k, t, v) rows.
    fn first_per_key(descending: bool) -> TopN {
        top_per_key(1, descending)
    }

    /// `ROW_NUMBER() OVER (PARTITION BY k ORDER BY t <dir>) <= limit` over (k, t, v) rows.
    fn top_per_key(limit: usize, descending: bool) -> TopN {
        let input = input_schema();
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("rn", DataType::UInt64, false));
        TopN::new(
            1,
            TopNSpec {
                schema: Arc::new(Schema::new(fields)),
                partition_by: vec![col("k", &input).expect("k")],
                partition_types: vec![DataType::Int64],
                order_by: vec![(
                    col("t", &input).expect("t"),
                    SortOptions {
                        descending,
                        nulls_first: false,
                    },
                )],
                order_types: vec![DataType::Int64],
                limit,
                ranking: Ranking::RowNumber,
                window_end: None,
                positions: 1,
            },
        )
        .expect("a top-N")
    }

    /// Rows (k, t, v) at offsets `first..` of partition 0.
    fn rows(first: u64, rows: &[(i64, i64, i64)]) -> Rows {
        let schema = Arc::new(input_schema());
        let column = |f: fn(&(i64, i64, i64)) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(rows.iter().map(f)))
        };
        let n = rows.len();
        Rows {
            batch: RecordBatch::try_new(
                schema,
                vec![column(|r| r.0), column(|r| r.1), column(|r| r.2)],
            )
            .expect("a batch"),
            origin: Some(Origin::new(
                UInt32Array::from(vec![0; n]),
                UInt64Array::from_iter_values(first..first + n as u64),
                UInt32Array::from(vec![0; n]),
            )),
            change: Change::Upsert(RowState::Final),
        }
    }

    fn ctx() -> Ctx {
        Ctx {
            view: "v".into(),
            late_policy: LatePolicy::DeadLetter,
            state_bytes_max: u64::MAX,
            late: Vec::new(),
            stats: Default::default(),
            end_of_stream: false,
            emit_due: true,
            replaying: false,
        }
    }

    /// The kept `v` of each group after one commit.
    fn kept(top: &mut TopN, input: &[(i64, i64, i64)]) -> Vec<i64> {
        let ctx = ctx();
        top.on_input(&rows(0, input), &ctx).expect("rank");
        let out = top.on_commit(&ctx).expect("commit");
        let mut v: Vec<i64> = out
            .iter()
            .filter(|r| r.change != Change::Delete)
            .flat_map(|r| {
                r.batch
                    .column(2)
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn ties_go_to_the_later_row_when_descending_and_the_earlier_when_ascending() {
        let input = [(1, 5, 10), (1, 5, 11), (2, 3, 20), (2, 3, 21)];
        assert_eq!(kept(&mut first_per_key(true), &input), vec![11, 21]);
        assert_eq!(kept(&mut first_per_key(false), &input), vec![10, 20]);
    }

    #[test]
    fn over_rows_that_change_a_null_position_is_not_position_zero() {
        let mut top = first_per_key(false).retracting().expect("retracting");
        // A padded row (NULL position) and a row at partition 0, offset 0, copy 0.
        let mut input = rows(0, &[(1, 5, 10), (2, 6, 20)]);
        input.origin = Some(Origin::new(
            UInt32Array::from(vec![None, Some(0)]),
            UInt64Array::from(vec![None, Some(0)]),
            UInt32Array::from(vec![None, Some(0)]),
        ));
        let ctx = ctx();
        top.on_input(&input, &ctx).expect("rank");
        let out = top.on_commit(&ctx).expect("commit");
        assert_eq!(out.len(), 1, "two rows written, none deleted");
        let origin = out[0].origin.as_ref().expect("positions");
        let mut written: Vec<(Option<u32>, i64)> = (0..2)
            .map(|i| {
                let v = out[0].batch.column(2).as_primitive::<Int64Type>().value(i);
                (
                    (!origin.partition.is_null(i)).then(|| origin.partition.value(i)),
                    v,
                )
            })
            .collect();
        written.sort_unstable();
        assert_eq!(written, vec![(None, 10), (Some(0), 20)]);
    }

    /// One commit of `input` (deletions when `delete`): the offsets it deletes and those it
    /// writes, sorted; then its checkpoint applied to `store`.
    fn commit_into(
        top: &mut TopN,
        input: Rows,
        store: &mut BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> (Vec<u64>, Vec<u64>) {
        let ctx = ctx();
        top.on_input(&input, &ctx).expect("rank");
        let out = top.on_commit(&ctx).expect("commit");
        let (mut puts, mut deletes) = (Vec::new(), Vec::new());
        top.checkpoint(&mut puts, &mut deletes);
        for k in deletes {
            store.remove(&k);
        }
        store.extend(puts);
        (offsets(&out, true), offsets(&out, false))
    }

    /// The log offsets of the rows `out` deletes (`true`) or writes (`false`), sorted.
    fn offsets(out: &[Rows], deleted: bool) -> Vec<u64> {
        let mut o: Vec<u64> = out
            .iter()
            .filter(|r| (r.change == Change::Delete) == deleted)
            .flat_map(|r| {
                r.origin
                    .as_ref()
                    .expect("positions")
                    .offset
                    .values()
                    .to_vec()
            })
            .collect();
        o.sort_unstable();
        o
    }

    #[test]
    fn over_rows_that_change_rows_pushed_below_the_top_are_deleted_and_restored_state_agrees() {
        let mut top = top_per_key(2, false).retracting().expect("retracting");
        let mut store = BTreeMap::new();
        // t = 5, 6, 7: the first two are written.
        let first = rows(0, &[(1, 5, 50), (1, 6, 60), (1, 7, 70)]);
        assert_eq!(
            commit_into(&mut top, first, &mut store),
            (vec![], vec![0, 1])
        );
        // t = 1 and 2 push both written rows two ranks down: both are deleted.
        let second = rows(3, &[(1, 1, 10), (1, 2, 20)]);
        assert_eq!(
            commit_into(&mut top, second, &mut store),
            (vec![0, 1], vec![3, 4])
        );
        // A restored operator holds the same rows and flags: removing the row at offset 3
        // deletes it and brings t = 5 (offset 0) back, in both.
        let mut restored = top_per_key(2, false).retracting().expect("retracting");
        let entries: Vec<(Vec<u8>, Vec<u8>)> = store.clone().into_iter().collect();
        restored.restore(&entries).expect("restore");
        assert_eq!(restored.state_bytes(), top.state_bytes());
        let mut gone = rows(3, &[(1, 1, 10)]);
        gone.change = Change::Delete;
        let expected = (vec![3], vec![0, 4]);
        assert_eq!(commit_into(&mut top, gone.clone(), &mut store), expected);
        let mut restored_store = BTreeMap::new();
        assert_eq!(
            commit_into(&mut restored, gone, &mut restored_store),
            expected
        );
        // An appending top-N refuses the entries a top-N over rows that change wrote.
        assert!(top_per_key(2, false).restore(&entries).is_err());
    }

    #[test]
    fn a_row_pushed_out_after_it_was_written_is_deleted() {
        let mut top = first_per_key(true);
        assert_eq!(kept(&mut top, &[(1, 5, 10)]), vec![10]);
        let ctx = ctx();
        top.on_input(&rows(1, &[(1, 6, 12)]), &ctx).expect("rank");
        let out = top.on_commit(&ctx).expect("commit");
        assert_eq!(
            offsets(&out, true),
            vec![0],
            "the row at offset 0 left the top"
        );
        let written = offsets(&out, false);
        assert_eq!(written, vec![1], "the row at offset 1 took its place");
    }
}
