//! The columns every store keeps: which Arrow types a results table can hold, their form in
//! `freshet_views.schema`, the two columns the store adds, and the UTC text form of times.
//! Each backend maps these types to its own (`sqlite::ddl`, `pg::types`).
//!
//! The mapping is one-to-one per supported Arrow type, so that a results table read back
//! gives the same Arrow types it was written with. Time values are stored as UTC text in a
//! fixed-width form (`YYYY-MM-DD HH:MM:SS` plus as many fraction digits as the unit has) so
//! that SQLite's date functions read them and text order is time order. Years outside
//! 0000–9999 cannot be written in that form and are refused. (That is SQLite's stored form;
//! filter values may be given in it on either store.)
//!
//! This module does no I/O.

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_schema::{DataType, Field, TimeUnit};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::StoreError;

/// The version stored in `PRAGMA user_version` (SQLite) or `freshet_meta` (PostgreSQL) by
/// this build. Version 2 added `freshet_changes`; a writer opening a version-1 store adds it.
/// Version 3 added PostgreSQL's `freshet_leases` and `freshet_workers` (SQLite is
/// unchanged); an older build, which would take advisory locks instead of leases, refuses it.
/// Version 4 keys PostgreSQL's `freshet_state` and `freshet_view_status` by task as well
/// as view (a view may run as one task per partition; SQLite is unchanged).
pub const SCHEMA_VERSION: i64 = 4;

/// Name of the column holding each row's [`crate::RowState`].
pub const STATE_COLUMN: &str = "_state";

/// Name of the column holding when each row was last written (UTC text, milliseconds).
pub const UPDATED_AT_COLUMN: &str = "_updated_at";

/// Prefix of the store's own tables; views may not use it.
pub const INTERNAL_PREFIX: &str = "freshet_";

/// A time unit, spelled as in the stored schema JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// Seconds.
    #[serde(rename = "s")]
    Second,
    /// Milliseconds.
    #[serde(rename = "ms")]
    Millisecond,
    /// Microseconds.
    #[serde(rename = "us")]
    Microsecond,
    /// Nanoseconds.
    #[serde(rename = "ns")]
    Nanosecond,
}

impl Unit {
    fn from_arrow(unit: TimeUnit) -> Unit {
        match unit {
            TimeUnit::Second => Unit::Second,
            TimeUnit::Millisecond => Unit::Millisecond,
            TimeUnit::Microsecond => Unit::Microsecond,
            TimeUnit::Nanosecond => Unit::Nanosecond,
        }
    }

    fn to_arrow(self) -> TimeUnit {
        match self {
            Unit::Second => TimeUnit::Second,
            Unit::Millisecond => TimeUnit::Millisecond,
            Unit::Microsecond => TimeUnit::Microsecond,
            Unit::Nanosecond => TimeUnit::Nanosecond,
        }
    }

    /// Fraction digits written for this unit.
    fn digits(self) -> usize {
        match self {
            Unit::Second => 0,
            Unit::Millisecond => 3,
            Unit::Microsecond => 6,
            Unit::Nanosecond => 9,
        }
    }

    /// Units in one second.
    fn per_second(self) -> i64 {
        match self {
            Unit::Second => 1,
            Unit::Millisecond => 1_000,
            Unit::Microsecond => 1_000_000,
            Unit::Nanosecond => 1_000_000_000,
        }
    }

    /// The values of a timestamp array of this unit, whose type the caller has checked
    /// ([`Column::check_array`]).
    pub fn timestamp_values(self, array: &dyn Array) -> &[i64] {
        match self {
            Unit::Second => array.as_primitive::<TimestampSecondType>().values(),
            Unit::Millisecond => array.as_primitive::<TimestampMillisecondType>().values(),
            Unit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().values(),
            Unit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().values(),
        }
    }

    /// Converts milliseconds to this unit, rounding down or up when the unit is coarser,
    /// saturating when it does not fit.
    pub fn convert_ms(self, ms: i64, round_up: bool) -> i64 {
        match self {
            Unit::Second if round_up => ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0),
            Unit::Second => ms.div_euclid(1000),
            Unit::Millisecond => ms,
            Unit::Microsecond => ms.saturating_mul(1_000),
            Unit::Nanosecond => ms.saturating_mul(1_000_000),
        }
    }
}

/// A supported column type: the Arrow type it reads back as, and the SQLite type it is stored
/// as. Serialised into `freshet_views.schema` in this form, which does not depend on Arrow's
/// own serialisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnType {
    /// Int8, as INTEGER.
    Int8,
    /// Int16, as INTEGER.
    Int16,
    /// Int32, as INTEGER.
    Int32,
    /// Int64, as INTEGER.
    Int64,
    /// UInt8, as INTEGER.
    #[serde(rename = "uint8")]
    UInt8,
    /// UInt16, as INTEGER.
    #[serde(rename = "uint16")]
    UInt16,
    /// UInt32, as INTEGER.
    #[serde(rename = "uint32")]
    UInt32,
    /// UInt64, as INTEGER; values above `i64::MAX` are refused.
    #[serde(rename = "uint64")]
    UInt64,
    /// Float32, as REAL.
    Float32,
    /// Float64, as REAL.
    Float64,
    /// Boolean, as INTEGER 0 or 1.
    Boolean,
    /// Utf8, as TEXT.
    Utf8,
    /// LargeUtf8, as TEXT.
    LargeUtf8,
    /// Utf8View, as TEXT.
    Utf8View,
    /// Timestamp, as UTC TEXT with the unit's fraction digits.
    Timestamp {
        /// The unit.
        unit: Unit,
        /// The Arrow time zone, if any; values are UTC instants either way.
        tz: Option<String>,
    },
    /// Date32, as TEXT `YYYY-MM-DD`.
    Date32,
    /// Decimal128, as TEXT in Arrow's display form.
    Decimal128 {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// Binary, as BLOB.
    Binary,
    /// LargeBinary, as BLOB.
    LargeBinary,
    /// BinaryView, as BLOB.
    BinaryView,
}

impl ColumnType {
    /// The column type for an Arrow type, or `None` if the store cannot hold it.
    pub fn from_arrow(data_type: &DataType) -> Option<ColumnType> {
        Some(match data_type {
            DataType::Int8 => ColumnType::Int8,
            DataType::Int16 => ColumnType::Int16,
            DataType::Int32 => ColumnType::Int32,
            DataType::Int64 => ColumnType::Int64,
            DataType::UInt8 => ColumnType::UInt8,
            DataType::UInt16 => ColumnType::UInt16,
            DataType::UInt32 => ColumnType::UInt32,
            DataType::UInt64 => ColumnType::UInt64,
            DataType::Float32 => ColumnType::Float32,
            DataType::Float64 => ColumnType::Float64,
            DataType::Boolean => ColumnType::Boolean,
            DataType::Utf8 => ColumnType::Utf8,
            DataType::LargeUtf8 => ColumnType::LargeUtf8,
            DataType::Utf8View => ColumnType::Utf8View,
            DataType::Timestamp(unit, tz) => ColumnType::Timestamp {
                unit: Unit::from_arrow(*unit),
                tz: tz.as_deref().map(str::to_owned),
            },
            DataType::Date32 => ColumnType::Date32,
            DataType::Decimal128(precision, scale) => ColumnType::Decimal128 {
                precision: *precision,
                scale: *scale,
            },
            DataType::Binary => ColumnType::Binary,
            DataType::LargeBinary => ColumnType::LargeBinary,
            DataType::BinaryView => ColumnType::BinaryView,
            _ => return None,
        })
    }

    /// The Arrow type this column reads back as.
    pub fn to_arrow(&self) -> DataType {
        match self {
            ColumnType::Int8 => DataType::Int8,
            ColumnType::Int16 => DataType::Int16,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::UInt8 => DataType::UInt8,
            ColumnType::UInt16 => DataType::UInt16,
            ColumnType::UInt32 => DataType::UInt32,
            ColumnType::UInt64 => DataType::UInt64,
            ColumnType::Float32 => DataType::Float32,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::LargeUtf8 => DataType::LargeUtf8,
            ColumnType::Utf8View => DataType::Utf8View,
            ColumnType::Timestamp { unit, tz } => {
                DataType::Timestamp(unit.to_arrow(), tz.as_deref().map(Arc::from))
            }
            ColumnType::Date32 => DataType::Date32,
            ColumnType::Decimal128 { precision, scale } => DataType::Decimal128(*precision, *scale),
            ColumnType::Binary => DataType::Binary,
            ColumnType::LargeBinary => DataType::LargeBinary,
            ColumnType::BinaryView => DataType::BinaryView,
        }
    }
}

/// One column of a results table, as stored in `freshet_views.schema`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Its type.
    #[serde(flatten)]
    pub ty: ColumnType,
    /// Whether the Arrow field allows nulls.
    pub nullable: bool,
}

impl Column {
    /// The column for an Arrow field; a user error naming it if its type is not supported.
    pub fn from_field(field: &Field) -> Result<Column, StoreError> {
        let ty = ColumnType::from_arrow(field.data_type()).ok_or_else(|| {
            StoreError::user(format!(
                "column '{}' has type {}, which the result store cannot hold; supported: \
                 integers, floats, booleans, strings, timestamps, Date32, Decimal128, binary",
                field.name(),
                field.data_type()
            ))
        })?;
        Ok(Column {
            name: field.name().clone(),
            ty,
            nullable: field.is_nullable(),
        })
    }

    /// The Arrow field this column reads back as.
    pub fn to_field(&self) -> Field {
        Field::new(&self.name, self.ty.to_arrow(), self.nullable)
    }

    /// Checks that `array` holds this column's Arrow type; a bug in the caller if not.
    pub fn check_array(&self, array: &dyn Array) -> Result<(), StoreError> {
        let expected = self.ty.to_arrow();
        if array.data_type() != &expected {
            return Err(StoreError::bug(format!(
                "column '{}' arrived as {}, but the results table holds {}",
                self.name,
                array.data_type(),
                expected
            )));
        }
        Ok(())
    }
}

/// Longest text [`format_timestamp`] writes: `YYYY-MM-DD HH:MM:SS.fffffffff`.
const TIME_TEXT_MAX: usize = 29;

/// A stack buffer holding one formatted time, so the hot path does not allocate per cell.
#[derive(Debug)]
pub struct TimeText {
    bytes: [u8; TIME_TEXT_MAX],
    len: usize,
}

impl TimeText {
    /// An empty buffer.
    pub fn new() -> TimeText {
        TimeText {
            bytes: [0; TIME_TEXT_MAX],
            len: 0,
        }
    }

    /// The text written last.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("only ASCII digits and separators")
    }

    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    /// Writes `value` as exactly `width` decimal digits (`value` is non-negative and fits).
    fn push_digits(&mut self, value: u64, width: usize) {
        let mut rest = value;
        for i in (0..width).rev() {
            self.bytes[self.len + i] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        self.len += width;
    }

    fn push_date(&mut self, date: NaiveDate) {
        self.push_digits(date.year() as u64, 4);
        self.push(b'-');
        self.push_digits(u64::from(date.month()), 2);
        self.push(b'-');
        self.push_digits(u64::from(date.day()), 2);
    }
}

impl Default for TimeText {
    fn default() -> TimeText {
        TimeText::new()
    }
}

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// The calendar date `days` after 1970-01-01, if its year is in 0000–9999.
fn date_from_days(days: i64) -> Option<NaiveDate> {
    let from_ce = i32::try_from(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?).ok()?;
    let date = NaiveDate::from_num_days_from_ce_opt(from_ce)?;
    (0..=9999).contains(&date.year()).then_some(date)
}

/// Writes a timestamp of the given unit as UTC text: `YYYY-MM-DD HH:MM:SS` and, unless the
/// unit is seconds, `.` and the fraction with as many digits as the unit has. Returns false
/// (and leaves the buffer unspecified) if the year is outside 0000–9999.
pub fn format_timestamp(value: i64, unit: Unit, out: &mut TimeText) -> bool {
    let per_second = unit.per_second();
    let seconds = value.div_euclid(per_second);
    let fraction = value.rem_euclid(per_second);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let Some(date) = date_from_days(days) else {
        return false;
    };
    out.len = 0;
    out.push_date(date);
    out.push(b' ');
    out.push_digits((second_of_day / 3600) as u64, 2);
    out.push(b':');
    out.push_digits((second_of_day / 60 % 60) as u64, 2);
    out.push(b':');
    out.push_digits((second_of_day % 60) as u64, 2);
    if unit.digits() > 0 {
        out.push(b'.');
        out.push_digits(fraction as u64, unit.digits());
    }
    true
}

/// Writes a Date32 value (days since 1970-01-01) as `YYYY-MM-DD`; false if the year is
/// outside 0000–9999.
pub fn format_date(days: i32, out: &mut TimeText) -> bool {
    let Some(date) = date_from_days(i64::from(days)) else {
        return false;
    };
    out.len = 0;
    out.push_date(date);
    true
}

/// Parses `n` ASCII digits.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Parses `YYYY-MM-DD` into days since 1970-01-01.
pub fn parse_date(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(digits(&b[0..4])?).ok()?,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
    )?;
    let days = i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE;
    i32::try_from(days).ok()
}

/// Parses the stored form `YYYY-MM-DD HH:MM:SS[.f…]` (a `T` may stand for the space) into a
/// value of `unit`. Fraction digits finer than the unit are dropped.
pub fn parse_stored_timestamp(text: &str, unit: Unit) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19 || !matches!(b[10], b' ' | b'T') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let days = i64::from(parse_date(text.get(..10)?)?);
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut nanos = 0i64;
    if b.len() > 19 {
        let fraction = &b[19..];
        if fraction[0] != b'.' || fraction.len() < 2 || fraction.len() > 10 {
            return None;
        }
        let value = digits(&fraction[1..])?;
        nanos = i64::from(value) * 10i64.pow(10 - fraction.len() as u32);
    }
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let per_second = unit.per_second();
    seconds
        .checked_mul(per_second)?
        .checked_add(nanos / (1_000_000_000 / per_second))
}

/// Parses a timestamp given by a user: the stored form, or RFC 3339 with any offset. The
/// result is a value of `unit`, UTC.
pub fn parse_user_timestamp(text: &str, unit: Unit) -> Option<i64> {
    if let Some(value) = parse_stored_timestamp(text, unit) {
        return Some(value);
    }
    let utc: NaiveDateTime = DateTime::parse_from_rfc3339(text).ok()?.naive_utc();
    let utc = utc.and_utc();
    match unit {
        Unit::Second => Some(utc.timestamp()),
        Unit::Millisecond => Some(utc.timestamp_millis()),
        Unit::Microsecond => Some(utc.timestamp_micros()),
        Unit::Nanosecond => utc.timestamp_nanos_opt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: i64, unit: Unit) -> String {
        let mut out = TimeText::new();
        assert!(format_timestamp(value, unit, &mut out));
        out.as_str().to_owned()
    }

    #[test]
    fn timestamps_format_with_the_unit_s_digits() {
        // 2024-03-01T12:34:56.789123456Z
        let ns = 1_709_296_496_789_123_456i64;
        assert_eq!(
            text(ns / 1_000_000_000, Unit::Second),
            "2024-03-01 12:34:56"
        );
        assert_eq!(
            text(ns / 1_000_000, Unit::Millisecond),
            "2024-03-01 12:34:56.789"
        );
        assert_eq!(
            text(ns / 1_000, Unit::Microsecond),
            "2024-03-01 12:34:56.789123"
        );
        assert_eq!(text(ns, Unit::Nanosecond), "2024-03-01 12:34:56.789123456");
        assert_eq!(text(0, Unit::Millisecond), "1970-01-01 00:00:00.000");
        assert_eq!(text(-1, Unit::Millisecond), "1969-12-31 23:59:59.999");
    }

    #[test]
    fn timestamps_round_trip_through_text() {
        let values = [
            0i64,
            -1,
            1,
            1_709_296_496_789,
            -2_208_988_800_000,
            32_503_679_999_999,
        ];
        for unit in [
            Unit::Second,
            Unit::Millisecond,
            Unit::Microsecond,
            Unit::Nanosecond,
        ] {
            for &ms in &values {
                let value = unit.convert_ms(ms, false);
                if unit == Unit::Nanosecond && value.checked_div(1_000_000) != Some(ms) {
                    continue; // Outside what nanoseconds in an i64 reach.
                }
                let formatted = text(value, unit);
                assert_eq!(
                    parse_stored_timestamp(&formatted, unit),
                    Some(value),
                    "{formatted}"
                );
            }
        }
    }

    #[test]
    fn timestamps_outside_four_digit_years_are_refused() {
        let mut out = TimeText::new();
        assert!(!format_timestamp(i64::MAX, Unit::Millisecond, &mut out));
        assert!(!format_timestamp(i64::MIN, Unit::Second, &mut out));
        assert!(format_timestamp(i64::MAX, Unit::Nanosecond, &mut out));
    }

    #[test]
    fn text_order_is_time_order() {
        let a = text(-1, Unit::Millisecond);
        let b = text(0, Unit::Millisecond);
        let c = text(86_400_000, Unit::Millisecond);
        assert!(a < b && b < c);
    }

    #[test]
    fn user_timestamps_accept_rfc3339_and_the_stored_form() {
        let ms = Some(1_709_296_496_789);
        assert_eq!(
            parse_user_timestamp("2024-03-01 12:34:56.789", Unit::Millisecond),
            ms
        );
        assert_eq!(
            parse_user_timestamp("2024-03-01T12:34:56.789Z", Unit::Millisecond),
            ms
        );
        assert_eq!(
            parse_user_timestamp("2024-03-01T14:34:56.789+02:00", Unit::Millisecond),
            ms
        );
        assert_eq!(
            parse_user_timestamp("2024-03-01 12:34:56", Unit::Microsecond),
            Some(1_709_296_496_000_000)
        );
        assert_eq!(
            parse_user_timestamp("2024-02-30 00:00:00", Unit::Second),
            None
        );
        assert_eq!(parse_user_timestamp("yesterday", Unit::Second), None);
        assert_eq!(
            parse_user_timestamp("2024-03-01 12:34:56.", Unit::Second),
            None
        );
    }

    #[test]
    fn dates_round_trip() {
        for days in [0, -1, 19_782, -25_567, 2_932_896] {
            let mut out = TimeText::new();
            assert!(format_date(days, &mut out));
            assert_eq!(parse_date(out.as_str()), Some(days), "{}", out.as_str());
        }
        let mut out = TimeText::new();
        assert!(format_date(19_782, &mut out));
        assert_eq!(out.as_str(), "2024-02-29");
    }

    #[test]
    fn rounding_milliseconds_to_seconds() {
        assert_eq!(Unit::Second.convert_ms(1_500, false), 1);
        assert_eq!(Unit::Second.convert_ms(1_500, true), 2);
        assert_eq!(Unit::Second.convert_ms(2_000, true), 2);
        assert_eq!(Unit::Second.convert_ms(-1_500, false), -2);
        assert_eq!(Unit::Second.convert_ms(-1_500, true), -1);
    }

    #[test]
    fn unsupported_types_name_the_column() {
        let field = Field::new("tags", DataType::Float16, true);
        let error = Column::from_field(&field).expect_err("Float16 is not supported");
        assert!(matches!(error, StoreError::User { .. }));
        assert!(error.to_string().contains("'tags'"), "{error}");
    }

    #[test]
    fn column_types_round_trip_through_json_and_arrow() {
        let types = [
            DataType::Int8,
            DataType::UInt64,
            DataType::Float32,
            DataType::Boolean,
            DataType::Utf8View,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Timestamp(TimeUnit::Second, None),
            DataType::Date32,
            DataType::Decimal128(12, 3),
            DataType::LargeBinary,
        ];
        for data_type in types {
            let column =
                Column::from_field(&Field::new("c", data_type.clone(), false)).expect("supported");
            let json = serde_json::to_string(&column).expect("serialisable");
            let back: Column = serde_json::from_str(&json).expect("readable");
            assert_eq!(back.ty.to_arrow(), data_type, "{json}");
        }
        let json = serde_json::to_string(&Column {
            name: "t".into(),
            ty: ColumnType::Timestamp {
                unit: Unit::Millisecond,
                tz: Some("UTC".into()),
            },
            nullable: true,
        })
        .expect("serialisable");
        assert_eq!(
            json,
            r#"{"name":"t","type":"timestamp","unit":"ms","tz":"UTC","nullable":true}"#
        );
    }
}
