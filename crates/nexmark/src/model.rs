//! Nexmark's reference arithmetic (Apache Beam's generator): the constants, which kind of
//! event an event id is, and the dense person and auction ids derived from the id alone.
//!
//! Everything here is a pure function of the event id, which is what lets any event be
//! generated on its own. Event times live in [`crate::GeneratorConfig`], because they
//! depend on the configured rate and base time.

use crate::EventKind;

/// Id of the first person (person ids are dense from here).
pub const FIRST_PERSON_ID: i64 = 1000;
/// Id of the first auction (auction ids are dense from here).
pub const FIRST_AUCTION_ID: i64 = 1000;
/// Id of the first category.
pub const FIRST_CATEGORY_ID: i64 = 10;
/// Number of categories (ids `FIRST_CATEGORY_ID..FIRST_CATEGORY_ID + CATEGORIES`).
pub const CATEGORIES: u64 = 5;

/// Persons per [`TOTAL_PROPORTION`] events.
pub const PERSON_PROPORTION: u64 = 1;
/// Auctions per [`TOTAL_PROPORTION`] events.
pub const AUCTION_PROPORTION: u64 = 3;
/// Bids per [`TOTAL_PROPORTION`] events.
pub const BID_PROPORTION: u64 = 46;
/// Length of the repeating person/auction/bid pattern.
pub const TOTAL_PROPORTION: u64 = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION;

/// A bid goes to a hot auction with probability `1 - 1/HOT_AUCTION_RATIO`.
pub const HOT_AUCTION_RATIO: u64 = 2;
/// An auction is opened by a hot seller with probability `1 - 1/HOT_SELLER_RATIO`.
pub const HOT_SELLER_RATIO: u64 = 4;
/// A bid is placed by a hot bidder with probability `1 - 1/HOT_BIDDER_RATIO`.
pub const HOT_BIDDER_RATIO: u64 = 4;
/// Hot ids are the first of each run of this many ids (a hot bidder is that id + 1).
pub const HOT_ID_STRIDE: i64 = 100;

/// Auctions considered still open when a cold bid picks one.
pub const IN_FLIGHT_AUCTIONS: i64 = 100;
/// People considered active when a cold seller or bidder is picked.
pub const ACTIVE_PEOPLE: i64 = 1000;
/// How far past the newest id a cold pick may reach (ids that do not exist yet).
pub const ID_LEAD: i64 = 10;
/// Events it takes to open [`IN_FLIGHT_AUCTIONS`] auctions (1,666): an auction's expected
/// length is the time these events span.
pub const AUCTION_HORIZON_EVENTS: u64 =
    IN_FLIGHT_AUCTIONS as u64 * TOTAL_PROPORTION / AUCTION_PROPORTION;

/// Average encoded size the `extra` column pads a person toward, in bytes.
pub const PERSON_AVG_BYTES: usize = 200;
/// Average encoded size the `extra` column pads an auction toward, in bytes.
pub const AUCTION_AVG_BYTES: usize = 500;
/// Average encoded size the `extra` column pads a bid toward, in bytes.
pub const BID_AVG_BYTES: usize = 100;

/// The channels a bid comes through half of the time.
pub const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
/// A bid not through a hot channel comes through `channel-<i>` with `i` uniform below this.
pub const COLD_CHANNELS: u64 = 10_000;

/// The kind of event `event_id` is: by `event_id mod 50`, 0 is a person, 1–3 an auction and
/// 4–49 a bid.
#[inline]
pub fn kind_of(event_id: u64) -> EventKind {
    let offset = event_id % TOTAL_PROPORTION;
    if offset < PERSON_PROPORTION {
        EventKind::Person
    } else if offset < PERSON_PROPORTION + AUCTION_PROPORTION {
        EventKind::Auction
    } else {
        EventKind::Bid
    }
}

/// Base-0 id of the newest person as of `event_id` (a person event's own id).
#[inline]
pub fn last_person(event_id: u64) -> i64 {
    let epoch = (event_id / TOTAL_PROPORTION) as i64;
    let offset = (event_id % TOTAL_PROPORTION) as i64;
    epoch * PERSON_PROPORTION as i64 + offset.min(PERSON_PROPORTION as i64 - 1)
}

/// Base-0 id of the newest auction as of `event_id` (an auction event's own id). It is -1
/// before the first auction.
#[inline]
pub fn last_auction(event_id: u64) -> i64 {
    let epoch = (event_id / TOTAL_PROPORTION) as i64;
    let offset = event_id % TOTAL_PROPORTION;
    let per_epoch = AUCTION_PROPORTION as i64;
    if offset < PERSON_PROPORTION {
        (epoch - 1) * per_epoch + per_epoch - 1
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        epoch * per_epoch + per_epoch - 1
    } else {
        epoch * per_epoch + (offset - PERSON_PROPORTION) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_repeat_every_fifty() {
        assert_eq!(kind_of(0), EventKind::Person);
        assert_eq!(kind_of(1), EventKind::Auction);
        assert_eq!(kind_of(3), EventKind::Auction);
        assert_eq!(kind_of(4), EventKind::Bid);
        assert_eq!(kind_of(49), EventKind::Bid);
        assert_eq!(kind_of(50), EventKind::Person);
        assert_eq!(AUCTION_HORIZON_EVENTS, 1666);
    }

    #[test]
    fn ids_follow_the_reference_formulas() {
        assert_eq!(last_person(0), 0);
        assert_eq!(last_person(49), 0);
        assert_eq!(last_person(50), 1);
        assert_eq!(last_auction(0), -1);
        assert_eq!(last_auction(1), 0);
        assert_eq!(last_auction(2), 1);
        assert_eq!(last_auction(3), 2);
        assert_eq!(last_auction(4), 2);
        assert_eq!(last_auction(50), 2);
        assert_eq!(last_auction(51), 3);
        assert_eq!(last_auction(99), 5);
    }
}
