//! `TUMBLE` and `HOP` for batch queries: plain DataFusion plans over the log, so DataFusion
//! executes the whole view. Window bounds are computed on integer milliseconds exactly as the
//! streaming operators compute them (`WindowKind::window`): epoch-aligned, half-open
//! `[window_start, window_end)`, a hopping row copied into each of its `size / slide`
//! windows (an array of window starts per row, unnested).

use arrow_schema::DataType;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Column;
use datafusion::datasource::provider_as_source;
use datafusion::functions_nested::expr_fn::make_array;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, lit};
use freshet_streams::StreamDef;
use std::collections::HashMap;
use std::sync::Arc;

use super::log_table::LogTable;
use crate::sql::{window_arguments, window_time_type};
use crate::window::WindowKind;

/// `tumble`, `hop` or `session` over log tables.
#[derive(Debug)]
pub struct BatchWindowFunction {
    pub name: &'static str,
    pub streams: Arc<HashMap<String, StreamDef>>,
    /// Each stream's table (its log, and its history files if any).
    pub tables: Arc<HashMap<String, Arc<LogTable>>>,
}

/// Name of the window starts column of a hopping expansion (never visible to users).
const HOP_STARTS: &str = "__freshet_hop_start";

fn ms(e: Expr) -> Expr {
    cast(
        cast(
            e,
            DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None),
        ),
        DataType::Int64,
    )
}

/// `t - t mod step`, with the remainder taken towards negative infinity.
fn floor_to(t: Expr, step: i64) -> Expr {
    t.clone() - ((t % lit(step) + lit(step)) % lit(step))
}

impl TableFunctionImpl for BatchWindowFunction {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let (def, time_column, kind) = window_arguments(self.name, &self.streams, args.exprs())?;
        let table = self.tables.get(&def.name).cloned().ok_or_else(|| {
            datafusion::error::DataFusionError::Plan(format!("unknown stream '{}'", def.name))
        })?;
        let scan = LogicalPlanBuilder::scan(&def.name, provider_as_source(table), None)?;
        let time = ms(column(&def.name, &def.columns[time_column].name));
        let columns: Vec<Expr> = def
            .columns
            .iter()
            .map(|c| column(&def.name, &c.name))
            .collect();
        let as_time = |e: Expr| cast(e, window_time_type());
        let (builder, start, size, columns) = match kind {
            WindowKind::Tumble { size_ms } => (scan, floor_to(time, size_ms), size_ms, columns),
            WindowKind::Hop { slide_ms, size_ms } => {
                // Each row's window starts as an array, unnested into one row per window:
                // streaming, unlike a join with the window indexes.
                let n = size_ms / slide_ms;
                let last = floor_to(time, slide_ms);
                let starts = make_array(
                    (0..n)
                        .map(|k| last.clone() - lit((n - 1 - k) * slide_ms))
                        .collect(),
                );
                let mut with_starts = columns.clone();
                with_starts.push(starts.alias(HOP_STARTS));
                let expanded = scan
                    .project(with_starts)?
                    .unnest_column(Column::from_name(HOP_STARTS))?;
                let start = Expr::Column(Column::from_name(HOP_STARTS));
                let columns = def
                    .columns
                    .iter()
                    .map(|c| Expr::Column(Column::from_name(c.name.as_str())))
                    .collect();
                (expanded, start, size_ms, columns)
            }
            WindowKind::Session { .. } => {
                return Err(datafusion::error::DataFusionError::NotImplemented(
                    "SESSION in batch needs the query that reads it to group by plain key \
                     columns and window_start, window_end: a session's bounds depend on its \
                     keys"
                        .into(),
                ));
            }
        };
        let mut projection = columns;
        projection.push(as_time(start.clone()).alias("window_start"));
        projection.push(as_time(start + lit(size)).alias("window_end"));
        let plan = builder.project(projection)?.build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

/// Column `name` of `table`, taken as written (no case folding).
fn column(table: &str, name: &str) -> Expr {
    Expr::Column(Column::new(Some(table), name))
}
