//! How the store's column types map to PostgreSQL: the column types of a results table, the
//! array types rows are sent in, and the conversion of Arrow columns to those arrays and of
//! PostgreSQL values back to what [`ColumnBuilder`](crate::cells::ColumnBuilder) reads.
//!
//! Times travel in PostgreSQL's binary form (microseconds or days since 2000-01-01) through
//! two small wrappers, so no calendar arithmetic happens on either side.

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Decimal128Type, Float64Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use bytes::{BufMut, BytesMut};
use postgres::types::{FromSql, IsNull, ToSql, Type, accepts, to_sql_checked};
use std::error::Error;

use crate::StoreError;
use crate::schema::{Column, ColumnType, Unit};

/// 2000-01-01, PostgreSQL's epoch, in microseconds since the Unix epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// 2000-01-01 in days since the Unix epoch.
const PG_EPOCH_DAYS: i32 = 10_957;

type BoxError = Box<dyn Error + Sync + Send>;

/// A `timestamp` or `timestamptz` value, in microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgTime(pub(crate) i64);

impl ToSql for PgTime {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let micros = self
            .0
            .checked_sub(PG_EPOCH_MICROS)
            .ok_or("time out of PostgreSQL's range")?;
        out.put_i64(micros);
        Ok(IsNull::No)
    }

    accepts!(TIMESTAMP, TIMESTAMPTZ);
    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgTime {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<PgTime, BoxError> {
        let micros = i64::from_be_bytes(raw.try_into()?);
        // ±infinity are i64::MAX and i64::MIN; Freshet never writes them.
        micros
            .checked_add(PG_EPOCH_MICROS)
            .map(PgTime)
            .ok_or_else(|| "an infinite or out-of-range time".into())
    }

    accepts!(TIMESTAMP, TIMESTAMPTZ);
}

/// A `date` value, in days since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgDate(pub(crate) i32);

impl ToSql for PgDate {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i32(
            self.0
                .checked_sub(PG_EPOCH_DAYS)
                .ok_or("date out of PostgreSQL's range")?,
        );
        Ok(IsNull::No)
    }

    accepts!(DATE);
    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgDate {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<PgDate, BoxError> {
        let days = i32::from_be_bytes(raw.try_into()?);
        days.checked_add(PG_EPOCH_DAYS)
            .map(PgDate)
            .ok_or_else(|| "an infinite or out-of-range date".into())
    }

    accepts!(DATE);
}

/// The PostgreSQL column type a results column is stored as.
pub(crate) fn column_type(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Int8 | ColumnType::Int16 | ColumnType::UInt8 => "smallint".into(),
        ColumnType::Int32 | ColumnType::UInt16 => "integer".into(),
        ColumnType::Int64 | ColumnType::UInt32 | ColumnType::UInt64 => "bigint".into(),
        ColumnType::Float32 => "real".into(),
        ColumnType::Float64 => "double precision".into(),
        ColumnType::Boolean => "boolean".into(),
        ColumnType::Utf8 | ColumnType::LargeUtf8 | ColumnType::Utf8View => "text".into(),
        ColumnType::Timestamp { tz: Some(_), .. } => "timestamptz".into(),
        ColumnType::Timestamp { tz: None, .. } => "timestamp".into(),
        ColumnType::Date32 => "date".into(),
        ColumnType::Decimal128 { precision, scale }
            if *scale >= 0 && *scale as u8 <= *precision =>
        {
            format!("numeric({precision}, {scale})")
        }
        ColumnType::Decimal128 { .. } => "numeric".into(),
        ColumnType::Binary | ColumnType::LargeBinary | ColumnType::BinaryView => "bytea".into(),
    }
}

/// The array type a column's values are sent in, one array per column per statement.
pub(crate) fn array_type(ty: &ColumnType) -> &'static str {
    match ty {
        ColumnType::Int8
        | ColumnType::Int16
        | ColumnType::Int32
        | ColumnType::Int64
        | ColumnType::UInt8
        | ColumnType::UInt16
        | ColumnType::UInt32
        | ColumnType::UInt64 => "bigint[]",
        ColumnType::Float32 | ColumnType::Float64 => "float8[]",
        ColumnType::Boolean => "boolean[]",
        ColumnType::Utf8 | ColumnType::LargeUtf8 | ColumnType::Utf8View => "text[]",
        ColumnType::Timestamp { tz: Some(_), .. } => "timestamptz[]",
        ColumnType::Timestamp { tz: None, .. } => "timestamp[]",
        ColumnType::Date32 => "date[]",
        // Sent as text and cast, so no decimal type is needed on this side.
        ColumnType::Decimal128 { .. } => "text[]",
        ColumnType::Binary | ColumnType::LargeBinary | ColumnType::BinaryView => "bytea[]",
    }
}

/// The scalar type a filter value on a column is sent as.
pub(crate) fn scalar_type(ty: &ColumnType) -> &'static str {
    array_type(ty).trim_end_matches("[]")
}

/// Converts a time in `unit` to microseconds; `None` if it has a part finer than that, or
/// does not fit.
pub(crate) fn to_micros(value: i64, unit: Unit) -> Option<i64> {
    match unit {
        Unit::Second => value.checked_mul(1_000_000),
        Unit::Millisecond => value.checked_mul(1_000),
        Unit::Microsecond => Some(value),
        Unit::Nanosecond => (value % 1_000 == 0).then_some(value / 1_000),
    }
}

/// Converts microseconds to a time in `unit`; `None` if it has a part finer than the unit
/// (which Freshet never writes), or does not fit.
pub(crate) fn from_micros(micros: i64, unit: Unit) -> Option<i64> {
    match unit {
        Unit::Second => (micros % 1_000_000 == 0).then_some(micros / 1_000_000),
        Unit::Millisecond => (micros % 1_000 == 0).then_some(micros / 1_000),
        Unit::Microsecond => Some(micros),
        Unit::Nanosecond => micros.checked_mul(1_000),
    }
}

fn collect<T>(array: &dyn Array, value: impl Fn(usize) -> T) -> Vec<Option<T>> {
    (0..array.len())
        .map(|row| (!array.is_null(row)).then(|| value(row)))
        .collect()
}

fn collect_checked<T>(
    array: &dyn Array,
    value: impl Fn(usize) -> Result<T, StoreError>,
) -> Result<Vec<Option<T>>, StoreError> {
    (0..array.len())
        .map(|row| (!array.is_null(row)).then(|| value(row)).transpose())
        .collect()
}

/// `array` cast to a wider type (exact for every type it is used on).
fn widen(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, StoreError> {
    arrow_cast::cast(array, to)
        .map_err(|error| StoreError::bug(format!("widening a column to {to}: {error}")))
}

/// One column of rows as the array parameter of an upsert (see [`array_type`]).
pub(crate) fn column_array<'a>(
    column: &Column,
    array: &'a ArrayRef,
) -> Result<Box<dyn ToSql + Sync + 'a>, StoreError> {
    column.check_array(array.as_ref())?;
    let a = array.as_ref();
    let name = column.name.as_str();
    Ok(match &column.ty {
        // Every integer type that fits travels as bigint: one lossless cast per batch.
        ColumnType::Int8
        | ColumnType::Int16
        | ColumnType::Int32
        | ColumnType::Int64
        | ColumnType::UInt8
        | ColumnType::UInt16
        | ColumnType::UInt32 => {
            let wide = widen(array, &DataType::Int64)?;
            let v = wide.as_primitive::<Int64Type>();
            Box::new(collect(a, |i| v.value(i)))
        }
        ColumnType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>();
            Box::new(collect_checked(a, |i| {
                i64::try_from(v.value(i)).map_err(|_| {
                    StoreError::user(format!(
                        "column '{name}' holds {}, above the largest bigint PostgreSQL stores",
                        v.value(i)
                    ))
                })
            })?)
        }
        ColumnType::Float32 | ColumnType::Float64 => {
            let wide = widen(array, &DataType::Float64)?;
            let v = wide.as_primitive::<Float64Type>();
            Box::new(collect(a, |i| v.value(i)))
        }
        ColumnType::Boolean => {
            let v = array.as_boolean();
            Box::new(collect(a, |i| v.value(i)))
        }
        ColumnType::Utf8 => {
            let v = array.as_string::<i32>();
            Box::new(collect(a, |i| v.value(i)))
        }
        ColumnType::LargeUtf8 => {
            let v = array.as_string::<i64>();
            Box::new(collect(a, |i| v.value(i)))
        }
        ColumnType::Utf8View => {
            let v = array.as_string_view();
            Box::new(collect(a, |i| v.value(i)))
        }
        ColumnType::Timestamp { unit, .. } => {
            let values = unit.timestamp_values(array);
            Box::new(collect_checked(a, |i| {
                to_micros(values[i], *unit).map(PgTime).ok_or_else(|| {
                    StoreError::user(format!(
                        "column '{name}' holds {} ({unit:?}), which PostgreSQL cannot store: \
                         its timestamps keep microseconds",
                        values[i]
                    ))
                })
            })?)
        }
        ColumnType::Date32 => {
            let v = array.as_primitive::<Date32Type>();
            Box::new(collect(a, |i| PgDate(v.value(i))))
        }
        ColumnType::Decimal128 { .. } => {
            let v = array.as_primitive::<Decimal128Type>();
            Box::new(collect(a, |i| v.value_as_string(i)))
        }
        ColumnType::Binary => {
            let v = array.as_binary::<i32>();
            Box::new(collect(a, |i| v.value(i)))
        }
        ColumnType::LargeBinary => {
            let v = array.as_binary::<i64>();
            Box::new(collect(a, |i| v.value(i)))
        }
        ColumnType::BinaryView => {
            let v = array.as_binary_view();
            Box::new(collect(a, |i| v.value(i)))
        }
    })
}

/// The select-list expression that reads a results column in the form [`read_cell`] takes.
pub(crate) fn read_expression(quoted: &str, ty: &ColumnType) -> String {
    match ty {
        ColumnType::Int8
        | ColumnType::Int16
        | ColumnType::Int32
        | ColumnType::Int64
        | ColumnType::UInt8
        | ColumnType::UInt16
        | ColumnType::UInt32
        | ColumnType::UInt64 => format!("{quoted}::bigint"),
        ColumnType::Float32 | ColumnType::Float64 => format!("{quoted}::float8"),
        ColumnType::Decimal128 { .. } => format!("{quoted}::text"),
        _ => quoted.to_owned(),
    }
}

/// A value read back from PostgreSQL: either what a SQLite cell would hold (so the same
/// column builders take it), or a time already in the column's unit.
pub(crate) enum Cell<'a> {
    Value(rusqlite::types::ValueRef<'a>),
    Time(Option<i64>),
}

/// Reads column `index` of `row` for a column of type `ty`.
pub(crate) fn read_cell<'a>(
    row: &'a postgres::Row,
    index: usize,
    ty: &ColumnType,
) -> Result<Cell<'a>, postgres::Error> {
    use rusqlite::types::ValueRef;
    let value = |v: Option<ValueRef<'a>>| Cell::Value(v.unwrap_or(ValueRef::Null));
    Ok(match ty {
        ColumnType::Int8
        | ColumnType::Int16
        | ColumnType::Int32
        | ColumnType::Int64
        | ColumnType::UInt8
        | ColumnType::UInt16
        | ColumnType::UInt32
        | ColumnType::UInt64 => value(row.try_get::<_, Option<i64>>(index)?.map(ValueRef::Integer)),
        ColumnType::Float32 | ColumnType::Float64 => {
            value(row.try_get::<_, Option<f64>>(index)?.map(ValueRef::Real))
        }
        ColumnType::Boolean => value(
            row.try_get::<_, Option<bool>>(index)?
                .map(|b| ValueRef::Integer(i64::from(b))),
        ),
        ColumnType::Utf8
        | ColumnType::LargeUtf8
        | ColumnType::Utf8View
        | ColumnType::Decimal128 { .. } => value(
            row.try_get::<_, Option<&str>>(index)?
                .map(|t| ValueRef::Text(t.as_bytes())),
        ),
        ColumnType::Binary | ColumnType::LargeBinary | ColumnType::BinaryView => {
            value(row.try_get::<_, Option<&[u8]>>(index)?.map(ValueRef::Blob))
        }
        ColumnType::Timestamp { .. } => {
            Cell::Time(row.try_get::<_, Option<PgTime>>(index)?.map(|t| t.0))
        }
        ColumnType::Date32 => Cell::Time(
            row.try_get::<_, Option<PgDate>>(index)?
                .map(|d| i64::from(d.0)),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_units_round_trip_through_microseconds() {
        for unit in [Unit::Second, Unit::Millisecond, Unit::Microsecond] {
            for value in [0, 1, -1, 1_700_000_000, -62_000] {
                let micros = to_micros(value, unit).expect("fits");
                assert_eq!(from_micros(micros, unit), Some(value), "{unit:?} {value}");
            }
        }
        assert_eq!(to_micros(1_500, Unit::Nanosecond), None);
        assert_eq!(to_micros(2_000, Unit::Nanosecond), Some(2));
        assert_eq!(from_micros(1_500, Unit::Millisecond), None);
    }

    #[test]
    fn times_use_postgres_epoch() {
        let mut out = BytesMut::new();
        PgTime(PG_EPOCH_MICROS)
            .to_sql(&Type::TIMESTAMPTZ, &mut out)
            .expect("encodes");
        assert_eq!(&out[..], &0i64.to_be_bytes());
        let back = PgTime::from_sql(&Type::TIMESTAMPTZ, &5i64.to_be_bytes()).expect("decodes");
        assert_eq!(back, PgTime(PG_EPOCH_MICROS + 5));
        let day = PgDate::from_sql(&Type::DATE, &0i32.to_be_bytes()).expect("decodes");
        assert_eq!(day, PgDate(PG_EPOCH_DAYS));
    }
}
