//! Statements over the PostgreSQL protocol, simple and extended.
//!
//! Each statement is told apart by its text before anything runs ([`classify`]):
//! - Freshet's own statements (CREATE/DROP STREAM and VIEW, SHOW VIEWS, SHOW STREAMS,
//!   DESCRIBE VIEW, COPY ... TO 'file') go where `POST /v1/sql` sends them, to the views
//!   thread (`sql::submit`); SHOW and DESCRIBE answer rows of one text column.
//! - Transaction control and settings (BEGIN, COMMIT, ROLLBACK, SET, RESET) are accepted
//!   and change nothing: every statement applies at once, and drivers that open a
//!   transaction first (psycopg does) must not fail on it.
//! - Anything else is a query DataFusion runs over the streams (the log) and the views
//!   (the result store), in a session like `freshet query`'s (`batch_query::session`),
//!   plus the system table `freshet_freshness` when the query names it. The query runs on
//!   the blocking pool and hands its rows over a bounded channel as they are produced, so a
//!   result is streamed, never held whole.
//!
//! Roles as over HTTP (`auth::authorize`): queries, SHOW and DESCRIBE need `query`; DDL and
//! COPY need `admin`.

use super::auth::authorize;
use super::error::{
    self, FEATURE_NOT_SUPPORTED, INSUFFICIENT_RESOURCES, INTERNAL_ERROR, SYNTAX_ERROR,
};
use super::{freshness, types};
use crate::app::auth::Role;
use crate::app::batch_query;
use crate::server::sql::submit;
use crate::server::state::App;
use arrow_array::ArrayRef;
use async_trait::async_trait;
use freshet_engine::batch::{BatchSession, Described};
use freshet_engine::copy::parse_copy;
use freshet_engine::manage::NO_VIEWS;
use freshet_engine::statement::NO_STREAMS;
use freshet_engine::{EngineError, Statement, ViewStatement};
use freshet_streams::ddl::{StreamStatement, split_statements};
use freshet_types::limits::{PG_QUERIES_MAX, PG_QUERIES_WAIT, PG_RESULT_BATCHES_IN_FLIGHT};
use futures::{Sink, Stream, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DataRowEncoder, DescribePortalResponse, DescribeResponse, DescribeStatementResponse, FieldInfo,
    QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::DataRow;
use std::fmt::Debug;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a statement is, told from its text.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A query for DataFusion.
    Query,
    /// A statement of Freshet's own, run by the views thread.
    Freshet {
        /// What it is, as its command tag names it (`CREATE VIEW`, `SHOW VIEWS`, `COPY`).
        name: &'static str,
        /// The role it needs.
        needs: Role,
        /// For a statement that answers rows: the name of their one text column.
        column: Option<&'static str>,
    },
    /// Transaction control or a setting, accepted without effect.
    Session {
        /// Its command tag.
        tag: &'static str,
        /// What it does to the transaction status the client is told.
        transaction: Transaction,
    },
}

/// What a session statement does to the transaction status reported to the client.
#[derive(Debug, Clone, Copy)]
pub enum Transaction {
    Begin,
    End,
    Unchanged,
}

/// A statement ready to run: its text and kind.
#[derive(Debug, Clone)]
pub struct Prepared {
    sql: String,
    kind: Kind,
}

/// Tells what `sql` (one statement) is; a malformed statement of Freshet's own is an
/// error here, before anything runs.
pub fn classify(sql: &str) -> PgWireResult<Kind> {
    let sql = sql.trim().trim_end_matches(';').trim_end();
    let words: Vec<String> = sql
        .split_whitespace()
        .take(2)
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .collect();
    let first = words.first().map_or("", String::as_str);
    let second = words.get(1).map_or("", String::as_str);
    let session = |tag, transaction| Ok(Kind::Session { tag, transaction });
    match first {
        "BEGIN" | "START" => return session("BEGIN", Transaction::Begin),
        "COMMIT" | "END" => return session("COMMIT", Transaction::End),
        "ROLLBACK" | "ABORT" => return session("ROLLBACK", Transaction::End),
        "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "TRUNCATE" => {
            return Err(error::error(
                FEATURE_NOT_SUPPORTED,
                format!(
                    "{first} is not supported: streams are written by ingest (HTTP or \
                     `freshet ingest`), views by their queries"
                ),
            ));
        }
        "SET" => return session("SET", Transaction::Unchanged),
        "RESET" => return session("RESET", Transaction::Unchanged),
        "COPY" => {
            return match parse_copy(sql) {
                Ok(Some(_)) => Ok(freshet("COPY", Role::Admin, None)),
                Ok(None) => Err(error::error(SYNTAX_ERROR, "not a COPY statement")),
                Err(e) => Err(refused(&e.to_string())),
            };
        }
        _ => {}
    }
    match Statement::parse(sql) {
        Ok(statement) => Ok(match statement {
            Statement::View(ViewStatement::Show) => {
                freshet("SHOW VIEWS", Role::Query, Some("view"))
            }
            Statement::View(ViewStatement::Describe(_)) => {
                freshet("DESCRIBE VIEW", Role::Query, Some("description"))
            }
            Statement::ShowStreams => freshet("SHOW STREAMS", Role::Query, Some("stream")),
            Statement::View(ViewStatement::Create { .. }) => {
                freshet("CREATE VIEW", Role::Admin, None)
            }
            Statement::View(ViewStatement::Drop { .. }) => freshet("DROP VIEW", Role::Admin, None),
            Statement::Stream(StreamStatement::Create { .. }) => {
                freshet("CREATE STREAM", Role::Admin, None)
            }
            Statement::Stream(StreamStatement::Drop { .. }) => {
                freshet("DROP STREAM", Role::Admin, None)
            }
        }),
        // Definitions are Freshet's to judge; anything else is DataFusion's.
        Err(e)
            if matches!(first, "CREATE" | "DROP" | "ALTER")
                || (first, second) == ("DESCRIBE", "VIEW") =>
        {
            Err(refused(&e.to_string()))
        }
        Err(_) => Ok(Kind::Query),
    }
}

fn freshet(name: &'static str, needs: Role, column: Option<&'static str>) -> Kind {
    Kind::Freshet {
        name,
        needs,
        column,
    }
}

/// A statement the engine refused, with the SQLSTATE its message tells.
fn refused(message: &str) -> PgWireError {
    error::error(error::statement_code(message), message)
}

/// The query handlers of every connection.
pub struct Queries {
    app: Arc<App>,
    parser: Arc<Parser>,
    /// Places for the [`PG_QUERIES_MAX`] queries that may run at once, over all connections.
    running: Arc<Semaphore>,
}

impl Queries {
    pub fn new(app: Arc<App>) -> Queries {
        Queries {
            app,
            parser: Arc::new(Parser),
            running: Arc::new(Semaphore::new(PG_QUERIES_MAX)),
        }
    }

    /// Runs one statement; `params` are its bound values (extended protocol), `format` the
    /// result formats the client asked for.
    async fn execute<C>(
        &self,
        client: &mut C,
        prepared: &Prepared,
        params: Vec<ArrayRef>,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match &prepared.kind {
            Kind::Session { tag, transaction } => Ok(match transaction {
                Transaction::Begin => Response::TransactionStart(Tag::new(tag)),
                Transaction::End => Response::TransactionEnd(Tag::new(tag)),
                Transaction::Unchanged => Response::Execution(Tag::new(tag)),
            }),
            Kind::Freshet {
                name,
                needs,
                column,
            } => {
                authorize(&self.app.credentials, &*client, Some(*needs), name)?;
                self.statement(client, &prepared.sql, name, *column, format)
                    .await
            }
            Kind::Query => {
                authorize(
                    &self.app.credentials,
                    &*client,
                    Some(Role::Query),
                    "a query",
                )?;
                let described = self.describe(&prepared.sql).await?;
                let fields = Arc::new(types::fields(&described.schema, format));
                let rows = rows(
                    self.app.clone(),
                    self.running.clone(),
                    prepared.sql.clone(),
                    params,
                    fields.clone(),
                );
                Ok(Response::Query(QueryResponse::new(fields, rows)))
            }
        }
    }

    /// A statement of Freshet's own, through the views thread as `POST /v1/sql` runs it.
    async fn statement<C>(
        &self,
        client: &mut C,
        sql: &str,
        name: &'static str,
        column: Option<&'static str>,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let outcome = submit(&self.app, sql.to_owned())
            .await
            .map_err(error::from_api)?
            .join("\n");
        if let Some(column) = column {
            let fields = Arc::new(vec![text_field(column, format)]);
            let lines: Vec<&str> = if outcome == NO_VIEWS || outcome == NO_STREAMS {
                Vec::new()
            } else {
                outcome.lines().collect()
            };
            let mut encoder = DataRowEncoder::new(fields.clone());
            let mut rows = Vec::with_capacity(lines.len());
            for line in lines {
                encoder.encode_field(&line)?;
                rows.push(Ok(encoder.take_row()));
            }
            return Ok(Response::Query(QueryResponse::new(
                fields,
                futures::stream::iter(rows),
            )));
        }
        // `IF [NOT] EXISTS` that found nothing to do says so, as PostgreSQL does.
        if outcome.ends_with(", skipped") {
            use futures::SinkExt;
            let notice = pgwire::error::ErrorInfo::new("NOTICE".into(), "00000".into(), outcome);
            client
                .feed(PgWireBackendMessage::NoticeResponse(notice.into()))
                .await?;
            return Ok(Response::Execution(Tag::new(name)));
        }
        if name == "COPY" {
            // "COPY <rows> to <file>"
            let rows = outcome
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| {
                    error::error(
                        INTERNAL_ERROR,
                        format!("unexpected COPY outcome: {outcome}"),
                    )
                })?;
            return Ok(Response::Execution(Tag::new("COPY").with_rows(rows)));
        }
        Ok(Response::Execution(Tag::new(name)))
    }

    /// Plans a query: its columns and placeholders.
    async fn describe(&self, sql: &str) -> PgWireResult<Described> {
        let app = self.app.clone();
        let sql = sql.to_owned();
        tokio::task::spawn_blocking(move || {
            open(&app, &sql)?.describe(&sql).map_err(error::from_query)
        })
        .await
        .map_err(error::task_failed)?
    }

    /// The values bound to `portal`'s placeholders, each read as the type it was declared
    /// as, else as the query needs it.
    async fn parameters(&self, portal: &Portal<Prepared>) -> PgWireResult<Vec<ArrayRef>> {
        let declared = &portal.statement.parameter_types;
        let declared = |i: usize| declared.get(i).and_then(Option::as_ref);
        let count = portal.parameter_len();
        // A binary value must be read as some type: ask the query when the client did
        // not say.
        let described =
            if (0..count).any(|i| declared(i).is_none() && portal.parameter_format.is_binary(i)) {
                Some(self.describe(&portal.statement.statement.sql).await?)
            } else {
                None
            };
        (0..count)
            .map(|i| {
                let needed = described
                    .as_ref()
                    .and_then(|d| d.parameters.get(i))
                    .and_then(Option::as_ref);
                types::parameter(portal, i, &types::parameter_type(declared(i), needed))
            })
            .collect()
    }

    /// The columns a statement answers, in `format`; `None` if it answers none.
    async fn columns(
        &self,
        prepared: &Prepared,
        format: &Format,
    ) -> PgWireResult<Option<(Vec<FieldInfo>, Described)>> {
        match &prepared.kind {
            Kind::Query => {
                let described = self.describe(&prepared.sql).await?;
                Ok(Some((types::fields(&described.schema, format), described)))
            }
            Kind::Freshet {
                column: Some(column),
                ..
            } => Ok(Some((
                vec![text_field(column, format)],
                Described {
                    schema: Arc::new(arrow_schema::Schema::empty()),
                    parameters: Vec::new(),
                },
            ))),
            Kind::Freshet { .. } | Kind::Session { .. } => Ok(None),
        }
    }
}

fn text_field(name: &str, format: &Format) -> FieldInfo {
    FieldInfo::new(
        name.to_owned(),
        None,
        None,
        Type::TEXT,
        format.format_for(0),
    )
}

/// A batch session for `sql`: the streams and views, and `freshet_freshness` if it names it.
fn open(app: &App, sql: &str) -> PgWireResult<BatchSession> {
    let internal = |e: anyhow::Error| error::error(INTERNAL_ERROR, format!("{e:#}"));
    let session = batch_query::session(app.log.root(), &app.store, &[]).map_err(internal)?;
    if freshness::mentioned(sql) {
        let table = freshness::table(app).map_err(internal)?;
        session
            .register_batch(freshness::TABLE, table)
            .map_err(|e| internal(e.into()))?;
    }
    Ok(session)
}

/// A place among the [`PG_QUERIES_MAX`] running queries, waiting [`PG_QUERIES_WAIT`] at most.
async fn admit(running: Arc<Semaphore>) -> PgWireResult<OwnedSemaphorePermit> {
    match tokio::time::timeout(PG_QUERIES_WAIT, running.acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(error::error(
            INSUFFICIENT_RESOURCES,
            format!(
                "too many queries running ({PG_QUERIES_MAX} at most, over all connections, \
                 suspended portals included); try again, or close portals left open"
            ),
        )),
    }
}

/// The rows of `sql` as a stream: the query starts when the stream is first polled (after
/// the statements before it in the same message), once it has one of the `running` places
/// ([`admit`]), which its blocking task holds until the query ends (its rows all taken, or
/// the stream dropped); it runs on the blocking pool and waits while
/// [`PG_RESULT_BATCHES_IN_FLIGHT`] encoded batches are unsent.
fn rows(
    app: Arc<App>,
    running: Arc<Semaphore>,
    sql: String,
    params: Vec<ArrayRef>,
    fields: Arc<Vec<FieldInfo>>,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    let started = async move {
        let permit = admit(running).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(PG_RESULT_BATCHES_IN_FLIGHT);
        let task = tokio::task::spawn_blocking(move || {
            let session = match open(&app, &sql) {
                Ok(session) => session,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            // Set once an error went to the client, which then needs no other.
            let mut told = false;
            let ran = session.run(&sql, &params, |batch| {
                let encoded =
                    check_columns(batch, &fields).and_then(|()| types::encode(batch, &fields));
                let failed = encoded.is_err();
                told |= failed;
                // This thread drives the session's own runtime (`block_on`), which tokio's
                // `blocking_send` refuses; waiting here for room is what is meant.
                if futures::executor::block_on(tx.send(encoded)).is_err() {
                    return Err(EngineError::Input("the client went away".into()));
                }
                match failed {
                    true => Err(EngineError::Input("the result could not be sent".into())),
                    false => Ok(()),
                }
            });
            if let Err(e) = ran
                && !told
            {
                let _ = tx.blocking_send(Err(error::from_query(e)));
            }
            // The session's runtime ends here, on this thread, not on an async one.
            drop(session);
            // The query's place goes once its work is done (its rows sent or refused).
            drop(permit);
        });
        // Once the rows end, whether the task ended well: a panic must not pass for the
        // end of the result.
        Ok(futures::stream::unfold(
            (rx, Some(task)),
            |(mut rx, task)| async move {
                match rx.recv().await {
                    Some(item) => Some((item, (rx, task))),
                    None => match task?.await {
                        Ok(()) => None,
                        Err(e) => Some((Err(error::task_failed(e)), (rx, None))),
                    },
                }
            },
        ))
    };
    futures::stream::once(started)
        .flat_map(|started: PgWireResult<_>| match started {
            Ok(rows) => rows.left_stream(),
            Err(e) => futures::stream::iter([Err(e)]).right_stream(),
        })
        .flat_map(|item: PgWireResult<Vec<DataRow>>| {
            futures::stream::iter(match item {
                Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
        })
}

/// The batch's columns are those the client was described (the query was planned again
/// to run it, and a view may have been replaced in between).
fn check_columns(batch: &arrow_array::RecordBatch, fields: &[FieldInfo]) -> PgWireResult<()> {
    let same = batch.num_columns() == fields.len()
        && batch
            .schema()
            .fields()
            .iter()
            .zip(fields)
            .all(|(a, b)| types::pg_type(a.data_type()) == *b.datatype());
    match same {
        true => Ok(()),
        false => Err(error::error(
            FEATURE_NOT_SUPPORTED,
            "the query's columns changed between its description and its run (a view was \
             dropped or created meanwhile); run it again",
        )),
    }
}

/// Refuses a message in which a Freshet statement that changes something (DDL, `COPY`)
/// follows a query: queries run lazily, as their rows are sent, which is after the whole
/// message was taken in, so the statement would run first and change what the query
/// before it reads. Statements that only answer rows (SHOW, DESCRIBE) may follow queries.
/// Only the statements before the first that cannot be classified count: it ends the
/// message.
fn out_of_order(kinds: &[PgWireResult<Kind>]) -> Option<PgWireError> {
    let mut queried = false;
    for kind in kinds {
        match kind {
            Err(_) => break,
            Ok(Kind::Query) => queried = true,
            Ok(Kind::Freshet {
                name, column: None, ..
            }) if queried => {
                return Some(error::error(
                    FEATURE_NOT_SUPPORTED,
                    format!(
                        "send Freshet statements in their own message, not after a query: \
                         {name} would run before the query's rows are read; nothing in this \
                         message ran"
                    ),
                ));
            }
            Ok(_) => {}
        }
    }
    None
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements =
            split_statements(query).map_err(|e| error::error(SYNTAX_ERROR, e.to_string()))?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let kinds: Vec<PgWireResult<Kind>> = statements.iter().map(|sql| classify(sql)).collect();
        if let Some(e) = out_of_order(&kinds) {
            return Ok(vec![Response::Error(Box::new(e.into()))]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        // As in PostgreSQL, the first failure ends the message: the statements after it
        // do not run.
        for (sql, kind) in statements.into_iter().zip(kinds) {
            let outcome = match kind {
                Ok(kind) => {
                    let prepared = Prepared { sql, kind };
                    self.execute(client, &prepared, Vec::new(), &Format::UnifiedText)
                        .await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(response) => responses.push(response),
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => {
                    responses.push(Response::Error(Box::new(e.into())));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        statement: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        check_role(self, &*client, &statement.statement)?;
        let Some((fields, described)) = self
            .columns(&statement.statement, &Format::UnifiedText)
            .await?
        else {
            return Ok(DescribeStatementResponse::no_data());
        };
        let declared = &statement.parameter_types;
        let count = declared.len().max(described.parameters.len());
        let parameters = (0..count)
            .map(|i| {
                types::parameter_type(
                    declared.get(i).and_then(Option::as_ref),
                    described.parameters.get(i).and_then(Option::as_ref),
                )
            })
            .collect();
        Ok(DescribeStatementResponse::new(parameters, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        check_role(self, &*client, &portal.statement.statement)?;
        Ok(
            match self
                .columns(&portal.statement.statement, &portal.result_column_format)
                .await?
            {
                Some((fields, _)) => DescribePortalResponse::new(fields),
                None => DescribePortalResponse::no_data(),
            },
        )
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        // The role first: reading the parameters may plan the query (`describe`), which
        // opens a session over the log and the store.
        check_role(self, &*client, prepared)?;
        let params = match prepared.kind {
            Kind::Query => self.parameters(portal).await?,
            _ if portal.parameter_len() > 0 => {
                return Err(error::error(
                    FEATURE_NOT_SUPPORTED,
                    "only queries take parameters; statements such as CREATE VIEW do not",
                ));
            }
            _ => Vec::new(),
        };
        self.execute(client, prepared, params, &portal.result_column_format)
            .await
    }
}

/// Describing tells what a statement reads: it needs the role that running it needs.
fn check_role(
    queries: &Queries,
    client: &impl ClientInfo,
    prepared: &Prepared,
) -> PgWireResult<()> {
    let (needs, what) = match &prepared.kind {
        Kind::Query => (Some(Role::Query), "a query"),
        Kind::Freshet { needs, name, .. } => (Some(*needs), *name),
        Kind::Session { tag, .. } => (None, *tag),
    };
    authorize(&queries.app.credentials, client, needs, what)
}

/// Parses a statement of the extended protocol: one statement, classified.
pub struct Parser;

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements =
            split_statements(sql).map_err(|e| error::error(SYNTAX_ERROR, e.to_string()))?;
        if statements.len() > 1 {
            return Err(error::error(
                SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(sql) = statements.pop() else {
            return Ok(None);
        };
        let kind = classify(&sql)?;
        Ok(Some(Prepared { sql, kind }))
    }

    /// Unused: the handler describes statements itself (`do_describe_statement`), the only
    /// caller of this.
    fn get_parameter_types(&self, _: &Prepared) -> PgWireResult<Vec<Type>> {
        Err(error::error(
            INTERNAL_ERROR,
            "statements are described by the query handler",
        ))
    }

    /// Unused, as [`Parser::get_parameter_types`].
    fn get_result_schema(&self, _: &Prepared, _: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        Err(error::error(
            INTERNAL_ERROR,
            "statements are described by the query handler",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(sql: &str) -> String {
        match classify(sql) {
            Ok(Kind::Query) => "query".into(),
            Ok(Kind::Freshet { name, needs, .. }) => format!("{name} ({needs})"),
            Ok(Kind::Session { tag, .. }) => format!("session {tag}"),
            Err(e) => format!("error {}", pgwire::error::ErrorInfo::from(e).code),
        }
    }

    #[test]
    fn statements_are_told_apart_by_their_text() {
        assert_eq!(kind("SELECT * FROM bid"), "query");
        assert_eq!(kind("describe bid"), "query");
        assert_eq!(kind("SHOW TABLES"), "query");
        assert_eq!(kind("show views"), "SHOW VIEWS (query)");
        assert_eq!(kind("SHOW STREAMS;"), "SHOW STREAMS (query)");
        assert_eq!(kind("DESCRIBE VIEW v"), "DESCRIBE VIEW (query)");
        assert_eq!(kind("DROP VIEW v"), "DROP VIEW (admin)");
        assert_eq!(kind("DROP STREAM IF EXISTS s"), "DROP STREAM (admin)");
        assert_eq!(
            kind("CREATE STREAM s (a BIGINT, t TIMESTAMP NOT NULL, WATERMARK FOR t AS t)"),
            "CREATE STREAM (admin)"
        );
        assert_eq!(kind("COPY v TO '/tmp/x.csv'"), "COPY (admin)");
        assert_eq!(kind("begin"), "session BEGIN");
        assert_eq!(kind("START TRANSACTION"), "session BEGIN");
        assert_eq!(kind("ROLLBACK"), "session ROLLBACK");
        assert_eq!(kind("SET extra_float_digits = 3"), "session SET");
        assert_eq!(kind("CREATE TABLE t (a INT)"), "error 0A000");
        assert_eq!(kind("insert into bid values (1)"), "error 0A000");
        assert_eq!(kind("CREATE VIEW v AS SELEC"), "error 42601");
    }

    #[tokio::test]
    async fn queries_over_the_limit_wait_then_are_refused() {
        let running = Arc::new(Semaphore::new(PG_QUERIES_MAX));
        let mut held = Vec::new();
        for _ in 0..PG_QUERIES_MAX {
            held.push(admit(running.clone()).await.expect("a place"));
        }
        let asked = std::time::Instant::now();
        let refused = admit(running.clone()).await.expect_err("over the limit");
        assert!(asked.elapsed() >= PG_QUERIES_WAIT);
        assert_eq!(
            pgwire::error::ErrorInfo::from(refused).code,
            INSUFFICIENT_RESOURCES
        );
        // A place given back (a query ended, a portal closed) is taken by the next one.
        drop(held.pop());
        let _place = admit(running).await.expect("the place given back");
    }

    #[test]
    fn a_change_after_a_query_in_one_message_is_refused() {
        let kinds = |sqls: &[&str]| -> Vec<PgWireResult<Kind>> {
            sqls.iter().map(|sql| classify(sql)).collect()
        };
        let refused = |sqls: &[&str]| out_of_order(&kinds(sqls)).is_some();
        assert!(refused(&["SELECT * FROM counts", "DROP VIEW counts"]));
        assert!(refused(&[
            "SELECT 1",
            "SHOW VIEWS",
            "COPY counts TO '/tmp/x.csv'"
        ]));
        // Changes before the queries run first, as they are written.
        assert!(!refused(&["DROP VIEW counts", "SELECT 1"]));
        assert!(!refused(&[
            "SELECT 1",
            "SHOW VIEWS",
            "DESCRIBE VIEW counts"
        ]));
        assert!(!refused(&["SELECT 1", "BEGIN", "SELECT 2"]));
        let refusal = out_of_order(&kinds(&["SELECT 1", "DROP VIEW counts"])).expect("refused");
        assert_eq!(
            pgwire::error::ErrorInfo::from(refusal).code,
            FEATURE_NOT_SUPPORTED
        );
    }
}
