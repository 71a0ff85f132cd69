//! A running view's batch mode, executed by DataFusion.
//!
//! A view whose rows all belong to fixed windows (`TUMBLE`, `HOP`; no `SESSION`, no
//! unbounded `GROUP BY`, no rows passed through unaggregated) and are written once, final,
//! runs its batch mode as batch jobs rather than as its streaming operators on a long
//! schedule ([`support`] says which views can, and why not). Each run:
//!
//! 1. claims what is new in the log, every partition up to its current end, reading only
//!    frame headers (for watermarks, idleness and latency) except in frames that may hold
//!    late events, which a fresh operator tree judges exactly as streaming would (counted,
//!    dead-lettered, with the same reason);
//! 2. moves the watermarks as streaming would after reading the same events;
//! 3. recomputes with DataFusion over the log (`batch::BatchSession`, each scan stopped at
//!    the claimed offsets) the windows this run makes final: those ending after the window
//!    watermark before the run and at or before the one after it;
//! 4. commits those rows, final, with the claimed offsets and watermarks in one store
//!    transaction, as every mode does.
//!
//! A window therefore counts exactly the events claimed before the run that made it final,
//! which is what the operators count; an event claimed later is late, as under streaming.
//!
//! Meanwhile the operators hold no state (`Stats::state_in_log`): the first run removes the
//! stored state, and the log is kept from the first frame an open window may still need
//! (`PartInput::needed`). Before the operators run again (a switch to streaming or
//! micro-batch, a drain), their state is rebuilt by reading those frames again with the
//! watermarks where they are; events of final windows are skipped, uncounted.

use super::{PartInput, ViewRunner, compile_after};
use crate::aggregate::Mode as AggMode;
use crate::batch::{BatchSession, TimeRange, Views};
use crate::compile::{Compiled, ResultKey};
use crate::error::{EngineError, Result};
use crate::node::{Node, Op};
use crate::options::{EmitPolicy, LatePolicy};
use crate::reconcile::in_range;
use crate::views::ViewDef;
use freshet_store::{ResultBatch, RowState};
use freshet_types::Offset;
use freshet_types::limits::VIEW_READ_BYTES;
use std::collections::{HashMap, VecDeque};

/// How far before the window watermark a batch run of this view must read (the sum of its
/// window lengths, enough for windows over windows), or why DataFusion cannot run its batch
/// mode (the operators then run it on the batch schedule).
pub(super) fn support(compiled: &Compiled, def: &ViewDef) -> std::result::Result<i64, String> {
    let mut sizes = Vec::new();
    let mut why = Vec::new();
    walk(&compiled.root, &mut sizes, &mut why);
    if matches!(compiled.key, ResultKey::Origin) {
        why.push("its rows are not aggregated (they are keyed by input position)".to_string());
    }
    if def.options.late_data == LatePolicy::Update {
        why.push("late_data = 'update' rewrites rows after they are written".to_string());
    }
    if def.options.emit == EmitPolicy::OnUpdate {
        why.push("emit = 'on_update' writes provisional rows".to_string());
    }
    let mut streams = Vec::new();
    compiled.root.streams(&mut streams);
    if streams.len() > 1 {
        // Each stream's rows are judged late against that stream's watermark, but a batch
        // run recomputes the windows the view's (least) watermark closes: an event late for
        // its own stream would be both dead-lettered and counted.
        why.push(format!(
            "it reads {} streams, each with its own watermark",
            streams.len()
        ));
    }
    let schema = &compiled.result_schema;
    if schema.index_of("window_start").is_err() || schema.index_of("window_end").is_err() {
        why.push("its results have no window_start and window_end columns".to_string());
    }
    if why.is_empty() {
        Ok(sizes.iter().sum())
    } else {
        why.dedup();
        Err(why.join("; "))
    }
}

fn walk(node: &Node, sizes: &mut Vec<i64>, why: &mut Vec<String>) {
    match &node.op {
        Op::Source(s) => match s.window {
            Some(w) => match w.size_ms() {
                Some(size) => sizes.push(size),
                None => why.push("it uses SESSION windows".to_string()),
            },
            None => why.push(format!("it reads {} without a window", s.stream)),
        },
        Op::Filter { input, .. } | Op::Project { input, .. } => walk(input, sizes, why),
        Op::Aggregate { input, agg } => {
            if !matches!(agg.mode, AggMode::Fixed { .. }) {
                why.push("it groups without a fixed window".to_string());
            }
            walk(input, sizes, why);
        }
        Op::Join { left, right, .. } => {
            walk(left, sizes, why);
            walk(right, sizes, why);
        }
    }
}

/// Notes a frame read while the state is in the log: `needed` keeps the frames whose max
/// event time exceeds every earlier one's (the first frame an open window needs is always
/// one of them), dropping those below `from`.
fn note_frame(needed: &mut VecDeque<(u64, i64)>, base: u64, max_event: i64, from: Option<i64>) {
    if needed.back().is_none_or(|&(_, m)| max_event > m) {
        needed.push_back((base, max_event));
    }
    prune(needed, from);
}

/// Drops the frames whose events all lie before `from`: every window they belong to is
/// final. (Frames between two kept ones hold no later event than the first of them.)
fn prune(needed: &mut VecDeque<(u64, i64)>, from: Option<i64>) {
    if let Some(from) = from {
        while needed.front().is_some_and(|&(_, m)| m < from) {
            needed.pop_front();
        }
    }
}

/// Operator state a judge tree may gather (from the on-time rows of the frames it judges)
/// before it is dropped and made afresh: only its watermarks matter.
const JUDGE_STATE_BYTES_MAX: usize = 64 << 20;

/// Judges late events while a batch run claims frames: a fresh operator tree told the
/// watermarks before the run, made when first needed.
struct Judge {
    before: HashMap<String, Option<i64>>,
    lateness: i64,
    tree: Option<Compiled>,
}

impl Judge {
    /// Whether a frame of `stream` whose earliest event is at `min_event` may hold an event
    /// of a window that was final before the run.
    fn may_be_late(&self, stream: &str, min_event: i64) -> bool {
        self.before
            .get(stream)
            .copied()
            .flatten()
            .is_some_and(|w| min_event < w.saturating_sub(self.lateness))
    }

    fn tree(&mut self, runner: &mut ViewRunner) -> Result<&mut Compiled> {
        if self.tree.is_none() {
            let mut tree = compile_after(&runner.streams, &runner.earlier, &runner.def)?;
            tree.root.on_watermark(&self.before, &mut runner.ctx)?;
            self.tree = Some(tree);
        }
        Ok(self.tree.as_mut().expect("made above"))
    }

    /// Drops the tree once the on-time rows it was given grow large (well below the view's
    /// state cap, which the operators would not reach with those rows).
    fn bound(&mut self, state_bytes_max: u64) {
        let max =
            JUDGE_STATE_BYTES_MAX.min(usize::try_from(state_bytes_max / 4).unwrap_or(usize::MAX));
        if self
            .tree
            .as_ref()
            .is_some_and(|t| t.root.state_bytes() > max)
        {
            self.tree = None;
        }
    }
}

impl PartInput {
    /// Rebuilds `needed` from the frame headers of `[start, next)`.
    fn scan_needed(&mut self, start: u64, from: Option<i64>) -> Result<()> {
        self.needed.clear();
        let mut reader = self.partition.reader();
        let mut at = start.max(reader.start_offset()?.0);
        while at < self.next {
            let frames = reader.read(Offset(at), VIEW_READ_BYTES)?;
            if frames.is_empty() {
                break;
            }
            for frame in frames {
                let h = frame.header;
                if h.base_offset.0 >= self.next {
                    at = self.next;
                    break;
                }
                if h.end_offset().0 <= at {
                    continue;
                }
                at = h.end_offset().0;
                note_frame(&mut self.needed, h.base_offset.0, h.max_event_time.0, from);
            }
        }
        Ok(())
    }
}

impl ViewRunner {
    /// The view's window watermark: window ends at or before it are final.
    fn window_watermark(&self) -> Option<i64> {
        let lateness = self.def.options.allowed_lateness_ms as i64;
        self.inputs
            .iter()
            .map(|s| self.watermarks.get(&s.name).copied().flatten())
            .try_fold(i64::MAX, |acc, w| w.map(|w| acc.min(w)))
            .map(|w| w.saturating_sub(lateness))
    }

    /// The earliest event time an open window can hold.
    fn open_from(&self) -> Option<i64> {
        let lookback = self.batch_support.clone().ok()?;
        self.window_watermark().map(|w| w.saturating_sub(lookback))
    }

    /// After a restart with the state in the log: which frames open windows need.
    pub(super) fn load_needed(&mut self) -> Result<()> {
        let from = self.open_from();
        for s in &mut self.inputs {
            for (p, part) in s.parts.iter_mut().enumerate() {
                let start = self
                    .ctx
                    .stats
                    .needed_from
                    .get(&format!("{}/{p}", s.name))
                    .copied()
                    .unwrap_or(0);
                part.scan_needed(start, from)?;
            }
        }
        Ok(())
    }

    /// Entering batch runs from the operators: finds the frames open windows need and pins
    /// the log from there at once (the next commit, which would move the pin, is a period
    /// away). `Err` with the reason when retention may have removed some of them: the
    /// operators hold those events in their state, and go on running the view.
    fn enter(&mut self) -> std::result::Result<(), String> {
        let entered = self.find_needed();
        if entered.is_err() {
            for s in &mut self.inputs {
                for part in &mut s.parts {
                    part.needed.clear();
                }
            }
        }
        entered
    }

    fn find_needed(&mut self) -> std::result::Result<(), String> {
        let from = self.open_from();
        // With no operator state nothing can be lost, whatever retention removed.
        let stateless = self.compiled.root.state_bytes() == 0;
        let consumer = super::consumer_name(&self.def.name);
        for s in &mut self.inputs {
            for (p, part) in s.parts.iter_mut().enumerate() {
                let mut reader = part.partition.reader();
                let start = reader.start_offset().map_err(|e| e.to_string())?.0;
                part.scan_needed(start, from).map_err(|e| e.to_string())?;
                // Retention removed frames before `start`. They held no event of an open
                // window if a frame kept after them holds none either (events arrive in
                // about event-time order): the first kept frame is not needed.
                let first_needed = part.needed.front().map(|&(o, _)| o);
                let trimmed_safely =
                    from.is_some() && start < part.next && first_needed != Some(start);
                if start > 0 && !stateless && !trimmed_safely {
                    return Err(format!(
                        "retention removed the start of {} partition {p}, which may have \
                         held events of windows still open",
                        s.name
                    ));
                }
                let keep = part.keep_from();
                part.partition
                    .consumers()
                    .set(&consumer, Offset(keep))
                    .map_err(|e| e.to_string())?;
                // Retention may have run between the scan and the pin.
                if reader.start_offset().map_err(|e| e.to_string())?.0 > keep {
                    return Err(format!(
                        "retention removed {} partition {p} up to offset {keep} while the \
                         view entered batch runs",
                        s.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// One batch run (see the module's description) over what is new in the log, at most
    /// about `limit` events of it; `None` if the view cannot enter batch runs now, in which
    /// case the operators run it. Returns the events claimed.
    pub fn batch_run(&mut self, limit: Option<u64>) -> Result<Option<u64>> {
        let lookback = self
            .batch_support
            .clone()
            .map_err(|why| EngineError::Bug(format!("a batch run of a view that {why}")))?;
        if !self.ctx.stats.state_in_log {
            if let Err(why) = self.enter() {
                tracing::warn!(view = %self.def.name, reason = %why,
                    "batch mode runs with the streaming operators");
                self.batch_support = Err(why);
                return Ok(None);
            }
            // The operators' state is dropped: open windows are recomputed from the log.
            self.fresh_operators()?;
            self.ctx.stats.state_in_log = true;
            self.reset_state = true;
        }
        let before = self.window_watermark();
        let events = self.claim(limit)?;
        self.update_watermarks()?;
        let after = self.window_watermark();
        if let Some(to) = after
            && before.is_none_or(|b| to > b)
        {
            let from = before.map(|b| b.saturating_sub(lookback));
            let bounds: HashMap<String, Vec<(u64, u64)>> = self
                .inputs
                .iter()
                .map(|s| {
                    let parts = s.parts.iter().map(|p| (p.keep_from(), p.next)).collect();
                    (s.name.clone(), parts)
                })
                .collect();
            let session = BatchSession::within(
                &self.root_dir,
                &self.streams,
                Views::Recomputed(&self.earlier),
                TimeRange {
                    from_ms: from,
                    to_ms: Some(to),
                },
                &bounds,
            )?;
            let schema = self.compiled.result_schema.clone();
            let window = (from.unwrap_or(i64::MIN), to);
            let ends_after = before.unwrap_or(i64::MIN);
            let mut rows = Vec::new();
            session.for_each(&self.def.query, |batch| {
                let batch = in_range(batch, &schema, window, ends_after, false)?;
                if batch.num_rows() > 0 {
                    rows.push(batch);
                }
                Ok(())
            })?;
            // Memory follows what the run read (its claim and the open windows' earlier
            // events), so the estimate is per row read.
            let read = session.rows_scanned();
            if read > 0 {
                self.ctx.stats.batch_run_memory_bytes = session.peak_memory() as u64;
                self.ctx.stats.batch_run_events = read;
            }
            for batch in rows {
                self.pending_rows += batch.num_rows();
                self.pending.push(ResultBatch {
                    batch,
                    state: RowState::Final,
                });
            }
        }
        let from = self.open_from();
        for s in &mut self.inputs {
            for part in &mut s.parts {
                prune(&mut part.needed, from);
            }
        }
        self.ctx.stats.batch_runs += 1;
        self.commit()?;
        Ok(Some(events))
    }

    /// Claims every partition up to its end (or `limit` events) without running the
    /// operators, a chunk per partition in turn as they read: watermarks, idleness and
    /// latency come from the frame headers; frames that may hold late events are decoded
    /// and judged by a fresh operator tree with the watermarks before the run.
    fn claim(&mut self, limit: Option<u64>) -> Result<u64> {
        let lateness = self.def.options.allowed_lateness_ms as i64;
        let before = self.watermarks.clone();
        let mut judge = Judge {
            before,
            lateness,
            tree: None,
        };
        let ends: Vec<Vec<u64>> = self
            .inputs
            .iter()
            .map(|s| s.parts.iter().map(|p| p.partition.end_offset().0).collect())
            .collect();
        let mut done: Vec<Vec<bool>> = ends.iter().map(|e| vec![false; e.len()]).collect();
        let mut events = 0u64;
        let mut open = true;
        while open && limit.is_none_or(|l| events < l) {
            open = false;
            for si in 0..self.inputs.len() {
                for pi in 0..self.inputs[si].parts.len() {
                    if done[si][pi] {
                        continue;
                    }
                    match self.claim_chunk(si, pi, ends[si][pi], &mut judge)? {
                        Some(n) => {
                            events += n;
                            open = true;
                        }
                        None => {
                            done[si][pi] = true;
                            self.inputs[si].parts[pi].caught_up = true;
                        }
                    }
                }
            }
            // Idleness can change without new data, as after every step.
            self.update_watermarks()?;
        }
        self.ctx.stats.input_events += events;
        Ok(events)
    }

    /// Claims one chunk of frames of a partition, up to `end`; `None` when there is none.
    fn claim_chunk(
        &mut self,
        si: usize,
        pi: usize,
        end: u64,
        judge: &mut Judge,
    ) -> Result<Option<u64>> {
        let name = self.inputs[si].name.clone();
        let part = &mut self.inputs[si].parts[pi];
        if part.next >= end {
            return Ok(None);
        }
        let frames = part.reader.read(Offset(part.next), VIEW_READ_BYTES)?;
        if frames.is_empty() {
            return Ok(None);
        }
        // As when the operators read it: a partition being read is not idle.
        part.caught_up = false;
        let mut events = 0;
        for frame in frames {
            let h = frame.header;
            let part = &mut self.inputs[si].parts[pi];
            let (base, stop) = (h.base_offset.0, h.end_offset().0);
            if base >= end {
                break;
            }
            if stop <= part.next {
                continue;
            }
            let first = part.next.max(base);
            if judge.may_be_late(&name, h.min_event_time.0) {
                let tree = judge.tree(self)?;
                let mut at = base;
                for batch in freshet_streams::payload::decode(&frame.payload)? {
                    let rows = batch.num_rows() as u64;
                    if at + rows > first {
                        let skip = first.saturating_sub(at);
                        let batch = batch.slice(skip as usize, (rows - skip) as usize);
                        // Rows of open windows stay in this tree and are dropped with it.
                        tree.root
                            .on_input(&name, pi as u32, at + skip, &batch, &mut self.ctx)?;
                    }
                    at += rows;
                }
                judge.bound(self.ctx.state_bytes_max);
            }
            let part = &mut self.inputs[si].parts[pi];
            part.next = stop;
            let me = h.max_event_time.0;
            part.max_event = Some(part.max_event.map_or(me, |m| m.max(me)));
            part.last_ingest_ms = Some(
                part.last_ingest_ms
                    .map_or(h.ingest_time.0, |m| m.max(h.ingest_time.0)),
            );
            note_frame(&mut part.needed, base, me, None);
            events += stop - first;
            self.track_uncommitted(h.ingest_time.0, stop - first);
            // The watermarks move frame by frame, as under the operators (a partition
            // being read is not idle); the late events were judged against the old ones.
            self.update_watermarks()?;
        }
        Ok(Some(events))
    }

    /// Replaces the operator tree with a fresh one, without state, told the watermarks.
    fn fresh_operators(&mut self) -> Result<()> {
        self.compiled = compile_after(&self.streams, &self.earlier, &self.def)?;
        let rows = self
            .compiled
            .root
            .on_watermark(&self.watermarks, &mut self.ctx)?;
        self.buffer(rows)
    }

    /// Rebuilds the operators' state from the log after batch runs (see the module's
    /// description).
    pub(super) fn rebuild_state(&mut self) -> Result<()> {
        let started = std::time::Instant::now();
        self.fresh_operators()?;
        self.ctx.replaying = true;
        let replayed = self.replay();
        self.ctx.replaying = false;
        let events = replayed?;
        self.ctx.stats.state_in_log = false;
        for s in &mut self.inputs {
            for part in &mut s.parts {
                part.needed.clear();
            }
        }
        tracing::info!(view = %self.def.name, events,
            took_ms = started.elapsed().as_millis() as u64,
            "operator state rebuilt from the log");
        Ok(())
    }

    fn replay(&mut self) -> Result<u64> {
        let from = self.open_from();
        let mut events = 0u64;
        for si in 0..self.inputs.len() {
            let name = self.inputs[si].name.clone();
            for pi in 0..self.inputs[si].parts.len() {
                let part = &self.inputs[si].parts[pi];
                let (mut at, next) = (part.keep_from(), part.next);
                let mut reader = part.partition.reader();
                let start = reader.start_offset()?.0;
                if start > at && at < next {
                    return Err(EngineError::Sql(format!(
                        "view '{}' needs {name} partition {pi} from offset {at} to rebuild its \
                         state, but retention removed everything before {start}; recreate the \
                         view to rebuild it from what the log still holds",
                        self.def.name
                    )));
                }
                while at < next {
                    let frames = reader.read(Offset(at), VIEW_READ_BYTES)?;
                    if frames.is_empty() {
                        break;
                    }
                    for frame in frames {
                        let h = frame.header;
                        let (base, stop) = (h.base_offset.0, h.end_offset().0.min(next));
                        if base >= next {
                            at = next;
                            break;
                        }
                        if stop <= at {
                            continue;
                        }
                        let first = at.max(base);
                        at = stop;
                        if from.is_some_and(|f| h.max_event_time.0 < f) {
                            continue;
                        }
                        let mut row = base;
                        for batch in freshet_streams::payload::decode(&frame.payload)? {
                            let n = batch.num_rows() as u64;
                            let (lo, hi) = (first.max(row), stop.min(row + n));
                            if hi > lo {
                                let batch = batch.slice((lo - row) as usize, (hi - lo) as usize);
                                events += hi - lo;
                                let rows = self.compiled.root.on_input(
                                    &name,
                                    pi as u32,
                                    lo,
                                    &batch,
                                    &mut self.ctx,
                                )?;
                                self.buffer(rows)?;
                            }
                            row += n;
                        }
                    }
                }
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_frames_keep_the_first_that_an_open_window_may_need() {
        let mut needed = VecDeque::new();
        // Frames at offsets 0, 10, 20, 30 with max event times 5, 3, 12, 8.
        for (base, max) in [(0, 5), (10, 3), (20, 12), (30, 8)] {
            note_frame(&mut needed, base, max, None);
        }
        assert_eq!(needed, VecDeque::from([(0, 5), (20, 12)]));
        // Windows before 4 are final: the frame at 0 still holds an event at 5.
        prune(&mut needed, Some(4));
        assert_eq!(needed.front(), Some(&(0, 5)));
        // Before 6: frames 0 and 10 hold nothing later than 5; 20 holds 12 (and 30 is
        // covered by it).
        prune(&mut needed, Some(6));
        assert_eq!(needed, VecDeque::from([(20, 12)]));
        prune(&mut needed, Some(13));
        assert!(needed.is_empty());
        // An empty list takes the next frame whatever its times; below `from` it is dropped.
        note_frame(&mut needed, 40, 2, Some(13));
        assert!(needed.is_empty());
        note_frame(&mut needed, 50, 20, Some(13));
        assert_eq!(needed, VecDeque::from([(50, 20)]));
    }
}
