//! Queries planned apart from running, with `$1`-style placeholders bound to values at run
//! time: what a client of the PostgreSQL protocol's extended query flow needs (the result's
//! columns and the placeholders' types before it binds values), with failures classified
//! so that the client can be told a SQLSTATE.

use super::BatchSession;
use crate::error::EngineError;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use std::sync::Arc;

/// What kind of failure a query met, as a client of a SQL protocol distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryErrorKind {
    /// The text does not parse.
    Syntax,
    /// It names a table (stream, view) that does not exist.
    UndefinedTable,
    /// It names a column that does not exist.
    UndefinedColumn,
    /// It asks for something Freshet does not do here (writing, defining tables).
    Unsupported,
    /// A bound parameter's value does not fit the type the query needs there.
    InvalidParameter,
    /// Any other mistake in the query (types that do not match, a wrong function call).
    Invalid,
    /// Data that the query cannot process (a value out of range, a failed cast).
    Data,
    /// The query needed more memory than allowed.
    ResourceLimit,
    /// Reading the log or the store failed, or a bug.
    Internal,
}

/// A query's failure and its kind.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct QueryError {
    /// What kind of failure.
    pub kind: QueryErrorKind,
    /// The failure.
    pub error: EngineError,
}

impl QueryError {
    fn new(kind: QueryErrorKind, error: EngineError) -> QueryError {
        QueryError { kind, error }
    }
}

impl From<EngineError> for QueryError {
    fn from(error: EngineError) -> QueryError {
        let kind = match &error {
            EngineError::Sql(_) | EngineError::Input(_) => QueryErrorKind::Invalid,
            EngineError::ResourceLimit(_) => QueryErrorKind::ResourceLimit,
            _ => QueryErrorKind::Internal,
        };
        QueryError { kind, error }
    }
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> QueryError {
        let kind = classify(&e);
        QueryError::new(kind, EngineError::from(e))
    }
}

fn classify(e: &DataFusionError) -> QueryErrorKind {
    use DataFusionError as D;
    match e.find_root() {
        D::SQL(..) => QueryErrorKind::Syntax,
        D::Plan(m) if m.starts_with("table '") && m.ends_with("not found") => {
            QueryErrorKind::UndefinedTable
        }
        D::SchemaError(e, _)
            if matches!(**e, datafusion::common::SchemaError::FieldNotFound { .. }) =>
        {
            QueryErrorKind::UndefinedColumn
        }
        D::NotImplemented(_) => QueryErrorKind::Unsupported,
        D::Plan(_) | D::SchemaError(..) | D::Configuration(_) => QueryErrorKind::Invalid,
        D::ArrowError(..) | D::Execution(_) => QueryErrorKind::Data,
        D::ResourcesExhausted(_) => QueryErrorKind::ResourceLimit,
        _ => QueryErrorKind::Internal,
    }
}

/// A query planned but not run: its result columns and its placeholders.
#[derive(Debug, Clone)]
pub struct Described {
    /// The result's columns.
    pub schema: SchemaRef,
    /// The type each placeholder `$1`, `$2`, ... must have, in order; `None` where the
    /// query does not tell (`SELECT $1`).
    pub parameters: Vec<Option<DataType>>,
}

impl BatchSession {
    fn plan(&self, sql: &str) -> Result<LogicalPlan, QueryError> {
        let sql = super::session::rewrite(sql, &self.streams);
        let state = self.ctx.state();
        let plan = self.runtime.block_on(state.create_logical_plan(&sql))?;
        super::refuse_non_queries(&plan)
            .map_err(|e| QueryError::new(QueryErrorKind::Unsupported, e))?;
        Ok(plan)
    }

    /// Plans `sql` (which may hold `$1`-style placeholders) without running it.
    pub fn describe(&self, sql: &str) -> Result<Described, QueryError> {
        let plan = self.plan(sql)?;
        let types = plan.get_parameter_types()?;
        let count = types
            .keys()
            .filter_map(|id| id.strip_prefix('$')?.parse::<usize>().ok())
            .max()
            .unwrap_or(0);
        let parameters = (1..=count)
            .map(|i| types.get(&format!("${i}")).cloned().flatten())
            .collect();
        Ok(Described {
            schema: Arc::new(plan.schema().as_arrow().clone()),
            parameters,
        })
    }

    /// Runs `sql` with `params[i]` (a one-row array, of any type that casts to what the
    /// query needs there) bound to placeholder `$i+1`, handing each result batch to `each`
    /// as it is produced; returns the result schema.
    pub fn run(
        &self,
        sql: &str,
        params: &[ArrayRef],
        mut each: impl FnMut(&RecordBatch) -> crate::Result<()>,
    ) -> Result<SchemaRef, QueryError> {
        use futures::StreamExt;
        let mut plan = self.plan(sql)?;
        if !params.is_empty() {
            let types = plan.get_parameter_types()?;
            let values = params
                .iter()
                .enumerate()
                .map(|(i, value)| bind(i, value, types.get(&format!("${}", i + 1))))
                .collect::<Result<Vec<ScalarValue>, QueryError>>()?;
            plan = plan.with_param_values(values)?;
        }
        self.runtime.block_on(async {
            let frame = self.ctx.execute_logical_plan(plan).await?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let mut stream = frame.execute_stream().await?;
            while let Some(batch) = stream.next().await {
                each(&batch?)?;
            }
            Ok(schema)
        })
    }

    /// Adds (or replaces) a table `name` holding `batch`, for the queries that follow.
    pub fn register_batch(&self, name: &str, batch: RecordBatch) -> crate::Result<()> {
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        self.ctx.deregister_table(name)?;
        self.ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }
}

/// Placeholder `$i+1`'s value, cast to the type the query needs there (if it says).
fn bind(
    i: usize,
    value: &ArrayRef,
    wanted: Option<&Option<DataType>>,
) -> Result<ScalarValue, QueryError> {
    let invalid = |m: String| {
        QueryError::new(
            QueryErrorKind::InvalidParameter,
            EngineError::Sql(format!("parameter ${}: {m}", i + 1)),
        )
    };
    if value.len() != 1 {
        return Err(invalid(format!(
            "{} values given, one expected",
            value.len()
        )));
    }
    let value = match wanted {
        Some(Some(t)) if t != value.data_type() => {
            let options = arrow_cast::CastOptions {
                safe: false,
                ..Default::default()
            };
            arrow_cast::cast_with_options(value, t, &options)
                .map_err(|e| invalid(format!("not a valid {t}: {e}")))?
        }
        _ => value.clone(),
    };
    ScalarValue::try_from_array(&value, 0).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{TimeRange, Views};
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    fn session() -> BatchSession {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let session = BatchSession::new(
            dir.path(),
            &[],
            Views::Stored(Vec::new()),
            TimeRange::default(),
            &[],
        )
        .expect("a session");
        let schema = Arc::new(Schema::new(vec![
            Field::new("auction", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            ],
        )
        .expect("a batch");
        session.register_batch("t", batch).expect("registered");
        session
    }

    #[test]
    fn placeholders_are_typed_by_the_query_and_bound_from_text() {
        let session = session();
        let described = session
            .describe("SELECT name FROM t WHERE auction = $1")
            .expect("planned");
        assert_eq!(described.parameters, vec![Some(DataType::Int64)]);
        assert_eq!(described.schema.field(0).name(), "name");
        let mut rows = Vec::new();
        session
            .run(
                "SELECT name FROM t WHERE auction = $1",
                &[Arc::new(StringArray::from(vec!["3"])) as ArrayRef],
                |b| {
                    let names = b.column(0).as_any().downcast_ref::<StringArray>();
                    rows.extend(names.expect("text").iter().map(|v| v.map(str::to_owned)));
                    Ok(())
                },
            )
            .expect("ran");
        assert_eq!(rows, vec![Some("c".to_owned())]);
        let bad = session
            .run(
                "SELECT name FROM t WHERE auction = $1",
                &[Arc::new(StringArray::from(vec!["three"])) as ArrayRef],
                |_| Ok(()),
            )
            .expect_err("not a number");
        assert_eq!(bad.kind, QueryErrorKind::InvalidParameter);
    }

    #[test]
    fn failures_are_classified() {
        let session = session();
        let kind = |sql: &str| session.describe(sql).expect_err(sql).kind;
        assert_eq!(kind("SELEC 1"), QueryErrorKind::Syntax);
        assert_eq!(
            kind("SELECT * FROM nowhere"),
            QueryErrorKind::UndefinedTable
        );
        assert_eq!(
            kind("SELECT nothing FROM t"),
            QueryErrorKind::UndefinedColumn
        );
        assert_eq!(kind("CREATE TABLE x (a INT)"), QueryErrorKind::Unsupported);
        assert_eq!(
            kind("INSERT INTO t VALUES (1, 'a')"),
            QueryErrorKind::Unsupported
        );
    }

    #[test]
    fn issue_20_explain_analyze_copy_is_refused_for_queries() {
        let session = session();
        let dir = tempfile::tempdir().expect("a temporary directory");
        for (n, sql) in [
            "EXPLAIN ANALYZE COPY (SELECT * FROM t) TO '{}'",
            "EXPLAIN ANALYZE INSERT INTO t VALUES (4, 'd')",
            "EXPLAIN COPY (SELECT * FROM t) TO '{}'",
            "SELECT * FROM t WHERE auction IN (SELECT 1) UNION ALL SELECT * FROM t",
        ]
        .iter()
        .enumerate()
        {
            let path = dir.path().join(format!("out{n}.csv"));
            let sql = sql.replace("{}", &path.display().to_string());
            let writes = sql.contains("COPY") || sql.contains("INSERT");
            let described = session.describe(&sql);
            let ran = session.run(&sql, &[], |_| Ok(()));
            let queried = session.query(&sql);
            if writes {
                assert_eq!(described.expect_err(&sql).kind, QueryErrorKind::Unsupported);
                assert_eq!(ran.expect_err(&sql).kind, QueryErrorKind::Unsupported);
                assert!(queried.is_err(), "{sql}");
            } else {
                described.expect(&sql);
                ran.expect(&sql);
                queried.expect(&sql);
            }
            assert!(!path.exists(), "{sql} wrote {}", path.display());
        }
        let (_, rows) = session.query("SELECT * FROM t").expect("a query");
        assert_eq!(rows.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
    }
}
