//! What every store knows about a view's results table, whatever it keeps it in: the
//! checks on names, columns and keys, the stored definition (JSON in `freshet_views`) and
//! how it may change, and the conditions a results query puts on the rows (which columns a
//! time filter applies to, and how its bounds round). Each store writes those conditions in
//! its own SQL.

use crate::StoreError;
use crate::model::{ResultQuery, ResultTable};
use crate::schema::{
    Column, ColumnType, INTERNAL_PREFIX, STATE_COLUMN, UPDATED_AT_COLUMN, Unit, parse_date,
    parse_user_timestamp,
};
use arrow_array::RecordBatch;
use arrow_array::types::{Decimal128Type, DecimalType};

/// Earliest instant a time filter bound is clamped to: 0000-01-01 00:00:00 UTC.
const TIME_FILTER_MIN_MS: i64 = -62_167_219_200_000;

/// Latest instant a time filter bound is clamped to: 9999-12-31 23:59:59 UTC. Stored times
/// never lie outside these bounds, so clamping changes no answer.
const TIME_FILTER_MAX_MS: i64 = 253_402_300_799_000;

/// A view's columns and key, as every store keeps them in `freshet_views`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Definition {
    pub(crate) columns: Vec<Column>,
    /// Positions of the key columns in `columns`.
    pub(crate) key: Vec<usize>,
}

impl Definition {
    pub(crate) fn key_names(&self) -> Vec<&str> {
        self.key
            .iter()
            .map(|&i| self.columns[i].name.as_str())
            .collect()
    }

    /// Checks a new definition of the view against this stored one, and gives what to store
    /// instead if it changed: only nullability may, and it only widens. A user error names
    /// the first other difference.
    pub(crate) fn redefined(
        &self,
        view: &str,
        columns: &[Column],
        key: &[String],
    ) -> Result<Option<Definition>, StoreError> {
        self.check_same(view, columns, key)?;
        let merged = self.merged(columns);
        Ok((merged != *self).then_some(merged))
    }

    /// Checks a new definition against this stored one; the error names the first
    /// difference.
    fn check_same(&self, view: &str, columns: &[Column], key: &[String]) -> Result<(), StoreError> {
        let differ = |what: String| {
            Err(StoreError::user(format!(
                "view '{view}' already exists with different columns: {what}; drop the view \
                 to change its columns"
            )))
        };
        for (position, new) in columns.iter().enumerate() {
            match self.columns.iter().position(|old| old.name == new.name) {
                None => return differ(format!("column '{}' is new", new.name)),
                Some(old_position) => {
                    let old = &self.columns[old_position];
                    if old.ty != new.ty {
                        return differ(format!(
                            "column '{}' was {} and is now {}",
                            new.name,
                            old.ty.to_arrow(),
                            new.ty.to_arrow()
                        ));
                    }
                    if old_position != position {
                        return differ(format!(
                            "column '{}' moved from position {} to {}",
                            new.name,
                            old_position + 1,
                            position + 1
                        ));
                    }
                }
            }
        }
        if let Some(gone) = self
            .columns
            .iter()
            .find(|old| !columns.iter().any(|new| new.name == old.name))
        {
            return differ(format!("column '{}' is gone", gone.name));
        }
        let old_key = self.key_names();
        if old_key != key.iter().map(String::as_str).collect::<Vec<_>>() {
            return differ(format!(
                "the key was ({}) and is now ({})",
                old_key.join(", "),
                key.join(", ")
            ));
        }
        Ok(())
    }
    /// Reads the definition stored in `freshet_views` (`key_columns` and `schema` JSON).
    pub(crate) fn from_json(
        view: &str,
        key_json: &str,
        schema_json: &str,
    ) -> Result<Definition, StoreError> {
        let bad = |what: &str, error: serde_json::Error| {
            StoreError::corrupt(format!(
                "freshet_views holds an unreadable {what} for view '{view}': {error}"
            ))
        };
        let columns: Vec<Column> =
            serde_json::from_str(schema_json).map_err(|error| bad("schema", error))?;
        let key_names: Vec<String> =
            serde_json::from_str(key_json).map_err(|error| bad("key_columns", error))?;
        let key = key_names
            .iter()
            .map(|name| {
                columns
                    .iter()
                    .position(|column| &column.name == name)
                    .ok_or_else(|| {
                        StoreError::corrupt(format!(
                            "freshet_views names key column '{name}' of view '{view}', which \
                             is not in its schema"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if key.is_empty() {
            return Err(StoreError::corrupt(format!(
                "freshet_views holds no key columns for view '{view}'"
            )));
        }
        Ok(Definition { columns, key })
    }

    /// The `(key_columns, schema)` JSON stored in `freshet_views`.
    pub(crate) fn to_json(&self) -> Result<(String, String), StoreError> {
        let key_json = serde_json::to_string(&self.key_names())
            .map_err(|error| StoreError::bug(format!("serialising a key: {error}")))?;
        let schema_json = serde_json::to_string(&self.columns)
            .map_err(|error| StoreError::bug(format!("serialising a schema: {error}")))?;
        Ok((key_json, schema_json))
    }

    /// This stored definition with the nullability of `new` added: a column that may now
    /// hold nulls is recorded as nullable; one recorded as nullable stays so, since stored
    /// rows may hold nulls.
    fn merged(&self, new: &[Column]) -> Definition {
        Definition {
            columns: self
                .columns
                .iter()
                .zip(new)
                .map(|(old, new)| Column {
                    nullable: old.nullable || new.nullable,
                    ..old.clone()
                })
                .collect(),
            key: self.key.clone(),
        }
    }

    /// The position of key column `name`, or a user error listing the key columns.
    pub(crate) fn key_position(&self, view: &str, name: &str) -> Result<usize, StoreError> {
        self.key
            .iter()
            .copied()
            .find(|&k| self.columns[k].name == name)
            .ok_or_else(|| {
                StoreError::user(format!(
                    "cannot filter view '{view}' on column '{name}': filters apply to its key \
                     columns only ({})",
                    self.key_names().join(", ")
                ))
            })
    }

    /// Checks that `batch` has this table's columns, by name and in order.
    pub(crate) fn check_batch(&self, view: &str, batch: &RecordBatch) -> Result<(), StoreError> {
        if batch.num_columns() != self.columns.len() {
            return Err(StoreError::bug(format!(
                "a batch for view '{view}' has {} columns; its table has {}",
                batch.num_columns(),
                self.columns.len()
            )));
        }
        for (column, field) in self.columns.iter().zip(batch.schema_ref().fields()) {
            if field.name() != &column.name {
                return Err(StoreError::bug(format!(
                    "a batch for view '{view}' has column '{}' where its table has '{}'",
                    field.name(),
                    column.name
                )));
            }
        }
        Ok(())
    }
}

pub(crate) fn unknown_view(view: &str) -> StoreError {
    StoreError::user(format!("unknown view '{view}'"))
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// View names become table names, so they must not collide with SQLite's or the store's own.
pub(crate) fn check_view_name(view: &str) -> Result<(), StoreError> {
    let lower = view.to_ascii_lowercase();
    if view.is_empty() {
        return Err(StoreError::user("a view name cannot be empty"));
    }
    if lower.starts_with(INTERNAL_PREFIX) {
        return Err(StoreError::user(format!(
            "view name '{view}' starts with '{INTERNAL_PREFIX}', which is reserved for the \
             result store's own tables"
        )));
    }
    if lower.starts_with("sqlite_") {
        return Err(StoreError::user(format!(
            "view name '{view}' starts with 'sqlite_', which SQLite reserves"
        )));
    }
    if view.contains('\0') {
        return Err(StoreError::user(
            "a view name cannot contain a NUL character",
        ));
    }
    Ok(())
}

/// Checks and converts a view's columns and key.
pub(crate) fn table_columns(table: &ResultTable) -> Result<(Vec<Column>, Vec<usize>), StoreError> {
    let view = &table.view;
    let columns = table
        .schema
        .fields()
        .iter()
        .map(|field| Column::from_field(field))
        .collect::<Result<Vec<_>, _>>()?;
    if columns.is_empty() {
        return Err(StoreError::user(format!("view '{view}' has no columns")));
    }
    for (i, column) in columns.iter().enumerate() {
        if column.name.is_empty() || column.name.contains('\0') {
            return Err(StoreError::user(format!(
                "view '{view}' has a column with an empty name or a NUL character"
            )));
        }
        if [STATE_COLUMN, UPDATED_AT_COLUMN]
            .iter()
            .any(|reserved| column.name.eq_ignore_ascii_case(reserved))
        {
            return Err(StoreError::user(format!(
                "view '{view}' has a column named '{}', which the result store adds itself; \
                 rename it",
                column.name
            )));
        }
        // SQLite column names are case-insensitive.
        if columns[..i]
            .iter()
            .any(|other| other.name.eq_ignore_ascii_case(&column.name))
        {
            return Err(StoreError::user(format!(
                "view '{view}' has two columns named '{}' (names are case-insensitive)",
                column.name
            )));
        }
    }
    if table.key.is_empty() {
        return Err(StoreError::user(format!(
            "view '{view}' has no key columns: its results need a key (group keys and window \
             columns) so that a row written again replaces the old one"
        )));
    }
    let mut key = Vec::with_capacity(table.key.len());
    for name in &table.key {
        let position = columns
            .iter()
            .position(|column| &column.name == name)
            .ok_or_else(|| {
                StoreError::user(format!(
                    "key column '{name}' is not a column of view '{view}'"
                ))
            })?;
        if key.contains(&position) {
            return Err(StoreError::user(format!(
                "key column '{name}' is listed twice for view '{view}'"
            )));
        }
        key.push(position);
    }
    Ok((columns, key))
}

/// A timestamp column and its unit.
type TimeColumn<'a> = (&'a Column, Unit);

/// The columns a time range filters on.
enum TimeColumns<'a> {
    /// Rows whose `[start, end)` overlaps the range.
    Window {
        start: TimeColumn<'a>,
        end: TimeColumn<'a>,
    },
    /// Rows whose one timestamp lies in the range.
    Instant(TimeColumn<'a>),
}

fn time_columns<'a>(view: &str, columns: &'a [Column]) -> Result<TimeColumns<'a>, StoreError> {
    let mut timestamps = columns.iter().filter_map(|column| match column.ty {
        ColumnType::Timestamp { unit, .. } => Some((column, unit)),
        _ => None,
    });
    let named = |name: &str| timestamps.clone().find(|(column, _)| column.name == name);
    if let (Some(start), Some(end)) = (named("window_start"), named("window_end")) {
        return Ok(TimeColumns::Window { start, end });
    }
    match (timestamps.next(), timestamps.next()) {
        (Some(only), None) => Ok(TimeColumns::Instant(only)),
        _ => Err(StoreError::user(format!(
            "view '{view}' cannot be filtered by time: that needs timestamp columns \
             window_start and window_end, or exactly one timestamp column"
        ))),
    }
}

/// One condition of a results query. Every store decides the conditions alike
/// ([`filters`]) and writes each in its own SQL, with its own parameters.
pub(crate) enum Filter<'a> {
    /// `column = value`; `text` is the value as given, for messages.
    Equals {
        column: &'a Column,
        value: FilterValue,
        text: &'a str,
    },
    /// `column op ms`, a time bound in ms since the epoch, clamped to the years 0000–9999.
    /// `round_up` says which way the bound rounds to a coarser unit without changing the
    /// answer: `t > from` holds for a whole-unit `t` iff `t > floor(from)`, `t >= from` iff
    /// `t >= ceil(from)`, and `t < to` iff `t < ceil(to)`.
    Time {
        column: &'a Column,
        unit: Unit,
        op: &'static str,
        ms: i64,
        round_up: bool,
    },
}

/// The conditions `query` puts on the rows of `view` (see
/// [`ResultStore::read_results`](crate::ResultStore::read_results)): its key equalities in
/// order, then the lower and upper bounds of its time range. Each is decided only when it
/// is reached, so the first bad one is the error, as the store meets it.
pub(crate) fn filters<'a>(
    view: &'a str,
    def: &'a Definition,
    query: &'a ResultQuery,
) -> impl Iterator<Item = Result<Filter<'a>, StoreError>> + 'a {
    let equals = query.equals.iter().map(move |(name, text)| {
        let column = &def.columns[def.key_position(view, name)?];
        Ok(Filter::Equals {
            column,
            value: FilterValue::parse(view, column, text)?,
            text,
        })
    });
    let time_range = std::iter::once(())
        .filter(move |_| query.from_ms.is_some() || query.to_ms.is_some())
        .flat_map(move |_| match time_filters(view, def, query) {
            Ok(filters) => filters.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(error) => vec![Err(error)],
        });
    equals.chain(time_range)
}

/// The bounds of a query's time range: a window overlaps `[from, to)` if it ends after
/// `from` and starts before `to`; a lone timestamp must lie in it.
fn time_filters<'a>(
    view: &str,
    def: &'a Definition,
    query: &ResultQuery,
) -> Result<Vec<Filter<'a>>, StoreError> {
    let ((lower, lower_unit), (upper, upper_unit), lower_op) =
        match time_columns(view, &def.columns)? {
            TimeColumns::Window { start, end } => (end, start, ">"),
            TimeColumns::Instant(column) => (column, column, ">="),
        };
    let clamp = |ms: i64| ms.clamp(TIME_FILTER_MIN_MS, TIME_FILTER_MAX_MS);
    let mut filters = Vec::with_capacity(2);
    if let Some(from_ms) = query.from_ms {
        filters.push(Filter::Time {
            column: lower,
            unit: lower_unit,
            op: lower_op,
            ms: clamp(from_ms),
            round_up: lower_op == ">=",
        });
    }
    if let Some(to_ms) = query.to_ms {
        filters.push(Filter::Time {
            column: upper,
            unit: upper_unit,
            op: "<",
            ms: clamp(to_ms),
            round_up: true,
        });
    }
    Ok(filters)
}

/// What a timestamp filter value must look like.
pub(crate) const TIMESTAMP_EXPECTED: &str =
    "a timestamp (RFC 3339 like 2024-03-01T12:00:00Z, or 2024-03-01 12:00:00.000)";

/// The error for a filter value on `column` that is not what its type needs.
pub(crate) fn filter_error(view: &str, column: &Column, text: &str, expected: &str) -> StoreError {
    StoreError::user(format!(
        "filter on column '{}' of view '{view}': '{text}' is not {expected}",
        column.name
    ))
}

/// A key filter's value (given as text) parsed for its column; each store encodes it.
pub(crate) enum FilterValue {
    Integer(i64),
    Boolean(bool),
    Float(f64),
    Text(String),
    /// In the column's unit.
    Time(i64, Unit),
    /// Days since the Unix epoch.
    Date(i32),
    /// The canonical text of the decimal.
    Decimal(String),
}

impl FilterValue {
    /// Parses `text` for `column`; a user error naming what was expected.
    pub(crate) fn parse(
        view: &str,
        column: &Column,
        text: &str,
    ) -> Result<FilterValue, StoreError> {
        let bad = |expected: &str| filter_error(view, column, text, expected);
        let trimmed = text.trim();
        Ok(match &column.ty {
            ColumnType::Int8
            | ColumnType::Int16
            | ColumnType::Int32
            | ColumnType::Int64
            | ColumnType::UInt8
            | ColumnType::UInt16
            | ColumnType::UInt32
            | ColumnType::UInt64 => {
                FilterValue::Integer(trimmed.parse().map_err(|_| bad("an integer"))?)
            }
            ColumnType::Boolean => FilterValue::Boolean(match trimmed {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(bad("a boolean (true or false)")),
            }),
            ColumnType::Float32 | ColumnType::Float64 => {
                FilterValue::Float(trimmed.parse().map_err(|_| bad("a number"))?)
            }
            ColumnType::Utf8 | ColumnType::LargeUtf8 | ColumnType::Utf8View => {
                FilterValue::Text(text.to_owned())
            }
            ColumnType::Timestamp { unit, .. } => FilterValue::Time(
                parse_user_timestamp(trimmed, *unit).ok_or_else(|| bad(TIMESTAMP_EXPECTED))?,
                *unit,
            ),
            ColumnType::Date32 => {
                FilterValue::Date(parse_date(trimmed).ok_or_else(|| bad("a date (YYYY-MM-DD)"))?)
            }
            ColumnType::Decimal128 { precision, scale } => {
                let value =
                    arrow_cast::parse::parse_decimal::<Decimal128Type>(trimmed, *precision, *scale)
                        .map_err(|_| {
                            bad(&format!(
                                "a decimal of precision {precision}, scale {scale}"
                            ))
                        })?;
                FilterValue::Decimal(<Decimal128Type as DecimalType>::format_decimal(
                    value, *precision, *scale,
                ))
            }
            ColumnType::Binary | ColumnType::LargeBinary | ColumnType::BinaryView => {
                return Err(StoreError::user(format!(
                    "column '{}' of view '{view}' holds bytes and cannot be filtered on",
                    column.name
                )));
            }
        })
    }
}
