//! Planning a view's SQL with DataFusion.
//!
//! Streams are registered as tables whose scans refuse to run (a streaming view never asks
//! DataFusion to execute them), the window table functions `tumble`, `hop` and `session`
//! are registered as DataFusion table functions returning a marker table that carries the
//! window's kind, and earlier views are registered as DataFusion views, so that a view over
//! a view is planned as one tree. DataFusion parses, resolves names, checks types, coerces
//! and optimizes; `compile` turns the optimized logical plan into streaming operators.

use crate::error::{EngineError, Result};
use crate::views::ViewDef;
use crate::window::WindowKind;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::TableType;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use freshet_streams::StreamDef;
use std::collections::HashMap;
use std::sync::Arc;

/// The type of `window_start` and `window_end`.
pub fn window_time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// A stream as DataFusion sees it while planning a streaming view: the stream itself, or
/// `TUMBLE`/`HOP`/`SESSION` over it (the stream's columns plus `window_start` and
/// `window_end`). Its scan refuses to run: Freshet's operators read the stream.
#[derive(Debug)]
pub struct StreamTable {
    /// The stream.
    pub def: StreamDef,
    /// The window function applied, with the index of its time column in the stream.
    pub window: Option<(usize, WindowKind)>,
    schema: SchemaRef,
}

impl StreamTable {
    /// The stream without a window.
    pub fn plain(def: &StreamDef) -> StreamTable {
        StreamTable {
            def: def.clone(),
            window: None,
            schema: def.schema(),
        }
    }
}

#[async_trait]
impl TableProvider for StreamTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        datafusion::common::not_impl_err!(
            "stream '{}' is read by Freshet's streaming operators, not scanned",
            self.def.name
        )
    }
}

#[derive(Debug)]
struct WindowFunction {
    name: &'static str,
    streams: Arc<HashMap<String, StreamDef>>,
}

fn interval_ms(function: &str, e: &Expr) -> datafusion::error::Result<i64> {
    let bad = || {
        datafusion::error::DataFusionError::Plan(format!(
            "{function}: expected an INTERVAL such as INTERVAL '10' SECOND, found {e}"
        ))
    };
    let Expr::Literal(value, _) = e else {
        return Err(bad());
    };
    if let Some(ns) = crate::join::interval_ns(value) {
        return Ok((ns / 1_000_000) as i64);
    }
    match value {
        ScalarValue::Utf8(Some(s)) => freshet_streams::duration::parse_duration(s)
            .map(|d| d.as_millis() as i64)
            .map_err(|m| datafusion::error::DataFusionError::Plan(format!("{function}: {m}"))),
        _ => Err(bad()),
    }
}

fn column_name(function: &str, what: &str, e: &Expr) -> datafusion::error::Result<String> {
    match e {
        Expr::Column(c) => Ok(c.name.clone()),
        other => Err(datafusion::error::DataFusionError::Plan(format!(
            "{function}: the {what} must be a name, found {other}"
        ))),
    }
}

/// A window table function's arguments, checked: the stream, the index of its event-time
/// column and the window.
pub fn window_arguments(
    name: &str,
    streams: &HashMap<String, StreamDef>,
    exprs: &[Expr],
) -> datafusion::error::Result<(StreamDef, usize, WindowKind)> {
    let f = name.to_ascii_uppercase();
    let plan_err = |m: String| datafusion::error::DataFusionError::Plan(m);
    let usage = match name {
        "tumble" => "TUMBLE(stream, time_column, INTERVAL size)",
        "hop" => "HOP(stream, time_column, INTERVAL slide, INTERVAL size)",
        _ => "SESSION(stream, time_column, INTERVAL gap)",
    };
    let arity = if name == "hop" { 4 } else { 3 };
    if exprs.len() != arity {
        return Err(plan_err(format!(
            "{f} takes {arity} arguments: {usage}; got {}",
            exprs.len()
        )));
    }
    let stream = column_name(&f, "stream", &exprs[0])?;
    let def = streams.get(&stream).ok_or_else(|| {
        plan_err(format!(
            "{f}: unknown stream '{stream}' (windows apply to streams; a view over a \
             windowed view groups by its window_start/window_end columns)"
        ))
    })?;
    let time = column_name(&f, "time column", &exprs[1])?;
    let time_column = def
        .column_index(&time)
        .ok_or_else(|| plan_err(format!("{f}: stream '{stream}' has no column '{time}'")))?;
    if !matches!(
        def.columns[time_column].data_type,
        DataType::Timestamp(_, _)
    ) {
        return Err(plan_err(format!(
            "{f}: window functions need an event-time (TIMESTAMP) column; \
             '{time}' is {}",
            def.columns[time_column].data_type
        )));
    }
    if time != def.event_time {
        return Err(plan_err(format!(
            "{f}: '{time}' is not the event-time column of '{stream}' (its watermark is \
             declared on '{}')",
            def.event_time
        )));
    }
    let kind = match name {
        "tumble" => WindowKind::Tumble {
            size_ms: interval_ms(&f, &exprs[2])?,
        },
        "hop" => WindowKind::Hop {
            slide_ms: interval_ms(&f, &exprs[2])?,
            size_ms: interval_ms(&f, &exprs[3])?,
        },
        _ => WindowKind::Session {
            gap_ms: interval_ms(&f, &exprs[2])?,
        },
    }
    .validate()
    .map_err(|e| plan_err(e.to_string()))?;
    for column in ["window_start", "window_end"] {
        if def.column_index(column).is_some() {
            return Err(plan_err(format!(
                "{f}: stream '{stream}' already has a column '{column}'"
            )));
        }
    }
    Ok((def.clone(), time_column, kind))
}

/// Registers `function` under the spellings DataFusion may look it up by (it matches table
/// function names exactly as written).
pub fn register_window_function(
    ctx: &SessionContext,
    name: &str,
    function: Arc<dyn TableFunctionImpl>,
) {
    let mut capitalized = name[..1].to_ascii_uppercase();
    capitalized.push_str(&name[1..]);
    for spelling in [name.to_string(), name.to_ascii_uppercase(), capitalized] {
        ctx.register_udtf(&spelling, function.clone());
    }
}

impl TableFunctionImpl for WindowFunction {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let (def, time_column, kind) = window_arguments(self.name, &self.streams, args.exprs())?;
        let mut fields: Vec<Field> = def
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for name in ["window_start", "window_end"] {
            fields.push(Field::new(name, window_time_type(), false));
        }
        Ok(Arc::new(StreamTable {
            def,
            window: Some((time_column, kind)),
            schema: Arc::new(Schema::new(fields)),
        }))
    }
}

/// Refuses a query whose result depends on when or how often it is evaluated (`now()`,
/// `current_date`, `random()`, ...): DataFusion would fold `now()` into the planning
/// instant, so a streaming view, its batch runs and a reconciliation would each see a
/// different constant, and the modes could never agree.
fn refuse_time_dependent(plan: &LogicalPlan) -> Result<()> {
    let mut found = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.func.signature().volatility != Volatility::Immutable
                {
                    found = Some(f.func.name().to_owned());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    match found {
        None => Ok(()),
        Some(name) => Err(EngineError::Sql(format!(
            "{name}() in a view: its value depends on when the view runs, so streaming, \
         micro-batch and batch runs would disagree; compare with the event-time column \
         (for example the window's window_end) or a literal TIMESTAMP instead"
        ))),
    }
}

/// A DataFusion session that knows the data directory's streams and views.
pub struct SqlPlanner {
    ctx: SessionContext,
    runtime: tokio::runtime::Runtime,
}

impl SqlPlanner {
    /// A planner over `streams` and the already declared `views` (in creation order).
    pub fn new(streams: &[StreamDef], views: &[ViewDef]) -> Result<SqlPlanner> {
        let mut config = SessionConfig::new()
            .with_target_partitions(1)
            .with_information_schema(false);
        // An uncorrelated scalar subquery becomes a join with its one row (as a correlated
        // one does), which a view runs incrementally; DataFusion would otherwise keep it
        // in the expression, to run once before the query.
        config
            .options_mut()
            .optimizer
            .enable_physical_uncorrelated_scalar_subquery = false;
        // COUNT(DISTINCT) is an accumulator of its own here; DataFusion's rewrite into two
        // aggregations would make every distinct count a cascade of two windowed operators.
        let rules: Vec<_> = datafusion::optimizer::Optimizer::new()
            .rules
            .into_iter()
            .filter(|r| r.name() != "single_distinct_aggregation_to_group_by")
            .collect();
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        let by_name: Arc<HashMap<String, StreamDef>> = Arc::new(
            streams
                .iter()
                .map(|s| (s.name.clone(), s.clone()))
                .collect(),
        );
        for name in ["tumble", "hop", "session"] {
            let function = Arc::new(WindowFunction {
                name,
                streams: by_name.clone(),
            });
            register_window_function(&ctx, name, function);
        }
        for def in streams {
            ctx.register_table(&def.name, Arc::new(StreamTable::plain(def)))?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|source| EngineError::Io {
                context: "start the planner's runtime".into(),
                source,
            })?;
        let planner = SqlPlanner { ctx, runtime };
        for view in views {
            planner.register_view(view)?;
        }
        Ok(planner)
    }

    /// Plan a query: parsed, resolved, type-checked and optimized.
    pub fn plan(&self, sql: &str) -> Result<LogicalPlan> {
        let state = self.ctx.state();
        let plan = self
            .runtime
            .block_on(state.create_logical_plan(sql))
            .map_err(EngineError::from)?;
        match &plan {
            LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => {
                return Err(EngineError::Sql(
                    "a view's query must be a SELECT; it cannot write or define tables".into(),
                ));
            }
            _ => {}
        }
        refuse_time_dependent(&plan)?;
        Ok(state.optimize(&plan)?)
    }

    /// Make `view` readable by later views, as a DataFusion view over its plan.
    pub fn register_view(&self, view: &ViewDef) -> Result<LogicalPlan> {
        let state = self.ctx.state();
        let plan = self
            .runtime
            .block_on(state.create_logical_plan(&view.query))?;
        self.ctx.register_table(
            &view.name,
            Arc::new(datafusion::catalog::view::ViewTable::new(
                plan.clone(),
                Some(view.query.clone()),
            )),
        )?;
        Ok(plan)
    }

    /// The session's execution properties, for turning expressions into physical ones.
    pub fn execution_props(&self) -> datafusion::execution::context::ExecutionProps {
        self.ctx.state().execution_props().clone()
    }
}
