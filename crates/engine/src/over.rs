//! Window aggregates over a stream's rows: `agg(x) OVER (PARTITION BY keys ORDER BY t
//! <frame>)` with `agg` one of `COUNT`, `SUM`, `AVG`, `MIN`, `MAX`, `t` the stream's event
//! time and the frame one of [`OverFrame`]: the last `n` rows (`ROWS BETWEEN n PRECEDING
//! AND CURRENT ROW`, Nexmark q6) or every row so far (`UNBOUNDED PRECEDING`, a running
//! aggregate; under `RANGE`, SQL's default with `ORDER BY`, rows equal in every `ORDER BY`
//! key share the aggregate over all of them) or the rows of the last interval of time
//! (`RANGE BETWEEN INTERVAL ... PRECEDING`, peers included), `LAG(x, offset, default)`, `x`
//! of the row `offset` rows before in the group, and `LEAD(x, offset, default)`, of the row
//! `offset` rows after it: a row with LEADs waits, after the watermark released it, until
//! that many rows of its group were released after it (or the streams end).
//!
//! Each input row gets the aggregates over itself and the rows of its frame before it
//! in event-time order. Rows arrive out of order, so a row waits until the window
//! watermark (the stream's watermark less the allowed lateness) passes its time; then the
//! rows the watermark released are taken in (time, further `ORDER BY` keys, log position)
//! order, each appended to
//! its group's frame (its last rows' arguments, as many as the frame or the furthest LAG
//! needs, and the running aggregates' accumulators) and written once, final, keyed by its
//! log position. A row that arrives behind the watermark cannot join a frame already
//! written: it is late, dropped or dead-lettered by the view's policy (`update` keeps it
//! as a dead letter, since the rows after it are final). Rows equal in every `ORDER BY`
//! key are taken in log-position order; a batch run takes them its own way, so give
//! `ORDER BY` keys after the time that tell rows apart where it matters.
//!
//! State: the rows waiting for the watermark, and per group the arguments of its last rows
//! (as many as its ROWS frame or its furthest LAG needs) and its running accumulators
//! (kept until the end of the streams: one frame per group ever seen, bounded by
//! `state_bytes_max`).

use crate::Ctx;
use crate::accumulate::{Acc, AggKind, AggSpec, get_bytes, put_bytes};
use crate::aggregate::{sortable, unsortable};
use crate::error::{EngineError, Result};
use crate::rows::{Change, Origin, Rows};
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use freshet_store::{LateEvent, RowState};
use freshet_types::Watermark;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;

/// The most rows `n PRECEDING` may name: a frame's arguments are kept per group.
pub const PRECEDING_MAX: usize = 10_000;

/// Checkpoint key kind of a group's frame (after the operator id).
const KIND_FRAME: u8 = 5;
/// Checkpoint key kind of a row waiting for the watermark.
const KIND_WAITING: u8 = 6;
/// Checkpoint key kind of a group's running accumulators.
const KIND_RUNNING: u8 = 7;
/// Checkpoint key kind of a group's released rows waiting for the rows after them.
const KIND_LEADING: u8 = 8;

/// Bytes of a log position in a waiting row's order key: partition, offset, copy.
const POSITION_BYTES: usize = 4 + 8 + 4;

/// A waiting row's order key: its time, its further `ORDER BY` values (Arrow's row
/// format, comparable bytes), its log position (unique, so the rest never decides), its
/// group key and the group key's length.
fn order_key(t: i64, then: &[u8], position: [u8; POSITION_BYTES], key: &[u8]) -> Box<[u8]> {
    let mut order = Vec::with_capacity(8 + then.len() + POSITION_BYTES + key.len() + 4);
    order.extend_from_slice(&sortable(t));
    order.extend_from_slice(then);
    order.extend_from_slice(&position);
    order.extend_from_slice(key);
    order.extend_from_slice(&(key.len() as u32).to_be_bytes());
    order.into()
}

/// Bytes one row's arguments hold (their values and the vector holding them), by their
/// count rather than the vector's capacity: a row's arguments are counted when it waits and
/// when its copy joins a frame, and uncounted when it is released and when that copy
/// leaves the frame, so the two must agree whatever each vector's spare capacity.
fn args_bytes(args: &[ScalarValue]) -> usize {
    std::mem::size_of::<Vec<ScalarValue>>() + args.iter().map(ScalarValue::size).sum::<usize>()
}

/// The time and further `ORDER BY` values of an order key: rows with the same are peers.
fn order_values(order: &[u8]) -> &[u8] {
    let (key, _) = order_parts(order);
    &order[..order.len() - 4 - key.len() - POSITION_BYTES]
}

/// The group key and the log position of an order key.
fn order_parts(order: &[u8]) -> (&[u8], &[u8]) {
    let len = order.len();
    let key_len = u32::from_be_bytes(order[len - 4..].try_into().expect("4 bytes")) as usize;
    let key_at = len - 4 - key_len;
    (
        &order[key_at..len - 4],
        &order[key_at - POSITION_BYTES..key_at],
    )
}

/// A function over a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum OverFn {
    /// `COUNT(x)`: the non-NULL values (`COUNT(*)` counts a constant).
    Count,
    /// `SUM(x)`, NULL over no values.
    Sum,
    /// `AVG(x)` as a double, NULL over no values.
    Avg,
    /// `MIN(x)`.
    Min,
    /// `MAX(x)`.
    Max,
    /// `LAG(x, offset, default)`: `x` of the row `offset` rows before in its group (in the
    /// frame or not), `default` where there is none.
    Lag {
        /// How many rows back.
        offset: usize,
        /// The value where there is no such row, of `x`'s type.
        default: ScalarValue,
    },
    /// `LEAD(x, offset, default)`: `x` of the row `offset` rows after in its group,
    /// `default` where there is none (at the end of the streams).
    Lead {
        /// How many rows ahead.
        offset: usize,
        /// The value where there is no such row, of `x`'s type.
        default: ScalarValue,
    },
}

impl OverFn {
    /// The same function as a running aggregate's accumulator (a LAG has none).
    fn kind(&self) -> Option<AggKind> {
        Some(match self {
            OverFn::Count => AggKind::Count,
            OverFn::Sum => AggKind::Sum,
            OverFn::Avg => AggKind::Avg,
            OverFn::Min => AggKind::Min,
            OverFn::Max => AggKind::Max,
            OverFn::Lag { .. } | OverFn::Lead { .. } => return None,
        })
    }

    /// The function of a lower-case aggregate name, if supported.
    pub fn of(name: &str) -> Option<OverFn> {
        Some(match name {
            "count" => OverFn::Count,
            "sum" => OverFn::Sum,
            "avg" | "mean" => OverFn::Avg,
            "min" => OverFn::Min,
            "max" => OverFn::Max,
            _ => return None,
        })
    }
}

impl fmt::Display for OverFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OverFn::Count => "COUNT",
            OverFn::Sum => "SUM",
            OverFn::Avg => "AVG",
            OverFn::Min => "MIN",
            OverFn::Max => "MAX",
            OverFn::Lag { offset, .. } => return write!(f, "LAG({offset} back)"),
            OverFn::Lead { offset, .. } => return write!(f, "LEAD({offset} ahead)"),
        })
    }
}

/// The rows of a group a row's aggregates are over: itself and some of the rows before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverFrame {
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW`: itself and the `n` rows before it.
    Rows(usize),
    /// `... BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`: every row up to it. Under `RANGE`
    /// (`peers`), rows equal in every `ORDER BY` key are peers and each gets the aggregates
    /// over all of them.
    Running {
        /// `RANGE` rather than `ROWS`.
        peers: bool,
    },
    /// `RANGE BETWEEN INTERVAL ... PRECEDING AND CURRENT ROW` over the event time: every row
    /// of the group whose time is at most this many milliseconds before the row's, its
    /// peers (rows of the same time) included.
    Range {
        /// How far back the frame reaches.
        preceding_ms: i64,
    },
}

impl fmt::Display for OverFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverFrame::Rows(n) => write!(f, "ROWS BETWEEN {n} PRECEDING AND CURRENT ROW"),
            OverFrame::Range { preceding_ms } => write!(
                f,
                "RANGE BETWEEN INTERVAL '{preceding_ms} milliseconds' PRECEDING AND CURRENT ROW"
            ),
            OverFrame::Running { peers } => write!(
                f,
                "{} BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW",
                if *peers { "RANGE" } else { "ROWS" }
            ),
        }
    }
}

/// What the compiler gives the operator.
pub struct OverSpec {
    /// Output schema: the input's columns, then one per aggregate.
    pub schema: SchemaRef,
    /// `PARTITION BY` expressions over the input, and their types.
    pub partition_by: Vec<(Arc<dyn PhysicalExpr>, DataType)>,
    /// The input's event-time column (the first `ORDER BY` key, ascending).
    pub time_col: usize,
    /// The further `ORDER BY` keys, which order rows of the same time, with their types
    /// and directions.
    pub then_by: Vec<(Arc<dyn PhysicalExpr>, SortField)>,
    /// The frame.
    pub frame: OverFrame,
    /// The aggregates: function, argument and the argument's type.
    pub aggs: Vec<(OverFn, Arc<dyn PhysicalExpr>, DataType)>,
    /// The stream the rows come from (for late events).
    pub stream: String,
}

/// A row waiting for the watermark.
struct Waiting {
    /// The row's values in Arrow's row format.
    row: Box<[u8]>,
    /// Its aggregates' arguments.
    args: Vec<ScalarValue>,
}

/// A released row waiting for the rows after it in its group, which its LEADs read.
struct Leading {
    /// Its order key ([`order_key`]).
    order: Box<[u8]>,
    /// Its values in Arrow's row format.
    row: Box<[u8]>,
    /// Its functions' values, the LEADs' filled in as the rows after it come.
    results: Vec<ScalarValue>,
}

impl Leading {
    fn bytes(&self) -> usize {
        self.order.len() + self.row.len() + args_bytes(&self.results) + 64
    }
}

/// Running aggregates: each group's accumulators over every row it has taken in.
struct Running {
    /// Per function: its accumulator's spec (none for a LAG).
    specs: Vec<Option<AggSpec>>,
    groups: HashMap<Box<[u8]>, Vec<Acc>>,
    peers: bool,
}

/// The operator.
pub struct Over {
    /// Operator id (prefix of its checkpoint keys).
    pub id: u16,
    spec: OverSpec,
    keys: RowConverter,
    /// The further `ORDER BY` keys' converter, if there are any.
    then: Option<RowConverter>,
    values: RowConverter,
    args: RowConverter,
    /// Waiting rows by order key (see [`order_key`]): time, further `ORDER BY` values,
    /// position, group key.
    waiting: BTreeMap<Box<[u8]>, Waiting>,
    /// How many of each group's last rows are kept: the frame's (`OverFrame::Rows`), and
    /// as many as the furthest LAG reaches back over (under a RANGE frame, at least these,
    /// and the rows since the frame's start).
    keep: usize,
    /// Each group's last rows' arguments, oldest first.
    frames: HashMap<Box<[u8]>, VecDeque<Vec<ScalarValue>>>,
    /// The running aggregates' accumulators (`OverFrame::Running`).
    running: Option<Running>,
    /// How many rows after it a row waits for: the furthest LEAD's offset (0 without).
    leads: usize,
    /// Each group's released rows waiting for the rows after them, oldest first.
    leading: HashMap<Box<[u8]>, VecDeque<Leading>>,
    /// Groups whose waiting rows changed since the last checkpoint.
    leading_changed: HashSet<Box<[u8]>>,
    /// The functions' values in Arrow's row format (a waiting row's, checkpointed).
    outputs: RowConverter,
    window_watermark: Option<Watermark>,
    /// Waiting rows added since the last checkpoint, and checkpointed ones released.
    waiting_added: BTreeSet<Box<[u8]>>,
    waiting_released: Vec<Box<[u8]>>,
    frames_changed: HashSet<Box<[u8]>>,
    state_bytes: usize,
}

impl Over {
    /// A new, empty operator.
    pub fn new(id: u16, spec: OverSpec) -> Result<Over> {
        let keys = RowConverter::new(
            spec.partition_by
                .iter()
                .map(|(_, t)| SortField::new(t.clone()))
                .collect(),
        )?;
        let then = if spec.then_by.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                spec.then_by.iter().map(|(_, f)| f.clone()).collect(),
            )?)
        };
        let input_width = spec.schema.fields().len() - spec.aggs.len();
        let values = RowConverter::new(
            spec.schema.fields()[..input_width]
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        // A RANGE frame over time keeps each row's time after its arguments.
        let time_field = matches!(spec.frame, OverFrame::Range { .. })
            .then(|| SortField::new(DataType::Timestamp(TimeUnit::Millisecond, None)));
        let args = RowConverter::new(
            spec.aggs
                .iter()
                .map(|(_, _, t)| SortField::new(t.clone()))
                .chain(time_field)
                .collect(),
        )?;
        // Running accumulators, where some function of a running frame has one (LAGs alone
        // need only the last rows).
        let running = match spec.frame {
            OverFrame::Rows(_) | OverFrame::Range { .. } => None,
            OverFrame::Running { peers } => {
                let specs: Vec<Option<AggSpec>> = spec
                    .aggs
                    .iter()
                    .enumerate()
                    .map(|(a, (f, _, t))| {
                        f.kind()
                            .map(|kind| {
                                AggSpec::new(
                                    kind,
                                    t.clone(),
                                    spec.schema.field(input_width + a).data_type(),
                                )
                            })
                            .transpose()
                    })
                    .collect::<Result<_>>()?;
                specs.iter().any(Option::is_some).then(|| Running {
                    specs,
                    groups: HashMap::new(),
                    peers,
                })
            }
        };
        let lag = lag_rows(&spec.aggs);
        let keep = match spec.frame {
            OverFrame::Rows(preceding) => lag.max(preceding + 1),
            OverFrame::Running { .. } => lag,
            // At least these stay; older rows leave by time (`Over::release_with`).
            OverFrame::Range { .. } => lag.max(1),
        };
        let leads = spec
            .aggs
            .iter()
            .filter_map(|(f, _, _)| match f {
                OverFn::Lead { offset, .. } => Some(*offset),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let outputs = RowConverter::new(
            spec.schema.fields()[input_width..]
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        Ok(Over {
            id,
            keep,
            leads,
            leading: HashMap::new(),
            leading_changed: HashSet::new(),
            outputs,
            spec,
            keys,
            then,
            values,
            args,
            waiting: BTreeMap::new(),
            frames: HashMap::new(),
            running,
            window_watermark: None,
            waiting_added: BTreeSet::new(),
            waiting_released: Vec::new(),
            frames_changed: HashSet::new(),
            state_bytes: 0,
        })
    }

    /// The frame, for `DESCRIBE VIEW`.
    pub fn frame(&self) -> OverFrame {
        self.spec.frame
    }

    /// The aggregates, for `DESCRIBE VIEW`.
    pub fn functions(&self) -> Vec<OverFn> {
        self.spec.aggs.iter().map(|(f, _, _)| f.clone()).collect()
    }

    /// The `PARTITION BY` expressions over the input.
    pub fn partition_by(&self) -> impl Iterator<Item = &Arc<dyn PhysicalExpr>> {
        self.spec.partition_by.iter().map(|(e, _)| e)
    }

    /// Approximate bytes of state.
    pub fn state_bytes(&self) -> usize {
        self.state_bytes
    }

    /// Rows of the input: those behind the watermark are late, the others wait for it.
    pub fn on_input(&mut self, rows: &Rows, ctx: &mut Ctx) -> Result<()> {
        let batch = &rows.batch;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let origin = rows.origin.as_ref().ok_or_else(|| {
            EngineError::Bug("a windowed-aggregate row without its position".into())
        })?;
        let times = crate::source::times_ms(batch.column(self.spec.time_col))?;
        let key_columns = self
            .spec
            .partition_by
            .iter()
            .map(|(e, _)| Ok(e.evaluate(batch)?.into_array(n)?))
            .collect::<Result<Vec<_>>>()?;
        let keys = self.keys.convert_columns(&key_columns)?;
        let then = match &self.then {
            Some(converter) => {
                let columns = self
                    .spec
                    .then_by
                    .iter()
                    .map(|(e, _)| Ok(e.evaluate(batch)?.into_array(n)?))
                    .collect::<Result<Vec<_>>>()?;
                Some(converter.convert_columns(&columns)?)
            }
            None => None,
        };
        let values = self.values.convert_columns(batch.columns())?;
        let args = self
            .spec
            .aggs
            .iter()
            .map(|(_, e, _)| Ok(e.evaluate(batch)?.into_array(n)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        for i in 0..n {
            if times.is_null(i) {
                return Err(EngineError::Bug("a row without its event time".into()));
            }
            let t = times.value(i);
            if self
                .window_watermark
                .is_some_and(|w| w.completes(t.saturating_add(1)))
            {
                self.late(batch, origin, i, t, ctx)?;
                continue;
            }
            let mut position = [0u8; POSITION_BYTES];
            position[..4].copy_from_slice(&origin.partition.value(i).to_be_bytes());
            position[4..12].copy_from_slice(&origin.offset.value(i).to_be_bytes());
            position[12..].copy_from_slice(&origin.copy.value(i).to_be_bytes());
            let then = match &then {
                Some(rows) => rows.row(i).as_ref().to_vec(),
                None => Vec::new(),
            };
            // Without PARTITION BY every row is of the one group, whose key is empty.
            let row = (!self.spec.partition_by.is_empty()).then(|| keys.row(i));
            let key: &[u8] = row.as_ref().map_or(&[], |r| r.as_ref());
            let order = order_key(t, &then, position, key);
            let row: Box<[u8]> = values.row(i).as_ref().into();
            let mut arg_values = args
                .iter()
                .map(|a| ScalarValue::try_from_array(a, i))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if let OverFrame::Range { .. } = self.spec.frame {
                arg_values.push(ScalarValue::TimestampMillisecond(Some(t), None));
            }
            self.state_bytes += 2 * order.len() + row.len() + args_bytes(&arg_values) + 64;
            self.waiting_added.insert(order.clone());
            self.waiting.insert(
                order,
                Waiting {
                    row,
                    args: arg_values,
                },
            );
        }
        ctx.check_state(self.state_bytes)
    }

    /// A row behind the watermark: counted, and kept as a dead letter unless the policy
    /// drops it.
    fn late(
        &self,
        batch: &RecordBatch,
        origin: &Origin,
        i: usize,
        t: i64,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.set_aside(|| {
            Ok(LateEvent {
                stream: self.spec.stream.clone(),
                partition: origin.partition.value(i),
                offset: origin.offset.value(i),
                event_time_ms: t,
                reason: format!(
                    "its time is behind the watermark minus allowed lateness ({}): the rows \
                     after it in its window frame were already written",
                    crate::source::fmt_ms(self.window_watermark.unwrap_or(Watermark::MIN).0)
                ),
                row_json: crate::source::row_json(batch, i)?,
            })
        })
    }

    /// The input's window watermark moved to `wm`: the rows it passed take their places
    /// in their frames and are written, final.
    pub fn on_watermark(&mut self, wm: Option<Watermark>) -> Result<Vec<Rows>> {
        let Some(wm) = wm else { return Ok(Vec::new()) };
        if self.window_watermark.is_some_and(|w| wm <= w) {
            return Ok(Vec::new());
        }
        self.window_watermark = Some(wm);
        let mut released = Vec::new();
        while let Some((order, _)) = self.waiting.first_key_value() {
            let t = unsortable(order[..8].try_into().expect("8 bytes"));
            if !wm.completes(t.saturating_add(1)) {
                break;
            }
            let (order, waiting) = self.waiting.pop_first().expect("a first row");
            self.state_bytes = self.state_bytes.saturating_sub(
                2 * order.len() + waiting.row.len() + args_bytes(&waiting.args) + 64,
            );
            if !self.waiting_added.remove(&order) {
                self.waiting_released.push(order.clone());
            }
            released.push((order, waiting));
        }
        let results = match released.is_empty() {
            true => vec![Vec::new(); self.spec.aggs.len()],
            false => self.release(&released)?,
        };
        if self.leads == 0 {
            if released.is_empty() {
                return Ok(Vec::new());
            }
            let rows = released.iter().map(|(o, w)| (&o[..], &w.row[..])).collect();
            return Ok(vec![self.assemble(rows, results)?]);
        }
        let done = self.lead(released, results);
        self.write_led(done)
    }

    /// At the end of the streams, the rows still waiting for the rows after them, written
    /// with their LEADs' defaults (no row comes after them).
    pub fn on_commit(&mut self, ctx: &Ctx) -> Result<Vec<Rows>> {
        if !ctx.end_of_stream || self.leading.is_empty() {
            return Ok(Vec::new());
        }
        let mut done = Vec::new();
        for (key, group) in self.leading.iter_mut() {
            for l in group.drain(..) {
                self.state_bytes = self.state_bytes.saturating_sub(l.bytes());
                done.push(l);
            }
            self.leading_changed.insert(key.clone());
        }
        self.write_led(done)
    }

    /// Rows whose LEADs are known, final.
    fn write_led(&self, done: Vec<Leading>) -> Result<Vec<Rows>> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let rows = done.iter().map(|l| (&l.order[..], &l.row[..])).collect();
        let mut results = vec![Vec::with_capacity(done.len()); self.spec.aggs.len()];
        for l in &done {
            for (a, v) in l.results.iter().enumerate() {
                results[a].push(v.clone());
            }
        }
        Ok(vec![self.assemble(rows, results)?])
    }

    /// The released rows join their groups' rows waiting for the rows after them, each
    /// filling in the LEADs of the rows it is that many rows after; the rows whose every
    /// LEAD is known are done.
    fn lead(
        &mut self,
        released: Vec<(Box<[u8]>, Waiting)>,
        mut results: Vec<Vec<ScalarValue>>,
    ) -> Vec<Leading> {
        let mut done = Vec::new();
        for (i, (order, waiting)) in released.into_iter().enumerate() {
            let key: Box<[u8]> = order_parts(&order).0.into();
            let group = self.leading.entry(key.clone()).or_default();
            let held = group.len();
            for (at, earlier) in group.iter_mut().enumerate() {
                // This row is `held - at` rows after it.
                let after = held - at;
                for (a, (f, _, _)) in self.spec.aggs.iter().enumerate() {
                    if matches!(f, OverFn::Lead { offset, .. } if *offset == after) {
                        let value = waiting.args[a].clone();
                        self.state_bytes = (self.state_bytes + value.size())
                            .saturating_sub(earlier.results[a].size());
                        earlier.results[a] = value;
                    }
                }
            }
            let leading = Leading {
                order,
                row: waiting.row,
                results: results
                    .iter_mut()
                    .map(|r| std::mem::replace(&mut r[i], ScalarValue::Null))
                    .collect(),
            };
            self.state_bytes += leading.bytes();
            group.push_back(leading);
            while group.len() > self.leads {
                let l = group.pop_front().expect("a waiting row");
                self.state_bytes = self.state_bytes.saturating_sub(l.bytes());
                done.push(l);
            }
            self.leading_changed.insert(key);
        }
        done
    }

    /// Each released row appended to its group's kept rows and folded into its running
    /// accumulators, with its functions' values: a LAG from the kept rows, an aggregate
    /// over the last rows from them too, a running aggregate from the accumulators after
    /// it (under `RANGE`, after its last peer).
    fn release(&mut self, released: &[(Box<[u8]>, Waiting)]) -> Result<Vec<Vec<ScalarValue>>> {
        let mut running = self.running.take();
        let results = self.release_with(running.as_mut(), released);
        self.running = running;
        results
    }

    fn release_with(
        &mut self,
        mut running: Option<&mut Running>,
        released: &[(Box<[u8]>, Waiting)],
    ) -> Result<Vec<Vec<ScalarValue>>> {
        let (n, na) = (released.len(), self.spec.aggs.len());
        let mut results: Vec<Vec<ScalarValue>> = vec![vec![ScalarValue::Null; n]; na];
        // The running aggregates' arguments as arrays, for their accumulators.
        let (args, values) = match &running {
            Some(r) => {
                let args = (0..na)
                    .map(|a| {
                        Ok(ScalarValue::iter_to_array(
                            released.iter().map(|(_, w)| w.args[a].clone()),
                        )?)
                    })
                    .collect::<Result<Vec<ArrayRef>>>()?;
                let values = r
                    .specs
                    .iter()
                    .zip(&args)
                    .map(|(s, a)| s.as_ref().map_or(Ok(None), |s| s.encode_values(a)))
                    .collect::<Result<Vec<_>>>()?;
                (args, values)
            }
            None => (Vec::new(), Vec::new()),
        };
        let empty = VecDeque::new();
        // Per group, the rows whose peers may still follow: their `ORDER BY` values and
        // indexes.
        let mut waiting_peers: HashMap<&[u8], (&[u8], Vec<usize>)> = HashMap::new();
        // Under a RANGE frame over time, per group the rows of one time whose peers may
        // still follow: the time and their indexes.
        let mut range_peers: HashMap<&[u8], (i64, Vec<usize>)> = HashMap::new();
        for (i, (order, waiting)) in released.iter().enumerate() {
            let key = order_parts(order).0;
            // (Looked up first: most rows are of a group already marked.)
            if !self.frames_changed.contains(key) {
                self.frames_changed.insert(key.into());
            }
            let frame = match self.keep {
                0 => &empty,
                keep => {
                    let frame = match self.frames.get_mut(key) {
                        Some(f) => f,
                        None => {
                            self.state_bytes += 2 * key.len() + 64;
                            self.frames.entry(key.into()).or_default()
                        }
                    };
                    // Under a RANGE frame, the time before which rows leave the frame.
                    let mut start = None;
                    if let OverFrame::Range { preceding_ms } = self.spec.frame {
                        let t = frame_time(&waiting.args);
                        // A later time: the rows of the earlier one had all their peers.
                        match range_peers.get_mut(key) {
                            Some((at, rows)) if *at != t => {
                                range_values(&self.spec, frame, *at, rows, &mut results)?;
                                *at = t;
                                rows.clear();
                                rows.push(i);
                            }
                            Some((_, rows)) => rows.push(i),
                            None => {
                                range_peers.insert(key, (t, vec![i]));
                            }
                        }
                        start = Some(t.saturating_sub(preceding_ms));
                    }
                    self.state_bytes += args_bytes(&waiting.args);
                    frame.push_back(waiting.args.clone());
                    // Beyond the `keep` last rows (which LAGs read), a rows frame lets the
                    // oldest go, a RANGE frame those before its start.
                    while frame.len() > keep
                        && frame
                            .front()
                            .is_some_and(|r| start.is_none_or(|s| frame_time(r) < s))
                    {
                        let gone = frame.pop_front().expect("a first row");
                        self.state_bytes = self.state_bytes.saturating_sub(args_bytes(&gone));
                    }
                    &*frame
                }
            };
            for (a, (f, _, _)) in self.spec.aggs.iter().enumerate() {
                results[a][i] = match (f, self.spec.frame) {
                    (OverFn::Lag { offset, default }, _) => {
                        match frame.len().checked_sub(offset + 1) {
                            Some(at) => frame[at][a].clone(),
                            None => default.clone(),
                        }
                    }
                    // Filled in as the rows after it come (`Over::lead`).
                    (OverFn::Lead { default, .. }, _) => default.clone(),
                    (_, OverFrame::Rows(preceding)) => aggregate(
                        &self.spec,
                        a,
                        frame.range(frame.len().saturating_sub(preceding + 1)..),
                    )?,
                    // Below, from the accumulators.
                    (_, OverFrame::Running { .. }) => continue,
                    // Once the row's peers are in the frame (`range_values`).
                    (_, OverFrame::Range { .. }) => continue,
                };
            }
            let Some(Running {
                specs,
                groups,
                peers,
            }) = running.as_deref_mut()
            else {
                continue;
            };
            let accs = match groups.get_mut(key) {
                Some(accs) => accs,
                None => {
                    self.state_bytes += 2 * key.len() + 64 + 40 * specs.len();
                    groups
                        .entry(key.into())
                        .or_insert_with(|| specs.iter().map(running_init).collect())
                }
            };
            if *peers {
                let this = order_values(order);
                match waiting_peers.get_mut(key) {
                    Some((at, rows)) if *at == this => rows.push(i),
                    Some((at, rows)) => {
                        // A row after the last peers: they get the values without it.
                        running_values(specs, accs, rows, &mut results)?;
                        *at = this;
                        rows.clear();
                        rows.push(i);
                    }
                    None => {
                        waiting_peers.insert(key, (this, vec![i]));
                    }
                }
            }
            for (a, spec) in specs.iter().enumerate() {
                if let Some(spec) = spec {
                    self.state_bytes += spec.update(&mut accs[a], &args[a], values[a].as_ref(), i);
                }
            }
            if !*peers {
                running_values(specs, accs, &[i], &mut results)?;
            }
        }
        if let Some(r) = running {
            for (key, (_, rows)) in waiting_peers {
                running_values(&r.specs, &r.groups[key], &rows, &mut results)?;
            }
        }
        for (key, (at, rows)) in range_peers {
            range_values(&self.spec, &self.frames[key], at, &rows, &mut results)?;
        }
        Ok(results)
    }
}

/// Rows of values (one per field of `conv`) in Arrow's row format.
fn encode_scalars(conv: &RowConverter, rows: &[&Vec<ScalarValue>]) -> Result<Vec<Vec<u8>>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns = (0..first.len())
        .map(|a| {
            Ok(ScalarValue::iter_to_array(
                rows.iter().map(|r| r[a].clone()),
            )?)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let converted = conv.convert_columns(&columns)?;
    Ok(converted.iter().map(|r| r.as_ref().to_vec()).collect())
}

/// The inverse of [`encode_scalars`].
fn decode_scalars(conv: &RowConverter, rows: &[&[u8]]) -> Result<Vec<Vec<ScalarValue>>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let parser = conv.parser();
    let columns = conv.convert_rows(rows.iter().map(|r| parser.parse(r)))?;
    (0..rows.len())
        .map(|i| {
            columns
                .iter()
                .map(|c| Ok(ScalarValue::try_from_array(c, i)?))
                .collect()
        })
        .collect()
}

/// How many of a group's last rows the furthest LAG of `aggs` reads, the row itself
/// included (0 without LAG).
fn lag_rows(aggs: &[(OverFn, Arc<dyn PhysicalExpr>, DataType)]) -> usize {
    aggs.iter()
        .filter_map(|(f, _, _)| match f {
            OverFn::Lag { offset, .. } => Some(offset + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// The time a RANGE frame keeps after a row's arguments.
fn frame_time(args: &[ScalarValue]) -> i64 {
    match args.last() {
        Some(ScalarValue::TimestampMillisecond(Some(t), _)) => *t,
        _ => unreachable!("a RANGE frame's rows end with their time"),
    }
}

/// The aggregates over a RANGE frame of the rows at `rows`, peers of time `at`, the last
/// rows of `frame`: over the frame's rows from `at` less the frame's reach.
fn range_values(
    spec: &OverSpec,
    frame: &VecDeque<Vec<ScalarValue>>,
    at: i64,
    rows: &[usize],
    results: &mut [Vec<ScalarValue>],
) -> Result<()> {
    let OverFrame::Range { preceding_ms } = spec.frame else {
        return Err(EngineError::Bug("RANGE values of another frame".into()));
    };
    let start = at.saturating_sub(preceding_ms);
    for (a, (f, _, _)) in spec.aggs.iter().enumerate() {
        if matches!(f, OverFn::Lag { .. } | OverFn::Lead { .. }) {
            continue;
        }
        let value = aggregate(spec, a, frame.iter().skip_while(|r| frame_time(r) < start))?;
        for &i in rows {
            results[a][i] = value.clone();
        }
    }
    Ok(())
}

/// A running accumulator to start from (a LAG, which has none, holds a count of 0).
fn running_init(spec: &Option<AggSpec>) -> Acc {
    spec.as_ref().map_or(Acc::Count(0), AggSpec::init)
}

/// The running aggregates' values of `accs`, for the rows at `rows`.
fn running_values(
    specs: &[Option<AggSpec>],
    accs: &[Acc],
    rows: &[usize],
    results: &mut [Vec<ScalarValue>],
) -> Result<()> {
    for (a, spec) in specs.iter().enumerate() {
        let Some(spec) = spec else { continue };
        let value = ScalarValue::try_from_array(&spec.evaluate(std::iter::once(&accs[a]))?, 0)?;
        for &i in rows {
            results[a][i] = value.clone();
        }
    }
    Ok(())
}

/// Aggregate `a` of `spec` over `frame`, as the output column's type.
fn aggregate<'f>(
    spec: &OverSpec,
    a: usize,
    frame: impl Iterator<Item = &'f Vec<ScalarValue>>,
) -> Result<ScalarValue> {
    let (f, _, _) = &spec.aggs[a];
    let width = spec.schema.fields().len() - spec.aggs.len();
    let out_type = spec.schema.field(width + a).data_type();
    let values = frame.map(|r| &r[a]).filter(|v| !v.is_null());
    let value = match f {
        OverFn::Count => ScalarValue::Int64(Some(values.count() as i64)),
        OverFn::Sum => {
            let mut sum: Option<ScalarValue> = None;
            for v in values {
                let v = v.cast_to(out_type)?;
                sum = Some(match sum {
                    None => v,
                    // Integers wrap on overflow, as DataFusion's SUM does.
                    Some(s) => s.add(&v)?,
                });
            }
            sum.unwrap_or(ScalarValue::try_from(out_type)?)
        }
        OverFn::Avg => {
            let (mut sum, mut count) = (0.0f64, 0u64);
            for v in values {
                match v.cast_to(&DataType::Float64)? {
                    ScalarValue::Float64(Some(x)) => {
                        sum += x;
                        count += 1;
                    }
                    other => {
                        return Err(EngineError::Bug(format!(
                            "AVG over {other:?} in a ROWS BETWEEN frame"
                        )));
                    }
                }
            }
            ScalarValue::Float64((count > 0).then(|| sum / count as f64))
        }
        OverFn::Lag { .. } | OverFn::Lead { .. } => {
            return Err(EngineError::Bug(
                "LAG or LEAD aggregated over a frame".into(),
            ));
        }
        OverFn::Min | OverFn::Max => {
            let mut best: Option<&ScalarValue> = None;
            for v in values {
                let better = best.is_none_or(|b| {
                    let ord = v.partial_cmp(b);
                    if *f == OverFn::Min {
                        ord == Some(std::cmp::Ordering::Less)
                    } else {
                        ord == Some(std::cmp::Ordering::Greater)
                    }
                });
                if better {
                    best = Some(v);
                }
            }
            match best {
                Some(b) => b.clone(),
                None => ScalarValue::try_from(out_type)?,
            }
        }
    };
    Ok(value.cast_to(out_type)?)
}

impl Over {
    /// Rows (order key, values) with their functions' values, final, keyed by their log
    /// positions.
    fn assemble(
        &self,
        released: Vec<(&[u8], &[u8])>,
        results: Vec<Vec<ScalarValue>>,
    ) -> Result<Rows> {
        let parser = self.values.parser();
        let mut columns = self
            .values
            .convert_rows(released.iter().map(|(_, row)| parser.parse(row)))?;
        let width = columns.len();
        for (a, values) in results.into_iter().enumerate() {
            let out_type = self.spec.schema.field(width + a).data_type().clone();
            columns.push(if values.is_empty() {
                arrow_array::new_empty_array(&out_type)
            } else {
                ScalarValue::iter_to_array(values)?
            });
        }
        let n = released.len();
        let batch = RecordBatch::try_new_with_options(
            self.spec.schema.clone(),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let position =
            |o: &[u8]| -> [u8; POSITION_BYTES] { order_parts(o).1.try_into().expect("a position") };
        let partition = released
            .iter()
            .map(|(o, _)| u32::from_be_bytes(position(o)[..4].try_into().expect("4 bytes")));
        let offset = released
            .iter()
            .map(|(o, _)| u64::from_be_bytes(position(o)[4..12].try_into().expect("8 bytes")));
        let copy = released
            .iter()
            .map(|(o, _)| u32::from_be_bytes(position(o)[12..].try_into().expect("4 bytes")));
        Ok(Rows {
            batch,
            origin: Some(Origin::new(
                UInt32Array::from_iter_values(partition),
                UInt64Array::from_iter_values(offset),
                UInt32Array::from_iter_values(copy),
            )),
            change: Change::Upsert(RowState::Final),
        })
    }

    fn state_key(&self, kind: u8, rest: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(rest.len() + 3);
        k.extend_from_slice(&self.id.to_be_bytes());
        k.push(kind);
        k.extend_from_slice(rest);
        k
    }

    /// Arguments of frame or waiting rows in Arrow's row format.
    fn encode_args(&self, rows: &[&Vec<ScalarValue>]) -> Result<Vec<Vec<u8>>> {
        encode_scalars(&self.args, rows)
    }

    fn decode_args(&self, rows: &[&[u8]]) -> Result<Vec<Vec<ScalarValue>>> {
        decode_scalars(&self.args, rows)
    }

    /// State changes since the last checkpoint: changed frames whole, waiting rows added
    /// and released.
    pub fn checkpoint(
        &mut self,
        puts: &mut Vec<(Vec<u8>, Vec<u8>)>,
        deletes: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        for key in std::mem::take(&mut self.frames_changed) {
            if let Some(accs) = self.running.as_ref().and_then(|r| r.groups.get(&key)) {
                let mut v = Vec::new();
                for acc in accs {
                    acc.encode(&mut v);
                }
                puts.push((self.state_key(KIND_RUNNING, &key), v));
            }
            let Some(frame) = self.frames.get(&key) else {
                continue;
            };
            let rows: Vec<&Vec<ScalarValue>> = frame.iter().collect();
            let mut v = Vec::new();
            for r in self.encode_args(&rows)? {
                put_bytes(&mut v, &r);
            }
            puts.push((self.state_key(KIND_FRAME, &key), v));
        }
        for order in std::mem::take(&mut self.waiting_released) {
            deletes.push(self.state_key(KIND_WAITING, &order));
        }
        for key in std::mem::take(&mut self.leading_changed) {
            let group = match self.leading.get(&key) {
                Some(group) if !group.is_empty() => group,
                _ => {
                    self.leading.remove(&key);
                    deletes.push(self.state_key(KIND_LEADING, &key));
                    continue;
                }
            };
            let results: Vec<&Vec<ScalarValue>> = group.iter().map(|l| &l.results).collect();
            let mut v = Vec::new();
            for (l, r) in group.iter().zip(encode_scalars(&self.outputs, &results)?) {
                put_bytes(&mut v, &l.order);
                put_bytes(&mut v, &l.row);
                put_bytes(&mut v, &r);
            }
            puts.push((self.state_key(KIND_LEADING, &key), v));
        }
        let added = std::mem::take(&mut self.waiting_added);
        let rows: Vec<(&Box<[u8]>, &Waiting)> = added
            .iter()
            .filter_map(|o| self.waiting.get(o).map(|w| (o, w)))
            .collect();
        let args = self.encode_args(&rows.iter().map(|(_, w)| &w.args).collect::<Vec<_>>())?;
        for ((order, waiting), args) in rows.into_iter().zip(args) {
            let mut v = Vec::new();
            put_bytes(&mut v, &waiting.row);
            put_bytes(&mut v, &args);
            puts.push((self.state_key(KIND_WAITING, order), v));
        }
        Ok(())
    }

    /// Loads checkpointed frames, running accumulators and waiting rows.
    pub fn restore(&mut self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        for (k, v) in entries {
            let rest: Box<[u8]> = k
                .get(3..)
                .ok_or_else(|| EngineError::Bug("a short windowed-aggregate key".into()))?
                .into();
            let mut val = &v[..];
            match k.get(2) {
                Some(&KIND_FRAME) => {
                    let mut rows = Vec::new();
                    while !val.is_empty() {
                        rows.push(get_bytes(&mut val)?);
                    }
                    let frame: VecDeque<Vec<ScalarValue>> =
                        self.decode_args(&rows)?.into_iter().collect();
                    self.state_bytes +=
                        2 * rest.len() + 64 + frame.iter().map(|a| args_bytes(a)).sum::<usize>();
                    self.frames.insert(rest, frame);
                }
                Some(&KIND_RUNNING) => {
                    let Some(running) = self.running.as_mut() else {
                        return Err(EngineError::Bug(
                            "running accumulators checkpointed for functions without them".into(),
                        ));
                    };
                    let accs = (0..running.specs.len())
                        .map(|_| Acc::decode(&mut val))
                        .collect::<Result<Vec<_>>>()?;
                    self.state_bytes += 2 * rest.len()
                        + 64
                        + 40 * accs.len()
                        + accs.iter().map(Acc::heap_bytes).sum::<usize>();
                    running.groups.insert(rest, accs);
                }
                Some(&KIND_LEADING) => {
                    let mut group = VecDeque::new();
                    while !val.is_empty() {
                        let order: Box<[u8]> = get_bytes(&mut val)?.into();
                        let row: Box<[u8]> = get_bytes(&mut val)?.into();
                        let results = decode_scalars(&self.outputs, &[get_bytes(&mut val)?])?
                            .pop()
                            .ok_or_else(|| {
                                EngineError::Bug("a leading row without values".into())
                            })?;
                        let l = Leading {
                            order,
                            row,
                            results,
                        };
                        self.state_bytes += l.bytes();
                        group.push_back(l);
                    }
                    self.leading.insert(rest, group);
                }
                Some(&KIND_WAITING) => {
                    let row: Box<[u8]> = get_bytes(&mut val)?.into();
                    let args = self
                        .decode_args(&[get_bytes(&mut val)?])?
                        .pop()
                        .ok_or_else(|| {
                            EngineError::Bug("a waiting row without arguments".into())
                        })?;
                    self.state_bytes += 2 * rest.len() + row.len() + args_bytes(&args) + 64;
                    self.waiting.insert(rest, Waiting { row, args });
                }
                _ => {
                    return Err(EngineError::Bug(
                        "a windowed-aggregate checkpoint key of another kind".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}
