//! One split of the timeline: the [`Generator`], which turns its next event numbers into
//! [`Batches`].

use super::GeneratorConfig;
use super::auction::AuctionColumns;
use super::bid::BidColumns;
use super::person::PersonColumns;
use super::shared::Context;
use crate::EventKind;
use crate::model::kind_of;
use arrow_array::RecordBatch;

/// Most event numbers one [`Generator::next_batches`] call consumes; larger requests are
/// served in several calls. It keeps every string column of a batch far below the 2 GiB
/// that Arrow's 32-bit offsets can address (auctions, the largest rows, stay under 1 KiB).
pub const EVENTS_PER_CALL_MAX: usize = 1 << 20;

/// The batches one [`Generator::next_batches`] call produced: one per kind that occurred
/// (and was asked for), in event-number order within each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batches {
    /// The person events, if any.
    pub person: Option<RecordBatch>,
    /// The auction events, if any.
    pub auction: Option<RecordBatch>,
    /// The bid events, if any.
    pub bid: Option<RecordBatch>,
}

impl Batches {
    /// The batch of `kind`, if any.
    pub fn get(&self, kind: EventKind) -> Option<&RecordBatch> {
        match kind {
            EventKind::Person => self.person.as_ref(),
            EventKind::Auction => self.auction.as_ref(),
            EventKind::Bid => self.bid.as_ref(),
        }
    }

    /// The batches present, with their kinds, in stream-definition order.
    pub fn iter(&self) -> impl Iterator<Item = (EventKind, &RecordBatch)> {
        EventKind::ALL
            .into_iter()
            .filter_map(|kind| self.get(kind).map(|batch| (kind, batch)))
    }

    /// Rows across all batches.
    pub fn num_rows(&self) -> usize {
        self.iter().map(|(_, batch)| batch.num_rows()).sum()
    }
}

/// A deterministic Nexmark event generator: split `split_index` of `split_count`.
#[derive(Debug)]
pub struct Generator {
    ctx: Context,
    split_index: u64,
    split_count: u64,
    /// Event numbers of this split consumed so far.
    consumed: u64,
}

impl Generator {
    /// Generator `split_index` of `split_count` (interleaved: takes n = i, i+k, i+2k, ...).
    ///
    /// # Panics
    ///
    /// If `split_count` is 0, `split_index >= split_count`, or the config's
    /// `events_per_second` or `out_of_order_group` is 0.
    pub fn new(config: GeneratorConfig, split_index: u64, split_count: u64) -> Generator {
        assert!(split_count > 0, "a generator needs at least one split");
        assert!(
            split_index < split_count,
            "split index {split_index} is not below the split count {split_count}"
        );
        assert!(
            config.events_per_second > 0,
            "events_per_second must be positive"
        );
        assert!(
            config.out_of_order_group > 0,
            "out_of_order_group must be positive"
        );
        Generator {
            ctx: Context::new(config),
            split_index,
            split_count,
            consumed: 0,
        }
    }

    /// The configuration this generator was built with.
    pub fn config(&self) -> &GeneratorConfig {
        &self.ctx.config
    }

    /// Event numbers consumed so far by this split.
    pub fn events_generated(&self) -> u64 {
        self.consumed
    }

    /// Event numbers this split has left, or `None` if unbounded.
    pub fn events_remaining(&self) -> Option<u64> {
        let max = self.ctx.config.max_events?;
        let total = if max <= self.split_index {
            0
        } else {
            (max - self.split_index - 1) / self.split_count + 1
        };
        Some(total.saturating_sub(self.consumed))
    }

    /// The global event number of this split's `j`-th event number.
    #[inline]
    fn event_number(&self, j: u64) -> u64 {
        self.split_index + j * self.split_count
    }

    /// Generate the next up-to-`max_events` event numbers of this split (all kinds counted,
    /// at most [`EVENTS_PER_CALL_MAX`]), returning one RecordBatch per kind that occurred
    /// (kinds not in `only` are skipped but still consume their event numbers). None when
    /// max_events is exhausted.
    pub fn next_batches(&mut self, max_events: usize, only: Option<EventKind>) -> Option<Batches> {
        let remaining = self.events_remaining();
        if remaining == Some(0) {
            return None;
        }
        let count = (max_events.min(EVENTS_PER_CALL_MAX) as u64).min(remaining.unwrap_or(u64::MAX));
        let numbers = self.consumed..self.consumed + count;
        self.consumed += count;
        let wants = |kind: EventKind| only.is_none_or(|only| only == kind);

        // Count each kind first so that every column is allocated once, at its final size.
        let mut rows = [0usize; 3];
        for j in numbers.clone() {
            rows[kind_of(self.ctx.config.event_id(self.event_number(j))) as usize] += 1;
        }
        let [person_rows, auction_rows, bid_rows] = rows;
        let mut person = (wants(EventKind::Person) && person_rows > 0)
            .then(|| PersonColumns::with_capacity(person_rows));
        let mut auction = (wants(EventKind::Auction) && auction_rows > 0)
            .then(|| AuctionColumns::with_capacity(auction_rows));
        let mut bid =
            (wants(EventKind::Bid) && bid_rows > 0).then(|| BidColumns::with_capacity(bid_rows));

        let ctx = &self.ctx;
        for j in numbers {
            let event_id = ctx.config.event_id(self.event_number(j));
            let date_time = || ctx.config.event_time_ms(event_id);
            match kind_of(event_id) {
                EventKind::Person => {
                    if let Some(columns) = person.as_mut() {
                        columns.push(ctx, event_id, date_time());
                    }
                }
                EventKind::Auction => {
                    if let Some(columns) = auction.as_mut() {
                        columns.push(ctx, event_id, date_time());
                    }
                }
                EventKind::Bid => {
                    if let Some(columns) = bid.as_mut() {
                        columns.push(ctx, event_id, date_time());
                    }
                }
            }
        }
        Some(Batches {
            person: person.map(PersonColumns::finish),
            auction: auction.map(AuctionColumns::finish),
            bid: bid.map(BidColumns::finish),
        })
    }
}
