//! What to generate, and the timeline arithmetic that depends on it: which event id an
//! event number carries (out-of-order groups) and when each event happens.

use crate::BASE_TIME_MS;

/// Beam's out-of-order multiplier: prime, so it permutes every group whose size it does
/// not divide.
const OUT_OF_ORDER_MULTIPLIER: u64 = 953;

/// What to generate: the same config (and split count) always yields the same events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Seed of every random draw.
    pub seed: u64,
    /// Event time of event 0, in ms since the epoch.
    pub base_time_ms: i64,
    /// Event-time rate: event `n` happens at `base_time_ms + floor(n * 1000 / rate)` ms.
    pub events_per_second: u64,
    /// Out-of-order group size `G`: events are shuffled within each run of `G` event
    /// numbers. 1 keeps them in order. As in Beam, the shuffle is a permutation only when
    /// 953 does not divide `G`, and a last partial group (when `max_events` is not a
    /// multiple of `G`) may carry event ids at or past `max_events`.
    pub out_of_order_group: u64,
    /// Total events across all kinds and splits (event numbers `0..max`); `None` is unbounded.
    pub max_events: Option<u64>,
}

impl Default for GeneratorConfig {
    fn default() -> GeneratorConfig {
        GeneratorConfig {
            seed: 0,
            base_time_ms: BASE_TIME_MS,
            events_per_second: 10_000,
            out_of_order_group: 1,
            max_events: None,
        }
    }
}

impl GeneratorConfig {
    /// The event id carried by event number `n` (equal to `n` unless out-of-order groups
    /// are configured).
    #[inline]
    pub fn event_id(&self, n: u64) -> u64 {
        let group = self.out_of_order_group;
        if group <= 1 {
            return n;
        }
        // (n·953) mod G, computed from n mod G, and in 128 bits for groups so large that
        // 64 would overflow.
        let offset = n % group;
        let shuffled = match offset.checked_mul(OUT_OF_ORDER_MULTIPLIER) {
            Some(product) => product % group,
            None => {
                (u128::from(offset) * u128::from(OUT_OF_ORDER_MULTIPLIER) % u128::from(group))
                    as u64
            }
        };
        n - offset + shuffled
    }

    /// `ts(e)`: the event time of event id `e`, `base + floor(e * 1000 / rate)` ms
    /// (saturating at `i64::MAX`, some 292 million years out).
    #[inline]
    pub fn event_time_ms(&self, event_id: u64) -> i64 {
        let rate = self.events_per_second;
        let offset = match event_id.checked_mul(1000) {
            Some(scaled) => u128::from(scaled / rate),
            None => u128::from(event_id) * 1000 / u128::from(rate),
        };
        i64::try_from(offset).map_or(i64::MAX, |offset| self.base_time_ms.saturating_add(offset))
    }
}
