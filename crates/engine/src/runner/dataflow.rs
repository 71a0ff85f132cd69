//! A view's data path: its inputs, its operator tree and the checkpoint its output goes
//! to, and the reading step that moves events along it.
//!
//! The runner's state machine (`machine`) decides when each of these runs; batch runs
//! (`batch_run`) work on the data path too, never on the runner's state.

use super::checkpoint::Checkpointer;
use super::inputs::Inputs;
use crate::clock::Clock;
use crate::compile::Compiled;
use crate::error::Result;
use crate::rows::Rows;
use crate::{Ctx, Stats};
use freshet_streams::input::OffsetBatch;
use freshet_types::Offset;
use freshet_types::limits::VIEW_READ_BYTES;
use std::sync::Arc;

/// Inputs → operators → checkpoint.
pub(super) struct Dataflow {
    pub(super) inputs: Inputs,
    pub(super) ops: Compiled,
    pub(super) ctx: Ctx,
    pub(super) out: Checkpointer,
    pub(super) clock: Arc<dyn Clock>,
}

impl Dataflow {
    /// The view's counters.
    pub(super) fn stats(&mut self) -> &mut Stats {
        &mut self.ctx.stats
    }

    /// Buffers operator output for the next commit.
    pub(super) fn buffer(&mut self, rows: Vec<Rows>) -> Result<()> {
        self.out.buffer(rows, &self.ops)
    }

    /// Tells the operators the watermarks and buffers what that completes.
    pub(super) fn tell_watermarks(&mut self) -> Result<()> {
        let rows = self
            .ops
            .root
            .on_watermark(&self.inputs.watermarks, &mut self.ctx)?;
        self.buffer(rows)
    }

    /// Moves the watermarks as the inputs allow and tells the operators if any moved.
    pub(super) fn advance_watermarks(&mut self) -> Result<()> {
        if self.inputs.advance_watermarks(self.clock.now_ms()) {
            self.tell_watermarks()?;
        }
        Ok(())
    }

    /// Replaces the operator tree with `ops`, told the watermarks.
    pub(super) fn replace_operators(&mut self, ops: Compiled) -> Result<()> {
        self.ops = ops;
        self.tell_watermarks()
    }

    /// Pushes rows read from partition `pi` of stream `si` through the operators and
    /// buffers what they produce.
    pub(super) fn feed(&mut self, si: usize, pi: usize, rows: &OffsetBatch) -> Result<()> {
        let stream = &self.inputs.streams[si];
        let out = self.ops.root.on_input(
            &stream.name,
            stream.parts[pi].partition,
            &rows.offsets,
            &rows.batch,
            &mut self.ctx,
        )?;
        self.buffer(out)
    }

    /// Reads one chunk from every partition and pushes it through the operators; returns
    /// the events read.
    pub(super) fn step(&mut self) -> Result<u64> {
        let mut events = 0u64;
        for si in 0..self.inputs.streams.len() {
            for pi in 0..self.inputs.streams[si].parts.len() {
                events += self.read_partition(si, pi)?;
            }
        }
        // Idleness can change without new data.
        self.advance_watermarks()?;
        Ok(events)
    }

    fn read_partition(&mut self, si: usize, pi: usize) -> Result<u64> {
        let part = &mut self.inputs.streams[si].parts[pi];
        let chunks = part.source.read(part.next, VIEW_READ_BYTES)?;
        if chunks.is_empty() {
            part.caught_up = true;
            return Ok(0);
        }
        part.caught_up = false;
        let mut events = 0u64;
        for chunk in chunks {
            let from = self.inputs.streams[si].parts[pi].next;
            let mut read = 0u64;
            for b in chunk.decode_within(from, Offset(u64::MAX))? {
                read += b.batch.num_rows() as u64;
                self.feed(si, pi, &b)?;
            }
            events += read;
            self.out.track(chunk.ingest_time.0, read);
            let part = &mut self.inputs.streams[si].parts[pi];
            part.next = part.next.max(chunk.next);
            part.saw(&chunk);
            self.advance_watermarks()?;
        }
        self.ctx.stats.input_events += events;
        Ok(events)
    }
}
