//! The PostgreSQL result store: the same protocol as SQLite, in plain typed tables that any
//! PostgreSQL client can read.
//!
//! Everything lives in one schema (default `freshet`, or `?schema=` on the URL): the
//! store's own `freshet_*` tables, and one results table per view named exactly as the
//! view. A commit is one transaction: result rows are deduplicated by key (the last write
//! of a key wins, as it would row by row) and sent as one array per column through
//! `INSERT … SELECT … FROM unnest(…) ON CONFLICT … DO UPDATE`, a few statements per commit
//! whatever its size; state, late events and progress go the same way.
//!
//! # Connections and failures
//!
//! Each store holds one connection, opened lazily and opened again after it is lost. Errors
//! say whether a retry can help ([`StoreError::retriable`]); after a retriable error the
//! connection is dropped, so the next call starts on a fresh one. Statements time out after
//! [`STATEMENT_TIMEOUT`].
//!
//! # One writer per view
//!
//! [`ResultStore::claim_writer`] takes a session-level advisory lock keyed by the schema
//! and view. Another process claiming the same view is refused with a message naming the
//! holder; the lock goes when the holder's connection does (exit, crash, a terminated
//! backend). A writer whose connection was lost takes its locks again before it writes
//! anything; if another process took one meanwhile, it stops with a clear error.
//!
//! The tables are described for people who read them in `docs/store-schema.md`.

mod types;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_row::{RowConverter, SortField};
use postgres::types::ToSql;
use postgres::{Client, Config, IsolationLevel, NoTls, Statement, Transaction};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use self::types::{
    Cell, PgTime, array_type, column_array, column_type, from_micros, read_cell, read_expression,
    scalar_type,
};
use crate::cells::Page;
use crate::definition::{
    Definition, Filter, FilterValue, TIMESTAMP_EXPECTED, check_view_name, filter_error, filters,
    now_ms, table_columns, unknown_view,
};
use crate::error::PostgresContext;
use crate::model::{
    Checkpoint, Commit, Progress, ResultBatch, ResultQuery, ResultRows, ResultTable, RowState,
    ViewStatus,
};
use crate::schema::{Column, ColumnType, SCHEMA_VERSION, STATE_COLUMN, UPDATED_AT_COLUMN};
use crate::sql::{
    Dialect, Internal, LATE_EVENT_COLUMNS, StatusRow, VIEW_TABLES, decode_progress, offset_to_sql,
    quote_ident, results_upsert_sql, view_status, where_clause,
};
use crate::{ResultStore, StoreError};
use freshet_types::limits::RESULT_ROWS_PER_PAGE_MAX;

/// The schema used when the URL names none.
pub const DEFAULT_SCHEMA: &str = "freshet";

/// Longest statement the server runs before cancelling it (a retriable error).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows per upsert statement: bounds the arrays one statement carries.
const UPSERT_ROWS_MAX: usize = 10_000;

/// PostgreSQL truncates longer identifiers silently; the store refuses them instead.
const IDENTIFIER_BYTES_MAX: usize = 63;

/// NULLS NOT DISTINCT keys need PostgreSQL 15.
const SERVER_VERSION_MIN: i32 = 150_000;

/// Where a PostgreSQL store lives: the connection settings and the schema.
#[derive(Clone)]
pub struct PgLocation {
    config: Config,
    schema: String,
    /// The URL without its password, for messages.
    display: String,
}

impl fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl fmt::Display for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl PgLocation {
    /// Parses a `postgres://` or `postgresql://` URL. A `schema` query parameter names the
    /// schema (default [`DEFAULT_SCHEMA`]); every other part is libpq's URL syntax.
    pub fn parse(url: &str) -> Result<PgLocation, StoreError> {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut schema = DEFAULT_SCHEMA.to_owned();
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", value)) if !value.is_empty() => schema = value.to_owned(),
                Some(("schema", _)) => {
                    return Err(StoreError::user("the store URL has an empty schema="));
                }
                _ => rest.push(pair),
            }
        }
        let url_without_schema = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let display = redact(&url_without_schema);
        let mut config = Config::from_str(&url_without_schema).map_err(|error| {
            StoreError::user(format!("the store URL {display} is not valid: {error}"))
        })?;
        check_identifier("schema", &schema)?;
        let mut options = config.get_options().unwrap_or("").to_owned();
        options.push_str(&format!(
            " -c statement_timeout={} -c idle_in_transaction_session_timeout={}",
            STATEMENT_TIMEOUT.as_millis(),
            STATEMENT_TIMEOUT.as_millis()
        ));
        config.options(options.trim());
        if config.get_application_name().is_none() {
            config.application_name(&format!("freshet[{}]", std::process::id()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives_idle(Duration::from_secs(30));
        Ok(PgLocation {
            config,
            display: format!("{display} (schema {schema})"),
            schema,
        })
    }

    /// The schema the store's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

/// The URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn check_identifier(what: &str, name: &str) -> Result<(), StoreError> {
    if name.len() > IDENTIFIER_BYTES_MAX {
        return Err(StoreError::user(format!(
            "{what} name '{name}' is {} bytes long; PostgreSQL names hold at most \
             {IDENTIFIER_BYTES_MAX}",
            name.len()
        )));
    }
    if name.contains('\0') {
        return Err(StoreError::user(format!(
            "{what} name '{name}' holds a NUL character"
        )));
    }
    Ok(())
}

/// A view's definition with the statement that upserts its rows.
#[derive(Debug)]
struct PgView {
    def: Arc<Definition>,
    upsert_sql: String,
}

/// The connection and what depends on it.
struct Connection {
    client: Option<Client>,
    /// Prepared statements of the current connection, by SQL text.
    statements: HashMap<String, Statement>,
}

/// The result store in a PostgreSQL schema.
pub struct PgStore {
    location: PgLocation,
    /// The schema, quoted.
    schema: String,
    /// The statements on the store's own tables in that schema.
    internal: Internal,
    read_only: bool,
    conn: RefCell<Connection>,
    /// Views this process holds the writer lock of.
    claimed: RefCell<Vec<String>>,
    /// Definitions of views this writer has used.
    views: HashMap<String, Arc<PgView>>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl PgStore {
    /// Connects for writing, creating the schema and the store's tables if needed (several
    /// processes may do so at once). A schema written by a newer Freshet is refused.
    pub fn open(location: &PgLocation) -> Result<PgStore, StoreError> {
        let store = PgStore::new(location, false);
        store.with_client(|client, _| {
            let at = || format!("creating the result store in {}", store.location);
            let mut tx = client.transaction().context(at)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&lock_key(&store.location.schema, "")],
            )
            .context(at)?;
            tx.batch_execute(&internal_ddl(&store.schema)).context(at)?;
            let version = stored_version(&mut tx, &store.schema, &store.location)?;
            if version.is_none() {
                tx.execute(
                    &format!(
                        "INSERT INTO {}.freshet_meta (key, value) VALUES ('schema_version', $1)",
                        store.schema
                    ),
                    &[&SCHEMA_VERSION.to_string()],
                )
                .context(at)?;
            }
            tx.commit().context(at)
        })?;
        tracing::info!(store = %location, schema_version = SCHEMA_VERSION, "result store opened");
        Ok(store)
    }

    /// Connects for reading only, to a schema a writer created.
    pub fn open_read_only(location: &PgLocation) -> Result<PgStore, StoreError> {
        let store = PgStore::new(location, true);
        store.with_client(|client, _| {
            let at = || format!("opening the result store {} read-only", store.location);
            let mut tx = client.transaction().context(at)?;
            let exists: bool = tx
                .query_one(
                    "SELECT to_regclass($1) IS NOT NULL",
                    &[&format!("{}.freshet_meta", store.schema)],
                )
                .context(at)?
                .get(0);
            if !exists {
                return Err(StoreError::user(format!(
                    "there is no result store in {}: no writer has created it yet",
                    store.location
                )));
            }
            stored_version(&mut tx, &store.schema, &store.location)?;
            tx.commit().context(at)
        })?;
        Ok(store)
    }

    fn new(location: &PgLocation, read_only: bool) -> PgStore {
        let mut location = location.clone();
        if read_only {
            let options = format!(
                "{} -c default_transaction_read_only=on",
                location.config.get_options().unwrap_or("")
            );
            location.config.options(options.trim());
        }
        let schema = quote_ident(&location.schema);
        PgStore {
            internal: Internal::postgres(&schema),
            schema,
            location,
            read_only,
            conn: RefCell::new(Connection {
                client: None,
                statements: HashMap::new(),
            }),
            claimed: RefCell::new(Vec::new()),
            views: HashMap::new(),
        }
    }

    /// Runs `f` on a live connection, connecting (and re-taking writer locks) first if
    /// needed. A retriable error drops the connection, so the next call opens a new one.
    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client, &mut HashMap<String, Statement>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.borrow_mut();
        let Connection { client, statements } = &mut *conn;
        if client.as_ref().is_none_or(Client::is_closed) {
            statements.clear();
            *client = None;
            let mut fresh = self.connect()?;
            for view in self.claimed.borrow().iter() {
                if let Err(error) = self.try_lock(&mut fresh, view) {
                    return Err(match error {
                        StoreError::User { message } => StoreError::user(format!(
                            "lost the right to write view '{view}' while the connection to \
                             {} was down: {message}",
                            self.location
                        )),
                        other => other,
                    });
                }
            }
            *client = Some(fresh);
        }
        let Some(live) = client.as_mut() else {
            return Err(StoreError::bug("no connection after connecting"));
        };
        let result = f(live, statements);
        if let Err(error) = &result
            && error.retriable()
        {
            *client = None;
            statements.clear();
        }
        result
    }

    fn connect(&self) -> Result<Client, StoreError> {
        let mut client = self
            .location
            .config
            .connect(NoTls)
            .context(|| format!("connecting to {}", self.location))?;
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .context(|| format!("reading the server version of {}", self.location))?
            .get(0);
        if version < SERVER_VERSION_MIN {
            return Err(StoreError::user(format!(
                "{} runs PostgreSQL {}.{}; the result store needs 15 or newer",
                self.location,
                version / 10_000,
                version % 10_000
            )));
        }
        Ok(client)
    }

    /// Takes the writer lock of `view` on `client`; a user error naming the holder if
    /// another session has it.
    fn try_lock(&self, client: &mut Client, view: &str) -> Result<(), StoreError> {
        let key = lock_key(&self.location.schema, view);
        let at = || format!("taking the writer lock of view '{view}'");
        let taken: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .context(at)?
            .get(0);
        if taken {
            return Ok(());
        }
        let holder = client
            .query_opt(
                "SELECT a.pid, coalesce(a.application_name, ''), \
                 coalesce(host(a.client_addr), 'local socket'), a.backend_start::text \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                 AND l.classid::bigint = $1 AND l.objid::bigint = $2",
                &[&((key >> 32) & 0xffff_ffff), &(key & 0xffff_ffff)],
            )
            .context(at)?
            .map(|row| {
                format!(
                    "PostgreSQL backend {} ({}) from {} since {}",
                    row.get::<_, i32>(0),
                    row.get::<_, String>(1),
                    row.get::<_, String>(2),
                    row.get::<_, String>(3)
                )
            })
            .unwrap_or_else(|| "a session that has just let go; try again".to_owned());
        Err(StoreError::user(format!(
            "view '{view}' in {} is being written by another Freshet process: {holder}. \
             Stop that process, or run this one with --role query",
            self.location
        )))
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::bug(format!(
                "the result store {} was opened read-only",
                self.location
            )));
        }
        Ok(())
    }

    /// The definition of `view`: this writer's cached copy, else the stored one.
    fn definition(&self, view: &str) -> Result<Arc<Definition>, StoreError> {
        if let Some(pg) = self.views.get(view) {
            return Ok(Arc::clone(&pg.def));
        }
        self.with_client(|client, _| load_definition(client, &self.internal, view))?
            .map(Arc::new)
            .ok_or_else(|| unknown_view(view))
    }

    /// The definition of `view` with its upsert, kept for later writes.
    fn writer_view(&mut self, view: &str) -> Result<Arc<PgView>, StoreError> {
        if let Some(pg) = self.views.get(view) {
            return Ok(Arc::clone(pg));
        }
        let def = self.definition(view)?;
        let pg = Arc::new(PgView {
            upsert_sql: upsert_sql(&self.schema, view, &def),
            def,
        });
        self.views.insert(view.to_owned(), Arc::clone(&pg));
        Ok(pg)
    }

    fn table(&self, view: &str) -> String {
        format!("{}.{}", self.schema, quote_ident(view))
    }
}

/// The advisory lock key of a view's writer (`view` empty: the schema's DDL lock).
fn lock_key(schema: &str, view: &str) -> i64 {
    let key = xxhash_rust::xxh3::xxh3_64(format!("freshet\0{schema}\0{view}").as_bytes());
    i64::from_ne_bytes(key.to_ne_bytes())
}

fn internal_ddl(s: &str) -> String {
    format!(
        r#"
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.freshet_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.freshet_views (
    view          text PRIMARY KEY,
    key_columns   text NOT NULL,
    schema        text NOT NULL,
    created_at_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.freshet_progress (
    view         text NOT NULL,
    stream       text NOT NULL,
    "partition"  integer NOT NULL,
    next_offset  bigint NOT NULL,
    watermark_ms bigint,
    PRIMARY KEY (view, stream, "partition")
);
CREATE TABLE IF NOT EXISTS {s}.freshet_view_status (
    view            text PRIMARY KEY,
    watermark_ms    bigint,
    committed_at_ms bigint NOT NULL,
    stats           jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.freshet_state (
    view  text NOT NULL,
    key   bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (view, key)
);
-- State entries are rewritten at every commit: room on each page lets PostgreSQL update
-- them in place (HOT) without touching the index.
ALTER TABLE {s}.freshet_state SET (fillfactor = 70);
CREATE TABLE IF NOT EXISTS {s}.freshet_late_events (
    view        text NOT NULL,
    stream      text NOT NULL,
    "partition" integer NOT NULL,
    "offset"    bigint NOT NULL,
    event_time  timestamptz NOT NULL,
    reason      text NOT NULL,
    "row"       text NOT NULL,
    PRIMARY KEY (view, stream, "partition", "offset")
);
"#
    )
}

/// The stored schema version, refusing one newer than this build's.
fn stored_version(
    tx: &mut Transaction<'_>,
    schema: &str,
    location: &PgLocation,
) -> Result<Option<i64>, StoreError> {
    let at = || format!("reading the schema version of {location}");
    let row = tx
        .query_opt(
            &format!("SELECT value FROM {schema}.freshet_meta WHERE key = 'schema_version'"),
            &[],
        )
        .context(at)?;
    let Some(row) = row else { return Ok(None) };
    let text: String = row.get(0);
    let version: i64 = text.parse().map_err(|_| {
        StoreError::corrupt(format!(
            "{location} holds schema version '{text}', which is not a number"
        ))
    })?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::user(format!(
            "the result store {location} has schema version {version}, written by a newer \
             Freshet; this build knows version {SCHEMA_VERSION}"
        )));
    }
    Ok(Some(version))
}

fn load_definition(
    client: &mut impl postgres::GenericClient,
    internal: &Internal,
    view: &str,
) -> Result<Option<Definition>, StoreError> {
    let row = client
        .query_opt(&internal.select_definition(), &[&view])
        .context(|| format!("reading the definition of view '{view}'"))?;
    row.map(|row| Definition::from_json(view, row.get(0), row.get(1)))
        .transpose()
}

/// The results table and its key. Text is compared bytewise (`COLLATE "C"`) and the key
/// orders nulls first, so that rows come back in the order SQLite gives; the key is a unique
/// index with `NULLS NOT DISTINCT`, so that a key holding a null is replaced like any other.
fn create_table_sql(schema: &str, view: &str, def: &Definition) -> String {
    let table = format!("{schema}.{}", quote_ident(view));
    let mut sql = format!("CREATE TABLE IF NOT EXISTS {table} (\n");
    for column in &def.columns {
        let collate = if matches!(scalar_type(&column.ty), "text")
            && !matches!(column.ty, ColumnType::Decimal128 { .. })
        {
            " COLLATE \"C\""
        } else {
            ""
        };
        sql.push_str(&format!(
            "    {} {}{collate},\n",
            quote_ident(&column.name),
            column_type(&column.ty)
        ));
    }
    sql.push_str(&format!(
        "    {STATE_COLUMN} text NOT NULL CHECK ({STATE_COLUMN} IN ('provisional', 'final')),\n\
         \x20   {UPDATED_AT_COLUMN} timestamptz NOT NULL\n);\n"
    ));
    let index = format!(
        "freshet_key_{:016x}",
        xxhash_rust::xxh3::xxh3_64(view.as_bytes())
    );
    sql.push_str(&format!(
        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {table} ({}) NULLS NOT DISTINCT;",
        quote_ident(&index),
        key_order(def)
    ));
    sql
}

/// The key columns in the order results are read and indexed: ascending, nulls first.
fn key_order(def: &Definition) -> String {
    def.key_names()
        .into_iter()
        .map(|name| format!("{} NULLS FIRST", quote_ident(name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$1` is `_state`, `$2` `_updated_at`, then one array per column.
fn upsert_sql(schema: &str, view: &str, def: &Definition) -> String {
    let selected = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("u.c{i}::{}", column_type(&c.ty)))
        .collect::<Vec<_>>()
        .join(", ");
    let arrays = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}", i + 3, array_type(&c.ty)))
        .collect::<Vec<_>>()
        .join(", ");
    let aliases = (0..def.columns.len())
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    results_upsert_sql(
        &format!("{schema}.{}", quote_ident(view)),
        &def.columns,
        &def.key_names(),
        &format!(
            "SELECT {selected}, $1::text, $2::timestamptz FROM unnest({arrays}) AS u({aliases})"
        ),
    )
}

/// A read-only transaction over one consistent snapshot, for a view that must exist.
fn snapshot<'c>(
    client: &'c mut Client,
    internal: &Internal,
    view: &str,
    at: impl Fn() -> String,
) -> Result<Transaction<'c>, StoreError> {
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .context(&at)?;
    if load_definition(&mut tx, internal, view)?.is_none() {
        return Err(unknown_view(view));
    }
    Ok(tx)
}

/// A statement prepared once per connection.
fn prepared(
    tx: &mut Transaction<'_>,
    statements: &mut HashMap<String, Statement>,
    sql: &str,
) -> Result<Statement, postgres::Error> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = tx.prepare(sql)?;
    statements.insert(sql.to_owned(), statement.clone());
    Ok(statement)
}

/// A row of a commit: (upsert batch, row in it).
type RowAt = (usize, usize);

/// The rows of a commit with each key once, at its last write, grouped by state: writing
/// them in any order gives what writing every row in order would.
fn last_writes(
    def: &Definition,
    upserts: &[ResultBatch],
) -> Result<Vec<(RowState, Vec<RowAt>)>, StoreError> {
    let fields = def
        .key
        .iter()
        .map(|&k| SortField::new(def.columns[k].ty.to_arrow()))
        .collect();
    let converter = RowConverter::new(fields)
        .map_err(|error| StoreError::bug(format!("encoding result keys: {error}")))?;
    let mut last: HashMap<Box<[u8]>, (RowState, usize, usize)> = HashMap::new();
    let mut order = Vec::new();
    for (b, upsert) in upserts.iter().enumerate() {
        let keys: Vec<ArrayRef> = def
            .key
            .iter()
            .map(|&k| Arc::clone(upsert.batch.column(k)))
            .collect();
        let rows = converter
            .convert_columns(&keys)
            .map_err(|error| StoreError::bug(format!("encoding result keys: {error}")))?;
        for row in 0..upsert.batch.num_rows() {
            let key: Box<[u8]> = rows.row(row).as_ref().into();
            match last.get_mut(&key) {
                Some(slot) => *slot = (upsert.state, b, row),
                None => {
                    order.push(key.clone());
                    last.insert(key, (upsert.state, b, row));
                }
            }
        }
    }
    let mut provisional = Vec::new();
    let mut final_rows = Vec::new();
    for key in &order {
        let (state, b, row) = last[key];
        match state {
            RowState::Provisional => provisional.push((b, row)),
            RowState::Final => final_rows.push((b, row)),
        }
    }
    Ok([
        (RowState::Provisional, provisional),
        (RowState::Final, final_rows),
    ]
    .into_iter()
    .filter(|(_, rows)| !rows.is_empty())
    .collect())
}

fn write_results(
    tx: &mut Transaction<'_>,
    statements: &mut HashMap<String, Statement>,
    view: &str,
    pg: &PgView,
    upserts: &[ResultBatch],
    updated_at: PgTime,
) -> Result<usize, StoreError> {
    let at = || format!("writing the results of view '{view}'");
    for upsert in upserts {
        pg.def.check_batch(view, &upsert.batch)?;
    }
    let statement = prepared(tx, statements, &pg.upsert_sql).context(at)?;
    let mut written = 0;
    for (state, rows) in last_writes(&pg.def, upserts)? {
        for chunk in rows.chunks(UPSERT_ROWS_MAX) {
            let columns = (0..pg.def.columns.len())
                .map(|c| {
                    let arrays: Vec<&dyn arrow_array::Array> =
                        upserts.iter().map(|u| u.batch.column(c).as_ref()).collect();
                    arrow_select::interleave::interleave(&arrays, chunk).map_err(|error| {
                        StoreError::bug(format!("gathering the rows of view '{view}': {error}"))
                    })
                })
                .collect::<Result<Vec<ArrayRef>, _>>()?;
            let state_text = state.as_str();
            let mut params: Vec<Box<dyn ToSql + Sync + '_>> =
                vec![Box::new(state_text), Box::new(updated_at)];
            for (column, array) in pg.def.columns.iter().zip(&columns) {
                params.push(column_array(column, array)?);
            }
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
            tx.execute(&statement, &refs).context(at)?;
            written += chunk.len();
        }
    }
    Ok(written)
}

/// Reads a view's committed progress and commit time, if it ever committed.
fn read_progress(
    tx: &mut Transaction<'_>,
    internal: &Internal,
    view: &str,
) -> Result<Option<(Progress, i64)>, StoreError> {
    let at = || format!("reading the progress of view '{view}'");
    let Some(status) = tx
        .query_opt(&internal.select_status(), &[&view])
        .context(at)?
    else {
        return Ok(None);
    };
    let status = StatusRow {
        watermark_ms: status.get(0),
        committed_at_ms: status.get(1),
        stats: status.get(2),
    };
    let rows = tx
        .query(&internal.select_progress(), &[&view])
        .context(at)?
        .into_iter()
        .map(|row| {
            (
                row.get(0),
                i64::from(row.get::<_, i32>(1)),
                row.get(2),
                row.get(3),
            )
        });
    decode_progress(view, status, rows).map(Some)
}

/// A filter value as a parameter of the column's scalar type, and the SQL that reads it.
fn filter_param(
    view: &str,
    column: &Column,
    text: &str,
    value: FilterValue,
    n: usize,
) -> Result<(Box<dyn ToSql + Sync>, String), StoreError> {
    let cast = format!("${n}::{}", scalar_type(&column.ty));
    let value: Box<dyn ToSql + Sync> = match value {
        FilterValue::Integer(i) => Box::new(i),
        FilterValue::Boolean(b) => Box::new(b),
        FilterValue::Float(f) => Box::new(f),
        FilterValue::Text(t) => Box::new(t),
        FilterValue::Time(value, unit) => {
            Box::new(PgTime(types::to_micros(value, unit).ok_or_else(|| {
                filter_error(view, column, text, TIMESTAMP_EXPECTED)
            })?))
        }
        FilterValue::Date(days) => Box::new(types::PgDate(days)),
        FilterValue::Decimal(t) => return Ok((Box::new(t), format!("{cast}::numeric"))),
    };
    Ok((value, cast))
}

impl ResultStore for PgStore {
    fn create_view(&mut self, table: &ResultTable) -> Result<(), StoreError> {
        self.check_writable()?;
        let view = table.view.as_str();
        check_view_name(view)?;
        check_identifier("view", view)?;
        let (columns, key) = table_columns(table)?;
        for column in &columns {
            check_identifier("column", &column.name)?;
        }
        let internal = &self.internal;
        let def = self.with_client(|client, _| {
            let at = || format!("creating view '{view}'");
            let mut tx = client.transaction().context(at)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&lock_key(&self.location.schema, "")],
            )
            .context(at)?;
            let def = match load_definition(&mut tx, internal, view)? {
                Some(existing) => match existing.redefined(view, &columns, &table.key)? {
                    None => existing,
                    Some(merged) => {
                        let (_, schema_json) = merged.to_json()?;
                        tx.execute(&internal.update_definition(), &[&view, &schema_json])
                            .context(at)?;
                        merged
                    }
                },
                None => {
                    // Names are compared without case so that a view moves between stores.
                    let taken = tx
                        .query_opt(
                            "SELECT table_name::text FROM information_schema.tables \
                             WHERE table_schema = $1 AND lower(table_name) = lower($2)",
                            &[&self.location.schema, &view],
                        )
                        .context(at)?;
                    if let Some(taken) = taken {
                        return Err(StoreError::user(format!(
                            "cannot create view '{view}': schema {} already has a table named \
                             '{}' (view names are compared without case)",
                            self.location.schema,
                            taken.get::<_, String>(0)
                        )));
                    }
                    let def = Definition { columns, key };
                    let (key_json, schema_json) = def.to_json()?;
                    tx.execute(
                        &internal.insert_definition(),
                        &[&view, &key_json, &schema_json, &now_ms()],
                    )
                    .context(at)?;
                    tracing::info!(view, store = %self.location, "result table created");
                    def
                }
            };
            tx.batch_execute(&create_table_sql(&self.schema, view, &def))
                .context(at)?;
            tx.commit().context(at)?;
            Ok(def)
        })?;
        self.views.insert(
            view.to_owned(),
            Arc::new(PgView {
                upsert_sql: upsert_sql(&self.schema, view, &def),
                def: Arc::new(def),
            }),
        );
        Ok(())
    }

    fn drop_view(&mut self, view: &str) -> Result<(), StoreError> {
        self.check_writable()?;
        check_view_name(view)?;
        let internal = &self.internal;
        let table = self.table(view);
        self.with_client(|client, _| {
            let at = || format!("dropping view '{view}'");
            let mut tx = client.transaction().context(at)?;
            let known = load_definition(&mut tx, internal, view)?.is_some();
            if known {
                tx.batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
                    .context(at)?;
            }
            for table in VIEW_TABLES {
                tx.execute(&internal.delete_view_rows(table), &[&view])
                    .context(at)?;
            }
            tx.commit().context(at)
        })?;
        self.views.remove(view);
        Ok(())
    }

    fn load(&self, view: &str) -> Result<Checkpoint, StoreError> {
        let internal = &self.internal;
        self.with_client(|client, _| {
            let at = || format!("loading view '{view}'");
            let mut tx = snapshot(client, internal, view, at)?;
            let progress = read_progress(&mut tx, internal, view)?.map(|(progress, _)| progress);
            let state = tx
                .query(&internal.select_state(), &[&view])
                .context(at)?
                .into_iter()
                .map(|row| (row.get::<_, Vec<u8>>(0), row.get::<_, Vec<u8>>(1)))
                .collect();
            tx.commit().context(at)?;
            Ok(Checkpoint { progress, state })
        })
    }

    fn commit(&mut self, view: &str, commit: &Commit) -> Result<(), StoreError> {
        self.check_writable()?;
        let pg = self.writer_view(view)?;
        let (schema, internal) = (&self.schema, &self.internal);
        let committed_at_ms = now_ms();
        self.with_client(|client, statements| {
            let at = || format!("committing view '{view}'");
            let mut tx = client.transaction().context(at)?;
            let rows = write_results(
                &mut tx,
                statements,
                view,
                &pg,
                &commit.upserts,
                PgTime(committed_at_ms.saturating_mul(1_000)),
            )?;
            if commit.state_reset {
                let sql = internal.delete_view_rows("freshet_state");
                let statement = prepared(&mut tx, statements, &sql).context(at)?;
                tx.execute(&statement, &[&view]).context(at)?;
            }
            if !commit.state_deletes.is_empty() {
                let sql = format!(
                    "DELETE FROM {schema}.freshet_state WHERE view = $1 AND key = ANY($2::bytea[])"
                );
                let statement = prepared(&mut tx, statements, &sql).context(at)?;
                let mut keys: Vec<&[u8]> = commit.state_deletes.iter().map(Vec::as_slice).collect();
                keys.sort_unstable();
                tx.execute(&statement, &[&view, &keys]).context(at)?;
            }
            if !commit.state_puts.is_empty() {
                // The last put of a key wins, as it would put by put; in key order, so that
                // the index is written in order rather than all over its pages.
                let mut puts: std::collections::BTreeMap<&[u8], &[u8]> =
                    std::collections::BTreeMap::new();
                for (key, value) in &commit.state_puts {
                    puts.insert(key, value);
                }
                let (keys, values): (Vec<&[u8]>, Vec<&[u8]>) = puts.into_iter().unzip();
                let sql = format!(
                    "INSERT INTO {schema}.freshet_state (view, key, value) \
                     SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS u(k, v) \
                     ON CONFLICT (view, key) DO UPDATE SET value = excluded.value"
                );
                let statement = prepared(&mut tx, statements, &sql).context(at)?;
                tx.execute(&statement, &[&view, &keys, &values])
                    .context(at)?;
            }
            if !commit.late.is_empty() {
                let late = &commit.late;
                let streams: Vec<&str> = late.iter().map(|l| l.stream.as_str()).collect();
                let partitions: Vec<i64> = late.iter().map(|l| i64::from(l.partition)).collect();
                let offsets = late
                    .iter()
                    .map(|l| offset_to_sql(l.offset, Dialect::Postgres))
                    .collect::<Result<Vec<_>, _>>()?;
                let times: Vec<PgTime> = late
                    .iter()
                    .map(|l| PgTime(l.event_time_ms.saturating_mul(1_000)))
                    .collect();
                let reasons: Vec<&str> = late.iter().map(|l| l.reason.as_str()).collect();
                let rows: Vec<&str> = late.iter().map(|l| l.row_json.as_str()).collect();
                let sql = format!(
                    "INSERT INTO {schema}.freshet_late_events ({LATE_EVENT_COLUMNS}) SELECT $1, s, p, o, t, r, j FROM unnest($2::text[], $3::bigint[], \
                     $4::bigint[], $5::timestamptz[], $6::text[], $7::text[]) \
                     AS u(s, p, o, t, r, j) ON CONFLICT DO NOTHING"
                );
                let statement = prepared(&mut tx, statements, &sql).context(at)?;
                tx.execute(
                    &statement,
                    &[
                        &view,
                        &streams,
                        &partitions,
                        &offsets,
                        &times,
                        &reasons,
                        &rows,
                    ],
                )
                .context(at)?;
            }
            let parts = &commit.progress.partitions;
            let streams: Vec<&str> = parts.iter().map(|p| p.stream.as_str()).collect();
            let partitions: Vec<i64> = parts.iter().map(|p| i64::from(p.partition)).collect();
            let offsets = parts
                .iter()
                .map(|p| offset_to_sql(p.next_offset, Dialect::Postgres))
                .collect::<Result<Vec<_>, _>>()?;
            let watermarks: Vec<Option<i64>> = parts.iter().map(|p| p.watermark_ms).collect();
            let sql = internal.upsert_progress(
                "SELECT $1, s, p, o, w FROM unnest($2::text[], $3::bigint[], $4::bigint[], \
                 $5::bigint[]) AS u(s, p, o, w)",
            );
            let statement = prepared(&mut tx, statements, &sql).context(at)?;
            tx.execute(
                &statement,
                &[&view, &streams, &partitions, &offsets, &watermarks],
            )
            .context(at)?;
            let sql = internal.upsert_status();
            let statement = prepared(&mut tx, statements, &sql).context(at)?;
            tx.execute(
                &statement,
                &[
                    &view,
                    &commit.progress.watermark_ms,
                    &committed_at_ms,
                    &commit.progress.stats,
                ],
            )
            .context(at)?;
            tx.commit().context(at)?;
            tracing::debug!(view, rows, "committed");
            Ok(())
        })
    }

    fn repair(
        &mut self,
        view: &str,
        upserts: &[ResultBatch],
        deletes: &[RecordBatch],
    ) -> Result<(), StoreError> {
        self.check_writable()?;
        let pg = self.writer_view(view)?;
        let table = self.table(view);
        self.with_client(|client, statements| {
            let at = || format!("repairing view '{view}'");
            let mut tx = client.transaction().context(at)?;
            let key = &pg.def.key;
            // Rows whose key is not distinct from one of the given keys (nulls included).
            let matches = key
                .iter()
                .enumerate()
                .map(|(i, &k)| {
                    let column = &pg.def.columns[k];
                    format!(
                        "t.{} IS NOT DISTINCT FROM u.c{i}::{}",
                        quote_ident(&column.name),
                        column_type(&column.ty)
                    )
                })
                .collect::<Vec<_>>()
                .join(" AND ");
            let arrays = key
                .iter()
                .enumerate()
                .map(|(i, &k)| format!("${}::{}", i + 1, array_type(&pg.def.columns[k].ty)))
                .collect::<Vec<_>>()
                .join(", ");
            let aliases = (0..key.len())
                .map(|i| format!("c{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "DELETE FROM {table} AS t USING unnest({arrays}) AS u({aliases}) WHERE {matches}"
            );
            for batch in deletes {
                pg.def.check_batch(view, batch)?;
                let params = key
                    .iter()
                    .map(|&k| column_array(&pg.def.columns[k], batch.column(k)))
                    .collect::<Result<Vec<_>, _>>()?;
                let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
                tx.execute(&sql, &refs).context(at)?;
            }
            write_results(
                &mut tx,
                statements,
                view,
                &pg,
                upserts,
                PgTime(now_ms().saturating_mul(1_000)),
            )?;
            tx.commit().context(at)
        })
    }

    fn read_results(&self, view: &str, query: &ResultQuery) -> Result<ResultRows, StoreError> {
        let def = self.definition(view)?;
        let mut conditions = Vec::new();
        let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
        for filter in filters(view, &def, query) {
            let (column, op, expression) = match filter? {
                Filter::Equals {
                    column,
                    value,
                    text,
                } => {
                    let (value, expression) =
                        filter_param(view, column, text, value, params.len() + 1)?;
                    params.push(value);
                    (column, "=", expression)
                }
                // Times compare in microseconds, finer than the bound: no rounding needed.
                Filter::Time { column, op, ms, .. } => {
                    params.push(Box::new(PgTime(ms * 1_000)));
                    let expression = format!("${}::{}", params.len(), scalar_type(&column.ty));
                    (column, op, expression)
                }
            };
            conditions.push(format!("{} {op} {expression}", quote_ident(&column.name)));
        }
        let limit = query.limit.min(RESULT_ROWS_PER_PAGE_MAX);
        let names = def
            .columns
            .iter()
            .map(|column| read_expression(&quote_ident(&column.name), &column.ty))
            .chain([quote_ident(STATE_COLUMN), quote_ident(UPDATED_AT_COLUMN)])
            .collect::<Vec<_>>()
            .join(", ");
        let order = key_order(&def);
        let filter = where_clause(&conditions);
        params.push(Box::new(limit as i64 + 1));
        params.push(Box::new(i64::try_from(query.offset).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT {names} FROM {}{filter} ORDER BY {order} LIMIT ${} OFFSET ${}",
            self.table(view),
            params.len() - 1,
            params.len()
        );
        let at = || format!("reading the results of view '{view}'");
        let rows = self.with_client(|client, _| {
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
            client.query(&sql, &refs).context(at)
        })?;

        let mut page = Page::new(view, &def.columns, rows.len().min(limit));
        let has_more = rows.len() > limit;
        for row in rows.iter().take(limit) {
            let last = page.columns.len() - 1;
            for i in 0..=last {
                let (builder, column) = (&mut page.builders[i], page.columns[i]);
                let cell = read_cell(row, i, &column.ty).context(at)?;
                let appended = match (cell, &column.ty) {
                    (Cell::Value(value), _) => builder.append(value),
                    // `_updated_at` keeps milliseconds; a row written by hand may carry
                    // more, which are cut.
                    (Cell::Time(micros), _) if i == last => {
                        builder.append_time(micros.map(|m| m.div_euclid(1_000)))
                    }
                    (Cell::Time(micros), ColumnType::Timestamp { unit, .. }) => {
                        match micros.map(|m| from_micros(m, *unit)) {
                            Some(None) => Err(format!("the time {micros:?} µs")),
                            Some(Some(value)) => builder.append_time(Some(value)),
                            None => builder.append_time(None),
                        }
                    }
                    (Cell::Time(days), _) => builder.append_time(days),
                };
                appended.map_err(|found| page.unexpected(i, found))?;
            }
        }
        page.finish(has_more)
    }

    fn status(&self, view: &str) -> Result<ViewStatus, StoreError> {
        let internal = &self.internal;
        self.with_client(|client, _| {
            let at = || format!("reading the status of view '{view}'");
            let mut tx = snapshot(client, internal, view, at)?;
            let progress = read_progress(&mut tx, internal, view)?;
            tx.commit().context(at)?;
            Ok(view_status(view, progress))
        })
    }

    fn claim_writer(&mut self, view: &str) -> Result<(), StoreError> {
        self.check_writable()?;
        if self.claimed.borrow().iter().any(|v| v == view) {
            return Ok(());
        }
        self.with_client(|client, _| self.try_lock(client, view))?;
        self.claimed.borrow_mut().push(view.to_owned());
        tracing::info!(view, store = %self.location, "holding the writer lock");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_comes_from_the_url_and_passwords_are_hidden() {
        let location =
            PgLocation::parse("postgres://me:secret@127.0.0.1:5432/db?schema=s1&sslmode=disable")
                .expect("parses");
        assert_eq!(location.schema(), "s1");
        assert!(!location.to_string().contains("secret"), "{location}");
        let default = PgLocation::parse("postgresql://127.0.0.1/db").expect("parses");
        assert_eq!(default.schema(), DEFAULT_SCHEMA);
        assert!(PgLocation::parse("postgres://h/db?schema=").is_err());
    }

    #[test]
    fn lock_keys_differ_by_schema_and_view() {
        assert_ne!(lock_key("a", "v"), lock_key("b", "v"));
        assert_ne!(lock_key("a", "v"), lock_key("a", "w"));
        assert_ne!(lock_key("a", "v"), lock_key("a", ""));
    }
}
