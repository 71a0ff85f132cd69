//! Whether a view can run as one task per partition of its streams, and why (issue 17's
//! "which views run in parallel"; `DESCRIBE VIEW` and `explain` say it).
//!
//! A view splits by partition when no operator ever needs rows of two partitions at once:
//! task `p` then reads partition `p` of every stream and writes result rows no other task
//! writes. That holds when
//!
//! - every operator is stateless (filters, projections, `UNION ALL` of streams' rows): a
//!   row depends on one event, and rows are keyed by their log position;
//! - every stateful operator keys its state by a column that is its rows' partition key:
//!   an aggregate whose `GROUP BY` has it, a top-N whose `PARTITION BY` has it, a join
//!   whose equality keys pair the partition keys of both sides;
//!
//! and every stream read has the same number of partitions. A column is a partition key
//! when it is the stream's `partition_key` column passed on unchanged (a filter keeps it,
//! a projection of the bare column keeps it, an aggregate's group column keeps it); two
//! streams' keys pair up when they hash alike ([`KeyHash`]: every integer and millisecond
//! timestamp type hashes its value as an `i64`, text its bytes). A stream without a
//! `partition_key` spreads its batches round robin: stateless views over it still split,
//! stateful ones do not.

use crate::aggregate::GroupCol;
use crate::compile::bare_column;
use crate::join::Output;
use crate::node::{Node, Op};
use arrow_schema::{DataType, TimeUnit};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::CastExpr;
use freshet_streams::StreamDef;
use serde::Serialize;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// How a view's work divides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Parallelism {
    /// Partition `p` of every stream read meets only rows of partition `p`: one task per
    /// partition can run the view.
    PerPartition {
        /// The partitions (of every stream read).
        partitions: u32,
        /// Why the split is safe.
        reason: String,
    },
    /// One task must read every partition.
    Single {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Parallelism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parallelism::PerPartition { partitions, reason } => {
                write!(f, "by partition, {partitions} tasks: {reason}")
            }
            Parallelism::Single { reason } => write!(f, "one task: {reason}"),
        }
    }
}

/// How a partition key's values are hashed to partitions (`freshet_streams::partitioner`):
/// keys of two streams put equal values in the same partition only if they hash alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyHash {
    /// Integers and millisecond timestamps: the value widened to `i64`.
    Integer,
    /// Text: its UTF-8 bytes.
    Text,
}

impl KeyHash {
    fn of(t: &DataType) -> Option<KeyHash> {
        match t {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Timestamp(TimeUnit::Millisecond, _) => Some(KeyHash::Integer),
            DataType::Utf8 => Some(KeyHash::Text),
            _ => None,
        }
    }
}

/// A subtree whose rows split by partition.
struct Split {
    partitions: u32,
    /// Per output column: whether it is its rows' partition key, and how it hashes.
    keys: Vec<Option<KeyHash>>,
    /// Why each stateful operator of the subtree splits.
    stateful: Vec<String>,
}

/// How `root` (a compiled view over `streams`) divides.
pub fn parallelism(root: &Node, streams: &[StreamDef]) -> Parallelism {
    match split(root, streams) {
        Ok(s) if s.partitions <= 1 => Parallelism::Single {
            reason: "its streams have one partition".into(),
        },
        Ok(s) => Parallelism::PerPartition {
            partitions: s.partitions,
            reason: if s.stateful.is_empty() {
                "it is stateless: each result row comes from one event".into()
            } else {
                s.stateful.join("; ")
            },
        },
        Err(reason) => Parallelism::Single { reason },
    }
}

fn split(node: &Node, streams: &[StreamDef]) -> Result<Split, String> {
    let name = |i: usize| node.schema.field(i).name().clone();
    match &node.op {
        Op::Source(source) => {
            let def = streams
                .iter()
                .find(|d| d.name == source.stream)
                .ok_or_else(|| format!("stream '{}' is not known", source.stream))?;
            let key = def
                .partition_key
                .as_deref()
                .and_then(|k| def.column_index(k));
            let keys = source
                .projection
                .iter()
                .map(|&c| {
                    (Some(c) == key)
                        .then(|| KeyHash::of(&def.columns[c].data_type))
                        .flatten()
                })
                .collect();
            Ok(Split {
                partitions: def.partitions,
                keys,
                stateful: Vec::new(),
            })
        }
        Op::Filter { input, .. } => split(input, streams),
        Op::Project { input, exprs } => {
            let mut s = split(input, streams)?;
            s.keys = exprs.iter().map(|e| key_of(e, &s.keys)).collect();
            Ok(s)
        }
        Op::Union { inputs } => {
            let mut branches = inputs.iter().map(|i| split(i, streams));
            let mut s = branches
                .next()
                .ok_or_else(|| "a union without branches".to_string())??;
            for b in branches {
                let b = b?;
                same_partitions(&s, &b)?;
                for (k, other) in s.keys.iter_mut().zip(&b.keys) {
                    if *k != *other {
                        *k = None;
                    }
                }
                s.stateful.extend(b.stateful);
            }
            Ok(s)
        }
        Op::Aggregate { input, agg } => {
            let s = split(input, streams)?;
            let keys: Vec<Option<KeyHash>> = agg
                .layout
                .iter()
                .map(|g| match g {
                    // A partition key only if every grouping set keeps it.
                    GroupCol::Key(i) => {
                        let first = key_of(&agg.key_sets[0][*i], &s.keys);
                        agg.key_sets
                            .iter()
                            .all(|set| key_of(&set[*i], &s.keys) == first)
                            .then_some(first)
                            .flatten()
                    }
                    GroupCol::WindowStart | GroupCol::WindowEnd => None,
                })
                .chain(std::iter::repeat(None))
                .take(node.schema.fields().len())
                .collect();
            let Some(by) = keys.iter().position(Option::is_some) else {
                return Err(format!(
                    "aggregate #{} does not group by a partition key of its streams, so a \
                     group's rows may be in every partition",
                    agg.id
                ));
            };
            let mut stateful = s.stateful;
            stateful.push(format!(
                "aggregate #{} groups by {}, its rows' partition key",
                agg.id,
                name(by)
            ));
            Ok(Split {
                partitions: s.partitions,
                keys,
                stateful,
            })
        }
        Op::TopN { input, top } => {
            let mut s = split(input, streams)?;
            let Some(by) = top
                .partition_by()
                .iter()
                .find_map(|e| key_of(e, &s.keys).and(key_column(e)))
            else {
                return Err(format!(
                    "top-N #{} does not rank within a partition key of its streams (PARTITION \
                     BY), so its groups' rows may be in every partition",
                    top.id
                ));
            };
            s.stateful.push(format!(
                "top-N #{} ranks per {}, its rows' partition key",
                top.id,
                input.schema.field(by).name()
            ));
            // The rank is the last column.
            s.keys.push(None);
            Ok(s)
        }
        Op::Over { input, over } => {
            let mut s = split(input, streams)?;
            let Some(by) = over
                .partition_by()
                .find_map(|e| key_of(e, &s.keys).and(key_column(e)))
            else {
                return Err(format!(
                    "windowed aggregate #{} does not partition its frames by a partition key \
                     of its streams (PARTITION BY), so a frame's rows may be in every partition",
                    over.id
                ));
            };
            s.stateful.push(format!(
                "windowed aggregate #{} frames rows per {}, its rows' partition key",
                over.id,
                input.schema.field(by).name()
            ));
            s.keys.extend(over.functions().iter().map(|_| None));
            Ok(s)
        }
        Op::Join { left, right, join } => {
            let (l, r) = (split(left, streams)?, split(right, streams)?);
            same_partitions(&l, &r)?;
            let [lk, rk] = join.keys();
            let pair = lk.iter().zip(rk).find_map(|(a, b)| {
                let hash = key_of(a, &l.keys)?;
                (key_of(b, &r.keys) == Some(hash)).then_some((key_column(a)?, key_column(b)?))
            });
            let Some((a, b)) = pair else {
                return Err(format!(
                    "join #{} does not pair the partition keys of both sides in its equality \
                     keys, so matching rows may be in different partitions",
                    join.id()
                ));
            };
            let mut stateful = l.stateful;
            stateful.extend(r.stateful);
            stateful.push(format!(
                "join #{} matches {} with {}, the partition keys of its sides",
                join.id(),
                left.schema.field(a).name(),
                right.schema.field(b).name()
            ));
            // An outer join pads the rows of its preserved side with NULLs for the other
            // side's columns, whatever their partition: those are no partition key.
            let unless = |padded: bool, keys: Vec<Option<KeyHash>>| {
                if padded { vec![None; keys.len()] } else { keys }
            };
            let keys = match join.output() {
                Output::Semi(0) | Output::Anti(0) => l.keys,
                Output::Semi(_) | Output::Anti(_) => r.keys,
                Output::Pairs(preserved) => {
                    let mut keys = unless(preserved.right, l.keys);
                    keys.extend(unless(preserved.left, r.keys));
                    keys
                }
            };
            Ok(Split {
                partitions: l.partitions,
                keys,
                stateful,
            })
        }
    }
}

/// Whether two inputs have the same number of partitions (else partition `p` of one holds
/// other keys than partition `p` of the other).
fn same_partitions(a: &Split, b: &Split) -> Result<(), String> {
    if a.partitions == b.partitions {
        return Ok(());
    }
    Err(format!(
        "its inputs have {} and {} partitions: partition p of one does not hold the keys of \
         partition p of the other",
        a.partitions, b.partitions
    ))
}

/// The input column an expression is, if it is a bare column or one widened to `BIGINT`
/// (as DataFusion casts the narrower side of an equality): integers hash as their value
/// widened to `i64`, so the cast keeps the partition.
fn key_column(e: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    let any: &dyn Any = e.as_ref();
    match any.downcast_ref::<CastExpr>() {
        Some(cast) if *cast.cast_type() == DataType::Int64 => bare_column(cast.expr()),
        Some(_) => None,
        None => bare_column(e),
    }
}

/// Whether an expression over an input with partition keys `keys` is one of them.
fn key_of(e: &Arc<dyn PhysicalExpr>, keys: &[Option<KeyHash>]) -> Option<KeyHash> {
    let c = key_column(e)?;
    keys.get(c)
        .copied()
        .flatten()
        .filter(|&k| k == KeyHash::Integer || bare_column(e).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{ViewCatalog, ViewStatement, parse_view_statement};
    use freshet_streams::ddl::{StreamStatement, parse_stream_statement};

    fn stream(ddl: &str) -> StreamDef {
        match parse_stream_statement(ddl).expect("valid DDL") {
            Some(StreamStatement::Create { def, .. }) => def,
            _ => panic!("not a CREATE STREAM: {ddl}"),
        }
    }

    /// Bids by auction in 4 partitions, auctions by id in 4, people by id in 2, clicks
    /// round robin in 4.
    fn streams() -> Vec<StreamDef> {
        vec![
            stream(
                "CREATE STREAM bid (auction BIGINT, bidder BIGINT, price BIGINT, ts TIMESTAMP, \
                 WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
                 WITH (partitions = 4, partition_key = 'auction')",
            ),
            stream(
                "CREATE STREAM auction (id INT, seller BIGINT, category TEXT, ts TIMESTAMP, \
                 WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
                 WITH (partitions = 4, partition_key = 'id')",
            ),
            stream(
                "CREATE STREAM person (id BIGINT, name TEXT, ts TIMESTAMP, \
                 WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
                 WITH (partitions = 2, partition_key = 'id')",
            ),
            stream(
                "CREATE STREAM click (page TEXT, auction BIGINT, ts TIMESTAMP, \
                 WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH (partitions = 4)",
            ),
        ]
    }

    fn of(query: &str) -> Parallelism {
        let sql = format!("CREATE VIEW v AS {query}");
        let Some(ViewStatement::Create { def, .. }) = parse_view_statement(&sql).expect("parses")
        else {
            panic!("not a CREATE VIEW");
        };
        let streams = streams();
        let compiled = crate::compile_view_over(&streams, &ViewCatalog::default(), &def)
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        parallelism(&compiled.root, &streams)
    }

    #[track_caller]
    fn splits(query: &str, because: &str) {
        match of(query) {
            Parallelism::PerPartition { partitions, reason } => {
                assert_eq!(partitions, 4, "{query}");
                assert!(reason.contains(because), "{query}: {reason}");
            }
            other => panic!("{query}: {other}"),
        }
    }

    #[track_caller]
    fn single(query: &str, because: &str) {
        match of(query) {
            Parallelism::Single { reason } => {
                assert!(reason.contains(because), "{query}: {reason}")
            }
            other => panic!("{query}: {other}"),
        }
    }

    #[test]
    fn stateless_views_split_whatever_the_partition_key() {
        splits(
            "SELECT auction, price * 2 AS p FROM bid WHERE price > 10",
            "stateless",
        );
        splits("SELECT page FROM click WHERE auction > 3", "stateless");
        splits(
            "SELECT auction, ts FROM bid UNION ALL SELECT auction, ts FROM click",
            "stateless",
        );
    }

    #[test]
    fn aggregates_split_when_grouped_by_the_partition_key() {
        splits(
            "SELECT auction, window_start, window_end, count(*) AS n, max(price) AS top \
             FROM TUMBLE(bid, ts, INTERVAL '10' SECOND) \
             GROUP BY auction, window_start, window_end",
            "aggregate #1 groups by auction",
        );
        // Renamed by a projection below the aggregate, and unbounded.
        splits(
            "SELECT a, count(*) AS n FROM (SELECT auction AS a, price FROM bid) GROUP BY a",
            "groups by a",
        );
        single(
            "SELECT bidder, count(*) AS n FROM bid GROUP BY bidder",
            "does not group by a partition key",
        );
        // A computed key is not the partition key.
        single(
            "SELECT auction + 1 AS k, count(*) AS n FROM bid GROUP BY auction + 1",
            "does not group by a partition key",
        );
        // A round-robin stream has no partition key.
        single(
            "SELECT auction, count(*) AS n FROM click GROUP BY auction",
            "does not group by a partition key",
        );
        // An aggregate over an aggregate keyed by the partition key still splits ...
        splits(
            "SELECT auction, window_start, window_end, max(n) AS m FROM (SELECT auction, \
             window_start, window_end, count(*) AS n \
             FROM TUMBLE(bid, ts, INTERVAL '10' SECOND) \
             GROUP BY auction, window_start, window_end) \
             GROUP BY auction, window_start, window_end",
            "aggregate #2 groups by auction",
        );
    }

    #[test]
    fn joins_split_when_they_pair_the_partition_keys() {
        // BIGINT and INT keys hash alike.
        splits(
            "SELECT b.auction, b.price, a.seller FROM bid b JOIN auction a ON b.auction = a.id",
            "matches auction with id",
        );
        single(
            "SELECT b.price, a.seller FROM bid b JOIN auction a ON b.bidder = a.id",
            "does not pair the partition keys",
        );
        single(
            "SELECT b.price, p.name FROM bid b JOIN person p ON b.auction = p.id",
            "4 and 2 partitions",
        );
    }

    #[test]
    fn aggregates_over_rows_split_when_framed_per_partition_key() {
        let over = |by: &str| {
            format!(
                "SELECT auction, bidder, AVG(price) OVER (PARTITION BY {by} ORDER BY ts \
                 ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS a FROM bid"
            )
        };
        splits(
            &over("auction"),
            "windowed aggregate #1 frames rows per auction",
        );
        single(
            &over("bidder"),
            "does not partition its frames by a partition key",
        );
    }

    #[test]
    fn an_outer_joins_padded_side_holds_no_partition_key() {
        let joined = |kind: &str, by: &str| {
            format!(
                "SELECT {by} AS k, window_start, window_end, count(*) AS n FROM (\
                 SELECT b.auction, a.id, b.window_start, b.window_end \
                 FROM TUMBLE(bid, ts, INTERVAL '10' SECOND) b {kind} JOIN \
                 TUMBLE(auction, ts, INTERVAL '10' SECOND) a \
                 ON b.auction = a.id AND b.window_start = a.window_start \
                 AND b.window_end = a.window_end) \
                 GROUP BY {by}, window_start, window_end"
            )
        };
        splits(&joined("", "id"), "groups by id");
        splits(&joined("LEFT", "auction"), "groups by auction");
        // Unmatched bids of every partition have a NULL id.
        single(&joined("LEFT", "id"), "does not group by a partition key");
        single(
            &joined("FULL", "auction"),
            "does not group by a partition key",
        );
    }

    #[test]
    fn top_n_splits_when_ranked_within_the_partition_key() {
        splits(
            "SELECT auction, price FROM (SELECT auction, price, ROW_NUMBER() OVER \
             (PARTITION BY auction ORDER BY price DESC) AS rn FROM bid) WHERE rn <= 3",
            "ranks per auction",
        );
        single(
            "SELECT bidder, price FROM (SELECT bidder, price, ROW_NUMBER() OVER \
             (PARTITION BY bidder ORDER BY price DESC) AS rn FROM bid) WHERE rn <= 3",
            "does not rank within a partition key",
        );
    }
}
