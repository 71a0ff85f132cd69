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

use super::blueprint::Blueprint;
use super::dataflow::Dataflow;
use super::inputs::{PartInput, part_key};
use crate::aggregate::Grouping;
use crate::batch::{BatchSession, TimeRange, Views, in_range};
use crate::compile::{Compiled, ResultKey};
use crate::error::{EngineError, Result};
use crate::node::{Node, Op};
use crate::options::{EmitPolicy, LatePolicy};
use crate::views::ViewDef;
use crate::watermarks::StreamWatermarks;
use freshet_store::{ResultBatch, RowState};
use freshet_types::limits::VIEW_READ_BYTES;
use freshet_types::{EventTime, Offset};
use std::collections::{HashMap, VecDeque};

/// How far before the window watermark a batch run of this view must read (the sum of its
/// window lengths, enough for windows over windows), or why DataFusion cannot run its batch
/// mode (the operators then run it on the batch schedule).
pub(super) fn support(compiled: &Compiled, def: &ViewDef) -> std::result::Result<i64, String> {
    let mut sizes = Vec::new();
    let mut why = Vec::new();
    walk(&compiled.root, &mut sizes, &mut why);
    if matches!(compiled.key, ResultKey::Origin(_)) {
        why.push(
            "its rows are keyed by input position (or a hash standing for one), which a \
             DataFusion batch run does not produce"
                .to_string(),
        );
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
            if !matches!(agg.grouping, Grouping::Fixed { .. }) {
                why.push("it groups without a fixed window".to_string());
            }
            walk(input, sizes, why);
        }
        Op::TopN { input, .. } => {
            why.push("it ranks rows (a top-N), whose results change".to_string());
            walk(input, sizes, why);
        }
        Op::Over { input, .. } => {
            why.push("its window frames (OVER ...) reach back across any window".to_string());
            walk(input, sizes, why);
        }
        // Branches run side by side: the look-back is the longest branch's, not their sum.
        Op::Union { inputs } => {
            let mut longest = 0;
            for input in inputs {
                let mut branch = Vec::new();
                walk(input, &mut branch, why);
                longest = longest.max(branch.iter().sum());
            }
            sizes.push(longest);
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
fn note_frame(
    needed: &mut VecDeque<(Offset, EventTime)>,
    base: Offset,
    max_event: EventTime,
    from: Option<i64>,
) {
    if needed.back().is_none_or(|&(_, m)| max_event > m) {
        needed.push_back((base, max_event));
    }
    prune(needed, from);
}

/// Drops the frames whose events all lie before `from`: every window they belong to is
/// final. (Frames between two kept ones hold no later event than the first of them.)
fn prune(needed: &mut VecDeque<(Offset, EventTime)>, from: Option<i64>) {
    if let Some(from) = from {
        while needed.front().is_some_and(|&(_, m)| m.0 < from) {
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
    before: StreamWatermarks,
    lateness: i64,
    tree: Option<Compiled>,
}

impl Judge {
    /// Whether a frame of `stream` whose earliest event is at `min_event` may hold an event
    /// of a window that was final before the run.
    fn may_be_late(&self, stream: &str, min_event: EventTime) -> bool {
        self.before
            .get(stream)
            .is_some_and(|w| min_event.0 < w.0.saturating_sub(self.lateness))
    }

    fn tree(&mut self, blueprint: &Blueprint, ctx: &mut crate::Ctx) -> Result<&mut Compiled> {
        if self.tree.is_none() {
            let mut tree = blueprint.compile()?;
            tree.root.on_watermark(&self.before, ctx)?;
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
    /// Rebuilds `needed` from the chunk headers of `[start, next)`.
    fn scan_needed(&mut self, start: Offset, from: Option<i64>) -> Result<()> {
        self.needed.clear();
        let mut at = start.max(self.source.start()?);
        while at < self.next {
            let chunks = self.source.read(at, VIEW_READ_BYTES)?;
            if chunks.is_empty() {
                break;
            }
            for chunk in chunks {
                if chunk.first >= self.next {
                    at = self.next;
                    break;
                }
                if chunk.next <= at {
                    continue;
                }
                at = chunk.next;
                note_frame(&mut self.needed, chunk.first, chunk.max_event_time, from);
            }
        }
        Ok(())
    }
}

/// After a restart with the state in the log: which frames open windows need (`from` is
/// the earliest event time an open window can hold).
pub(super) fn load_needed(flow: &mut Dataflow, from: Option<i64>) -> Result<()> {
    for s in &mut flow.inputs.streams {
        for part in &mut s.parts {
            let start = flow
                .ctx
                .stats
                .needed_from
                .get(&part_key(&s.name, part.partition))
                .map_or(Offset(0), |&o| Offset(o));
            part.scan_needed(start, from)?;
        }
    }
    Ok(())
}

/// Entering batch runs from the operators: finds the frames open windows need and pins
/// the log from there at once (the next commit, which would move the pin, is a period
/// away). `Err` with the reason when retention may have removed some of them: the
/// operators hold those events in their state, and go on running the view.
pub(super) fn enter(
    flow: &mut Dataflow,
    consumer: &str,
    from: Option<i64>,
) -> std::result::Result<(), String> {
    let entered = find_needed(flow, consumer, from);
    if entered.is_err() {
        for part in flow.inputs.parts_mut() {
            part.needed.clear();
        }
    }
    entered
}

fn find_needed(
    flow: &mut Dataflow,
    consumer: &str,
    from: Option<i64>,
) -> std::result::Result<(), String> {
    // With no operator state nothing can be lost, whatever retention removed.
    let stateless = flow.ops.root.state_bytes() == 0;
    for s in &mut flow.inputs.streams {
        for part in &mut s.parts {
            let p = part.partition;
            let start = part.source.start().map_err(|e| e.to_string())?;
            part.scan_needed(start, from).map_err(|e| e.to_string())?;
            // Retention removed frames before `start`. They held no event of an open
            // window if a frame kept after them holds none either (events arrive in
            // about event-time order): the first kept frame is not needed.
            let first_needed = part.needed.front().map(|&(o, _)| o);
            let trimmed_safely = from.is_some() && start < part.next && first_needed != Some(start);
            if start > Offset(0) && !stateless && !trimmed_safely {
                return Err(format!(
                    "retention removed the start of {} partition {p}, which may have \
                     held events of windows still open",
                    s.name
                ));
            }
            let keep = part.keep_from();
            part.source.pin(consumer, keep).map_err(|e| e.to_string())?;
            // Retention may have run between the scan and the pin.
            if part.source.start().map_err(|e| e.to_string())? > keep {
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
/// about `limit` events of it, its rows buffered for the commit that follows. `lookback`
/// is how far before the window watermark a run reads. Returns the events claimed.
pub(super) fn run(
    flow: &mut Dataflow,
    blueprint: &Blueprint,
    lookback: i64,
    lateness: i64,
    limit: Option<u64>,
) -> Result<u64> {
    let before = flow.inputs.window_watermark(lateness);
    let events = claim(flow, blueprint, lateness, limit)?;
    flow.advance_watermarks()?;
    let after = flow.inputs.window_watermark(lateness);
    if let Some(to) = after
        && before.is_none_or(|b| to > b)
    {
        let from = before.map(|b| b.less(lookback).0);
        let bounds: HashMap<String, Vec<(u64, u64)>> = flow
            .inputs
            .streams
            .iter()
            .map(|s| {
                let parts = s
                    .parts
                    .iter()
                    .map(|p| (p.keep_from().0, p.next.0))
                    .collect();
                (s.name.clone(), parts)
            })
            .collect();
        let session = BatchSession::within(
            &blueprint.root_dir,
            &blueprint.streams,
            Views::Recomputed(&blueprint.earlier),
            TimeRange {
                from_ms: from,
                to_ms: Some(to.0),
            },
            &bounds,
        )?;
        let schema = flow.ops.result_schema.clone();
        let window = (from.unwrap_or(i64::MIN), to.0);
        let ends_after = before.map_or(i64::MIN, |b| b.0);
        let mut rows = Vec::new();
        session.for_each(&blueprint.def.query, |batch| {
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
            flow.ctx.stats.batch_run_memory_bytes = session.peak_memory() as u64;
            flow.ctx.stats.batch_run_events = read;
        }
        for batch in rows {
            flow.out.push(ResultBatch {
                batch,
                state: RowState::Final,
            });
        }
    }
    let from = flow
        .inputs
        .window_watermark(lateness)
        .map(|w| w.less(lookback).0);
    for part in flow.inputs.parts_mut() {
        prune(&mut part.needed, from);
    }
    flow.ctx.stats.batch_runs += 1;
    Ok(events)
}

/// Claims every partition up to its end (or `limit` events) without running the
/// operators, a chunk per partition in turn as they read: watermarks, idleness and
/// latency come from the chunk headers; chunks that may hold late events are decoded
/// and judged by a fresh operator tree with the watermarks before the run.
fn claim(
    flow: &mut Dataflow,
    blueprint: &Blueprint,
    lateness: i64,
    limit: Option<u64>,
) -> Result<u64> {
    let mut judge = Judge {
        before: flow.inputs.watermarks.clone(),
        lateness,
        tree: None,
    };
    let ends: Vec<Vec<Offset>> = flow
        .inputs
        .streams
        .iter()
        .map(|s| s.parts.iter().map(|p| p.source.end()).collect())
        .collect();
    let mut done: Vec<Vec<bool>> = ends.iter().map(|e| vec![false; e.len()]).collect();
    let mut events = 0u64;
    let mut open = true;
    while open && limit.is_none_or(|l| events < l) {
        open = false;
        for si in 0..flow.inputs.streams.len() {
            for pi in 0..flow.inputs.streams[si].parts.len() {
                if done[si][pi] {
                    continue;
                }
                match claim_chunk(flow, blueprint, si, pi, ends[si][pi], &mut judge)? {
                    Some(n) => {
                        events += n;
                        open = true;
                    }
                    None => {
                        done[si][pi] = true;
                        flow.inputs.streams[si].parts[pi].caught_up = true;
                    }
                }
            }
        }
        // Idleness can change without new data, as after every step.
        flow.advance_watermarks()?;
    }
    flow.ctx.stats.input_events += events;
    Ok(events)
}

/// Claims one read of chunks of a partition, up to `end`; `None` when there is none.
fn claim_chunk(
    flow: &mut Dataflow,
    blueprint: &Blueprint,
    si: usize,
    pi: usize,
    end: Offset,
    judge: &mut Judge,
) -> Result<Option<u64>> {
    let part = &mut flow.inputs.streams[si].parts[pi];
    if part.next >= end {
        return Ok(None);
    }
    let chunks = part.source.read(part.next, VIEW_READ_BYTES)?;
    if chunks.is_empty() {
        return Ok(None);
    }
    // As when the operators read it: a partition being read is not idle.
    part.caught_up = false;
    let mut events = 0;
    for chunk in chunks {
        let first = flow.inputs.streams[si].parts[pi].next;
        if chunk.first >= end {
            break;
        }
        if chunk.next <= first {
            continue;
        }
        let stream = &flow.inputs.streams[si];
        let (name, partition) = (&stream.name, stream.parts[pi].partition);
        if judge.may_be_late(name, chunk.min_event_time) {
            let tree = judge.tree(blueprint, &mut flow.ctx)?;
            for b in chunk.decode_within(first, Offset(u64::MAX))? {
                // Rows of open windows stay in this tree and are dropped with it.
                tree.root
                    .on_input(name, partition, &b.offsets, &b.batch, &mut flow.ctx)?;
            }
            judge.bound(flow.ctx.state_bytes_max);
        }
        let claimed = chunk.events_within(first, Offset(u64::MAX));
        let part = &mut flow.inputs.streams[si].parts[pi];
        part.next = chunk.next;
        part.saw(&chunk);
        note_frame(&mut part.needed, chunk.first, chunk.max_event_time, None);
        events += claimed;
        flow.out.track(chunk.ingest_time.0, claimed);
        // The watermarks move chunk by chunk, as under the operators (a partition being
        // read is not idle); the late events were judged against the old ones.
        flow.advance_watermarks()?;
    }
    Ok(Some(events))
}

/// Rebuilds the operators' state from the log after batch runs (see the module's
/// description): a fresh tree reads again the frames open windows need, with the
/// watermarks where they are. `from` is the earliest event time an open window can hold.
pub(super) fn rebuild(flow: &mut Dataflow, blueprint: &Blueprint, from: Option<i64>) -> Result<()> {
    let started = std::time::Instant::now();
    flow.replace_operators(blueprint.compile()?)?;
    flow.ctx.replaying = true;
    let replayed = replay(flow, &blueprint.def.name, from);
    flow.ctx.replaying = false;
    let events = replayed?;
    flow.ctx.stats.state_in_log = false;
    for part in flow.inputs.parts_mut() {
        part.needed.clear();
    }
    tracing::info!(view = %blueprint.def.name, events,
        took_ms = started.elapsed().as_millis() as u64,
        "operator state rebuilt from the log");
    Ok(())
}

fn replay(flow: &mut Dataflow, view: &str, from: Option<i64>) -> Result<u64> {
    let mut events = 0u64;
    for si in 0..flow.inputs.streams.len() {
        for pi in 0..flow.inputs.streams[si].parts.len() {
            let part = &mut flow.inputs.streams[si].parts[pi];
            let (mut at, next, p) = (part.keep_from(), part.next, part.partition);
            let start = part.source.start()?;
            if start > at && at < next {
                return Err(EngineError::LogRetention(format!(
                    "view '{view}' needs {} partition {p} from offset {at} to rebuild its \
                     state, but retention removed everything before {start}; recreate the \
                     view to rebuild it from what the log still holds",
                    flow.inputs.streams[si].name
                )));
            }
            while at < next {
                let chunks = flow.inputs.streams[si].parts[pi]
                    .source
                    .read(at, VIEW_READ_BYTES)?;
                if chunks.is_empty() {
                    break;
                }
                for chunk in chunks {
                    if chunk.first >= next {
                        at = next;
                        break;
                    }
                    if chunk.next.min(next) <= at {
                        continue;
                    }
                    let first = at.max(chunk.first);
                    at = chunk.next.min(next);
                    if from.is_some_and(|f| chunk.max_event_time.0 < f) {
                        continue;
                    }
                    for b in chunk.decode_within(first, next)? {
                        events += b.batch.num_rows() as u64;
                        flow.feed(si, pi, &b)?;
                    }
                }
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_frames_keep_the_first_that_an_open_window_may_need() {
        let mut needed = VecDeque::new();
        // Frames at offsets 0, 10, 20, 30 with max event times 5, 3, 12, 8.
        for (base, max) in [(0, 5), (10, 3), (20, 12), (30, 8)] {
            note_frame(&mut needed, Offset(base), EventTime(max), None);
        }
        let at = |o, t| (Offset(o), EventTime(t));
        assert_eq!(needed, VecDeque::from([at(0, 5), at(20, 12)]));
        // Windows before 4 are final: the frame at 0 still holds an event at 5.
        prune(&mut needed, Some(4));
        assert_eq!(needed.front(), Some(&at(0, 5)));
        // Before 6: frames 0 and 10 hold nothing later than 5; 20 holds 12 (and 30 is
        // covered by it).
        prune(&mut needed, Some(6));
        assert_eq!(needed, VecDeque::from([at(20, 12)]));
        prune(&mut needed, Some(13));
        assert!(needed.is_empty());
        // An empty list takes the next frame whatever its times; below `from` it is dropped.
        note_frame(&mut needed, Offset(40), EventTime(2), Some(13));
        assert!(needed.is_empty());
        note_frame(&mut needed, Offset(50), EventTime(20), Some(13));
        assert_eq!(needed, VecDeque::from([at(50, 20)]));
    }
}
