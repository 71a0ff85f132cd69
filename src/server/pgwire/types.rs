//! Arrow types as PostgreSQL types: the result columns a client is described, the values it
//! is sent (text or binary, as it asks), and the parameters it binds.
//!
//! The mapping is the PostgreSQL result store's (docs/store-schema.md): Int8, Int16 and
//! UInt8 are `int2`; Int32 and UInt16 `int4`; Int64, UInt32 and UInt64 `int8` (a UInt64
//! above `i64::MAX` fails the query); Float32/64 `float4`/`float8`; Boolean `bool`; every
//! string type `text`; timestamps `timestamptz` with a time zone and `timestamp` without
//! (microseconds; finer digits are cut); Date32 and Date64 `date`; Decimal128 `numeric`;
//! every binary type `bytea`. Any other type (intervals, lists, structs, times of day) is
//! sent as `text`, formatted as `freshet query` formats it.

use super::error::{
    self, DATA_EXCEPTION, DATETIME_FIELD_OVERFLOW, FEATURE_NOT_SUPPORTED,
    INVALID_TEXT_REPRESENTATION,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Schema, TimeUnit};
use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use pgwire::api::Type;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{DataRowEncoder, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql, to_sql_checked};
use std::sync::Arc;

/// The PostgreSQL type a column of `data_type` is described and sent as.
pub fn pg_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Boolean => Type::BOOL,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Decimal128(..) => Type::NUMERIC,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Type::BYTEA,
        _ => Type::TEXT,
    }
}

/// The Arrow type a parameter declared as `ty` is read as, for the types a value can be
/// bound as; `None` for the others (read as text, cast to what the query needs).
fn arrow_type(ty: &Type) -> Option<DataType> {
    Some(match *ty {
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::BOOL => DataType::Boolean,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        Type::DATE => DataType::Date32,
        Type::BYTEA => DataType::Binary,
        _ => return None,
    })
}

/// The row description of `schema`, each column in the format the client asked for.
pub fn fields(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            FieldInfo::new(
                f.name().clone(),
                None,
                None,
                pg_type(f.data_type()),
                format.format_for(i),
            )
        })
        .collect()
}

/// A column in the Arrow type its values are sent from.
fn normalize(column: &ArrayRef) -> PgWireResult<ArrayRef> {
    let to = match column.data_type() {
        DataType::Int8 | DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            DataType::Binary
        }
        DataType::Date64 => DataType::Date32,
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond => {
            DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
        }
        DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Boolean
        | DataType::Utf8
        | DataType::Binary
        | DataType::Date32
        | DataType::Timestamp(..)
        | DataType::Decimal128(..) => return Ok(column.clone()),
        _ => return as_text(column),
    };
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    arrow_cast::cast_with_options(column, &to, &options)
        .map_err(|e| error::error(DATA_EXCEPTION, format!("cannot send a value: {e}")))
}

/// Any column as text, formatted as `freshet query` formats it.
fn as_text(column: &ArrayRef) -> PgWireResult<ArrayRef> {
    let options = arrow_cast::display::FormatOptions::default();
    let formatter = arrow_cast::display::ArrayFormatter::try_new(column.as_ref(), &options)
        .map_err(|e| error::error(FEATURE_NOT_SUPPORTED, format!("cannot show a value: {e}")))?;
    let text: StringArray = (0..column.len())
        .map(|i| (!column.is_null(i)).then(|| formatter.value(i).to_string()))
        .collect();
    Ok(Arc::new(text))
}

/// The rows of `batch` as data rows of `fields` (made by [`fields`] from its schema).
pub fn encode(batch: &RecordBatch, fields: &Arc<Vec<FieldInfo>>) -> PgWireResult<Vec<DataRow>> {
    let columns = batch
        .columns()
        .iter()
        .map(normalize)
        .collect::<PgWireResult<Vec<_>>>()?;
    let mut encoder = DataRowEncoder::new(fields.clone());
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for (column, field) in columns.iter().zip(fields.iter()) {
            cell(&mut encoder, column, row, field)?;
        }
        rows.push(encoder.take_row());
    }
    Ok(rows)
}

fn cell(
    encoder: &mut DataRowEncoder,
    column: &ArrayRef,
    row: usize,
    field: &FieldInfo,
) -> PgWireResult<()> {
    let (ty, format, options) = (field.datatype(), field.format(), field.format_options());
    macro_rules! put {
        ($value:expr) => {
            encoder.encode_field_with_type_and_format(&$value, ty, format, options)
        };
    }
    if column.is_null(row) {
        return put!(None::<i16>);
    }
    let time_out_of_range =
        || error::error(DATETIME_FIELD_OVERFLOW, "a time out of PostgreSQL's range");
    match column.data_type() {
        DataType::Int16 => put!(column.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => put!(column.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => put!(column.as_primitive::<Int64Type>().value(row)),
        DataType::Float32 => put!(column.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => put!(column.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => put!(column.as_boolean().value(row)),
        DataType::Utf8 => put!(column.as_string::<i32>().value(row)),
        DataType::Binary => put!(column.as_binary::<i32>().value(row)),
        DataType::Date32 => {
            let days = column.as_primitive::<Date32Type>().value(row);
            let date = days
                .checked_add(UNIX_EPOCH_DAYS_FROM_CE)
                .and_then(NaiveDate::from_num_days_from_ce_opt)
                .ok_or_else(time_out_of_range)?;
            put!(date)
        }
        DataType::Timestamp(_, tz) => {
            let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
            let at =
                DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(time_out_of_range)?;
            put!(Timestamp {
                at,
                zoned: tz.is_some(),
            })
        }
        DataType::Decimal128(_, scale) => put!(Numeric {
            value: column.as_primitive::<Decimal128Type>().value(row),
            scale: *scale,
        }),
        other => Err(error::error(
            FEATURE_NOT_SUPPORTED,
            format!("cannot send a value of type {other}"),
        )),
    }
}

/// A `timestamp` (UTC wall time) or `timestamptz` value, in text as PostgreSQL writes it
/// with `TimeZone` UTC: no fraction digits when there is none, trailing zeros cut, and
/// `+00` after a `timestamptz`.
#[derive(Debug)]
struct Timestamp {
    at: DateTime<Utc>,
    zoned: bool,
}

impl ToSqlText for Timestamp {
    fn to_sql_text(
        &self,
        _: &Type,
        out: &mut BytesMut,
        _: &FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let mut text = self.at.format("%Y-%m-%d %H:%M:%S").to_string();
        let micros = self.at.timestamp_subsec_micros();
        if micros > 0 {
            text.push('.');
            text.push_str(format!("{micros:06}").trim_end_matches('0'));
        }
        if self.zoned {
            text.push_str("+00");
        }
        out.put_slice(text.as_bytes());
        Ok(IsNull::No)
    }
}

impl ToSql for Timestamp {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.zoned {
            true => self.at.to_sql(ty, out),
            false => self.at.naive_utc().to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMP || *ty == Type::TIMESTAMPTZ
    }

    to_sql_checked!();
}

/// 1970-01-01 as chrono counts days of the common era (0001-01-01 is day 1).
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A Decimal128 value: `value` × 10^-`scale`.
#[derive(Debug)]
struct Numeric {
    value: i128,
    scale: i8,
}

impl Numeric {
    /// Whether it is negative, its integer digits and its fraction digits (as many as the
    /// scale says), in decimal.
    fn digits(&self) -> (bool, String, String) {
        let mut digits = self.value.unsigned_abs().to_string();
        let negative = self.value < 0;
        if self.scale <= 0 {
            digits.push_str(&"0".repeat(usize::from(self.scale.unsigned_abs())));
            return (negative, digits, String::new());
        }
        let scale = self.scale as usize;
        if digits.len() <= scale {
            digits = format!("{}{digits}", "0".repeat(scale + 1 - digits.len()));
        }
        let fraction = digits.split_off(digits.len() - scale);
        (negative, digits, fraction)
    }
}

impl ToSqlText for Numeric {
    fn to_sql_text(
        &self,
        _: &Type,
        out: &mut BytesMut,
        _: &FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let (negative, integer, fraction) = self.digits();
        if negative {
            out.put_u8(b'-');
        }
        out.put_slice(integer.as_bytes());
        if !fraction.is_empty() {
            out.put_u8(b'.');
            out.put_slice(fraction.as_bytes());
        }
        Ok(IsNull::No)
    }
}

impl ToSql for Numeric {
    /// PostgreSQL's binary `numeric`: base-10000 digits, the weight of the first, the sign
    /// and the count of decimal digits after the point.
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let (negative, integer, fraction) = self.digits();
        let integer = format!("{}{integer}", "0".repeat((4 - integer.len() % 4) % 4));
        let fraction = format!("{fraction}{}", "0".repeat((4 - fraction.len() % 4) % 4));
        let group = |s: &str| -> Vec<i16> {
            s.as_bytes()
                .chunks(4)
                .map(|c| c.iter().fold(0i16, |n, d| n * 10 + i16::from(d - b'0')))
                .collect()
        };
        let mut groups = group(&integer);
        let mut weight = i16::try_from(groups.len())? - 1;
        groups.extend(group(&fraction));
        let leading = groups.iter().take_while(|g| **g == 0).count();
        groups.drain(..leading);
        weight -= i16::try_from(leading)?;
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if groups.is_empty() {
            weight = 0;
        }
        out.put_i16(i16::try_from(groups.len())?);
        out.put_i16(weight);
        out.put_u16(if negative && !groups.is_empty() {
            0x4000
        } else {
            0
        });
        out.put_u16(u16::from(self.scale.max(0).unsigned_abs()));
        for g in groups {
            out.put_i16(g);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

/// The type a placeholder is described as: as the client declared it, else as the query
/// needs it, else `text`.
pub fn parameter_type(declared: Option<&Type>, needed: Option<&DataType>) -> Type {
    match (declared, needed) {
        (Some(ty), _) => ty.clone(),
        (None, Some(t)) => pg_type(t),
        (None, None) => Type::TEXT,
    }
}

/// Parameter `i` of `portal` as a one-row array; `ty` is the type it was declared or
/// described as.
pub fn parameter<S: Clone>(portal: &Portal<S>, i: usize, ty: &Type) -> PgWireResult<ArrayRef> {
    let Some(Some(raw)) = portal.parameters.get(i) else {
        return Ok(arrow_array::new_null_array(&DataType::Null, 1));
    };
    let bad = |e: &dyn std::fmt::Display| {
        error::error(
            INVALID_TEXT_REPRESENTATION,
            format!("parameter ${}: not a valid {}: {e}", i + 1, ty.name()),
        )
    };
    if portal.parameter_format.is_text(i) {
        let text = std::str::from_utf8(raw).map_err(|e| bad(&e))?;
        let array: ArrayRef = Arc::new(StringArray::from(vec![text]));
        return match arrow_type(ty) {
            Some(t) => arrow_cast::cast_with_options(
                &array,
                &t,
                &arrow_cast::CastOptions {
                    safe: false,
                    ..Default::default()
                },
            )
            .map_err(|e| bad(&e)),
            None => Ok(array),
        };
    }
    macro_rules! read {
        ($t:ty) => {
            portal
                .parameter::<$t>(i, ty)
                .map_err(|e| bad(&e))?
                .ok_or_else(|| bad(&"no value"))?
        };
    }
    let array: ArrayRef = match *ty {
        Type::INT2 => Arc::new(Int16Array::from(vec![read!(i16)])),
        Type::INT4 => Arc::new(Int32Array::from(vec![read!(i32)])),
        Type::INT8 => Arc::new(Int64Array::from(vec![read!(i64)])),
        Type::FLOAT4 => Arc::new(Float32Array::from(vec![read!(f32)])),
        Type::FLOAT8 => Arc::new(Float64Array::from(vec![read!(f64)])),
        Type::BOOL => Arc::new(BooleanArray::from(vec![read!(bool)])),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Arc::new(StringArray::from(vec![read!(String)]))
        }
        Type::BYTEA => Arc::new(BinaryArray::from_vec(vec![read!(Vec<u8>).as_slice()])),
        Type::DATE => {
            let date = read!(NaiveDate);
            let days = date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE;
            Arc::new(Date32Array::from(vec![days]))
        }
        Type::TIMESTAMP => {
            let at: NaiveDateTime = read!(NaiveDateTime);
            Arc::new(TimestampMicrosecondArray::from(vec![
                at.and_utc().timestamp_micros(),
            ]))
        }
        Type::TIMESTAMPTZ => {
            let at = read!(DateTime<chrono::FixedOffset>);
            Arc::new(
                TimestampMicrosecondArray::from(vec![at.timestamp_micros()])
                    .with_timezone("+00:00"),
            )
        }
        ref other => {
            return Err(error::error(
                FEATURE_NOT_SUPPORTED,
                format!(
                    "parameter ${}: binary values of type {} are not supported; send it as text",
                    i + 1,
                    other.name()
                ),
            ));
        }
    };
    Ok(array)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(value: i128, scale: i8) -> Vec<u8> {
        let mut out = BytesMut::new();
        Numeric { value, scale }
            .to_sql(&Type::NUMERIC, &mut out)
            .expect("encodes");
        out.to_vec()
    }

    fn text(value: i128, scale: i8) -> String {
        let mut out = BytesMut::new();
        Numeric { value, scale }
            .to_sql_text(&Type::NUMERIC, &mut out, &FormatOptions::default())
            .expect("encodes");
        String::from_utf8(out.to_vec()).expect("UTF-8")
    }

    /// The binary form, checked against what PostgreSQL sends for the same values
    /// (`SELECT '12345.678'::numeric(10,3)` and so on, read with a binary cursor).
    #[test]
    fn numeric_values_are_encoded_as_postgresql_does() {
        assert_eq!(text(12_345_678, 3), "12345.678");
        assert_eq!(text(-5, 1), "-0.5");
        assert_eq!(text(7, 0), "7");
        assert_eq!(text(7, -2), "700");
        // 12345.678: digits 1, 2345, 6780; weight 1; dscale 3.
        assert_eq!(
            binary(12_345_678, 3),
            [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        // -0.5: digit 5000, weight -1, negative, dscale 1.
        assert_eq!(binary(-5, 1), [0, 1, 0xff, 0xff, 0x40, 0, 0, 1, 0x13, 0x88]);
        // 0 with scale 2: no digits.
        assert_eq!(binary(0, 2), [0, 0, 0, 0, 0, 0, 0, 2]);
        // 10000: one digit 1 of weight 1.
        assert_eq!(binary(10_000, 0), [0, 1, 0, 1, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn timestamps_are_written_as_postgresql_writes_them() {
        let text = |micros: i64, zoned: bool| {
            let at = DateTime::<Utc>::from_timestamp_micros(micros).expect("in range");
            let mut out = BytesMut::new();
            Timestamp { at, zoned }
                .to_sql_text(&Type::TIMESTAMP, &mut out, &FormatOptions::default())
                .expect("encodes");
            String::from_utf8(out.to_vec()).expect("UTF-8")
        };
        assert_eq!(text(1_436_918_400_000_000, false), "2015-07-15 00:00:00");
        assert_eq!(text(1_436_918_400_500_000, false), "2015-07-15 00:00:00.5");
        assert_eq!(
            text(1_436_918_400_000_001, true),
            "2015-07-15 00:00:00.000001+00"
        );
    }

    #[test]
    fn types_map_as_the_postgresql_store_maps_them() {
        let cases = [
            (DataType::Int8, Type::INT2),
            (DataType::UInt16, Type::INT4),
            (DataType::UInt64, Type::INT8),
            (DataType::Float32, Type::FLOAT4),
            (DataType::Utf8View, Type::TEXT),
            (
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                Type::TIMESTAMPTZ,
            ),
            (
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                Type::TIMESTAMP,
            ),
            (DataType::Decimal128(10, 2), Type::NUMERIC),
            (DataType::LargeBinary, Type::BYTEA),
            (
                DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
                Type::TEXT,
            ),
        ];
        for (arrow, pg) in cases {
            assert_eq!(pg_type(&arrow), pg, "{arrow}");
        }
    }

    #[test]
    fn dates_out_of_range_are_refused_not_overflowed() {
        let batch = |days: i32| {
            let column: ArrayRef = Arc::new(Date32Array::from(vec![days]));
            RecordBatch::try_from_iter([("d", column)]).expect("a batch")
        };
        let fields = Arc::new(fields(&batch(0).schema(), &Format::UnifiedText));
        assert!(encode(&batch(0), &fields).is_ok());
        for days in [i32::MAX, i32::MAX - 1, i32::MIN] {
            let Err(pgwire::error::PgWireError::UserError(info)) = encode(&batch(days), &fields)
            else {
                panic!("{days} days were encoded");
            };
            assert_eq!(info.code, DATETIME_FIELD_OVERFLOW, "{days}");
        }
    }
}
