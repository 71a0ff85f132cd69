//! Fixed-bucket latency histograms, kept in a view's [`Stats`](crate::Stats) so that they
//! survive restarts and export as Prometheus histograms.

use serde::{Deserialize, Serialize};

/// Upper bounds of the buckets, in ms; a last, unbounded bucket follows.
pub const LATENCY_BUCKETS_MS: [u64; 14] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 60_000,
];

/// Counts of observations per bucket (not cumulative), their sum and count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Histogram {
    /// One count per bucket of [`LATENCY_BUCKETS_MS`], then the unbounded bucket.
    pub counts: Vec<u64>,
    /// Sum of the observations, in ms.
    pub sum_ms: u64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// Record `n` observations of `ms`.
    pub fn record(&mut self, ms: u64, n: u64) {
        if self.counts.len() != LATENCY_BUCKETS_MS.len() + 1 {
            self.counts.resize(LATENCY_BUCKETS_MS.len() + 1, 0);
        }
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.counts[bucket] += n;
        self.sum_ms = self.sum_ms.saturating_add(ms.saturating_mul(n));
        self.count += n;
    }

    /// Adds `other`'s observations (another task's of the same view).
    pub fn add(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.sum_ms = self.sum_ms.saturating_add(other.sum_ms);
        self.count += other.count;
    }

    /// `(upper bound in ms, cumulative count)` per bucket, the last with `None` (+Inf).
    pub fn cumulative(&self) -> Vec<(Option<u64>, u64)> {
        let mut total = 0;
        (0..=LATENCY_BUCKETS_MS.len())
            .map(|i| {
                total += self.counts.get(i).copied().unwrap_or(0);
                (LATENCY_BUCKETS_MS.get(i).copied(), total)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let mut h = Histogram::default();
        h.record(0, 2);
        h.record(1, 1);
        h.record(3, 1);
        h.record(90_000, 1);
        assert_eq!(h.count, 5);
        assert_eq!(h.sum_ms, 90_004);
        let c = h.cumulative();
        assert_eq!(c[0], (Some(1), 3));
        assert_eq!(c[2], (Some(5), 4));
        assert_eq!(c.last(), Some(&(None, 5)));
    }
}
