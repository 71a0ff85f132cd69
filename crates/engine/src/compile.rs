//! From DataFusion's optimized logical plan to Freshet's operator tree.
//!
//! Supported: projections and filters with any DataFusion scalar expression (a filter over
//! rows that change deletes the rows that stop qualifying); aggregates (`COUNT`,
//! `COUNT(DISTINCT)`, `SUM`, `MIN`, `MAX`, `AVG`, each with an optional `FILTER`) grouped
//! by a window of a window table function, by an upstream view's window columns
//! (cascades), or by plain keys (unbounded); `ROW_NUMBER()` top-N over a stream's rows;
//! `COUNT`/`SUM`/`AVG`/`MIN`/`MAX` `OVER (... ROWS BETWEEN n PRECEDING AND CURRENT ROW)`
//! in event-time order over a stream's rows;
//! `UNION ALL` of streams' rows and unbounded GROUP BYs' rows; inner, outer, semi and anti
//! joins of two windowed inputs on their window, and of streams' rows on any keys; and
//! aggregates, top-N and unions over rows that change (an unbounded GROUP BY's, an outer
//! join's, ranked rows), which take a row's old version back.
//! Anything else is refused with an error naming the construct.

use crate::accumulate::{AggKind, AggSpec};
use crate::aggregate::{Aggregate, GroupCol, Grouping};
use crate::error::{EngineError, Result, unsupported};
use crate::grouping_sets;
use crate::join::{
    Identity, Interval, IntervalBounds, Join, Output, Preserved, SymmetricJoin, WindowJoin,
    WindowRef, interval_bounds,
};
use crate::node::{Node, Op, WindowInfo};
use crate::options::{EmitPolicy, LatePolicy, ViewOptions};
use crate::source::Source;
use crate::sql::StreamTable;
use crate::top_n::{Ranking, TopN, TopNSpec, WindowEnd};
use crate::window::WindowKind;
use arrow_row::SortField;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::DFSchema;
use datafusion::common::NullEquality;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNode;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, ExprSchemable, JoinType, LogicalPlan};
use datafusion::physical_expr::expressions::lit;
use datafusion::physical_expr::{PhysicalExpr, create_physical_expr};
use std::any::Any;
use std::sync::Arc;

/// How a view's results table is keyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultKey {
    /// By these output columns (the GROUP BY columns, window included, or a
    /// deduplication's PARTITION BY columns).
    Columns(Vec<String>),
    /// By the source positions of each row (one for a stream's rows, one per joined row
    /// for a join's): hidden columns `_partition`, `_offset`, `_copy`, then
    /// `_partition_2`, `_offset_2`, `_copy_2` and so on ([`origin_key`]).
    Origin(usize),
}

/// Hidden key columns of views keyed by `positions` source positions, with their types.
pub fn origin_key(positions: usize) -> Vec<(String, DataType)> {
    (1..=positions)
        .flat_map(|p| {
            let suffix = if p == 1 {
                String::new()
            } else {
                format!("_{p}")
            };
            [
                (format!("_partition{suffix}"), DataType::UInt32),
                (format!("_offset{suffix}"), DataType::UInt64),
                (format!("_copy{suffix}"), DataType::UInt32),
            ]
        })
        .collect()
}

/// A compiled view.
pub struct Compiled {
    /// The operator tree.
    pub root: Node,
    /// The results table's key.
    pub key: ResultKey,
    /// The results table's columns.
    pub result_schema: SchemaRef,
}

struct Cx<'a> {
    props: &'a ExecutionProps,
    options: &'a ViewOptions,
    next_id: u16,
}

impl Cx<'_> {
    fn physical(&self, e: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        // A scalar subquery DataFusion could not turn into a join stays in the expression.
        if e.exists(|e| Ok(matches!(e, Expr::ScalarSubquery(_))))? {
            return Err(unsupported(
                "a scalar subquery (a SELECT inside an expression) in this place; in WHERE or \
                 in the SELECT list, one that gives one row (an aggregate without GROUP BY) runs",
            ));
        }
        Ok(create_physical_expr(
            e,
            schema,
            self.props,
            &PhysicalPlanningContext::default(),
        )?)
    }
}

fn arrow(schema: &DFSchema) -> SchemaRef {
    Arc::new(schema.as_arrow().clone())
}

/// Compile an optimized logical plan.
pub fn compile(
    plan: &LogicalPlan,
    options: &ViewOptions,
    props: &ExecutionProps,
) -> Result<Compiled> {
    let mut cx = Cx {
        props,
        options,
        next_id: 1,
    };
    let mut root = build(plan, &mut cx)?;
    if options.state_ttl_ms.is_some() && !forgets(&root) {
        return Err(EngineError::Sql(
            "view option state_ttl bounds a join's rows that only the end of the streams \
             would free (a join of streams' rows on keys); this view has none"
                .into(),
        ));
    }
    let (key, filters_updating_rows) = root_key(&mut root, options)?;
    if filters_updating_rows {
        delete_what_stops_qualifying(&mut root);
    }
    let result_schema = match &key {
        ResultKey::Columns(_) => root.schema.clone(),
        ResultKey::Origin(positions) => {
            let mut fields: Vec<Field> = root
                .schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            // An outer join's padded rows have NULL positions for their missing side.
            let padded = pads_positions(&root);
            for (name, t) in origin_key(*positions) {
                if fields.iter().any(|f| *f.name() == name) {
                    return Err(EngineError::Sql(format!(
                        "the view's output has a column named '{name}', which Freshet uses to \
                         key rows by source position; rename it"
                    )));
                }
                fields.push(Field::new(name, t, padded));
            }
            Arc::new(Schema::new(fields))
        }
    };
    let mut names = std::collections::HashSet::new();
    for f in result_schema.fields() {
        if !names.insert(f.name().to_ascii_lowercase()) {
            return Err(EngineError::Sql(format!(
                "the view's output has two columns named '{}'; give them distinct aliases",
                f.name()
            )));
        }
    }
    Ok(Compiled {
        root,
        key,
        result_schema,
    })
}

/// Find the stateful operator under the root's filters and projections and derive the key;
/// also says whether a filter there reads rows that change (and so must delete them).
fn root_key(root: &mut Node, options: &ViewOptions) -> Result<(ResultKey, bool)> {
    // Map root output columns down to the first stateful node's columns.
    let names: Vec<String> = root
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut mapping: Vec<Option<usize>> = (0..names.len()).map(Some).collect();
    let mut filtered = false;
    // Filters and projections pass positions on: these are the first stateful node's.
    let positions = positions(root);
    // Ranked rows and a union's rows that change are keyed by positions (a
    // deduplication's by its group) and change: a filter over them deletes the rows that
    // stop passing it. (A join deletes a pair itself before it writes the pair's key again.)
    let changing = match &under_filters(root).op {
        Op::TopN { .. } => true,
        Op::Union { .. } => under_filters(root).updating(),
        _ => false,
    };
    let mut node = root;
    loop {
        match &mut node.op {
            Op::Filter { input, .. } => {
                filtered = true;
                node = input;
            }
            Op::Project { input, exprs } => {
                let passthrough: Vec<Option<usize>> = exprs.iter().map(bare_column).collect();
                mapping = mapping
                    .iter()
                    .map(|m| m.and_then(|i| passthrough[i]))
                    .collect();
                node = input;
            }
            Op::Aggregate { agg, .. } => {
                // Without GROUP BY, one row, always there (COUNT 0 before any input, as in
                // batch); under grouping sets, rows whose key holds `__grouping_id`, which
                // the view rarely selects (and without it, a set's rows may have another
                // set's columns: NULL for a column left out, NULL in the data). Either is
                // keyed as an aggregate's rows read by another operator are: by a hash of
                // the group key.
                let hashed = agg.layout.is_empty() || agg.by_grouping_sets();
                let groups = if hashed { 0 } else { agg.layout.len() };
                let mut key = Vec::new();
                for g in 0..groups {
                    match selected_as(g, &mapping, &names) {
                        Some(name) => key.push(name),
                        None => {
                            return Err(EngineError::Sql(format!(
                                "the view must select every GROUP BY column (they key its \
                                 results table); '{}' is missing",
                                agg.schema.field(g).name()
                            )));
                        }
                    }
                }
                if agg.layout.is_empty() {
                    agg.identifies_rows = true;
                    return Ok((ResultKey::Origin(1), filtered));
                }
                let amends = options.late_data == LatePolicy::Update
                    && !matches!(agg.grouping, Grouping::Unbounded);
                let updating = matches!(agg.grouping, Grouping::Unbounded)
                    || options.emit == EmitPolicy::OnUpdate
                    || amends;
                // A session that grows or merges after its provisional row was written
                // deletes that row (its key, the session's bounds, changed).
                if amends {
                    agg.amend_lateness_ms = Some(options.allowed_lateness_ms as i64);
                }
                if options.emit == EmitPolicy::OnUpdate {
                    agg.emit_updates = true;
                }
                agg.identifies_rows |= hashed;
                let key = match hashed {
                    true => ResultKey::Origin(1),
                    false => ResultKey::Columns(key),
                };
                return Ok((key, updating && filtered));
            }
            // A deduplication's rows are keyed by its group, when the view selects the
            // group's columns: a group's new row then replaces its old one in place.
            Op::TopN { top, .. } => match dedup_key(top, &mapping, &names) {
                Some(key) => return Ok((ResultKey::Columns(key), filtered)),
                None => break,
            },
            Op::Join { left, right, join } if positions.is_none() => {
                let key = left_aggregate_key(left, right, join, &mapping, &names)?;
                return Ok((ResultKey::Columns(key), false));
            }
            Op::Source(_) | Op::Over { .. } | Op::Union { .. } | Op::Join { .. } => break,
        }
    }
    // Rows keyed by their input positions. Ranked rows change (a row leaves the top N): a
    // filter over them deletes too.
    let Some(positions) = positions else {
        return Err(unsupported(
            "rows without positions that no aggregate keys; put a stream's rows on the left of \
             a join so that each result row is keyed by its source position",
        ));
    };
    Ok((ResultKey::Origin(positions), changing && filtered))
}

/// The view's columns (`names`, mapped to the top-N's by `mapping`) that select a
/// deduplication's group columns ([`TopN::dedup_columns`]), if it selects them all.
fn dedup_key(top: &TopN, mapping: &[Option<usize>], names: &[String]) -> Option<Vec<String>> {
    top.dedup_columns()?
        .into_iter()
        .map(|c| selected_as(c, mapping, names))
        .collect()
}

/// The name the view selects column `col` of the node `mapping` maps its columns (`names`)
/// to, if it selects it.
fn selected_as(col: usize, mapping: &[Option<usize>], names: &[String]) -> Option<String> {
    let out = mapping.iter().position(|m| *m == Some(col))?;
    Some(names[out].clone())
}

/// The key of a window join's rows whose left input is an aggregate's (Nexmark q5, q8):
/// each left row matches at most one right row (the right is an aggregate whose every
/// GROUP BY column the join compares, `right_matches_once`, or the join is a semi or
/// anti join writing left rows), so the left aggregate's GROUP BY columns key the rows.
/// `mapping` takes the view's columns (`names`) to the join's.
fn left_aggregate_key(
    left: &Node,
    right: &Node,
    join: &Join,
    mapping: &[Option<usize>],
    names: &[String],
) -> Result<Vec<String>> {
    let once = matches!(join, Join::Window(_))
        && (join.only_side() == Some(0) || (join.only_side().is_none() && !has_origin(right)));
    let groups = group_columns(left).filter(|_| once).ok_or_else(|| {
        unsupported(
            "a join whose left input is an aggregate and whose right input's rows may match \
             one left row several times; join it with an aggregate on every GROUP BY column \
             of that aggregate, or put the stream's rows on the left so that each result row \
             is keyed by its source position",
        )
    })?;
    let selected: Vec<Option<String>> = groups
        .iter()
        .map(|(_, at)| {
            at.and_then(|c| mapping.iter().position(|m| *m == Some(c)))
                .map(|out| names[out].clone())
        })
        .collect();
    // A fixed window's end is its start plus its size (and the other way round): one of
    // them keys it.
    let (layout, fixed) = aggregate_layout(left);
    let bound = |g: GroupCol| {
        layout
            .iter()
            .position(|&l| l == g)
            .is_some_and(|i| selected[i].is_some())
    };
    let mut key = Vec::new();
    for (g, ((name, at), out)) in groups.iter().zip(&selected).enumerate() {
        match (out, layout.get(g)) {
            (Some(out), _) => key.push(out.clone()),
            (None, Some(GroupCol::WindowEnd)) if fixed && bound(GroupCol::WindowStart) => {}
            (None, Some(GroupCol::WindowStart)) if fixed && bound(GroupCol::WindowEnd) => {}
            (None, _) => {
                // The name the join's input gives it, if it passes it on.
                let name = at.map_or(name.as_str(), |c| left.schema.field(c).name());
                return Err(EngineError::Sql(format!(
                    "the view must select every GROUP BY column of the aggregate on the left \
                     of its join, from that side (they key its results table); '{name}' is \
                     missing"
                )));
            }
        }
    }
    Ok(key)
}

/// Makes every filter between the root and its aggregate delete the rows it drops: over
/// rows that change (HAVING over an unbounded GROUP BY or provisional windows), a group
/// that qualified when it was written can stop qualifying later.
fn delete_what_stops_qualifying(node: &mut Node) {
    match &mut node.op {
        Op::Filter {
            input,
            deletes_failing,
            ..
        } => {
            *deletes_failing = true;
            delete_what_stops_qualifying(input);
        }
        Op::Project { input, .. } => delete_what_stops_qualifying(input),
        Op::Source(_)
        | Op::Aggregate { .. }
        | Op::TopN { .. }
        | Op::Over { .. }
        | Op::Join { .. }
        | Op::Union { .. } => {}
    }
}

/// Whether `node`'s rows belong to windows, even where a projection dropped the window columns.
fn reads_windows(node: &Node) -> bool {
    match &node.op {
        Op::Source(s) => s.window.is_some(),
        Op::Filter { input, .. } | Op::Project { input, .. } | Op::TopN { input, .. } => {
            reads_windows(input)
        }
        // A symmetric join's rows have no window watermark: grouped, they are unbounded
        // groups; so have a FULL window join's, which may lack either side's window.
        Op::Join { join, .. } => matches!(**join, Join::Window(_)) && node.window.is_some(),
        Op::Union { inputs } => inputs.iter().any(reads_windows),
        Op::Aggregate { .. } => node.window.is_some(),
        // Its frames cross windows: its rows belong to none.
        Op::Over { .. } => false,
    }
}

/// Whether `state_ttl` frees some join's rows under `node`.
fn forgets(node: &Node) -> bool {
    match &node.op {
        Op::Join { join, .. } if join.forgets().contains(&true) => true,
        _ => node.inputs().into_iter().any(forgets),
    }
}

/// Whether `node` reads a join's rows.
fn reads_join(node: &Node) -> bool {
    match &node.op {
        Op::Source(_) => false,
        Op::Join { .. } => true,
        Op::Union { inputs } => inputs.iter().any(reads_join),
        // An aggregate's rows are its own, whatever it groups.
        Op::Aggregate { .. } => false,
        Op::Filter { input, .. }
        | Op::Project { input, .. }
        | Op::TopN { input, .. }
        | Op::Over { input, .. } => reads_join(input),
    }
}

/// Whether `node` has at most one row: an aggregate without GROUP BY (a scalar
/// subquery's) through filters and projections.
fn one_row(node: &Node) -> bool {
    matches!(&under_filters(node).op, Op::Aggregate { agg, .. } if agg.global())
}

/// The first node under `node`'s filters and projections.
pub(crate) fn under_filters(node: &Node) -> &Node {
    match &node.op {
        Op::Filter { input, .. } | Op::Project { input, .. } => under_filters(input),
        _ => node,
    }
}

/// How many source positions identify each of `node`'s rows, if its rows carry them: one
/// for a stream's rows, the sum of both sides' for a join's (a window join's right side
/// may be an aggregate's rows, which add none).
fn positions(node: &Node) -> Option<usize> {
    match &node.op {
        Op::Source(_) => Some(1),
        Op::Filter { input, .. }
        | Op::Project { input, .. }
        | Op::TopN { input, .. }
        | Op::Over { input, .. } => positions(input),
        // A semi or anti join's rows are one side's rows; an aggregate's rows identified
        // by a hash of their key count as one position.
        Op::Join { left, right, join } => {
            let side =
                |n: &Node, s: usize| positions(n).or_else(|| join.identifies(s).then_some(1));
            match join.only_side() {
                Some(s) => side([left, right][s], s),
                None => Some(side(left, 0)? + side(right, 1).unwrap_or(0)),
            }
        }
        Op::Union { inputs } => {
            let each = inputs.iter().map(positions).collect::<Option<Vec<_>>>()?;
            each.iter().all(|&p| p == each[0]).then_some(each[0])
        }
        // An aggregate's rows read by an operator that tells them apart carry a hash of
        // their group key (and window) as their position.
        Op::Aggregate { agg, .. } => agg.identifies_rows.then_some(1),
    }
}

/// Whether some of `node`'s rows may hold NULL positions: an outer join's padded rows,
/// wherever their positions are passed on.
fn pads_positions(node: &Node) -> bool {
    match &node.op {
        Op::Source(_) | Op::Aggregate { .. } => false,
        Op::Filter { input, .. }
        | Op::Project { input, .. }
        | Op::TopN { input, .. }
        | Op::Over { input, .. } => pads_positions(input),
        Op::Join { left, right, join } => {
            join.pads()
                || match join.only_side() {
                    Some(0) => pads_positions(left),
                    Some(_) => pads_positions(right),
                    None => pads_positions(left) || pads_positions(right),
                }
        }
        Op::Union { inputs } => inputs.iter().any(pads_positions),
    }
}

fn has_origin(node: &Node) -> bool {
    positions(node).is_some()
}

/// The input column a physical expression is, if it is a bare column (a projection that
/// passes a column on).
pub(crate) fn bare_column(e: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    let any: &dyn Any = e.as_ref();
    any.downcast_ref::<datafusion::physical_expr::expressions::Column>()
        .map(|c| c.index())
}

fn column_index(e: &Expr, schema: &DFSchema) -> Option<usize> {
    match e {
        Expr::Column(c) => schema.maybe_index_of_column(c),
        Expr::Alias(a) => column_index(&a.expr, schema),
        _ => None,
    }
}

fn build(plan: &LogicalPlan, cx: &mut Cx) -> Result<Node> {
    match plan {
        LogicalPlan::Projection(p) => {
            let input = build(&p.input, cx)?;
            project(p, input, cx)
        }
        LogicalPlan::Filter(f) => {
            // A filter over ROW_NUMBER() is a top-N; over aggregates OVER (...), a filter.
            if let Some((w, projections)) = ranked(&f.input)
                && w.window_expr.iter().any(is_ranking)
            {
                return build_top_n(f, w, &projections, cx);
            }
            let input = build(&f.input, cx)?;
            let predicate = cx.physical(&f.predicate, f.input.schema())?;
            Ok(Node {
                schema: input.schema.clone(),
                window: input.window,
                appends_only: input.appends_only,
                op: Op::Filter {
                    input: Box::new(input),
                    predicate,
                    deletes_failing: false,
                },
            })
        }
        LogicalPlan::SubqueryAlias(a) => build(&a.input, cx),
        LogicalPlan::TableScan(scan) => build_scan(scan, cx),
        LogicalPlan::Aggregate(a) => build_aggregate(a, cx),
        LogicalPlan::Join(j) => build_join(j, cx),
        LogicalPlan::Sort(sort) => match sort.fetch {
            Some(n) => build_first_rows(sort, n, cx),
            None => Err(unsupported(
                "ORDER BY without LIMIT (a view's results are a table keyed by its GROUP BY; \
                 order when querying)",
            )),
        },
        LogicalPlan::Limit(limit) => build_limit(limit, cx),
        LogicalPlan::Window(w) => build_over(w, cx),
        LogicalPlan::Union(u) => build_union(u, cx),
        LogicalPlan::Distinct(_) => Err(unsupported("DISTINCT without GROUP BY")),
        LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => Err(EngineError::Sql(
            "a view must read a stream or another view".into(),
        )),
        other => Err(unsupported(other.display().to_string())),
    }
}

fn build_scan(scan: &datafusion::logical_expr::TableScan, cx: &mut Cx) -> Result<Node> {
    if scan.fetch.is_some() {
        return Err(unsupported("LIMIT"));
    }
    if !scan.filters.is_empty() {
        return Err(EngineError::Bug(
            "a filter was pushed into a stream scan".into(),
        ));
    }
    let provider = source_as_provider(&scan.source)?;
    let any: &dyn Any = provider.as_ref();
    let schema = arrow(&scan.projected_schema);
    let Some(table) = any.downcast_ref::<StreamTable>() else {
        return Err(unsupported(format!("reading table '{}'", scan.table_name)));
    };
    let def = table.def.clone();
    let (time_column, kind) = match table.window {
        Some((column, kind)) => (column, Some(kind)),
        None => (def.event_time_index(), None),
    };
    let width = def.columns.len();
    let projection = scan
        .projection
        .clone()
        .unwrap_or_else(|| (0..width + if kind.is_some() { 2 } else { 0 }).collect());
    let window = kind.map(|k| WindowInfo {
        start_col: projection.iter().position(|&c| c == width),
        end_col: projection.iter().position(|&c| c == width + 1),
        kind: Some(k),
    });
    // Session rows need their own time to be merged: keep window_start in the projection.
    let lateness_ms = cx.options.allowed_lateness_ms as i64;
    Ok(Node {
        schema,
        window: window.filter(|w| w.start_col.is_some() || w.end_col.is_some()),
        appends_only: true,
        op: Op::Source(Source {
            stream: def.name.clone(),
            time_column,
            window: kind,
            projection,
            schema: arrow(&scan.projected_schema),
            watermark: None,
            lateness_ms,
        }),
    })
}

/// The accumulator an aggregate function call uses, and its argument.
/// The aggregate function `f` is, its argument, and `STRING_AGG`'s delimiter.
fn agg_kind(f: &AggregateFunction) -> Result<(AggKind, Expr, Option<String>)> {
    let name = f.func.name().to_ascii_lowercase();
    let p = &f.params;
    if matches!(name.as_str(), "first_value" | "last_value") {
        return first_value(&name, p).map(|(kind, arg)| (kind, arg, None));
    }
    if matches!(name.as_str(), "array_agg" | "string_agg") {
        return collect(&name, p);
    }
    if !p.order_by.is_empty() {
        return Err(unsupported(format!("ORDER BY inside {name}")));
    }
    if p.args.len() != 1 {
        return Err(unsupported(format!(
            "{name} with {} arguments",
            p.args.len()
        )));
    }
    let kind = match (name.as_str(), p.distinct) {
        ("count", false) => AggKind::Count,
        ("count", true) => AggKind::CountDistinct,
        ("sum", false) => AggKind::Sum,
        ("sum", true) => AggKind::SumDistinct,
        ("avg" | "mean", false) => AggKind::Avg,
        ("avg" | "mean", true) => AggKind::AvgDistinct,
        // DataFusion names each by its first name (VAR_SAMP is "var", STDDEV_SAMP "stddev").
        ("var" | "var_samp" | "var_sample", false) => AggKind::Variance {
            population: false,
            root: false,
        },
        ("var_pop" | "var_population", false) => AggKind::Variance {
            population: true,
            root: false,
        },
        ("stddev" | "stddev_samp", false) => AggKind::Variance {
            population: false,
            root: true,
        },
        ("stddev_pop", false) => AggKind::Variance {
            population: true,
            root: true,
        },
        ("median", false) => AggKind::Median,
        ("min", _) => AggKind::Min,
        ("max", _) => AggKind::Max,
        // Over booleans (false < true, NULLs skipped, NULL over none): all true is the
        // least, any true the greatest.
        ("bool_and", _) => AggKind::Min,
        ("bool_or", _) => AggKind::Max,
        (other, true) => {
            return Err(unsupported(format!(
                "{}(DISTINCT ...)",
                other.to_ascii_uppercase()
            )));
        }
        (other, false) => {
            return Err(unsupported(format!(
                "aggregate function {other}; streaming views support COUNT, SUM and AVG (each \
                 also over DISTINCT values), MIN, MAX, BOOL_AND, BOOL_OR, VAR_SAMP, VAR_POP, \
                 STDDEV_SAMP, STDDEV_POP, MEDIAN, and FIRST_VALUE, LAST_VALUE, ARRAY_AGG and \
                 STRING_AGG with ORDER BY"
            )));
        }
    };
    Ok((kind, p.args[0].clone(), None))
}

/// `ARRAY_AGG(x ORDER BY k, ...)` and `STRING_AGG(x, delimiter ORDER BY k, ...)`: the
/// values in the `ORDER BY` order, kept as the struct `(k, ..., x)` (rows tied in every
/// `ORDER BY` value are ordered by `x`, where a batch run takes them as it reads them).
fn collect(
    name: &str,
    p: &datafusion::logical_expr::expr::AggregateFunctionParams,
) -> Result<(AggKind, Expr, Option<String>)> {
    let call = name.to_ascii_uppercase();
    let joined = name == "string_agg";
    let (first, ordered) = ordered_struct(&call, p, || {
        format!(
            "{call} without ORDER BY (the order of its values would depend on the order rows \
             arrive in, and a batch run reads them in another); write {call}(x{} ORDER BY \
             <column>)",
            if joined { ", ','" } else { "" }
        )
    })?;
    // Each distinct struct (k, ..., x) is kept once: distinct values of x only where x is
    // the whole order.
    if p.distinct && (p.order_by.len() != 1 || first.expr != p.args[0]) {
        return Err(unsupported(format!(
            "{call}(DISTINCT x ORDER BY ...) ordered by other than x itself"
        )));
    }
    let delimiter = match (joined, p.args.as_slice()) {
        (false, [_]) => None,
        (true, [_, Expr::Literal(d, _)]) => match d {
            d if d.is_null() => Some(String::new()),
            d => Some(
                d.try_as_str()
                    .flatten()
                    .ok_or_else(|| unsupported(format!("{call} with the delimiter {d}")))?
                    .to_string(),
            ),
        },
        (true, [_, d]) => {
            return Err(unsupported(format!(
                "{call} with the delimiter {d}; the delimiter must be a string literal"
            )));
        }
        (_, args) => {
            return Err(unsupported(format!("{call} with {} arguments", args.len())));
        }
    };
    let kind = AggKind::Collect {
        descending: !first.asc,
        nulls_first: first.nulls_first,
        distinct: p.distinct,
        joined,
    };
    Ok((kind, ordered, delimiter))
}

/// The `ORDER BY` of an order-sensitive aggregate (`call`: FIRST_VALUE, ARRAY_AGG, ...)
/// as the struct `(k, ..., x)` its accumulator orders, and its first key, whose direction
/// and NULL order every key must share; `unordered` says why it needs one.
fn ordered_struct<'p>(
    call: &str,
    p: &'p datafusion::logical_expr::expr::AggregateFunctionParams,
    unordered: impl FnOnce() -> String,
) -> Result<(&'p datafusion::logical_expr::SortExpr, Expr)> {
    let Some(first) = p.order_by.first() else {
        return Err(unsupported(unordered()));
    };
    if p.order_by
        .iter()
        .any(|s| s.asc != first.asc || s.nulls_first != first.nulls_first)
    {
        return Err(unsupported(format!(
            "{call} ordered by keys in different directions or NULL orders"
        )));
    }
    if p.null_treatment == Some(datafusion::logical_expr::expr::NullTreatment::IgnoreNulls) {
        return Err(unsupported(format!("{call}(...) IGNORE NULLS")));
    }
    let x = p
        .args
        .first()
        .ok_or_else(|| unsupported(format!("{call} without an argument")))?;
    let mut fields: Vec<Expr> = p.order_by.iter().map(|s| s.expr.clone()).collect();
    fields.push(x.clone());
    Ok((
        first,
        datafusion::functions::core::expr_fn::r#struct(fields),
    ))
}

/// `FIRST_VALUE(x ORDER BY k, ...)` and `LAST_VALUE(...)`: the value of the first (last) row
/// in the `ORDER BY` order, as the least of the struct `(k, ..., x)` in that order (in the
/// reversed one for `LAST_VALUE`). Rows tied in every `ORDER BY` value are told apart by
/// `x`, where a batch run takes whichever it reads first.
fn first_value(
    name: &str,
    p: &datafusion::logical_expr::expr::AggregateFunctionParams,
) -> Result<(AggKind, Expr)> {
    let call = name.to_ascii_uppercase();
    if !p.order_by.is_empty() && (p.args.len() != 1 || p.distinct) {
        return Err(unsupported(format!(
            "{call} with DISTINCT or several arguments"
        )));
    }
    let (first, ordered) = ordered_struct(&call, p, || {
        format!(
            "{call}(x) without ORDER BY (which row is first would depend on the order rows \
             arrive in, and a batch run reads them in another); write {call}(x ORDER BY \
             <column>)"
        )
    })?;
    let last = name == "last_value";
    let kind = AggKind::First {
        descending: first.asc == last,
        nulls_first: first.nulls_first != last,
    };
    Ok((kind, ordered))
}

/// What the operators that refuse rows that change say they are.
const CHANGING_ROWS: &str = "rows that change after they are written (an unbounded GROUP BY's, \
    ranked rows or an outer join's)";

fn build_aggregate(a: &datafusion::logical_expr::Aggregate, cx: &mut Cx) -> Result<Node> {
    let mut input = build(&a.input, cx)?;
    let retracts = changing_input(&mut input, "an aggregate over")?;
    if retracts && !has_origin(&input) {
        return Err(unsupported(format!(
            "an aggregate over {CHANGING_ROWS} when they are neither an unbounded GROUP BY's \
             rows nor rows with log positions"
        )));
    }
    let in_schema = a.input.schema();
    let group_by = grouping_sets::grouping(&a.group_expr)?;
    let mut layout = Vec::new();
    // The GROUP BY expressions that are not window columns, by index in `group_by.exprs`.
    let mut keyed = Vec::new();
    let mut key_fields = Vec::new();
    let w = input.window.unwrap_or_default();
    for (i, e) in group_by.exprs.iter().enumerate() {
        let idx = column_index(e, in_schema);
        let window_col = if idx.is_some() && idx == w.start_col {
            Some(GroupCol::WindowStart)
        } else if idx.is_some() && idx == w.end_col {
            Some(GroupCol::WindowEnd)
        } else {
            None
        };
        match window_col {
            Some(col) => {
                if let Some(set) = group_by.sets.iter().flatten().find(|s| s.leaves_out[i]) {
                    let kept: Vec<String> = group_by
                        .exprs
                        .iter()
                        .zip(&set.leaves_out)
                        .filter(|(_, out)| !**out)
                        .map(|(e, _)| e.to_string())
                        .collect();
                    return Err(EngineError::Sql(format!(
                        "a grouping set over windows must keep the window columns in every \
                         set; the set ({}) leaves out {e}; write GROUP BY window_start, \
                         window_end, ROLLUP(...) or CUBE(...)",
                        kept.join(", ")
                    )));
                }
                layout.push(col);
            }
            None => {
                layout.push(GroupCol::Key(keyed.len()));
                key_fields.push(SortField::new(e.get_type(in_schema)?));
                keyed.push(i);
            }
        }
    }
    // Grouping sets' rows have `__grouping_id` after the GROUP BY columns, a key column.
    let id_type = group_by
        .sets
        .as_ref()
        .map(|_| a.schema.field(group_by.exprs.len()).data_type().clone());
    if let Some(t) = &id_type {
        layout.push(GroupCol::Key(keyed.len()));
        key_fields.push(SortField::new(t.clone()));
    }
    let all_kept = [grouping_sets::Set {
        leaves_out: vec![false; group_by.exprs.len()],
        id: 0,
    }];
    let key_sets = group_by
        .sets
        .as_deref()
        .unwrap_or(&all_kept)
        .iter()
        .map(|set| {
            let mut exprs = keyed
                .iter()
                .map(|&i| {
                    let e = &group_by.exprs[i];
                    match set.leaves_out[i] {
                        true => Ok(lit(ScalarValue::try_from(e.get_type(in_schema)?)?)),
                        false => cx.physical(e, in_schema),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            if let Some(t) = &id_type {
                exprs.push(lit(ScalarValue::UInt64(Some(set.id)).cast_to(t)?));
            }
            Ok(exprs)
        })
        .collect::<Result<Vec<_>>>()?;
    let has_start = layout.contains(&GroupCol::WindowStart);
    let has_end = layout.contains(&GroupCol::WindowEnd);
    let grouping = match input.window {
        None if reads_windows(&input) => {
            return Err(EngineError::Sql(
                "GROUP BY over a windowed input must include window_start or window_end".into(),
            ));
        }
        None => Grouping::Unbounded,
        Some(_) if !has_start && !has_end => {
            return Err(EngineError::Sql(
                "GROUP BY over a windowed input must include window_start or window_end".into(),
            ));
        }
        Some(w) => match w.kind {
            Some(WindowKind::Session { .. }) if group_by.sets.is_some() => {
                return Err(unsupported(
                    "GROUPING SETS, CUBE or ROLLUP over SESSION windows (a session's bounds \
                     depend on the keys its rows are grouped by)",
                ));
            }
            Some(WindowKind::Session { gap_ms }) => Grouping::Session {
                start_col: w.start_col.ok_or_else(|| {
                    EngineError::Sql("a SESSION window's GROUP BY must include window_start".into())
                })?,
                gap_ms,
            },
            kind => {
                let size_ms = kind.and_then(WindowKind::size_ms);
                if !has_end && size_ms.is_none() {
                    return Err(EngineError::Sql(
                        "GROUP BY over an upstream view's window must include window_end".into(),
                    ));
                }
                Grouping::Fixed {
                    start_col: if has_start { w.start_col } else { None },
                    end_col: if has_end { w.end_col } else { None },
                    size_ms,
                }
            }
        },
    };
    if matches!(grouping, Grouping::Session { .. }) && !(has_start && has_end) {
        return Err(EngineError::Sql(
            "a SESSION window's GROUP BY must include both window_start and window_end".into(),
        ));
    }
    let mut args = Vec::new();
    let mut filters = Vec::new();
    let mut specs = Vec::new();
    for (j, e) in a.aggr_expr.iter().enumerate() {
        let inner = match e {
            Expr::Alias(al) => al.expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(f) = inner else {
            return Err(unsupported(format!("aggregate expression {e}")));
        };
        let (kind, arg, delimiter) = agg_kind(f)?;
        let arg_type = arg.get_type(in_schema)?;
        let expected = a.schema.field(layout.len() + j).data_type();
        let spec = AggSpec::new(kind, arg_type, expected)?;
        specs.push(match delimiter {
            Some(d) => spec.joined_by(d),
            None => spec,
        });
        args.push(cx.physical(&arg, in_schema)?);
        filters.push(
            f.params
                .filter
                .as_deref()
                .map(|filter| cx.physical(filter, in_schema))
                .transpose()?,
        );
    }
    let id = cx.next_id;
    cx.next_id += 1;
    let schema = arrow(&a.schema);
    let window = match grouping {
        Grouping::Unbounded => None,
        _ => Some(WindowInfo {
            start_col: layout.iter().position(|c| *c == GroupCol::WindowStart),
            end_col: layout.iter().position(|c| *c == GroupCol::WindowEnd),
            kind: match input.window.and_then(|w| w.kind) {
                Some(k @ (WindowKind::Tumble { .. } | WindowKind::Hop { .. })) => Some(k),
                _ => None,
            },
        }),
    };
    let agg = Aggregate::new(
        id,
        schema.clone(),
        layout,
        key_sets,
        key_fields,
        args,
        filters,
        specs,
        grouping,
    )?;
    let totals: Vec<usize> = group_by
        .sets
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, set)| set.leaves_out.iter().all(|&out| out))
        .map(|(i, _)| i)
        .collect();
    let agg = agg.with_grand_totals(&totals)?;
    let agg = if retracts { agg.retracting()? } else { agg };
    Ok(Node {
        schema,
        window,
        appends_only: !matches!(grouping, Grouping::Unbounded),
        op: Op::Aggregate {
            input: Box::new(input),
            agg: Box::new(agg),
        },
    })
}

/// Prepare the input of an operator (`what`: "an aggregate over", ...) that finds a
/// changing row's old version by its identity; returns whether its rows change. Such rows
/// must not be windows' (a window's rows are used once final), an unbounded GROUP BY's
/// rows are told to carry a hash of their group key as their identity, and a filter on
/// the way deletes the rows that stop passing it.
fn changing_input(input: &mut Node, what: &str) -> Result<bool> {
    if input.appends_only {
        return Ok(false);
    }
    if input.window.is_some() {
        return Err(unsupported(format!(
            "{what} windows' rows that change (provisional or ranked windows); use the \
             windows' final rows"
        )));
    }
    identify_aggregate_rows(input);
    delete_what_stops_qualifying(input);
    Ok(true)
}

/// Make the aggregate under `node`'s filters and projections, if there is one, give its
/// rows positions hashed from their group key (and window), by which an operator over
/// them tells them apart.
fn identify_aggregate_rows(node: &mut Node) {
    match &mut node.op {
        Op::Filter { input, .. } | Op::Project { input, .. } => identify_aggregate_rows(input),
        Op::Aggregate { agg, .. } => agg.identifies_rows = true,
        _ => {}
    }
}

/// A join: of two windowed inputs on their window, joined when the window closes; or of
/// two streams' rows (through filters, projections and other such joins) on any keys,
/// joined as rows arrive.
fn build_join(j: &datafusion::logical_expr::logical_plan::Join, cx: &mut Cx) -> Result<Node> {
    // IN and EXISTS arrive as semi joins, NOT IN and NOT EXISTS as anti joins.
    if j.null_aware {
        return Err(unsupported(
            "NOT IN where a compared column may be NULL (a NULL makes NOT IN true for no \
             row); declare the columns NOT NULL, or write NOT EXISTS",
        ));
    }
    let output = match j.join_type {
        JoinType::Inner => Output::Pairs(Preserved::INNER),
        JoinType::Left => Output::Pairs(Preserved::LEFT),
        JoinType::Right => Output::Pairs(Preserved::RIGHT),
        JoinType::Full => Output::Pairs(Preserved::FULL),
        JoinType::LeftSemi => Output::Semi(0),
        JoinType::RightSemi => Output::Semi(1),
        JoinType::LeftAnti => Output::Anti(0),
        JoinType::RightAnti => Output::Anti(1),
        // DataFusion marks each row with whether it has a match where a subquery's truth
        // is only part of a condition.
        JoinType::LeftMark | JoinType::RightMark => {
            return Err(unsupported(
                "a subquery whose truth is part of a larger condition (x > ALL (SELECT ...), \
                 x = ANY (...), or IN or EXISTS under OR or NOT of an OR); write the subquery \
                 as a condition of its own (IN, EXISTS, NOT EXISTS), or as a join",
            ));
        }
    };
    let mut left = build(&j.left, cx)?;
    let mut right = build(&j.right, cx)?;
    let changes = [
        changing_input(&mut left, "a join of")?,
        changing_input(&mut right, "a join of")?,
    ];
    let (ls, rs) = (j.left.schema(), j.right.schema());
    let windows = left.window.zip(right.window);
    let mut on_window = false;
    let mut left_keys = Vec::new();
    let mut right_keys = Vec::new();
    let mut key_fields = Vec::new();
    for (l, r) in &j.on {
        let (li, ri) = (column_index(l, ls), column_index(r, rs));
        if let Some((lw, rw)) = windows
            && li.is_some()
            && ((li == lw.start_col && ri == rw.start_col)
                || (li == lw.end_col && ri == rw.end_col))
        {
            on_window = true;
        }
        let (lt, rt) = (l.get_type(ls)?, r.get_type(rs)?);
        if lt != rt {
            return Err(unsupported(format!(
                "a join key compared across types {lt} and {rt}"
            )));
        }
        key_fields.push(SortField::new(lt));
        left_keys.push(cx.physical(l, ls)?);
        right_keys.push(cx.physical(r, rs)?);
    }
    let pair_schema = ls.join(rs)?;
    let filter = j
        .filter
        .as_ref()
        .map(|f| cx.physical(f, &pair_schema))
        .transpose()?;
    let nulls_match = j.null_equality == NullEquality::NullEqualsNull;
    let id = cx.next_id;
    cx.next_id += 1;
    let schema = arrow(&j.schema);
    let (join, window) = match windows {
        Some(_)
            if on_window
                && (matches!(output, Output::Semi(1) | Output::Anti(1))
                    || (output.pads()
                        && !has_origin(&right)
                        && output != Output::Pairs(Preserved::LEFT))) =>
        {
            return Err(unsupported(format!(
                "a {} window join of {}; join streams' rows, or keep the aggregate's rows on the \
                 right of a LEFT join",
                output.name(),
                if has_origin(&right) {
                    "these inputs"
                } else {
                    "an aggregate's rows kept on the right (their rows have no positions to key them)"
                }
            )));
        }
        Some((lw, rw)) if on_window => {
            let size = |w: WindowInfo| w.kind.and_then(WindowKind::size_ms);
            if (lw.end_col.is_none() && size(lw).is_none())
                || (rw.end_col.is_none() && size(rw).is_none())
            {
                return Err(EngineError::Sql(
                    "both sides of a window join must carry window_end (or a TUMBLE/HOP \
                     window_start)"
                        .into(),
                ));
            }
            // A semi or anti join writes each left row once, however many rows match.
            if !has_origin(&right) && output.only_side().is_none() {
                right_matches_once(&right, &j.on, rs)?;
            }
            let join = WindowJoin::new(
                id,
                schema.clone(),
                arrow(&pair_schema),
                output,
                [
                    positions(&left).unwrap_or(0),
                    positions(&right).unwrap_or(0),
                ],
                ls.fields().len(),
                left_keys,
                right_keys,
                key_fields,
                filter,
                nulls_match,
                WindowRef {
                    start_col: lw.start_col,
                    end_col: lw.end_col,
                    size_ms: size(lw),
                },
                WindowRef {
                    start_col: rw.start_col,
                    end_col: rw.end_col,
                    size_ms: size(rw),
                },
            )?;
            // The output's window: the left side's, but a RIGHT join's padded rows have
            // only the right side's, and a FULL join's rows may lack either (its output is
            // then not windowed: an aggregate over it groups without a window).
            let shift = |c: Option<usize>| c.map(|c| c + ls.fields().len());
            let window = match output {
                Output::Pairs(Preserved::FULL) => None,
                Output::Pairs(Preserved::RIGHT) => Some(WindowInfo {
                    start_col: shift(rw.start_col),
                    end_col: shift(rw.end_col),
                    kind: rw.kind,
                }),
                _ => Some(WindowInfo {
                    start_col: lw.start_col,
                    end_col: lw.end_col,
                    kind: lw.kind,
                }),
            };
            (Join::Window(join), window)
        }
        _ => {
            // An aggregate's rows (closed windows: final) have no positions; a hash of
            // their GROUP BY columns identifies them instead.
            let identity = [
                (!has_origin(&left))
                    .then(|| aggregate_identity(&left))
                    .transpose()?,
                (!has_origin(&right))
                    .then(|| aggregate_identity(&right))
                    .transpose()?,
            ];
            // A row's next version may come at any time: rows that change are not freed.
            let interval = j
                .filter
                .as_ref()
                .filter(|_| !changes.contains(&true))
                .and_then(|f| interval_bounds(f, ls, rs))
                .and_then(|bounds| time_bounded(bounds, &left, &right));
            let cross = j.on.is_empty();
            if cross {
                // Every row pairs with every row of the other side: all share one key.
                left_keys.push(lit(ScalarValue::Boolean(Some(true))));
                right_keys.push(lit(ScalarValue::Boolean(Some(true))));
                key_fields.push(SortField::new(DataType::Boolean));
            }
            let mut join = SymmetricJoin::new(
                id,
                schema.clone(),
                arrow(&pair_schema),
                ls.fields().len(),
                [left_keys, right_keys],
                key_fields,
                filter,
                nulls_match,
                output,
                [
                    positions(&left).unwrap_or(1),
                    positions(&right).unwrap_or(1),
                ],
            )?;
            for (side, identity) in identity.into_iter().enumerate() {
                if let Some(identity) = identity {
                    join = join.identified(side, identity);
                }
                if changes[side] {
                    join = join.changing(side);
                }
            }
            if let Some(interval) = interval {
                join = join.bounded_by(interval);
            }
            if let Some(ttl) = cx.options.state_ttl_ms {
                join = join.forgetting(i64::try_from(ttl).unwrap_or(i64::MAX));
            }
            // Without an equal key every row is a candidate for every row of the other
            // side: it runs where one side has one row (a scalar subquery's), or where both
            // sides' rows are let go (the condition bounds the pairs' times both ways, or
            // state_ttl forgets them).
            let kept = join.lets_go().map(|go| !go);
            if cross && !one_row(&left) && !one_row(&right) && kept.contains(&true) {
                let side = match kept {
                    [true, true] => "either side's",
                    [true, false] => "the left side's",
                    _ => "the right side's",
                };
                return Err(unsupported(format!(
                    "a join without an equality condition (a cross join) where nothing frees \
                     {side} rows: they would be kept and compared with every later row of the \
                     other side until the end of the streams; join on equal keys, bound the \
                     pairs' times both ways (a.t BETWEEN b.t - INTERVAL '10' SECOND AND b.t), \
                     or set the view option state_ttl on a join of rows that do not change (a \
                     join with an aggregate without GROUP BY, such as a scalar subquery's, \
                     runs as it is)"
                )));
            }
            (Join::Symmetric(join), None)
        }
    };
    Ok(Node {
        schema,
        window,
        // An outer join deletes a padded row when its first match arrives.
        appends_only: !join.updates(),
        op: Op::Join {
            left: Box::new(left),
            right: Box::new(right),
            join: Box::new(join),
        },
    })
}

/// The condition's time `bounds` that can free rows: freeing one side's rows needs a
/// floor under the other side's times (its watermark).
fn time_bounded(mut bounds: IntervalBounds, left: &Node, right: &Node) -> Option<Interval> {
    let floors = [
        left.time_floor(bounds.columns[0]),
        right.time_floor(bounds.columns[1]),
    ];
    if floors[1].is_none() {
        bounds.lo = None;
    }
    if floors[0].is_none() {
        bounds.hi = None;
    }
    let [l, r] = floors;
    (bounds.lo.is_some() || bounds.hi.is_some()).then(|| Interval {
        bounds,
        late_from: [l.and_then(|f| f.late_from), r.and_then(|f| f.late_from)],
    })
}

/// How the rows of `node`, an aggregate's rows of closed windows (through filters and
/// projections), are identified as a join's input: by the GROUP BY columns it passes on,
/// of which a TUMBLE or HOP window needs only its start or its end.
fn aggregate_identity(node: &Node) -> Result<Identity> {
    let groups = group_columns(node).ok_or_else(|| {
        EngineError::Sql(
            "a join input that is neither streams' rows nor an aggregate's (through filters \
             and projections)"
                .into(),
        )
    })?;
    let (layout, fixed) = aggregate_layout(node);
    let passed = |g: GroupCol| {
        layout
            .iter()
            .position(|&l| l == g)
            .is_some_and(|i| groups.get(i).is_some_and(|(_, at)| at.is_some()))
    };
    let mut columns = Vec::new();
    for (g, (name, at)) in groups.iter().enumerate() {
        match (at, layout.get(g)) {
            (Some(c), _) => columns.push(*c),
            (None, Some(GroupCol::WindowEnd)) if fixed && passed(GroupCol::WindowStart) => {}
            (None, Some(GroupCol::WindowStart)) if fixed && passed(GroupCol::WindowEnd) => {}
            (None, _) => {
                return Err(EngineError::Sql(format!(
                    "a join with an aggregate's rows needs every GROUP BY column of the \
                     aggregate in its SELECT (they identify its rows); '{name}' is missing"
                )));
            }
        }
    }
    let fields = columns
        .iter()
        .map(|&c| SortField::new(node.schema.field(c).data_type().clone()))
        .collect();
    Identity::new(columns, fields)
}

/// The GROUP BY layout of the aggregate under `node`'s filters and projections, and
/// whether it groups by a fixed-size window (whose end is its start plus its size).
fn aggregate_layout(node: &Node) -> (Vec<GroupCol>, bool) {
    match &under_filters(node).op {
        Op::Aggregate { agg, .. } => (
            agg.layout.clone(),
            matches!(
                agg.grouping,
                Grouping::Fixed {
                    size_ms: Some(_),
                    ..
                }
            ),
        ),
        _ => (Vec::new(), false),
    }
}

/// A window join whose right rows have no positions (an aggregate's) keys its rows by the
/// left row's alone, which is right only if a left row matches at most one right row: the
/// join must compare every GROUP BY column of the aggregate.
fn right_matches_once(right: &Node, on: &[(Expr, Expr)], rs: &DFSchema) -> Result<()> {
    let compared: Vec<usize> = on.iter().filter_map(|(_, r)| column_index(r, rs)).collect();
    let Some(groups) = group_columns(right) else {
        return Err(unsupported(
            "a window join with rows that are neither streams' rows nor an aggregate's",
        ));
    };
    let missing: Vec<String> = groups
        .into_iter()
        .filter(|(_, at)| !at.is_some_and(|c| compared.contains(&c)))
        .map(|(name, _)| name)
        .collect();
    if !missing.is_empty() {
        return Err(unsupported(format!(
            "a window join that does not compare all of the GROUP BY columns of the \
             aggregate it joins (missing: {}); each left row must match at most one of its \
             rows: add them to ON, or join the streams' rows",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// The GROUP BY columns of the aggregate under `node`'s filters and projections (which
/// identify its rows), by name, with where each is in `node`'s output if it is passed on.
fn group_columns(node: &Node) -> Option<Vec<(String, Option<usize>)>> {
    match &node.op {
        Op::Aggregate { agg, .. } => Some(
            (0..agg.layout.len())
                .map(|g| (agg.schema.field(g).name().clone(), Some(g)))
                .collect(),
        ),
        Op::Filter { input, .. } => group_columns(input),
        Op::Project { input, exprs } => Some(
            group_columns(input)?
                .into_iter()
                .map(|(name, at)| {
                    let out = at.and_then(|g| exprs.iter().position(|e| bare_column(e) == Some(g)));
                    (name, out)
                })
                .collect(),
        ),
        _ => None,
    }
}

/// A projection `p` over the already built `input`.
fn project(p: &datafusion::logical_expr::Projection, input: Node, cx: &mut Cx) -> Result<Node> {
    let in_schema = p.input.schema();
    let exprs = p
        .expr
        .iter()
        .map(|e| cx.physical(e, in_schema))
        .collect::<Result<Vec<_>>>()?;
    let window = input.window.map(|w| {
        let find = |col: Option<usize>| {
            col.and_then(|c| {
                p.expr
                    .iter()
                    .position(|e| column_index(e, in_schema) == Some(c))
            })
        };
        WindowInfo {
            start_col: find(w.start_col),
            end_col: find(w.end_col),
            kind: w.kind,
        }
    });
    let window = window.filter(|w| w.start_col.is_some() || w.end_col.is_some());
    Ok(Node {
        schema: arrow(&p.schema),
        window,
        appends_only: input.appends_only,
        op: Op::Project {
            input: Box::new(input),
            exprs,
        },
    })
}

/// The window functions under `plan` and the column-pruning projections between (nearest
/// first), when `plan` is one: the shape a filter on `ROW_NUMBER()` is planned as.
fn ranked(
    plan: &LogicalPlan,
) -> Option<(
    &datafusion::logical_expr::Window,
    Vec<&datafusion::logical_expr::Projection>,
)> {
    let mut projections = Vec::new();
    let mut plan = plan;
    loop {
        match plan {
            LogicalPlan::Window(w) => return Some((w, projections)),
            LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
                projections.push(p);
                plan = &p.input;
            }
            _ => return None,
        }
    }
}

/// Whether a window expression is `ROW_NUMBER()`, `RANK()` or `DENSE_RANK()`.
fn is_ranking(e: &Expr) -> bool {
    match e {
        Expr::Alias(a) => is_ranking(&a.expr),
        Expr::WindowFunction(wf) => ["row_number", "rank", "dense_rank"]
            .iter()
            .any(|f| wf.fun.name().eq_ignore_ascii_case(f)),
        _ => false,
    }
}

/// `UNION ALL` of streams' rows (through filters and projections) or unbounded GROUP BYs'
/// rows (identified by a hash of their group key): the branches' rows pass on, keyed by
/// their positions and branch. A union of windowed aggregates, joins or ranked rows is
/// refused (their rows are keyed otherwise, and could collide).
fn build_union(u: &datafusion::logical_expr::Union, cx: &mut Cx) -> Result<Node> {
    if u.inputs.len() > freshet_types::limits::UNION_BRANCHES_MAX as usize {
        return Err(EngineError::ResourceLimit(format!(
            "a UNION ALL of {} branches; at most {} are supported",
            u.inputs.len(),
            freshet_types::limits::UNION_BRANCHES_MAX
        )));
    }
    let mut inputs = u
        .inputs
        .iter()
        .map(|i| build(i, cx))
        .collect::<Result<Vec<_>>>()?;
    for input in &mut inputs {
        changing_input(input, "UNION ALL of")?;
    }
    if inputs
        .iter()
        .any(|i| !has_origin(i) || reads_join(i) || reads_rank(i))
    {
        return Err(unsupported(
            "UNION ALL of a windowed aggregate's, a join's or ranked rows; a UNION ALL joins \
             streams' rows or unbounded GROUP BYs' rows (aggregate the union in the same view \
             instead)",
        ));
    }
    let appends_only = inputs.iter().all(|i| i.appends_only);
    // The union is windowed when every branch has the same window in the same columns.
    let window = inputs[0].window.filter(|w| {
        inputs.iter().all(|i| {
            i.window.is_some_and(|o| {
                o.start_col == w.start_col && o.end_col == w.end_col && o.kind == w.kind
            })
        })
    });
    if window.is_none() && inputs.iter().any(reads_windows) {
        return Err(unsupported(
            "UNION ALL of branches with different windows (each branch must use the same \
             window function, size and window columns in the same places), or of windowed \
             and unwindowed rows",
        ));
    }
    Ok(Node {
        schema: arrow(&u.schema),
        window,
        appends_only,
        op: Op::Union { inputs },
    })
}

/// Whether `node` reads a top-N's rows.
fn reads_rank(node: &Node) -> bool {
    match &node.op {
        Op::Source(_) => false,
        Op::TopN { .. } => true,
        Op::Union { inputs } => inputs.iter().any(reads_rank),
        Op::Join { left, right, .. } => reads_rank(left) || reads_rank(right),
        // An aggregate's rows are its own, whatever it groups.
        Op::Aggregate { .. } => false,
        Op::Filter { input, .. } | Op::Project { input, .. } | Op::Over { input, .. } => {
            reads_rank(input)
        }
    }
}

/// `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)` under a filter that keeps `rn <= N`
/// (or `rn < N`, `rn = 1`): a top-N operator, with the filter's other conditions in a
/// filter above it.
fn build_top_n(
    f: &datafusion::logical_expr::Filter,
    w: &datafusion::logical_expr::Window,
    projections: &[&datafusion::logical_expr::Projection],
    cx: &mut Cx,
) -> Result<Node> {
    let shape = "ROW_NUMBER(), RANK() or DENSE_RANK() OVER (PARTITION BY ... ORDER BY ...) \
                 kept to rn <= N or rn = 1";
    let [expr] = w.window_expr.as_slice() else {
        return Err(unsupported(format!(
            "several window functions in one SELECT; only {shape}"
        )));
    };
    let inner = match expr {
        Expr::Alias(a) => a.expr.as_ref(),
        other => other,
    };
    let Expr::WindowFunction(wf) = inner else {
        return Err(unsupported(format!(
            "window expression {expr}; only {shape}"
        )));
    };
    let name = wf.fun.name().to_ascii_lowercase();
    let p = &wf.params;
    let ranking = match name.as_str() {
        "row_number" => Ranking::RowNumber,
        "rank" => Ranking::Rank,
        "dense_rank" => Ranking::DenseRank,
        _ => return Err(unsupported(format!("{name}() OVER (...); only {shape}"))),
    };
    if !p.args.is_empty() || p.filter.is_some() {
        return Err(unsupported(format!("{name}() OVER (...); only {shape}")));
    }
    let function = ranking.function();
    if p.order_by.is_empty() {
        return Err(EngineError::Sql(format!(
            "{function} without ORDER BY numbers rows in no defined order; add ORDER BY"
        )));
    }
    // The rank column as the filter sees it, through the projections that pruned columns.
    let (qualifier, field) = w.schema.qualified_field(w.schema.fields().len() - 1);
    let rank = datafusion::common::Column::new(qualifier.cloned(), field.name());
    let filtered = f.input.schema();
    let Some(rn) = filtered.maybe_index_of_column(&rank) else {
        return Err(unsupported(format!(
            "a filter that does not name {function}'s column; only {shape}"
        )));
    };
    let mut limit: Option<usize> = None;
    let mut rest = Vec::new();
    for conjunct in datafusion::logical_expr::utils::split_conjunction(&f.predicate) {
        match rank_bound(conjunct, rn, filtered, function)? {
            Some(n) => limit = Some(limit.map_or(n, |l| l.min(n))),
            None => rest.push(conjunct.clone()),
        }
    }
    let Some(limit) = limit else {
        return Err(unsupported(format!(
            "a filter on {function} other than rn <= N, rn < N or rn = 1; only {shape}"
        )));
    };
    let input = build(&w.input, cx)?;
    let mut node = top_n(
        input,
        w.input.schema(),
        &p.partition_by,
        &p.order_by,
        (ranking, limit, function),
        arrow(&w.schema),
        cx,
    )?;
    for p in projections.iter().rev() {
        node = project(p, node, cx)?;
    }
    let Some(rest) = datafusion::logical_expr::utils::conjunction(rest) else {
        return Ok(node);
    };
    let predicate = cx.physical(&rest, filtered)?;
    Ok(Node {
        schema: node.schema.clone(),
        window: node.window,
        appends_only: false,
        op: Op::Filter {
            input: Box::new(node),
            predicate,
            deletes_failing: false,
        },
    })
}

/// `LIMIT n` over `ORDER BY` (DataFusion leaves the limit on the sort too, as its fetch).
fn build_limit(limit: &datafusion::logical_expr::Limit, cx: &mut Cx) -> Result<Node> {
    use datafusion::logical_expr::{FetchType, SkipType};
    match limit.get_skip_type()? {
        SkipType::Literal(0) => {}
        _ => return Err(unsupported("OFFSET")),
    }
    let LogicalPlan::Sort(sort) = limit.input.as_ref() else {
        return Err(unsupported(
            "LIMIT without ORDER BY (which rows it keeps is not defined)",
        ));
    };
    match limit.get_fetch_type()? {
        FetchType::Literal(Some(n)) => {
            build_first_rows(sort, sort.fetch.map_or(n, |f| f.min(n)), cx)
        }
        FetchType::Literal(None) => build(&limit.input, cx),
        FetchType::UnsupportedExpr => Err(unsupported("LIMIT that is not a number")),
    }
}

/// `ORDER BY ... LIMIT n`: the first `n` rows in that order, kept as rows come and go (a
/// top-N of one group, its rank not shown).
fn build_first_rows(sort: &datafusion::logical_expr::Sort, n: usize, cx: &mut Cx) -> Result<Node> {
    if n == 0 {
        return Err(EngineError::Sql("LIMIT 0 keeps no row".into()));
    }
    let input = build(&sort.input, cx)?;
    let in_schema = sort.input.schema();
    let columns = in_schema.as_arrow().fields().to_vec();
    let mut ranked = columns.clone();
    ranked.push(Arc::new(Field::new("__rank", DataType::UInt64, false)));
    let node = top_n(
        input,
        in_schema,
        &[],
        &sort.expr,
        (Ranking::RowNumber, n, "ORDER BY ... LIMIT"),
        Arc::new(Schema::new(ranked)),
        cx,
    )?;
    let exprs = columns
        .iter()
        .enumerate()
        .map(|(i, f)| {
            Arc::new(datafusion::physical_expr::expressions::Column::new(
                f.name(),
                i,
            )) as Arc<dyn PhysicalExpr>
        })
        .collect();
    Ok(Node {
        schema: arrow(in_schema),
        window: node.window,
        appends_only: false,
        op: Op::Project {
            input: Box::new(node),
            exprs,
        },
    })
}

/// The top-N operator over `input` (of logical schema `in_schema`): its rows ranked by
/// `order_by` within each `partition_by` group, those ranked at most `limit` kept;
/// `schema` is the input's columns and the rank; `what` names the SQL in errors.
fn top_n(
    mut input: Node,
    in_schema: &DFSchema,
    partition_by: &[Expr],
    order_by: &[datafusion::logical_expr::SortExpr],
    (ranking, limit, what): (Ranking, usize, &str),
    schema: SchemaRef,
    cx: &mut Cx,
) -> Result<Node> {
    let retracts = changing_input(&mut input, &format!("{what} over"))?;
    if matches!(
        input.window.and_then(|w| w.kind),
        Some(WindowKind::Session { .. })
    ) {
        return Err(unsupported(format!(
            "{what} over SESSION windows: a session's bounds are known only once its rows \
             are aggregated; rank the rows of a view that aggregates the sessions"
        )));
    }
    // Ranked rows are told apart by their input positions; a windowed aggregate's final
    // rows carry a hash of their group key and window instead.
    identify_aggregate_rows(&mut input);
    let Some(positions) = positions(&input) else {
        return Err(unsupported(format!(
            "{what} over rows that carry no identity to rank them by; rank streams' rows, a \
             join's of streams, or an aggregate's"
        )));
    };
    let mut partition_exprs = Vec::new();
    let mut partition_types = Vec::new();
    let (mut by_start, mut by_end) = (false, false);
    let window = input.window.unwrap_or_default();
    for e in partition_by {
        let idx = column_index(e, in_schema);
        by_start |= idx.is_some() && idx == window.start_col;
        by_end |= idx.is_some() && idx == window.end_col;
        partition_types.push(e.get_type(in_schema)?);
        partition_exprs.push(cx.physical(e, in_schema)?);
    }
    let size_ms = window.kind.and_then(WindowKind::size_ms);
    if by_start && !by_end && size_ms.is_none() {
        // Sessions starting together end apart: a group per start would close with its
        // first session's end, and rank the later ones in a group of their own.
        return Err(unsupported(format!(
            "{what} per window by window_start over sessions' rows (sessions that start \
             together end at different times): PARTITION BY window_end"
        )));
    }
    if input.window.is_some() {
        refuse_amended_windows(&input, what, cx.options)?;
    }
    let mut order_exprs = Vec::new();
    let mut order_types = Vec::new();
    for s in order_by {
        order_types.push(s.expr.get_type(in_schema)?);
        order_exprs.push((
            cx.physical(&s.expr, in_schema)?,
            arrow_schema::SortOptions {
                descending: !s.asc,
                nulls_first: s.nulls_first,
            },
        ));
    }
    let id = cx.next_id;
    cx.next_id += 1;
    let top = TopN::new(
        id,
        TopNSpec {
            schema: schema.clone(),
            partition_by: partition_exprs,
            partition_types,
            order_by: order_exprs,
            order_types,
            limit,
            ranking,
            window_end: match (by_start || by_end, window.end_col, window.start_col) {
                (false, _, _) => None,
                (true, Some(end), _) => Some(WindowEnd::Column(end)),
                // The scan dropped window_end: a fixed window's end is its start plus size.
                (true, None, Some(start)) => Some(WindowEnd::FromStart {
                    start,
                    size_ms: size_ms.ok_or_else(|| {
                        EngineError::Bug("a top-N per window of unknown size".into())
                    })?,
                }),
                (true, None, None) => {
                    return Err(EngineError::Bug(
                        "a top-N per window whose window has neither start nor end".into(),
                    ));
                }
            },
            positions,
        },
    )?;
    let top = if retracts { top.retracting()? } else { top };
    Ok(Node {
        schema,
        window: input.window,
        appends_only: false,
        op: Op::TopN {
            input: Box::new(input),
            top: Box::new(top),
        },
    })
}

/// A top-N over a windowed aggregate's rows ranks each window's rows once, when they are
/// final: the view options that would write its windows earlier, or again, do
/// not apply to it, and are refused rather than ignored.
fn refuse_amended_windows(input: &Node, what: &str, options: &ViewOptions) -> Result<()> {
    if !matches!(under_filters(input).op, Op::Aggregate { .. }) {
        return Ok(());
    }
    let option = if options.emit == EmitPolicy::OnUpdate {
        "emit = 'on_update'"
    } else if options.late_data == LatePolicy::Update {
        "late_data = 'update'"
    } else {
        return Ok(());
    };
    Err(unsupported(format!(
        "{option} on a view that ranks a windowed aggregate's rows with {what}: each window \
         is ranked once, when its rows are final"
    )))
}

/// `LAG(x[, offset[, default]])` or `LEAD(...)` (`function`): `x` of the row `offset` rows
/// before (after) in the group; a negative offset reads the other way, as DataFusion's.
fn shifted(function: &str, args: &[Expr], schema: &DFSchema) -> Result<crate::over::OverFn> {
    let call = function.to_ascii_uppercase();
    let literal = |e: &Expr| match e {
        Expr::Literal(v, _) => Some(v.clone()),
        _ => None,
    };
    let arg_type = match args.first() {
        Some(x) if args.len() <= 3 => x.get_type(schema)?,
        _ => {
            return Err(EngineError::Sql(format!(
                "{call} takes one to three arguments: {call}(x[, offset[, default]])"
            )));
        }
    };
    let offset = match args.get(1) {
        None => 1,
        Some(e) => match literal(e)
            .filter(|v| v.data_type().is_integer())
            .map(|v| v.cast_to(&DataType::Int64))
        {
            Some(Ok(ScalarValue::Int64(Some(n)))) => n,
            _ => {
                return Err(EngineError::Sql(format!(
                    "{call}'s offset {e} is not a row count"
                )));
            }
        },
    };
    if offset.unsigned_abs() > crate::over::PRECEDING_MAX as u64 {
        return Err(EngineError::ResourceLimit(format!(
            "{call} {offset} rows away; at most {} rows before or after the current one",
            crate::over::PRECEDING_MAX
        )));
    }
    let default = match args.get(2) {
        None => ScalarValue::try_from(&arg_type)?,
        Some(e) => match literal(e) {
            Some(v) if v.is_null() => ScalarValue::try_from(&arg_type)?,
            Some(v) => v.cast_to(&arg_type).map_err(|_| {
                EngineError::Sql(format!("{call}'s default {e} is not of type {arg_type}"))
            })?,
            None => {
                return Err(unsupported(format!(
                    "{call}'s default {e}; give a constant"
                )));
            }
        },
    };
    let back = if function == "lag" { offset } else { -offset };
    let offset = back.unsigned_abs() as usize;
    Ok(match back >= 0 {
        true => crate::over::OverFn::Lag { offset, default },
        false => crate::over::OverFn::Lead { offset, default },
    })
}

/// The window frames Freshet runs, for errors.
const OVER_FRAMES: &str = "ROWS BETWEEN n PRECEDING AND CURRENT ROW, RANGE BETWEEN INTERVAL \
     '...' PRECEDING AND CURRENT ROW (over the event time), or ROWS or RANGE \
     BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW (SQL's frame for an OVER with ORDER BY and \
     no frame), or the whole partition (no ORDER BY, or UNBOUNDED PRECEDING AND UNBOUNDED \
     FOLLOWING)";

/// The SQL window functions Freshet runs, for errors.
const OVER_SHAPES: &str = "COUNT, SUM, AVG, MIN, MAX, LAG or LEAD OVER (PARTITION BY ... ORDER BY \
     <event time>[, ...] [ROWS BETWEEN n | UNBOUNDED PRECEDING AND CURRENT ROW]), and \
     ROW_NUMBER(), RANK() or DENSE_RANK() OVER (PARTITION BY ... ORDER BY ...) kept to rn <= N \
     or rn = 1, and any aggregate OVER (PARTITION BY ...) over whole partitions; for time \
     windows use TUMBLE, HOP or SESSION in FROM";

/// Window functions that need two operators, one over the other's rows.
const DIFFERENT_OVERS: &str = "window functions with different OVER (...) clauses in one \
     SELECT; give them the same PARTITION BY, ORDER BY and frame, or use a view each";

/// When `node`'s rows are one stream's rows through filters and projections: the stream,
/// and the output column holding their event time if one does.
fn event_time(node: &Node) -> Option<(String, Option<usize>)> {
    match &node.op {
        Op::Source(s) => Some((
            s.stream.clone(),
            s.projection.iter().position(|&c| c == s.time_column),
        )),
        Op::Filter { input, .. } => event_time(input),
        Op::Project { input, exprs } => {
            let (stream, at) = event_time(input)?;
            let out = at.and_then(|at| exprs.iter().position(|e| bare_column(e) == Some(at)));
            Some((stream, out))
        }
        _ => None,
    }
}

/// `agg(x) OVER (PARTITION BY ... ORDER BY <event time> <frame>)` over a stream's rows
/// (every window expression of the SELECT with the same `OVER`), the frame the last `n`
/// rows or every row so far: the windowed-aggregate operator (`over`).
fn build_over(w: &datafusion::logical_expr::Window, cx: &mut Cx) -> Result<Node> {
    use crate::over::{OverFn, OverFrame};
    use datafusion::logical_expr::{WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition};
    if let Some(plan) = crate::whole_partition::as_join(w)? {
        return build(&plan, cx).map_err(|e| match e {
            // Over windows' rows, the partitions' GROUP BY must hold the window.
            EngineError::Sql(m) if m.starts_with("GROUP BY over a windowed input") => {
                EngineError::Sql(
                    "an aggregate OVER (PARTITION BY ...) over whole partitions of windows' \
                     rows must partition by window_start or window_end too"
                        .into(),
                )
            }
            EngineError::Sql(m) => EngineError::Sql(format!(
                "an aggregate OVER (PARTITION BY ...) over whole partitions runs as a join of \
                 the rows with a GROUP BY of their partition keys, which cannot run here: {m}"
            )),
            e => e,
        });
    }
    let input = build(&w.input, cx)?;
    let in_schema = w.input.schema();
    let mut aggs = Vec::new();
    let mut first: Option<&datafusion::logical_expr::expr::WindowFunctionParams> = None;
    for expr in &w.window_expr {
        let inner = match expr {
            Expr::Alias(a) => a.expr.as_ref(),
            other => other,
        };
        let Expr::WindowFunction(wf) = inner else {
            return Err(unsupported(format!(
                "window expression {expr}; only {OVER_SHAPES}"
            )));
        };
        let name = wf.fun.name().to_ascii_lowercase();
        let p = &wf.params;
        let aggregate = OverFn::of(&name);
        let f = match &wf.fun {
            WindowFunctionDefinition::AggregateUDF(_) => aggregate
                .clone()
                .filter(|_| p.filter.is_none() && !p.distinct && p.args.len() == 1),
            WindowFunctionDefinition::WindowUDF(_) if name == "lag" || name == "lead" => {
                if p.null_treatment
                    == Some(datafusion::logical_expr::expr::NullTreatment::IgnoreNulls)
                {
                    return Err(unsupported(format!(
                        "{}(...) IGNORE NULLS",
                        name.to_ascii_uppercase()
                    )));
                }
                Some(shifted(&name, &p.args, in_schema)?)
            }
            WindowFunctionDefinition::WindowUDF(_) => None,
        };
        let Some(f) = f else {
            let how = match (&wf.fun, name.as_str()) {
                (_, "row_number" | "rank" | "dense_rank") => " without a filter keeping rn <= N",
                (WindowFunctionDefinition::AggregateUDF(_), _) if aggregate.is_some() => {
                    " with FILTER, DISTINCT or other than one argument"
                }
                _ => "",
            };
            return Err(unsupported(format!(
                "{name}(...) OVER (...){how}; only {OVER_SHAPES}"
            )));
        };
        match first {
            None => first = Some(p),
            Some(q)
                if q.partition_by == p.partition_by
                    && q.order_by == p.order_by
                    && q.window_frame == p.window_frame => {}
            Some(_) => {
                return Err(unsupported(DIFFERENT_OVERS));
            }
        }
        let arg = &p.args[0];
        let arg_type = arg.get_type(in_schema)?;
        if matches!(f, OverFn::Sum | OverFn::Avg)
            && !(arg_type.is_integer() || arg_type.is_floating())
        {
            return Err(unsupported(format!(
                "{name}({arg}) OVER (...) of type {arg_type}; SUM and AVG over window frames \
                 take integers and floating-point numbers"
            )));
        }
        aggs.push((f, cx.physical(arg, in_schema)?, arg_type));
    }
    let p = first.ok_or_else(|| EngineError::Bug("a window without functions".into()))?;
    let frame = &p.window_frame;
    let frame = match (&frame.units, &frame.start_bound, &frame.end_bound) {
        (WindowFrameUnits::Rows, WindowFrameBound::Preceding(n), WindowFrameBound::CurrentRow)
            if !n.is_null() =>
        {
            let n = match n.cast_to(&DataType::UInt64) {
                Ok(ScalarValue::UInt64(Some(n))) => n,
                _ => {
                    return Err(EngineError::Sql(format!(
                        "{n} PRECEDING is not a row count"
                    )));
                }
            };
            if n > crate::over::PRECEDING_MAX as u64 {
                return Err(EngineError::ResourceLimit(format!(
                    "ROWS BETWEEN {n} PRECEDING; at most {} rows precede the current one",
                    crate::over::PRECEDING_MAX
                )));
            }
            OverFrame::Rows(n as usize)
        }
        (
            units @ (WindowFrameUnits::Rows | WindowFrameUnits::Range),
            WindowFrameBound::Preceding(n),
            WindowFrameBound::CurrentRow,
        ) if n.is_null() => OverFrame::Running {
            peers: *units == WindowFrameUnits::Range,
        },
        (WindowFrameUnits::Range, WindowFrameBound::Preceding(d), WindowFrameBound::CurrentRow) => {
            OverFrame::Range {
                preceding_ms: crate::join::interval_ns(d)
                    .filter(|&ns| ns >= 0)
                    .map(|ns| (ns / 1_000_000) as i64)
                    .ok_or_else(|| {
                        unsupported(format!(
                            "the window frame {frame}: a RANGE frame reaches back over the event \
                         time by a fixed interval (days, hours, minutes, seconds), not by months \
                         or a number"
                        ))
                    })?,
            }
        }
        _ => {
            return Err(unsupported(format!(
                "the window frame {frame}; only {OVER_FRAMES}"
            )));
        }
    };
    if matches!(under_filters(&input).op, Op::Over { .. }) {
        return Err(unsupported(DIFFERENT_OVERS));
    }
    let session = |n: &Node| matches!(&n.op, Op::Source(s) if matches!(s.window, Some(WindowKind::Session { .. })));
    if session(under_filters(&input)) {
        return Err(unsupported(
            "window functions over SESSION windows: a session's bounds are known only once \
             its rows are aggregated; apply them to the rows of a view that aggregates the \
             sessions",
        ));
    }
    let Some((stream, time_col)) = event_time(&input) else {
        return Err(unsupported(format!(
            "{OVER_SHAPES}: over the rows of one stream (through filters and projections that \
             keep its event time), not an aggregate's, a join's or a union's"
        )));
    };
    let ordered_by_time = match p.order_by.first() {
        Some(s) => s.asc && time_col.is_some() && column_index(&s.expr, in_schema) == time_col,
        None => false,
    };
    let time_col = time_col.unwrap_or_default();
    if !ordered_by_time {
        return Err(unsupported(format!(
            "OVER (... ORDER BY ...) that does not start with the stream's event time, \
             ascending; rows are taken in event-time order as the watermark passes them \
             ({OVER_SHAPES})"
        )));
    }
    let then_by = p.order_by[1..]
        .iter()
        .map(|s| {
            let options = arrow_schema::SortOptions {
                descending: !s.asc,
                nulls_first: s.nulls_first,
            };
            Ok((
                cx.physical(&s.expr, in_schema)?,
                SortField::new_with_options(s.expr.get_type(in_schema)?, options),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let partition_by = p
        .partition_by
        .iter()
        .map(|e| Ok((cx.physical(e, in_schema)?, e.get_type(in_schema)?)))
        .collect::<Result<Vec<_>>>()?;
    let id = cx.next_id;
    cx.next_id += 1;
    let schema = arrow(&w.schema);
    let over = crate::over::Over::new(
        id,
        crate::over::OverSpec {
            schema: schema.clone(),
            partition_by,
            time_col,
            then_by,
            frame,
            aggs,
            stream,
        },
    )?;
    Ok(Node {
        schema,
        window: None,
        appends_only: true,
        op: Op::Over {
            input: Box::new(input),
            over: Box::new(over),
        },
    })
}

/// N if `e` bounds the rank column `rn` of `schema` from above (`rn <= N`, `rn < N + 1`,
/// `rn = 1`, either way round); `None` if it does not mention the rank.
fn rank_bound(e: &Expr, rn: usize, schema: &DFSchema, function: &str) -> Result<Option<usize>> {
    use datafusion::logical_expr::Operator;
    let refused = || {
        unsupported(format!(
            "the condition {e} on {function}; keep rows with rn <= N, rn < N or rn = 1"
        ))
    };
    let mentions_rank = e
        .column_refs()
        .iter()
        .any(|c| schema.maybe_index_of_column(c) == Some(rn));
    if !mentions_rank {
        return Ok(None);
    }
    let Expr::BinaryExpr(b) = e else {
        return Err(refused());
    };
    let is_rank = |x: &Expr| column_index(x, schema) == Some(rn);
    let literal = |x: &Expr| match x {
        Expr::Literal(v, _) => match v.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(n))) => Some(n),
            _ => None,
        },
        _ => None,
    };
    // Normalised to `rn <op> n`.
    let (op, n) = if is_rank(&b.left) {
        (b.op, literal(&b.right))
    } else if is_rank(&b.right) {
        let swapped = match b.op {
            Operator::GtEq => Operator::LtEq,
            Operator::Gt => Operator::Lt,
            Operator::Eq => Operator::Eq,
            _ => return Err(refused()),
        };
        (swapped, literal(&b.left))
    } else {
        return Err(refused());
    };
    let n = n.ok_or_else(refused)?;
    let limit = match op {
        Operator::LtEq => n,
        Operator::Lt => n - 1,
        Operator::Eq if n == 1 => 1,
        _ => return Err(refused()),
    };
    if limit < 1 {
        return Err(EngineError::Sql(format!(
            "{e} keeps no row; keep rn <= N with N at least 1"
        )));
    }
    Ok(Some(limit as usize))
}
