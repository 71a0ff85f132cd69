//! Time bounds of a join's condition: `a.t BETWEEN b.t - INTERVAL '10' SECOND AND b.t`
//! and the like, which let a join forget a row once the other side's watermark says no
//! row it could still match will come (Nexmark q7).
//!
//! The condition's conjuncts that compare one side's timestamp column with the other's,
//! each plus or minus a constant interval, bound the difference `d = l.t - r.t` of a
//! matching pair: `lo <= d <= hi`. A left row at `tl` can only match right rows with
//! `r.t <= tl - lo`; once every right row still to come has `r.t` at or above a floor `F`
//! (its watermark) and `tl - lo < F`, the left row matches nothing more and is freed. A
//! right row at `tr` likewise, once the left floor passes `tr + hi`.

use arrow_schema::TimeUnit;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

/// A join condition's bounds on `l.t - r.t`, in milliseconds, for one pair of columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalBounds {
    /// The timestamp column compared on each side (index into that side's columns).
    pub columns: [usize; 2],
    /// `l.t - r.t >= lo`: frees left rows.
    pub lo: Option<i64>,
    /// `l.t - r.t <= hi`: frees right rows.
    pub hi: Option<i64>,
}

/// One side of a comparison: a column of the left (0) or right (1) input, plus nanoseconds.
struct Term {
    side: usize,
    column: usize,
    plus_ns: i128,
}

/// The bounds the conjuncts of `filter` (over the left columns, then the right) put on
/// the first pair of timestamp columns they compare, if any.
pub fn interval_bounds(filter: &Expr, left: &DFSchema, right: &DFSchema) -> Option<IntervalBounds> {
    let mut found: Option<IntervalBounds> = None;
    for conjunct in datafusion::logical_expr::utils::split_conjunction(filter) {
        let comparisons: Vec<(&Expr, Operator, &Expr)> = match conjunct {
            Expr::Between(b) if !b.negated => vec![
                (&b.expr, Operator::GtEq, &b.low),
                (&b.expr, Operator::LtEq, &b.high),
            ],
            Expr::BinaryExpr(BinaryExpr {
                left: a,
                op,
                right: b,
            }) => vec![(a, *op, b)],
            _ => continue,
        };
        for (a, op, b) in comparisons {
            let (Some(a), Some(b)) = (term(a, left, right), term(b, left, right)) else {
                continue;
            };
            if a.side == b.side || mirrored(op).is_none() {
                continue;
            }
            // As `x.t + cx  op  y.t + cy` with x the left side: `l.t - r.t  op'  c`.
            let (l, r, op) = if a.side == 0 {
                (a, b, op)
            } else {
                (b, a, mirrored(op)?)
            };
            let c = r.plus_ns - l.plus_ns;
            let columns = [l.column, r.column];
            let bounds = found.get_or_insert(IntervalBounds {
                columns,
                lo: None,
                hi: None,
            });
            if bounds.columns != columns {
                continue;
            }
            // Rounded outwards to whole milliseconds: a bound may only be looser.
            match op {
                Operator::GtEq | Operator::Gt => {
                    let lo = c.div_euclid(1_000_000) as i64;
                    bounds.lo = Some(bounds.lo.map_or(lo, |old| old.max(lo)));
                }
                Operator::LtEq | Operator::Lt => {
                    let hi = (c + 999_999).div_euclid(1_000_000) as i64;
                    bounds.hi = Some(bounds.hi.map_or(hi, |old| old.min(hi)));
                }
                Operator::Eq => {
                    let (lo, hi) = (
                        c.div_euclid(1_000_000) as i64,
                        (c + 999_999).div_euclid(1_000_000) as i64,
                    );
                    bounds.lo = Some(bounds.lo.map_or(lo, |old| old.max(lo)));
                    bounds.hi = Some(bounds.hi.map_or(hi, |old| old.min(hi)));
                }
                _ => {}
            }
        }
    }
    found.filter(|b| b.lo.is_some() || b.hi.is_some())
}

/// `a op b` as `b op' a`.
fn mirrored(op: Operator) -> Option<Operator> {
    Some(match op {
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        Operator::Eq => Operator::Eq,
        _ => return None,
    })
}

/// `e` as a timestamp column of one side plus a constant interval, if it is one.
fn term(e: &Expr, left: &DFSchema, right: &DFSchema) -> Option<Term> {
    match e {
        Expr::Column(c) => {
            let (side, column) = match left.maybe_index_of_column(c) {
                Some(i) => (0, i),
                None => (1, right.maybe_index_of_column(c)?),
            };
            let schema = [left, right][side];
            matches!(
                schema.field(column).data_type(),
                arrow_schema::DataType::Timestamp(_, _)
            )
            .then_some(Term {
                side,
                column,
                plus_ns: 0,
            })
        }
        Expr::Alias(a) => term(&a.expr, left, right),
        // A timestamp in a unit as fine as milliseconds is the same time (to the slack
        // of a millisecond the join allows); a coarser one is not.
        Expr::Cast(c)
            if matches!(
                c.field.data_type(),
                arrow_schema::DataType::Timestamp(
                    TimeUnit::Millisecond | TimeUnit::Microsecond | TimeUnit::Nanosecond,
                    _
                )
            ) =>
        {
            term(&c.expr, left, right)
        }
        Expr::BinaryExpr(BinaryExpr {
            left: a,
            op,
            right: b,
        }) if matches!(op, Operator::Plus | Operator::Minus) => {
            let mut t = term(a, left, right)?;
            let Expr::Literal(b, _) = b.as_ref() else {
                return None;
            };
            let ns = interval_ns(b)?;
            t.plus_ns += if *op == Operator::Plus { ns } else { -ns };
            Some(t)
        }
        _ => None,
    }
}

/// A fixed-length interval in nanoseconds (months have no fixed length).
pub fn interval_ns(value: &ScalarValue) -> Option<i128> {
    match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            Some(i128::from(v.days) * 86_400_000_000_000 + i128::from(v.nanoseconds))
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(i128::from(v.days) * 86_400_000_000_000 + i128::from(v.milliseconds) * 1_000_000)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    use datafusion::logical_expr::{col, lit};
    use datafusion::prelude::Expr;

    fn schema(qualifier: &str) -> DFSchema {
        DFSchema::try_from_qualified_schema(
            qualifier,
            &Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), false),
            ]),
        )
        .unwrap()
    }

    fn secs(s: i64) -> Expr {
        lit(ScalarValue::new_interval_mdn(0, 0, s * 1_000_000_000))
    }

    fn bounds(e: Expr) -> Option<IntervalBounds> {
        interval_bounds(&e, &schema("l"), &schema("r"))
    }

    #[test]
    fn between_bounds_the_difference_both_ways() {
        let e = col("l.t").between(col("r.t") - secs(10), col("r.t"));
        assert_eq!(
            bounds(e),
            Some(IntervalBounds {
                columns: [1, 1],
                lo: Some(-10_000),
                hi: Some(0)
            })
        );
    }

    #[test]
    fn comparisons_written_either_way_round_bound_one_side_each() {
        // r.t + 5s > l.t  ⇔  l.t - r.t < 5s.
        let e = (col("r.t") + secs(5))
            .gt(col("l.t"))
            .and(col("l.id").eq(col("r.id")));
        assert_eq!(
            bounds(e),
            Some(IntervalBounds {
                columns: [1, 1],
                lo: None,
                hi: Some(5_000)
            })
        );
        let e = col("r.t").lt_eq(col("l.t") - secs(1));
        assert_eq!(bounds(e).unwrap().lo, Some(1_000));
    }

    #[test]
    fn other_conditions_bound_nothing() {
        assert_eq!(bounds(col("l.id").gt(col("r.id"))), None);
        assert_eq!(
            bounds(col("l.t").gt(lit(ScalarValue::Int64(Some(3))))),
            None
        );
        let months = lit(ScalarValue::new_interval_mdn(1, 0, 0));
        assert_eq!(bounds(col("l.t").gt(col("r.t") - months)), None);
        assert_eq!(
            bounds(col("l.t").not_between(col("r.t") - secs(1), col("r.t"))),
            None
        );
    }
}
