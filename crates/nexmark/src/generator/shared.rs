//! What every event kind's generation shares: the per-generator keys, and the value
//! helpers that more than one kind uses (cold person picks, prices, splitting a draw).

use super::GeneratorConfig;
use crate::model::{ACTIVE_PEOPLE, COLD_CHANNELS, HOT_CHANNELS, ID_LEAD, last_person};
use crate::rng::{Draws, below32, domain_key, pow10_6u, unit_f64};
use crate::text::push_url;

/// Domain of the per-event draws.
const EVENT_DOMAIN: u64 = 1;
/// Domain of the per-channel URL draws (a channel's URL does not depend on the event).
const CHANNEL_URL_DOMAIN: u64 = 2;

/// Keys and tables shared by every event of one generator.
#[derive(Debug)]
pub(super) struct Context {
    pub(super) config: GeneratorConfig,
    pub(super) event_key: u64,
    pub(super) channel_url_key: u64,
    /// The URL of each hot channel: one per channel, fixed by the seed.
    pub(super) hot_urls: [Vec<u8>; HOT_CHANNELS.len()],
}

impl Context {
    pub(super) fn new(config: GeneratorConfig) -> Context {
        let event_key = domain_key(config.seed, EVENT_DOMAIN);
        let channel_url_key = domain_key(config.seed, CHANNEL_URL_DOMAIN);
        let hot_urls = std::array::from_fn(|i| {
            let mut url = Vec::new();
            // Hot channels take the channel numbers after the cold ones.
            push_url(
                &mut url,
                Draws::new(channel_url_key, COLD_CHANNELS + i as u64),
            );
            url
        });
        Context {
            config,
            event_key,
            channel_url_key,
            hot_urls,
        }
    }
}

/// A base-0 person id among the recently active people, with a small lead into people that
/// do not exist yet (Beam's `nextBase0PersonId`).
#[inline]
pub(super) fn cold_person(event_id: u64, bits: u32) -> i64 {
    let people = last_person(event_id) + 1;
    let active = people.min(ACTIVE_PEOPLE);
    people - active + i64::from(below32(bits, (active + ID_LEAD) as u32))
}

/// A price in cents, log-uniform from $1 to $1M: `round(10^(6u) * 100)`.
#[inline]
pub(super) fn price(bits: u64) -> i64 {
    // Java's Math.round (floor(x + 0.5)); the value is at least 100, so truncation floors.
    (pow10_6u(unit_f64(bits)) * 100.0 + 0.5) as i64
}

/// The low and high 32 bits of a draw, used for two independent small choices.
#[inline]
pub(super) fn halves(bits: u64) -> (u32, u32) {
    (bits as u32, (bits >> 32) as u32)
}

/// The four 16-bit lanes of a draw, used for four independent small choices.
#[inline]
pub(super) fn lanes(bits: u64) -> [u16; 4] {
    [
        bits as u16,
        (bits >> 16) as u16,
        (bits >> 32) as u16,
        (bits >> 48) as u16,
    ]
}
