//! The SQL both backends write alike, written once: quoting, the upsert statement, the
//! statements on the store's own `freshet_*` tables, offsets as SQL integers, and a view's
//! progress decoded from the rows those tables give back.
//!
//! The dialects differ here only in syntax ([`Dialect`]): parameters are `?n` in SQLite and
//! `$n` in PostgreSQL, whose tables live in a schema. What a backend does its own way stays
//! with it: the rows an upsert takes (SQLite's multi-row `VALUES`, PostgreSQL's `unnest` of
//! one array per column), column types, and how values are bound. Nothing here does I/O.

use crate::StoreError;
use crate::model::{PartitionProgress, Progress, ViewStatus};
use crate::schema::{Column, STATE_COLUMN, UPDATED_AT_COLUMN};

/// Which SQL the text is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite: `?n` parameters, tables in the file's one schema.
    Sqlite,
    /// PostgreSQL: `$n` parameters, tables in the store's schema.
    Postgres,
}

impl Dialect {
    /// Parameter `n` (1-based).
    pub(crate) fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// `VALUES (` parameters 1 to `n` `)`: one row of `n` parameters.
    pub(crate) fn values(self, n: usize) -> String {
        let params = (1..=n)
            .map(|i| self.param(i))
            .collect::<Vec<_>>()
            .join(", ");
        format!("VALUES ({params})")
    }

    /// What holds the largest integer the dialect stores, for messages.
    fn integer_limit(self) -> &'static str {
        match self {
            Dialect::Sqlite => "what SQLite stores",
            Dialect::Postgres => "a PostgreSQL bigint",
        }
    }
}

/// Quotes an SQL identifier: any name is safe inside double quotes with quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a list of identifiers, comma-separated.
pub(crate) fn quote_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `INSERT INTO table (columns) rows ON CONFLICT (key) DO UPDATE SET c = excluded.c, …`
/// for every column outside the key: a row whose key is stored has every other column
/// replaced. `columns` and `key` are written as they stand in the SQL (quoted where they
/// need it); `rows` is the dialect's source of rows (`VALUES …` or `SELECT …`).
pub(crate) fn upsert_sql(
    table: &str,
    columns: &[impl AsRef<str>],
    key: &[impl AsRef<str>],
    rows: &str,
) -> String {
    let updates = columns
        .iter()
        .map(AsRef::as_ref)
        .filter(|column| !key.iter().any(|k| k.as_ref() == *column))
        .map(|column| format!("{column} = excluded.{column}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {table} ({}) {rows} ON CONFLICT ({}) DO UPDATE SET {updates}",
        join(columns),
        join(key)
    )
}

fn join(names: &[impl AsRef<str>]) -> String {
    names
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<&str>>()
        .join(", ")
}

/// The upsert of result rows into `table` (quoted, and qualified if need be): the view's
/// columns, then `_state` and `_updated_at`, keyed by `key`.
pub(crate) fn results_upsert_sql(
    table: &str,
    columns: &[Column],
    key: &[&str],
    rows: &str,
) -> String {
    let names = columns
        .iter()
        .map(|c| c.name.as_str())
        .chain([STATE_COLUMN, UPDATED_AT_COLUMN])
        .map(quote_ident)
        .collect::<Vec<_>>();
    let key = key.iter().map(|name| quote_ident(name)).collect::<Vec<_>>();
    upsert_sql(table, &names, &key, rows)
}

/// ` WHERE c1 AND c2 …`, or nothing without conditions.
pub(crate) fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// The store's own tables that hold rows of a view (in a `view` column): what dropping a
/// view removes besides its results table.
/// (`freshet_changes` keeps a marker instead: [`Internal::mark_dropped`].)
pub(crate) const VIEW_TABLES: [&str; 5] = [
    "freshet_views",
    "freshet_progress",
    "freshet_view_status",
    "freshet_state",
    "freshet_late_events",
];

/// The columns of `freshet_late_events`, in the order commits write them.
pub(crate) const LATE_EVENT_COLUMNS: &str =
    "view, stream, \"partition\", \"offset\", event_time, reason, \"row\"";

/// `freshet_progress`'s columns, in the order commits write them; the first three are its
/// key.
const PROGRESS_COLUMNS: [&str; 5] = [
    "view",
    "stream",
    "\"partition\"",
    "next_offset",
    "watermark_ms",
];

/// `freshet_view_status`'s columns, in the order commits write them; the first is its key.
const VIEW_STATUS_COLUMNS: [&str; 4] = ["view", "watermark_ms", "committed_at_ms", "stats"];

/// The statements on the store's own tables that both backends run alike, for one dialect
/// and (in PostgreSQL) one schema. Each takes the view as parameter 1.
#[derive(Debug, Clone)]
pub(crate) struct Internal {
    dialect: Dialect,
    /// The schema the tables live in, quoted; `None` in SQLite.
    schema: Option<String>,
}

impl Internal {
    /// SQLite's statements.
    pub(crate) const SQLITE: Internal = Internal {
        dialect: Dialect::Sqlite,
        schema: None,
    };

    /// PostgreSQL's statements on the tables of `schema` (quoted).
    pub(crate) fn postgres(schema: &str) -> Internal {
        Internal {
            dialect: Dialect::Postgres,
            schema: Some(schema.to_owned()),
        }
    }

    /// The store's own table `name`, qualified by the schema if there is one.
    pub(crate) fn table(&self, name: &str) -> String {
        match &self.schema {
            Some(schema) => format!("{schema}.{name}"),
            None => name.to_owned(),
        }
    }

    fn param(&self, n: usize) -> String {
        self.dialect.param(n)
    }

    /// Parameter `n`, cast to the PostgreSQL type `ty` where PostgreSQL cannot infer it.
    fn typed(&self, n: usize, ty: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => self.param(n),
            Dialect::Postgres => format!("{}::{ty}", self.param(n)),
        }
    }

    /// Adds a change-log entry numbered one after the view's last and returns its number:
    /// view, commit time, kind, progress (JSON), deletes, upserts.
    pub(crate) fn insert_change(&self) -> String {
        let table = self.table("freshet_changes");
        format!(
            "INSERT INTO {table} (view, seq, committed_at_ms, kind, progress, deletes, upserts) \
             SELECT {}, COALESCE(MAX(seq), 0) + 1, {}, {}, {}, {}, {} FROM {table} \
             WHERE view = {} RETURNING seq",
            self.typed(1, "text"),
            self.typed(2, "bigint"),
            self.typed(3, "text"),
            self.typed(4, "jsonb"),
            self.typed(5, "bytea"),
            self.typed(6, "bytea"),
            self.param(1)
        )
    }

    /// Prunes a view's change log: given the newest position (2), the entries kept at most
    /// (3), the oldest commit time kept (4) and the bytes of encoded rows kept at most (5),
    /// removes the older ones but never the newest. The bytes are summed from the newest
    /// back, so the oldest go first.
    pub(crate) fn prune_changes(&self) -> String {
        let table = self.table("freshet_changes");
        format!(
            "DELETE FROM {table} WHERE view = {} AND seq < {} AND (seq <= {} - {} OR \
             committed_at_ms < {} OR seq IN (SELECT seq FROM (SELECT seq, \
             SUM(COALESCE(length(deletes), 0) + COALESCE(length(upserts), 0)) \
             OVER (ORDER BY seq DESC) AS kept FROM {table} WHERE view = {}) AS sized \
             WHERE kept > {}))",
            self.param(1),
            self.typed(2, "bigint"),
            self.typed(2, "bigint"),
            self.typed(3, "bigint"),
            self.typed(4, "bigint"),
            self.param(1),
            self.typed(5, "bigint")
        )
    }

    /// Dropping a view: replaces its change log, if it has one, by a `dropped` entry at the
    /// next position (commit time parameter 2), so that a view created again under the
    /// name numbers on from there and a client of the old one is told (see
    /// [`ChangeKind::Dropped`](crate::ChangeKind::Dropped)). Two statements.
    pub(crate) fn mark_dropped(&self) -> [String; 2] {
        let table = self.table("freshet_changes");
        [
            format!(
                "INSERT INTO {table} (view, seq, committed_at_ms, kind) SELECT {}, \
                 MAX(seq) + 1, {}, 'dropped' FROM {table} WHERE view = {} \
                 HAVING MAX(seq) IS NOT NULL",
                self.typed(1, "text"),
                self.typed(2, "bigint"),
                self.param(1)
            ),
            format!(
                "DELETE FROM {table} WHERE view = {} AND seq < (SELECT MAX(seq) FROM {table} \
                 WHERE view = {})",
                self.param(1),
                self.param(1)
            ),
        ]
    }

    /// The first and last positions of a view's change log (nulls if it is empty).
    pub(crate) fn change_bounds(&self) -> String {
        format!(
            "SELECT MIN(seq), MAX(seq) FROM {} WHERE view = {}",
            self.table("freshet_changes"),
            self.param(1)
        )
    }

    /// A view's change-log entries after position (2), at most (3), oldest first, as
    /// [`ChangeRow`](crate::changes::ChangeRow)s.
    pub(crate) fn select_changes(&self) -> String {
        let progress = match self.dialect {
            Dialect::Sqlite => "progress",
            Dialect::Postgres => "progress::text",
        };
        format!(
            "SELECT seq, committed_at_ms, kind, {progress}, deletes, upserts FROM {} \
             WHERE view = {} AND seq > {} ORDER BY seq LIMIT {}",
            self.table("freshet_changes"),
            self.param(1),
            self.typed(2, "bigint"),
            self.typed(3, "bigint")
        )
    }

    /// A view's key columns and schema (JSON).
    pub(crate) fn select_definition(&self) -> String {
        format!(
            "SELECT key_columns, schema FROM {} WHERE view = {}",
            self.table("freshet_views"),
            self.param(1)
        )
    }

    /// Registers a view: its name, key columns, schema and creation time.
    pub(crate) fn insert_definition(&self) -> String {
        format!(
            "INSERT INTO {} (view, key_columns, schema, created_at_ms) {}",
            self.table("freshet_views"),
            self.dialect.values(4)
        )
    }

    /// Replaces a view's stored schema (parameter 2).
    pub(crate) fn update_definition(&self) -> String {
        format!(
            "UPDATE {} SET schema = {} WHERE view = {}",
            self.table("freshet_views"),
            self.param(2),
            self.param(1)
        )
    }

    /// Removes a view's rows from `table`, one of [`VIEW_TABLES`].
    pub(crate) fn delete_view_rows(&self, table: &str) -> String {
        format!(
            "DELETE FROM {} WHERE view = {}",
            self.table(table),
            self.param(1)
        )
    }

    /// A view's operator state, ordered by key bytes (SQLite's; PostgreSQL keys state by
    /// task too: `pg::read`).
    pub(crate) fn select_state(&self) -> String {
        format!(
            "SELECT key, value FROM {} WHERE view = {} ORDER BY key",
            self.table("freshet_state"),
            self.param(1)
        )
    }

    /// A view's [`StatusRow`] (SQLite's; PostgreSQL keys status by task too: `pg::read`).
    pub(crate) fn select_status(&self) -> String {
        format!(
            "SELECT watermark_ms, committed_at_ms, stats FROM {} WHERE view = {}",
            self.table("freshet_view_status"),
            self.param(1)
        )
    }

    /// A view's [`ProgressRow`]s, by stream and partition.
    pub(crate) fn select_progress(&self) -> String {
        format!(
            "SELECT stream, \"partition\", next_offset, watermark_ms FROM {} WHERE view = {} \
             ORDER BY stream, \"partition\"",
            self.table("freshet_progress"),
            self.param(1)
        )
    }

    /// Upserts progress rows taken from `rows` (view, stream, partition, next offset,
    /// watermark).
    pub(crate) fn upsert_progress(&self, rows: &str) -> String {
        upsert_sql(
            &self.table("freshet_progress"),
            &PROGRESS_COLUMNS[..],
            &PROGRESS_COLUMNS[..3],
            rows,
        )
    }

    /// Upserts a view's status: view, watermark, commit time and stats (SQLite's;
    /// PostgreSQL keys status by task too: `pg::write`).
    pub(crate) fn upsert_status(&self) -> String {
        upsert_sql(
            &self.table("freshet_view_status"),
            &VIEW_STATUS_COLUMNS[..],
            &VIEW_STATUS_COLUMNS[..1],
            &self.dialect.values(VIEW_STATUS_COLUMNS.len()),
        )
    }
}

/// Offsets are `u64`; SQL integers are `i64`. No log reaches 2^63 records.
pub(crate) fn offset_to_sql(offset: u64, dialect: Dialect) -> Result<i64, StoreError> {
    i64::try_from(offset).map_err(|_| {
        StoreError::bug(format!(
            "offset {offset} is beyond {}",
            dialect.integer_limit()
        ))
    })
}

/// A view's `freshet_view_status` row, as [`Internal::select_status`] reads it.
pub(crate) struct StatusRow {
    pub(crate) watermark_ms: Option<i64>,
    pub(crate) committed_at_ms: i64,
    pub(crate) stats: serde_json::Value,
}

/// A `freshet_progress` row as read back (stream, partition, next offset, watermark): the
/// stores keep integers signed.
pub(crate) type ProgressRow = (String, i64, i64, Option<i64>);

/// A view's committed progress and commit time, from its status row and its progress rows.
pub(crate) fn decode_progress(
    view: &str,
    status: StatusRow,
    rows: impl IntoIterator<Item = ProgressRow>,
) -> Result<(Progress, i64), StoreError> {
    let partitions = rows
        .into_iter()
        .map(|row| partition_progress(view, row))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        Progress {
            partitions,
            watermark_ms: status.watermark_ms,
            stats: status.stats,
        },
        status.committed_at_ms,
    ))
}

/// One progress row, refusing a negative partition or offset as corruption.
fn partition_progress(
    view: &str,
    (stream, partition, next_offset, watermark_ms): ProgressRow,
) -> Result<PartitionProgress, StoreError> {
    let (Ok(partition), Ok(next_offset)) = (u32::try_from(partition), u64::try_from(next_offset))
    else {
        return Err(StoreError::corrupt(format!(
            "freshet_progress holds partition {partition}, offset {next_offset} for view \
             '{view}', stream '{stream}'; neither may be negative"
        )));
    };
    Ok(PartitionProgress {
        stream,
        partition,
        next_offset,
        watermark_ms,
    })
}

/// A view's status from its progress as [`decode_progress`] gives it, if it ever committed.
pub(crate) fn view_status(view: &str, progress: Option<(Progress, i64)>) -> ViewStatus {
    ViewStatus {
        view: view.to_owned(),
        committed_at_ms: progress.as_ref().map(|(_, at)| *at),
        progress: progress.map(|(progress, _)| progress),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_statements_differ_only_in_parameters_and_schema() {
        assert_eq!(
            Internal::SQLITE.upsert_status(),
            "INSERT INTO freshet_view_status (view, watermark_ms, committed_at_ms, stats) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (view) DO UPDATE SET watermark_ms = \
             excluded.watermark_ms, committed_at_ms = excluded.committed_at_ms, stats = \
             excluded.stats"
        );
        assert_eq!(
            Internal::postgres("\"s\"").upsert_progress("SELECT $1, s, p, o, w FROM u"),
            "INSERT INTO \"s\".freshet_progress (view, stream, \"partition\", next_offset, \
             watermark_ms) SELECT $1, s, p, o, w FROM u ON CONFLICT (view, stream, \
             \"partition\") DO UPDATE SET next_offset = excluded.next_offset, watermark_ms = \
             excluded.watermark_ms"
        );
    }

    #[test]
    fn negative_progress_is_corrupt() {
        let status = || StatusRow {
            watermark_ms: None,
            committed_at_ms: 5,
            stats: serde_json::Value::Null,
        };
        let (progress, at) =
            decode_progress("v", status(), [("s".to_owned(), 1, 2, Some(3))]).expect("valid");
        assert_eq!((progress.partitions[0].next_offset, at), (2, 5));
        let error = decode_progress("v", status(), [("s".to_owned(), 0, -1, None)])
            .expect_err("negative offset");
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
        assert!(offset_to_sql(u64::MAX, Dialect::Postgres).is_err());
    }
}
