//! The SQLite result store: one file, WAL mode, one transaction per commit.
//!
//! The writer holds one connection and caches each view's column list and statements, so a
//! commit is a run of prepared-statement executions inside `BEGIN IMMEDIATE … COMMIT`.
//! Result rows are written up to 64 per statement, which saves SQLite's per-statement cost.
//! Taking the write lock at `BEGIN` means a busy database fails (after the busy timeout)
//! before anything was written, never halfway. Reads run on the same kind of connection,
//! opened read-only by other processes; each read sees one committed snapshot.
//!
//! The writer's cache of view definitions is only correct with one writer per file, which
//! the data directory's lock guarantees. A read-only connection caches definitions while
//! SQLite's schema cookie is unchanged and view statuses while no connection has committed
//! (`PRAGMA data_version`), so a key lookup costs the lookup, not the catalog.

use arrow_array::RecordBatch;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Statement, TransactionBehavior, params};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cells::{Cells, Page};
use crate::definition::{
    Definition, Filter, FilterValue, TIMESTAMP_EXPECTED, check_view_name, filter_error, filters,
    now_ms, table_columns, unknown_view,
};
use crate::error::SqliteContext;
use crate::model::{
    Checkpoint, Commit, Progress, ResultQuery, ResultRows, ResultTable, ViewStatus,
};
use crate::schema::{
    Column, INTERNAL_DDL, SCHEMA_VERSION, STATE_COLUMN, TimeText, UPDATED_AT_COLUMN, Unit,
    create_results_table, delete_by_key_sql, format_date, format_timestamp, upsert_chunk_rows,
    upsert_parameter, upsert_sql,
};
use crate::sql::{
    Dialect, Internal, LATE_EVENT_COLUMNS, StatusRow, VIEW_TABLES, decode_progress, offset_to_sql,
    quote_ident, view_status, where_clause,
};
use crate::{ResultStore, StoreError};
use freshet_types::limits::RESULT_ROWS_PER_PAGE_MAX;

/// How long a statement waits for another connection's lock before failing with a
/// retriable error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection: the shared commit statements plus two upserts
/// (one row, many rows) and a delete per view, with room for the read queries of a few
/// filter shapes.
const STATEMENT_CACHE_CAPACITY: usize = 64;

/// Page cache of the writer's connection, in KiB (SQLite's default is 2 MiB). A commit
/// touches pages all over the results tables' B-trees; a cache that holds them saves
/// reading them back from the OS on the next commit.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// A view's definition with the statements that write its rows.
#[derive(Debug)]
struct ViewDef {
    def: Definition,
    /// Upserts one row.
    upsert_one_sql: String,
    /// Upserts `chunk_rows` rows.
    upsert_chunk_sql: String,
    chunk_rows: usize,
    delete_sql: String,
}

impl ViewDef {
    fn new(view: &str, def: Definition) -> ViewDef {
        let key_names = def.key_names();
        let chunk_rows = upsert_chunk_rows(def.columns.len());
        ViewDef {
            upsert_one_sql: upsert_sql(view, &def.columns, &key_names, 1),
            upsert_chunk_sql: upsert_sql(view, &def.columns, &key_names, chunk_rows),
            chunk_rows,
            delete_sql: delete_by_key_sql(view, &key_names),
            def,
        }
    }
}

impl std::ops::Deref for ViewDef {
    type Target = Definition;

    fn deref(&self) -> &Definition {
        &self.def
    }
}

/// The result store in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    read_only: bool,
    /// False for a scratch store whose commits must not count as progress elsewhere.
    durable: bool,
    /// Definitions of views this writer has used; see the module docs.
    views: HashMap<String, Arc<ViewDef>>,
    /// A read-only connection's cache; see the module docs.
    read_cache: RefCell<ReadCache>,
}

/// What a read-only connection remembers between reads, valid while `PRAGMA data_version`
/// is unchanged: it changes whenever another connection commits (a view's commit, and DDL
/// or a changed definition as well).
#[derive(Debug, Default)]
struct ReadCache {
    data_version: Option<i64>,
    defs: HashMap<String, Arc<ViewDef>>,
    statuses: HashMap<String, ViewStatus>,
}

impl SqliteStore {
    /// Opens the store for writing, creating the file and its tables if needed. Opening an
    /// existing store changes nothing; a store written by a newer Freshet is refused.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path)
            .context(|| format!("opening the result store {}", path.display()))?;
        let at = || format!("configuring the result store {}", path.display());
        conn.busy_timeout(BUSY_TIMEOUT).context(at)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .context(at)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::user(format!(
                "the result store {} cannot use WAL mode (journal mode is '{mode}'); put it \
                 on a local file system",
                path.display()
            )));
        }
        // Consistency is what exactly-once needs: a power loss may lose the last commits
        // but never splits one.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .context(at)?;
        conn.pragma_update(None, "foreign_keys", "OFF")
            .context(at)?;
        // A negative cache_size is in KiB rather than pages.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .context(at)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);

        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(at)?;
        let version = schema_version(&tx, path)?;
        if version > SCHEMA_VERSION {
            return Err(newer_version(path, version));
        }
        tx.execute_batch(INTERNAL_DDL)
            .context(|| format!("creating the tables of {}", path.display()))?;
        if version < SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .context(at)?;
        }
        tx.commit().context(at)?;
        tracing::info!(path = %path.display(), schema_version = SCHEMA_VERSION, "result store opened");
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
            read_only: false,
            durable: true,
            views: HashMap::new(),
            read_cache: RefCell::default(),
        })
    }

    /// Opens a scratch store at `path` (created if needed): it keeps what it is given, so
    /// commits cost what they cost, but says it is not [`durable`](ResultStore::durable),
    /// so that nothing treats its commits as progress (`freshet explain`'s sample runs).
    pub fn open_scratch(path: &Path) -> Result<SqliteStore, StoreError> {
        Ok(SqliteStore {
            durable: false,
            ..SqliteStore::open(path)?
        })
    }

    /// Opens an existing store for reading only; it never blocks the writer.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        match std::fs::metadata(path) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::user(format!(
                    "there is no result store at {}: the file does not exist",
                    path.display()
                )));
            }
            Err(error) => {
                return Err(StoreError::io(
                    format!("looking for the result store {}", path.display()),
                    error,
                ));
            }
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .context(|| format!("opening the result store {} read-only", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .context(|| format!("configuring the result store {}", path.display()))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        let version = schema_version(&conn, path)?;
        if version == 0 {
            return Err(StoreError::user(format!(
                "{} is not a Freshet result store (its schema version is 0)",
                path.display()
            )));
        }
        if version > SCHEMA_VERSION {
            return Err(newer_version(path, version));
        }
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
            read_only: true,
            durable: true,
            views: HashMap::new(),
            read_cache: RefCell::default(),
        })
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::bug(format!(
                "the result store {} was opened read-only",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// The definition of `view`: this writer's cached copy, a read-only connection's copy
    /// while the schema is unchanged, else the stored one.
    fn view_def(&self, view: &str) -> Result<Arc<ViewDef>, StoreError> {
        if let Some(def) = self.views.get(view) {
            return Ok(Arc::clone(def));
        }
        if !self.read_only {
            return self.load_def(view);
        }
        let mut cache = self.read_cache()?;
        if let Some(def) = cache.defs.get(view) {
            return Ok(Arc::clone(def));
        }
        let def = self.load_def(view)?;
        cache.defs.insert(view.to_owned(), Arc::clone(&def));
        Ok(def)
    }

    fn load_def(&self, view: &str) -> Result<Arc<ViewDef>, StoreError> {
        load_view_def(&self.conn, view)?
            .map(Arc::new)
            .ok_or_else(|| unknown_view(view))
    }

    /// A read-only connection's cache, emptied first if another connection committed since
    /// it was filled.
    fn read_cache(&self) -> Result<std::cell::RefMut<'_, ReadCache>, StoreError> {
        let version = self.pragma("data_version")?;
        let mut cache = self.read_cache.borrow_mut();
        if cache.data_version != Some(version) {
            cache.defs.clear();
            cache.statuses.clear();
            cache.data_version = Some(version);
        }
        Ok(cache)
    }

    /// An integer pragma of the connection (`data_version`).
    fn pragma(&self, name: &str) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(&format!("PRAGMA {name}"))
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .context(|| format!("reading PRAGMA {name} of {}", self.path.display()))
    }

    /// Runs `f` inside one read transaction: one snapshot, and one WAL read lock taken and
    /// released rather than one per statement. A writer inside a transaction of its own
    /// just runs `f`; a read-only connection never holds one between calls, so one found
    /// open (left by a failure) is rolled back first rather than read from forever.
    fn in_snapshot<T>(
        &self,
        at: &dyn Fn() -> String,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let run = |sql: &str| {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut statement| statement.execute([]))
                .map(|_| ())
        };
        if !self.conn.is_autocommit() {
            if !self.read_only {
                return f();
            }
            run("ROLLBACK").context(at)?;
        }
        run("BEGIN").context(at)?;
        let result = f();
        let end = run(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
        if end.is_err() && !self.conn.is_autocommit() {
            // Still open: end it, so that the next read starts a fresh snapshot.
            let _ = run("ROLLBACK");
        }
        let value = result?;
        end.context(at)?;
        Ok(value)
    }

    /// A page of results; inside a transaction (see [`ResultStore::read_results`]).
    fn results_page(&self, view: &str, query: &ResultQuery) -> Result<ResultRows, StoreError> {
        let def = self.view_def(view)?;
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        for filter in filters(view, &def, query) {
            let (column, op) = match filter? {
                Filter::Equals {
                    column,
                    value,
                    text,
                } => {
                    values.push(filter_value(view, column, text, value)?);
                    (column, "=")
                }
                Filter::Time {
                    column,
                    unit,
                    op,
                    ms,
                    round_up,
                } => {
                    values.push(time_bound(ms, unit, round_up));
                    (column, op)
                }
            };
            conditions.push(format!(
                "{} {op} ?{}",
                quote_ident(&column.name),
                values.len()
            ));
        }
        let limit = query.limit.min(RESULT_ROWS_PER_PAGE_MAX);
        let names = def
            .columns
            .iter()
            .map(|column| quote_ident(&column.name))
            .chain([quote_ident(STATE_COLUMN), quote_ident(UPDATED_AT_COLUMN)])
            .collect::<Vec<_>>()
            .join(", ");
        let order = def
            .key
            .iter()
            .map(|&k| quote_ident(&def.columns[k].name))
            .collect::<Vec<_>>()
            .join(", ");
        let filter = where_clause(&conditions);
        // One row past the limit tells whether there are more. LIMIT and OFFSET are
        // literals: SQLite re-prepares a statement whose LIMIT parameter is bound again,
        // which cost more than the key lookup itself.
        let sql = format!(
            "SELECT {names} FROM {}{filter} ORDER BY {order} LIMIT {} OFFSET {}",
            quote_ident(view),
            limit + 1,
            i64::try_from(query.offset).unwrap_or(i64::MAX),
        );

        let at = || format!("reading the results of view '{view}'");
        let mut page = Page::new(view, &def.columns, limit.min(1024));

        let mut statement = self.conn.prepare_cached(&sql).context(at)?;
        let mut rows = statement
            .query(rusqlite::params_from_iter(values))
            .context(at)?;
        let mut count = 0usize;
        let mut has_more = false;
        while let Some(row) = rows.next().context(at)? {
            if count == limit {
                has_more = true;
                break;
            }
            for i in 0..page.builders.len() {
                let value = row.get_ref(i).context(at)?;
                page.builders[i]
                    .append(value)
                    .map_err(|found| page.unexpected(i, found))?;
            }
            count += 1;
        }
        page.finish(has_more)
    }

    /// A view's status as stored; inside a transaction.
    fn read_status(&self, view: &str) -> Result<ViewStatus, StoreError> {
        self.check_view_exists(view)?;
        Ok(view_status(view, read_progress(&self.conn, view)?))
    }

    /// A view's status: a read-only connection's cached copy while nothing was committed
    /// since it was read, else the stored one; inside a transaction.
    fn current_status(&self, view: &str) -> Result<ViewStatus, StoreError> {
        // A writer's own commits do not move `data_version`: only read-only connections
        // keep statuses.
        if !self.read_only {
            return self.read_status(view);
        }
        if let Some(status) = self.read_cache()?.statuses.get(view) {
            return Ok(status.clone());
        }
        let status = self.read_status(view)?;
        self.read_cache
            .borrow_mut()
            .statuses
            .insert(view.to_owned(), status.clone());
        Ok(status)
    }

    /// Like [`Self::view_def`], remembering the definition for later commits.
    fn cached_view_def(&mut self, view: &str) -> Result<Arc<ViewDef>, StoreError> {
        let def = self.view_def(view)?;
        self.views.insert(view.to_owned(), Arc::clone(&def));
        Ok(def)
    }

    fn check_view_exists(&self, view: &str) -> Result<(), StoreError> {
        if self.views.contains_key(view) {
            return Ok(());
        }
        let found = self
            .conn
            .prepare_cached("SELECT 1 FROM freshet_views WHERE view = ?1")
            .and_then(|mut statement| statement.exists([view]))
            .context(|| format!("looking up view '{view}'"))?;
        if found {
            Ok(())
        } else {
            Err(unknown_view(view))
        }
    }
}

fn schema_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .context(|| format!("reading the schema version of {}", path.display()))
}

fn newer_version(path: &Path, version: i64) -> StoreError {
    StoreError::user(format!(
        "the result store {} has schema version {version}, written by a newer Freshet; this \
         build knows version {SCHEMA_VERSION}",
        path.display()
    ))
}

/// Reads a view's stored definition.
fn load_view_def(conn: &Connection, view: &str) -> Result<Option<ViewDef>, StoreError> {
    let row: Option<(String, String)> = conn
        .prepare_cached(&Internal::SQLITE.select_definition())
        .and_then(|mut statement| {
            statement
                .query_row([view], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .context(|| format!("reading the definition of view '{view}'"))?;
    let Some((key_json, schema_json)) = row else {
        return Ok(None);
    };
    Ok(Some(ViewDef::new(
        view,
        Definition::from_json(view, &key_json, &schema_json)?,
    )))
}

/// Reads a view's committed progress and commit time, if it ever committed.
fn read_progress(conn: &Connection, view: &str) -> Result<Option<(Progress, i64)>, StoreError> {
    let at = || format!("reading the progress of view '{view}'");
    let status: Option<(Option<i64>, i64, String)> = conn
        .prepare_cached(&Internal::SQLITE.select_status())
        .and_then(|mut statement| {
            statement
                .query_row([view], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()
        })
        .context(at)?;
    let Some((watermark_ms, committed_at_ms, stats)) = status else {
        return Ok(None);
    };
    let stats = serde_json::from_str(&stats).map_err(|error| {
        StoreError::corrupt(format!(
            "freshet_view_status holds unreadable stats for view '{view}': {error}"
        ))
    })?;
    let mut statement = conn
        .prepare_cached(&Internal::SQLITE.select_progress())
        .context(at)?;
    let rows = statement
        .query_map([view], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .context(at)?
        .collect::<Result<Vec<_>, _>>()
        .context(at)?;
    let status = StatusRow {
        watermark_ms,
        committed_at_ms,
        stats,
    };
    decode_progress(view, status, rows).map(Some)
}

/// A filter value (given as `text`) in the stored form of `column`.
fn filter_value(
    view: &str,
    column: &Column,
    text: &str,
    value: FilterValue,
) -> Result<Value, StoreError> {
    let mut time = TimeText::new();
    Ok(match value {
        FilterValue::Integer(i) => Value::Integer(i),
        FilterValue::Boolean(b) => Value::Integer(i64::from(b)),
        FilterValue::Float(f) => Value::Real(f),
        FilterValue::Text(t) | FilterValue::Decimal(t) => Value::Text(t),
        FilterValue::Time(value, unit) => {
            if !format_timestamp(value, unit, &mut time) {
                return Err(filter_error(view, column, text, TIMESTAMP_EXPECTED));
            }
            Value::Text(time.as_str().to_owned())
        }
        FilterValue::Date(days) => {
            if !format_date(days, &mut time) {
                return Err(filter_error(view, column, text, "a date (YYYY-MM-DD)"));
            }
            Value::Text(time.as_str().to_owned())
        }
    })
}

/// A (clamped) time filter bound in the stored text form of a timestamp column of `unit`.
fn time_bound(ms: i64, unit: Unit, round_up: bool) -> Value {
    let mut text = TimeText::new();
    let formatted = format_timestamp(unit.convert_ms(ms, round_up), unit, &mut text);
    assert!(formatted, "a clamped bound is within the years 0000-9999");
    Value::Text(text.as_str().to_owned())
}

impl ResultStore for SqliteStore {
    fn create_view(&mut self, table: &ResultTable) -> Result<(), StoreError> {
        self.check_writable()?;
        let view = table.view.as_str();
        check_view_name(view)?;
        let (columns, key) = table_columns(table)?;
        let at = || format!("creating view '{view}'");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(at)?;
        let def = match load_view_def(&tx, view)? {
            Some(existing) => match existing.redefined(view, &columns, &table.key)? {
                None => existing,
                Some(merged) => {
                    let (_, schema_json) = merged.to_json()?;
                    tx.execute(
                        &Internal::SQLITE.update_definition(),
                        params![view, schema_json],
                    )
                    .context(at)?;
                    ViewDef::new(view, merged)
                }
            },
            None => {
                // Table names are case-insensitive in SQLite: "Bids" and "bids" collide.
                let taken: Option<String> = tx
                    .query_row(
                        "SELECT name FROM sqlite_master WHERE name = ?1 COLLATE NOCASE",
                        [view],
                        |row| row.get(0),
                    )
                    .optional()
                    .context(at)?;
                if let Some(taken) = taken {
                    return Err(StoreError::user(format!(
                        "cannot create view '{view}': the result store already has a table \
                         named '{taken}' (table names are case-insensitive)"
                    )));
                }
                let def = Definition { columns, key };
                let (key_json, schema_json) = def.to_json()?;
                tx.execute(
                    &Internal::SQLITE.insert_definition(),
                    params![view, key_json, schema_json, now_ms()],
                )
                .context(at)?;
                tracing::info!(view, "result table created");
                ViewDef::new(view, def)
            }
        };
        let key_names = def.key_names();
        tx.execute_batch(&create_results_table(view, &def.columns, &key_names))
            .context(at)?;
        tx.commit().context(at)?;
        self.views.insert(view.to_owned(), Arc::new(def));
        Ok(())
    }

    fn drop_view(&mut self, view: &str) -> Result<(), StoreError> {
        self.check_writable()?;
        check_view_name(view)?;
        let at = || format!("dropping view '{view}'");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(at)?;
        // Only a registered view's table is dropped, never a table someone else made.
        let registered = tx
            .query_row(
                "SELECT 1 FROM freshet_views WHERE view = ?1",
                [view],
                |_| Ok(()),
            )
            .optional()
            .context(at)?
            .is_some();
        if registered {
            tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", quote_ident(view)))
                .context(at)?;
        }
        for table in VIEW_TABLES {
            tx.execute(&Internal::SQLITE.delete_view_rows(table), [view])
                .context(at)?;
        }
        tx.commit().context(at)?;
        self.views.remove(view);
        // The view's cached upsert would point at a table that is gone.
        self.conn.flush_prepared_statement_cache();
        if registered {
            tracing::info!(view, "result table dropped");
        }
        Ok(())
    }

    fn load(&self, view: &str) -> Result<Checkpoint, StoreError> {
        let at = || format!("loading the checkpoint of view '{view}'");
        // One read transaction, so progress and state come from the same commit.
        let tx = self.conn.unchecked_transaction().context(at)?;
        self.check_view_exists(view)?;
        let progress = read_progress(&tx, view)?.map(|(progress, _)| progress);
        let mut statement = tx
            .prepare_cached(&Internal::SQLITE.select_state())
            .context(at)?;
        let state = statement
            .query_map([view], |row| Ok((row.get(0)?, row.get(1)?)))
            .context(at)?
            .collect::<Result<Vec<(Vec<u8>, Vec<u8>)>, _>>()
            .context(at)?;
        drop(statement);
        tx.finish().context(at)?;
        Ok(Checkpoint { progress, state })
    }

    fn commit(&mut self, view: &str, commit: &Commit) -> Result<(), StoreError> {
        self.check_writable()?;
        let def = self.cached_view_def(view)?;
        let at = || format!("committing view '{view}'");
        let committed_at_ms = now_ms();
        let mut updated_at = TimeText::new();
        let formatted = format_timestamp(committed_at_ms, Unit::Millisecond, &mut updated_at);
        assert!(formatted, "the wall clock is within the years 0000-9999");
        let updated_at = updated_at.as_str().to_owned();

        // IMMEDIATE takes the write lock now: a busy store fails here, before any write.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(at)?;
        let rows = write_upserts(&tx, view, &def, &commit.upserts, &updated_at)?;
        // Deletes first: a key both deleted and put in one commit (state removed, then
        // created again) keeps the put's value.
        if commit.state_reset {
            tx.execute(
                &Internal::SQLITE.delete_view_rows("freshet_state"),
                params![view],
            )
            .context(at)?;
        }
        if !commit.state_deletes.is_empty() {
            let mut delete = tx
                .prepare_cached("DELETE FROM freshet_state WHERE view = ?1 AND key = ?2")
                .context(at)?;
            for key in &commit.state_deletes {
                delete.execute(params![view, key]).context(at)?;
            }
        }
        if !commit.state_puts.is_empty() {
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO freshet_state (view, key, value) VALUES (?1, ?2, ?3)",
                )
                .context(at)?;
            for (key, value) in &commit.state_puts {
                put.execute(params![view, key, value]).context(at)?;
            }
        }
        if !commit.late.is_empty() {
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT OR IGNORE INTO freshet_late_events ({LATE_EVENT_COLUMNS}) {}",
                    Dialect::Sqlite.values(7)
                ))
                .context(at)?;
            let mut event_time = TimeText::new();
            for late in &commit.late {
                if !format_timestamp(late.event_time_ms, Unit::Millisecond, &mut event_time) {
                    return Err(StoreError::bug(format!(
                        "late event at offset {} of stream '{}' has event time {} ms, outside \
                         the years 0000-9999",
                        late.offset, late.stream, late.event_time_ms
                    )));
                }
                insert
                    .execute(params![
                        view,
                        late.stream,
                        late.partition,
                        offset_to_sql(late.offset, Dialect::Sqlite)?,
                        event_time.as_str(),
                        late.reason,
                        late.row_json
                    ])
                    .context(at)?;
            }
        }
        {
            let mut progress = tx
                .prepare_cached(&Internal::SQLITE.upsert_progress(&Dialect::Sqlite.values(5)))
                .context(at)?;
            for partition in &commit.progress.partitions {
                progress
                    .execute(params![
                        view,
                        partition.stream,
                        partition.partition,
                        offset_to_sql(partition.next_offset, Dialect::Sqlite)?,
                        partition.watermark_ms
                    ])
                    .context(at)?;
            }
            let stats = serde_json::to_string(&commit.progress.stats)
                .map_err(|error| StoreError::bug(format!("serialising stats: {error}")))?;
            tx.prepare_cached(&Internal::SQLITE.upsert_status())
                .and_then(|mut statement| {
                    statement.execute(params![
                        view,
                        commit.progress.watermark_ms,
                        committed_at_ms,
                        stats
                    ])
                })
                .context(at)?;
        }
        tx.commit().context(at)?;
        tracing::debug!(
            view,
            rows,
            state_puts = commit.state_puts.len(),
            state_deletes = commit.state_deletes.len(),
            late = commit.late.len(),
            "committed"
        );
        Ok(())
    }

    fn repair(
        &mut self,
        view: &str,
        upserts: &[crate::model::ResultBatch],
        deletes: &[RecordBatch],
    ) -> Result<(), StoreError> {
        self.check_writable()?;
        let def = self.cached_view_def(view)?;
        let at = || format!("repairing view '{view}'");
        let mut updated_at = TimeText::new();
        let formatted = format_timestamp(now_ms(), Unit::Millisecond, &mut updated_at);
        assert!(formatted, "the wall clock is within the years 0000-9999");
        let updated_at = updated_at.as_str().to_owned();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(at)?;
        let mut text = TimeText::new();
        for batch in deletes {
            let cells = batch_cells(view, &def, batch)?;
            let mut delete = tx.prepare_cached(&def.delete_sql).context(at)?;
            for row in 0..batch.num_rows() {
                for (i, &k) in def.key.iter().enumerate() {
                    cells[k].bind(&mut delete, i + 1, row, &mut text)?;
                }
                delete.raw_execute().context(at)?;
            }
        }
        write_upserts(&tx, view, &def, upserts, &updated_at)?;
        tx.commit().context(at)
    }

    fn durable(&self) -> bool {
        self.durable
    }

    fn read_results(&self, view: &str, query: &ResultQuery) -> Result<ResultRows, StoreError> {
        let at = || format!("reading the results of view '{view}'");
        self.in_snapshot(&at, || self.results_page(view, query))
    }

    fn status(&self, view: &str) -> Result<ViewStatus, StoreError> {
        let at = || format!("reading the status of view '{view}'");
        self.in_snapshot(&at, || self.current_status(view))
    }

    fn read_page(
        &self,
        view: &str,
        query: &ResultQuery,
    ) -> Result<(ViewStatus, ResultRows), StoreError> {
        let at = || format!("reading the results of view '{view}'");
        self.in_snapshot(&at, || {
            Ok((self.current_status(view)?, self.results_page(view, query)?))
        })
    }
}

/// Checks a batch against its table and downcasts its columns.
fn batch_cells<'a>(
    view: &str,
    def: &'a ViewDef,
    batch: &'a RecordBatch,
) -> Result<Vec<Cells<'a>>, StoreError> {
    def.check_batch(view, batch)?;
    def.columns
        .iter()
        .zip(batch.columns())
        .map(|(column, array)| Cells::new(column, array))
        .collect()
}

/// Binds row `row` of a batch into slot `slot` of a (multi-row) upsert.
fn bind_row(
    statement: &mut Statement<'_>,
    cells: &[Cells<'_>],
    slot: usize,
    row: usize,
    text: &mut TimeText,
) -> Result<(), StoreError> {
    for (column, cell) in cells.iter().enumerate() {
        cell.bind(
            statement,
            upsert_parameter(cells.len(), slot, column),
            row,
            text,
        )?;
    }
    Ok(())
}

/// Writes the result rows of one commit; returns how many.
///
/// Rows go in multi-row statements of `chunk_rows` rows, the rest one by one. A row whose
/// key holds a null is deleted first and written alone, because `ON CONFLICT` never fires
/// for it (nulls are distinct in a key); such a row cannot share a key with a row without
/// nulls, so writing it out of order changes nothing.
fn write_upserts(
    tx: &Connection,
    view: &str,
    def: &ViewDef,
    upserts: &[crate::model::ResultBatch],
    updated_at: &str,
) -> Result<usize, StoreError> {
    if upserts.is_empty() {
        return Ok(0);
    }
    let at = || format!("writing the results of view '{view}'");
    let mut one = tx.prepare_cached(&def.upsert_one_sql).context(at)?;
    let mut chunk = None;
    let mut delete = None;
    let mut text = TimeText::new();
    let mut pending = Vec::with_capacity(def.chunk_rows);
    let mut rows = 0;
    for result in upserts {
        let batch = &result.batch;
        let cells = batch_cells(view, def, batch)?;
        let state = result.state.as_str();
        // Bindings survive each execution's reset, so these are bound once per batch.
        one.raw_bind_parameter(1, state).context(at)?;
        one.raw_bind_parameter(2, updated_at).context(at)?;
        if chunk.is_none() && def.chunk_rows > 1 && batch.num_rows() >= def.chunk_rows {
            chunk = Some(tx.prepare_cached(&def.upsert_chunk_sql).context(at)?);
        }
        for row in 0..batch.num_rows() {
            if def.key.iter().any(|&k| cells[k].is_null(row)) {
                let statement = match &mut delete {
                    Some(statement) => statement,
                    None => delete.insert(tx.prepare_cached(&def.delete_sql).context(at)?),
                };
                for (i, &k) in def.key.iter().enumerate() {
                    cells[k].bind(statement, i + 1, row, &mut text)?;
                }
                statement.raw_execute().context(at)?;
                bind_row(&mut one, &cells, 0, row, &mut text)?;
                one.raw_execute().context(at)?;
                continue;
            }
            pending.push(row);
            if pending.len() == def.chunk_rows
                && let Some(statement) = &mut chunk
            {
                statement.raw_bind_parameter(1, state).context(at)?;
                statement.raw_bind_parameter(2, updated_at).context(at)?;
                for (slot, &row) in pending.iter().enumerate() {
                    bind_row(statement, &cells, slot, row, &mut text)?;
                }
                statement.raw_execute().context(at)?;
                pending.clear();
            }
        }
        for row in pending.drain(..) {
            bind_row(&mut one, &cells, 0, row, &mut text)?;
            one.raw_execute().context(at)?;
        }
        rows += batch.num_rows();
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract_tests::fixtures::{all, every_type, progress, totals_table, upserts_only};
    use crate::model::{LateEvent, ResultBatch, RowState};

    fn temp_store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("results.db")).expect("open");
        (dir, store)
    }

    #[test]
    fn nanoseconds_and_stored_text_are_what_the_sqlite3_shell_reads() {
        let (_dir, mut store) = temp_store();
        // 2024-03-01T12:34:56.789123456Z: SQLite keeps every nanosecond.
        let ns = 1_709_296_496_789_123_456i64;
        let (table, batch) = every_type(ns, i64::MAX);
        store.create_view(&table).expect("create");
        let commit = upserts_only(
            vec![ResultBatch {
                batch: batch.clone(),
                state: RowState::Final,
            }],
            progress(1, 0),
        );
        store.commit("types", &commit).expect("commit");
        let read = store.read_results("types", &all()).expect("read").batch;
        for (i, field) in table.schema.fields().iter().enumerate() {
            assert_eq!(read.column(i), batch.column(i), "column {}", field.name());
        }

        // The stored text is what a person with the sqlite3 shell sees.
        let (ts_s, ts_ms, ts_ns, d, dec, b): (String, String, String, String, String, i64) = store
            .conn
            .query_row(
                "SELECT ts_s, ts_ms, ts_ns, d, dec, b FROM types WHERE k = 1",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .expect("raw row");
        assert_eq!(ts_s, "2024-03-01 12:34:56");
        assert_eq!(ts_ms, "2024-03-01 12:34:56.789");
        assert_eq!(ts_ns, "2024-03-01 12:34:56.789123456");
        assert_eq!(d, "2024-02-29");
        assert_eq!(dec, "123.45");
        assert_eq!(b, 1);
        let epoch: i64 = store
            .conn
            .query_row("SELECT unixepoch(ts_ms) FROM types WHERE k = 1", [], |r| {
                r.get(0)
            })
            .expect("SQLite reads the stored time");
        assert_eq!(epoch, ns / 1_000_000_000);
    }

    #[test]
    fn late_events_are_stored_as_the_sqlite3_shell_reads_them() {
        let (_dir, mut store) = temp_store();
        store.create_view(&totals_table()).expect("create");
        let late = LateEvent {
            stream: "clicks".into(),
            partition: 3,
            offset: 42,
            event_time_ms: 1_000,
            reason: "after_allowed_lateness".into(),
            row_json: r#"{"user":"a"}"#.into(),
        };
        let commit = Commit {
            upserts: vec![],
            state_puts: vec![],
            state_deletes: vec![],
            state_reset: false,
            late: vec![late.clone()],
            progress: progress(43, 0),
        };
        store.commit("totals", &commit).expect("commit");
        let (event_time, row): (String, String) = store
            .conn
            .query_row(
                "SELECT event_time, row FROM freshet_late_events WHERE offset = 42",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("late row, read with unquoted column names as in the sqlite3 shell");
        assert_eq!(event_time, "1970-01-01 00:00:01.000");
        assert_eq!(row, late.row_json);
    }

    #[test]
    fn open_is_idempotent_and_sets_wal_and_the_schema_version() {
        let (dir, store) = temp_store();
        drop(store);
        let store = SqliteStore::open(&dir.path().join("results.db")).expect("reopen");
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        store
            .conn
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("pretend a newer version wrote the file");
        drop(store);
        let error = SqliteStore::open(&dir.path().join("results.db")).expect_err("newer");
        assert!(error.to_string().contains("newer Freshet"), "{error}");
    }

    #[test]
    fn open_read_only_refuses_a_missing_file() {
        let (dir, _store) = temp_store();
        let error =
            SqliteStore::open_read_only(&dir.path().join("missing.db")).expect_err("no such file");
        assert!(matches!(error, StoreError::User { .. }));
        assert!(error.to_string().contains("does not exist"), "{error}");
    }
}
