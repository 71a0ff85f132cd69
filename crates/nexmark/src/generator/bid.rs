//! Bid events: a bidder (hot or recently active) bids a log-uniform price on an auction
//! (hot or recently opened) through a channel with its URL.

use super::columns::{Utf8Column, int64, record_batch, timestamps};
use super::shared::{Context, cold_person, halves, price};
use crate::EventKind;
use crate::format::push_u64;
use crate::model::{
    BID_AVG_BYTES, COLD_CHANNELS, FIRST_AUCTION_ID, FIRST_PERSON_ID, HOT_AUCTION_RATIO,
    HOT_BIDDER_RATIO, HOT_CHANNELS, HOT_ID_STRIDE, ID_LEAD, IN_FLIGHT_AUCTIONS, last_auction,
    last_person,
};
use crate::rng::{Draws, below32};
use crate::text::{push_channel_url, push_extra};
use arrow_array::RecordBatch;

/// Bid columns under construction.
pub(super) struct BidColumns {
    auction: Vec<i64>,
    bidder: Vec<i64>,
    price: Vec<i64>,
    channel: Utf8Column,
    url: Utf8Column,
    date_time: Vec<i64>,
    extra: Utf8Column,
}

impl BidColumns {
    pub(super) fn with_capacity(rows: usize) -> BidColumns {
        BidColumns {
            auction: Vec::with_capacity(rows),
            bidder: Vec::with_capacity(rows),
            price: Vec::with_capacity(rows),
            channel: Utf8Column::with_capacity(rows, rows * 11),
            url: Utf8Column::with_capacity(rows, rows * 64),
            date_time: Vec::with_capacity(rows),
            extra: Utf8Column::with_capacity(rows, rows * 72),
        }
    }

    #[inline]
    pub(super) fn push(&mut self, ctx: &Context, event_id: u64, date_time: i64) {
        let draws = Draws::new(ctx.event_key, event_id);
        self.date_time.push(date_time);

        let (coin, pick) = halves(draws.draw(0));
        let newest = last_auction(event_id);
        let auction = if below32(coin, HOT_AUCTION_RATIO as u32) > 0 {
            newest / HOT_ID_STRIDE * HOT_ID_STRIDE
        } else {
            // Any auction likely still in flight, or one of the next few.
            let oldest = (newest - IN_FLIGHT_AUCTIONS).max(0);
            oldest + i64::from(below32(pick, (newest - oldest + 1 + ID_LEAD) as u32))
        };
        self.auction.push(FIRST_AUCTION_ID + auction);

        let (coin, pick) = halves(draws.draw(1));
        let bidder = if below32(coin, HOT_BIDDER_RATIO as u32) > 0 {
            last_person(event_id) / HOT_ID_STRIDE * HOT_ID_STRIDE + 1
        } else {
            cold_person(event_id, pick)
        };
        self.bidder.push(FIRST_PERSON_ID + bidder);

        self.price.push(price(draws.draw(2)));

        let (coin, pick) = halves(draws.draw(3));
        if coin & 1 == 1 {
            let hot = below32(pick, HOT_CHANNELS.len() as u32) as usize;
            self.channel.push(HOT_CHANNELS[hot].as_bytes());
            self.url.push(&ctx.hot_urls[hot]);
        } else {
            let channel = below32(pick, COLD_CHANNELS as u32);
            let name = &mut self.channel.values;
            name.extend_from_slice(b"channel-");
            push_u64(name, u64::from(channel));
            self.channel.end_row();
            let url_draws = Draws::new(ctx.channel_url_key, u64::from(channel));
            push_channel_url(&mut self.url.values, url_draws, channel);
            self.url.end_row();
        }

        push_extra(
            &mut self.extra.values,
            draws,
            4,
            5,
            8 + 8 + 8 + 8,
            BID_AVG_BYTES,
        );
        self.extra.end_row();
    }

    pub(super) fn finish(self) -> RecordBatch {
        record_batch(
            EventKind::Bid,
            vec![
                int64(self.auction),
                int64(self.bidder),
                int64(self.price),
                self.channel.finish(),
                self.url.finish(),
                timestamps(self.date_time),
                self.extra.finish(),
            ],
        )
    }
}
