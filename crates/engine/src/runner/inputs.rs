//! A view's inputs: every partition of every stream it reads, where the view is in each,
//! and the streams' watermarks.
//!
//! Watermarks: a partition's watermark is its largest event time seen minus the stream's
//! bounded out-of-orderness; the stream's is the minimum over partitions that are not idle,
//! and never goes back. A partition is idle when the view has read all of it and nothing
//! was ingested into it for the stream's `idle_timeout` (measured against the later of the
//! clock and the newest ingest time the view has read). If every partition is idle the
//! watermark holds.
//!
//! Partitions are read through the input seam ([`PartitionInput`]); this module never sees
//! how a log stores its events.

use crate::watermarks::StreamWatermarks;
use freshet_streams::input::{Chunk, PartitionInput};
use freshet_types::{EventTime, IngestTime, Offset, Watermark};
use std::collections::VecDeque;
use std::time::Duration;

/// One partition a view reads.
pub(super) struct PartInput {
    /// The partition's number in its stream.
    pub(super) partition: u32,
    pub(super) source: Box<dyn PartitionInput>,
    /// The next offset to read.
    pub(super) next: Offset,
    /// The latest event time read.
    pub(super) max_event: Option<EventTime>,
    /// The newest ingest time read.
    pub(super) last_ingest: Option<IngestTime>,
    /// Whether the last read found nothing new.
    pub(super) caught_up: bool,
    /// While the state is in the log (batch runs): `(first offset, max event time)` of the
    /// frames read that may hold events of open windows, only those whose max event time
    /// is above every earlier one's (see `batch_run`).
    pub(super) needed: VecDeque<(Offset, EventTime)>,
}

impl PartInput {
    /// Partition `partition`, read from `next`, its latest event time read `max_event`.
    pub(super) fn new(
        partition: u32,
        source: Box<dyn PartitionInput>,
        next: Offset,
        max_event: Option<EventTime>,
        last_ingest: Option<IngestTime>,
    ) -> PartInput {
        PartInput {
            partition,
            source,
            next,
            max_event,
            last_ingest,
            caught_up: false,
            needed: VecDeque::new(),
        }
    }

    /// The first offset the view may read again: its next one, or, while the state is in
    /// the log, the first that an open window may need.
    pub(super) fn keep_from(&self) -> Offset {
        self.needed
            .front()
            .map_or(self.next, |&(o, _)| o.min(self.next))
    }

    /// Takes in what a chunk's header says: its latest event time and ingest time.
    pub(super) fn saw(&mut self, chunk: &Chunk) {
        let me = chunk.max_event_time;
        self.max_event = Some(self.max_event.map_or(me, |m| m.max(me)));
        let it = chunk.ingest_time;
        self.last_ingest = Some(self.last_ingest.map_or(it, |m| m.max(it)));
    }
}

/// One stream a view reads.
pub(super) struct StreamInput {
    pub(super) name: String,
    pub(super) delay_ms: i64,
    pub(super) idle_timeout_ms: i64,
    /// The partitions read: every partition of the stream, or the task's one.
    pub(super) parts: Vec<PartInput>,
}

/// Every input of a view and the streams' watermarks.
pub(super) struct Inputs {
    pub(super) streams: Vec<StreamInput>,
    pub(super) watermarks: StreamWatermarks,
}

impl Inputs {
    /// Every partition read, with its stream and its number.
    pub(super) fn parts(&self) -> impl Iterator<Item = (&StreamInput, u32, &PartInput)> {
        self.streams
            .iter()
            .flat_map(|s| s.parts.iter().map(move |part| (s, part.partition, part)))
    }

    /// Every partition, mutably.
    pub(super) fn parts_mut(&mut self) -> impl Iterator<Item = &mut PartInput> {
        self.streams.iter_mut().flat_map(|s| s.parts.iter_mut())
    }

    /// Whether every partition has been read to its end (as of the last read).
    pub(super) fn caught_up(&self) -> bool {
        self.parts().all(|(_, _, p)| p.caught_up)
    }

    /// The names of the streams read.
    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.streams.iter().map(|s| s.name.as_str())
    }

    /// The least watermark over the streams; `None` while any is unknown.
    pub(super) fn watermark(&self) -> Option<Watermark> {
        self.watermarks.least(self.names())
    }

    /// The window watermark for an allowed lateness of `lateness_ms`: window ends at or
    /// before it are final.
    pub(super) fn window_watermark(&self, lateness_ms: i64) -> Option<Watermark> {
        self.watermark().map(|w| w.less(lateness_ms))
    }

    /// Moves each stream's watermark as its partitions' event times and idleness allow
    /// (`now_ms` is the clock); returns whether any moved.
    pub(super) fn advance_watermarks(&mut self, now_ms: i64) -> bool {
        let newest_ingest = self
            .parts()
            .filter_map(|(_, _, p)| p.last_ingest)
            .max()
            .map_or(i64::MIN, |t| t.0);
        let now = now_ms.max(newest_ingest);
        let mut changed = false;
        for s in &self.streams {
            let mut active = s
                .parts
                .iter()
                .filter(|p| {
                    let idle = p.caught_up
                        && p.last_ingest
                            .is_none_or(|t| now.saturating_sub(t.0) >= s.idle_timeout_ms);
                    !idle
                })
                .peekable();
            if active.peek().is_none() {
                continue;
            }
            let candidate = active
                .map(|p| p.max_event)
                .try_fold(i64::MAX, |acc, m| m.map(|m| acc.min(m.0)))
                .map(|m| Watermark(m.saturating_sub(s.delay_ms)));
            if let Some(c) = candidate {
                changed |= self.watermarks.advance(&s.name, c);
            }
        }
        changed
    }

    /// Every stream has ended: its watermark goes to +∞.
    pub(super) fn end(&mut self) {
        for s in &self.streams {
            self.watermarks.advance(&s.name, Watermark::MAX);
        }
    }

    /// The time before which every ingested event is reflected once the view has committed
    /// what it read: `now_ms` for a partition read to its end, else the ingest time of its
    /// last chunk read; the least over partitions, `None` while any is unknown.
    pub(super) fn reflected_ms(&self, now_ms: i64) -> Option<i64> {
        self.parts().try_fold(i64::MAX, |acc, (_, _, p)| {
            let t = if p.caught_up {
                Some(now_ms)
            } else {
                p.last_ingest.map(|t| t.0)
            };
            t.map(|t| acc.min(t))
        })
    }

    /// Waits up to `timeout` for new data in the first partition (for the live loop).
    pub(super) fn wait_for_data(&self, timeout: Duration) {
        match self.parts().next() {
            Some((_, _, p)) => p.source.wait_beyond(p.next, timeout),
            None => std::thread::sleep(timeout),
        }
    }

    /// Where each partition must be kept from, in the order of [`Inputs::parts`].
    pub(super) fn keep_positions(&self) -> Vec<Offset> {
        self.parts().map(|(_, _, p)| p.keep_from()).collect()
    }

    /// Pins every partition from `positions` (as [`Inputs::keep_positions`] gave them).
    pub(super) fn pin(&self, consumer: &str, positions: &[Offset]) -> freshet_streams::Result<()> {
        for ((_, _, p), &at) in self.parts().zip(positions) {
            p.source.pin(consumer, at)?;
        }
        Ok(())
    }
}

/// The key of a partition in the view's stats: `stream/partition`.
pub(super) fn part_key(stream: &str, partition: u32) -> String {
    format!("{stream}/{partition}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use freshet_streams::input::ChunkReader;

    /// A partition with nothing to read: the tests set what the view has seen directly.
    struct Quiet;

    impl ChunkReader for Quiet {
        fn start(&mut self) -> freshet_streams::Result<Offset> {
            Ok(Offset(0))
        }
        fn read(&mut self, _: Offset, _: usize) -> freshet_streams::Result<Vec<Chunk>> {
            Ok(Vec::new())
        }
        fn earliest_event_time(&mut self) -> freshet_streams::Result<Option<EventTime>> {
            Ok(None)
        }
    }

    impl PartitionInput for Quiet {
        fn end(&self) -> Offset {
            Offset(0)
        }
        fn wait_beyond(&self, _: Offset, _: Duration) {}
        fn pin(&self, _: &str, _: Offset) -> freshet_streams::Result<()> {
            Ok(())
        }
    }

    fn part(max_event: Option<i64>, last_ingest: Option<i64>, caught_up: bool) -> PartInput {
        let mut p = PartInput::new(
            0,
            Box::new(Quiet),
            Offset(0),
            max_event.map(EventTime),
            last_ingest.map(IngestTime),
        );
        p.caught_up = caught_up;
        p
    }

    fn inputs(parts: Vec<PartInput>) -> Inputs {
        Inputs {
            streams: vec![StreamInput {
                name: "s".into(),
                delay_ms: 10,
                idle_timeout_ms: 1_000,
                parts,
            }],
            watermarks: StreamWatermarks::default(),
        }
    }

    #[test]
    fn the_watermark_is_the_least_active_partition_less_the_delay() {
        let mut i = inputs(vec![
            part(Some(500), Some(0), false),
            part(Some(300), Some(0), false),
        ]);
        assert!(i.advance_watermarks(0));
        assert_eq!(i.watermark(), Some(Watermark(290)));
    }

    #[test]
    fn no_watermark_while_an_active_partition_has_no_event() {
        let mut i = inputs(vec![
            part(Some(500), Some(0), false),
            part(None, None, false),
        ]);
        assert!(!i.advance_watermarks(0));
        assert_eq!(i.watermark(), None);
    }

    #[test]
    fn an_idle_partition_holds_no_watermark_back_and_it_never_goes_back() {
        // Partition 1 is read to its end and got nothing for the idle timeout.
        let mut i = inputs(vec![
            part(Some(5_000), Some(4_000), false),
            part(Some(100), Some(1_000), true),
        ]);
        assert!(i.advance_watermarks(4_000));
        assert_eq!(i.watermark(), Some(Watermark(4_990)));
        // It wakes up with old events: the watermark holds rather than going back.
        i.streams[0].parts[1].caught_up = false;
        assert!(!i.advance_watermarks(4_000));
        assert_eq!(i.watermark(), Some(Watermark(4_990)));
        // Every partition idle: the watermark holds.
        for p in &mut i.streams[0].parts {
            p.caught_up = true;
        }
        assert!(!i.advance_watermarks(100_000));
        i.end();
        assert_eq!(i.watermark(), Some(Watermark::MAX));
    }

    #[test]
    fn reflected_time_is_now_for_caught_up_partitions_else_their_last_ingest() {
        let i = inputs(vec![
            part(Some(1), Some(700), true),
            part(Some(1), Some(400), false),
        ]);
        assert_eq!(i.reflected_ms(900), Some(400));
        let j = inputs(vec![part(None, None, false)]);
        assert_eq!(j.reflected_ms(900), None);
    }
}
