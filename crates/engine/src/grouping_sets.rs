//! GROUPING SETS, CUBE and ROLLUP: which GROUP BY expressions each grouping set keeps, and
//! the `__grouping_id` DataFusion gives the set's rows (so that a view's rows equal a batch
//! run's, `GROUPING(...)` included, which DataFusion computes from that column).

use crate::error::{EngineError, Result, unsupported};
use datafusion::logical_expr::{Expr, GroupingSet};
use std::collections::HashMap;

/// The most grouping sets one GROUP BY may have (DataFusion's limit for mixed ones): each
/// input row is folded into one group per set.
pub const GROUPING_SETS_MAX: usize = 4096;

/// One grouping set.
pub struct Set {
    /// Per GROUP BY expression ([`Grouping::exprs`]): whether the set leaves it out (its
    /// rows have NULL there).
    pub leaves_out: Vec<bool>,
    /// Its rows' `__grouping_id`: one bit per expression left out, the first expression's
    /// the highest, then above those how many identical sets came before it (DataFusion's
    /// `group_id_array`).
    pub id: u64,
}

/// An aggregate's GROUP BY.
pub struct Grouping {
    /// The distinct GROUP BY expressions, in the order of the aggregate's output.
    pub exprs: Vec<Expr>,
    /// The grouping sets, if the GROUP BY has them (the output then has a
    /// `__grouping_id` column after `exprs`); without them, one set of every expression.
    pub sets: Option<Vec<Set>>,
}

/// The GROUP BY of `group_expr` (DataFusion's: one grouping set alone when it has any).
pub fn grouping(group_expr: &[Expr]) -> Result<Grouping> {
    let set = match group_expr {
        [Expr::GroupingSet(set)] => set,
        _ if group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) => {
            return Err(unsupported(
                "grouping sets mixed with other GROUP BY expressions",
            ));
        }
        _ => {
            return Ok(Grouping {
                exprs: group_expr.to_vec(),
                sets: None,
            });
        }
    };
    let exprs: Vec<Expr> = set.distinct_expr().into_iter().cloned().collect();
    let n = exprs.len();
    let count = match set {
        GroupingSet::Rollup(_) => n + 1,
        GroupingSet::Cube(_) => 1usize.checked_shl(n as u32).unwrap_or(usize::MAX),
        GroupingSet::GroupingSets(sets) => sets.len(),
    };
    if count > GROUPING_SETS_MAX {
        return Err(EngineError::ResourceLimit(format!(
            "{count} grouping sets; at most {GROUPING_SETS_MAX} are supported (each input row \
             is folded into one group per set)"
        )));
    }
    let patterns: Vec<Vec<bool>> = match set {
        GroupingSet::Rollup(_) => (0..=n)
            .map(|kept| (0..n).map(|i| i >= kept).collect())
            .collect(),
        GroupingSet::Cube(_) => (0..1u64 << n)
            .map(|mask| (0..n).map(|i| mask >> i & 1 == 1).collect())
            .collect(),
        GroupingSet::GroupingSets(sets) => sets
            .iter()
            .map(|kept| exprs.iter().map(|e| !kept.contains(e)).collect())
            .collect(),
    };
    let mut seen: HashMap<Vec<bool>, u64> = HashMap::new();
    for p in &patterns {
        *seen.entry(p.clone()).or_insert(0) += 1;
    }
    // The ids hold a bit per expression and, above them, the highest repeat number.
    let repeats = seen.values().max().map_or(0, |c| c - 1);
    if n + (u64::BITS - repeats.leading_zeros()) as usize > 64 {
        return Err(unsupported(format!(
            "grouping sets over {n} expressions repeated {repeats} times (their ids would \
             need more than 64 bits)"
        )));
    }
    seen.clear();
    let sets = patterns
        .into_iter()
        .map(|leaves_out| {
            let ordinal = seen.entry(leaves_out.clone()).or_insert(0);
            let bits = leaves_out
                .iter()
                .fold(0u64, |id, &out| id << 1 | out as u64);
            let id = bits | *ordinal << n;
            *ordinal += 1;
            Set { leaves_out, id }
        })
        .collect();
    Ok(Grouping {
        exprs,
        sets: Some(sets),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::col;

    fn ids(set: GroupingSet) -> Vec<(Vec<bool>, u64)> {
        let g = grouping(&[Expr::GroupingSet(set)]).unwrap();
        g.sets
            .unwrap()
            .into_iter()
            .map(|s| (s.leaves_out, s.id))
            .collect()
    }

    #[test]
    fn rollup_drops_trailing_expressions_first() {
        let sets = ids(GroupingSet::Rollup(vec![col("a"), col("b")]));
        assert_eq!(
            sets,
            vec![
                (vec![true, true], 0b11),
                (vec![false, true], 0b01),
                (vec![false, false], 0b00),
            ]
        );
    }

    #[test]
    fn cube_has_every_subset_once() {
        let mut sets: Vec<u64> = ids(GroupingSet::Cube(vec![col("a"), col("b"), col("c")]))
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        sets.sort();
        assert_eq!(sets, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn repeated_sets_are_numbered_above_the_bits() {
        let sets = ids(GroupingSet::GroupingSets(vec![
            vec![col("a")],
            vec![col("a"), col("b")],
            vec![col("a")],
        ]));
        assert_eq!(
            sets,
            vec![
                (vec![false, true], 0b001),
                (vec![false, false], 0b000),
                (vec![false, true], 0b101),
            ]
        );
    }
}
