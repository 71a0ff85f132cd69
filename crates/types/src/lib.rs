//! Freshet's vocabulary, defined once (DESIGN §2) and shared by every crate.
//!
//! Each word here has exactly one meaning. Offsets are dense positions in one partition;
//! event time is the timestamp inside an event; ingest time is when the log accepted it.
//! Times are milliseconds since the Unix epoch, UTC.
//!
//! This crate has no logic beyond small invariant-checking constructors, and no heavy
//! dependencies, so that every other crate can use it.
#![deny(missing_docs)]

pub mod files;
pub mod limits;

use serde::{Deserialize, Serialize};
use std::fmt;

/// Position of an event in one partition of a stream: dense, starting at 0.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Offset(pub u64);

impl Offset {
    /// The offset `n` records after this one.
    pub fn plus(self, n: u64) -> Offset {
        Offset(self.0 + n)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The offsets of a run of events read from one partition, in order: dense (`first`,
/// `first + 1`, ...) for the embedded log, or listed for a log whose sequence numbers have
/// gaps (a message system that deletes or skips sequence numbers). Always strictly
/// increasing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOffsets {
    /// `len` offsets from `first` on, one apart.
    Dense {
        /// The first event's offset.
        first: u64,
        /// How many events.
        len: usize,
    },
    /// Each event's offset.
    Listed(std::sync::Arc<[u64]>),
}

impl RowOffsets {
    /// Listed offsets; panics unless strictly increasing (an offset repeated or going back
    /// is a bug in the log that produced them).
    pub fn listed(offsets: Vec<u64>) -> RowOffsets {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "offsets must strictly increase"
        );
        RowOffsets::Listed(offsets.into())
    }

    /// How many events.
    pub fn len(&self) -> usize {
        match self {
            RowOffsets::Dense { len, .. } => *len,
            RowOffsets::Listed(o) => o.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The offset of the `i`-th event.
    pub fn get(&self, i: usize) -> u64 {
        match self {
            RowOffsets::Dense { first, len } => {
                assert!(i < *len, "event {i} of {len}");
                first + i as u64
            }
            RowOffsets::Listed(o) => o[i],
        }
    }

    /// How many events lie before `offset`.
    pub fn position(&self, offset: u64) -> usize {
        match self {
            RowOffsets::Dense { first, len } => {
                (offset.saturating_sub(*first)).min(*len as u64) as usize
            }
            RowOffsets::Listed(o) => o.partition_point(|&x| x < offset),
        }
    }

    /// `len` events from the `skip`-th on.
    pub fn slice(&self, skip: usize, len: usize) -> RowOffsets {
        assert!(skip + len <= self.len(), "slice past the end");
        match self {
            RowOffsets::Dense { first, .. } => RowOffsets::Dense {
                first: first + skip as u64,
                len,
            },
            RowOffsets::Listed(o) => RowOffsets::Listed(o[skip..skip + len].into()),
        }
    }

    /// Every offset, in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// Index of a partition within a stream (0-based).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct PartitionId(pub u32);

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The timestamp carried inside an event, in milliseconds since the epoch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct EventTime(pub i64);

/// When the log accepted an event, in milliseconds since the epoch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct IngestTime(pub i64);

impl IngestTime {
    /// The wall-clock time now.
    pub fn now() -> IngestTime {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        IngestTime(ms)
    }
}

/// "No more events with event time < W are expected." Never moves backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Watermark(pub i64);

impl Watermark {
    /// The watermark before any event has been seen.
    pub const MIN: Watermark = Watermark(i64::MIN);
    /// The watermark at the end of a bounded stream: every window is complete.
    pub const MAX: Watermark = Watermark(i64::MAX);

    /// Advance to `next`, which must not be earlier. A watermark moving backwards is a bug.
    pub fn advance(&mut self, next: Watermark) {
        assert!(
            next >= *self,
            "watermark must never move backwards: {} -> {}",
            self.0,
            next.0
        );
        *self = next;
    }

    /// This watermark held back by `ms` (allowed lateness, a session gap), saturating: a
    /// window watermark derived from a stream's.
    #[inline]
    pub fn less(self, ms: i64) -> Watermark {
        Watermark(self.0.saturating_sub(ms))
    }

    /// This watermark moved on by `ms`, saturating: the stream watermark a window watermark
    /// held back by `ms` came from.
    #[inline]
    pub fn more(self, ms: i64) -> Watermark {
        Watermark(self.0.saturating_add(ms))
    }

    /// Whether an interval ending at `end` (exclusive) lies wholly before this watermark:
    /// no event inside it is expected any more.
    #[inline]
    pub fn completes(self, end: i64) -> bool {
        end <= self.0
    }
}

/// A half-open event-time interval `[start, end)`, end exclusive; `end > start` always.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    start: i64,
    end: i64,
}

impl Window {
    /// A window `[start, end)`. Panics if `end <= start`: such a window is a bug upstream.
    pub fn new(start: i64, end: i64) -> Window {
        assert!(
            end > start,
            "window end {end} must be after its start {start}"
        );
        Window { start, end }
    }
    /// First millisecond inside the window.
    pub fn start(&self) -> i64 {
        self.start
    }
    /// First millisecond after the window.
    pub fn end(&self) -> i64 {
        self.end
    }
    /// Whether `t` lies in `[start, end)`.
    pub fn contains(&self, t: EventTime) -> bool {
        t.0 >= self.start && t.0 < self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_offsets_dense_and_listed_agree_where_they_coincide() {
        let dense = RowOffsets::Dense { first: 10, len: 4 };
        let listed = RowOffsets::listed(vec![10, 11, 12, 13]);
        for o in [&dense, &listed] {
            assert_eq!(o.len(), 4);
            assert_eq!(o.get(2), 12);
            assert_eq!(o.position(9), 0);
            assert_eq!(o.position(12), 2);
            assert_eq!(o.position(99), 4);
            assert_eq!(o.slice(1, 2).iter().collect::<Vec<_>>(), vec![11, 12]);
        }
        let gapped = RowOffsets::listed(vec![3, 7, 20]);
        assert_eq!(gapped.position(8), 2);
        assert_eq!(gapped.slice(1, 2).get(0), 7);
    }

    #[test]
    #[should_panic(expected = "strictly increase")]
    fn row_offsets_must_increase() {
        RowOffsets::listed(vec![5, 5]);
    }

    #[test]
    fn watermark_advances_forward() {
        let mut w = Watermark::MIN;
        w.advance(Watermark(5));
        w.advance(Watermark(5));
        assert_eq!(w, Watermark(5));
    }

    #[test]
    fn watermark_completes_intervals_ending_at_or_before_it() {
        let w = Watermark(10).less(4);
        assert_eq!(w, Watermark(6));
        assert!(w.completes(6));
        assert!(!w.completes(7));
        assert_eq!(Watermark::MIN.less(1), Watermark::MIN);
        assert_eq!(Watermark::MAX.more(1), Watermark::MAX);
        assert_eq!(w.more(4), Watermark(10));
    }

    #[test]
    #[should_panic(expected = "never move backwards")]
    fn watermark_backwards_panics() {
        let mut w = Watermark(10);
        w.advance(Watermark(9));
    }

    #[test]
    #[should_panic(expected = "must be after its start")]
    fn empty_window_panics() {
        Window::new(3, 3);
    }

    #[test]
    fn window_is_half_open() {
        let w = Window::new(0, 10);
        assert!(w.contains(EventTime(0)));
        assert!(!w.contains(EventTime(10)));
    }
}
