//! Aggregates over whole partitions, `agg(x) OVER (PARTITION BY k)` (no frame, or one from
//! `UNBOUNDED PRECEDING` to `UNBOUNDED FOLLOWING`): every row gets its partition's
//! aggregate, which changes with each row the partition gains. The window is planned again
//! as what it means, a join of the rows with their partition's row of `SELECT k, agg(x)
//! ... GROUP BY k` (NULL keys matching, as rows with NULL keys share a partition), which
//! the operators run incrementally: an unbounded GROUP BY's rows change, and each new
//! version joins its partition's rows again. Without `PARTITION BY`, the aggregate has no
//! GROUP BY and the join is with its one row.

use crate::error::{EngineError, Result};
use datafusion::common::{Column, NullEquality};
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::{
    Expr, JoinConstraint, JoinType, LogicalPlan, LogicalPlanBuilder, Window,
    WindowFunctionDefinition, logical_plan::Join,
};
use std::sync::Arc;

/// The alias of the partitions' aggregate in the plan.
const PARTITIONS: &str = "__partition";

/// Whether `e` is an aggregate function over its whole partition.
fn over_whole_partition(e: &Expr) -> Option<&WindowFunction> {
    let inner = match e {
        Expr::Alias(a) => a.expr.as_ref(),
        other => other,
    };
    match inner {
        Expr::WindowFunction(wf)
            if matches!(wf.fun, WindowFunctionDefinition::AggregateUDF(_))
                && wf.params.window_frame.start_bound.is_unbounded()
                && wf.params.window_frame.end_bound.is_unbounded() =>
        {
            Some(wf)
        }
        _ => None,
    }
}

/// `w` planned as a join of its rows with their partitions' aggregates, if every function
/// of it is an aggregate over its whole partition (`None` if none is).
pub fn as_join(w: &Window) -> Result<Option<LogicalPlan>> {
    let whole: Vec<Option<&WindowFunction>> =
        w.window_expr.iter().map(over_whole_partition).collect();
    if whole.iter().all(Option::is_none) {
        return Ok(None);
    }
    let Some(functions) = whole.into_iter().collect::<Option<Vec<_>>>() else {
        return Err(crate::error::unsupported(
            "aggregates over whole partitions (OVER (PARTITION BY ...) without a frame) \
             together with other window functions in one SELECT; compute them in two views",
        ));
    };
    let partition_by = &functions[0].params.partition_by;
    if functions
        .iter()
        .any(|f| &f.params.partition_by != partition_by)
    {
        return Err(crate::error::unsupported(
            "aggregates over whole partitions with different PARTITION BY in one SELECT; \
             compute them in two views",
        ));
    }
    let keys: Vec<Expr> = partition_by
        .iter()
        .enumerate()
        .map(|(i, e)| e.clone().alias(format!("{PARTITIONS}_key{i}")))
        .collect();
    // The order of the rows changes only an aggregate that lists them (ARRAY_AGG,
    // STRING_AGG), which keeps the window's ORDER BY; the others refuse one.
    let aggregates: Vec<Expr> = functions
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let WindowFunctionDefinition::AggregateUDF(udaf) = &f.fun else {
                unreachable!("over_whole_partition keeps aggregate functions");
            };
            let lists = matches!(udaf.name(), "array_agg" | "string_agg");
            Expr::AggregateFunction(AggregateFunction::new_udf(
                udaf.clone(),
                f.params.args.clone(),
                f.params.distinct,
                f.params.filter.clone(),
                if lists {
                    f.params.order_by.clone()
                } else {
                    Vec::new()
                },
                f.params.null_treatment,
            ))
            .alias(format!("{PARTITIONS}_value{i}"))
        })
        .collect();
    let partitions = LogicalPlanBuilder::from(w.input.as_ref().clone())
        .aggregate(keys, aggregates)?
        .alias(PARTITIONS)?
        .build()?;
    let on = partition_by
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let key = Column::new(Some(PARTITIONS), format!("{PARTITIONS}_key{i}"));
            (e.clone(), Expr::Column(key))
        })
        .collect();
    let joined = Join::try_new(
        w.input.clone(),
        Arc::new(partitions),
        on,
        None,
        JoinType::Inner,
        JoinConstraint::On,
        NullEquality::NullEqualsNull,
        false,
    )?;
    // The window's columns: the input's, then each function's value under its name.
    let width = w.input.schema().fields().len();
    let mut columns: Vec<Expr> = w
        .input
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    for i in 0..functions.len() {
        let name = w.schema.field(width + i).name();
        let value = Column::new(Some(PARTITIONS), format!("{PARTITIONS}_value{i}"));
        columns.push(Expr::Column(value).alias(name));
    }
    let plan = LogicalPlanBuilder::from(LogicalPlan::Join(joined))
        .project(columns)?
        .build()?;
    if plan.schema().fields().len() != w.schema.fields().len() {
        return Err(EngineError::Bug(
            "a whole-partition window planned with other columns".into(),
        ));
    }
    Ok(Some(plan))
}
