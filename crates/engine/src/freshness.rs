//! How current a view's stored results are: its watermark, how far behind the log its
//! committed offsets are, and its staleness against its freshness SLA, computed from its
//! last commit and the log's ends now (docs/http-api.md, "freshness"). The HTTP API, the
//! dashboard and the metrics all show this.

use crate::source::fmt_ms;
use crate::{Stats, ViewDef};
use freshet_store::ViewStatus;
use serde::Serialize;

/// One input partition: what the stored results reflect against where the log ends.
#[derive(Debug, Serialize)]
pub struct PartitionOffsets {
    /// The stream.
    pub stream: String,
    /// The partition.
    pub partition: u32,
    /// The first offset not reflected in the stored results.
    pub next_offset: u64,
    /// The partition's end now (`None` if the stream is gone).
    pub end_offset: Option<u64>,
}

/// How current a view's stored results are (docs/http-api.md, "freshness").
#[derive(Debug, Serialize)]
pub struct Freshness {
    /// The view's watermark as RFC 3339 text, `+infinity` once the streams ended.
    pub watermark: Option<String>,
    /// The same in ms since the epoch (`i64::MAX` once the streams ended).
    pub watermark_ms: Option<i64>,
    /// Each input partition's committed and end offsets.
    pub offsets: Vec<PartitionOffsets>,
    /// Events in the log not yet reflected; `None` before the first commit.
    pub lag_events: Option<u64>,
    /// When the last commit landed, RFC 3339.
    pub committed_at: Option<String>,
    /// The same in ms since the epoch (for typed readers such as the PostgreSQL endpoint;
    /// the JSON shows the text).
    #[serde(skip)]
    pub committed_at_ms: Option<i64>,
    /// Now minus the time before which every ingested event is reflected: 0 when the view
    /// has committed everything in its input partitions, `None` before its first commit.
    pub staleness_ms: Option<i64>,
    /// The view's freshness SLA.
    pub sla_ms: u64,
    /// Whether the staleness is within the SLA.
    pub sla_met: bool,
}

/// How current `status` is at `now_ms`, given each input partition's end offset now
/// (`None` for a stream that is gone), and the counters of its last commit.
pub fn of(
    def: &ViewDef,
    status: &ViewStatus,
    now: i64,
    end_offset: impl Fn(&str, u32) -> Option<u64>,
) -> (Freshness, Stats) {
    let sla_ms = def.options.freshness_ms;
    let Some(progress) = &status.progress else {
        return (
            Freshness {
                watermark: None,
                watermark_ms: None,
                offsets: Vec::new(),
                lag_events: None,
                committed_at: None,
                committed_at_ms: None,
                staleness_ms: None,
                sla_ms,
                sla_met: false,
            },
            Stats::default(),
        );
    };
    let offsets: Vec<PartitionOffsets> = progress
        .partitions
        .iter()
        .map(|p| PartitionOffsets {
            stream: p.stream.clone(),
            partition: p.partition,
            next_offset: p.next_offset,
            end_offset: end_offset(&p.stream, p.partition),
        })
        .collect();
    let lag: u64 = offsets
        .iter()
        .map(|o| o.end_offset.map_or(0, |e| e.saturating_sub(o.next_offset)))
        .sum();
    let stats = Stats::from_stored(&progress.stats);
    let staleness = if lag == 0 {
        Some(0)
    } else {
        stats.reflected_ms.map(|t| now.saturating_sub(t).max(0))
    };
    let watermark = progress.watermark_ms.map(|w| {
        if w == i64::MAX {
            "+infinity".to_string()
        } else {
            fmt_ms(w)
        }
    });
    (
        Freshness {
            watermark,
            watermark_ms: progress.watermark_ms,
            offsets,
            lag_events: Some(lag),
            committed_at: status.committed_at_ms.map(fmt_ms),
            committed_at_ms: status.committed_at_ms,
            staleness_ms: staleness,
            sla_ms,
            sla_met: staleness.is_some_and(|s| s as u64 <= sla_ms),
        },
        stats,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use freshet_store::{PartitionProgress, Progress};
    use serde_json::json;

    fn partition(partition: u32, next_offset: u64) -> PartitionProgress {
        PartitionProgress {
            stream: "bid".into(),
            partition,
            next_offset,
            watermark_ms: None,
        }
    }

    #[test]
    fn a_view_run_per_partition_is_as_fresh_as_its_least_fresh_task() {
        let Ok(Some(crate::ViewStatement::Create { def, .. })) =
            crate::parse_view_statement("CREATE VIEW v AS SELECT * FROM bid")
        else {
            panic!("a view");
        };
        let task = |events: u64, reflected: i64, watermark: i64, commit: u64| {
            let mut commit_ms = crate::histogram::Histogram::default();
            commit_ms.record(commit, 1);
            json!({
                "input_events": events,
                "rows_written": events,
                "reflected_ms": reflected,
                "watermarks": { "bid": watermark },
                "commit_ms": commit_ms,
            })
        };
        let status = ViewStatus {
            view: "v".into(),
            progress: Some(Progress {
                partitions: vec![partition(0, 10), partition(1, 20)],
                watermark_ms: Some(3_000),
                stats: json!([task(10, 9_000, 5_000, 3), task(20, 7_000, 3_000, 40)]),
            }),
            committed_at_ms: Some(9_500),
        };
        // Partition 1 is 5 events behind the log's end.
        let (freshness, stats) = of(&def, &status, 10_000, |_, p| Some([10, 25][p as usize]));
        assert_eq!(freshness.lag_events, Some(5));
        assert_eq!(
            freshness.staleness_ms,
            Some(3_000),
            "as stale as the staler task"
        );
        assert_eq!(stats.input_events, 30);
        assert_eq!(stats.rows_written, 30);
        assert_eq!(stats.watermarks.get("bid"), Some(&3_000));
        assert_eq!((stats.commit_ms.count, stats.commit_ms.sum_ms), (2, 43));
        // A task that does not know its reflected time leaves the view's unknown too.
        let one_unknown = Stats::from_stored(&json!([task(1, 1, 1, 1), {"input_events": 2}]));
        assert_eq!(one_unknown.reflected_ms, None);
        assert!(one_unknown.watermarks.is_empty(), "{one_unknown:?}");
        // One object reads as itself.
        assert_eq!(Stats::from_stored(&task(4, 1, 2, 3)).input_events, 4);
    }
}
