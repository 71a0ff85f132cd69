//! The operator tree of a compiled view, and how batches, watermarks, commits and
//! checkpoints travel through it.
//!
//! Operators are synchronous state machines. Input batches enter at the sources and flow
//! up; a watermark is pushed to the sources and each operator then emits what it completes.
//! Stateless operators (filter, projection: DataFusion physical expressions) transform rows
//! as they pass and keep their log positions.

use crate::Ctx;
use crate::aggregate::{Aggregate, Grouping};
use crate::error::{EngineError, Result};
use crate::join::Join;
use crate::over::Over;
use crate::rows::{Change, Origin, Rows, not_true};
use crate::source::Source;
use crate::top_n::TopN;
use crate::watermarks::StreamWatermarks;
use crate::window::{WindowKind, ms_text};
use arrow_array::{BooleanArray, RecordBatch, UInt32Array};
use arrow_schema::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;
use freshet_types::limits::UNION_BRANCHES_MAX;
use freshet_types::{RowOffsets, Watermark};
use std::collections::HashMap;
use std::sync::Arc;

/// Operator state entries (key, value) of a checkpoint.
pub type StateEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// Which output columns of a node are its window's bounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowInfo {
    /// Column of `window_start`.
    pub start_col: Option<usize>,
    /// Column of `window_end`.
    pub end_col: Option<usize>,
    /// The window function, when the rows come straight from one.
    pub kind: Option<WindowKind>,
}

/// One operator and its inputs.
pub enum Op {
    /// Rows of a stream.
    Source(Source),
    /// `WHERE`/`HAVING`.
    Filter {
        /// Input.
        input: Box<Node>,
        /// The predicate.
        predicate: Arc<dyn PhysicalExpr>,
        /// Over rows that change (an unbounded GROUP BY, provisional windows): a row that
        /// fails the predicate is passed on as a deletion of its key, since an earlier
        /// version of it may have qualified and been written.
        deletes_failing: bool,
    },
    /// `SELECT` expressions.
    Project {
        /// Input.
        input: Box<Node>,
        /// One expression per output column.
        exprs: Vec<Arc<dyn PhysicalExpr>>,
    },
    /// `GROUP BY`.
    Aggregate {
        /// Input.
        input: Box<Node>,
        /// The operator.
        agg: Box<Aggregate>,
    },
    /// `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)` kept to `rn <= N`.
    TopN {
        /// Input.
        input: Box<Node>,
        /// The operator.
        top: Box<TopN>,
    },
    /// `agg(x) OVER (PARTITION BY ... ORDER BY <event time> ROWS BETWEEN n PRECEDING AND
    /// CURRENT ROW)` over a stream's rows.
    Over {
        /// Input.
        input: Box<Node>,
        /// The operator.
        over: Box<Over>,
    },
    /// `UNION ALL` of streams' rows or unbounded GROUP BYs' rows: each branch's rows keep
    /// their positions, with the branch folded into `_copy` (`copy * branches + branch`)
    /// so that rows of two branches never share a key.
    Union {
        /// The branches, in the query's order.
        inputs: Vec<Node>,
    },
    /// A join.
    Join {
        /// Left input.
        left: Box<Node>,
        /// Right input.
        right: Box<Node>,
        /// The operator.
        join: Box<Join>,
    },
}

/// What frees an operator's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freed {
    /// The watermark, as it closes windows: the state holds what is open.
    ByWatermark,
    /// Nothing before the end of the streams: the state grows with the input.
    AtTheEnd,
}

/// A lower bound on a timestamp column's values in the rows a node has still to output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFloor {
    /// The bound now (`None` before the first watermark).
    pub at: Option<Watermark>,
    /// The stream whose event time the column is, when its rows behind the bound still
    /// come (a stream's rows through filters and projections).
    pub late_from: Option<String>,
}

/// A node of the operator tree.
pub struct Node {
    /// Output schema (DataFusion's schema of the plan node).
    pub schema: SchemaRef,
    /// Window columns of the output, if windowed.
    pub window: Option<WindowInfo>,
    /// Whether every output row is final (false below an unbounded GROUP BY).
    pub appends_only: bool,
    /// The operator.
    pub op: Op,
}

fn transform(node_schema: &SchemaRef, op: &Op, rows: Vec<Rows>) -> Result<Vec<Rows>> {
    match op {
        Op::Filter {
            predicate,
            deletes_failing,
            ..
        } => {
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                // A deletion stands whatever the predicate says of the key's old row.
                if r.change == Change::Delete {
                    out.push(r);
                    continue;
                }
                let mask = predicate
                    .evaluate(&r.batch)?
                    .into_array(r.batch.num_rows())?;
                let mask = mask
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| EngineError::Bug("a filter predicate is not boolean".into()))?;
                if *deletes_failing {
                    let failing = Rows {
                        change: Change::Delete,
                        ..r.filter(&not_true(mask))?
                    };
                    out.push(failing);
                }
                out.push(r.filter(mask)?);
            }
            out.retain(|r| r.batch.num_rows() > 0);
            Ok(out)
        }
        Op::Project { exprs, .. } => rows
            .into_iter()
            .map(|r| {
                let n = r.batch.num_rows();
                let columns = exprs
                    .iter()
                    .map(|e| Ok(e.evaluate(&r.batch)?.into_array(n)?))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Rows {
                    batch: RecordBatch::try_new_with_options(
                        node_schema.clone(),
                        columns,
                        &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)),
                    )?,
                    origin: r.origin,
                    change: r.change,
                })
            })
            .collect(),
        _ => Ok(rows),
    }
}

/// Rows of branch `branch` of a union, in the union's schema, their `_copy` folded with
/// the branch so that rows of different branches never share a key. Where the positions
/// are a hash of an aggregate's group key (`hashed`), the copy's top bits give way.
fn branch_rows(
    schema: &SchemaRef,
    branch: usize,
    hashed: bool,
    rows: Vec<Rows>,
) -> Result<Vec<Rows>> {
    rows.into_iter()
        .map(|r| {
            let origin = r.origin.ok_or_else(|| {
                EngineError::Bug("a union branch row without its position".into())
            })?;
            let copy = origin
                .copy
                .values()
                .iter()
                .map(|&c| {
                    if hashed {
                        return Ok(c
                            .wrapping_mul(UNION_BRANCHES_MAX)
                            .wrapping_add(branch as u32));
                    }
                    c.checked_mul(UNION_BRANCHES_MAX)
                        .and_then(|c| c.checked_add(branch as u32))
                        .ok_or_else(|| {
                            EngineError::ResourceLimit(format!(
                                "window copy {c} of a UNION ALL branch does not fit the \
                                 result key (_copy); use fewer hopping windows per event"
                            ))
                        })
                })
                .collect::<Result<UInt32Array>>()?;
            let n = r.batch.num_rows();
            Ok(Rows {
                batch: RecordBatch::try_new_with_options(
                    schema.clone(),
                    r.batch.columns().to_vec(),
                    &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)),
                )?,
                origin: Some(Origin { copy, ..origin }),
                change: r.change,
            })
        })
        .collect()
}

/// The rows `step` gets from each branch of a union, in the union's schema.
fn union_rows(
    schema: &SchemaRef,
    inputs: &mut [Node],
    mut step: impl FnMut(&mut Node) -> Result<Vec<Rows>>,
) -> Result<Vec<Rows>> {
    let mut out = Vec::new();
    for (i, input) in inputs.iter_mut().enumerate() {
        let rows = step(input)?;
        out.extend(branch_rows(schema, i, input.hashed_positions(), rows)?);
    }
    Ok(out)
}

impl Node {
    /// Feed a batch read from `stream`'s `partition`, its rows at `offsets`.
    pub fn on_input(
        &mut self,
        stream: &str,
        partition: u32,
        offsets: &RowOffsets,
        batch: &RecordBatch,
        ctx: &mut Ctx,
    ) -> Result<Vec<Rows>> {
        match &mut self.op {
            Op::Source(s) => {
                if s.stream == stream {
                    s.on_input(partition, offsets, batch, ctx)
                } else {
                    Ok(Vec::new())
                }
            }
            Op::Filter { input, .. } | Op::Project { input, .. } => {
                let rows = input.on_input(stream, partition, offsets, batch, ctx)?;
                transform(&self.schema, &self.op, rows)
            }
            Op::Aggregate { input, agg } => {
                for r in input.on_input(stream, partition, offsets, batch, ctx)? {
                    agg.on_input(&r, ctx)?;
                }
                Ok(Vec::new())
            }
            Op::TopN { input, top } => {
                for r in input.on_input(stream, partition, offsets, batch, ctx)? {
                    top.on_input(&r, ctx)?;
                }
                Ok(Vec::new())
            }
            Op::Over { input, over } => {
                for r in input.on_input(stream, partition, offsets, batch, ctx)? {
                    over.on_input(&r, ctx)?;
                }
                Ok(Vec::new())
            }
            Op::Union { inputs } => union_rows(&self.schema, inputs, |input| {
                input.on_input(stream, partition, offsets, batch, ctx)
            }),
            Op::Join { left, right, join } => {
                let mut out = Vec::new();
                for r in left.on_input(stream, partition, offsets, batch, ctx)? {
                    out.extend(join.on_input(r, false, ctx)?);
                }
                for r in right.on_input(stream, partition, offsets, batch, ctx)? {
                    out.extend(join.on_input(r, true, ctx)?);
                }
                Ok(out)
            }
        }
    }

    /// Tell the sources their streams' watermarks; returns the rows this completes.
    pub fn on_watermark(
        &mut self,
        watermarks: &StreamWatermarks,
        ctx: &mut Ctx,
    ) -> Result<Vec<Rows>> {
        match &mut self.op {
            Op::Source(s) => {
                if let Some(w) = watermarks.get(&s.stream)
                    && s.watermark.is_none_or(|old| w > old)
                {
                    s.watermark = Some(w);
                }
                Ok(Vec::new())
            }
            Op::Filter { input, .. } | Op::Project { input, .. } => {
                let rows = input.on_watermark(watermarks, ctx)?;
                transform(&self.schema, &self.op, rows)
            }
            Op::Aggregate { input, agg } => {
                for r in input.on_watermark(watermarks, ctx)? {
                    agg.on_input(&r, ctx)?;
                }
                agg.on_watermark(input.window_watermark(), ctx)
            }
            Op::TopN { input, top } => {
                for r in input.on_watermark(watermarks, ctx)? {
                    top.on_input(&r, ctx)?;
                }
                top.on_watermark(input.window_watermark())
            }
            Op::Over { input, over } => {
                for r in input.on_watermark(watermarks, ctx)? {
                    over.on_input(&r, ctx)?;
                }
                over.on_watermark(input.window_watermark())
            }
            Op::Union { inputs } => union_rows(&self.schema, inputs, |input| {
                input.on_watermark(watermarks, ctx)
            }),
            Op::Join { left, right, join } => {
                let mut out = Vec::new();
                for r in left.on_watermark(watermarks, ctx)? {
                    out.extend(join.on_input(r, false, ctx)?);
                }
                for r in right.on_watermark(watermarks, ctx)? {
                    out.extend(join.on_input(r, true, ctx)?);
                }
                let floors = join.time_columns().map_or([None, None], |[l, r]| {
                    [
                        left.time_floor(l).and_then(|f| f.at),
                        right.time_floor(r).and_then(|f| f.at),
                    ]
                });
                out.extend(join.on_watermark(
                    left.window_watermark(),
                    right.window_watermark(),
                    floors,
                )?);
                let clock = [left.stream_watermark(), right.stream_watermark()];
                out.extend(join.on_clock(clock[0].zip(clock[1]).map(|(l, r)| l.min(r)))?);
                Ok(out)
            }
        }
    }

    /// A lower bound on timestamp column `col` of the rows this node has still to
    /// output, if the column has one: a window's bounds (whose rows come only while the
    /// window is open), or a stream's event time passed through unwindowed (whose rows
    /// behind the watermark still come, for the operator reading them to set aside).
    pub fn time_floor(&self, col: usize) -> Option<TimeFloor> {
        if let Some(w) = self.window {
            let size = w.kind.and_then(WindowKind::size_ms);
            if w.end_col == Some(col) {
                return Some(TimeFloor {
                    at: self.window_watermark(),
                    late_from: None,
                });
            }
            if w.start_col == Some(col)
                && let Some(size) = size
            {
                return Some(TimeFloor {
                    at: self.window_watermark().map(|w| w.less(size)),
                    late_from: None,
                });
            }
        }
        match &self.op {
            Op::Source(s)
                if s.window.is_none() && s.projection.get(col) == Some(&s.time_column) =>
            {
                Some(TimeFloor {
                    at: s.window_watermark(),
                    late_from: Some(s.stream.clone()),
                })
            }
            Op::Filter { input, .. } => input.time_floor(col),
            Op::Project { input, exprs } => {
                input.time_floor(crate::compile::bare_column(exprs.get(col)?)?)
            }
            _ => None,
        }
    }

    /// Window ends at or before this will see no more output rows from this node.
    pub fn window_watermark(&self) -> Option<Watermark> {
        match &self.op {
            Op::Source(s) => s.window_watermark(),
            Op::Filter { input, .. } | Op::Project { input, .. } => input.window_watermark(),
            Op::Aggregate { agg, .. } => agg.window_watermark(),
            Op::TopN { top, .. } => top.window_watermark(),
            // Its rows have no window.
            Op::Over { .. } => None,
            Op::Union { inputs } => inputs
                .iter()
                .map(Node::window_watermark)
                .collect::<Option<Vec<_>>>()
                .and_then(|w| w.into_iter().min()),
            Op::Join { join, .. } => join.window_watermark(),
        }
    }

    /// Rows due at a commit (provisional updates; final unbounded groups at the end).
    pub fn on_commit(&mut self, ctx: &mut Ctx) -> Result<Vec<Rows>> {
        match &mut self.op {
            Op::Source(_) => Ok(Vec::new()),
            Op::Filter { input, .. } | Op::Project { input, .. } => {
                let rows = input.on_commit(ctx)?;
                transform(&self.schema, &self.op, rows)
            }
            Op::Aggregate { input, agg } => {
                // Rows that change are due at commits too (an unbounded GROUP BY's).
                for r in input.on_commit(ctx)? {
                    agg.on_input(&r, ctx)?;
                }
                agg.on_commit(ctx)
            }
            Op::TopN { input, top } => {
                for r in input.on_commit(ctx)? {
                    top.on_input(&r, ctx)?;
                }
                top.on_commit(ctx)
            }
            // Its rows are written, final, as the watermark releases them.
            // At the end of the streams, rows still waiting for the rows after them.
            Op::Over { over, .. } => over.on_commit(ctx),
            // Branches of rows that change (an unbounded GROUP BY's) have rows due.
            Op::Union { inputs } => union_rows(&self.schema, inputs, |input| input.on_commit(ctx)),
            // Inputs whose rows change (an unbounded GROUP BY's) have rows due.
            Op::Join { left, right, join } => {
                let mut out = Vec::new();
                if join.reads_changes() {
                    for r in left.on_commit(ctx)? {
                        out.extend(join.on_input(r, false, ctx)?);
                    }
                    for r in right.on_commit(ctx)? {
                        out.extend(join.on_input(r, true, ctx)?);
                    }
                }
                out.extend(join.on_commit(ctx)?);
                Ok(out)
            }
        }
    }

    /// Collect state changes since the last checkpoint.
    pub fn checkpoint(
        &mut self,
        puts: &mut Vec<(Vec<u8>, Vec<u8>)>,
        deletes: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        match &mut self.op {
            Op::Source(_) => {}
            Op::Filter { input, .. } | Op::Project { input, .. } => {
                input.checkpoint(puts, deletes)?
            }
            Op::Aggregate { input, agg } => {
                input.checkpoint(puts, deletes)?;
                agg.checkpoint(puts, deletes);
            }
            Op::TopN { input, top } => {
                input.checkpoint(puts, deletes)?;
                top.checkpoint(puts, deletes);
            }
            Op::Over { input, over } => {
                input.checkpoint(puts, deletes)?;
                over.checkpoint(puts, deletes)?;
            }
            Op::Union { inputs } => {
                for input in inputs {
                    input.checkpoint(puts, deletes)?;
                }
            }
            Op::Join { left, right, join } => {
                left.checkpoint(puts, deletes)?;
                right.checkpoint(puts, deletes)?;
                join.checkpoint(puts, deletes);
            }
        }
        Ok(())
    }

    /// Load checkpointed state, grouped by operator id.
    pub fn restore(&mut self, by_id: &HashMap<u16, StateEntries>) -> Result<()> {
        match &mut self.op {
            Op::Source(_) => Ok(()),
            Op::Filter { input, .. } | Op::Project { input, .. } => input.restore(by_id),
            Op::Aggregate { input, agg } => {
                input.restore(by_id)?;
                match by_id.get(&agg.id) {
                    Some(entries) => agg.restore(entries),
                    None => Ok(()),
                }
            }
            Op::TopN { input, top } => {
                input.restore(by_id)?;
                match by_id.get(&top.id) {
                    Some(entries) => top.restore(entries),
                    None => Ok(()),
                }
            }
            Op::Over { input, over } => {
                input.restore(by_id)?;
                match by_id.get(&over.id) {
                    Some(entries) => over.restore(entries),
                    None => Ok(()),
                }
            }
            Op::Union { inputs } => inputs.iter_mut().try_for_each(|i| i.restore(by_id)),
            Op::Join { left, right, join } => {
                left.restore(by_id)?;
                right.restore(by_id)?;
                match by_id.get(&join.id()) {
                    Some(entries) => join.restore(entries, &left.schema, &right.schema),
                    None => Ok(()),
                }
            }
        }
    }

    /// Approximate bytes of operator state in the tree.
    pub fn state_bytes(&self) -> usize {
        match &self.op {
            Op::Source(_) => 0,
            Op::Filter { input, .. } | Op::Project { input, .. } => input.state_bytes(),
            Op::Aggregate { input, agg } => input.state_bytes() + agg.state_bytes(),
            Op::TopN { input, top } => input.state_bytes() + top.state_bytes(),
            Op::Over { input, over } => input.state_bytes() + over.state_bytes(),
            Op::Union { inputs } => inputs.iter().map(Node::state_bytes).sum(),
            Op::Join { left, right, join } => {
                left.state_bytes() + right.state_bytes() + join.state_bytes()
            }
        }
    }

    /// Streams read by the tree (with duplicates removed).
    pub fn streams(&self, out: &mut Vec<String>) {
        match &self.op {
            Op::Source(s) => {
                if !out.contains(&s.stream) {
                    out.push(s.stream.clone());
                }
            }
            Op::Filter { input, .. }
            | Op::Project { input, .. }
            | Op::Aggregate { input, .. }
            | Op::TopN { input, .. }
            | Op::Over { input, .. } => input.streams(out),
            Op::Join { left, right, .. } => {
                left.streams(out);
                right.streams(out);
            }
            Op::Union { inputs } => {
                for input in inputs {
                    input.streams(out);
                }
            }
        }
    }

    /// Whether the node's rows carry a hash of an aggregate's group key (and window) as their
    /// positions ([`crate::rows::Origin::hashed`]).
    pub fn hashed_positions(&self) -> bool {
        match &self.op {
            Op::Filter { input, .. } | Op::Project { input, .. } => input.hashed_positions(),
            Op::Aggregate { agg, .. } => agg.identifies_rows,
            // A union's copies are already folded, spread over all their bits by a hash.
            Op::Union { inputs } => inputs.iter().any(Node::hashed_positions),
            _ => false,
        }
    }

    /// Whether the node's output rows change after they were written (provisional rows,
    /// deletions), rather than only being added, final.
    pub fn updating(&self) -> bool {
        match &self.op {
            Op::Source(_) | Op::Over { .. } => false,
            Op::Union { inputs } => inputs.iter().any(Node::updating),
            Op::Join { join, .. } => join.updates(),
            Op::Filter {
                input,
                deletes_failing,
                ..
            } => *deletes_failing || input.updating(),
            Op::Project { input, .. } => input.updating(),
            Op::Aggregate { agg, .. } => {
                matches!(agg.grouping, Grouping::Unbounded)
                    || agg.emit_updates
                    || agg.amend_lateness_ms.is_some()
            }
            Op::TopN { .. } => true,
        }
    }

    /// What the node keeps and what frees it, for `DESCRIBE VIEW` and `explain`.
    fn state_note(&self) -> Option<(&'static str, Freed)> {
        match &self.op {
            Op::Source(_) | Op::Filter { .. } | Op::Project { .. } | Op::Union { .. } => None,
            Op::Aggregate { agg, .. } => Some(match agg.grouping {
                Grouping::Fixed { .. } => (
                    "open windows' groups, freed as the watermark closes them",
                    Freed::ByWatermark,
                ),
                Grouping::Session { .. } => (
                    "open sessions, freed as the watermark closes them",
                    Freed::ByWatermark,
                ),
                Grouping::Unbounded if agg.retracts() => (
                    "every group and what each input row added to it, until the end of the \
                     streams, bounded by state_bytes_max",
                    Freed::AtTheEnd,
                ),
                Grouping::Unbounded => (
                    "every group until the end of the streams, bounded by state_bytes_max",
                    Freed::AtTheEnd,
                ),
            }),
            Op::TopN { top, .. } if top.retracts() => Some((
                "every row of each group (its input changes, so a row below the top N may \
                 rise into it) until the end of the streams, bounded by state_bytes_max",
                Freed::AtTheEnd,
            )),
            Op::TopN { top, .. } => Some(if top.per_window() {
                (
                    "the rows ranked within N per group, freed as the watermark closes their \
                     window",
                    Freed::ByWatermark,
                )
            } else {
                (
                    "the rows ranked within N per group until the end of the streams, bounded \
                     by state_bytes_max",
                    Freed::AtTheEnd,
                )
            }),
            Op::Join { join, .. } => Some(join.state_note()),
            Op::Over { .. } => Some((
                "each group's last rows (its frame, or as many as its LAG reaches back over) \
                 or its running aggregates, until the end of the streams, bounded by \
                 state_bytes_max, rows waiting for the watermark, and as many released rows \
                 per group as its LEAD reaches ahead over",
                Freed::AtTheEnd,
            )),
        }
    }

    /// The least of the watermarks of the streams this node reads, once each has one:
    /// the clock of `state_ttl`.
    fn stream_watermark(&self) -> Option<Watermark> {
        match &self.op {
            Op::Source(s) => s.watermark,
            _ => self
                .inputs()
                .into_iter()
                .map(Node::stream_watermark)
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .min(),
        }
    }

    /// The node's inputs.
    pub(crate) fn inputs(&self) -> Vec<&Node> {
        match &self.op {
            Op::Source(_) => Vec::new(),
            Op::Filter { input, .. }
            | Op::Project { input, .. }
            | Op::Aggregate { input, .. }
            | Op::TopN { input, .. }
            | Op::Over { input, .. } => vec![input],
            Op::Join { left, right, .. } => vec![left, right],
            Op::Union { inputs } => inputs.iter().collect(),
        }
    }

    /// Whether some operator's rows depend on rows outside any time range: window
    /// functions (`OVER (...)`) and top-Ns not per window rank or frame rows across windows,
    /// so a batch run over a time range cannot reproduce them.
    pub fn reaches_across_ranges(&self) -> bool {
        let here = match &self.op {
            Op::Over { .. } => true,
            Op::TopN { top, .. } => !top.per_window(),
            _ => false,
        };
        here || self.inputs().iter().any(|i| i.reaches_across_ranges())
    }

    /// Whether some operator of the tree keeps its state until the end of the streams
    /// (only `state_bytes_max` bounds it), so that the state grows with the input.
    pub fn keeps_state_to_the_end(&self) -> bool {
        self.state_note()
            .is_some_and(|(_, freed)| freed == Freed::AtTheEnd)
            || self.inputs().iter().any(|i| i.keeps_state_to_the_end())
    }

    /// A one-line-per-operator description, for `DESCRIBE VIEW`.
    pub fn describe(&self, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        let line = match &self.op {
            Op::Source(s) => match s.window {
                Some(k) => format!("Source {} {k}", s.stream),
                None => format!("Source {}", s.stream),
            },
            Op::Filter {
                predicate,
                deletes_failing: false,
                ..
            } => format!("Filter {predicate}"),
            Op::Filter { predicate, .. } => {
                format!("Filter {predicate} (deletes rows that stop qualifying)")
            }
            Op::Project { exprs, .. } => format!(
                "Project {}",
                exprs
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Op::Aggregate { agg, .. } => format!(
                "Aggregate #{} {}{}{}",
                agg.id,
                match agg.grouping {
                    Grouping::Unbounded if agg.retracts() => {
                        "unbounded (no window), over rows that change: takes each row's \
                         earlier version back"
                            .to_string()
                    }
                    Grouping::Unbounded => "unbounded (no window)".to_string(),
                    Grouping::Fixed { .. } => "per window".to_string(),
                    Grouping::Session { gap_ms, .. } =>
                        format!("per session (gap {})", ms_text(gap_ms)),
                },
                if agg.global() {
                    "; without GROUP BY: one row, written from the first commit"
                } else {
                    ""
                },
                if agg.identifies_rows {
                    "; its rows carry a hash of their group key (and window) as their positions"
                } else {
                    ""
                }
            ),
            Op::TopN { top, .. } => format!(
                "TopN #{} {} <= {} per group (rows that leave the top are deleted)",
                top.id,
                top.ranking().function(),
                top.limit()
            ),
            Op::Join { join, .. } => join.describe(),
            Op::Over { over, .. } => format!(
                "Over #{} {} per group over {}, in event-time order as the watermark passes",
                over.id,
                over.functions()
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                over.frame()
            ),
            Op::Union { inputs } if self.hashed_positions() => format!(
                "UnionAll of {} branches (an unbounded GROUP BY's rows identified by a hash of \
                 their group key)",
                inputs.len()
            ),
            Op::Union { inputs } => format!("UnionAll of {} branches", inputs.len()),
        };
        out.push_str(&pad);
        out.push_str(&line);
        out.push_str(if self.updating() {
            " [updating"
        } else {
            " [append-only"
        });
        if let Some((state, _)) = self.state_note() {
            out.push_str("; state: ");
            out.push_str(state);
        }
        out.push_str("]\n");
        for input in self.inputs() {
            input.describe(depth + 1, out);
        }
    }
}
