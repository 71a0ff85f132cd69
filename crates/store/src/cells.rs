//! Moving values between Arrow arrays and SQLite, one cell at a time.
//!
//! Writing is the commit hot path: each column is downcast to its concrete array type once
//! per batch ([`Cells`]), then each cell is bound as an SQLite parameter straight from the
//! typed array. Only timestamps, dates and decimals are turned into text, and timestamps and
//! dates use a stack buffer. Reading builds typed Arrow builders from SQLite values
//! ([`ColumnBuilder`]); a stored value of the wrong type is reported as corruption, since
//! only the store writes these tables.

use arrow_array::builder::{
    BinaryBuilder, BinaryViewBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    LargeBinaryBuilder, LargeStringBuilder, StringBuilder, StringViewBuilder, UInt8Builder,
    UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, LargeBinaryArray,
    LargeStringArray, PrimitiveArray, RecordBatch, StringArray, StringViewArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array,
};
use arrow_schema::DataType;
use rusqlite::Statement;
use rusqlite::types::ValueRef;
use std::sync::Arc;

use crate::StoreError;
use crate::error::SqliteContext;
use crate::schema::{
    Column, ColumnType, TimeText, Unit, format_date, format_timestamp, parse_date,
    parse_stored_timestamp,
};

/// One column of a batch, downcast once to its concrete array type.
pub(crate) struct Cells<'a> {
    name: &'a str,
    array: &'a ArrayRef,
    /// Most columns hold no nulls; for those the per-cell check is skipped.
    has_nulls: bool,
    values: Values<'a>,
}

enum Values<'a> {
    Int8(&'a Int8Array),
    Int16(&'a Int16Array),
    Int32(&'a Int32Array),
    Int64(&'a Int64Array),
    UInt8(&'a UInt8Array),
    UInt16(&'a UInt16Array),
    UInt32(&'a UInt32Array),
    UInt64(&'a UInt64Array),
    Float32(&'a Float32Array),
    Float64(&'a Float64Array),
    Boolean(&'a BooleanArray),
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    Timestamp(&'a [i64], Unit),
    Date32(&'a Date32Array),
    Decimal128(&'a Decimal128Array),
    Binary(&'a BinaryArray),
    LargeBinary(&'a LargeBinaryArray),
    BinaryView(&'a BinaryViewArray),
}

impl<'a> Cells<'a> {
    /// Downcasts `array` for `column`; a bug if the array's type is not the column's.
    pub(crate) fn new(column: &'a Column, array: &'a ArrayRef) -> Result<Cells<'a>, StoreError> {
        column.check_array(array)?;
        // The data type was checked above, so every downcast below matches.
        let values = match &column.ty {
            ColumnType::Int8 => Values::Int8(array.as_primitive::<Int8Type>()),
            ColumnType::Int16 => Values::Int16(array.as_primitive::<Int16Type>()),
            ColumnType::Int32 => Values::Int32(array.as_primitive::<Int32Type>()),
            ColumnType::Int64 => Values::Int64(array.as_primitive::<Int64Type>()),
            ColumnType::UInt8 => Values::UInt8(array.as_primitive::<UInt8Type>()),
            ColumnType::UInt16 => Values::UInt16(array.as_primitive::<UInt16Type>()),
            ColumnType::UInt32 => Values::UInt32(array.as_primitive::<UInt32Type>()),
            ColumnType::UInt64 => Values::UInt64(array.as_primitive::<UInt64Type>()),
            ColumnType::Float32 => Values::Float32(array.as_primitive::<Float32Type>()),
            ColumnType::Float64 => Values::Float64(array.as_primitive::<Float64Type>()),
            ColumnType::Boolean => Values::Boolean(array.as_boolean()),
            ColumnType::Utf8 => Values::Utf8(array.as_string::<i32>()),
            ColumnType::LargeUtf8 => Values::LargeUtf8(array.as_string::<i64>()),
            ColumnType::Utf8View => Values::Utf8View(array.as_string_view()),
            ColumnType::Timestamp { unit, .. } => {
                let values = unit.timestamp_values(array);
                Values::Timestamp(values, *unit)
            }
            ColumnType::Date32 => Values::Date32(array.as_primitive::<Date32Type>()),
            ColumnType::Decimal128 { .. } => {
                Values::Decimal128(array.as_primitive::<Decimal128Type>())
            }
            ColumnType::Binary => Values::Binary(array.as_binary::<i32>()),
            ColumnType::LargeBinary => Values::LargeBinary(array.as_binary::<i64>()),
            ColumnType::BinaryView => Values::BinaryView(array.as_binary_view()),
        };
        Ok(Cells {
            name: &column.name,
            array,
            has_nulls: array.null_count() > 0,
            values,
        })
    }

    /// Whether the cell in `row` is null.
    #[inline]
    pub(crate) fn is_null(&self, row: usize) -> bool {
        self.has_nulls && self.array.is_null(row)
    }

    /// Binds the cell in `row` as parameter `index` (1-based) of `statement`.
    #[inline]
    pub(crate) fn bind(
        &self,
        statement: &mut Statement<'_>,
        index: usize,
        row: usize,
        text: &mut TimeText,
    ) -> Result<(), StoreError> {
        let bound = if self.is_null(row) {
            statement.raw_bind_parameter(index, rusqlite::types::Null)
        } else {
            match &self.values {
                Values::Int8(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::Int16(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::Int32(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::Int64(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::UInt8(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::UInt16(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::UInt32(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::UInt64(a) => {
                    let value = a.value(row);
                    let value = i64::try_from(value).map_err(|_| {
                        StoreError::user(format!(
                            "column '{}' holds {value}, above the largest integer SQLite \
                             stores ({})",
                            self.name,
                            i64::MAX
                        ))
                    })?;
                    statement.raw_bind_parameter(index, value)
                }
                Values::Float32(a) => statement.raw_bind_parameter(index, f64::from(a.value(row))),
                Values::Float64(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::Boolean(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::Utf8(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::LargeUtf8(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::Utf8View(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::Timestamp(values, unit) => {
                    if !format_timestamp(values[row], *unit, text) {
                        return Err(self.out_of_range(values[row]));
                    }
                    statement.raw_bind_parameter(index, text.as_str())
                }
                Values::Date32(a) => {
                    if !format_date(a.value(row), text) {
                        return Err(self.out_of_range(i64::from(a.value(row))));
                    }
                    statement.raw_bind_parameter(index, text.as_str())
                }
                Values::Decimal128(a) => {
                    statement.raw_bind_parameter(index, a.value_as_string(row))
                }
                Values::Binary(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::LargeBinary(a) => statement.raw_bind_parameter(index, a.value(row)),
                Values::BinaryView(a) => statement.raw_bind_parameter(index, a.value(row)),
            }
        };
        bound.context(|| format!("binding column '{}'", self.name))
    }

    fn out_of_range(&self, value: i64) -> StoreError {
        StoreError::user(format!(
            "column '{}' holds {value}, a time outside the years 0000-9999 the result store \
             can write",
            self.name
        ))
    }
}

/// Builds one Arrow column from SQLite values.
pub(crate) enum ColumnBuilder {
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt8(UInt8Builder),
    UInt16(UInt16Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32 {
        builder: Float32Builder,
        nullable: bool,
    },
    Float64 {
        builder: Float64Builder,
        nullable: bool,
    },
    Boolean(BooleanBuilder),
    Utf8(StringBuilder),
    LargeUtf8(LargeStringBuilder),
    Utf8View(StringViewBuilder),
    Timestamp {
        builder: Int64Builder,
        unit: Unit,
        tz: Option<Arc<str>>,
    },
    Date32(Date32Builder),
    Decimal128 {
        builder: Decimal128Builder,
        precision: u8,
        scale: i8,
    },
    Binary(BinaryBuilder),
    LargeBinary(LargeBinaryBuilder),
    BinaryView(BinaryViewBuilder),
}

/// Describes a stored value for an error message.
fn describe(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(i) => format!("integer {i}"),
        ValueRef::Real(f) => format!("real {f}"),
        ValueRef::Text(t) => format!("text '{}'", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

macro_rules! append_integer {
    ($builder:expr, $value:expr, $native:ty) => {
        match $value {
            ValueRef::Null => $builder.append_null(),
            ValueRef::Integer(i) => {
                $builder.append_value(<$native>::try_from(i).map_err(|_| {
                    format!(
                        "integer {i} is outside the range of {}",
                        stringify!($native)
                    )
                })?)
            }
            other => return Err(describe(other)),
        }
    };
}

macro_rules! append_bytes {
    ($builder:expr, $value:expr, $variant:ident, $convert:expr) => {
        match $value {
            ValueRef::Null => $builder.append_null(),
            ValueRef::$variant(bytes) => $builder.append_value($convert(bytes)?),
            other => return Err(describe(other)),
        }
    };
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "text that is not UTF-8".to_owned())
}

fn blob(bytes: &[u8]) -> Result<&[u8], String> {
    Ok(bytes)
}

impl ColumnBuilder {
    /// A builder for `column`, with room for `capacity` rows.
    pub(crate) fn new(column: &Column, capacity: usize) -> ColumnBuilder {
        let n = capacity;
        match &column.ty {
            ColumnType::Int8 => ColumnBuilder::Int8(Int8Builder::with_capacity(n)),
            ColumnType::Int16 => ColumnBuilder::Int16(Int16Builder::with_capacity(n)),
            ColumnType::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(n)),
            ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(n)),
            ColumnType::UInt8 => ColumnBuilder::UInt8(UInt8Builder::with_capacity(n)),
            ColumnType::UInt16 => ColumnBuilder::UInt16(UInt16Builder::with_capacity(n)),
            ColumnType::UInt32 => ColumnBuilder::UInt32(UInt32Builder::with_capacity(n)),
            ColumnType::UInt64 => ColumnBuilder::UInt64(UInt64Builder::with_capacity(n)),
            ColumnType::Float32 => ColumnBuilder::Float32 {
                builder: Float32Builder::with_capacity(n),
                nullable: column.nullable,
            },
            ColumnType::Float64 => ColumnBuilder::Float64 {
                builder: Float64Builder::with_capacity(n),
                nullable: column.nullable,
            },
            ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(n)),
            ColumnType::Utf8 => ColumnBuilder::Utf8(StringBuilder::new()),
            ColumnType::LargeUtf8 => ColumnBuilder::LargeUtf8(LargeStringBuilder::new()),
            ColumnType::Utf8View => ColumnBuilder::Utf8View(StringViewBuilder::new()),
            ColumnType::Timestamp { unit, tz } => ColumnBuilder::Timestamp {
                builder: Int64Builder::with_capacity(n),
                unit: *unit,
                tz: tz.as_deref().map(Arc::from),
            },
            ColumnType::Date32 => ColumnBuilder::Date32(Date32Builder::with_capacity(n)),
            ColumnType::Decimal128 { precision, scale } => ColumnBuilder::Decimal128 {
                builder: Decimal128Builder::with_capacity(n),
                precision: *precision,
                scale: *scale,
            },
            ColumnType::Binary => ColumnBuilder::Binary(BinaryBuilder::new()),
            ColumnType::LargeBinary => ColumnBuilder::LargeBinary(LargeBinaryBuilder::new()),
            ColumnType::BinaryView => ColumnBuilder::BinaryView(BinaryViewBuilder::new()),
        }
    }

    /// Appends one stored value; on a value this column cannot hold, says what was found.
    pub(crate) fn append(&mut self, value: ValueRef<'_>) -> Result<(), String> {
        match self {
            ColumnBuilder::Int8(b) => append_integer!(b, value, i8),
            ColumnBuilder::Int16(b) => append_integer!(b, value, i16),
            ColumnBuilder::Int32(b) => append_integer!(b, value, i32),
            ColumnBuilder::Int64(b) => append_integer!(b, value, i64),
            ColumnBuilder::UInt8(b) => append_integer!(b, value, u8),
            ColumnBuilder::UInt16(b) => append_integer!(b, value, u16),
            ColumnBuilder::UInt32(b) => append_integer!(b, value, u32),
            ColumnBuilder::UInt64(b) => append_integer!(b, value, u64),
            // SQLite stores NaN as NULL; a column that cannot be null reads it back as NaN.
            ColumnBuilder::Float32 { builder, nullable } => match value {
                ValueRef::Null if *nullable => builder.append_null(),
                ValueRef::Null => builder.append_value(f32::NAN),
                ValueRef::Real(f) => builder.append_value(f as f32),
                ValueRef::Integer(i) => builder.append_value(i as f32),
                other => return Err(describe(other)),
            },
            ColumnBuilder::Float64 { builder, nullable } => match value {
                ValueRef::Null if *nullable => builder.append_null(),
                ValueRef::Null => builder.append_value(f64::NAN),
                ValueRef::Real(f) => builder.append_value(f),
                ValueRef::Integer(i) => builder.append_value(i as f64),
                other => return Err(describe(other)),
            },
            ColumnBuilder::Boolean(b) => match value {
                ValueRef::Null => b.append_null(),
                ValueRef::Integer(0) => b.append_value(false),
                ValueRef::Integer(1) => b.append_value(true),
                other => return Err(describe(other)),
            },
            ColumnBuilder::Utf8(b) => append_bytes!(b, value, Text, utf8),
            ColumnBuilder::LargeUtf8(b) => append_bytes!(b, value, Text, utf8),
            ColumnBuilder::Utf8View(b) => append_bytes!(b, value, Text, utf8),
            ColumnBuilder::Timestamp { builder, unit, .. } => match value {
                ValueRef::Null => builder.append_null(),
                ValueRef::Text(t) => {
                    let parsed = std::str::from_utf8(t)
                        .ok()
                        .and_then(|text| parse_stored_timestamp(text, *unit));
                    builder.append_value(parsed.ok_or_else(|| describe(value))?)
                }
                other => return Err(describe(other)),
            },
            ColumnBuilder::Date32(b) => match value {
                ValueRef::Null => b.append_null(),
                ValueRef::Text(t) => {
                    let parsed = std::str::from_utf8(t).ok().and_then(parse_date);
                    b.append_value(parsed.ok_or_else(|| describe(value))?)
                }
                other => return Err(describe(other)),
            },
            ColumnBuilder::Decimal128 {
                builder,
                precision,
                scale,
            } => match value {
                ValueRef::Null => builder.append_null(),
                ValueRef::Text(t) => {
                    let parsed = std::str::from_utf8(t).ok().and_then(|text| {
                        arrow_cast::parse::parse_decimal::<Decimal128Type>(text, *precision, *scale)
                            .ok()
                    });
                    builder.append_value(parsed.ok_or_else(|| describe(value))?)
                }
                other => return Err(describe(other)),
            },
            ColumnBuilder::Binary(b) => append_bytes!(b, value, Blob, blob),
            ColumnBuilder::LargeBinary(b) => append_bytes!(b, value, Blob, blob),
            ColumnBuilder::BinaryView(b) => append_bytes!(b, value, Blob, blob),
        }
        Ok(())
    }

    /// Appends a time already in this column's unit (days for a date), as PostgreSQL sends
    /// times: numbers rather than text.
    pub(crate) fn append_time(&mut self, value: Option<i64>) -> Result<(), String> {
        match self {
            ColumnBuilder::Timestamp { builder, .. } => builder.append_option(value),
            ColumnBuilder::Date32(b) => match value {
                None => b.append_null(),
                Some(days) => {
                    b.append_value(i32::try_from(days).map_err(|_| format!("the date {days}"))?)
                }
            },
            _ => return Err("a time".to_owned()),
        }
        Ok(())
    }

    /// The finished Arrow array.
    pub(crate) fn finish(self) -> ArrayRef {
        match self {
            ColumnBuilder::Int8(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int16(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::UInt8(mut b) => Arc::new(b.finish()),
            ColumnBuilder::UInt16(mut b) => Arc::new(b.finish()),
            ColumnBuilder::UInt32(mut b) => Arc::new(b.finish()),
            ColumnBuilder::UInt64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Float32 { mut builder, .. } => Arc::new(builder.finish()),
            ColumnBuilder::Float64 { mut builder, .. } => Arc::new(builder.finish()),
            ColumnBuilder::Boolean(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(mut b) => Arc::new(b.finish()),
            ColumnBuilder::LargeUtf8(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8View(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp {
                mut builder,
                unit,
                tz,
            } => {
                let ints = builder.finish();
                let (values, nulls) = (ints.values().clone(), ints.nulls().cloned());
                match unit {
                    Unit::Second => Arc::new(
                        PrimitiveArray::<TimestampSecondType>::new(values, nulls)
                            .with_timezone_opt(tz),
                    ),
                    Unit::Millisecond => Arc::new(
                        PrimitiveArray::<TimestampMillisecondType>::new(values, nulls)
                            .with_timezone_opt(tz),
                    ),
                    Unit::Microsecond => Arc::new(
                        PrimitiveArray::<TimestampMicrosecondType>::new(values, nulls)
                            .with_timezone_opt(tz),
                    ),
                    Unit::Nanosecond => Arc::new(
                        PrimitiveArray::<TimestampNanosecondType>::new(values, nulls)
                            .with_timezone_opt(tz),
                    ),
                }
            }
            ColumnBuilder::Date32(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal128 {
                mut builder,
                precision,
                scale,
            } => Arc::new(
                builder
                    .finish()
                    .with_data_type(DataType::Decimal128(precision, scale)),
            ),
            ColumnBuilder::Binary(mut b) => Arc::new(b.finish()),
            ColumnBuilder::LargeBinary(mut b) => Arc::new(b.finish()),
            ColumnBuilder::BinaryView(mut b) => Arc::new(b.finish()),
        }
    }
}

/// A page of results being read: the view's columns, then `_state` and `_updated_at`, each
/// with its builder. Both stores read pages through it.
pub(crate) struct Page<'a> {
    view: &'a str,
    pub columns: Vec<&'a Column>,
    pub builders: Vec<ColumnBuilder>,
}

/// The two columns every results table adds to the view's own.
static BOOKKEEPING: std::sync::LazyLock<[Column; 2]> = std::sync::LazyLock::new(|| {
    [
        Column {
            name: crate::schema::STATE_COLUMN.to_owned(),
            ty: ColumnType::Utf8,
            nullable: false,
        },
        Column {
            name: crate::schema::UPDATED_AT_COLUMN.to_owned(),
            ty: ColumnType::Timestamp {
                unit: crate::schema::Unit::Millisecond,
                tz: Some("UTC".to_owned()),
            },
            nullable: false,
        },
    ]
});

impl<'a> Page<'a> {
    /// Builders for up to `capacity` rows of `view`, whose own columns are `columns`.
    pub(crate) fn new(view: &'a str, columns: &'a [Column], capacity: usize) -> Page<'a> {
        let columns: Vec<&Column> = columns.iter().chain(BOOKKEEPING.iter()).collect();
        let builders = columns
            .iter()
            .map(|column| ColumnBuilder::new(column, capacity))
            .collect();
        Page {
            view,
            columns,
            builders,
        }
    }

    /// The error for a stored value that column `i` does not hold (only the store writes
    /// these tables, so it is corruption).
    pub(crate) fn unexpected(&self, i: usize, found: String) -> StoreError {
        StoreError::corrupt(format!(
            "column '{}' of view '{}' holds {found}, which is not what the result store \
             writes there",
            self.columns[i].name, self.view
        ))
    }

    /// The rows read, as one batch.
    pub(crate) fn finish(self, has_more: bool) -> Result<crate::model::ResultRows, StoreError> {
        let fields: Vec<arrow_schema::Field> = self
            .columns
            .iter()
            .map(|column| column.to_field())
            .collect();
        let arrays: Vec<ArrayRef> = self
            .builders
            .into_iter()
            .map(ColumnBuilder::finish)
            .collect();
        let view = self.view;
        let batch = RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), arrays)
            .map_err(|error| {
                StoreError::corrupt(format!(
                    "the results of view '{view}' do not fit its schema: {error}"
                ))
            })?;
        Ok(crate::model::ResultRows { batch, has_more })
    }
}
