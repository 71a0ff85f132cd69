//! Auction events: a seller (hot or recently active) opens an auction in one of the
//! categories, with log-uniform initial bid and reserve, and an expiry about twice the
//! time the next 1,666 events take.

use super::columns::{Utf8Column, int64, record_batch, timestamps};
use super::shared::{Context, cold_person, halves, lanes, price};
use crate::EventKind;
use crate::model::{
    AUCTION_AVG_BYTES, AUCTION_HORIZON_EVENTS, CATEGORIES, FIRST_AUCTION_ID, FIRST_CATEGORY_ID,
    FIRST_PERSON_ID, HOT_ID_STRIDE, HOT_SELLER_RATIO, last_auction, last_person,
};
use crate::rng::{Draws, below, below16, below32};
use crate::text::{draws_for, push_extra, push_words, words_len};
use arrow_array::RecordBatch;

/// Auction columns under construction.
pub(super) struct AuctionColumns {
    id: Vec<i64>,
    item_name: Utf8Column,
    description: Utf8Column,
    initial_bid: Vec<i64>,
    reserve: Vec<i64>,
    date_time: Vec<i64>,
    expires: Vec<i64>,
    seller: Vec<i64>,
    category: Vec<i64>,
    extra: Utf8Column,
}

/// Longest auction item name (Beam's `nextString(20)`, exclusive).
const ITEM_NAME_LEN_MAX: u16 = 20;
/// Longest auction description (Beam's `nextString(100)`, exclusive).
const DESCRIPTION_LEN_MAX: u16 = 100;

impl AuctionColumns {
    pub(super) fn with_capacity(rows: usize) -> AuctionColumns {
        AuctionColumns {
            id: Vec::with_capacity(rows),
            item_name: Utf8Column::with_capacity(rows, rows * 11),
            description: Utf8Column::with_capacity(rows, rows * 51),
            initial_bid: Vec::with_capacity(rows),
            reserve: Vec::with_capacity(rows),
            date_time: Vec::with_capacity(rows),
            expires: Vec::with_capacity(rows),
            seller: Vec::with_capacity(rows),
            category: Vec::with_capacity(rows),
            extra: Utf8Column::with_capacity(rows, rows * 400),
        }
    }

    pub(super) fn push(&mut self, ctx: &Context, event_id: u64, date_time: i64) {
        let draws = Draws::new(ctx.event_key, event_id);
        self.id.push(FIRST_AUCTION_ID + last_auction(event_id));
        self.date_time.push(date_time);

        let (coin, pick) = halves(draws.draw(0));
        let seller = if below32(coin, HOT_SELLER_RATIO as u32) > 0 {
            last_person(event_id) / HOT_ID_STRIDE * HOT_ID_STRIDE
        } else {
            cold_person(event_id, pick)
        };
        self.seller.push(FIRST_PERSON_ID + seller);

        let [category, name_len, description_len, _] = lanes(draws.draw(1));
        let category = below16(category, CATEGORIES as u16);
        self.category.push(FIRST_CATEGORY_ID + i64::from(category));

        let initial_bid = price(draws.draw(2));
        self.initial_bid.push(initial_bid);
        self.reserve.push(initial_bid + price(draws.draw(3)));

        // Auctions last twice, on average, the time the next AUCTION_HORIZON_EVENTS take.
        let config = &ctx.config;
        let horizon_ms = config.event_time_ms(event_id + AUCTION_HORIZON_EVENTS) - date_time;
        let length_ms = 1 + below(draws.draw(4), (horizon_ms * 2).max(1) as u64) as i64;
        self.expires.push(date_time + length_ms);

        const NAME_DRAW: u64 = 5;
        const DESCRIPTION_DRAW: u64 = NAME_DRAW + draws_for(ITEM_NAME_LEN_MAX as usize);
        const EXTRA_SIZE_DRAW: u64 = DESCRIPTION_DRAW + draws_for(DESCRIPTION_LEN_MAX as usize);
        let name_len = words_len(name_len, ITEM_NAME_LEN_MAX);
        let name_len = push_words(&mut self.item_name.values, draws, NAME_DRAW, name_len);
        self.item_name.end_row();
        let description_len = words_len(description_len, DESCRIPTION_LEN_MAX);
        let description_len = push_words(
            &mut self.description.values,
            draws,
            DESCRIPTION_DRAW,
            description_len,
        );
        self.description.end_row();

        let current = 8 + name_len + description_len + 8 + 8 + 8 + 8 + 8;
        push_extra(
            &mut self.extra.values,
            draws,
            EXTRA_SIZE_DRAW,
            EXTRA_SIZE_DRAW + 1,
            current,
            AUCTION_AVG_BYTES,
        );
        self.extra.end_row();
    }

    pub(super) fn finish(self) -> RecordBatch {
        record_batch(
            EventKind::Auction,
            vec![
                int64(self.id),
                self.item_name.finish(),
                self.description.finish(),
                int64(self.initial_bid),
                int64(self.reserve),
                timestamps(self.date_time),
                timestamps(self.expires),
                int64(self.seller),
                int64(self.category),
                self.extra.finish(),
            ],
        )
    }
}
