//! The server's recent figures, for `GET /v1/history` and the dashboard's charts: every
//! `HISTORY_SAMPLE_INTERVAL` the server reads (`sampling`) what `/v1/status` and
//! `/metrics` show (per stream its ingest, per view its freshness and counters) and keeps
//! each figure as a series of points over the last [`HISTORY_WINDOW`], so that a page
//! opened now draws the last hour at once. Counters become rates (per second between two
//! samples); a counter that went down was restarted (a view dropped and created again)
//! and counts from zero. The history lives in memory only: a restarted server starts
//! empty. Nothing here knows the server's state, so it is tested on its own.

use freshet_types::limits::{HISTORY_POINTS_MAX, HISTORY_SERIES_MAX, HISTORY_WINDOW};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What a series is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Stream,
    View,
}

/// One figure of a stream or a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Events appended to the stream's partitions, per second.
    Events,
    /// Payload bytes appended, per second (only where the server ingests).
    Bytes,
    /// Rows sent to the stream's dead-letter stream, per second.
    DeadLetters,
    /// Events the view read, per second.
    Input,
    /// Events in the view's input not yet reflected in its results.
    Lag,
    /// The view's staleness, seconds.
    Staleness,
    /// Now minus the view's watermark, seconds.
    WatermarkDelay,
    /// The view's operator state at its last commit, bytes.
    State,
    /// Late events (dropped, dead-lettered or updating), per second.
    Late,
    /// Late events the view kept in `freshet_late_events`, per second.
    LateDeadLettered,
    /// Result rows written, per second.
    RowsWritten,
    /// Mean duration of the store commits between two samples, seconds.
    CommitLatency,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Events => "events",
            Metric::Bytes => "bytes",
            Metric::DeadLetters => "dead_letters",
            Metric::Input => "input",
            Metric::Lag => "lag",
            Metric::Staleness => "staleness",
            Metric::WatermarkDelay => "watermark_delay",
            Metric::State => "state",
            Metric::Late => "late",
            Metric::LateDeadLettered => "late_dead_lettered",
            Metric::RowsWritten => "rows_written",
            Metric::CommitLatency => "commit_latency",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Metric::Events | Metric::Input => "events/s",
            Metric::Bytes => "bytes/s",
            Metric::DeadLetters | Metric::LateDeadLettered => "dead letters/s",
            Metric::Late => "late events/s",
            Metric::RowsWritten => "rows/s",
            Metric::Lag => "events",
            Metric::State => "bytes",
            Metric::Staleness | Metric::WatermarkDelay | Metric::CommitLatency => "seconds",
        }
    }
}

/// Which series: a metric of a named stream or view.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    pub name: String,
    pub metric: Metric,
}

impl Key {
    pub fn new(kind: Kind, name: &str, metric: Metric) -> Key {
        Key {
            kind,
            name: name.to_owned(),
            metric,
        }
    }
}

/// Points in time order, at most [`HISTORY_POINTS_MAX`]: a ring that forgets its oldest.
#[derive(Debug, Default)]
pub struct Series {
    points: VecDeque<(i64, f64)>,
}

impl Series {
    /// Appends a point; one not later than the last is ignored (a clock that stepped back),
    /// so the points stay in time order.
    pub fn push(&mut self, t_ms: i64, value: f64) {
        if self.points.back().is_some_and(|&(last, _)| t_ms <= last) || !value.is_finite() {
            return;
        }
        if self.points.len() == HISTORY_POINTS_MAX {
            self.points.pop_front();
        }
        self.points.push_back((t_ms, value));
    }

    /// Forgets points before `t_ms`.
    fn forget_before(&mut self, t_ms: i64) {
        while self.points.front().is_some_and(|&(t, _)| t < t_ms) {
            self.points.pop_front();
        }
    }

    /// Points after `since_ms`, oldest first.
    pub fn since(&self, since_ms: i64) -> impl Iterator<Item = (i64, f64)> + '_ {
        // Points are in time order: skip to the first one after `since_ms`.
        let first = self.points.partition_point(|&(t, _)| t <= since_ms);
        self.points.range(first..).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// A counter's increase per second from `before` to `now` (each `(ms, value)`). A counter
/// lower than before was restarted from zero: all of its value is the increase.
pub fn rate(before: (i64, u64), now: (i64, u64)) -> Option<f64> {
    let seconds = (now.0 - before.0) as f64 / 1_000.0;
    if seconds <= 0.0 {
        return None;
    }
    let increase = if now.1 >= before.1 {
        now.1 - before.1
    } else {
        now.1
    };
    Some(increase as f64 / seconds)
}

/// A stream's figures at one sample.
pub struct StreamReading {
    pub name: String,
    /// Events ever appended (the partitions' ends).
    pub events: u64,
    pub dead_letters: u64,
    /// Payload bytes appended since the server started; `None` where it does not ingest.
    pub bytes: Option<u64>,
}

/// A view's figures at one sample.
pub struct ViewReading {
    pub name: String,
    pub input_events: u64,
    pub lag_events: Option<u64>,
    pub staleness_ms: Option<i64>,
    /// Now minus the watermark; `None` before there is one and after the streams ended.
    pub watermark_delay_ms: Option<i64>,
    pub state_bytes: u64,
    /// Late events dropped, dead-lettered or updating.
    pub late: u64,
    pub late_dead_lettered: u64,
    pub rows_written: u64,
    /// The commit-duration histogram's sum (ms) and count.
    pub commits: (u64, u64),
}

/// Every series, and the last reading of each counter (to take rates from).
#[derive(Default)]
pub struct History {
    series: BTreeMap<Key, Series>,
    /// Per counter series: when it was last read, the value, and a second value for
    /// ratios (the commit histogram's count).
    counters: BTreeMap<Key, (i64, u64, u64)>,
    /// The streams and views of the sample being recorded: series of any other (dropped)
    /// are the first to go when the history is full.
    present: BTreeSet<(Kind, String)>,
    /// Whether a series was refused at [`HISTORY_SERIES_MAX`] (logged once, until there
    /// is room again).
    full: bool,
}

impl History {
    /// The series `key`, made if there is room, if need be by forgetting the series of
    /// streams and views that are no longer there (dropped).
    fn series(&mut self, key: &Key) -> Option<&mut Series> {
        if !self.series.contains_key(key) {
            if self.series.len() >= HISTORY_SERIES_MAX {
                let present = &self.present;
                let gone = |k: &Key| !present.contains(&(k.kind, k.name.clone()));
                self.series.retain(|k, _| !gone(k));
                self.counters.retain(|k, _| !gone(k));
            }
            if self.series.len() >= HISTORY_SERIES_MAX {
                if !self.full {
                    self.full = true;
                    tracing::warn!(
                        limit = HISTORY_SERIES_MAX,
                        "the metric history holds as many series as it may; figures of \
                         further streams and views are not kept (HISTORY_SERIES_MAX)"
                    );
                }
                return None;
            }
            self.series.insert(key.clone(), Series::default());
        }
        self.series.get_mut(key)
    }

    /// A gauge's value at `t_ms`.
    pub fn gauge(&mut self, key: Key, t_ms: i64, value: f64) {
        if let Some(s) = self.series(&key) {
            s.push(t_ms, value);
        }
    }

    /// A counter read at `t_ms`: its rate since the last reading becomes a point.
    pub fn counter(&mut self, key: Key, t_ms: i64, value: u64) {
        self.ratio(key, t_ms, value, 0, |before, now| {
            rate((before.0, before.1), (now.0, now.1))
        });
    }

    /// Two counters read together (a histogram's sum in ms and its count): the mean
    /// observation between two readings, seconds; no point when nothing was observed.
    pub fn mean(&mut self, key: Key, t_ms: i64, sum_ms: u64, count: u64) {
        self.ratio(key, t_ms, sum_ms, count, |before, now| {
            // Restarted: everything counted since is new.
            let (sum, n) = if now.2 >= before.2 && now.1 >= before.1 {
                (now.1 - before.1, now.2 - before.2)
            } else {
                (now.1, now.2)
            };
            (n > 0).then(|| sum as f64 / n as f64 / 1_000.0)
        });
    }

    fn ratio(
        &mut self,
        key: Key,
        t_ms: i64,
        a: u64,
        b: u64,
        point: impl Fn((i64, u64, u64), (i64, u64, u64)) -> Option<f64>,
    ) {
        let now = (t_ms, a, b);
        let before = self.counters.get(&key).copied();
        let value = before.and_then(|before| point(before, now));
        let Some(series) = self.series(&key) else {
            return;
        };
        if let Some(v) = value {
            series.push(t_ms, v);
        }
        if before.is_none_or(|before| t_ms > before.0) {
            self.counters.insert(key, now);
        }
    }

    /// One sample: every stream's and view's figures at `t_ms`. Points older than
    /// [`HISTORY_WINDOW`] are forgotten, and series left empty with them (a dropped view's).
    pub fn record(&mut self, t_ms: i64, streams: &[StreamReading], views: &[ViewReading]) {
        use Kind::{Stream, View};
        self.present = streams
            .iter()
            .map(|s| (Stream, s.name.clone()))
            .chain(views.iter().map(|v| (View, v.name.clone())))
            .collect();
        for s in streams {
            let k = |m| Key::new(Stream, &s.name, m);
            self.counter(k(Metric::Events), t_ms, s.events);
            self.counter(k(Metric::DeadLetters), t_ms, s.dead_letters);
            if let Some(bytes) = s.bytes {
                self.counter(k(Metric::Bytes), t_ms, bytes);
            }
        }
        for v in views {
            let k = |m| Key::new(View, &v.name, m);
            self.counter(k(Metric::Input), t_ms, v.input_events);
            if let Some(lag) = v.lag_events {
                self.gauge(k(Metric::Lag), t_ms, lag as f64);
            }
            if let Some(ms) = v.staleness_ms {
                self.gauge(k(Metric::Staleness), t_ms, ms as f64 / 1_000.0);
            }
            if let Some(ms) = v.watermark_delay_ms {
                self.gauge(k(Metric::WatermarkDelay), t_ms, ms as f64 / 1_000.0);
            }
            self.gauge(k(Metric::State), t_ms, v.state_bytes as f64);
            self.counter(k(Metric::Late), t_ms, v.late);
            self.counter(k(Metric::LateDeadLettered), t_ms, v.late_dead_lettered);
            self.counter(k(Metric::RowsWritten), t_ms, v.rows_written);
            self.mean(k(Metric::CommitLatency), t_ms, v.commits.0, v.commits.1);
        }
        let horizon = t_ms - HISTORY_WINDOW.as_millis() as i64;
        for s in self.series.values_mut() {
            s.forget_before(horizon);
        }
        self.counters.retain(|_, c| c.0 >= horizon);
        let counters = &self.counters;
        self.series
            .retain(|k, s| !s.is_empty() || counters.contains_key(k));
        if self.series.len() < HISTORY_SERIES_MAX {
            self.full = false;
        }
    }

    /// Every series with its points after `since_ms`, as `GET /v1/history` answers: a copy,
    /// so that the caller serializes it without holding the history.
    pub fn since(&self, since_ms: i64) -> Vec<SeriesPoints> {
        self.series
            .iter()
            .map(|(k, s)| SeriesPoints {
                kind: k.kind,
                name: k.name.clone(),
                metric: k.metric.name(),
                unit: k.metric.unit(),
                points: s.since(since_ms).collect(),
            })
            .collect()
    }
}

/// One series of `GET /v1/history`; each point serializes as `[ms, value]`.
#[derive(Debug, Serialize)]
pub struct SeriesPoints {
    pub kind: Kind,
    pub name: String,
    pub metric: &'static str,
    pub unit: &'static str,
    pub points: Vec<(i64, f64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, input: u64, commits: (u64, u64)) -> ViewReading {
        ViewReading {
            name: name.into(),
            input_events: input,
            lag_events: Some(3),
            staleness_ms: Some(1_500),
            watermark_delay_ms: None,
            state_bytes: 4_096,
            late: 0,
            late_dead_lettered: 0,
            rows_written: input / 2,
            commits,
        }
    }

    fn points(h: &History, kind: Kind, name: &str, metric: Metric) -> Vec<(i64, f64)> {
        h.series
            .get(&Key::new(kind, name, metric))
            .map(|s| s.since(i64::MIN).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_series_is_bounded_keeps_time_order_and_answers_since() {
        let mut s = Series::default();
        for i in 0..(HISTORY_POINTS_MAX as i64 + 10) {
            s.push(i * 1_000, i as f64);
        }
        assert_eq!(s.points.len(), HISTORY_POINTS_MAX);
        let all: Vec<_> = s.since(i64::MIN).collect();
        assert_eq!(all.first(), Some(&(10_000, 10.0)), "the oldest went first");
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        // A point not after the last (the clock stepped back) is not taken.
        let last = all.last().copied().unwrap();
        s.push(last.0, 1.0);
        s.push(last.0 - 5, 1.0);
        s.push(last.0 + 1, f64::NAN);
        assert_eq!(s.since(i64::MIN).last(), Some(last));
        assert_eq!(s.points.len(), HISTORY_POINTS_MAX);
        let recent: Vec<_> = s.since(last.0 - 2_000).collect();
        assert_eq!(recent, vec![(last.0 - 1_000, last.1 - 1.0), last]);
        assert_eq!(s.since(last.0).count(), 0);
    }

    #[test]
    fn rates_come_from_counter_increases_and_a_restarted_counter_counts_from_zero() {
        assert_eq!(rate((0, 100), (2_000, 300)), Some(100.0));
        assert_eq!(rate((0, 100), (2_000, 100)), Some(0.0));
        // Restarted (went down): the 40 counted since are the increase.
        assert_eq!(rate((0, 1_000), (2_000, 40)), Some(20.0));
        assert_eq!(rate((2_000, 1), (2_000, 5)), None, "no time passed");

        let mut h = History::default();
        let stream = |events, bytes| StreamReading {
            name: "bid".into(),
            events,
            dead_letters: 0,
            bytes: Some(bytes),
        };
        h.record(0, &[stream(10, 1_000)], &[]);
        assert!(points(&h, Kind::Stream, "bid", Metric::Events).is_empty());
        h.record(2_000, &[stream(30, 3_000)], &[]);
        h.record(4_000, &[stream(6, 600)], &[]);
        h.record(6_000, &[stream(6, 600)], &[]);
        assert_eq!(
            points(&h, Kind::Stream, "bid", Metric::Events),
            vec![(2_000, 10.0), (4_000, 3.0), (6_000, 0.0)]
        );
        assert_eq!(
            points(&h, Kind::Stream, "bid", Metric::Bytes),
            vec![(2_000, 1_000.0), (4_000, 300.0), (6_000, 0.0)]
        );
    }

    #[test]
    fn commit_latency_is_the_mean_between_samples_and_gauges_are_kept_as_read() {
        let mut h = History::default();
        h.record(0, &[], &[view("v", 0, (0, 0))]);
        // Two commits of 30 ms and 50 ms.
        h.record(2_000, &[], &[view("v", 10, (80, 2))]);
        // No commit: no point.
        h.record(4_000, &[], &[view("v", 10, (80, 2))]);
        // Restarted (the view was created again): one commit of 10 ms.
        h.record(6_000, &[], &[view("v", 4, (10, 1))]);
        assert_eq!(
            points(&h, Kind::View, "v", Metric::CommitLatency),
            vec![(2_000, 0.04), (6_000, 0.01)]
        );
        assert_eq!(
            points(&h, Kind::View, "v", Metric::Input),
            vec![(2_000, 5.0), (4_000, 0.0), (6_000, 2.0)]
        );
        let staleness = points(&h, Kind::View, "v", Metric::Staleness);
        assert_eq!(staleness.len(), 4);
        assert!(staleness.iter().all(|&(_, s)| s == 1.5));
        assert!(points(&h, Kind::View, "v", Metric::WatermarkDelay).is_empty());
    }

    #[test]
    fn points_older_than_the_window_and_series_of_dropped_views_are_forgotten() {
        let mut h = History::default();
        let window = HISTORY_WINDOW.as_millis() as i64;
        h.record(0, &[], &[view("gone", 0, (0, 0))]);
        h.record(
            2_000,
            &[],
            &[view("gone", 2, (0, 0)), view("kept", 0, (0, 0))],
        );
        h.record(window + 1_000, &[], &[view("kept", 5, (0, 0))]);
        assert_eq!(
            points(&h, Kind::View, "gone", Metric::Lag),
            vec![(2_000, 3.0)]
        );
        h.record(window + 3_000, &[], &[view("kept", 9, (0, 0))]);
        assert!(
            h.series.keys().all(|k| k.name == "kept"),
            "{:?}",
            h.series.keys().collect::<Vec<_>>()
        );
        assert!(h.counters.keys().all(|k| k.name == "kept"));
        assert_eq!(
            points(&h, Kind::View, "kept", Metric::Lag),
            vec![(window + 1_000, 3.0), (window + 3_000, 3.0)]
        );
    }

    #[test]
    fn the_number_of_series_is_bounded() {
        let mut h = History::default();
        let views: Vec<_> = (0..HISTORY_SERIES_MAX)
            .map(|i| view(&format!("v{i}"), 0, (0, 0)))
            .collect();
        h.record(0, &[], &views);
        h.record(2_000, &[], &views);
        assert_eq!(h.series.len(), HISTORY_SERIES_MAX);
        assert!(h.counters.len() <= HISTORY_SERIES_MAX);
        assert_eq!(h.since(i64::MIN).len(), HISTORY_SERIES_MAX);
    }

    /// HISTORY_SERIES_MAX's doc says what a view and a stream take: 9 and 3 series.
    #[test]
    fn a_view_takes_nine_series_and_a_stream_three() {
        let mut h = History::default();
        let mut v = view("v", 0, (0, 0));
        v.watermark_delay_ms = Some(10);
        let s = StreamReading {
            name: "bid".into(),
            events: 0,
            dead_letters: 0,
            bytes: Some(0),
        };
        h.record(0, &[s], &[v]);
        let count = |kind| h.series.keys().filter(|k| k.kind == kind).count();
        assert_eq!((count(Kind::View), count(Kind::Stream)), (9, 3));
    }

    /// A full history makes room by forgetting the series of dropped views first, and logs
    /// that it is full again once it is full again.
    #[test]
    fn a_full_history_forgets_dropped_views_for_new_ones() {
        let mut h = History::default();
        // A view with a watermark, so with all 9 series.
        let view = |name: String| ViewReading {
            watermark_delay_ms: Some(10),
            ..view(&name, 0, (0, 0))
        };
        let per_view = 9;
        let fit = HISTORY_SERIES_MAX / per_view;
        let old: Vec<_> = (0..fit).map(|i| view(format!("old{i}"))).collect();
        h.record(0, &[], &old);
        assert_eq!(h.series.len(), fit * per_view);
        // One more view does not fit: refused, logged.
        let more: Vec<_> = (0..fit)
            .map(|i| view(format!("old{i}")))
            .chain([view("extra".into())])
            .collect();
        h.record(2_000, &[], &more);
        assert!(h.full);
        assert!(h.series.len() <= HISTORY_SERIES_MAX);
        // Every old view is dropped: the new views get their series at once, though the
        // old ones' points are still within the window.
        let new: Vec<_> = (0..fit).map(|i| view(format!("new{i}"))).collect();
        h.record(4_000, &[], &new);
        assert!(h.series.keys().all(|k| k.name.starts_with("new")));
        assert!(h.counters.keys().all(|k| k.name.starts_with("new")));
        assert_eq!(h.series.len(), fit * per_view);
        for i in 0..fit {
            let staleness = points(&h, Kind::View, &format!("new{i}"), Metric::Staleness);
            assert_eq!(staleness, vec![(4_000, 1.5)], "new{i}");
        }
        assert!(
            !h.full,
            "there is room again, so a full history is logged again"
        );
    }
}
